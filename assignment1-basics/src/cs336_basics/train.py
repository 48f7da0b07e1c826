"""The training loop: AdamW + cosine schedule + clipping on random windows of a uint16 token file.

Batch ``it`` is drawn from an RNG seeded with ``(seed, it)``, so a run resumed from a checkpoint sees exactly
the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cs336_basics.checkpoint import load_checkpoint, save_checkpoint
from cs336_basics.data import get_batch, load_tokens
from cs336_basics.device import autocast_context, select_device
from cs336_basics.metrics import MetricsLogger, drop_records_after, plot_loss_curve, read_metrics
from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.nn_utils import cross_entropy, gradient_clipping
from cs336_basics.optimizer import AdamW, lr_cosine_schedule

_VALIDATION_STREAM = 2**32 - 1  # RNG stream of the fixed validation windows, apart from any iteration's stream


@dataclass
class TrainConfig:
    """Training run configuration (every field is a command-line flag of ``scripts/train.py``)."""

    train_data: str = field(metadata={"help": "uint16 token file (.bin) to train on"})
    valid_data: str | None = field(default=None, metadata={"help": "uint16 token file for validation"})
    out_dir: str = field(default="runs/train", metadata={"help": "checkpoint, metrics.jsonl, loss_curve.png"})
    model: ModelConfig = field(default_factory=ModelConfig)
    batch_size: int = 32
    max_iters: int = 5000
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 200
    cosine_cycle_iters: int | None = field(default=None, metadata={"help": "end of the cosine (default max_iters)"})
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    log_interval: int = 10
    eval_interval: int = 500
    eval_batches: int = 20
    checkpoint_interval: int = 1000
    resume: bool = field(default=False, metadata={"help": "continue from out_dir/checkpoint.pt if it exists"})
    device: str = field(default="auto", metadata={"help": "auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 autocast on CUDA), bf16 or fp32"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    seed: int = 0
    max_seconds: float | None = field(default=None, metadata={"help": "stop (and checkpoint) after this wall time"})
    progress: bool = True
    wandb: bool = False
    wandb_project: str = "cs336-basics"
    run_name: str | None = None

    def __post_init__(self):
        if self.max_iters <= 0 or self.batch_size <= 0:
            raise ValueError("max_iters and batch_size must be positive")
        for name in ("log_interval", "eval_interval", "checkpoint_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


def _check_tokens(tokens: np.ndarray, vocab_size: int, path: str) -> None:
    """Fail early and clearly on a token file from another tokenizer (ids beyond the embedding table)."""
    sample_max = int(np.max(tokens[: 1 << 20]))
    if sample_max >= vocab_size:
        raise ValueError(f"{path} contains token id {sample_max} >= vocab_size={vocab_size}: wrong tokenizer?")


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokens: np.ndarray, cfg: TrainConfig, device: torch.device) -> float:
    """Mean loss over ``eval_batches`` fixed random windows (the same windows at every evaluation)."""
    rng = np.random.default_rng((cfg.seed, _VALIDATION_STREAM))
    was_training = model.training
    model.eval()
    losses = []
    for _ in range(cfg.eval_batches):
        x, y = get_batch(tokens, cfg.batch_size, cfg.model.context_length, device, rng)
        with autocast_context(device, cfg.precision):
            losses.append(cross_entropy(model(x), y))
    model.train(was_training)
    return torch.stack(losses).mean().item()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) and return a summary: iterations done, last losses, throughput and output paths."""
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, metrics_path = out_dir / "checkpoint.pt", out_dir / "metrics.jsonl"
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)

    train_tokens = load_tokens(cfg.train_data)
    _check_tokens(train_tokens, cfg.model.vocab_size, cfg.train_data)
    valid_tokens = load_tokens(cfg.valid_data) if cfg.valid_data else None
    if valid_tokens is not None:
        _check_tokens(valid_tokens, cfg.model.vocab_size, cfg.valid_data)

    model = TransformerLM.from_config(cfg.model, device=device)
    optimizer = AdamW(
        model.parameters(), lr=cfg.max_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, weight_decay=cfg.weight_decay
    )
    start = 0
    resumed = cfg.resume and checkpoint_path.exists()
    if resumed:
        start = load_checkpoint(checkpoint_path, model, optimizer)
        drop_records_after(metrics_path, start)
    forward = torch.compile(model) if cfg.compile else model
    config_record = dataclasses.asdict(cfg)
    extra = {"model_config": dataclasses.asdict(cfg.model), "train_config": config_record}

    def checkpoint(iteration: int) -> None:
        save_checkpoint(model, optimizer, iteration, checkpoint_path, extra=extra)

    logger = MetricsLogger(metrics_path, resumed, cfg.wandb, cfg.wandb_project, cfg.run_name, config_record)
    cycle = cfg.cosine_cycle_iters if cfg.cosine_cycle_iters is not None else cfg.max_iters
    tokens_per_step = cfg.batch_size * cfg.model.context_length
    loss_value, val_loss, tokens_per_second = math.nan, None, math.nan
    started = window_start = time.perf_counter()
    window_steps = 0
    it = start
    bar = tqdm(total=cfg.max_iters, initial=start, disable=not cfg.progress, desc="train", dynamic_ncols=True)
    try:
        while it < cfg.max_iters:
            lr = lr_cosine_schedule(it, cfg.max_lr, cfg.min_lr, cfg.warmup_iters, cycle)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = get_batch(
                train_tokens, cfg.batch_size, cfg.model.context_length, device, np.random.default_rng((cfg.seed, it))
            )
            with autocast_context(device, cfg.precision):
                loss = cross_entropy(forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = gradient_clipping(model.parameters(), cfg.grad_clip)
            optimizer.step()
            it += 1
            window_steps += 1
            bar.update(1)
            out_of_time = cfg.max_seconds is not None and time.perf_counter() - started >= cfg.max_seconds
            last = it == cfg.max_iters or out_of_time
            if it % cfg.log_interval == 0 or last:
                loss_value = loss.item()
                now = time.perf_counter()
                tokens_per_second = window_steps * tokens_per_step / (now - window_start)
                window_start, window_steps = now, 0
                logger.log(
                    it, train_loss=loss_value, lr=lr, grad_norm=grad_norm.item(), tokens_per_second=tokens_per_second
                )
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
            if valid_tokens is not None and (it % cfg.eval_interval == 0 or last):
                val_loss = evaluate(forward, valid_tokens, cfg, device)
                logger.log(it, val_loss=val_loss)
                bar.write(f"step {it}: train loss {loss_value:.4f}, val loss {val_loss:.4f}")
            if it % cfg.checkpoint_interval == 0 or last:
                checkpoint(it)
            if out_of_time:
                bar.write(f"time budget of {cfg.max_seconds:.0f}s spent after {it} iterations")
                break
    finally:
        bar.close()
        logger.close()
    plot_path = plot_loss_curve(read_metrics(metrics_path), out_dir / "loss_curve.png")
    return {
        "iterations": it,
        "train_loss": loss_value,
        "val_loss": val_loss,
        "tokens_per_second": tokens_per_second,
        "seconds": time.perf_counter() - started,
        "checkpoint": str(checkpoint_path),
        "metrics": str(metrics_path),
        "loss_curve": str(plot_path),
    }
