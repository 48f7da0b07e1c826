"""Optimiser and gradient clipping shared by the SFT, expert-iteration, GRPO and DPO loops (their learning-rate
schedule is assignment 1's ``lr_cosine_schedule``)."""

from __future__ import annotations

import warnings

import torch


def make_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.95)
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (frozen ones are left out, so they cost no optimiser state)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    low = sorted({str(p.dtype) for p in params if p.dtype in (torch.bfloat16, torch.float16)})
    if low:
        warnings.warn(
            f"training {' and '.join(low)} weights: an AdamW update smaller than half a unit in the last place of its "
            "weight is rounded away, so at small learning rates most weights never move; keep float32 weights "
            "(--policy.dtype float32) and let bf16 autocast do the compute",
            stacklevel=2,
        )
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_and_step(optimizer: torch.optim.Optimizer, max_grad_norm: float) -> float:
    """Clip the accumulated gradients to ``max_grad_norm`` (0 disables), step, zero them; returns the norm."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if max_grad_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    else:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])) if params else torch.zeros(())
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)
