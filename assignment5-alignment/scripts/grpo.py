"""GRPO on math problems with the r1_zero reward; logs reward, entropy, clip fraction, response length and
validation accuracy (JSONL, wandb when enabled) and plots them.

Offline: uv run python assignment5-alignment/scripts/grpo.py --dataset arithmetic --grpo.n_grpo_steps 10 \
    --grpo.rollout_batch_size 16 --grpo.group_size 4 --grpo.train_batch_size 16 --grpo.gradient_accumulation_steps 4 \
    --grpo.sampling_max_tokens 128 --grpo.learning_rate 2e-6
Online (handout): ... --model Qwen/Qwen2.5-Math-1.5B --dtype bfloat16 --device cuda:0 --backend vllm \
    --dataset gsm8k --loss_type grpo_clip --epochs_per_rollout_batch 2
Dr. GRPO: --no-use_std_normalization --length_normalization constant
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cs336_alignment.grpo_loop import GRPOConfig, train_grpo
from cs336_alignment.math_eval import evaluate_math, r1_zero_sampling
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_metrics
from cs336_alignment.rewards import r1_zero_reward_fn
from cs336_alignment.run_setup import (
    OutputConfig,
    PolicyConfig,
    load_policy,
    load_problems,
    open_metrics,
    policy_sampler,
)
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.metrics import read_metrics

PLOTTED = ["train_reward", "val_reward", "entropy", "clip_fraction", "response_tokens"]


@dataclass
class GRPOScriptConfig:
    """GRPO on math problems with the r1_zero reward, validated on held-out problems."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(out_dir="runs/grpo"))
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    dataset: str = field(default="gsm8k", metadata={"help": "gsm8k, arithmetic or a MATH-style JSONL"})
    val_dataset: str = field(default="gsm8k", metadata={"help": "validation questions (its test split)"})
    val_size: int = field(default=256, metadata={"help": "validation questions per evaluation"})


def main() -> None:
    cfg = parse_config(GRPOScriptConfig)
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    train = load_problems(cfg.dataset, "train", 0, cfg.grpo.seed)
    val = load_problems(cfg.val_dataset, "test", cfg.val_size, cfg.grpo.seed)
    out_dir = Path(cfg.output.out_dir)

    def evaluate(step: int) -> dict[str, float]:
        result = evaluate_math(sampler, val, r1_zero_sampling(cfg.grpo.sampling_max_tokens))
        return {f"val_{k}": v for k, v in result.metrics.items()}

    def checkpoint(step: int) -> None:
        save_policy(policy, tokenizer, out_dir / "checkpoint")

    with open_metrics(cfg.output, "grpo", cfg) as logger:
        logger.log(step=0, **evaluate(0))
        train_grpo(
            policy,
            tokenizer,
            sampler,
            train,
            r1_zero_reward_fn,
            cfg.grpo,
            lambda r: logger.log(**r),
            evaluate,
            checkpoint,
        )
    plot_metrics(read_metrics(out_dir / "metrics.jsonl"), PLOTTED, out_dir / "grpo.png", f"GRPO ({cfg.grpo.loss_type})")
    print(f"metrics: {out_dir / 'metrics.jsonl'}  plot: {out_dir / 'grpo.png'}  checkpoint: {out_dir / 'checkpoint'}")


if __name__ == "__main__":
    main()
