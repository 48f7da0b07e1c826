"""The training loop: AdamW (or Muon) + cosine (or trapezoidal) schedule + clipping on random windows of a uint16
token file.

Batch ``it`` is drawn from an RNG seeded with ``(seed, it)``, so a run resumed from a checkpoint sees exactly
the batches the uninterrupted run would have seen.

Wall time is measured as *training* time: the steps' own time, without validation, checkpoints and the first
:data:`WARMUP_STEPS` steps (``torch.compile`` and CUDA start-up), which are counted at the measured speed instead.
With ``time_budget`` the run times :data:`TIMING_STEPS` steps after those, fixes its length to the steps that fit,
and re-fits the length at every validation to the speed measured since the previous one, so the schedule ends at the
budget even when steps slow down after the first ones (a launch-bound optimizer, a GPU that clocks down). Runs
compared "at equal wall time" use this clock.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from cs336_basics.checkpoint import load_checkpoint, save_checkpoint
from cs336_basics.data import check_token_ids, get_batch, largest_token_id, load_tokens
from cs336_basics.loss_curve import plot_loss_curve
from cs336_basics.model import TransformerLM
from cs336_basics.muon import Muon, muon_param_groups
from cs336_basics.nn_utils import cross_entropy, gradient_clipping
from cs336_basics.optimizer import AdamW, lr_cosine_schedule, lr_trapezoidal_schedule
from cs336_basics.toolkit.device import autocast_context, select_device
from cs336_basics.toolkit.metrics import MetricsLogger, drop_records_after, read_metrics
from cs336_basics.train_config import VOCAB_FROM_TOKENIZER_OR_DATA, TrainConfig, warn_if_warmup_outlasts
from cs336_basics.vocab_files import vocab_file_size

_VALIDATION_STREAM = 2**32 - 1  # RNG stream of the fixed validation windows, apart from any iteration's stream
WARMUP_STEPS = 3  # steps left off the training clock (compilation, CUDA start-up)
TIMING_STEPS = 20  # steps timed after them to fit a time budget


def resolve_vocab_size(cfg: TrainConfig, token_files: dict[str, np.ndarray]) -> int:
    """The model's vocabulary: ``model.vocab_size`` if given, else the tokenizer's (``vocab``), else the data's
    largest id + 1 (a lower bound: ids the data never uses get no row), with a warning saying so.

    A given size must agree with the tokenizer; either must cover every id of ``token_files`` (path -> tokens).
    """
    size = cfg.model.vocab_size
    if cfg.vocab is not None:
        tokenizer_size = vocab_file_size(cfg.vocab)
        if size not in (VOCAB_FROM_TOKENIZER_OR_DATA, tokenizer_size):
            raise ValueError(
                f"model.vocab_size={size} disagrees with the tokenizer {cfg.vocab} ({tokenizer_size} ids): "
                "give one of them"
            )
        size = tokenizer_size
    if size == VOCAB_FROM_TOKENIZER_OR_DATA:
        size = max(largest_token_id(tokens) for tokens in token_files.values()) + 1
        warnings.warn(
            f"model.vocab_size not given: using the data's largest token id + 1 = {size} "
            "(pass --vocab <tokenizer vocab.json> for the tokenizer's size)",
            stacklevel=2,
        )
    for path, tokens in token_files.items():
        check_token_ids(tokens, size, path)
    return size


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, tokens: np.ndarray, cfg: TrainConfig, device: torch.device, batches: int | None = None
) -> float:
    """Mean loss over fixed random windows (the same windows at every evaluation, and for every batch size: a
    longer final evaluation extends the same sequence of windows)."""
    rng = np.random.default_rng((cfg.seed, _VALIDATION_STREAM))
    was_training = model.training
    model.eval()
    losses = []
    for _ in range(batches or cfg.eval_batches):
        x, y = get_batch(tokens, cfg.eval_batch_size or cfg.batch_size, cfg.model.context_length, device, rng)
        with autocast_context(device, cfg.precision):
            losses.append(cross_entropy(model(x), y))
    model.train(was_training)
    return torch.stack(losses).mean().item()


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW on every parameter, or Muon on the blocks' matrices with AdamW (``max_lr``) for the rest."""
    betas = (cfg.beta1, cfg.beta2)
    if cfg.optimizer == "muon":
        groups = muon_param_groups(model, cfg.muon_lr, cfg.max_lr, cfg.weight_decay, cfg.weight_decay)
        return Muon(groups, momentum=cfg.muon_momentum, betas=betas, eps=cfg.adam_eps)
    return AdamW(model.parameters(), lr=cfg.max_lr, betas=betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)


def learning_rate(cfg: TrainConfig, it: int, total_iters: int) -> float:
    """The schedule's learning rate at step ``it`` of a run of ``total_iters`` steps (AdamW's ``max_lr`` scale)."""
    if cfg.schedule == "trapezoidal":
        cooldown = round(cfg.cooldown_fraction * total_iters)
        return lr_trapezoidal_schedule(it, cfg.max_lr, cfg.min_lr, cfg.warmup_iters, total_iters, cooldown)
    cycle = cfg.cosine_cycle_iters if cfg.cosine_cycle_iters is not None else total_iters
    return lr_cosine_schedule(it, cfg.max_lr, cfg.min_lr, cfg.warmup_iters, cycle)


class TrainingClock:
    """Seconds of training, read at synchronising points: the first ``WARMUP_STEPS`` steps count at the speed
    measured after them, and validation or checkpoint time is paused out."""

    def __init__(self):
        self.measured = 0.0
        self.measured_steps = 0
        self.unmeasured_steps = 0
        self._started = False
        self._since: float | None = None
        self._mark = (0.0, 0)

    def steps_left(self, budget: float) -> int:
        """Steps that fit in what is left of ``budget`` at the speed measured since the previous call (at least
        one step must have been measured in between), so a run whose steps slow down still ends on time."""
        seconds, steps = self.measured - self._mark[0], self.measured_steps - self._mark[1]
        self._mark = (self.measured, self.measured_steps)
        return max(0, round((budget - self.seconds) * steps / seconds)) if seconds > 0 else 0

    def start(self, steps_before: int) -> None:
        self.unmeasured_steps, self._started = steps_before, True
        self._since = time.perf_counter()

    def pause(self, steps_done: int) -> None:
        if self._since is not None:
            self.measured += time.perf_counter() - self._since
            self.measured_steps = steps_done - self.unmeasured_steps
            self._since = None

    def resume(self) -> None:
        if self._started and self._since is None:
            self._since = time.perf_counter()

    @property
    def step_seconds(self) -> float:
        return self.measured / self.measured_steps if self.measured_steps else math.nan

    @property
    def seconds(self) -> float:
        if not self.measured_steps:
            return 0.0
        return self.measured + self.unmeasured_steps * self.step_seconds


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) and return a summary: iterations done, last losses, throughput and output paths."""
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, metrics_path = out_dir / "checkpoint.pt", out_dir / "metrics.jsonl"
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)

    train_tokens = load_tokens(cfg.train_data)
    valid_tokens = load_tokens(cfg.valid_data) if cfg.valid_data else None
    token_files = {cfg.train_data: train_tokens, **({cfg.valid_data: valid_tokens} if cfg.valid_data else {})}
    resolved = dataclasses.replace(cfg.model, vocab_size=resolve_vocab_size(cfg, token_files))
    cfg = copy.copy(cfg)  # recorded in the checkpoint and metrics with the vocabulary actually used
    cfg.model = resolved

    model = TransformerLM(cfg.model, device=device)
    optimizer = build_optimizer(model, cfg)
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    start = 0
    resumed = cfg.resume and checkpoint_path.exists()
    if resumed:
        start = load_checkpoint(checkpoint_path, model, optimizer)
        drop_records_after(metrics_path, start)

    def forward_loss(x: Tensor, y: Tensor) -> Tensor:
        """Model and loss in one compiled graph, so the loss is fused passes over the logits. Compiled apart, as
        until 2026-12-03, the loss ran a dozen eager float32 passes over the 128 x 256 x 10,000 logits: a step of
        the TinyStories model took 20.4 ms on an H200 here against 11.5 ms in ``bench_train_gpu``."""
        with autocast_context(device, cfg.precision):
            return cross_entropy(model(x), y)

    step_loss = torch.compile(forward_loss) if cfg.compile else forward_loss
    config_record = dataclasses.asdict(cfg)
    extra = {"model_config": dataclasses.asdict(cfg.model), "train_config": config_record}

    def checkpoint(iteration: int) -> None:
        save_checkpoint(model, optimizer, iteration, checkpoint_path, extra=extra)

    logger = MetricsLogger(metrics_path, resumed, cfg.wandb, cfg.wandb_project, cfg.run_name, config_record)
    tokens_per_step = cfg.batch_size * cfg.model.context_length
    total_iters, eval_interval, log_interval = cfg.max_iters, cfg.eval_interval, cfg.log_interval
    timing_done = start + WARMUP_STEPS + TIMING_STEPS
    loss_value, val_loss, tokens_per_second, lr = math.nan, None, math.nan, math.nan
    diverged = False
    clock = TrainingClock()
    started = window_start = time.perf_counter()
    window_steps = 0
    it = start
    bar = tqdm(total=total_iters, initial=start, disable=not cfg.progress, desc="train", dynamic_ncols=True)
    try:
        while it < total_iters:
            lr = learning_rate(cfg, it, total_iters)
            for group, peak in zip(optimizer.param_groups, peak_lrs):
                group["lr"] = peak * lr / cfg.max_lr
            x, y = get_batch(
                train_tokens, cfg.batch_size, cfg.model.context_length, device, np.random.default_rng((cfg.seed, it))
            )
            loss = step_loss(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = gradient_clipping(model.parameters(), cfg.grad_clip)
            optimizer.step()
            it += 1
            window_steps += 1
            bar.update(1)
            if it == start + WARMUP_STEPS:
                loss.item()  # wait for the warm-up steps before starting the clock
                clock.start(WARMUP_STEPS)
            if cfg.time_budget is not None and it == timing_done:
                loss.item()
                clock.pause(it)
                total_iters = max(it + 1, it + clock.steps_left(cfg.time_budget))
                warn_if_warmup_outlasts(cfg.warmup_iters, total_iters)
                log_interval = max(1, total_iters // 50)
                eval_interval = max(1, total_iters // cfg.evaluations) if cfg.evaluations else eval_interval
                bar.total = total_iters
                bar.write(f"{1e3 * clock.step_seconds:.1f} ms/step: {total_iters} steps fit {cfg.time_budget:.0f}s")
                clock.resume()
            out_of_time = cfg.max_seconds is not None and time.perf_counter() - started >= cfg.max_seconds
            last = it == total_iters or out_of_time
            evaluate_now = valid_tokens is not None and (it % eval_interval == 0 or last)
            save_now = it % cfg.checkpoint_interval == 0 or last
            if it % log_interval == 0 or evaluate_now or save_now:
                loss_value = loss.item()
                diverged = cfg.stop_on_divergence and not math.isfinite(loss_value)
                clock.pause(it)
                now = time.perf_counter()
                tokens_per_second = window_steps * tokens_per_step / (now - window_start)
                logger.log(
                    it,
                    train_loss=loss_value,
                    lr=lr,
                    grad_norm=grad_norm.item(),
                    tokens_per_second=tokens_per_second,
                    train_seconds=clock.seconds,
                    tokens=it * tokens_per_step,
                )
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
                if cfg.time_budget is not None and it > timing_done and evaluate_now and not last:
                    total_iters = max(it + 1, it + clock.steps_left(cfg.time_budget))  # re-fit to the recent speed
                    bar.total = total_iters
                if evaluate_now:
                    final_batches = cfg.final_eval_batches if last else None
                    val_loss = evaluate(model, valid_tokens, cfg, device, final_batches)
                    logger.log(it, val_loss=val_loss, train_seconds=clock.seconds, tokens=it * tokens_per_step)
                    bar.write(f"step {it}: train loss {loss_value:.4f}, val loss {val_loss:.4f}")
                if save_now:
                    checkpoint(it)
                window_start, window_steps = time.perf_counter(), 0
                clock.resume()
            if out_of_time:
                bar.write(f"wall-clock limit of {cfg.max_seconds:.0f}s reached after {it} iterations")
                break
            if diverged:
                bar.write(f"training loss is {loss_value} at step {it}: diverged, stopping")
                break
    finally:
        bar.close()
        logger.close()
    plot_path = plot_loss_curve(read_metrics(metrics_path), out_dir / "loss_curve.png")
    return {
        "iterations": it,
        "diverged": diverged,
        "train_loss": loss_value,
        "val_loss": val_loss,
        "tokens_per_second": tokens_per_second,
        "train_seconds": clock.seconds,
        "step_seconds": clock.step_seconds,
        "seconds": time.perf_counter() - started,
        "checkpoint": str(checkpoint_path),
        "metrics": str(metrics_path),
        "loss_curve": str(plot_path),
    }
