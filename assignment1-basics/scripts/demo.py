"""The main job (`make demo`): train a BPE tokenizer and a small LM on offline English text, on the CPU, in minutes.

    uv run python assignment1-basics/scripts/demo.py [--train_seconds 170] [--out_dir runs/demo]

Writes runs/demo/{vocab.json, merges.txt, train.bin, valid.bin, checkpoint.pt, metrics.jsonl, loss_curve.png}
and prints generated samples. No download and no course data needed: the text ships inside the gensim wheel.
"""

from __future__ import annotations

from cs336_basics.demo import DemoConfig, run_demo
from cs336_basics.toolkit.cli import parse_config

if __name__ == "__main__":
    run_demo(parse_config(DemoConfig))
