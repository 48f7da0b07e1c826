"""FlashAttention-2 autograd Function backed by the Triton kernels, with a lean launch path.

Short sequences are host-bound: the kernels take microseconds, so what counts is the Python between them.
A forward+backward is three launches (forward, D preprocessing, one backward kernel for dQ, dK and dV),
taken one of two ways:

- eager: ``FlashAttentionTriton`` launches through a per-shape :class:`_Plan` holding the autotuned
  configurations, grids, scalar arguments and output sizes, so every call after a shape's first costs one
  dict lookup, the output allocations and one direct call of each compiled kernel's launcher
  (:class:`~cs336_systems.flash_attention.kernel_launch.KernelLaunch`: no custom-op dispatch, no autotuner
  lookup, no Triton argument binding, no stride arguments: the kernels take contiguous tensors and index them
  as ``(batch, n, d)`` whatever their shape, so nothing is reshaped or viewed);
- under ``torch.compile``: two ``torch.library.triton_op`` ops whose bodies launch the same kernels
  through ``wrap_triton``, so Inductor sees the Triton kernels, launches them from its generated code,
  and CUDA graphs (``mode="reduce-overhead"``) can capture them.

Any leading dims are folded into one batch axis; O comes back in Q's shape and L in Q's shape without
the last dim.
"""

import importlib
import math
import os
from dataclasses import dataclass
from types import ModuleType

import torch
import triton
from jaxtyping import Float
from torch import Tensor
from torch.library import triton_op, wrap_triton

from cs336_systems.flash_attention.kernel_launch import Grid, KernelLaunch
from cs336_systems.flash_attention.pytorch_tiled import check_attention_inputs

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
PREPROCESS_BLOCK_M = 128
MAX_PLANS = 256
"""Shapes whose launch plans are kept; the cache starts over beyond that (a sweep over many shapes)."""


def _kernels() -> ModuleType:
    """Import the Triton kernels on first use: ``triton.jit`` picks compile or interpret mode at
    decoration time, and tests switch on ``TRITON_INTERPRET`` after this module may be imported."""
    return importlib.import_module("cs336_systems.flash_attention.triton_kernels")


def check_triton_inputs(q: Tensor, k: Tensor, v: Tensor) -> None:
    """Raise a clear error unless the kernels can take Q, K, V (shapes, head size, dtype, device)."""
    check_attention_inputs(q, k, v)
    head_dim = q.shape[-1]
    if head_dim < 16 or head_dim > 256 or head_dim & (head_dim - 1):
        raise ValueError(f"the Triton kernels need a head size that is a power of two in [16, 256]; got {head_dim}")
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"the Triton kernels support {SUPPORTED_DTYPES}; got {q.dtype}")
    if not q.device == k.device == v.device:
        raise ValueError(f"Q, K, V must be on one device; got {q.device}, {k.device}, {v.device}")
    if q.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise ValueError(f"the Triton kernels need CUDA tensors (or TRITON_INTERPRET=1 on the CPU); got {q.device}")


def _cdiv(a: int, b: int) -> int:
    """Ceiling division that also works on symbolic sizes under ``torch.compile``."""
    return (a + b - 1) // b


def _length_bucket(n_queries: int, n_keys: int) -> int:
    """Autotuning key: the longer sequence rounded up to a power of two. Comparisons only, so that symbolic
    lengths (``torch.compile`` with dynamic shapes) give a plain int, guarded to the bucket's range."""
    longest = max(n_queries, n_keys)
    bucket = 1
    while bucket < longest:
        bucket *= 2
    return bucket


@dataclass(frozen=True)
class ForwardConfig:
    """Fixed forward tiles (queries × keys), bypassing the autotuner (tuning sweeps, pinned runs). ``tma`` moves
    Q, K, V and O through tensor descriptors (Hopper's tensor memory accelerator): an opt-in experiment, outside the
    autotuned path until a GPU has timed it."""

    block_m: int
    block_n: int
    num_warps: int = 4
    num_stages: int = 3
    tma: bool = False

    def meta(self) -> dict:
        return {
            "BLOCK_M": self.block_m,
            "BLOCK_N": self.block_n,
            "num_warps": self.num_warps,
            "num_stages": self.num_stages,
        }


@dataclass(frozen=True)
class BackwardConfig:
    """Fixed backward tiles: (streamed queries, owned keys) for dK/dV programs and (owned queries, streamed
    keys) for dQ programs; the owned tile must be a multiple of the streamed one. ``atomic_dq`` launches only
    dK/dV programs, which add dQ with atomics (the dQ tiles are then unused): an opt-in experiment, outside the
    autotuned path because it was slower (H200, batch 16 x 16 heads, n = 16384, d = 64, bf16, causal: 71.65 ms at
    its best against 61.53 ms for the dK/dV and dQ programs; BENCHMARKS.md, fifth H200 run)."""

    dkdv_block_m: int
    dkdv_block_n: int
    dq_block_m: int
    dq_block_n: int
    num_warps: int = 4
    num_stages: int = 3
    atomic_dq: bool = False

    def meta(self) -> dict:
        return {
            "BLOCK_M1": self.dkdv_block_m,
            "BLOCK_N1": self.dkdv_block_n,
            "BLOCK_M2": self.dq_block_m,
            "BLOCK_N2": self.dq_block_n,
            "num_warps": self.num_warps,
            "num_stages": self.num_stages,
        }


def _forward_grid(batch: int, n_queries: int) -> Grid:
    return lambda meta: (_cdiv(n_queries, meta["BLOCK_M"]), batch)


def _backward_grid(batch: int, n_queries: int, n_keys: int, dkdv: bool = True, dq: bool = True) -> Grid:
    """dK/dV programs (one per key tile) followed by dQ programs (one per query tile), per batch element.

    The flags pick the counts with ``if`` rather than multiplying them: under dynamic shapes the lengths are
    SymInts, and torch 2.11 turns ``SymInt * bool`` into a sympy product with a boolean, which sympy rejects."""

    def grid(meta: dict) -> tuple[int, int]:
        dkdv_programs = _cdiv(n_keys, meta["BLOCK_N1"]) if dkdv else 0
        dq_programs = _cdiv(n_queries, meta["BLOCK_M2"]) if dq else 0
        return dkdv_programs + dq_programs, batch

    return grid


def _preprocess_grid(batch: int, n_queries: int) -> tuple[int, int]:
    return (_cdiv(n_queries, PREPROCESS_BLOCK_M), batch)


def _scalars(n_queries: int, n_keys: int) -> tuple[int, int, int]:
    """The kernels' scalar arguments: lengths and the autotune length bucket (the softmax scale is a constant
    of the kernels' ``HEAD_DIM``: no float is passed, since launchers disagree on a float's type)."""
    return n_queries, n_keys, _length_bucket(n_queries, n_keys)


class _Plan:
    """Everything a call on one (Q shape, K shape, dtype, device, causal) needs besides the tensors."""

    def __init__(
        self,
        batch: int,
        n_queries: int,
        n_keys: int,
        head_dim: int,
        is_causal: bool,
        forward_config: ForwardConfig | None = None,
        backward_config: BackwardConfig | None = None,
        passes: tuple[bool, bool] = (True, True),
    ):
        kernels = _kernels()
        self.scalars = _scalars(n_queries, n_keys)
        common = {"HEAD_DIM": head_dim, "IS_CAUSAL": is_causal}
        tma = forward_config is not None and forward_config.tma
        self.forward = KernelLaunch(
            kernels.flash_fwd_kernel,
            _forward_grid(batch, n_queries),
            {**common, "USE_TMA": tma},
            n_pointers=5,
            meta=None if forward_config is None else forward_config.meta(),
        )
        self.preprocess = KernelLaunch(
            kernels.flash_bwd_preprocess_kernel,
            lambda meta: _preprocess_grid(batch, n_queries),
            {"HEAD_DIM": head_dim},
            n_pointers=3,
            meta={"BLOCK_M": PREPROCESS_BLOCK_M},
        )
        atomic_dq = backward_config is not None and backward_config.atomic_dq
        self.backward = KernelLaunch(
            kernels.flash_bwd_kernel,
            _backward_grid(batch, n_queries, n_keys, *passes),
            {**common, "DKDV": passes[0], "DQ": passes[1], "ATOMIC_DQ": atomic_dq},
            n_pointers=9,
            meta=None if backward_config is None else backward_config.meta(),
        )

    def run_forward(self, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor) -> None:
        self.forward(q, k, v, out, lse, *self.scalars)

    def run_backward(self, q, k, v, out, grad_out, lse, dq, dk, dv) -> None:
        """D = rowsum(O ∘ dO) into a fresh buffer, then dQ, dK, dV."""
        delta = torch.empty_like(lse)
        self.preprocess(out, grad_out, delta, self.scalars[0])
        self.backward(q, k, v, grad_out, lse, delta, dq, dk, dv, *self.scalars)


class _EagerPlan(_Plan):
    """A plan for the autograd Function: autotuned launches plus the sizes of L, kept as ints (``torch.empty``
    parses unpacked ints faster than a size)."""

    def __init__(self, q: Tensor, k: Tensor, is_causal: bool):
        super().__init__(math.prod(q.shape[:-2]), q.shape[-2], k.shape[-2], q.shape[-1], is_causal)
        self.lse_size = tuple(q.shape[:-1])
        self.device = q.device


_PLANS: dict[tuple, _EagerPlan] = {}


def _plan(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> _EagerPlan:
    """The cached plan for these inputs; inputs are validated once, when their shape is first seen."""
    key = (q.shape, k.shape, v.shape, q.dtype, k.dtype, v.dtype, q.device, k.device, v.device, is_causal)
    plan = _PLANS.get(key)
    if plan is None:
        check_triton_inputs(q, k, v)
        if len(_PLANS) >= MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[key] = _EagerPlan(q, k, is_causal)
    return plan


def _check_rows(*tensors: Tensor) -> None:
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError(
                f"the launchers take contiguous (batch, n, d) / (batch, n) tensors; got strides {t.stride()}"
            )


def _tma_scratch(size: int, alignment: int, stream: int | None) -> Tensor:
    """Global memory for the descriptors a kernel builds on the device, from PyTorch's caching allocator (its
    blocks are 512-byte aligned; Triton asks for at most 128)."""
    return torch.empty(size, dtype=torch.int8, device="cuda")


def _prepare_tma(*tensors: Tensor) -> None:
    """Raise a clear error unless the forward can load these tensors through tensor descriptors, then give Triton
    the allocator their launch needs (a context variable: set where the launch happens, not once per process)."""
    interpreted = os.environ.get("TRITON_INTERPRET", "0") == "1"
    device = tensors[0].device
    if not interpreted and device.type == "cuda" and torch.cuda.get_device_capability(device) < (9, 0):
        name = torch.cuda.get_device_name(device)
        raise ValueError(f"the TMA forward needs a GPU of compute capability 9.0 or newer (Hopper); got {name}")
    for t in tensors:
        if t.data_ptr() % 16:
            raise ValueError(f"the TMA forward needs 16-byte aligned tensors; got one at address {t.data_ptr():#x}")
    triton.set_allocator(_tma_scratch)


def launch_forward(
    q3: Tensor, k3: Tensor, v3: Tensor, o3: Tensor, l2: Tensor, is_causal: bool, config: ForwardConfig | None = None
) -> None:
    """Fill O and L for contiguous ``(batch, n, d)`` tensors; ``config`` pins the tiles instead of autotuning (and
    may ask for the TMA forward)."""
    _check_rows(q3, k3, v3, o3, l2)
    if config is not None and config.tma:
        _prepare_tma(q3, k3, v3, o3)
    batch, n_queries, head_dim = q3.shape
    _Plan(batch, n_queries, k3.shape[1], head_dim, is_causal, forward_config=config).run_forward(q3, k3, v3, o3, l2)


def launch_backward(
    q3: Tensor,
    k3: Tensor,
    v3: Tensor,
    o3: Tensor,
    do3: Tensor,
    l2: Tensor,
    dq3: Tensor,
    dk3: Tensor,
    dv3: Tensor,
    is_causal: bool,
    config: BackwardConfig | None = None,
    passes: tuple[bool, bool] = (True, True),
) -> None:
    """Fill dQ, dK, dV (D preprocessing, then the backward kernel) for contiguous tensors; ``passes`` =
    (dK/dV, dQ) restricts the backward launch to one kind of program, as the tuning script does. A config with
    ``atomic_dq`` accumulates dQ in a zeroed float32 buffer and copies it into ``dq3`` (both timed with it)."""
    _check_rows(q3, k3, v3, o3, do3, l2, dq3, dk3, dv3)
    batch, n_queries, head_dim = q3.shape
    if config is not None and config.atomic_dq:
        if passes != (True, True):
            raise ValueError(f"atomic_dq computes dK, dV and dQ in the dK/dV programs; got passes {passes}")
        dq_sum = torch.zeros(dq3.shape, dtype=torch.float32, device=dq3.device)
        plan = _Plan(batch, n_queries, k3.shape[1], head_dim, is_causal, backward_config=config, passes=(True, False))
        plan.run_backward(q3, k3, v3, o3, do3, l2, dq_sum, dk3, dv3)
        dq3.copy_(dq_sum)
        return
    plan = _Plan(batch, n_queries, k3.shape[1], head_dim, is_causal, backward_config=config, passes=passes)
    plan.run_backward(q3, k3, v3, o3, do3, l2, dq3, dk3, dv3)


def _eager_forward(
    plan: _EagerPlan, q: Float[Tensor, "... n d"], k: Float[Tensor, "... m d"], v: Float[Tensor, "... m d"]
) -> tuple[Float[Tensor, "... n d"], Float[Tensor, "... n"]]:
    """O and L; the kernels index contiguous tensors as ``(batch, n, d)`` whatever their shape."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty_like(q)
    lse = torch.empty(*plan.lse_size, dtype=torch.float32, device=plan.device)
    plan.run_forward(q, k, v, out, lse)
    return out, lse


def _eager_backward(
    plan: _EagerPlan, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, grad_out: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """dQ, dK, dV. A strided dO is copied (e.g. the stride-0 dO of ``o.sum().backward()``, which Triton could not
    load vectorised anyway); O and L are the forward's own contiguous outputs."""
    q, k, v, grad_out = q.contiguous(), k.contiguous(), v.contiguous(), grad_out.contiguous()
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    plan.run_backward(q, k, v, out, grad_out, lse, dq, dk, dv)
    return dq, dk, dv


@triton_op("cs336_systems::flash_attention_forward", mutates_args=())
def flash_attention_forward(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    """The forward for ``torch.compile``: O (Q's shape and dtype) and float32 L (Q's shape without d)."""
    check_triton_inputs(q, k, v)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    n_queries, n_keys, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    wrap_triton(_kernels().flash_fwd_kernel)[_forward_grid(math.prod(q.shape[:-2]), n_queries)](
        q, k, v, out, lse, *_scalars(n_queries, n_keys), HEAD_DIM=head_dim, IS_CAUSAL=is_causal, USE_TMA=False
    )
    return out, lse


@triton_op("cs336_systems::flash_attention_backward", mutates_args=())
def flash_attention_backward(
    q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, grad_out: Tensor, is_causal: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """The backward for ``torch.compile``: dQ, dK, dV in the inputs' shapes."""
    q, k, v, o, grad_out = q.contiguous(), k.contiguous(), v.contiguous(), o.contiguous(), grad_out.contiguous()
    batch, n_queries, n_keys, head_dim = math.prod(q.shape[:-2]), q.shape[-2], k.shape[-2], q.shape[-1]
    delta = torch.empty_like(lse)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    kernels = _kernels()
    wrap_triton(kernels.flash_bwd_preprocess_kernel)[_preprocess_grid(batch, n_queries)](
        o, grad_out, delta, n_queries, HEAD_DIM=head_dim, BLOCK_M=PREPROCESS_BLOCK_M
    )
    wrap_triton(kernels.flash_bwd_kernel)[_backward_grid(batch, n_queries, n_keys)](
        q, k, v, grad_out, lse, delta, dq, dk, dv, *_scalars(n_queries, n_keys),
        HEAD_DIM=head_dim, IS_CAUSAL=is_causal, DKDV=True, DQ=True, ATOMIC_DQ=False,
    )  # fmt: skip
    return dq, dk, dv


class FlashAttentionTriton(torch.autograd.Function):
    """FlashAttention-2 with Triton forward and backward kernels; ``apply(Q, K, V, is_causal)``.

    Accepts ``(..., n, d)`` inputs (heads may be folded into batch or kept as a separate dim);
    saves Q, K, V, O and the float32 log-sum-exp L for a recomputing backward. Eager calls take the
    cached launch plans; traced calls (``torch.compile``) take the ``triton_op`` ops."""

    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor, is_causal: bool = False) -> Tensor:
        is_causal = bool(is_causal)
        if torch.compiler.is_compiling():
            Out, L = flash_attention_forward(Q, K, V, is_causal)
        else:
            ctx.plan = _plan(Q, K, V, is_causal)
            Out, L = _eager_forward(ctx.plan, Q, K, V)
        ctx.save_for_backward(Q, K, V, Out, L)
        ctx.is_causal = is_causal
        return Out

    @staticmethod
    def backward(ctx, dO: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        Q, K, V, Out, L = ctx.saved_tensors
        if torch.compiler.is_compiling():
            dQ, dK, dV = flash_attention_backward(Q, K, V, Out, L, dO, ctx.is_causal)
        else:
            dQ, dK, dV = _eager_backward(ctx.plan, Q, K, V, Out, L, dO)
        return dQ, dK, dV, None
