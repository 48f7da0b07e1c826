"""Run one of the handout's experiments as time-boxed training runs and write its table, plots and metrics.

    uv run python assignment1-basics/scripts/run_experiment.py --experiment learning_rate \\
        --corpus runs/experiment_corpus --out_dir runs/experiments --seconds 30
    # on the GPU machine (plain python3 with torch): PYTHONPATH=assignment1-basics/src python3 ... (same flags)

Experiments: learning_rate, batch_size, ablations, speedrun, main_experiment (see cs336_basics.experiments).
"""

from __future__ import annotations

from cs336_basics.experiment_config import ExperimentConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(ExperimentConfig)
    from cs336_basics.experiments import run_experiment  # torch: after --help

    run_experiment(cfg)


if __name__ == "__main__":
    main()
