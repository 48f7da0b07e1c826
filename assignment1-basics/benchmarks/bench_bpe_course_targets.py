"""The course's BPE-training time targets, measured here rather than asserted in tests (a test must not depend on
how busy the machine is).

* ``corpus.en``, vocabulary 500, ``<|endoftext|>``: under 1.5 s (the course's ``test_train_bpe_speed``);
* ``tinystories_sample_5M.txt``, vocabulary 1000, two workers: under 5 s (our own target for the 5 MB test).

Best of ``--repeats`` runs each, on an otherwise idle machine.

    uv run python assignment1-basics/benchmarks/bench_bpe_course_targets.py [--repeats 3]
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from cs336_basics.bpe import train_bpe
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.data_paths import shared_path

FIXTURES_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment1-basics/main/tests/fixtures/"
TARGETS = [  # fixture, vocab size, workers, seconds
    ("corpus.en", 500, None, 1.5),
    ("tinystories_sample_5M.txt", 1000, 2, 5.0),
]


@dataclass(frozen=True)
class CourseTargetsConfig:
    """The course's BPE-training time targets, best of a few runs each."""

    repeats: int = field(default=3, metadata={"help": "runs per target; the best counts"})

    def __post_init__(self):
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")


def main(config: CourseTargetsConfig) -> None:
    results = []
    for name, vocab_size, workers, target in TARGETS:
        path = shared_path(f"fixtures/assignment1/{name}", url=FIXTURES_URL + name)
        times = []
        for _ in range(config.repeats):
            started = time.perf_counter()
            train_bpe(path, vocab_size, ["<|endoftext|>"], num_workers=workers)
            times.append(time.perf_counter() - started)
        best = min(times)
        results.append({"fixture": name, "vocab_size": vocab_size, "seconds": round(best, 3), "target": target})
        print(f"{name}: vocab {vocab_size}, best of {config.repeats}: {best:.2f} s (target < {target} s)")
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))
    if any(r["seconds"] >= r["target"] for r in results):
        raise SystemExit("a target was missed")


if __name__ == "__main__":
    main(parse_config(CourseTargetsConfig, description=__doc__))
