"""grpo_experiment: one GRPO run on GSM8K train (a point of the learning-rate sweep or one ablation), evaluated on
the fixed test subset before and after (paired 95% interval of the change) and validated along the way; logs the
reward, entropy, response length and the learning-signal diagnostics (groups with equal rewards, within-group
reward spread) of every step.

GPU (one call each; from an SFT checkpoint saved earlier in the lease: --policy.model /tmp/a5/sft):
    bash assignment5-alignment/scripts/gpu_run.sh grpo_experiment --out_dir $OUT --grpo.learning_rate 1e-5 \
        --grpo.max_seconds 420
Ablations: --grpo.loss_type no_baseline | --grpo.length_normalization constant | --no-grpo.use_std_normalization |
    off-policy: --grpo.epochs_per_rollout_batch 4 --grpo.train_batch_size 64 --grpo.gradient_accumulation_steps 4 \
    --grpo.loss_type grpo_clip (or grpo_no_clip)
Across calls (the handout's 200 steps do not fit in one): add --state_dir /tmp/a5/state_<run> and repeat the same
command; each call trains until --grpo.max_seconds, saves the state, and writes the report of the steps so far.
Then scripts/experiments/compare_grpo_runs.py overlays the runs. CPU smoke test:
    uv run python assignment5-alignment/scripts/experiments/grpo_experiment.py --grpo.n_grpo_steps 1 \
        --grpo.rollout_batch_size 4 --grpo.group_size 2 --grpo.train_batch_size 4 --grpo.gradient_accumulation_steps 2 \
        --grpo.sampling_max_tokens 8 --subset_size 2 --val_size 2 --out_dir runs/grpo_smoke
Writes grpo.md/.json (summary row with diagnostics), grpo.png, metrics.jsonl (every step), generations.jsonl
(the final evaluation).
"""

from __future__ import annotations

from cs336_alignment.experiments.configs import GRPOExperimentConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(GRPOExperimentConfig)
    from cs336_alignment.experiments.grpo_run import run_grpo_experiment  # torch: after --help

    run_grpo_experiment(cfg)


if __name__ == "__main__":
    main()
