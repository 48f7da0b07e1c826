"""Group-relative advantages for GRPO: rewards normalised within each group of responses to one prompt."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor


def compute_group_normalized_rewards(
    reward_fn: Callable[[str, str], dict[str, float]],
    rollout_responses: Sequence[str],
    repeated_ground_truths: Sequence[str],
    group_size: int,
    advantage_eps: float,
    normalize_by_std: bool,
) -> tuple[Float[Tensor, " rollouts"], Float[Tensor, " rollouts"], dict[str, float]]:
    """Score every response, then ``A = r - mean_group(r)`` (divided by ``std_group(r) + eps`` when asked).

    Responses come in consecutive groups of ``group_size`` (one group per prompt). The standard
    deviation is PyTorch's unbiased one, as in DeepSeekMath; Dr. GRPO drops it (``normalize_by_std=False``)
    so that easy or hopeless questions are not up-weighted.
    """
    if len(rollout_responses) != len(repeated_ground_truths):
        raise ValueError(f"{len(rollout_responses)} responses but {len(repeated_ground_truths)} ground truths")
    if group_size < 1 or len(rollout_responses) % group_size:
        raise ValueError(f"{len(rollout_responses)} responses do not split into groups of {group_size}")
    scores = [reward_fn(r, g) for r, g in zip(rollout_responses, repeated_ground_truths)]
    raw_rewards = torch.tensor([s["reward"] for s in scores], dtype=torch.float32)
    grouped = raw_rewards.view(-1, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if normalize_by_std:
        centered = centered / (grouped.std(dim=1, keepdim=True) + advantage_eps)
    advantages = centered.reshape(-1)
    metadata = {
        "reward_mean": raw_rewards.mean().item(),
        "reward_std": raw_rewards.std().item() if len(raw_rewards) > 1 else 0.0,
        "reward_max": raw_rewards.max().item(),
        "reward_min": raw_rewards.min().item(),
        "format_reward_mean": sum(s.get("format_reward", 0.0) for s in scores) / len(scores),
        "answer_reward_mean": sum(s.get("answer_reward", 0.0) for s in scores) / len(scores),
        "frac_groups_all_same": (grouped.std(dim=1) == 0).float().mean().item() if group_size > 1 else 1.0,
        "group_reward_std_mean": grouped.std(dim=1).mean().item() if group_size > 1 else 0.0,
    }
    return advantages, raw_rewards, metadata
