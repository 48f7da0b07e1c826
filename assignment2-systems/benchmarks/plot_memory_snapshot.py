"""Plot a CUDA memory snapshot's active-memory timeline and summarise it, on any machine (no GPU, no torch).

Reads a pickle written by ``bench_model.py --memory --snapshots`` or ``torch.cuda.memory._dump_snapshot`` (gzipped
or not) and writes ``<name>.png`` (the stacked timeline: memory from before the step, then what each labelled phase
allocated) and ``<name>.json`` (start, peak and end MiB, the largest allocations with their source lines, and for a
labelled training step what one block saves for backward and what its gradients take) into ``--out_dir``.

Run (repo root):
    python3 assignment2-systems/benchmarks/plot_memory_snapshot.py --snapshot snapshot.pickle --out_dir /tmp/timeline
"""

import gzip
import pickle
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.cli import parse_config


@dataclass(frozen=True)
class SnapshotPlotConfig:
    """One snapshot pickle to a timeline PNG and a JSON summary."""

    snapshot: str = field(metadata={"help": "the snapshot pickle (.pickle or .pickle.gz)"})
    title: str = field(default="", metadata={"help": "plot title (default: the file's name)"})
    block: int = field(default=-1, metadata={"help": "block whose saved tensors and gradients to sum (-1: middle)"})
    out_dir: str = field(default="runs/memory_timeline", metadata={"help": "folder for the PNG and JSON"})

    def __post_init__(self):
        if self.block < -1:
            raise ValueError(f"--block must be a block index or -1 (the middle one); got {self.block}")


def load_snapshot(path: str) -> dict:
    """The snapshot dict of a pickle file, gunzipped when its name ends in ``.gz``. Only open pickles you trust:
    unpickling runs code."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        snapshot = pickle.load(f)
    if not isinstance(snapshot, dict):
        raise ValueError(f"{path} holds a {type(snapshot).__name__}, not a memory snapshot dict")
    return snapshot


def main(config: SnapshotPlotConfig) -> None:
    from cs336_systems.benchmarking.memory_timeline import active_timeline, plot_timeline, summarize

    name = Path(config.snapshot).name.removesuffix(".gz").removesuffix(".pickle")
    timeline = active_timeline(load_snapshot(config.snapshot))
    summary = summarize(timeline, None if config.block < 0 else config.block)
    out = Path(config.out_dir)
    png = plot_timeline(timeline, config.title or name, out / f"{name}.png")
    write_json_atomic(out / f"{name}.json", summary)
    print(f"{png}: start {summary['start_MiB']:,.0f} MiB, peak {summary['peak_MiB']:,.0f} MiB")


if __name__ == "__main__":
    main(parse_config(SnapshotPlotConfig, description=__doc__))
