"""Offline demo: SFT then GRPO on GSM8K-style problems; prints held-out reward before and after each stage.

uv run python assignment5-alignment/scripts/demo.py [--out_dir runs/alignment_demo] [--grpo_steps 20]
"""

from __future__ import annotations

from cs336_alignment.demo_config import DemoConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(DemoConfig)
    from cs336_alignment.demo import run_demo  # torch: after --help

    summary = run_demo(cfg)
    for stage in ("before", "after_sft", "after_grpo"):
        metrics = summary[stage]
        print(
            f"{stage:>10}: held-out reward {metrics['heldout_reward']:.3f}  "
            f"format {metrics['heldout_format_reward']:.3f}  answer {metrics['heldout_answer_reward']:.3f}"
        )
    print(f"plot: {cfg.out_dir}/demo.png  metrics: {cfg.out_dir}/metrics.jsonl  ({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
