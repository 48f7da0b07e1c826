"""expert_iteration_experiment: expert iteration on GSM8K train under several settings of samples per question (G)
and rounds, each from the same initial policy; accuracy on the fixed test subset after every round, the final
accuracy on all of it with a 95% interval.

GPU (one call; add --policy.model /tmp/a5/sft to start from an SFT checkpoint saved earlier in the lease):
    bash assignment5-alignment/scripts/gpu_run.sh expert_iteration_experiment --out_dir $OUT
CPU smoke test:
    uv run python assignment5-alignment/scripts/experiments/expert_iteration_experiment.py --settings 2x1 \
        --ei.questions_per_step 2 --ei.ei_max_tokens 8 --sft.batch_size 2 --sft.gradient_accumulation_steps 1 \
        --subset_size 2 --val_size 2 --out_dir runs/ei_smoke
Writes expert_iteration_experiment.md/.json (one row per setting), expert_iteration_experiment.png, metrics.jsonl.

A run longer than one call (the handout's 5 rounds of 1,024 questions): --state_dir saves each setting's state
after every round (a folder per setting) and the same command continues it; --ei.ei_max_seconds ends each setting's
rounds in a call after the round that passes it. A setting with rounds left reports no accuracy yet; a finished
one is reported again without loading the model:
    bash assignment5-alignment/scripts/gpu_run.sh expert_iteration_experiment --settings 8x5 \
        --ei.questions_per_step 1024 --ei.ei_max_seconds 300 --state_dir /tmp/a5/ei_state --out_dir $OUT
"""

from __future__ import annotations

from cs336_alignment.experiments.configs import ExpertIterationSweepConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(ExpertIterationSweepConfig)
    from cs336_alignment.experiments.expert_iteration_sweep import run_expert_iteration_sweep  # torch: after --help

    run_expert_iteration_sweep(cfg)


if __name__ == "__main__":
    main()
