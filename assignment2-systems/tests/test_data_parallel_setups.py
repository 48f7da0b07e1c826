"""Every benchmarked setup (ours and PyTorch's) must train the same model the same way as one process."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torch.nn.functional as F
from cs336_basics.model_config import ModelConfig
from cs336_basics.toolkit.tables import records_table
from cs336_systems.data_parallel_setups import build_setup, validate_setup_name
from cs336_systems.distributed_report import reduce_over_ranks, write_results
from cs336_systems.distributed_utils import DistributedContext
from cs336_systems.fsdp import FSDP
from cs336_systems.phase_timer import PhaseTimer

from tests.distributed_harness import model_lm_available, run_on_ranks

MODEL = ModelConfig(vocab_size=37, context_length=8, d_model=16, num_layers=2, num_heads=2, d_ff=32)
SETUPS = ["local", "naive", "flat", "overlap", "bucketed-0.001", "zero1", "torch-ddp", "fsdp", "torch-fsdp"]


def _full_parameters(setup) -> dict[str, torch.Tensor]:
    if isinstance(setup.model, FSDP):
        return setup.model.gather_full_params()
    module = getattr(setup.model, "module", setup.model)
    return {
        name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach() for name, p in module.named_parameters()
    }


def _setups_train_like_one_process(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    tokens = torch.randint(
        0, MODEL.vocab_size, (4, MODEL.context_length + 1), generator=torch.Generator().manual_seed(5)
    )
    x, y = tokens[:, :-1], tokens[:, 1:]
    reference = build_setup("local", MODEL, ctx)  # every rank computes the whole batch: the single-process run
    for _ in range(2):
        reference.optimizer.zero_grad()
        F.cross_entropy(reference.model(x).flatten(0, 1), y.flatten()).backward()
        reference.optimizer.step()
    expected = _full_parameters(reference)

    mine = slice(2 * ctx.rank, 2 * ctx.rank + 2)
    for name in SETUPS:
        if name == "local":
            continue
        setup = build_setup(name, MODEL, ctx)
        for _ in range(2):
            setup.start_step()
            setup.optimizer.zero_grad(set_to_none=True)
            with setup.autocast():
                logits = setup.model(x[mine])
            F.cross_entropy(logits.float().flatten(0, 1), y[mine].flatten()).backward()
            setup.synchronize()
            setup.optimizer.step()
        got = _full_parameters(setup)
        assert list(got) == list(expected), name
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-6, msg=f"{name} {key}")


@pytest.mark.skipif(not model_lm_available(), reason="cs336_basics.model not available")
def test_every_benchmarked_setup_trains_like_one_process():
    run_on_ranks(_setups_train_like_one_process)


def _bf16_setups_run(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    x = torch.randint(0, MODEL.vocab_size, (2, MODEL.context_length), generator=torch.Generator().manual_seed(ctx.rank))
    for name in ("bucketed-1", "fsdp", "torch-fsdp"):
        setup = build_setup(name, MODEL, ctx, precision="bf16")
        with setup.autocast():
            logits = setup.model(x)
        assert logits.dtype == torch.bfloat16, name
        logits.float().square().mean().backward()
        setup.synchronize()
        setup.optimizer.step()
        assert all(p.dtype == torch.float32 for p in setup.model.parameters()), name


@pytest.mark.skipif(not model_lm_available(), reason="cs336_basics.model not available")
def test_bf16_setups_compute_in_bf16_with_fp32_master_weights():
    run_on_ranks(_bf16_setups_run)


def _setups_release_their_model(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    x = torch.randint(0, MODEL.vocab_size, (2, MODEL.context_length), generator=torch.Generator().manual_seed(ctx.rank))
    for name in SETUPS:
        setup = build_setup(name, MODEL, ctx)
        setup.start_step()
        setup.model(x).float().square().mean().backward()
        setup.synchronize()
        setup.optimizer.step()
        param = weakref.ref(next(iter(setup.model.parameters())))
        del setup
        gc.collect()
        assert param() is None, f"{name}: the wrapper (through its gradient hooks) keeps the model alive"


@pytest.mark.skipif(not model_lm_available(), reason="cs336_basics.model not available")
def test_setups_free_their_model_when_dropped():
    """Benchmarks build a dozen setups in one process; a leaked one keeps its model and optimizer on the GPU."""
    run_on_ranks(_setups_release_their_model)


def test_setup_names_are_validated():
    for name in ("naive", "bucketed-25", "bucketed-0.5", "torch-fsdp"):
        validate_setup_name(name)
    for name in ("bucketed-0", "bucketed-x", "ddp"):
        with pytest.raises(ValueError, match="unknown setup"):
            validate_setup_name(name)


def test_phase_timer_splits_a_step_into_its_phases():
    timer = PhaseTimer(torch.device("cpu"))
    for _ in range(2):
        timer.start_step()
        torch.randn(300, 300) @ torch.randn(300, 300)
        timer.mark("a")
        timer.mark("b")
    means = timer.mean_ms()
    assert set(means) == {"a", "b", "step"}
    assert means["a"] > 0 and means["step"] == pytest.approx(means["a"] + means["b"])


def test_records_table_and_atomic_results(tmp_path):
    rows = [{"setup": "naive", "ms": 12.3456}, {"setup": "flat", "ms": 123456.0, "extra": None}]
    table = records_table(rows, ["setup", "ms", "extra"])
    assert table.splitlines() == [
        "| setup | ms | extra |",
        "| --- | --- | --- |",
        "| naive | 12.3 | - |",
        "| flat | 123,456 | - |",
    ]
    write_results(tmp_path, "r", {"world_size": 2}, rows, table)
    assert (tmp_path / "r.md").read_text().endswith(table + "\n")
    assert '"world_size": 2' in (tmp_path / "r.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]


def _reduce(ctx: DistributedContext) -> None:
    assert reduce_over_ranks({"t": float(ctx.rank + 1)}, "max") == {"t": 2.0}
    assert reduce_over_ranks({"t": float(ctx.rank + 1)}, "mean") == {"t": 1.5}


def test_reduce_over_ranks():
    run_on_ranks(_reduce)
