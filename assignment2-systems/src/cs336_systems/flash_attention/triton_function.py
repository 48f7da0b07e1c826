"""FlashAttention-2 autograd Function backed by the Triton kernels.

The kernel launches live in two ``torch.library`` custom ops, so ``torch.compile`` (which the
leaderboard wraps around ``FlashAttentionTriton.apply``) treats them as opaque calls with known
output shapes instead of tracing Triton's launcher. Any leading dims are folded into one batch
axis inside the ops; O comes back in Q's shape and L in Q's shape without the last dim.
"""

import importlib
import math
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class KernelConfig:
    """One fixed launch configuration, bypassing the autotuner (for tuning sweeps and pinned runs)."""

    block_m: int
    block_n: int
    num_warps: int = 4
    num_stages: int = 3


def _kernel(autotuned, config: KernelConfig | None):
    """The autotuned kernel, or its underlying JIT function with ``config``'s meta-parameters bound."""
    if config is None:
        return autotuned, {}
    meta = {"BLOCK_M": config.block_m, "BLOCK_N": config.block_n}
    return autotuned.fn, {**meta, "num_warps": config.num_warps, "num_stages": config.num_stages}


def _grid(tiles_of: str, length: int, batch: int, config: KernelConfig | None):
    """Launch grid ``(tiles, batch)``; ``tiles_of`` names the tile size along the parallel axis."""
    if config is not None:
        size = config.block_m if tiles_of == "BLOCK_M" else config.block_n
        return (math.ceil(length / size), batch)
    return lambda meta: (math.ceil(length / meta[tiles_of]), batch)


def launch_forward(
    q3: Tensor, k3: Tensor, v3: Tensor, o3: Tensor, l2: Tensor, is_causal: bool, config: KernelConfig | None = None
) -> None:
    """Fill O and L for ``(batch, n, d)`` views; ``config`` pins tile sizes instead of autotuning."""
    batch, n_queries, head_dim = q3.shape
    n_keys = k3.shape[1]
    kernel, meta = _kernel(_kernels().flash_fwd_kernel, config)
    kernel[_grid("BLOCK_M", n_queries, batch, config)](
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
        **meta,
    )


def launch_preprocess(o3: Tensor, do3: Tensor, delta: Tensor) -> None:
    """D = rowsum(O ∘ dO) in float32."""
    batch, n_queries, head_dim = o3.shape
    _kernels().flash_bwd_preprocess_kernel[(math.ceil(n_queries / PREPROCESS_BLOCK_M), batch)](
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


def _backward_args(q3, k3, v3, do3, l2, delta) -> tuple:
    batch, n_queries, head_dim = q3.shape
    n_keys = k3.shape[1]
    strides = (*q3.stride(), *k3.stride(), *v3.stride(), *do3.stride(), *l2.stride(), *delta.stride())
    sizes = (n_queries, n_keys, batch, _length_bucket(n_queries, n_keys), 1.0 / math.sqrt(head_dim))
    return strides, sizes


def launch_dkdv(
    q3: Tensor,
    k3: Tensor,
    v3: Tensor,
    do3: Tensor,
    l2: Tensor,
    delta: Tensor,
    dk3: Tensor,
    dv3: Tensor,
    is_causal: bool,
    config: KernelConfig | None = None,
) -> None:
    """Fill dK and dV: one program per key tile, streaming query tiles."""
    strides, sizes = _backward_args(q3, k3, v3, do3, l2, delta)
    kernel, meta = _kernel(_kernels().flash_bwd_dkdv_kernel, config)
    kernel[_grid("BLOCK_N", k3.shape[1], q3.shape[0], config)](
        q3,
        k3,
        v3,
        do3,
        l2,
        delta,
        dk3,
        dv3,
        *strides,
        *dk3.stride(),
        *dv3.stride(),
        *sizes,
        HEAD_DIM=q3.shape[2],
        IS_CAUSAL=is_causal,
        **meta,
    )


def launch_dq(
    q3: Tensor,
    k3: Tensor,
    v3: Tensor,
    do3: Tensor,
    l2: Tensor,
    delta: Tensor,
    dq3: Tensor,
    is_causal: bool,
    config: KernelConfig | None = None,
) -> None:
    """Fill dQ: one program per query tile, streaming key tiles."""
    strides, sizes = _backward_args(q3, k3, v3, do3, l2, delta)
    kernel, meta = _kernel(_kernels().flash_bwd_dq_kernel, config)
    kernel[_grid("BLOCK_M", q3.shape[1], q3.shape[0], config)](
        q3,
        k3,
        v3,
        do3,
        l2,
        delta,
        dq3,
        *strides,
        *dq3.stride(),
        *sizes,
        HEAD_DIM=q3.shape[2],
        IS_CAUSAL=is_causal,
        **meta,
    )


@torch.library.custom_op("cs336_systems::flash_attention_forward", mutates_args=())
def flash_attention_forward(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    """Launch the forward kernel; returns O (Q's shape and dtype) and float32 L (Q's shape without d)."""
    _check_triton_inputs(q)
    q3, k3, v3 = _fold(q), _fold(k), _fold(v)
    batch, n_queries, head_dim = q3.shape
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    launch_forward(q3, k3, v3, out.view(batch, n_queries, head_dim), lse.view(batch, n_queries), is_causal)
    return out, lse


@flash_attention_forward.register_fake
def _flash_attention_forward_fake(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    return q.new_empty(q.shape), q.new_empty(q.shape[:-1], dtype=torch.float32)


@torch.library.custom_op("cs336_systems::flash_attention_backward", mutates_args=())
def flash_attention_backward(
    q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, grad_out: Tensor, is_causal: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Launch the D preprocessing, dK/dV and dQ kernels; gradients come back in the inputs' shapes."""
    # ``o.sum().backward()`` hands in a stride-0 dO; Triton cannot vectorise loads along a zero stride
    # (measured: 1 ms slower at the leaderboard size), and one copy of dO costs ~0.02 ms.
    grad_out = grad_out.contiguous()
    q3, k3, v3, o3, do3 = _fold(q), _fold(k), _fold(v), _fold(o), _fold(grad_out)
    l2 = lse.reshape(q3.shape[0], q3.shape[1])
    delta = torch.empty(l2.shape, dtype=torch.float32, device=q.device)
    launch_preprocess(o3, do3, delta)
    dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
    launch_dkdv(q3, k3, v3, do3, l2, delta, dk.view(k3.shape), dv.view(v3.shape), is_causal)
    launch_dq(q3, k3, v3, do3, l2, delta, dq.view(q3.shape), is_causal)
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
