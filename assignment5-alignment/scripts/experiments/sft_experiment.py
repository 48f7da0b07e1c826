"""sft_experiment: SFT on GSM8K train reasoning traces at several dataset sizes, accuracy on the fixed test subset
against steps (validation on its first --val_size problems, the final accuracy on all of it with a 95% interval).

GPU (one call; --save_checkpoint keeps one run's policy under /tmp for GRPO in a later call of the same lease):
    bash assignment5-alignment/scripts/gpu_run.sh sft_experiment --out_dir $OUT --save_checkpoint /tmp/a5/sft
CPU smoke test:
    uv run python assignment5-alignment/scripts/experiments/sft_experiment.py --train_sizes 4 8 --sft.sft_steps 2 \
        --sft.batch_size 2 --sft.gradient_accumulation_steps 1 --subset_size 2 --val_size 2 --max_tokens 8 \
        --out_dir runs/sft_smoke
Writes sft_experiment.md/.json (one row per size), sft_experiment.png, metrics.jsonl (every step of every run).
"""

from __future__ import annotations

from cs336_alignment.experiments.configs import SFTSweepConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(SFTSweepConfig)
    from cs336_alignment.experiments.sft_sweep import run_sft_sweep  # torch: after --help

    run_sft_sweep(cfg)


if __name__ == "__main__":
    main()
