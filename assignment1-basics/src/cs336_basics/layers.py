"""The Transformer's building blocks, written from tensor operations (no ``torch.nn`` layers or functionals).

Weights use PyTorch's ``(out, in)`` layout and the handout's initialisation, so state dicts load interchangeably
with the course's reference model. Every module works on any number of leading dimensions.
"""

from __future__ import annotations

import math

import torch
from einops import einsum, rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn


def _truncated_normal(shape: tuple[int, ...], std: float, device=None, dtype=None) -> Tensor:
    """N(0, std²) clipped at ±3σ: the handout's initialisation for every weight matrix."""
    weight = torch.empty(shape, device=device, dtype=dtype)
    return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3 * std, b=3 * std)


class Linear(nn.Module):
    """``y = x Wᵀ`` without bias; ``W`` is ``(out_features, in_features)``, std ``sqrt(2 / (in + out))``."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        std = math.sqrt(2.0 / (in_features + out_features))
        self.weight = nn.Parameter(_truncated_normal((out_features, in_features), std, device, dtype))

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        return x @ self.weight.T

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Embedding(nn.Module):
    """Lookup table ``(num_embeddings, embedding_dim)``, initialised N(0, 1) clipped at ±3."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = nn.Parameter(_truncated_normal((num_embeddings, embedding_dim), 1.0, device, dtype))

    def forward(self, token_ids: Int[Tensor, "..."]) -> Float[Tensor, "... d_model"]:
        return self.weight[token_ids]

    def extra_repr(self) -> str:
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + eps) * g``, computed in float32 (squares overflow/underflow in half precision)."""

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        in_dtype = x.dtype
        x = x.float()
        normed = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (normed * self.weight).to(in_dtype)


def silu(x: Tensor) -> Tensor:
    """``x · sigmoid(x)``."""
    return x * torch.sigmoid(x)


class SwiGLU(nn.Module):
    """Gated feed-forward ``w2(silu(w1 x) ⊙ w3 x)``; ``d_ff`` is explicit (the handout rounds 8/3·d_model)."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device, dtype)
        self.w2 = Linear(d_ff, d_model, device, dtype)
        self.w3 = Linear(d_model, d_ff, device, dtype)

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        return self.w2(silu(self.w1(x)) * self.w3(x))


class FeedForward(nn.Module):
    """Ungated feed-forward ``w2(act(w1 x))`` with ``act`` = SiLU (the handout's swiglu_ablation) or ReLU²
    (``relu(x)²``, Primer / modded-nanogpt). Two matrices instead of three: match SwiGLU's parameters with
    ``d_ff = 3/2 ·`` SwiGLU's ``d_ff``."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "silu", device=None, dtype=None):
        super().__init__()
        if activation not in ("silu", "relu2"):
            raise ValueError(f"activation must be 'silu' or 'relu2', got {activation!r}")
        self.activation = activation
        self.w1 = Linear(d_model, d_ff, device, dtype)
        self.w2 = Linear(d_ff, d_model, device, dtype)

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        hidden = self.w1(x)
        hidden = silu(hidden) if self.activation == "silu" else torch.relu(hidden).square()
        return self.w2(hidden)


class RotaryPositionalEmbedding(nn.Module):
    """RoPE: rotate each interleaved pair ``(x[2k], x[2k+1])`` by ``position · theta^(-2k/d_k)``.

    With ``half_split`` the pairs are ``(x[k], x[k + d_k/2])`` instead (GPT-NeoX's layout): the same rotation of
    a fixed permutation of each head's dimensions, so a model trained from scratch computes the same family of
    functions, but every load and store is a contiguous half of the head, which fused kernels handle better
    than interleaved pairs. The handout's (and the adapters') RoPE is the interleaved one.

    The cos/sin tables cover positions ``0 … max_seq_len-1`` and are indexed by position (not sliced), so
    arbitrary per-row positions work (left-padded batches, KV-cache decoding). They are non-persistent
    buffers: derived data, not weights, and absent from the reference state dicts.
    """

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None, half_split: bool = False):
        super().__init__()
        if d_k % 2:
            raise ValueError(f"RoPE needs an even head dimension, got d_k={d_k}")
        self.max_seq_len, self.half_split = max_seq_len, half_split
        inv_freq = theta ** (-torch.arange(0, d_k, 2, device=device, dtype=torch.float64) / d_k)
        angles = torch.outer(torch.arange(max_seq_len, device=device, dtype=torch.float64), inv_freq)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(
        self, x: Float[Tensor, "... seq d_k"], token_positions: Int[Tensor, "... seq"]
    ) -> Float[Tensor, "... seq d_k"]:
        cos = self.cos[token_positions].to(x.dtype)
        sin = self.sin[token_positions].to(x.dtype)
        if self.half_split:
            first, second = x.chunk(2, dim=-1)
            return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)
        pairs = rearrange(x, "... (half two) -> ... half two", two=2)
        even, odd = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return rearrange(rotated, "... half two -> ... (half two)")


def softmax(x: Tensor, dim: int) -> Tensor:
    """Softmax with the maximum subtracted first, so large logits do not overflow ``exp``."""
    shifted = x - x.amax(dim=dim, keepdim=True)
    exp = shifted.exp()
    return exp / exp.sum(dim=dim, keepdim=True)


def scaled_dot_product_attention(
    Q: Float[Tensor, "... queries d_k"],
    K: Float[Tensor, "... keys d_k"],
    V: Float[Tensor, "... keys d_v"],
    mask: Bool[Tensor, "... queries keys"] | None = None,
) -> Float[Tensor, "... queries d_v"]:
    """``softmax(Q Kᵀ / sqrt(d_k)) V``; ``mask`` True = may attend. Excluded scores are ``-inf`` (the reference's
    semantics: a query row with nothing to attend to gives NaN rather than a silent average)."""
    scores = einsum(Q, K, "... q d, ... k d -> ... q k") / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return einsum(softmax(scores, dim=-1), V, "... q k, ... k d -> ... q d")
