"""GRPO on math problems with the r1_zero reward, validated on held-out problems: what ``scripts/grpo.py`` runs."""

from __future__ import annotations

from pathlib import Path

from cs336_basics.toolkit.metrics import read_metrics

from cs336_alignment.grpo_loop import train_grpo
from cs336_alignment.math_eval import evaluate_math, prompt_style, r1_zero_sampling
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_metrics
from cs336_alignment.run_setup import load_policy, load_problems, open_metrics, policy_sampler
from cs336_alignment.training.configs import GRPORunConfig

PLOTTED = ["train_reward", "val_reward", "entropy", "clip_fraction", "response_tokens"]


def train_grpo_on_math(cfg: GRPORunConfig) -> Path:
    """Validate, train, and write ``metrics.jsonl`` (reward, entropy, clip fraction, response length, validation
    accuracy), ``grpo.png`` and ``checkpoint/`` under the output folder, which it returns."""
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    train = load_problems(cfg.dataset, "train", 0, cfg.grpo.seed)
    val = load_problems(cfg.val_dataset, "test", cfg.val_size, cfg.grpo.seed)
    out_dir = Path(cfg.output.out_dir)

    def evaluate(step: int) -> dict[str, float]:
        sampler.sync_weights(policy)  # vLLM holds its own copy; validation comes after the step's updates
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
            prompt_style("r1_zero"),
            cfg.grpo,
            lambda r: logger.log(**r),
            evaluate,
            checkpoint,
        )
    plot_metrics(read_metrics(out_dir / "metrics.jsonl"), PLOTTED, out_dir / "grpo.png", f"GRPO ({cfg.grpo.loss_type})")
    print(f"metrics: {out_dir / 'metrics.jsonl'}  plot: {out_dir / 'grpo.png'}  checkpoint: {out_dir / 'checkpoint'}")
    return out_dir
