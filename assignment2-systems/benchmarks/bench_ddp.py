"""Step time and communication share of every data-parallel setup on one model, PyTorch's DDP and FSDP included.

Each setup (see `cs336_systems.data_parallel_setups`) trains the same seeded Transformer LM with AdamW on the same
per-rank batches. Per setup and round (rounds interleave the setups; medians over rounds are reported): warm-up
steps, then timed steps whose phases (forward, backward, gradient
synchronisation, optimizer step) are marked on the compute stream (CUDA events) or the wall clock (CPU). Columns:

- `step ms`: mean step time of the slowest rank; `tok/s`: tokens of all ranks per second;
- `sync ms` / `sync %`: time the compute stream waited in `finish_gradient_synchronization` (all communication for
  naive/flat, only the part not hidden behind backward for overlap/bucketed/FSDP; PyTorch's wrappers communicate
  inside backward, so theirs is blank);
- `overhead %`: (step - local step) / step, where `local` is the same model with no communication at all;
- `vs torch`: our throughput over the matching PyTorch wrapper's (DDP variants vs `torch-ddp`, `fsdp` vs
  `torch-fsdp`), measured in the same run;
- `loss0`: first-step loss of rank 0, equal for all setups because they start from the same weights.

With `--gather_timeline`, our `fsdp` runs one more step (in the last round) with every unit gather marked on the
compute stream's clock (`cs336_systems.gather_timeline`): when it was issued, when compute needed it, when it was
ready and copied out. Each rank's rows and stalls go to `gather_timeline_<size>_<precision>_ws<N>.json` and `.png`:
whether each gather finishes before its unit is needed, without Nsight.

With `--kernel_timeline` (CUDA only), every setup runs one more step (in the last round) under `torch.profiler`
(`cs336_systems.stream_timeline`): every kernel of the step on its stream, NCCL's kernels apart, in
`kernel_timeline_<size>_<precision>_ws<N>.png` (rank 0, one panel per setup: the picture of an Nsight screenshot)
and `.json` (per setup and rank: compute and communication time, and how much of the communication ran under
compute).

Run (2 processes on CPU with gloo, or one process per GPU with NCCL):
    uv run torchrun --nproc-per-node 2 assignment2-systems/benchmarks/bench_ddp.py --size tiny --backend gloo
    uv run torchrun --nproc-per-node 2 assignment2-systems/benchmarks/bench_ddp.py --size small --setups local fsdp \
        --backend gloo --gather_timeline --out_dir /tmp/ddp
    uv run torchrun --nproc-per-node 2 assignment2-systems/benchmarks/bench_ddp.py --size xl --setups naive overlap \
        --kernel_timeline --out_dir runs/ddp
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src python3 -m torch.distributed.run --nproc-per-node 2 \\
        assignment2-systems/benchmarks/bench_ddp.py --size xl --out_dir $OUT/ddp
"""

from __future__ import annotations

import gc
import statistics
from dataclasses import asdict, dataclass, field
from typing import Literal

from cs336_basics.model_sizes import MODEL_SIZES
from cs336_basics.toolkit.cli import parse_config

DEFAULT_SETUPS = [
    "local",
    "naive",
    "flat",
    "overlap",
    "bucketed-1",
    "bucketed-10",
    "bucketed-100",
    "bucketed-1000",
    "zero1",
    "torch-ddp",
    "fsdp",
    "torch-fsdp",
]
COLUMNS = ["setup", "step ms", "fwd ms", "bwd ms", "sync ms", "opt ms", "sync %", "overhead %", "tok/s", "vs torch"]


@dataclass(frozen=True)
class DDPBenchConfig:
    """Step time and communication share of every data-parallel setup on one seeded Transformer LM."""

    size: str = field(default="tiny", metadata={"help": f"model shape, one of {list(MODEL_SIZES)}"})
    setups: list[str] = field(
        default_factory=lambda: list(DEFAULT_SETUPS),
        metadata={"help": "local naive flat overlap bucketed-<MB> zero1 fsdp torch-ddp torch-fsdp"},
    )
    batch_size: int = field(default=4, metadata={"help": "sequences per rank"})
    context_length: int = field(default=128, metadata={"help": "tokens per sequence"})
    vocab_size: int = field(default=10_000, metadata={"help": "model vocabulary (random tokens)"})
    precision: Literal["fp32", "bf16"] = field(default="fp32", metadata={"help": "bf16: mixed-precision compute"})
    warmup: int = field(default=3, metadata={"help": "untimed steps per setup and round"})
    steps: int = field(default=10, metadata={"help": "timed steps per setup and round"})
    rounds: int = field(default=1, metadata={"help": "interleaved repeats; medians are reported"})
    backend: Literal["nccl", "gloo"] | None = field(default=None, metadata={"help": "none: nccl if CUDA, else gloo"})
    gather_timeline: bool = field(
        default=False,
        metadata={"help": "fsdp: mark each unit gather's issue, wait, ready and copy-out in one more step"},
    )
    kernel_timeline: bool = field(
        default=False,
        metadata={"help": "CUDA: profile one more step per setup, every kernel on its stream (NCCL's apart), a PNG"},
    )
    out_dir: str = field(default="runs/ddp", metadata={"help": "folder for ddp_<size>_<precision>_ws<N>.json and .md"})

    def __post_init__(self):
        from cs336_systems.data_parallel_setups import validate_setup_name  # torch: only once the flags parsed

        if self.size not in MODEL_SIZES:
            raise ValueError(f"size must be one of {list(MODEL_SIZES)}, got {self.size!r}")
        if not self.setups:
            raise ValueError("setups is empty")
        for name in self.setups:
            validate_setup_name(name)
        if self.steps < 1 or self.warmup < 0 or self.rounds < 1:
            raise ValueError("steps and rounds must be >= 1, warmup >= 0")


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(DDPBenchConfig, description=__doc__)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from cs336_basics.model_sizes import model_config  # noqa: E402
from cs336_basics.toolkit.tables import records_table  # noqa: E402
from cs336_systems.data_parallel_setups import TrainingSetup, build_setup  # noqa: E402
from cs336_systems.distributed_report import reduce_over_ranks, run_metadata, write_results  # noqa: E402
from cs336_systems.distributed_utils import DistributedContext, init_from_env  # noqa: E402
from cs336_systems.fsdp import FSDP  # noqa: E402
from cs336_systems.gather_timeline import GatherTimeline, summarize, write_timeline  # noqa: E402
from cs336_systems.phase_timer import PhaseTimer  # noqa: E402
from cs336_systems.stream_timeline import (  # noqa: E402
    KernelSpan,
    PhaseMarks,
    kernel_spans,
    write_stream_timelines,
)
from cs336_systems.stream_timeline import summarize as summarize_streams  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402


def train_step(
    setup: TrainingSetup, x: torch.Tensor, y: torch.Tensor, timer: PhaseTimer | GatherTimeline | PhaseMarks | None
) -> float:
    mark = timer.mark if timer is not None else (lambda phase: None)
    if timer is not None:
        timer.start_step()
    setup.start_step()
    setup.optimizer.zero_grad(set_to_none=True)
    with setup.autocast():
        logits = setup.model(x)
    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    mark("fwd")
    loss.backward()
    mark("bwd")
    setup.synchronize()
    mark("sync")
    setup.optimizer.step()
    mark("opt")
    return loss.item() if timer is None else float("nan")


def gather_timeline_step(setup: TrainingSetup, x: torch.Tensor, y: torch.Tensor, ctx: DistributedContext) -> list[dict]:
    """One more step of our FSDP with every unit gather marked; every rank's rows, phase ends and stalls."""
    timeline = GatherTimeline(ctx.device)
    setup.model.trace_gathers(timeline)
    train_step(setup, x, y, timeline)
    timeline.stop()
    setup.model.trace_gathers(None)
    rows = timeline.rows()
    mine = {"rank": ctx.rank, "phase_ends_ms": timeline.phase_ends_ms(), "summary": summarize(rows), "rows": rows}
    per_rank: list = [None] * ctx.world_size
    dist.all_gather_object(per_rank, mine)
    return per_rank


def kernel_timeline_step(
    setup: TrainingSetup, x: torch.Tensor, y: torch.Tensor, ctx: DistributedContext
) -> tuple[list[dict], list[KernelSpan]]:
    """One more step under `torch.profiler` with CUDA activity: every rank's stream summary, and this rank's kernels."""
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        train_step(setup, x, y, PhaseMarks())
        torch.cuda.synchronize()
    spans = kernel_spans(profiler.events())
    per_rank: list = [None] * ctx.world_size
    dist.all_gather_object(per_rank, {"rank": ctx.rank, **summarize_streams(spans)})
    return per_rank, spans


def measure(cfg: DDPBenchConfig, ctx: DistributedContext, name: str, last_round: bool) -> tuple[dict, dict]:
    """The setup's median-ready phase times, and in the last round the extra steps asked for: our FSDP's gather
    timeline (`gather_timeline`: every rank's), the kernels per stream (`kernel_timeline`: every rank's summary,
    `kernel_spans`: this rank's kernels)."""
    model_cfg = model_config(cfg.size, vocab_size=cfg.vocab_size, context_length=cfg.context_length)
    setup = build_setup(name, model_cfg, ctx, cfg.precision)
    generator = torch.Generator().manual_seed(1000 + ctx.rank)
    tokens = torch.randint(0, cfg.vocab_size, (cfg.batch_size, cfg.context_length + 1), generator=generator)
    x, y = tokens[:, :-1].to(ctx.device), tokens[:, 1:].to(ctx.device)
    first_loss = train_step(setup, x, y, timer=None)
    for _ in range(cfg.warmup):
        train_step(setup, x, y, timer=None)
    dist.barrier()
    timer = PhaseTimer(ctx.device)
    for _ in range(cfg.steps):
        train_step(setup, x, y, timer)
    phases = reduce_over_ranks(timer.mean_ms(), op="max")
    extras = {}
    if last_round and cfg.gather_timeline and isinstance(setup.model, FSDP):
        extras["gather_timeline"] = gather_timeline_step(setup, x, y, ctx)
    if last_round and cfg.kernel_timeline:
        extras["kernel_timeline"], extras["kernel_spans"] = kernel_timeline_step(setup, x, y, ctx)
    del setup
    gc.collect()
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    return {"loss0": first_loss, **{f"{phase} ms": ms for phase, ms in phases.items()}}, extras


def median_row(name: str, rounds: list[dict], tokens_per_step: int) -> dict:
    """Per column, the median over rounds: rounds interleave the setups, so slow drift or a noisy neighbour
    on a shared machine hits every setup alike instead of whichever one ran at that moment."""
    row = {"setup": name, **{key: statistics.median(r[key] for r in rounds) for key in rounds[0]}}
    row["tok/s"] = tokens_per_step / (row["step ms"] / 1e3)
    return row


def add_comparisons(rows: list[dict]) -> None:
    by_name = {row["setup"]: row for row in rows}
    local = by_name.get("local")
    for row in rows:
        if not row["setup"].startswith("torch-"):
            row["sync %"] = 100 * row["sync ms"] / row["step ms"]
        else:
            row["sync ms"] = None
        if local is not None and row is not local:
            row["overhead %"] = 100 * (row["step ms"] - local["step ms"]) / row["step ms"]
        baseline = "torch-fsdp" if row["setup"] == "fsdp" else "torch-ddp"
        if baseline in by_name and row["setup"] not in ("local", "torch-ddp", "torch-fsdp"):
            row["vs torch"] = row["tok/s"] / by_name[baseline]["tok/s"]


def stall_line(summary: dict[str, dict]) -> str:
    return "; ".join(
        f"{phase} {s['stall_ms']:.2f} ms over {s['gathers']} gathers ({s['stalled']} stalled, longest "
        f"{s['max_stall_ms']:.2f} ms), copy-out {s['copy_ms']:.2f} ms"
        for phase, s in summary.items()
    )


def main(cfg: DDPBenchConfig) -> None:
    ctx = init_from_env(cfg.backend)
    if cfg.kernel_timeline and ctx.device.type != "cuda":
        raise SystemExit("--kernel_timeline needs CUDA GPUs: the kernels and their streams come from CUPTI")
    torch.set_float32_matmul_precision("high")
    rounds: dict[str, list[dict]] = {name: [] for name in cfg.setups}
    timeline = None
    kernel_timelines: dict[str, list[dict]] = {}
    kernel_panels: dict[str, list[KernelSpan]] = {}
    for round_index in range(cfg.rounds):
        for name in cfg.setups:
            result, extras = measure(cfg, ctx, name, last_round=round_index == cfg.rounds - 1)
            timeline = extras.get("gather_timeline", timeline)
            if "kernel_timeline" in extras:
                kernel_timelines[name], kernel_panels[name] = extras["kernel_timeline"], extras["kernel_spans"]
            rounds[name].append(result)
            if ctx.rank == 0:
                print(f"round {round_index} {name}: {result['step ms']:.2f} ms/step, loss0 {result['loss0']:.4f}")
    tokens_per_step = cfg.batch_size * cfg.context_length * ctx.world_size
    rows = [median_row(name, results, tokens_per_step) for name, results in rounds.items()]
    add_comparisons(rows)
    if ctx.rank == 0:
        meta = {**run_metadata(ctx.backend, ctx.device), **asdict(cfg)}
        meta.pop("setups")
        table = records_table(rows, COLUMNS + ["loss0"])
        print(table)
        stem = f"{cfg.size}_{cfg.precision}_ws{ctx.world_size}"
        write_results(cfg.out_dir, f"ddp_{stem}", meta, rows, table)
        if timeline is not None:
            for rank in timeline:
                print(f"fsdp gather stalls, rank {rank['rank']}: {stall_line(rank['summary'])}")
            write_timeline(cfg.out_dir, f"gather_timeline_{stem}", timeline, meta)
        for name, per_rank in kernel_timelines.items():
            for rank in per_rank:
                hidden = "-" if rank["hidden_share"] is None else f"{rank['hidden_share']:.0%}"
                print(
                    f"kernels, {name} rank {rank['rank']}: compute {rank['compute_ms']:.2f} ms, communication "
                    f"{rank['communication_ms']:.2f} ms, {hidden} of it under compute"
                )
        if kernel_timelines:
            write_stream_timelines(cfg.out_dir, f"kernel_timeline_{stem}", kernel_timelines, kernel_panels, meta)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(CONFIG)
