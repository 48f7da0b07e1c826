"""The data-parallel correctness checks that ``scripts/check_distributed_correctness.py`` runs under torchrun: each
rank trains the wrapped model on its slice of the batch and, on the same device, an unwrapped copy on the whole batch;
after every step the weights must agree (DDP variants, ZeRO-1, FSDP in fp32/fp16/bf16, every benchmark setup)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from cs336_basics.model_config import ModelConfig
from cs336_basics.toolkit.tables import records_table
from torch import nn

from cs336_systems.data_parallel_setups import build_setup
from cs336_systems.ddp import BucketedDDP, FlatDDP, NaiveDDP, OverlapDDP
from cs336_systems.distributed_checks_config import CorrectnessConfig
from cs336_systems.distributed_report import run_metadata, write_results
from cs336_systems.distributed_utils import DistributedContext, init_from_env
from cs336_systems.fsdp import FSDP
from cs336_systems.sharded_optimizer import ShardedOptimizer
from cs336_systems.toy_models import CourseFsdpModel, CourseTiedModel, CourseToyModel


@dataclass
class Check:
    """One row of the report: a check's largest parameter difference and whether it met its tolerance."""

    name: str
    max_abs_diff: float
    tolerance: str
    passed: bool


def max_diff(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> float:
    return max((got[k].float() - expected[k].float()).abs().max().item() for k in expected)


def all_close(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], rtol: float, atol: float) -> bool:
    return list(got) == list(expected) and all(torch.allclose(got[k], expected[k], rtol, atol) for k in expected)


def identical_on_all_ranks(tensor: torch.Tensor) -> bool:
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def course_data(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from cs336_basics.toolkit.data_paths import shared_path

        data = torch.load(shared_path("fixtures/assignment2/ddp_test_data.pt"))
        labels = torch.load(shared_path("fixtures/assignment2/ddp_test_labels.pt"))
    except Exception:  # no shared fixtures on this machine: same shapes, seeded
        generator = torch.Generator().manual_seed(0)
        data, labels = torch.randn(20, 10, generator=generator), torch.randn(20, 5, generator=generator)
    return data.to(device), labels.to(device)


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def check_ddp(ctx: DistributedContext) -> list[Check]:
    data, labels = course_data(ctx.device)
    wrappers: dict[str, Callable[[nn.Module], nn.Module]] = {
        "naive": NaiveDDP,
        "flat": FlatDDP,
        "overlap": OverlapDDP,
        **{f"bucketed-{mb}": (lambda m, mb=mb: BucketedDDP(m, mb)) for mb in (0.0001, 0.0016, 0.01, None)},
    }
    checks = []
    for model_cls in (CourseToyModel, CourseTiedModel):
        for name, wrap in wrappers.items():
            torch.manual_seed(0)
            reference = model_cls().to(ctx.device)
            torch.manual_seed(ctx.rank)  # rank 0 builds the reference weights, others must receive them
            ddp = wrap(model_cls().to(ctx.device))
            broadcast_ok = all(identical_on_all_ranks(t) for t in ddp.module.state_dict().values())
            ddp_opt, ref_opt = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (ddp, reference))
            worst, ok = 0.0, broadcast_ok
            for step in range(5):
                torch.manual_seed(42 + step)
                order = torch.randperm(data.shape[0]).to(ctx.device)
                x, y = data[order], labels[order]
                ddp.start_train_batch()
                ddp_opt.zero_grad(set_to_none=True)
                ref_opt.zero_grad(set_to_none=True)
                mine = slice(ctx.rank * 20 // ctx.world_size, (ctx.rank + 1) * 20 // ctx.world_size)
                F.mse_loss(ddp(x[mine]), y[mine]).backward()
                ddp.finish_gradient_synchronization()
                ddp_opt.step()
                F.mse_loss(reference(x), y).backward()
                ref_opt.step()
                got, expected = params_of(ddp.module), params_of(reference)
                worst = max(worst, max_diff(got, expected))
                ok = ok and all_close(got, expected, 1e-5, 1e-8)
            checks.append(Check(f"ddp {name} {model_cls.__name__}", worst, "allclose defaults", ok))
    return checks


def check_zero1(ctx: DistributedContext) -> list[Check]:
    hyper = dict(lr=0.1, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8)
    checks = []
    for model_cls in (CourseToyModel, CourseTiedModel):
        torch.manual_seed(42)
        model = model_cls().to(ctx.device)
        reference = model_cls().to(ctx.device)
        reference.load_state_dict(model.state_dict())
        sharded = ShardedOptimizer(model.parameters(), torch.optim.AdamW, **hyper)
        plain = torch.optim.AdamW(reference.parameters(), **hyper)
        for _ in range(10):
            x, y = torch.rand(32, 10, device=ctx.device), torch.rand(32, 5, device=ctx.device)
            for m, opt in ((model, sharded), (reference, plain)):
                opt.zero_grad()
                ((y - m(x)) ** 2).sum().backward()
                opt.step()
        got, expected = params_of(model), params_of(reference)
        ok = all(torch.allclose(got[k], expected[k], rtol=1e-7, atol=0) for k in expected)
        checks.append(Check(f"zero1 AdamW {model_cls.__name__}", max_diff(got, expected), "rtol 1e-7", ok))
    return checks


def check_fsdp(ctx: DistributedContext) -> list[Check]:
    from cs336_basics.model import Embedding, Linear

    checks = []
    for dtype, rtol, atol in ((None, 1e-6, 1e-7), (torch.float16, 1e-4, 1e-4), (torch.bfloat16, 1e-3, 1e-3)):
        torch.manual_seed(0)
        reference = CourseFsdpModel().to(ctx.device)
        torch.manual_seed(ctx.rank)
        model = CourseFsdpModel().to(ctx.device)
        fsdp = FSDP(model, compute_dtype=dtype)
        ref_opt, opt = torch.optim.SGD(reference.parameters(), lr=0.01), torch.optim.SGD(fsdp.parameters(), lr=0.01)
        modules = dict(model.named_modules())
        worst, ok, bitwise = 0.0, True, True
        for step in range(3):
            generator = torch.Generator().manual_seed(step)
            ids = torch.randint(0, 100, (20, 16), generator=generator).to(ctx.device)
            targets = torch.randint(0, 100, (20,), generator=generator).to(ctx.device)
            mine = slice(ctx.rank * 20 // ctx.world_size, (ctx.rank + 1) * 20 // ctx.world_size)
            opt.zero_grad(set_to_none=True)
            ref_opt.zero_grad(set_to_none=True)
            F.cross_entropy(fsdp(ids[mine])[:, -1, :].float(), targets[mine]).backward()
            fsdp.finish_gradient_synchronization()
            for name, param in model.named_parameters():
                ok = ok and param.grad is not None and param.grad.shape == param.shape
                ok = ok and param.grad.dtype == torch.float32
                if not isinstance(modules[name.rsplit(".", 1)[0]], (Linear, Embedding)):
                    ok = ok and identical_on_all_ranks(param.grad)
            opt.step()
            logits = reference(ids) if dtype is None else reference.mixed_precision_forward(ids, dtype)
            F.cross_entropy(logits[:, -1, :].float(), targets).backward()
            ref_opt.step()
            got, expected = fsdp.gather_full_params(), params_of(reference)
            worst = max(worst, max_diff(got, expected))
            ok = ok and all_close(got, expected, rtol, atol)
            bitwise = bitwise and all(torch.equal(got[k], expected[k]) for k in expected)
        label = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
        note = f"rtol {rtol:g}, atol {atol:g}" + (f"; bitwise {bitwise}" if dtype is None else "")
        checks.append(Check(f"fsdp {label} CourseFsdpModel", worst, note, ok))
    return checks


def check_benchmark_setups(ctx: DistributedContext) -> list[Check]:
    model = ModelConfig(vocab_size=97, context_length=16, d_model=64, num_layers=2, num_heads=4, d_ff=128)
    generator = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, model.vocab_size, (4 * ctx.world_size, model.context_length + 1), generator=generator)
    x, y = tokens[:, :-1].to(ctx.device), tokens[:, 1:].to(ctx.device)

    def train(name: str, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        setup = build_setup(name, model, ctx, lr=1e-3)
        for _ in range(2):
            setup.start_step()
            setup.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(setup.model(x).float().flatten(0, 1), y.flatten()).backward()
            setup.synchronize()
            setup.optimizer.step()
        if isinstance(setup.model, FSDP):
            return setup.model.gather_full_params()
        module = getattr(setup.model, "module", setup.model)
        return {n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach() for n, p in module.named_parameters()}

    expected = train("local", x, y)
    mine = slice(4 * ctx.rank, 4 * ctx.rank + 4)
    checks = []
    for name in ("naive", "flat", "overlap", "bucketed-1", "zero1", "fsdp", "torch-ddp", "torch-fsdp"):
        got = train(name, x[mine], y[mine])
        ok = all_close(got, expected, 1e-4, 1e-6)
        checks.append(Check(f"setup {name} TransformerLM", max_diff(got, expected), "rtol 1e-4, atol 1e-6", ok))
    return checks


def check_distributed_correctness(config: CorrectnessConfig) -> bool:
    """Run every check on this rank (torchrun's environment sets the group); rank 0 prints the table and writes
    ``correctness.json``/``.md`` under ``config.out_dir``. True when every check passed on every rank."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, read at first matmul
    ctx = init_from_env(config.backend)
    torch.backends.cuda.matmul.allow_tf32 = False  # compare fp32 with fp32, not TF32
    torch.use_deterministic_algorithms(True, warn_only=True)
    checks = check_ddp(ctx) + check_zero1(ctx) + check_fsdp(ctx) + check_benchmark_setups(ctx)
    # a check fails if it fails on any rank; its difference is the largest over ranks
    passed = torch.tensor([float(c.passed) for c in checks], dtype=torch.float64, device=ctx.device)
    diffs = torch.tensor([c.max_abs_diff for c in checks], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(passed, op=dist.ReduceOp.MIN)
    dist.all_reduce(diffs, op=dist.ReduceOp.MAX)
    for check, ok, diff in zip(checks, passed.tolist(), diffs.tolist(), strict=True):
        check.passed, check.max_abs_diff = ok == 1.0, diff
    all_passed = all(c.passed for c in checks)
    if ctx.rank == 0:
        rows = [vars(c) for c in checks]
        table = records_table(rows, ["name", "max_abs_diff", "tolerance", "passed"])
        print(table)
        write_results(config.out_dir, "correctness", run_metadata(ctx.backend, ctx.device), rows, table)
        print("ALL PASSED" if all_passed else "SOME CHECKS FAILED")
    dist.barrier()
    dist.destroy_process_group()
    return all_passed
