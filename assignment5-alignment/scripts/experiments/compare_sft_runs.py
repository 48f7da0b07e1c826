"""Merge SFT runs (the dataset-size sweep split across device calls) into one table and one figure of validation
accuracy and loss against steps. Runs on the CPU from the folders sft_experiment wrote.

uv run python assignment5-alignment/scripts/experiments/compare_sft_runs.py \
    --runs results/sft_experiment/size_sweep/sweep_128 results/sft_experiment/size_sweep/sweep_1024 \
    --name sweep --out_dir results/sft_experiment/size_sweep
Writes <name>.md/.json and <name>.png.
"""

from __future__ import annotations

from cs336_alignment.experiments.configs import RunComparisonConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(RunComparisonConfig)
    from cs336_alignment.experiments.sft_comparison import compare_sft_runs  # torch: after --help

    compare_sft_runs(cfg)


if __name__ == "__main__":
    main()
