"""Naive (materialising) attention: the correctness reference and the benchmark baseline.

Both FlashAttention variants must compute exactly this function; it builds the full
``n_queries × n_keys`` score matrix, which is what they avoid.
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor

MASKED_SCORE = -1e6
"""Added to masked scores, as the handout's reference does (``exp`` of it is 0 in float32)."""


def causal_mask(n_queries: int, n_keys: int, device: torch.device) -> Tensor:
    """Boolean ``(n_queries, n_keys)`` mask, True where query ``i`` may attend key ``j`` (``i >= j``)."""
    return torch.arange(n_queries, device=device)[:, None] >= torch.arange(n_keys, device=device)[None, :]


def attention_scores(
    Q: Float[Tensor, "... n_q d"], K: Float[Tensor, "... n_k d"], is_causal: bool
) -> Float[Tensor, "... n_q n_k"]:
    """``Q Kᵀ / sqrt(d)`` with ``-1e6`` added where the causal mask forbids attention."""
    scores = Q @ K.transpose(-1, -2) / math.sqrt(Q.shape[-1])
    if is_causal:
        allowed = causal_mask(Q.shape[-2], K.shape[-2], Q.device)
        scores = torch.where(allowed, scores, scores + MASKED_SCORE)
    return scores


def naive_attention(
    Q: Float[Tensor, "... n_q d"], K: Float[Tensor, "... n_k d"], V: Float[Tensor, "... n_k d"], is_causal: bool = False
) -> Float[Tensor, "... n_q d"]:
    """``softmax(Q Kᵀ / sqrt(d)) V`` computed in the inputs' dtype; differentiable by autograd."""
    return torch.softmax(attention_scores(Q, K, is_causal), dim=-1) @ V


def naive_attention_with_logsumexp(
    Q: Float[Tensor, "... n_q d"], K: Float[Tensor, "... n_k d"], V: Float[Tensor, "... n_k d"], is_causal: bool = False
) -> tuple[Float[Tensor, "... n_q d"], Float[Tensor, "... n_q"]]:
    """Output and row log-sum-exp ``L_i = log Σ_j exp(S_ij)``, the quantity FlashAttention saves."""
    scores = attention_scores(Q, K, is_causal)
    return torch.softmax(scores, dim=-1) @ V, torch.logsumexp(scores, dim=-1)
