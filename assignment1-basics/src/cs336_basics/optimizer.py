"""AdamW (decoupled weight decay) and the cosine learning-rate schedule with linear warm-up."""

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
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            by_step: dict[int, tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                bucket = by_step.setdefault(state["step"], ([], [], [], []))
                for items, item in zip(bucket, (p, p.grad, state["exp_avg"], state["exp_avg_sq"])):
                    items.append(item)
            for t, (params, grads, exp_avgs, exp_avg_sqs) in by_step.items():
                if decay:
                    torch._foreach_mul_(params, 1.0 - lr * decay)
                torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
                torch._foreach_mul_(exp_avg_sqs, beta2)
                torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
                denom = torch._foreach_sqrt(exp_avg_sqs)
                torch._foreach_add_(denom, eps)
                step_size = lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
                torch._foreach_addcdiv_(params, exp_avgs, denom, value=-step_size)
        return loss


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
