"""AdamW (decoupled weight decay), and the learning-rate schedules: cosine, and trapezoidal (warm-up, constant,
linear cool-down)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), in the handout's form.

    Per parameter, with step ``t`` from 1: ``θ ← θ − lr·λ·θ`` (decay first, as ``torch.optim.AdamW``),
    ``m ← β₁m + (1−β₁)g``, ``v ← β₂v + (1−β₂)g²``, ``θ ← θ − lr·sqrt(1−β₂ᵗ)/(1−β₁ᵗ) · m / (sqrt(v) + eps)``.
    The update runs as multi-tensor (``torch._foreach_*``) kernels over all parameters sharing a step count:
    a handful of launches per step instead of ~10 per parameter. State holds only tensors and an int step,
    so checkpoints load with ``torch.load(weights_only=True)``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"eps and weight_decay must be >= 0, got eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("AdamW does not support sparse gradients")
            adamw_step_(self.state, params, group["lr"], group["betas"], group["eps"], group["weight_decay"])
        return loss


def adamw_step_(
    state: dict, params: list[Tensor], lr: float, betas: tuple[float, float], eps: float, weight_decay: float
) -> None:
    """AdamW on ``params`` (which have gradients), creating their moments in the optimizer ``state`` on first use.
    Parameters are bucketed by step count (equal unless some were frozen for a while)."""
    by_step: dict[int, tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]] = {}
    for p in params:
        p_state = state[p]
        if not p_state:
            p_state["step"] = 0
            p_state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            p_state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        p_state["step"] += 1
        bucket = by_step.setdefault(p_state["step"], ([], [], [], []))
        for items, item in zip(bucket, (p, p.grad, p_state["exp_avg"], p_state["exp_avg_sq"])):
            items.append(item)
    for t, (ps, grads, exp_avgs, exp_avg_sqs) in by_step.items():
        adamw_update_(ps, grads, exp_avgs, exp_avg_sqs, t, lr, betas, eps, weight_decay)


def adamw_update_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> None:
    """One AdamW update, in place, of parameters that all sit at ``step`` (from 1), as multi-tensor kernels."""
    beta1, beta2 = betas
    if weight_decay:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denom, eps)
    step_size = lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
    torch._foreach_addcdiv_(params, exp_avgs, denom, value=-step_size)


def lr_cosine_schedule(
    it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int, cosine_cycle_iters: int
) -> float:
    """Linear warm-up to ``max`` over ``warmup_iters``, cosine decay to ``min`` at ``cosine_cycle_iters``, then
    ``min``. Python floats throughout (float32 would miss the reference by more than 1e-7)."""
    if it < warmup_iters:
        return it / warmup_iters * max_learning_rate
    if it <= cosine_cycle_iters:
        progress = (it - warmup_iters) / max(cosine_cycle_iters - warmup_iters, 1)
        return min_learning_rate + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_learning_rate - min_learning_rate)
    return min_learning_rate


def lr_trapezoidal_schedule(
    it: int,
    max_learning_rate: float,
    min_learning_rate: float,
    warmup_iters: int,
    total_iters: int,
    cooldown_iters: int,
) -> float:
    """Warm-up-stable-decay: linear warm-up to ``max``, constant, then a linear cool-down to ``min`` over the last
    ``cooldown_iters`` of ``total_iters`` (modded-nanogpt's schedule; the cool-down is where the loss drops)."""
    if it < warmup_iters:
        return it / warmup_iters * max_learning_rate
    cooldown_start = total_iters - cooldown_iters
    if it < cooldown_start:
        return max_learning_rate
    progress = min((it - cooldown_start) / max(cooldown_iters, 1), 1.0)
    return max_learning_rate + progress * (min_learning_rate - max_learning_rate)
