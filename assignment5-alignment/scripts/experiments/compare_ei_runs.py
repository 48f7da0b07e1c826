"""Merge expert-iteration runs (settings run as separate processes) into one table and one figure of validation
accuracy, the entropy and loss of the policy on its kept responses, and the share of rollouts kept, against SFT
steps. Runs on the CPU from the folders expert_iteration_experiment wrote.

uv run python assignment5-alignment/scripts/experiments/compare_ei_runs.py \
    --runs results/expert_iteration/ei_4x3 results/expert_iteration/ei_8x3 \
    --name expert_iteration --out_dir results/expert_iteration
Writes <name>.md/.json and <name>.png.
"""

from __future__ import annotations

from cs336_alignment.experiments.configs import RunComparisonConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(RunComparisonConfig)
    from cs336_alignment.experiments.ei_comparison import compare_ei_runs  # torch: after --help

    compare_ei_runs(cfg)


if __name__ == "__main__":
    main()
