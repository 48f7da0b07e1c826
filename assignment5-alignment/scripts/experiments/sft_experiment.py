"""sft_experiment: SFT on GSM8K train reasoning traces at several dataset sizes, accuracy on the fixed test subset
against steps (validation on its first --val_size problems, the final accuracy on all of it with a 95% interval).

GPU (one call; --save_checkpoint keeps one run's policy under /tmp for GRPO in a later call of the same lease):
    bash assignment5-alignment/scripts/gpu_run.sh sft_experiment --out_dir $OUT --save_checkpoint /tmp/a5/sft
CPU smoke test:
    uv run python assignment5-alignment/scripts/experiments/sft_experiment.py --train_sizes 4 8 --sft.sft_steps 2 \
        --sft.batch_size 2 --sft.gradient_accumulation_steps 1 --subset_size 2 --val_size 2 --max_tokens 8 \
        --out_dir runs/sft_smoke
Writes sft_experiment.md/.json (one row per size), sft_experiment.png, metrics.jsonl (every step of every run).
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from cs336_alignment.math_data import load_gsm8k, r1_zero_prompt, r1_zero_target
from cs336_alignment.math_eval import accuracy_estimates, summarize_evaluation
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_runs
from cs336_alignment.reports import write_report
from cs336_alignment.run_setup import PolicyConfig, load_policy, policy_sampler
from cs336_alignment.sft_loop import SFTConfig, train_sft
from cs336_alignment.subset_eval import SubsetEvaluation
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.metrics import MetricsLogger

COLUMNS = {
    "train_size": "examples",
    "steps": "steps",
    "epochs": "epochs",
    "final_loss_per_token": "loss per token (last 10 steps)",
    "reward": "test accuracy (95% CI)",
    "format_reward": "format reward (95% CI)",
    "seconds": "seconds",
}


@dataclass
class SFTExperimentConfig:
    """SFT on GSM8K reasoning traces at several dataset sizes, each run from the same initial policy."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sft: SFTConfig = field(
        default_factory=lambda: SFTConfig(
            sft_steps=200, batch_size=32, gradient_accumulation_steps=2, lr=2e-5, warmup_steps=10, eval_every=50
        )
    )
    out_dir: str = field(default="runs/sft_experiment", metadata={"help": "folder for the table, plot and JSONL"})
    train_sizes: list[int] = field(
        default_factory=lambda: [128, 256, 512, 1024, 0],
        metadata={"help": "unique training examples of each run (0: all 7,473)"},
    )
    data_seed: int = field(default=0, metadata={"help": "shuffle of GSM8K train; each size takes a prefix"})
    subset_size: int = field(default=500, metadata={"help": "fixed GSM8K test subset for the final accuracy"})
    subset_seed: int = field(default=0, metadata={"help": "seed of the subset rule (0: the committed subset)"})
    val_size: int = field(default=200, metadata={"help": "first N subset problems for intermediate evaluations"})
    max_tokens: int = field(default=512, metadata={"help": "evaluation response length cap (tokens)"})
    save_checkpoint: str = field(default="", metadata={"help": "save the policy of the --save_size run here"})
    save_size: int = field(default=-1, metadata={"help": "train size whose policy is saved (-1: the last listed)"})


def train_one(
    cfg: SFTExperimentConfig, base: torch.nn.Module, tokenizer: Any, examples: list, logger: MetricsLogger
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


def main() -> None:
    cfg = parse_config(SFTExperimentConfig)
    out_dir = Path(cfg.out_dir)
    base, tokenizer = load_policy(cfg.policy)
    train = [p for p in load_gsm8k("train") if p.solution]
    random.Random(cfg.data_seed).shuffle(train)
    save_size = cfg.train_sizes[-1] if cfg.save_size == -1 else cfg.save_size
    runs, rows, details = {}, [], []
    with MetricsLogger(out_dir / "metrics.jsonl") as logger:
        for size in cfg.train_sizes:
            started = time.perf_counter()
            examples = [(r1_zero_prompt(p.question), r1_zero_target(p)) for p in train[: size or None]]
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
    plot_runs(
        runs,
        ["val_reward", "nll_per_token"],
        out_dir / "sft_experiment.png",
        title,
        labels={
            "val_reward": f"accuracy on {cfg.val_size} test problems",
            "nll_per_token": "loss per response token (nats)",
        },
    )
    print(f"table: {out_dir / 'sft_experiment.md'}  plot: {out_dir / 'sft_experiment.png'}")


if __name__ == "__main__":
    main()
