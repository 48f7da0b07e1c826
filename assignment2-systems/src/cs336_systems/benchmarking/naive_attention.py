"""Swap the model's fused SDPA for the from-scratch attention, with NVTX ranges around its three stages.

The handout profiles attention as scores (QKᵀ), softmax and the weighted sum of values; with the fused
kernel those stages are invisible in nsys, and its memory (the seq × seq score matrices) is missing from
the memory profile. This keeps the model's projections and RoPE and replaces only the attention core.
"""

import math
import types
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from cs336_basics.layers import softmax
from cs336_basics.model import MultiHeadSelfAttention, TransformerLM
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

STAGES = ("computing attention scores", "computing softmax", "final matmul")
"""The names of the three ranges, in order: QKᵀ with scaling and the causal mask, softmax, and the weighted sum."""


def annotated_causal_attention(
    q: Float[Tensor, "... queries d"],
    k: Float[Tensor, "... keys d"],
    v: Float[Tensor, "... keys d"],
    annotate: Callable[[str], AbstractContextManager],
) -> Float[Tensor, "... queries d"]:
    """softmax(causal(QKᵀ/√d)) V, materialising the score matrix, one named range per stage."""
    scores_stage, softmax_stage, matmul_stage = STAGES
    with annotate(scores_stage):
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        n_queries, n_keys = scores.shape[-2:]
        future = torch.ones(n_queries, n_keys, dtype=torch.bool, device=q.device).triu(n_keys - n_queries + 1)
        scores = scores.masked_fill(future, float("-inf"))
    with annotate(softmax_stage):
        probs = softmax(scores, dim=-1)
    with annotate(matmul_stage):
        return probs @ v


def use_naive_attention(model: TransformerLM, annotate: Callable[[str], AbstractContextManager]) -> None:
    """Make every block of ``model`` compute attention with :func:`annotated_causal_attention`
    (training-style calls only: no KV cache, no padding mask)."""

    def forward(self: MultiHeadSelfAttention, x, token_positions=None, kv_cache=None, attention_mask=None):
        if kv_cache is not None or attention_mask is not None:
            raise ValueError("the naive benchmarking attention supports neither a KV cache nor padding masks")
        q, k, v = (
            rearrange(proj(x), "... s (h d) -> ... h s d", h=self.num_heads)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        if self.rope is not None:
            if token_positions is None:
                token_positions = torch.arange(x.shape[-2], device=x.device)
            positions = token_positions.unsqueeze(-2)
            q, k = self.rope(q, positions), self.rope(k, positions)
        out = annotated_causal_attention(q, k, v, annotate)
        return self.output_proj(rearrange(out, "... h s d -> ... s (h d)"))

    for block in model.layers:
        block.attn.forward = types.MethodType(forward, block.attn)
