"""Per-rank memory of plain DDP, DDP with the ZeRO-1 sharded optimizer, our FSDP and PyTorch's fully_shard.

For each setup, on every rank: bytes held by parameters, gradients and optimizer state (local shards only,
counted from the tensors themselves, so it works on CPU too); on GPU also the handout's three peaks from
`torch.cuda.max_memory_allocated`: after model initialisation, directly before the optimizer step (forward and
backward of the first step) and directly after it (when AdamW has allocated its state). The table shows the
maximum over ranks.

Run (2 processes on CPU with gloo, or one process per GPU with NCCL):
    uv run torchrun --nproc-per-node 2 assignment2-systems/benchmarks/bench_memory_sharding.py --size tiny \\
        --backend gloo
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src python3 -m torch.distributed.run --nproc-per-node 2 \\
        assignment2-systems/benchmarks/bench_memory_sharding.py --size xl --out $OUT/memory
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from cs336_basics.model_sizes import MODEL_SIZES, model_config
from cs336_basics.toolkit.tables import records_table
from cs336_systems.data_parallel_setups import (
    PRECISIONS,
    build_setup,
    validate_setup_name,
)
from cs336_systems.distributed_report import reduce_over_ranks, run_metadata, write_results
from cs336_systems.distributed_utils import DistributedContext, init_from_env
from cs336_systems.sharded_optimizer import ShardedOptimizer
from torch.optim import Optimizer

MIB = 2**20
DEFAULT_SETUPS = ["bucketed-25", "zero1", "fsdp", "torch-fsdp"]
BYTE_COLUMNS = ["params MiB", "grads MiB", "optim MiB", "total MiB"]
PEAK_COLUMNS = ["init peak MiB", "before step peak MiB", "after step peak MiB"]


@dataclass
class MemoryBenchConfig:
    size: str = "tiny"
    setups: list[str] = field(default_factory=lambda: list(DEFAULT_SETUPS))
    batch_size: int = 4  # per rank
    context_length: int = 128
    vocab_size: int = 10_000
    precision: str = "fp32"
    backend: str | None = None
    out: str = "memory_results"


def parse_args() -> MemoryBenchConfig:
    d = MemoryBenchConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(MODEL_SIZES), default=d.size)
    parser.add_argument("--setups", nargs="+", default=d.setups)
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="sequences per rank")
    parser.add_argument("--context-length", type=int, default=d.context_length)
    parser.add_argument("--vocab-size", type=int, default=d.vocab_size)
    parser.add_argument("--precision", choices=list(PRECISIONS), default=d.precision)
    parser.add_argument("--backend", choices=["nccl", "gloo"], default=d.backend, help="default: nccl if CUDA")
    parser.add_argument("--out", default=d.out)
    cfg = MemoryBenchConfig(**vars(parser.parse_args()))
    for name in cfg.setups:
        validate_setup_name(name)
    return cfg


def local_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes this rank stores for `tensors` (a DTensor counts only its local shard; shared storage counts once)."""
    seen, total = set(), 0
    for tensor in tensors:
        if hasattr(tensor, "to_local"):
            tensor = tensor.to_local()
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


def optimizer_state_tensors(optimizer: Optimizer) -> list[torch.Tensor]:
    inner = optimizer.local_optimizer if isinstance(optimizer, ShardedOptimizer) else optimizer
    if inner is None:  # a ZeRO-1 rank that owns no parameter
        return []
    return [v for state in inner.state.values() for v in state.values() if torch.is_tensor(v)]


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None


def measure(cfg: MemoryBenchConfig, ctx: DistributedContext, name: str) -> dict:
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    model_cfg = model_config(cfg.size, vocab_size=cfg.vocab_size, context_length=cfg.context_length)
    setup = build_setup(name, model_cfg, ctx, cfg.precision)
    init_peak = peak_mib(ctx.device)
    generator = torch.Generator().manual_seed(1000 + ctx.rank)
    tokens = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.context_length + 1), generator=generator)
    x, y = tokens[:, :-1].to(ctx.device), tokens[:, 1:].to(ctx.device)
    setup.start_step()
    setup.optimizer.zero_grad(set_to_none=True)
    with setup.autocast():
        logits = setup.model(x)
    F.cross_entropy(logits.float().flatten(0, 1), y.flatten()).backward()
    del logits
    setup.synchronize()
    before_step_peak = peak_mib(ctx.device)
    setup.optimizer.step()
    after_step_peak = peak_mib(ctx.device)
    parameters = list(setup.model.parameters())
    sizes = {
        "params MiB": local_bytes(parameters) / MIB,
        "grads MiB": local_bytes(p.grad for p in parameters if p.grad is not None) / MIB,
        "optim MiB": local_bytes(optimizer_state_tensors(setup.optimizer)) / MIB,
    }
    sizes["total MiB"] = sum(sizes.values())
    if ctx.device.type == "cuda":
        sizes.update(
            {
                "init peak MiB": init_peak,
                "before step peak MiB": before_step_peak,
                "after step peak MiB": after_step_peak,
            }
        )
    del setup, parameters
    gc.collect()
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    return {"setup": name, **reduce_over_ranks(sizes, op="max")}


def main() -> None:
    cfg = parse_args()
    ctx = init_from_env(cfg.backend)
    rows = [measure(cfg, ctx, name) for name in cfg.setups]
    if ctx.rank == 0:
        columns = ["setup", *BYTE_COLUMNS, *(PEAK_COLUMNS if ctx.device.type == "cuda" else [])]
        table = records_table(rows, columns)
        print(table)
        meta = {**run_metadata(ctx.backend, ctx.device), **asdict(cfg)}
        meta.pop("setups")
        write_results(cfg.out, f"memory_{cfg.size}_{cfg.precision}_ws{ctx.world_size}", meta, rows, table)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
