"""The adapters exactly as the course's 2025 and 2026 suites call them, on the course's toy models and data.

The models follow the spec's `ToyModel`, `ToyModelWithTiedWeights` and the FSDP model; the reference is one
process training on all 20 examples.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.distributed as dist
from cs336_systems.distributed_utils import DistributedContext
from cs336_systems.toy_models import CourseFsdpModel, CourseTiedModel, CourseToyModel
from torch import nn

from tests import adapters
from tests.distributed_harness import ddp_data, model_lm_available, run_on_ranks

WRAPPERS_2025_2026 = {
    "2025 individual": (adapters.get_ddp_individual_parameters, adapters.ddp_individual_parameters_on_after_backward),
    "2026 get_ddp": (adapters.get_ddp, adapters.ddp_on_after_backward),
    **{
        f"2025 bucketed {mb}": (
            lambda m, mb=mb: adapters.get_ddp_bucketed(m, bucket_size_mb=mb),
            lambda model, opt: adapters.ddp_bucketed_on_after_backward(ddp_model=model, optimizer=opt),
        )
        for mb in (0.0016, 0.0001, 0.01)
    },
}


def _ddp_adapters(ctx: DistributedContext, data: torch.Tensor, labels: torch.Tensor) -> None:
    torch.set_num_threads(1)
    for model_cls in (CourseToyModel, CourseTiedModel):
        for name, (wrap, after_backward) in WRAPPERS_2025_2026.items():
            torch.manual_seed(0)
            reference = model_cls()  # what rank 0 builds
            torch.manual_seed(ctx.rank)  # ranks start apart; wrapping must broadcast rank 0's weights
            base = model_cls()
            if ctx.rank == 1:  # every random tensor (the frozen bias too) differs until wrapping broadcasts it
                assert not any(
                    torch.equal(base.state_dict()[k], v)
                    for k, v in reference.state_dict().items()
                    if k != "no_grad_fixed_param"
                )
            ddp_model = wrap(base)
            assert ddp_model.module is base
            for (key, mine), theirs in zip(ddp_model.module.state_dict().items(), reference.state_dict().values()):
                assert torch.equal(mine, theirs), (name, key)
            ddp_opt = torch.optim.SGD(ddp_model.parameters(), lr=0.1)
            ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
            for step in range(5):
                if "bucketed" in name:
                    adapters.ddp_bucketed_on_train_batch_start(ddp_model=ddp_model, optimizer=ddp_opt)
                ddp_opt.zero_grad(set_to_none=True)
                ref_opt.zero_grad(set_to_none=True)
                torch.manual_seed(42 + step)
                order = torch.randperm(data.shape[0])
                x, y = data[order], labels[order]
                nn.functional.mse_loss(reference(x), y).backward()
                ref_opt.step()
                mine = slice(ctx.rank * 10, (ctx.rank + 1) * 10)
                nn.functional.mse_loss(ddp_model(x[mine]), y[mine]).backward()
                after_backward(ddp_model, ddp_opt)
                ddp_opt.step()
                for p, q in zip(ddp_model.parameters(), reference.parameters(), strict=True):
                    assert torch.allclose(p, q), (model_cls.__name__, name, step)


def test_ddp_adapters_2025_and_2026_train_like_one_process():
    data, labels = ddp_data()
    run_on_ranks(_ddp_adapters, data, labels)


def _sharded_optimizer_adapter(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    hyper = dict(lr=0.1, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8)
    for model_cls in (CourseToyModel, CourseTiedModel):
        torch.manual_seed(42)
        model = model_cls()
        reference = copy.deepcopy(model)
        sharded = adapters.get_sharded_optimizer(model.parameters(), torch.optim.AdamW, **hyper)
        plain = torch.optim.AdamW(reference.parameters(), **hyper)
        assert isinstance(sharded, torch.optim.Optimizer)
        for _ in range(10):
            x, y = torch.rand(32, 10), torch.rand(32, 5)
            for m, opt in ((model, sharded), (reference, plain)):
                opt.zero_grad()
                ((y - m(x)) ** 2).sum().backward()
                opt.step()
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy())


def test_sharded_optimizer_adapter_reproduces_adamw():
    run_on_ranks(_sharded_optimizer_adapter)


def _fsdp_adapters_gradient_sync(ctx: DistributedContext) -> None:
    from cs336_basics.model import Embedding, Linear

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for compute_dtype in (None, torch.float16):
        torch.manual_seed(0)
        model = CourseFsdpModel()
        full_reference = {name: p.detach().clone() for name, p in model.named_parameters()}
        fsdp_model = adapters.get_fsdp(model, compute_dtype=compute_dtype)
        assert fsdp_model.module is model
        optimizer = torch.optim.SGD(fsdp_model.parameters(), lr=0.01)
        gathered = adapters.fsdp_gather_full_params(fsdp_model)
        assert list(gathered) == list(full_reference)
        for name, tensor in gathered.items():
            assert tensor.dtype == torch.float32 and torch.equal(tensor, full_reference[name]), name

        ids = torch.randint(0, 100, (20, 8), generator=torch.Generator().manual_seed(3))
        targets = torch.randint(0, 100, (20,), generator=torch.Generator().manual_seed(4))
        mine = slice(ctx.rank * 10, (ctx.rank + 1) * 10)
        optimizer.zero_grad(set_to_none=True)
        out = fsdp_model(ids[mine])
        nn.CrossEntropyLoss()(out[:, -1, :].float(), targets[mine]).backward()
        adapters.fsdp_on_after_backward(fsdp_model, optimizer)
        modules = dict(fsdp_model.module.named_modules())
        for name, param in fsdp_model.module.named_parameters():
            assert param.grad is not None and param.grad.shape == param.data.shape, name
            assert param.grad.dtype == param.data.dtype == torch.float32, name
            if not isinstance(modules[name.rsplit(".", 1)[0]], (Linear, Embedding)):
                gathered_grads = [torch.empty_like(param.grad) for _ in range(ctx.world_size)]
                dist.all_gather(gathered_grads, param.grad)
                assert torch.equal(gathered_grads[0], gathered_grads[1]), name
        optimizer.step()


@pytest.mark.skipif(not model_lm_available(), reason="cs336_basics.model not available")
def test_fsdp_adapters_shard_grads_and_gather_full_params():
    run_on_ranks(_fsdp_adapters_gradient_sync)
