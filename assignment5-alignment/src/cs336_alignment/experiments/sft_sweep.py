"""SFT on GSM8K train reasoning traces at several dataset sizes, each from the same initial policy; accuracy on the
fixed test subset against steps (validation on its first ``val_size`` problems, the final accuracy on all of it
with a 95% interval): what ``scripts/experiments/sft_experiment.py`` runs."""

from __future__ import annotations

import copy
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from cs336_basics.toolkit.metrics import MetricsLogger

from cs336_alignment.experiments.configs import SFTSweepConfig
from cs336_alignment.math_data import load_gsm8k, r1_zero_prompt, r1_zero_target
from cs336_alignment.math_eval import accuracy_estimates, summarize_evaluation
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_runs
from cs336_alignment.reports import write_report
from cs336_alignment.run_setup import load_policy, policy_sampler
from cs336_alignment.sft_loop import train_sft
from cs336_alignment.subset_eval import SubsetEvaluation
from cs336_alignment.tokenization import eos_text

COLUMNS = {
    "train_size": "examples",
    "steps": "steps",
    "epochs": "epochs",
    "final_loss_per_token": "loss per token (last 10 steps)",
    "reward": "test accuracy (95% CI)",
    "format_reward": "format reward (95% CI)",
    "seconds": "seconds",
}

CURVES = ["val_reward", "nll_per_token"]


def curve_labels(val_size: int | None = None) -> dict[str, str]:
    """Panel titles of SFT curves (``val_size`` None: runs merged from folders, whose validation size may differ)."""
    val = "validation accuracy" if val_size is None else f"accuracy on {val_size} test problems"
    return {"val_reward": val, "nll_per_token": "loss per response token (nats)"}


def train_one(
    cfg: SFTSweepConfig, base: torch.nn.Module, tokenizer: Any, examples: list, logger: MetricsLogger
) -> tuple[torch.nn.Module, list[dict], list[dict]]:
    """SFT of a copy of ``base`` on ``examples``: the trained policy, its step records and its final evaluation."""
    policy = copy.deepcopy(base)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    subset = SubsetEvaluation.gsm8k(sampler, cfg.subset_size, cfg.subset_seed, cfg.val_size, cfg.max_tokens)
    records: list[dict] = []

    def evaluate(step: int) -> dict[str, float]:
        sampler.sync_weights(policy)
        return subset.validate()

    def log(record: dict) -> None:
        records.append(record)
        logger.log(train_size=len(examples), **record)

    log({"step": 0, **evaluate(0)})
    train_sft(policy, tokenizer, examples, cfg.sft, log, evaluate)
    sampler.sync_weights(policy)
    return policy, records, subset.run().records


def run_sft_sweep(cfg: SFTSweepConfig) -> list[dict[str, Any]]:
    """One SFT run per training size; write ``sft_experiment.{md,json,png}`` and ``metrics.jsonl`` (every step of
    every run) to ``out_dir``, save the ``save_size`` run's policy when asked; return the table's rows."""
    out_dir = Path(cfg.out_dir)
    base, tokenizer = load_policy(cfg.policy)
    train = [p for p in load_gsm8k("train") if p.solution]
    random.Random(cfg.data_seed).shuffle(train)
    targets = [r1_zero_target(p, eos_text(tokenizer)) for p in train]
    save_size = cfg.train_sizes[-1] if cfg.save_size == -1 else cfg.save_size
    runs, rows, details = {}, [], []
    with MetricsLogger(out_dir / "metrics.jsonl") as logger:
        for size in cfg.train_sizes:
            started = time.perf_counter()
            examples = [(r1_zero_prompt(p.question), t) for p, t in zip(train, targets)][: size or None]
            policy, records, final = train_one(cfg, base, tokenizer, examples, logger)
            runs[f"{len(examples)} examples"] = records
            steps = records[-1]["step"]
            last_losses = [r["nll_per_token"] for r in records[-10:] if "nll_per_token" in r]
            estimates = accuracy_estimates(final)
            summary = {
                "train_size": len(examples),
                "steps": steps,
                "epochs": steps * cfg.sft.batch_size / len(examples),
                "final_loss_per_token": sum(last_losses) / len(last_losses),
                **summarize_evaluation(final),
                "seconds": time.perf_counter() - started,
            }
            details.append(summary)
            rows.append(summary | {k: str(e) for k, e in estimates.items()})
            print(f"{len(examples)} examples: test accuracy {estimates['reward']}")
            if cfg.save_checkpoint and size == save_size:
                save_policy(policy, tokenizer, cfg.save_checkpoint)
                print(f"saved the {len(examples)}-example policy to {cfg.save_checkpoint}")
    title = f"SFT of {cfg.policy.model} on GSM8K traces ({cfg.subset_size} test problems)"
    settings = asdict(cfg.sft) | {"max_tokens": cfg.max_tokens, "data_seed": cfg.data_seed}
    write_report(out_dir, "sft_experiment", title, rows, COLUMNS, {"runs": details, "sft": settings})
    plot_runs(runs, CURVES, out_dir / "sft_experiment.png", title, labels=curve_labels(cfg.val_size))
    print(f"table: {out_dir / 'sft_experiment.md'}  plot: {out_dir / 'sft_experiment.png'}")
    return rows
