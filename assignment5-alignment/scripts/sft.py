"""Supervised fine-tuning on math reasoning traces in r1_zero format, with periodic held-out evaluation.

Offline: uv run python assignment5-alignment/scripts/sft.py --dataset gsm8k --sft.sft_steps 50 --sft.batch_size 8
Online:  ... --model Qwen/Qwen2.5-Math-1.5B --dtype bfloat16 --device cuda:0 --train_size 1024 --lr 2e-5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cs336_alignment.math_data import r1_zero_prompt, r1_zero_target
from cs336_alignment.math_eval import evaluate_math, r1_zero_sampling
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_metrics
from cs336_alignment.run_setup import (
    OutputConfig,
    PolicyConfig,
    load_policy,
    load_problems,
    open_metrics,
    policy_sampler,
)
from cs336_alignment.sft_loop import SFTConfig, train_sft
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.metrics import read_metrics


@dataclass
class SFTScriptConfig:
    """SFT on r1_zero-formatted worked solutions, validated with the r1_zero reward."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(out_dir="runs/sft"))
    sft: SFTConfig = field(default_factory=SFTConfig)
    dataset: str = field(default="gsm8k", metadata={"help": "gsm8k, arithmetic, or a JSONL with worked solutions"})
    train_size: int = field(default=0, metadata={"help": "unique training examples (0: all)"})
    val_dataset: str = field(default="gsm8k", metadata={"help": "validation questions (its test split)"})
    val_size: int = field(default=256, metadata={"help": "validation questions per evaluation"})
    max_tokens: int = field(default=512, metadata={"help": "validation response length cap (tokens)"})


def main() -> None:
    cfg = parse_config(SFTScriptConfig)
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    train = [p for p in load_problems(cfg.dataset, "train", cfg.train_size, cfg.sft.seed) if p.solution]
    val = load_problems(cfg.val_dataset, "test", cfg.val_size, cfg.sft.seed)
    examples = [(r1_zero_prompt(p.question), r1_zero_target(p)) for p in train]
    out_dir = Path(cfg.output.out_dir)

    def evaluate(step: int) -> dict[str, float]:
        sampler.sync_weights(policy)
        result = evaluate_math(sampler, val, r1_zero_sampling(cfg.max_tokens))
        return {f"val_{k}": v for k, v in result.metrics.items()}

    def checkpoint(step: int) -> None:
        save_policy(policy, tokenizer, out_dir / "checkpoint")

    with open_metrics(cfg.output, "sft", cfg) as logger:
        train_sft(policy, tokenizer, examples, cfg.sft, lambda r: logger.log(**r), evaluate, checkpoint)
    plot_metrics(
        read_metrics(out_dir / "metrics.jsonl"),
        ["nll_per_token", "entropy", "val_reward"],
        out_dir / "sft.png",
        f"SFT of {cfg.policy.model}",
        labels={"nll_per_token": "loss per response token (nats)", "entropy": "entropy per response token (nats)"},
    )
    print(f"metrics: {out_dir / 'metrics.jsonl'}  plot: {out_dir / 'sft.png'}  checkpoint: {out_dir / 'checkpoint'}")


if __name__ == "__main__":
    main()
