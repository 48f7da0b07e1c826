"""Micro-batch steps: reduce a per-token loss to a scalar, scale for gradient accumulation, backpropagate."""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from cs336_alignment.loop_configs import LossType
from cs336_alignment.losses import compute_policy_gradient_loss, masked_mean, masked_normalize

LengthNormalization = Literal["masked_mean", "constant"]


def sft_microbatch_train_step(
    policy_log_probs: Float[Tensor, "batch seq"],
    response_mask: Tensor,
    gradient_accumulation_steps: int,
    normalize_constant: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative log-likelihood of the response tokens: per-sequence masked sum / ``normalize_constant``,
    mean over the batch, divided by ``gradient_accumulation_steps``; calls ``backward``."""
    per_sequence = masked_normalize(policy_log_probs, response_mask, normalize_constant, dim=-1)
    loss = -per_sequence.mean() / gradient_accumulation_steps
    loss.backward()
    tokens = response_mask.bool().sum()
    nll_per_token = -masked_normalize(policy_log_probs.detach(), response_mask, 1.0) / tokens.clamp(min=1)
    return loss.detach(), {"nll_per_token": nll_per_token, "response_tokens": tokens}


def grpo_microbatch_train_step(
    policy_log_probs: Float[Tensor, "batch seq"],
    response_mask: Tensor,
    gradient_accumulation_steps: int,
    loss_type: LossType,
    raw_rewards: Float[Tensor, "batch 1"] | None = None,
    advantages: Float[Tensor, "batch 1"] | None = None,
    old_log_probs: Float[Tensor, "batch seq"] | None = None,
    cliprange: float | None = None,
    length_normalization: LengthNormalization = "masked_mean",
    normalize_constant: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Policy-gradient loss per token, reduced per sequence, mean over the batch, scaled, backpropagated.

    ``length_normalization="masked_mean"`` averages over each response's tokens (the GRPO default);
    ``"constant"`` sums them and divides by ``normalize_constant`` (Dr. GRPO), so every token carries
    the same weight whatever its response's length.
    """
    per_token, metadata = compute_policy_gradient_loss(
        policy_log_probs, loss_type, raw_rewards, advantages, old_log_probs, cliprange
    )
    if length_normalization == "masked_mean":
        per_sequence = masked_mean(per_token, response_mask, dim=-1)
    elif length_normalization == "constant":
        if normalize_constant is None:
            raise ValueError('length_normalization="constant" needs normalize_constant')
        per_sequence = masked_normalize(per_token, response_mask, normalize_constant, dim=-1)
    else:
        raise ValueError(f"unknown length_normalization {length_normalization!r}")
    loss = per_sequence.mean() / gradient_accumulation_steps
    loss.backward()
    if "clipped" in metadata:
        metadata["clip_fraction"] = masked_mean(metadata["clipped"].float(), response_mask)
    return loss.detach(), metadata


def clip_fraction(metadata: dict[str, Tensor]) -> float:
    """Fraction of response tokens whose clipped term was active (0 for unclipped losses)."""
    value = metadata.get("clip_fraction")
    return float(value) if isinstance(value, torch.Tensor) else 0.0
