"""Study-run throughput per worker layout: optimizer steps per second of the whole pool, against one worker per
device (the baseline: the service's default), for the small and mid-sized models a study trains.

    PYTHONPATH=assignment1-basics/src:assignment3-scaling/src python3 assignment3-scaling/benchmarks/bench_workers.py \\
        --tokens corpus/tokens.bin --context_length 256 --batch_divisor 4 --layouts 1:thread 4:thread 4:process

A layout ``K:thread`` or ``K:process`` runs K workers per device (threads of this process, or one spawned process
each). Every layout times the same probe runs as ``plan_study.py --service.time_budget`` (two sizes, two lengths, every
worker busy at once) and reports the fitted per-step time and the pool's steps per second.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.tables import markdown_table


@dataclass(frozen=True)
class BenchWorkersConfig:
    """Study-run throughput per worker layout, against one worker per device."""

    tokens: str = field(metadata={"help": "uint16 token file the probe runs train on"})
    devices: str = field(default="auto", metadata={"help": "'auto' (every GPU, else the CPU), 'cpu:N', 'cuda:0,...'"})
    context_length: int = field(default=256, metadata={"help": "tokens per training window"})
    batch_divisor: int = field(default=4, metadata={"help": "divide the batch of 128 by this"})
    layouts: list[str] = field(
        default_factory=lambda: ["1:thread", "4:thread", "4:process"], metadata={"help": "K:thread or K:process"}
    )
    out_dir: str = field(default="runs/bench_workers", metadata={"help": "folder for workers.json"})


def parse_layout(text: str) -> tuple[int, bool]:
    count, kind = text.split(":")
    if kind not in ("thread", "process"):
        raise ValueError(f"layout kind must be 'thread' or 'process', got {kind!r}")
    return int(count), kind == "process"


def main() -> None:
    args = parse_config(BenchWorkersConfig, description=__doc__)
    from cs336_scaling.study_timing import PROBE_SHAPES, probe_run_time  # torch: after parsing
    from cs336_scaling.training_run import ScaleConfig, TrainingSetup, vocab_size_of
    from cs336_scaling.workers import LocalWorkerPool, local_devices

    scale = ScaleConfig(1.0, args.context_length, args.batch_divisor)
    setup = TrainingSetup(tokens_path=args.tokens, vocab_size=vocab_size_of(args.tokens), scale=scale)
    rows = []
    for layout in ["1:thread", *[text for text in args.layouts if text != "1:thread"]]:
        per_device, processes = parse_layout(layout)
        started = time.perf_counter()
        pool = LocalWorkerPool(setup, local_devices(args.devices, per_device), processes)
        run_time, probes = probe_run_time(pool, setup)
        pool.shutdown()
        workers = len(pool.devices)
        sizes = sorted({p.parameters for p in probes})
        row = {"layout": layout, "workers": workers, "run_time": asdict(run_time), "seconds": 0.0}
        for name, parameters in zip(("small", "mid"), sizes):
            row[f"{name}_parameters"] = parameters
            row[f"{name}_ms_per_step"] = 1e3 * run_time.step_seconds(parameters)
            row[f"{name}_pool_steps_per_s"] = workers / run_time.step_seconds(parameters)
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
    base = rows[0]
    print(f"probe shapes {PROBE_SHAPES}, context {args.context_length}, batch 128/{args.batch_divisor}")
    headers = ["layout", "workers", "small ms/step", "mid ms/step", "small pool steps/s", "mid pool steps/s"]
    table = [
        [
            row["layout"],
            row["workers"],
            f"{row['small_ms_per_step']:.2f}",
            f"{row['mid_ms_per_step']:.2f}",
            f"{row['small_pool_steps_per_s']:.0f}",
            f"{row['mid_pool_steps_per_s']:.0f}",
            f"{row['small_pool_steps_per_s'] / base['small_pool_steps_per_s']:.2f}x small, "
            f"{row['mid_pool_steps_per_s'] / base['mid_pool_steps_per_s']:.2f}x mid",
        ]
        for row in rows
    ]
    print(markdown_table([*headers, "vs 1:thread"], table))
    print(f"wrote {write_json_atomic(Path(args.out_dir) / 'workers.json', rows)}")


if __name__ == "__main__":
    main()
