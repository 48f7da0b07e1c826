"""SFT on r1_zero-formatted worked solutions with periodic held-out validation: what ``scripts/sft.py`` runs."""

from __future__ import annotations

from pathlib import Path

from cs336_basics.toolkit.metrics import read_metrics

from cs336_alignment.math_data import r1_zero_prompt, r1_zero_target
from cs336_alignment.math_eval import evaluate_math, r1_zero_sampling
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_metrics
from cs336_alignment.run_setup import load_policy, load_problems, open_metrics, policy_sampler
from cs336_alignment.sft_loop import train_sft
from cs336_alignment.tokenization import eos_text
from cs336_alignment.training.configs import SFTRunConfig


def train_sft_on_math(cfg: SFTRunConfig) -> Path:
    """Train, validate every ``sft.eval_every`` steps, and write ``metrics.jsonl``, ``sft.png`` and
    ``checkpoint/`` under the output folder, which it returns."""
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    train = [p for p in load_problems(cfg.dataset, "train", cfg.train_size, cfg.sft.seed) if p.solution]
    val = load_problems(cfg.val_dataset, "test", cfg.val_size, cfg.sft.seed)
    examples = [(r1_zero_prompt(p.question), r1_zero_target(p, eos_text(tokenizer))) for p in train]
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
    return out_dir
