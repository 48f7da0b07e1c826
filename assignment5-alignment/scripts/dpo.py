"""DPO on preference pairs with the supplement's Alpaca template; the reference model is the initial policy.

Online (Anthropic HH): uv run python assignment5-alignment/scripts/dpo.py --pairs hh --policy.model <sft checkpoint>
Offline (local pairs): ... --pairs my_pairs.jsonl   (records {"instruction", "chosen", "rejected"})
"""

from __future__ import annotations

from cs336_alignment.training.configs import DPORunConfig
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.data_paths import SharedDataUnavailable


def main() -> None:
    cfg = parse_config(DPORunConfig)
    from cs336_alignment.training.dpo import train_dpo_on_pairs  # torch: after --help

    try:
        train_dpo_on_pairs(cfg)
    except SharedDataUnavailable as err:  # Anthropic HH offline: what to pass instead, not a traceback
        raise SystemExit(str(err)) from err


if __name__ == "__main__":
    main()
