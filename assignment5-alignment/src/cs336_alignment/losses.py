"""Loss functions as pure tensor functions: entropy, masked reductions, policy-gradient and DPO losses.

Nothing here touches a model or calls ``backward``; the micro-batch steps in ``train_steps`` and the
trainers compose these. Shapes: ``(batch, seq)`` per-token tensors, ``(batch, 1)`` per-sequence scalars.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from cs336_alignment.loop_configs import LOSS_TYPES, LossType


def compute_entropy(logits: Float[Tensor, "... vocab"]) -> Float[Tensor, "..."]:
    """Entropy of ``softmax(logits)`` over the last dim, ``-sum(p log p)`` with ``log p = z - logsumexp(z)``.

    Subtracting ``logsumexp`` before multiplying keeps it exact for huge logits, where the equivalent
    ``logsumexp(z) - sum(p z)`` loses everything to cancellation.
    """
    log_p = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    return -(log_p.exp() * log_p).sum(dim=-1)


def masked_normalize(tensor: Tensor, mask: Tensor, normalize_constant: float = 1.0, dim: int | None = None) -> Tensor:
    """Sum of ``tensor`` where ``mask`` is set, over ``dim`` (all elements if None), divided by a constant."""
    masked = torch.where(mask.bool(), tensor, torch.zeros_like(tensor))
    total = masked.sum() if dim is None else masked.sum(dim=dim)
    return total / normalize_constant


def masked_mean(tensor: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``tensor`` over the entries where ``mask`` is set (per slice along ``dim``, or overall)."""
    mask = mask.bool()
    masked = torch.where(mask, tensor, torch.zeros_like(tensor))
    if dim is None:
        return masked.sum() / mask.sum()
    return masked.sum(dim=dim) / mask.sum(dim=dim)


def compute_naive_policy_gradient_loss(
    raw_rewards_or_advantages: Float[Tensor, "batch 1"], policy_log_probs: Float[Tensor, "batch seq"]
) -> Float[Tensor, "batch seq"]:
    """REINFORCE per-token loss ``-A * log pi(o_t)``, the sequence's reward broadcast to every token."""
    return -raw_rewards_or_advantages * policy_log_probs


def compute_grpo_clip_loss(
    advantages: Float[Tensor, "batch 1"],
    policy_log_probs: Float[Tensor, "batch seq"],
    old_log_probs: Float[Tensor, "batch seq"],
    cliprange: float,
) -> tuple[Float[Tensor, "batch seq"], dict[str, Tensor]]:
    """PPO-style clipped objective: ``-min(r A, clip(r, 1-eps, 1+eps) A)`` with ``r = pi / pi_old`` per token.

    ``metadata["clipped"]`` marks tokens where the clipped term was strictly the smaller one (the
    gradient through them is zero), which is what the clip fraction counts.
    """
    ratio = torch.exp(policy_log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange) * advantages
    loss = -torch.minimum(unclipped, clipped)
    return loss, {"clipped": clipped < unclipped, "ratio": ratio.detach()}


def compute_grpo_no_clip_loss(
    advantages: Float[Tensor, "batch 1"],
    policy_log_probs: Float[Tensor, "batch seq"],
    old_log_probs: Float[Tensor, "batch seq"],
) -> tuple[Float[Tensor, "batch seq"], dict[str, Tensor]]:
    """The importance-weighted loss ``-(pi / pi_old) A`` without clipping (the clip ablation)."""
    ratio = torch.exp(policy_log_probs - old_log_probs)
    return -ratio * advantages, {"ratio": ratio.detach()}


def compute_policy_gradient_loss(
    policy_log_probs: Float[Tensor, "batch seq"],
    loss_type: LossType,
    raw_rewards: Float[Tensor, "batch 1"] | None = None,
    advantages: Float[Tensor, "batch 1"] | None = None,
    old_log_probs: Float[Tensor, "batch seq"] | None = None,
    cliprange: float | None = None,
) -> tuple[Float[Tensor, "batch seq"], dict[str, Tensor]]:
    """Dispatch on ``loss_type``; raises ``ValueError`` when an argument that type needs is missing."""

    def need(name: str, value):
        if value is None:
            raise ValueError(f"loss_type={loss_type!r} needs {name}")
        return value

    if loss_type == "no_baseline":
        return compute_naive_policy_gradient_loss(need("raw_rewards", raw_rewards), policy_log_probs), {}
    if loss_type == "reinforce_with_baseline":
        return compute_naive_policy_gradient_loss(need("advantages", advantages), policy_log_probs), {}
    if loss_type == "grpo_clip":
        return compute_grpo_clip_loss(
            need("advantages", advantages),
            policy_log_probs,
            need("old_log_probs", old_log_probs),
            need("cliprange", cliprange),
        )
    if loss_type == "grpo_no_clip":
        return compute_grpo_no_clip_loss(
            need("advantages", advantages), policy_log_probs, need("old_log_probs", old_log_probs)
        )
    raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")


def dpo_loss(
    policy_chosen_logp: Tensor,
    policy_rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    beta: float,
) -> Tensor:
    """DPO: ``-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))`` on sequence log-probabilities."""
    margin = (policy_chosen_logp - ref_chosen_logp) - (policy_rejected_logp - ref_rejected_logp)
    return -F.logsigmoid(beta * margin)
