"""End-to-end Transformer benchmark (handout §1.1): forward, backward and AdamW step per model size.

Timing mode (default) sweeps sizes × context lengths × precisions × eager/compiled × modes × warm-up
counts, with a ``torch.cuda.synchronize`` after each phase and mean ± std over the timed steps (and the
first timed step alone: ``--warmup 0 1 2 5`` is the handout's no-warm-up comparison; run it in a fresh
process, listing 0 first, so the first cell is really cold); NVTX ranges mark
warm-up, steps, phases and blocks for ``nsys profile``. ``--memory`` instead records one steady-state
step per cell with the CUDA memory history, reports peak memory, and with ``--snapshots`` writes the
pickles for https://pytorch.org/memory_viz. Out-of-memory cells become ``OOM`` rows. Rows are
appended to a JSONL file as they finish; a markdown table is written at the end.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/bench_model.py --out /tmp/model_bench
    ... bench_model.py --sizes small --precisions bf16 --compile both --out /tmp/model_compiled
    ... bench_model.py --sizes small --modes train_step --warmup 0 1 2 5 --out /tmp/model_warmup
    ... bench_model.py --memory --sizes 2.7B --context-lengths 128 256 512 --snapshots --out /tmp/model_mem
Profile with nsys (skip the warm-up range):
    nsys profile --trace=cuda,nvtx --capture-range=nvtx --nvtx-capture='step 0' ... bench_model.py --sizes small
"""

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import torch
from cs336_basics.model_sizes import MODEL_SIZES
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic
from cs336_basics.toolkit.tables import records_table
from cs336_systems.benchmarking import ModelBenchmarkConfig, benchmark_model
from cs336_systems.benchmarking.model_benchmark import ATTENTIONS, MODES, PRECISIONS, profile_memory


@dataclass
class SweepConfig:
    out: str = "model_benchmark_results"
    sizes: list[str] = field(default_factory=lambda: ["small", "medium", "large", "xl", "2.7B"])
    context_lengths: list[int] = field(default_factory=lambda: [512])
    precisions: list[str] = field(default_factory=lambda: ["fp32", "bf16"])
    modes: list[str] = field(default_factory=lambda: ["forward", "train_step"])
    batch_size: int = 4
    warmup: list[int] = field(default_factory=lambda: [5])
    steps: int = 10
    compile: str = "off"
    nvtx: bool = True
    attention: str = "sdpa"
    memory: bool = False
    snapshots: bool = False
    device: str = "cuda"


def parse_args(argv: list[str] | None = None) -> SweepConfig:
    d = SweepConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=d.out, help="directory for the JSONL rows, table and snapshots")
    parser.add_argument("--sizes", nargs="+", choices=list(MODEL_SIZES), default=d.sizes)
    parser.add_argument("--context-lengths", type=int, nargs="+", default=d.context_lengths)
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=d.precisions)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=d.modes)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument(
        "--warmup", type=int, nargs="+", default=d.warmup, help="untimed steps before measuring (several: a sweep)"
    )
    parser.add_argument("--steps", type=int, default=d.steps, help="timed steps")
    parser.add_argument(
        "--compile", choices=COMPILE_CHOICES, default=d.compile, help="torch.compile the model: off, on, or both rows"
    )
    parser.add_argument("--nvtx", action=argparse.BooleanOptionalAction, default=d.nvtx)
    parser.add_argument(
        "--attention", choices=ATTENTIONS, default=d.attention, help="naive: from-scratch attention in NVTX ranges"
    )
    parser.add_argument("--memory", action="store_true", help="peak-memory profile instead of timing")
    parser.add_argument("--snapshots", action="store_true", help="with --memory: dump memory_viz pickles")
    parser.add_argument("--device", default=d.device)
    return SweepConfig(**vars(parser.parse_args(argv)))


COMPILE_CHOICES = {"off": [False], "on": [True], "both": [False, True]}


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


def main(argv: list[str] | None = None) -> None:
    sweep = parse_args(argv)
    if sweep.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA GPU: pass --device cpu to benchmark on the CPU (timing mode only)")
    os.makedirs(sweep.out, exist_ok=True)
    name = "memory" if sweep.memory else "model_benchmark"
    rows = []
    with open(os.path.join(sweep.out, f"{name}.jsonl"), "w") as jsonl:
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
                        snapshot = None
                        if sweep.snapshots:
                            snapshot = os.path.join(
                                sweep.out, f"snapshot_{size}_{context_length}_{precision}_{mode}.pickle"
                            )
                        row = profile_memory(cell, snapshot)
                    else:
                        row = benchmark_model(cell)
                    row["wall_s"] = time.perf_counter() - start
                    rows.append(row)
                    jsonl.write(json.dumps(row) + "\n")
                    jsonl.flush()
                    print(json.dumps(row), flush=True)
    table = memory_table(rows) if sweep.memory else timing_table(rows)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    write_text_atomic(
        os.path.join(sweep.out, f"{name}.md"), f"device: {device}, torch {torch.__version__}\n\n{table}\n"
    )
    write_json_atomic(os.path.join(sweep.out, f"{name}.json"), {"sweep": asdict(sweep), "rows": rows}, indent=1)
    print(table)


if __name__ == "__main__":
    main()
