"""Does filtering help? The assignment-1 model trained on each corpus for the same tokens, scored on clean held-out
text.

Reads ``<data>/meta.json`` and the uint16 token files that :mod:`.prepare` writes. For every token budget, arm
(``raw``, ``filtered``, ``filtered_no_quality``, any token file of ``data``) and seed: the same
:class:`TransformerLM`, optimiser and schedule, the budget's training tokens (windows drawn at random from the arm's
corpus: an arm smaller than the budget is seen more than once, reported as epochs), the loss on the first held-out
set ``evals_per_run`` times (the curve; its windows depend on the seed), and at the end the loss over every token of
each held-out set (non-overlapping windows, the same for every run). A budget is a number of tokens or a corpus
name (one epoch of that corpus).

Needs only torch, numpy, matplotlib and tqdm (and ``cs336_basics``), imported when a run starts, so ``--help`` is
instant and the GPU machine needs none of ``cs336_data``'s own dependencies.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cs336_basics.toolkit.metrics import read_metrics

from cs336_data.filter_experiment.report import write_budget_plot, write_metrics, write_results

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class FilterVsRawConfig:
    """Train the assignment-1 model on each corpus for the same tokens; score it on clean held-out text."""

    data: Path = field(
        default=Path("assignment4-data/runs/filter_vs_raw/data"),
        metadata={"help": "folder of meta.json and the token files (prepare_filter_experiment.py)"},
    )
    out_dir: Path = field(
        default=Path("assignment4-data/runs/filter_vs_raw/results"),
        metadata={"help": "results.md/json, loss_curves_<budget>.png, metrics.jsonl, runs/"},
    )
    arms: list[str] = field(
        default_factory=lambda: ["raw", "filtered", "filtered_no_quality"], metadata={"help": "corpora to train on"}
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "one run per seed and arm"})
    heldout: list[str] = field(
        default_factory=lambda: ["heldout_docs", "heldout_articles"],
        metadata={"help": "held-out token files scored at the end (the first also gives the loss curve)"},
    )
    budgets: list[str] = field(
        default_factory=lambda: ["filtered_no_quality", "raw"],
        metadata={"help": "training tokens per run: a number, or a corpus name (one epoch of it)"},
    )
    context_length: int = field(default=256, metadata={"help": "tokens per training window"})
    d_model: int = field(default=512, metadata={"help": "model width"})
    num_layers: int = field(default=8, metadata={"help": "Transformer blocks"})
    num_heads: int = field(default=8, metadata={"help": "attention heads"})
    d_ff: int = field(default=1344, metadata={"help": "feed-forward width"})
    batch_size: int = field(default=64, metadata={"help": "windows per step"})
    max_lr: float = field(default=1e-3, metadata={"help": "peak learning rate (cosine down to a tenth)"})
    warmup_fraction: float = field(default=0.05, metadata={"help": "share of each run warming up"})
    evals_per_run: int = field(default=20, metadata={"help": "held-out evaluations per run (the loss curve)"})
    eval_batches: int = field(default=16, metadata={"help": "batches per evaluation of the curve"})
    device: str = field(default="auto", metadata={"help": "auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    max_seconds_per_run: float | None = field(
        default=None, metadata={"help": "safety stop per run (its tokens then differ)"}
    )
    progress: bool = field(default=False, metadata={"help": "progress bar per run"})

    def __post_init__(self):
        for name in ("arms", "seeds", "heldout", "budgets"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty: nothing to run")
        for budget in self.budgets:
            if budget.isdigit() and int(budget) <= 0:
                raise ValueError(f"a budget must be a positive number of tokens or a corpus name, got {budget!r}")
        for name in ("context_length", "d_model", "num_layers", "num_heads", "d_ff", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.evals_per_run <= 0 or self.eval_batches <= 0:
            raise ValueError("evals_per_run and eval_batches must be positive")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must lie in [0, 1), got {self.warmup_fraction}")
        if self.max_lr <= 0:
            raise ValueError(f"max_lr must be positive, got {self.max_lr}")

    def run_dir(self, budget: str, arm: str, seed: int) -> Path:
        return self.out_dir / "runs" / budget / f"{arm}_seed{seed}"


def budget_tokens(budget: str, meta: dict) -> int:
    """Training tokens of a budget: a number as is, a corpus name as that corpus's size."""
    if budget.isdigit():
        return int(budget)
    if budget not in meta["corpora"]:
        raise ValueError(f"budget {budget!r} is neither a number of tokens nor a corpus in meta.json")
    return meta["corpora"][budget]["tokens"]


def budget_steps(budget: str, meta: dict, batch_size: int, context_length: int) -> int:
    """Optimiser steps of a budget: its tokens in whole batches, at least one."""
    return max(1, budget_tokens(budget, meta) // (batch_size * context_length))


def heldout_loss(model: torch.nn.Module, tokens: np.ndarray, context: int, batch: int, device: torch.device) -> float:
    """Mean next-token loss over every token of ``tokens``, in non-overlapping windows (a partial tail is dropped)."""
    import numpy as np
    import torch
    from cs336_basics.nn_utils import cross_entropy
    from cs336_basics.toolkit.device import autocast_context

    windows = (len(tokens) - 1) // context
    if windows == 0:
        raise ValueError(f"held-out set of {len(tokens)} tokens is shorter than one window of {context}")
    data = torch.from_numpy(np.asarray(tokens[: windows * context + 1], dtype=np.int64))
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, windows, batch):
            rows = range(start, min(start + batch, windows))
            x = torch.stack([data[r * context : (r + 1) * context] for r in rows]).to(device)
            y = torch.stack([data[r * context + 1 : (r + 1) * context + 1] for r in rows]).to(device)
            with autocast_context(device, "auto"):
                loss = cross_entropy(model(x), y)
            total += loss.item() * x.numel()
            count += x.numel()
    return total / count


def train_arm(config: FilterVsRawConfig, meta: dict, budget: str, arm: str, seed: int, device: torch.device) -> dict:
    """One run: train on ``arm`` for the budget's tokens, then the loss on every held-out set."""
    from cs336_basics.checkpoint import load_checkpoint
    from cs336_basics.data import load_tokens
    from cs336_basics.model import ModelConfig, TransformerLM
    from cs336_basics.train import TrainConfig, train

    model_config = ModelConfig(
        vocab_size=meta["vocab_size"],
        context_length=config.context_length,
        d_model=config.d_model,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        d_ff=config.d_ff,
    )
    steps = budget_steps(budget, meta, config.batch_size, config.context_length)
    train_config = TrainConfig(
        train_data=str(config.data / f"{arm}.bin"),
        valid_data=str(config.data / f"{config.heldout[0]}.bin"),
        out_dir=str(config.run_dir(budget, arm, seed)),
        model=model_config,
        batch_size=config.batch_size,
        max_iters=steps,
        max_lr=config.max_lr,
        min_lr=config.max_lr / 10,
        warmup_iters=max(1, int(config.warmup_fraction * steps)),
        eval_interval=max(1, steps // config.evals_per_run),
        eval_batches=config.eval_batches,
        checkpoint_interval=steps,
        log_interval=min(10, steps),
        device=config.device,
        compile=config.compile,
        seed=seed,
        max_seconds=config.max_seconds_per_run,
        progress=config.progress,
    )
    started = time.perf_counter()
    summary = train(train_config)
    model = TransformerLM(model_config, device=device)
    load_checkpoint(summary["checkpoint"], model)
    corpus_tokens = meta["corpora"][arm]["tokens"]
    trained = summary["iterations"] * config.batch_size * config.context_length
    result = {
        "budget": budget,
        "arm": arm,
        "seed": seed,
        "iterations": summary["iterations"],
        "tokens_trained": trained,
        "corpus_tokens": corpus_tokens,
        "epochs": trained / corpus_tokens,
        "final_train_loss": summary["train_loss"],
        "seconds": time.perf_counter() - started,
        "tokens_per_second": summary["tokens_per_second"],
    }
    for name in config.heldout:
        held = load_tokens(config.data / f"{name}.bin")
        result[f"{name}_loss"] = heldout_loss(model, held, config.context_length, config.batch_size, device)
    Path(summary["checkpoint"]).unlink()  # 100+ MB each; the numbers are what is kept
    return result


def run_filter_vs_raw(config: FilterVsRawConfig) -> str:
    """Every budget x seed x arm; results written after each run (a call cut short keeps what it finished).
    Returns the results table (Markdown)."""
    from cs336_basics.toolkit.device import select_device

    meta_path = config.data / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no {meta_path}: run prepare_filter_experiment.py (or point --data at its data/)")
    meta = json.loads(meta_path.read_text())
    missing = [name for name in (*config.arms, *config.heldout) if not (config.data / f"{name}.bin").exists()]
    if missing:
        raise FileNotFoundError(f"no token file for {missing} in {config.data}: run prepare_filter_experiment.py")
    for budget in config.budgets:
        budget_tokens(budget, meta)  # fail before any training on a bad budget
    device = select_device(config.device)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    curves: dict[tuple[str, str, int], list[dict]] = {}
    table = ""
    for budget in config.budgets:
        for seed in config.seeds:
            for arm in config.arms:
                result = train_arm(config, meta, budget, arm, seed, device)
                results.append(result)
                print(json.dumps(result))
                curves[(budget, arm, seed)] = read_metrics(config.run_dir(budget, arm, seed) / "metrics.jsonl")
                table = write_results(config.out_dir, results, meta, config.heldout)
        tokens_per_step = config.batch_size * config.context_length
        write_budget_plot(config.out_dir, budget, curves, tokens_per_step, config.heldout[0])
    write_metrics(config.out_dir, curves)
    return table
