"""One real training run behind a ``/loss`` query: the cs336_basics TransformerLM trained on the tokens the
FLOPs buy, then evaluated on held-out tokens.

Recipe (the course's 2025 service, on our model): AdamW (β = 0.9, 0.95, weight decay 0.01), gradient clipping
at 1.0, cosine decay of the learning rate to a tenth of its peak over all steps after a short linear warm-up,
bf16 autocast on GPU. The data order is fixed: every run reads the same seeded sequence of windows from the
training split, so two configurations differ only in what they are. The reported loss is the mean
cross-entropy on a fixed held-out set taken from the end of the token file (never trained on).

:class:`ScaleConfig` shrinks a run for small machines: ``flops_scale`` multiplies the FLOPs actually trained
(the budget is still charged the nominal ``train_flops``), ``context_length`` replaces the course's 512 and
``batch_divisor`` divides the requested batch size, so a laptop CPU runs the same service at tiny budgets.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from cs336_basics.accounting import training_flops_per_token
from cs336_basics.data import check_token_ids, get_batch, load_tokens
from cs336_basics.model import TransformerLM
from cs336_basics.nn_utils import cross_entropy, gradient_clipping
from cs336_basics.optimizer import AdamW, lr_cosine_schedule
from cs336_basics.toolkit.device import autocast_context, select_device

from cs336_scaling.model_shape import flops_parameters, model_config, tokens_for
from cs336_scaling.run_spec import RunSpec


@dataclass(frozen=True)
class ScaleConfig:
    """How much smaller than the course's runs this service trains (1, 512, 1 = the course's size)."""

    flops_scale: float = 1.0
    context_length: int = 512
    batch_divisor: int = 1

    def __post_init__(self):
        if not 0 < self.flops_scale <= 1:
            raise ValueError(f"flops_scale must be in (0, 1], got {self.flops_scale}")
        if self.context_length < 2 or self.batch_divisor < 1:
            raise ValueError(f"context_length must be >= 2 and batch_divisor >= 1, got {self}")

    def batch_size(self, requested: int) -> int:
        """Sequences per step for a query asking for ``requested``."""
        return max(1, requested // self.batch_divisor)

    def tokens_per_step(self, requested: int) -> int:
        return self.batch_size(requested) * self.context_length


@dataclass(frozen=True)
class TrainingSetup:
    """Service-wide training settings, fixed at start-up; every run shares them."""

    tokens_path: str
    vocab_size: int
    scale: ScaleConfig = ScaleConfig()
    validation_fraction: float = 0.05
    eval_sequences: int = 512
    seed: int = 0
    warmup_fraction: float = 0.02
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float = 1.0
    precision: str = "auto"
    compile: bool = False  # torch.compile the training forward: fewer, fused kernels for launch-bound small models


@dataclass(frozen=True)
class RunResult:
    """What a finished run reports; ``loss`` is the held-out loss the API answers with."""

    loss: float
    final_train_loss: float
    parameters: int
    tokens: int
    steps: int
    batch_size: int
    context_length: int
    actual_flops: float
    seconds: float
    device: str


class RunTooSmall(ValueError):
    """The FLOPs buy less than one optimizer step for this model (raise ``flops_scale`` or shrink the batch)."""


def split_tokens(tokens: np.ndarray, validation_fraction: float, context_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Training head and held-out tail of the token file."""
    cut = int(len(tokens) * (1 - validation_fraction))
    train, validation = tokens[:cut], tokens[cut:]
    if len(train) <= context_length or len(validation) <= context_length:
        raise ValueError(f"{len(tokens)} tokens are too few for context {context_length} with a held-out split")
    return train, validation


@torch.no_grad()
def held_out_loss(model: TransformerLM, validation: np.ndarray, setup: TrainingSetup, device: torch.device) -> float:
    """Mean loss over the same ``eval_sequences`` windows of the held-out split for every run, spread evenly over
    the whole split so that they sample many documents rather than the first few."""
    context = setup.scale.context_length
    count = min(setup.eval_sequences, (len(validation) - 1) // context)
    starts = np.linspace(0, len(validation) - 1 - context, count).astype(np.int64)
    windows = torch.from_numpy(np.asarray(validation[starts[:, None] + np.arange(context + 1)], dtype=np.int64))
    model.eval()
    total = 0.0
    for chunk in windows.to(device).split(64):
        with autocast_context(device, setup.precision):
            logits = model(chunk[:, :-1])
        total += cross_entropy(logits.float(), chunk[:, 1:]).item() * len(chunk)
    model.train()
    return total / count


def execute_run(spec: RunSpec, setup: TrainingSetup, device: str = "auto") -> RunResult:
    """Train ``spec`` from scratch under ``setup`` and return its held-out loss."""
    started = time.perf_counter()
    torch_device = select_device(device)
    context = setup.scale.context_length
    batch_size = setup.scale.batch_size(spec.batch_size)
    cfg = model_config(spec, setup.vocab_size, context)
    tokens = tokens_for(spec.train_flops * setup.scale.flops_scale, cfg)
    steps = tokens // (batch_size * context)
    if steps < 1:
        raise RunTooSmall(
            f"{tokens} tokens are less than one batch of {batch_size}×{context} for N={flops_parameters(cfg)}"
        )
    data = load_tokens(setup.tokens_path)
    check_token_ids(data, setup.vocab_size, setup.tokens_path)
    train, validation = split_tokens(data, setup.validation_fraction, context)

    torch.manual_seed(setup.seed)
    model = TransformerLM(cfg, device=torch_device)
    forward = torch.compile(model) if setup.compile else model
    optimizer = AdamW(model.parameters(), lr=spec.learning_rate, betas=setup.betas, weight_decay=setup.weight_decay)
    warmup = int(setup.warmup_fraction * steps)
    rng = np.random.default_rng(setup.seed)
    train_loss = torch.zeros((), device=torch_device)
    for step in range(steps):
        lr = lr_cosine_schedule(step, spec.learning_rate, spec.learning_rate * setup.final_lr_fraction, warmup, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train, batch_size, context, torch_device, rng=rng)
        with autocast_context(torch_device, setup.precision):
            logits = forward(x)
        loss = cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gradient_clipping(model.parameters(), setup.max_grad_norm)
        optimizer.step()
        train_loss = loss.detach()
    final_train_loss = float(train_loss)
    if not math.isfinite(final_train_loss):
        raise FloatingPointError(f"training diverged (loss {final_train_loss}) for {spec}")
    trained_tokens = steps * batch_size * context
    return RunResult(
        loss=held_out_loss(model, validation, setup, torch_device),
        final_train_loss=final_train_loss,
        parameters=flops_parameters(cfg),
        tokens=trained_tokens,
        steps=steps,
        batch_size=batch_size,
        context_length=context,
        actual_flops=training_flops_per_token(cfg, context) * trained_tokens,
        seconds=time.perf_counter() - started,
        device=str(torch_device),
    )


def vocab_size_of(tokens_path: str | Path) -> int:
    """Smallest vocabulary covering the token file: its largest id plus one."""
    return int(load_tokens(tokens_path).max()) + 1
