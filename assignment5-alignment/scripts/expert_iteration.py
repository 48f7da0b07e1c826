"""Expert iteration on math problems: sample, keep verified-correct answers, SFT on them, repeat.

Offline: uv run python assignment5-alignment/scripts/expert_iteration.py --dataset arithmetic --ei.n_ei_steps 2 \
    --ei.questions_per_step 16 --ei.rollouts_per_question 4 --ei.ei_max_tokens 128 --sft.batch_size 8 --sft.lr 1e-5
Online:  ... --policy.model Qwen/Qwen2.5-Math-1.5B --policy.dtype bfloat16 --policy.device cuda:0 \
    --policy.backend vllm --dataset gsm8k
"""

from __future__ import annotations

from cs336_alignment.training.configs import ExpertIterationRunConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(ExpertIterationRunConfig)
    from cs336_alignment.training.expert_iteration import train_expert_iteration_on_math  # torch: after --help

    train_expert_iteration_on_math(cfg)


if __name__ == "__main__":
    main()
