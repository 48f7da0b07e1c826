"""End-to-end Transformer benchmark (handout §1.1): forward, backward and AdamW step per model size.

Timing mode (default) sweeps sizes × context lengths × precisions × eager/compiled × modes × warm-up
counts, with a ``torch.cuda.synchronize`` after each phase and mean ± std over the timed steps (and the
first timed step alone: ``--warmup 0 1 2 5`` is the handout's no-warm-up comparison; run it in a fresh
process, listing 0 first, so the first cell is really cold); NVTX ranges mark
warm-up, steps, phases and blocks for ``nsys profile``. ``--memory`` instead records one steady-state
step per cell with the CUDA memory history, reports peak memory, and with ``--snapshots`` writes per cell the
snapshot pickle for https://pytorch.org/memory_viz, its active-memory timeline as a PNG, and in the row what
``memory_timeline.summarize`` reads from it (largest allocations and their source lines; for a training step, what
the middle block saves for backward and what its gradients take, next to its parameter bytes).
``--profile_kernels`` instead profiles one steady-state step per cell with ``torch.profiler`` (CUDA kernels: the
handout's nsys_profile questions, as nsys cannot write reports on our GPU machine) and writes per cell
``kernels_<size>_<ctx>_<precision>_<mode>_<attention>.json``: each phase's kernels ranked by time, with calls, share
and category (matmul, softmax, elementwise, reduction, attention, optimizer, other), and with ``--attention naive``
the softmax's kernel time and FLOPs next to the attention matmuls' (``cs336_systems.benchmarking.kernel_profile``);
its rows (kernel ms per phase, the forward's top kernel, the matmul share of forward and step) go to
``kernel_profile.jsonl`` and ``kernel_profile.md``. Out-of-memory cells become ``OOM`` rows. Rows are appended to a
JSONL file as they finish; a markdown table is written at the end.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/bench_model.py --out_dir /tmp/model_bench
    ... bench_model.py --sizes small --precisions bf16 --compile both --out_dir /tmp/model_compiled
    ... bench_model.py --sizes small --modes train_step --warmup 0 1 2 5 --out_dir /tmp/model_warmup
    ... bench_model.py --memory --sizes 2.7B --context_lengths 128 256 512 --snapshots --out_dir /tmp/model_mem
    ... bench_model.py --profile_kernels --precisions fp32 --context_lengths 128 256 512 1024 --warmup 2 \
        --out_dir /tmp/model_kernels
    ... bench_model.py --profile_kernels --precisions fp32 --modes forward --attention naive --warmup 2 \
        --context_lengths 128 256 512 1024 --out_dir /tmp/model_kernels_naive
Plot a snapshot pickle written before, on any machine: the ``plot_memory_snapshot`` script beside this one.
Profile with nsys (skip the warm-up range):
    nsys profile --trace=cuda,nvtx --capture-range=nvtx --nvtx-capture='step 0' ... bench_model.py --sizes small
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from cs336_basics.model_sizes import MODEL_SIZES
from cs336_basics.toolkit.atomic import atomic_output, write_json_atomic, write_text_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.tables import records_table

COMPILE_CHOICES = {"off": [False], "on": [True], "both": [False, True]}


@dataclass(frozen=True)
class SweepConfig:
    """Forward, backward and AdamW-step time (or peak memory) per model size, context, precision and mode."""

    out_dir: str = field(
        default="runs/model_benchmark", metadata={"help": "folder for the JSONL rows, table and snapshots"}
    )
    sizes: list[str] = field(
        default_factory=lambda: ["small", "medium", "large", "xl", "2.7B"],
        metadata={"help": f"model shapes, of {list(MODEL_SIZES)}"},
    )
    context_lengths: list[int] = field(default_factory=lambda: [512], metadata={"help": "context lengths"})
    precisions: list[Literal["fp32", "bf16"]] = field(
        default_factory=lambda: ["fp32", "bf16"], metadata={"help": "bf16: autocast"}
    )
    modes: list[Literal["forward", "forward_backward", "train_step"]] = field(
        default_factory=lambda: ["forward", "train_step"], metadata={"help": "what a timed step runs"}
    )
    batch_size: int = field(default=4, metadata={"help": "sequences per step"})
    warmup: list[int] = field(
        default_factory=lambda: [5], metadata={"help": "untimed steps before measuring (several: a sweep)"}
    )
    steps: int = field(default=10, metadata={"help": "timed steps"})
    compile: Literal["off", "on", "both"] = field(
        default="off", metadata={"help": "torch.compile the model: off, on, or both rows"}
    )
    nvtx: bool = field(default=True, metadata={"help": "NVTX ranges for nsys"})
    attention: Literal["sdpa", "naive"] = field(
        default="sdpa", metadata={"help": "naive: from-scratch attention in NVTX ranges"}
    )
    memory: bool = field(default=False, metadata={"help": "peak-memory profile instead of timing"})
    profile_kernels: bool = field(
        default=False, metadata={"help": "torch.profiler kernel breakdown of one step instead of timing"}
    )
    snapshots: bool = field(
        default=False, metadata={"help": "with --memory: memory_viz pickles, timeline PNGs and their summaries"}
    )
    device: str = field(default="cuda", metadata={"help": "cuda, or cpu (not with --memory)"})

    def __post_init__(self):
        if unknown := sorted(set(self.sizes) - set(MODEL_SIZES)):
            raise ValueError(f"unknown sizes {unknown}; choose from {list(MODEL_SIZES)}")
        if self.steps < 1 or min(self.warmup, default=0) < 0:
            raise ValueError("steps must be >= 1 and warmup >= 0")
        if self.memory and self.profile_kernels:
            raise ValueError("--memory and --profile_kernels are exclusive: one profile per run")


def _with_spread(row: dict, phase: str) -> str | None:
    mean = row.get(f"{phase}_ms")
    return None if mean is None else f"{mean:.2f} ± {row[f'{phase}_std_ms']:.2f}"


def timing_table(rows: list[dict]) -> str:
    display = [
        {
            **row,
            **{phase: _with_spread(row, phase) for phase in ["forward", "backward", "optimizer_step", "step"]},
            "compiled": "yes" if row["compile"] else "no",
        }
        for row in rows
    ]
    columns = [
        "size",
        "context_length",
        "precision",
        "attention",
        "compiled",
        "mode",
        "warmup",
        "forward",
        "backward",
        "optimizer_step",
        "step",
        "first_step_ms",
        "status",
    ]
    headers = [
        "size",
        "ctx",
        "precision",
        "attention",
        "compiled",
        "mode",
        "warm-up",
        "forward ms",
        "backward ms",
        "AdamW step ms",
        "total ms",
        "first step ms",
        "status",
    ]
    return records_table(display, dict(zip(columns, headers, strict=True)))


def memory_table(rows: list[dict]) -> str:
    columns = ["size", "context_length", "precision", "attention", "mode", "resident_MiB", "peak_MiB", "status"]
    headers = ["size", "ctx", "precision", "attention", "mode", "resident before step MiB", "peak MiB", "status"]
    return records_table(rows, dict(zip(columns, headers, strict=True)))


def kernel_table(rows: list[dict]) -> str:
    from cs336_systems.benchmarking.kernel_profile import short_kernel_name

    display = [
        {**row, "top_forward_kernel": row.get("top_forward_kernel") and short_kernel_name(row["top_forward_kernel"])}
        for row in rows
    ]
    columns = {
        "size": "size",
        "context_length": "ctx",
        "precision": "precision",
        "attention": "attention",
        "mode": "mode",
        "forward_kernel_ms": "forward kernel ms",
        "backward_kernel_ms": "backward kernel ms",
        "optimizer_step_kernel_ms": "AdamW kernel ms",
        "step_kernel_ms": "step kernel ms",
        "forward_wall_ms": "forward wall ms (profiled)",
        "step_wall_ms": "step wall ms (profiled)",
        "top_forward_kernel": "top forward kernel",
        "top_forward_calls": "calls",
        "top_forward_share": "share",
        "forward_matmul_share": "matmul share forward",
        "step_matmul_share": "matmul share step",
        "attention_time_ratio": "softmax/matmul time",
        "attention_flop_ratio": "softmax/matmul FLOPs",
        "status": "status",
    }
    return records_table(display, columns)


def kernel_profile_path(row: dict, out_dir: str, several_warmups: bool) -> str:
    """``kernels_<size>_<ctx>_<precision>_<mode>_<attention>.json``, with ``_compiled`` and ``_warmup<k>`` where the
    sweep would otherwise write two cells to one file."""
    cell = f"{row['size']}_{row['context_length']}_{row['precision']}_{row['mode']}_{row['attention']}"
    cell += "_compiled" if row["compile"] else ""
    cell += f"_warmup{row['warmup']}" if several_warmups else ""
    return os.path.join(out_dir, f"kernels_{cell}.json")


def save_snapshot(row: dict, snapshot: dict, out_dir: str) -> None:
    """Write the cell's snapshot pickle and timeline PNG, and put the timeline's summary in its row."""
    from cs336_systems.benchmarking.memory_timeline import active_timeline, plot_timeline, summarize

    cell = f"{row['size']}_{row['context_length']}_{row['precision']}_{row['mode']}"
    with atomic_output(os.path.join(out_dir, f"snapshot_{cell}.pickle")) as f:
        pickle.dump(snapshot, f)
    timeline = active_timeline(snapshot)
    title = f"{row['size']}, context {row['context_length']}, {row['precision']}, {row['mode']}"
    plot_timeline(timeline, title, os.path.join(out_dir, f"timeline_{cell}.png"))
    row["timeline"] = summarize(timeline)


def main(sweep: SweepConfig) -> None:
    import torch  # after parsing, so that --help answers at once
    from cs336_systems.benchmarking import ModelBenchmarkConfig, benchmark_model
    from cs336_systems.benchmarking.kernel_profile import kernel_profile_row, profile_kernels
    from cs336_systems.benchmarking.model_benchmark import profile_memory

    if sweep.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA GPU: pass --device cpu to time or --profile_kernels on the CPU (not --memory)")
    os.makedirs(sweep.out_dir, exist_ok=True)
    name = "memory" if sweep.memory else "kernel_profile" if sweep.profile_kernels else "model_benchmark"
    rows = []
    with open(os.path.join(sweep.out_dir, f"{name}.jsonl"), "w") as jsonl:
        for size in sweep.sizes:
            for context_length in sweep.context_lengths:
                for precision, compiled, mode, warmup in itertools.product(
                    sweep.precisions, COMPILE_CHOICES[sweep.compile], sweep.modes, sweep.warmup
                ):
                    cell = ModelBenchmarkConfig(
                        size, context_length, sweep.batch_size, mode, precision,
                        warmup, sweep.steps, compiled, sweep.device, sweep.nvtx, sweep.attention,
                    )  # fmt: skip
                    start = time.perf_counter()
                    if sweep.memory:
                        row, snapshot = profile_memory(cell, record_snapshot=sweep.snapshots)
                        if snapshot is not None:
                            save_snapshot(row, snapshot, sweep.out_dir)
                    elif sweep.profile_kernels:
                        result = profile_kernels(cell)
                        path = kernel_profile_path(result, sweep.out_dir, len(set(sweep.warmup)) > 1)
                        write_json_atomic(path, result, indent=1)
                        row = kernel_profile_row(result)
                    else:
                        row = benchmark_model(cell)
                    row["wall_s"] = time.perf_counter() - start
                    rows.append(row)
                    jsonl.write(json.dumps(row) + "\n")
                    jsonl.flush()
                    print(json.dumps(row), flush=True)
    table = memory_table(rows) if sweep.memory else kernel_table(rows) if sweep.profile_kernels else timing_table(rows)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    write_text_atomic(
        os.path.join(sweep.out_dir, f"{name}.md"), f"device: {device}, torch {torch.__version__}\n\n{table}\n"
    )
    write_json_atomic(os.path.join(sweep.out_dir, f"{name}.json"), {"sweep": asdict(sweep), "rows": rows}, indent=1)
    print(table)


if __name__ == "__main__":
    main(parse_config(SweepConfig, description=__doc__))
