"""Collective bandwidth sweep: all-reduce (and FSDP's all-gather / reduce-scatter) over float32 tensor sizes.

For each operation and size (MB = 10^6 bytes of float32 data, the handout's 1 MB ... 1 GB; the size is the
all-reduced buffer, the all-gathered output or the reduce-scattered input, as in nccl-tests), every rank times
`--iters` back-to-back calls after `--warmup` calls, synchronising the device and the group around the timed
loop. Reported per size: mean time of the slowest rank, algorithm bandwidth (size / time) and bus bandwidth
(algbw x 2(n-1)/n for all-reduce, x (n-1)/n for all-gather and reduce-scatter: the per-link rate that
nccl-tests report, comparable across world sizes). The named baseline is the device's own copy bandwidth
(`tensor.copy_` of the same size on one rank), so `bus/copy` says how close the link comes to local memory.

Run (2 processes on CPU with gloo, or one process per GPU with NCCL):
    uv run torchrun --nproc-per-node 2 assignment2-systems/benchmarks/bench_comm.py --backend gloo --sizes_mb 1 10 100
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src python3 -m torch.distributed.run --nproc-per-node 2 \\
        assignment2-systems/benchmarks/bench_comm.py --out_dir $OUT/comm
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from cs336_basics.toolkit.cli import parse_config

Operation = Literal["all_reduce", "all_gather", "reduce_scatter"]


@dataclass(frozen=True)
class CommBenchConfig:
    """Collective bandwidth per operation and size, against the device's own copy bandwidth."""

    sizes_mb: list[float] = field(
        default_factory=lambda: [1.0, 10.0, 100.0, 1000.0], metadata={"help": "tensor sizes, MB (10^6 bytes)"}
    )
    ops: list[Operation] = field(
        default_factory=lambda: ["all_reduce", "all_gather", "reduce_scatter"], metadata={"help": "collectives"}
    )
    warmup: int = field(default=3, metadata={"help": "untimed calls before the timed loop"})
    iters: int = field(default=10, metadata={"help": "timed back-to-back calls"})
    backend: Literal["nccl", "gloo"] | None = field(default=None, metadata={"help": "none: nccl if CUDA, else gloo"})
    out_dir: str = field(default="runs/comm", metadata={"help": "folder for comm_<backend>_ws<N>.json and .md"})

    def __post_init__(self):
        if not self.sizes_mb or not self.ops or any(size <= 0 for size in self.sizes_mb):
            raise ValueError("sizes_mb and ops need at least one value each, sizes positive")
        if self.iters < 1 or self.warmup < 0:
            raise ValueError(f"iters must be >= 1 and warmup >= 0, got {self.iters} and {self.warmup}")


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(CommBenchConfig, description=__doc__)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from cs336_basics.toolkit.tables import records_table  # noqa: E402
from cs336_systems.distributed_report import reduce_over_ranks, run_metadata, write_results  # noqa: E402
from cs336_systems.distributed_utils import DistributedContext, init_from_env  # noqa: E402

COLUMNS = ["op", "size MB", "ms", "algbw GB/s", "busbw GB/s", "copy GB/s", "bus/copy"]


def collective(op: str, numel: int, ctx: DistributedContext) -> Callable[[], None]:
    """A closure running `op` on preallocated buffers of `numel` float32 elements in all: the all-reduced
    buffer, the gathered output, or the reduce-scattered input (each rank's shard is `numel / world_size`)."""
    if op == "all_reduce":
        buffer = torch.ones(numel, device=ctx.device)
        return lambda: dist.all_reduce(buffer)
    full, shard = torch.ones(numel, device=ctx.device), torch.empty(numel // ctx.world_size, device=ctx.device)
    if op == "all_gather":
        return lambda: dist.all_gather_into_tensor(full, shard)
    return lambda: dist.reduce_scatter_tensor(shard, full)


def timed_ms(fn: Callable[[], None], ctx: DistributedContext, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(ctx)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(ctx)
    return (time.perf_counter() - start) * 1e3 / iters


def _sync(ctx: DistributedContext) -> None:
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)


def copy_gbps(numel: int, ctx: DistributedContext, iters: int) -> float:
    src, dst = torch.ones(numel, device=ctx.device), torch.empty(numel, device=ctx.device)
    dst.copy_(src)
    _sync(ctx)
    start = time.perf_counter()
    for _ in range(iters):
        dst.copy_(src)
    _sync(ctx)
    return numel * 4 * iters / (time.perf_counter() - start) / 1e9


def bus_factor(op: str, n: int) -> float:
    return 2 * (n - 1) / n if op == "all_reduce" else (n - 1) / n


def main(cfg: CommBenchConfig) -> None:
    ctx = init_from_env(cfg.backend)
    rows = []
    for size_mb in cfg.sizes_mb:
        numel = int(size_mb * 1e6) // 4 // ctx.world_size * ctx.world_size
        copy = copy_gbps(numel, ctx, cfg.iters)
        for op in cfg.ops:
            ms = reduce_over_ranks({"ms": timed_ms(collective(op, numel, ctx), ctx, cfg.warmup, cfg.iters)})["ms"]
            algbw = numel * 4 / (ms / 1e3) / 1e9
            busbw = algbw * bus_factor(op, ctx.world_size)
            row = {"op": op, "size MB": size_mb, "ms": ms, "algbw GB/s": algbw, "busbw GB/s": busbw}
            rows.append({**row, "copy GB/s": copy, "bus/copy": busbw / copy})
            if ctx.rank == 0:
                print(f"{op} {size_mb:g} MB: {ms:.3f} ms, busbw {busbw:.2f} GB/s", flush=True)
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
    if ctx.rank == 0:
        table = records_table(rows, COLUMNS)
        print(table)
        write_results(
            cfg.out_dir,
            f"comm_{ctx.backend}_ws{ctx.world_size}",
            {**run_metadata(ctx.backend, ctx.device), **asdict(cfg)},
            rows,
            table,
        )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(CONFIG)
