"""Named data-parallel training setups of one Transformer LM, ours and PyTorch's, built the same way for benchmarks.

A setup name is one of `local` (no communication at all: the compute-only baseline), `naive`, `flat`, `overlap`,
`bucketed-<MB>`, `zero1` (bucketed DDP plus the ZeRO-1 sharded AdamW), `fsdp` (ours), `torch-ddp`
(`torch.nn.parallel.DistributedDataParallel`) and `torch-fsdp` (`torch.distributed.fsdp.fully_shard` on every
Transformer block, then the root). Every setup starts from the same seeded weights and uses `torch.optim.AdamW`,
so step times and memory differ only by the parallelisation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from torch import nn
from torch.optim import Optimizer

from cs336_systems.ddp import BucketedDDP, DataParallel, FlatDDP, NaiveDDP, OverlapDDP
from cs336_systems.distributed_utils import DistributedContext
from cs336_systems.fsdp import FSDP
from cs336_systems.sharded_optimizer import ShardedOptimizer

SETUP_NAMES = ("local", "naive", "flat", "overlap", "bucketed-<MB>", "zero1", "fsdp", "torch-ddp", "torch-fsdp")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
ZERO1_BUCKET_MB = 25.0  # torch DDP's default bucket size, so zero1 differs from torch-ddp only in the optimizer


@dataclass
class TrainingSetup:
    """What one training step needs: call `model`, backward, `synchronize()`, then `optimizer.step()`."""

    name: str
    model: nn.Module
    optimizer: Optimizer
    synchronize: Callable[[], None]
    start_step: Callable[[], None]
    autocast: Callable[[], contextlib.AbstractContextManager]


def validate_setup_name(name: str) -> None:
    if name.startswith("bucketed-"):
        try:
            if float(name.removeprefix("bucketed-")) > 0:
                return
        except ValueError:
            pass
    elif name in SETUP_NAMES:
        return
    raise ValueError(f"unknown setup {name!r}; choose from {', '.join(SETUP_NAMES)} (bucketed-<MB> with MB > 0)")


def build_setup(
    name: str, model_cfg: ModelConfig, ctx: DistributedContext, precision: str = "fp32", lr: float = 1e-4
) -> TrainingSetup:
    """Build the model on `ctx.device` from seed 0 (every rank and setup starts alike) and wrap it as `name` says.
    In bf16, wrappers that keep full weights (local, DDP variants, torch-ddp) run under autocast; sharded ones cast
    their weights instead (our FSDP's `compute_dtype`, fully_shard's `MixedPrecisionPolicy`), with fp32 master
    weights and gradient reduction."""
    validate_setup_name(name)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    compute_dtype = PRECISIONS[precision]
    torch.manual_seed(0)
    model = TransformerLM(model_cfg, device=ctx.device)

    def no_autocast() -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def bf16_autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(ctx.device.type, dtype=torch.bfloat16)

    autocast = bf16_autocast if compute_dtype is not None else no_autocast

    def nothing() -> None:
        return None

    if name == "fsdp":
        wrapped = FSDP(model, compute_dtype=compute_dtype)
        optimizer = torch.optim.AdamW(wrapped.parameters(), lr=lr)
        return TrainingSetup(name, wrapped, optimizer, wrapped.finish_gradient_synchronization, nothing, no_autocast)
    if name == "torch-fsdp":
        return _torch_fully_shard(model, ctx, compute_dtype, lr)
    if name == "torch-ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=device_ids)
        return TrainingSetup(name, wrapped, torch.optim.AdamW(wrapped.parameters(), lr=lr), nothing, nothing, autocast)
    if name == "local":
        return TrainingSetup(name, model, torch.optim.AdamW(model.parameters(), lr=lr), nothing, nothing, autocast)

    ddp: DataParallel
    if name == "zero1":
        ddp = BucketedDDP(model, ZERO1_BUCKET_MB)
        optimizer = ShardedOptimizer(ddp.parameters(), torch.optim.AdamW, lr=lr)
    else:
        if name.startswith("bucketed-"):
            ddp = BucketedDDP(model, float(name.removeprefix("bucketed-")))
        else:
            ddp = {"naive": NaiveDDP, "flat": FlatDDP, "overlap": OverlapDDP}[name](model)
        optimizer = torch.optim.AdamW(ddp.parameters(), lr=lr)
    return TrainingSetup(name, ddp, optimizer, ddp.finish_gradient_synchronization, ddp.start_train_batch, autocast)


def _torch_fully_shard(
    model: TransformerLM, ctx: DistributedContext, compute_dtype: torch.dtype | None, lr: float
) -> TrainingSetup:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
    policy = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    for block in model.layers:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return TrainingSetup(
        "torch-fsdp",
        model,
        torch.optim.AdamW(model.parameters(), lr=lr),
        lambda: None,
        lambda: None,
        contextlib.nullcontext,
    )
