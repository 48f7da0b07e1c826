"""The main job (`make demo`): train a BPE tokenizer and a small LM on offline English text, on the CPU, in minutes.

    uv run python assignment1-basics/scripts/demo.py [--train_seconds 170] [--out_dir runs/demo]

Writes runs/demo/{vocab.json, merges.txt, train.bin, valid.bin, checkpoint.pt, metrics.jsonl, loss_curve.png}
and prints generated samples. No download and no course data needed: the text ships inside the gensim wheel.
"""

from __future__ import annotations

from typing import Any

from cs336_basics.demo_config import DemoConfig
from cs336_basics.toolkit.cli import parse_config


def main(cfg: DemoConfig) -> dict[str, Any]:
    from cs336_basics.demo import run_demo  # torch loads here, not at the top, so that --help answers at once

    return run_demo(cfg)


if __name__ == "__main__":
    main(parse_config(DemoConfig))
