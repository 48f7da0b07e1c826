"""Supervised fine-tuning on math reasoning traces in r1_zero format, with periodic held-out evaluation.

Offline: uv run python assignment5-alignment/scripts/sft.py --dataset gsm8k --sft.sft_steps 50 --sft.batch_size 8
Online:  ... --policy.model Qwen/Qwen2.5-Math-1.5B --policy.dtype bfloat16 --policy.device cuda:0 --train_size 1024 \
    --sft.lr 2e-5
"""

from __future__ import annotations

from cs336_alignment.training.configs import SFTRunConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(SFTRunConfig)
    from cs336_alignment.training.sft import train_sft_on_math  # torch: after --help

    train_sft_on_math(cfg)


if __name__ == "__main__":
    main()
