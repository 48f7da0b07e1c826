"""FlashAttention-2 autograd Function backed by the Triton kernels.

The kernel launches live in two ``torch.library`` custom ops, so ``torch.compile`` (which the
leaderboard wraps around ``FlashAttentionTriton.apply``) treats them as opaque calls with known
output shapes instead of tracing Triton's launcher. Any leading dims are folded into one batch
axis inside the ops; O comes back in Q's shape and L in Q's shape without the last dim.
"""

import importlib
import math
import os
from types import ModuleType

import torch
from jaxtyping import Float
from torch import Tensor

from cs336_systems.flash_attention.pytorch_tiled import check_attention_inputs

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
PREPROCESS_BLOCK_M = 128


def _kernels() -> ModuleType:
    """Import the Triton kernels on first use: ``triton.jit`` picks compile or interpret mode at
    decoration time, and tests switch on ``TRITON_INTERPRET`` after this module may be imported."""
    return importlib.import_module("cs336_systems.flash_attention.triton_kernels")


def _check_triton_inputs(q: Tensor) -> None:
    head_dim = q.shape[-1]
    if head_dim < 16 or head_dim > 256 or head_dim & (head_dim - 1):
        raise ValueError(f"the Triton kernels need a head size that is a power of two in [16, 256]; got {head_dim}")
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"the Triton kernels support {SUPPORTED_DTYPES}; got {q.dtype}")
    if q.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise ValueError(f"the Triton kernels need CUDA tensors (or TRITON_INTERPRET=1 on the CPU); got {q.device}")


def _fold(x: Tensor) -> Float[Tensor, "batch n d"]:
    """View ``(..., n, d)`` as ``(batch, n, d)``; copies only when the leading dims cannot be merged."""
    return x.reshape(-1, x.shape[-2], x.shape[-1])


def _length_bucket(n_queries: int, n_keys: int) -> int:
    """Autotuning key: the longer sequence rounded up to a power of two."""
    return 1 << (max(n_queries, n_keys) - 1).bit_length()


@torch.library.custom_op("cs336_systems::flash_attention_forward", mutates_args=())
def flash_attention_forward(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    """Launch the forward kernel; returns O (Q's shape and dtype) and float32 L (Q's shape without d)."""
    _check_triton_inputs(q)
    q3, k3, v3 = _fold(q), _fold(k), _fold(v)
    batch, n_queries, head_dim = q3.shape
    n_keys = k3.shape[1]
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    o3, l2 = out.view(batch, n_queries, head_dim), lse.view(batch, n_queries)

    def grid(meta):
        return (math.ceil(n_queries / meta["BLOCK_M"]), batch)

    _kernels().flash_fwd_kernel[grid](
        q3,
        k3,
        v3,
        o3,
        l2,
        *q3.stride(),
        *k3.stride(),
        *v3.stride(),
        *o3.stride(),
        *l2.stride(),
        n_queries,
        n_keys,
        batch,
        _length_bucket(n_queries, n_keys),
        1.0 / math.sqrt(head_dim),
        HEAD_DIM=head_dim,
        IS_CAUSAL=is_causal,
    )
    return out, lse


@flash_attention_forward.register_fake
def _flash_attention_forward_fake(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    return q.new_empty(q.shape), q.new_empty(q.shape[:-1], dtype=torch.float32)


@torch.library.custom_op("cs336_systems::flash_attention_backward", mutates_args=())
def flash_attention_backward(
    q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, grad_out: Tensor, is_causal: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Launch the D preprocessing, dK/dV and dQ kernels; gradients come back in the inputs' shapes."""
    q3, k3, v3, o3, do3 = _fold(q), _fold(k), _fold(v), _fold(o), _fold(grad_out)
    l2 = lse.reshape(q3.shape[0], q3.shape[1])
    batch, n_queries, head_dim = q3.shape
    n_keys = k3.shape[1]
    kernels = _kernels()
    delta = torch.empty((batch, n_queries), dtype=torch.float32, device=q.device)
    kernels.flash_bwd_preprocess_kernel[(math.ceil(n_queries / PREPROCESS_BLOCK_M), batch)](
        o3,
        do3,
        delta,
        *o3.stride(),
        *do3.stride(),
        *delta.stride(),
        n_queries,
        HEAD_DIM=head_dim,
        BLOCK_M=PREPROCESS_BLOCK_M,
    )
    dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
    dq3, dk3, dv3 = dq.view(q3.shape), dk.view(k3.shape), dv.view(v3.shape)
    shared_args = (*q3.stride(), *k3.stride(), *v3.stride(), *do3.stride(), *l2.stride(), *delta.stride())
    sizes = (n_queries, n_keys, batch, _length_bucket(n_queries, n_keys), 1.0 / math.sqrt(head_dim))
    kernels.flash_bwd_dkdv_kernel[lambda meta: (math.ceil(n_keys / meta["BLOCK_N"]), batch)](
        q3,
        k3,
        v3,
        do3,
        l2,
        delta,
        dk3,
        dv3,
        *shared_args,
        *dk3.stride(),
        *dv3.stride(),
        *sizes,
        HEAD_DIM=head_dim,
        IS_CAUSAL=is_causal,
    )
    kernels.flash_bwd_dq_kernel[lambda meta: (math.ceil(n_queries / meta["BLOCK_M"]), batch)](
        q3,
        k3,
        v3,
        do3,
        l2,
        delta,
        dq3,
        *shared_args,
        *dq3.stride(),
        *sizes,
        HEAD_DIM=head_dim,
        IS_CAUSAL=is_causal,
    )
    return dq, dk, dv


@flash_attention_backward.register_fake
def _flash_attention_backward_fake(
    q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, grad_out: Tensor, is_causal: bool
) -> tuple[Tensor, Tensor, Tensor]:
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


class FlashAttentionTriton(torch.autograd.Function):
    """FlashAttention-2 with Triton forward and backward kernels; ``apply(Q, K, V, is_causal)``.

    Accepts ``(..., n, d)`` inputs (heads may be folded into batch or kept as a separate dim);
    saves Q, K, V, O and the float32 log-sum-exp L for a recomputing backward."""

    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor, is_causal: bool = False) -> Tensor:
        check_attention_inputs(Q, K, V)
        Out, L = flash_attention_forward(Q, K, V, bool(is_causal))
        ctx.save_for_backward(Q, K, V, Out, L)
        ctx.is_causal = bool(is_causal)
        return Out

    @staticmethod
    def backward(ctx, dO: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        Q, K, V, Out, L = ctx.saved_tensors
        dQ, dK, dV = flash_attention_backward(Q, K, V, Out, L, dO, ctx.is_causal)
        return dQ, dK, dV, None
