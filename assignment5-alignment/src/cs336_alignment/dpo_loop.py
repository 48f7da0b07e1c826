"""DPO training on preference pairs with the per-instance loss, accumulating gradients over pairs."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from cs336_basics.optimizer import lr_cosine_schedule
from tqdm import tqdm

from cs336_alignment.dpo import PreferencePair, per_instance_dpo_loss
from cs336_alignment.loop_configs import DPOConfig
from cs336_alignment.optim import clip_and_step, make_optimizer, set_lr

LogFn = Callable[[dict[str, Any]], None]


@torch.no_grad()
def preference_accuracy(
    policy: torch.nn.Module, reference: torch.nn.Module, tokenizer: Any, pairs: Sequence[PreferencePair], beta: float
) -> dict[str, float]:
    """Share of pairs whose implicit reward ranks the chosen response higher (DPO loss below ``log 2``)."""
    if not pairs:
        raise ValueError("no validation pairs")
    losses = [
        float(per_instance_dpo_loss(policy, reference, tokenizer, beta, p.instruction, p.chosen, p.rejected))
        for p in pairs
    ]
    return {
        "val_accuracy": sum(loss < math.log(2) for loss in losses) / len(losses),
        "val_loss": sum(losses) / len(losses),
    }


def train_dpo(
    policy: torch.nn.Module,
    reference: torch.nn.Module,
    tokenizer: Any,
    train_pairs: Sequence[PreferencePair],
    val_pairs: Sequence[PreferencePair],
    cfg: DPOConfig,
    log: LogFn,
    checkpoint: Callable[[int], None] | None = None,
) -> None:
    """``dpo_steps`` optimiser steps of ``gradient_accumulation_steps`` pairs each, reference model frozen."""
    if not train_pairs:
        raise ValueError("no training pairs")
    reference.eval().requires_grad_(False)
    optimizer = make_optimizer(policy, cfg.lr)
    rng = random.Random(cfg.seed)
    order: list[int] = []
    policy.train()
    bar = tqdm(range(cfg.dpo_steps), desc="dpo", unit="step")
    for step in bar:
        started = time.perf_counter()
        lr = lr_cosine_schedule(step, cfg.lr, cfg.lr, cfg.warmup_steps, cfg.dpo_steps)  # warm-up, then constant
        set_lr(optimizer, lr)
        total = 0.0
        for _ in range(cfg.gradient_accumulation_steps):
            if not order:
                order = list(range(len(train_pairs)))
                rng.shuffle(order)
            pair = train_pairs[order.pop()]
            loss = per_instance_dpo_loss(
                policy, reference, tokenizer, cfg.beta, pair.instruction, pair.chosen, pair.rejected
            )
            (loss / cfg.gradient_accumulation_steps).backward()
            total += loss.item() / cfg.gradient_accumulation_steps
        grad_norm = clip_and_step(optimizer, cfg.max_grad_norm)
        record = {"step": step + 1, "loss": total, "lr": lr, "grad_norm": grad_norm}
        record["step_seconds"] = time.perf_counter() - started
        bar.set_postfix(loss=f"{total:.4f}")
        if val_pairs and (step + 1 == cfg.dpo_steps or (cfg.eval_every and (step + 1) % cfg.eval_every == 0)):
            policy.eval()
            record.update(preference_accuracy(policy, reference, tokenizer, val_pairs, cfg.beta))
            policy.train()
            if checkpoint is not None:
                checkpoint(step + 1)
        log(record)
