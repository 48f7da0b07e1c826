"""Compare GRPO runs (the learning-rate sweep, an ablation): one table row per run and their reward, validation,
entropy, response-length and no-signal curves overlaid. Runs on the CPU from the folders grpo_experiment wrote.

uv run python assignment5-alignment/scripts/experiments/compare_grpo_runs.py \
    --runs results/grpo/lr_1e-5 results/grpo/lr_3e-5 --name learning_rate --out_dir results/grpo
Writes <name>.md/.json and <name>.png. --at_step N adds each run's mean validation accuracy over steps N-30..N
(from step 1 when N <= 30) and its change from step 0.
"""

from __future__ import annotations

from cs336_alignment.experiments.configs import RunComparisonConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(RunComparisonConfig)
    from cs336_alignment.experiments.grpo_comparison import compare_grpo_runs  # torch: after --help

    compare_grpo_runs(cfg)


if __name__ == "__main__":
    main()
