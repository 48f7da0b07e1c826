"""Study-run throughput per worker layout: optimizer steps per second of the whole pool, against one worker per
device (the baseline: the service's default), for the small and mid-sized models a study trains.

    PYTHONPATH=assignment1-basics/src:assignment3-scaling/src python3 assignment3-scaling/benchmarks/bench_workers.py \\
        --tokens corpus/tokens.bin --context-length 256 --batch-divisor 4 --layouts 1:thread 4:thread 4:process

A layout ``K:thread`` or ``K:process`` runs K workers per device (threads of this process, or one spawned process
each). Every layout times the same probe runs as ``plan_study.py --time-budget`` (two sizes, two lengths, every
worker busy at once) and reports the fitted per-step time and the pool's steps per second.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from cs336_scaling.study_timing import PROBE_SHAPES, probe_run_time
from cs336_scaling.training_run import ScaleConfig, TrainingSetup, vocab_size_of
from cs336_scaling.workers import LocalWorkerPool, local_devices


def parse_layout(text: str) -> tuple[int, bool]:
    count, kind = text.split(":")
    if kind not in ("thread", "process"):
        raise argparse.ArgumentTypeError(f"layout kind must be 'thread' or 'process', got {kind!r}")
    return int(count), kind == "process"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--devices", default="auto")
    parser.add_argument("--context-length", type=int, default=256)
    parser.add_argument("--batch-divisor", type=int, default=4)
    parser.add_argument("--layouts", nargs="+", default=["1:thread", "4:thread", "4:process"])
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
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
    print("| layout | workers | small ms/step | mid ms/step | small pool steps/s | mid pool steps/s | vs 1:thread |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["small_pool_steps_per_s"] / base["small_pool_steps_per_s"]
        mid_ratio = row["mid_pool_steps_per_s"] / base["mid_pool_steps_per_s"]
        print(
            f"| {row['layout']} | {row['workers']} | {row['small_ms_per_step']:.2f} | {row['mid_ms_per_step']:.2f} | "
            f"{row['small_pool_steps_per_s']:.0f} | {row['mid_pool_steps_per_s']:.0f} | "
            f"{ratio:.2f}x small, {mid_ratio:.2f}x mid |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
