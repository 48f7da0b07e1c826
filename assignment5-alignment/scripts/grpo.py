"""GRPO on math problems with the r1_zero reward; logs reward, entropy, clip fraction, response length and
validation accuracy (JSONL, wandb when enabled) and plots them.

Offline: uv run python assignment5-alignment/scripts/grpo.py --dataset arithmetic --grpo.n_grpo_steps 10 \
    --grpo.rollout_batch_size 16 --grpo.group_size 4 --grpo.train_batch_size 16 --grpo.gradient_accumulation_steps 4 \
    --grpo.sampling_max_tokens 128 --grpo.learning_rate 2e-6
Online (handout): ... --policy.model Qwen/Qwen2.5-Math-1.5B --policy.dtype bfloat16 --policy.device cuda:0 \
    --policy.backend vllm --dataset gsm8k --grpo.loss_type grpo_clip --grpo.epochs_per_rollout_batch 2
Dr. GRPO: --no-grpo.use_std_normalization --grpo.length_normalization constant
"""

from __future__ import annotations

from cs336_alignment.training.configs import GRPORunConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(GRPORunConfig)
    from cs336_alignment.training.grpo import train_grpo_on_math  # torch: after --help

    train_grpo_on_math(cfg)


if __name__ == "__main__":
    main()
