"""Zero-shot MMLU accuracy with the supplement's system prompt and answer parser.

uv run python assignment5-alignment/scripts/evaluate_mmlu.py --split test --limit 200 --max_tokens 32
"""

from __future__ import annotations

from cs336_alignment.evaluation.configs import MMLUEvalConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(MMLUEvalConfig)
    from cs336_alignment.evaluation.mmlu_accuracy import evaluate_mmlu_accuracy  # torch: after --help

    evaluate_mmlu_accuracy(cfg)


if __name__ == "__main__":
    main()
