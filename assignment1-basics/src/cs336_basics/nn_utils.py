"""Loss and gradient utilities for training: numerically stable cross-entropy and global-norm clipping."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from jaxtyping import Float, Int
from torch import Tensor


def cross_entropy(logits: Float[Tensor, "... vocab"], targets: Int[Tensor, "..."]) -> Float[Tensor, ""]:
    """Mean of ``logsumexp(o) - o[target]`` over all positions.

    Computed from max-shifted logits (never ``log(softmax)``) and in at least float32, so bf16 logits from
    autocast and logits of magnitude 1e3+ both give accurate losses.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    log_normaliser = shifted.exp().sum(dim=-1).log()
    target_logit = shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (log_normaliser - target_logit).mean()


def gradient_clipping(parameters: Iterable[torch.nn.Parameter], max_l2_norm: float, eps: float = 1e-6) -> Tensor:
    """Scale all gradients in place so their joint L2 norm is at most ``max_l2_norm``; return the norm before.

    Like ``torch.nn.utils.clip_grad_norm_``: factor ``max / (norm + eps)`` clamped at 1, applied
    unconditionally so the GPU never has to sync to decide whether to clip.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.detach(), dtype=torch.float32) for g in grads])
    )
    scale = (max_l2_norm / (total_norm + eps)).clamp(max=1.0)
    for g in grads:
        g.detach().mul_(scale.to(g.device, g.dtype))
    return total_norm
