"""Expert iteration on math problems: sample, keep verified-correct answers, SFT on them, repeat.

Offline: uv run python assignment5-alignment/scripts/expert_iteration.py --dataset arithmetic --ei.n_ei_steps 2 \
    --ei.questions_per_step 16 --ei.rollouts_per_question 4 --ei.ei_max_tokens 128 --sft.batch_size 8 --sft.lr 1e-5
Online:  ... --model Qwen/Qwen2.5-Math-1.5B --dtype bfloat16 --device cuda:0 --backend vllm --dataset gsm8k
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cs336_alignment.expert_iteration import ExpertIterationConfig, run_expert_iteration
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
from cs336_alignment.sft_loop import SFTConfig
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.metrics import read_metrics


@dataclass
class ExpertIterationScriptConfig:
    """Expert iteration on math problems with the r1_zero reward as the verifier."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(out_dir="runs/expert_iteration"))
    ei: ExpertIterationConfig = field(default_factory=ExpertIterationConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    dataset: str = field(default="gsm8k", metadata={"help": "training questions: gsm8k, arithmetic or a JSONL"})
    val_dataset: str = field(default="gsm8k", metadata={"help": "validation questions (its test split)"})
    val_size: int = field(default=256, metadata={"help": "validation questions evaluated after each round"})


def main() -> None:
    cfg = parse_config(ExpertIterationScriptConfig)
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    train = load_problems(cfg.dataset, "train", 0, cfg.ei.ei_seed)
    val = load_problems(cfg.val_dataset, "test", cfg.val_size, cfg.ei.ei_seed)
    out_dir = Path(cfg.output.out_dir)

    def evaluate(step: int) -> dict[str, float]:
        sampler.sync_weights(policy)
        result = evaluate_math(sampler, val, r1_zero_sampling(cfg.ei.ei_max_tokens))
        return {f"val_{k}": v for k, v in result.metrics.items()}

    def checkpoint(step: int) -> None:
        save_policy(policy, tokenizer, out_dir / "checkpoint")

    with open_metrics(cfg.output, "expert_iteration", cfg) as logger:
        logger.log(step=0, **evaluate(0))
        run_expert_iteration(
            policy,
            tokenizer,
            sampler,
            train,
            r1_zero_reward_fn,
            cfg.ei,
            cfg.sft,
            lambda r: logger.log(**r),
            evaluate,
            checkpoint,
        )
    records = read_metrics(out_dir / "metrics.jsonl")
    plot_metrics(records, ["loss", "entropy", "val_reward"], out_dir / "expert_iteration.png", "Expert iteration")
    print(f"metrics: {out_dir / 'metrics.jsonl'}  plot: {out_dir / 'expert_iteration.png'}")


if __name__ == "__main__":
    main()
