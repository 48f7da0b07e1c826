"""FlashAttention-2 in plain PyTorch: tiled online-softmax forward, tiled recomputing backward.

Slow (a Python loop over tiles) but small enough to read next to the handout's Algorithms 1
and 2; it is the readable twin of the Triton kernels and shares their invariants: only O and
the float32 row log-sum-exp L are kept for backward, and fully masked causal tiles are skipped.
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor

from cs336_systems.flash_attention.reference import MASKED_SCORE, causal_mask

TILE_SIZE = 64
"""Query and key tile size (the handout asks for tiles of at least 16×16)."""


def check_attention_inputs(Q: Tensor, K: Tensor, V: Tensor) -> None:
    """Raise a clear error unless Q, K, V are ``(..., n, d)`` tensors that attention can combine."""
    if Q.dim() < 2 or K.dim() < 2 or V.dim() < 2:
        raise ValueError(
            f"Q, K, V must be at least 2-D (..., n, d); got {tuple(Q.shape)}, {tuple(K.shape)}, {tuple(V.shape)}"
        )
    if K.shape != V.shape:
        raise ValueError(f"K and V must have the same shape; got {tuple(K.shape)} and {tuple(V.shape)}")
    if Q.shape[:-2] != K.shape[:-2] or Q.shape[-1] != K.shape[-1]:
        raise ValueError(f"Q {tuple(Q.shape)} and K {tuple(K.shape)} must share leading dims and head size")
    if Q.shape[-2] == 0 or K.shape[-2] == 0:
        raise ValueError("attention needs at least one query and one key")
    if not (Q.dtype == K.dtype == V.dtype):
        raise ValueError(f"Q, K, V must share a dtype; got {Q.dtype}, {K.dtype}, {V.dtype}")


def _key_tile_end(query_end: int, n_keys: int, is_causal: bool) -> int:
    """One past the last key any query before ``query_end`` may see: causal tiles beyond it are all masked."""
    return min(query_end, n_keys) if is_causal else n_keys


def tiled_attention_forward(
    Q: Float[Tensor, "... n_q d"], K: Float[Tensor, "... n_k d"], V: Float[Tensor, "... n_k d"], is_causal: bool
) -> tuple[Float[Tensor, "... n_q d"], Float[Tensor, "... n_q"]]:
    """Algorithm 1: per query tile, stream key tiles keeping a running max, sum and fp32 accumulator."""
    n_q, n_k, d = Q.shape[-2], K.shape[-2], Q.shape[-1]
    scale = 1.0 / math.sqrt(d)
    Out = torch.empty_like(Q)
    L = torch.empty(Q.shape[:-1], dtype=torch.float32, device=Q.device)
    for q0 in range(0, n_q, TILE_SIZE):
        q1 = min(q0 + TILE_SIZE, n_q)
        q_tile = Q[..., q0:q1, :].float()
        running_max = torch.full(q_tile.shape[:-1], -math.inf, device=Q.device)
        running_sum = torch.zeros(q_tile.shape[:-1], device=Q.device)
        acc = torch.zeros_like(q_tile)
        for k0 in range(0, _key_tile_end(q1, n_k, is_causal), TILE_SIZE):
            k1 = min(k0 + TILE_SIZE, n_k)
            scores = q_tile @ K[..., k0:k1, :].float().transpose(-1, -2) * scale
            if is_causal and k1 > q0:  # only tiles touching the diagonal need the mask
                allowed = causal_mask(q1, k1, Q.device)[q0:, k0:]
                scores = torch.where(allowed, scores, scores + MASKED_SCORE)
            new_max = torch.maximum(running_max, scores.amax(dim=-1))
            probs = torch.exp(scores - new_max[..., None])
            correction = torch.exp(running_max - new_max)
            running_sum = correction * running_sum + probs.sum(dim=-1)
            acc = correction[..., None] * acc + probs.to(V.dtype).float() @ V[..., k0:k1, :].float()
            running_max = new_max
        Out[..., q0:q1, :] = (acc / running_sum[..., None]).to(Q.dtype)
        L[..., q0:q1] = running_max + torch.log(running_sum)
    return Out, L


def tiled_attention_backward(
    Q: Float[Tensor, "... n_q d"],
    K: Float[Tensor, "... n_k d"],
    V: Float[Tensor, "... n_k d"],
    Out: Float[Tensor, "... n_q d"],
    L: Float[Tensor, "... n_q"],
    dO: Float[Tensor, "... n_q d"],
    is_causal: bool,
) -> tuple[Float[Tensor, "... n_q d"], Float[Tensor, "... n_k d"], Float[Tensor, "... n_k d"]]:
    """Algorithm 2 by recomputation, one query tile at a time: P = exp(S − L), never an n_q × n_k matrix."""
    n_q, n_k, d = Q.shape[-2], K.shape[-2], Q.shape[-1]
    scale = 1.0 / math.sqrt(d)
    D = (Out.float() * dO.float()).sum(dim=-1)
    dQ = torch.empty(Q.shape, dtype=torch.float32, device=Q.device)
    dK = torch.zeros(K.shape, dtype=torch.float32, device=K.device)
    dV = torch.zeros(V.shape, dtype=torch.float32, device=V.device)
    Kf, Vf = K.float(), V.float()
    for q0 in range(0, n_q, TILE_SIZE):
        q1 = min(q0 + TILE_SIZE, n_q)
        k_end = _key_tile_end(q1, n_k, is_causal)
        q_tile, do_tile = Q[..., q0:q1, :].float(), dO[..., q0:q1, :].float()
        scores = q_tile @ Kf[..., :k_end, :].transpose(-1, -2) * scale
        probs = torch.exp(scores - L[..., q0:q1, None])
        if is_causal:
            probs = probs * causal_mask(q1, k_end, Q.device)[q0:]
        dV[..., :k_end, :] += probs.transpose(-1, -2) @ do_tile
        dscores = probs * (do_tile @ Vf[..., :k_end, :].transpose(-1, -2) - D[..., q0:q1, None]) * scale
        dQ[..., q0:q1, :] = dscores @ Kf[..., :k_end, :]
        dK[..., :k_end, :] += dscores.transpose(-1, -2) @ q_tile
    return dQ.to(Q.dtype), dK.to(K.dtype), dV.to(V.dtype)


class FlashAttentionPytorch(torch.autograd.Function):
    """FlashAttention-2 as an autograd Function in plain PyTorch; ``apply(Q, K, V, is_causal)``."""

    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor, is_causal: bool = False) -> Tensor:
        check_attention_inputs(Q, K, V)
        Out, L = tiled_attention_forward(Q, K, V, bool(is_causal))
        ctx.save_for_backward(Q, K, V, Out, L)
        ctx.is_causal = bool(is_causal)
        return Out

    @staticmethod
    def backward(ctx, dO: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        Q, K, V, Out, L = ctx.saved_tensors
        dQ, dK, dV = tiled_attention_backward(Q, K, V, Out, L, dO, ctx.is_causal)
        return dQ, dK, dV, None
