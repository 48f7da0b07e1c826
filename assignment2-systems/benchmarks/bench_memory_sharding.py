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
        assignment2-systems/benchmarks/bench_memory_sharding.py --size xl --out_dir $OUT/memory
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

from cs336_basics.model_sizes import MODEL_SIZES
from cs336_basics.toolkit.cli import parse_config

MIB = 2**20
BYTE_COLUMNS = ["params MiB", "grads MiB", "optim MiB", "total MiB"]
PEAK_COLUMNS = ["init peak MiB", "before step peak MiB", "after step peak MiB"]


@dataclass(frozen=True)
class MemoryBenchConfig:
    """Per-rank memory of parameters, gradients and optimizer state of each data-parallel setup."""

    size: str = field(default="tiny", metadata={"help": f"model shape, one of {list(MODEL_SIZES)}"})
    setups: list[str] = field(
        default_factory=lambda: ["bucketed-25", "zero1", "fsdp", "torch-fsdp"],
        metadata={"help": "local naive flat overlap bucketed-<MB> zero1 fsdp torch-ddp torch-fsdp"},
    )
    batch_size: int = field(default=4, metadata={"help": "sequences per rank"})
    context_length: int = field(default=128, metadata={"help": "tokens per sequence"})
    vocab_size: int = field(default=10_000, metadata={"help": "model vocabulary (random tokens)"})
    precision: Literal["fp32", "bf16"] = field(default="fp32", metadata={"help": "bf16: mixed-precision compute"})
    backend: Literal["nccl", "gloo"] | None = field(default=None, metadata={"help": "none: nccl if CUDA, else gloo"})
    out_dir: str = field(
        default="runs/memory_sharding", metadata={"help": "folder for memory_<size>_<precision>_ws<N>.json and .md"}
    )

    def __post_init__(self):
        from cs336_systems.data_parallel_setups import validate_setup_name  # torch: only once the flags parsed

        if self.size not in MODEL_SIZES:
            raise ValueError(f"size must be one of {list(MODEL_SIZES)}, got {self.size!r}")
        if not self.setups:
            raise ValueError("setups is empty")
        for name in self.setups:
            validate_setup_name(name)


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(MemoryBenchConfig, description=__doc__)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from cs336_basics.model_sizes import model_config  # noqa: E402
from cs336_basics.toolkit.tables import records_table  # noqa: E402
from cs336_systems.data_parallel_setups import build_setup  # noqa: E402
from cs336_systems.distributed_report import reduce_over_ranks, run_metadata, write_results  # noqa: E402
from cs336_systems.distributed_utils import DistributedContext, init_from_env  # noqa: E402
from cs336_systems.sharded_optimizer import ShardedOptimizer  # noqa: E402
from torch.optim import Optimizer  # noqa: E402


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


def main(cfg: MemoryBenchConfig) -> None:
    ctx = init_from_env(cfg.backend)
    rows = [measure(cfg, ctx, name) for name in cfg.setups]
    if ctx.rank == 0:
        columns = ["setup", *BYTE_COLUMNS, *(PEAK_COLUMNS if ctx.device.type == "cuda" else [])]
        table = records_table(rows, columns)
        print(table)
        meta = {**run_metadata(ctx.backend, ctx.device), **asdict(cfg)}
        meta.pop("setups")
        write_results(cfg.out_dir, f"memory_{cfg.size}_{cfg.precision}_ws{ctx.world_size}", meta, rows, table)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(CONFIG)
