"""math_baseline: zero-shot accuracy on the fixed GSM8K test subset with the r1_zero and question_only prompts,
with 95% Wilson intervals, the format-vs-answer breakdown and failure examples.

GPU (one call, after the weights are carried: README "GPU experiments"):
    bash assignment5-alignment/scripts/gpu_run.sh math_baseline --out_dir $OUT
CPU smoke test:
    uv run python assignment5-alignment/scripts/experiments/math_baseline.py --subset_size 4 --max_tokens 16 \
        --out_dir runs/math_baseline_smoke
Writes math_baseline.md/.json (table, breakdown, failures), math_baseline.png, metrics.jsonl, generations.jsonl.
"""

from __future__ import annotations

from cs336_alignment.experiments.configs import MathBaselineConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(MathBaselineConfig)
    from cs336_alignment.experiments.math_baseline import run_math_baseline  # torch: after --help

    run_math_baseline(cfg)


if __name__ == "__main__":
    main()
