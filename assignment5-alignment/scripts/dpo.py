"""DPO on preference pairs with the supplement's Alpaca template; the reference model is the initial policy.

Online (Anthropic HH): uv run python assignment5-alignment/scripts/dpo.py --pairs hh --policy.model <sft checkpoint>
Offline (local pairs): ... --pairs my_pairs.jsonl   (records {"instruction", "chosen", "rejected"})
"""

from __future__ import annotations

from cs336_alignment.training.configs import DPORunConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(DPORunConfig)
    from cs336_alignment.training.dpo import train_dpo_on_pairs  # torch: after --help

    train_dpo_on_pairs(cfg)


if __name__ == "__main__":
    main()
