"""FlashAttention-2 autograd Function backed by the Triton kernels, with a lean launch path.

Short sequences are host-bound: the kernels take microseconds, so what counts is the Python between them.
A forward+backward is three launches (forward, D preprocessing, one backward kernel for dQ, dK and dV),
taken one of two ways:

- eager: ``FlashAttentionTriton`` launches through a per-shape :class:`_Plan` holding the autotuned
  configurations, grids, scalar arguments and output sizes, so every call after a shape's first costs one
  dict lookup, the output allocations and one direct call of each compiled kernel's launcher
  (:class:`~cs336_systems.flash_attention.kernel_launch.KernelLaunch`: no custom-op dispatch, no autotuner
  lookup, no Triton argument binding);
- under ``torch.compile``: two ``torch.library.triton_op`` ops whose bodies launch the same kernels
  through ``wrap_triton``, so Inductor sees the Triton kernels, launches them from its generated code,
  and CUDA graphs (``mode="reduce-overhead"``) can capture them.

Tensors reach the kernels as ``(batch, heads, n, d)`` views with their strides (3-D and 2-D inputs have one
head; dims before the head dim fold into batch), so the model's Q, K, V, views of ``(batch, n, heads, d)``
projections, and its dO are read where they lie: a tensor is copied only when the kernels cannot read it (a last
dim that is not contiguous, such as the stride-0 dO of ``o.sum().backward()``; see :func:`_kernel_input`). dQ, dK
and dV take their inputs' layouts, and O takes V's (Q's when their shapes differ): RoPE leaves the model's Q
contiguous but V in the projection's order, so O in V's order makes the model's ``h s d -> s (h d)`` rearrange a
view. O comes back in Q's shape and L, contiguous float32, in Q's shape without the last dim.

``CS336_FLASH_TMA`` (``none``, ``forward``, ``backward`` or ``both``, read at import) has both paths launch the named
kernels with their tiles moved through tensor descriptors (Hopper or newer; a clear error elsewhere), as pinned
configs do with ``tma=True``. ``CS336_FLASH_GLUON`` (``none``, the default, ``forward``, ``backward`` or ``both``;
read at import) puts the hand warp-specialised Gluon kernels where they apply (Hopper, 16-bit, causal, d = 64; the
tensors in layouts their descriptors move, the model's among them, checked per call), the Triton kernels elsewhere:
``forward`` has the eager forward (and :func:`launch_forward` without a pinned config) launch
:mod:`~cs336_systems.flash_attention.gluon_forward` (:func:`_gluon_forward_for`); ``backward`` has the eager backward
and, under ``torch.compile``, the opaque op ``cs336_systems::gluon_attention_backward`` launch
:mod:`~cs336_systems.flash_attention.gluon_backward` (:func:`_gluon_backward_for`: lengths a multiple of 64 too).
The ``torch.compile`` forward op keeps the Triton forward, and the compiled backward takes the Gluon kernel only
through that opaque op: Inductor wraps only Triton kernels whose descriptors it can rebuild
(``TensorDescriptor.from_tensor``), and a Gluon kernel's descriptors carry shared-memory layouts it knows nothing of.
"""

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import torch
import triton
from jaxtyping import Float
from torch import Tensor
from torch.library import triton_op, wrap_triton

from cs336_systems.flash_attention.kernel_launch import Grid, KernelLaunch
from cs336_systems.flash_attention.pytorch_tiled import check_attention_inputs

if TYPE_CHECKING:
    from cs336_systems.flash_attention.gluon_forward import GluonForwardLaunch

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
PREPROCESS_BLOCK_M = 128
STRIDE_MULTIPLE = 16
"""Elements. Triton specialises an integer argument on its divisibility by 16 (and on equality with 1), and a
kept launch (``KernelLaunch``) must fit every later call of its shape: the kernels take only strides that are
multiples of 16, which every layout of rows of a power-of-two head size (16 or more) has."""
INT32_LIMIT = 2**31
"""Strides and one row's offsets (``position * stride``) must fit the kernels' int32 arithmetic."""
MAX_PLANS = 256
"""Shapes whose launch plans are kept; the cache starts over beyond that (a sweep over many shapes)."""
TMA_ENV = "CS336_FLASH_TMA"
TMA_CHOICES = {
    "none": (False, False, False),
    "forward": (True, False, False),
    "backward": (False, True, False),
    "both": (True, True, False),
    "atomic_dq": (True, True, True),
}


def _autotuned_tma() -> tuple[bool, bool, bool]:
    """(forward, backward, atomic dQ): whether the autotuned launches (eager, ``torch.compile`` and the launchers
    without a pinned config) move tiles through tensor descriptors, and whether the backward is dK/dV programs alone
    adding dQ by TMA reductions (``atomic_dq``: with TMA in both passes), from ``CS336_FLASH_TMA`` at import (``none``
    by default). A switch rather than a default, so a GPU run can time the leaderboard and training each way without
    edits."""
    text = os.environ.get(TMA_ENV, "none")
    if text not in TMA_CHOICES:
        raise ValueError(f"{TMA_ENV} must be one of {', '.join(TMA_CHOICES)}; got {text!r}")
    return TMA_CHOICES[text]


AUTOTUNED_TMA = _autotuned_tma()


def autotuned_tma_name() -> str:
    """The ``CS336_FLASH_TMA`` value in force (``none`` when unset), for benchmarks to record with their timings."""
    return next(name for name, value in TMA_CHOICES.items() if value == AUTOTUNED_TMA)


GLUON_ENV = "CS336_FLASH_GLUON"
GLUON_CHOICES = {"none": (False, False), "forward": (True, False), "backward": (False, True), "both": (True, True)}


def _gluon_switch() -> tuple[bool, bool]:
    """(forward, backward) from ``CS336_FLASH_GLUON`` at import (``none`` by default)."""
    text = os.environ.get(GLUON_ENV, "none")
    if text not in GLUON_CHOICES:
        raise ValueError(f"{GLUON_ENV} must be one of {', '.join(GLUON_CHOICES)}; got {text!r}")
    return GLUON_CHOICES[text]


def _autotuned_gluon() -> bool:
    """Whether the autotuned forward (eager, and the launchers without a pinned config) is the Gluon kernel where it
    applies. Opt-in: on an H200 it is faster than the Triton forward at 2048-16384 tokens (batch 16 x 16 heads), but
    14 % slower in the ``small`` model's training step at 1024 (batch 16 x 12 heads, 103 against 90 µs a call), where
    training is timed (sixteenth run)."""
    return _gluon_switch()[0]


def _autotuned_gluon_backward() -> bool:
    """Whether the backward without a pinned config (eager, and under ``torch.compile``) is the Gluon kernel where it
    applies. Opt-in until its 1024 training rows are measured: at batch 4 x 12 heads, n = 4096 its kernel took
    0.674-0.711 ms against 0.762 for the Triton backward's, and compiled training 0.996x / 0.998x SDPA's tokens/s
    against 0.971x / 0.972x (nineteenth and seventeenth H200 runs)."""
    return _gluon_switch()[1]


AUTOTUNED_GLUON = _autotuned_gluon()
AUTOTUNED_GLUON_BACKWARD = _autotuned_gluon_backward()


def autotuned_gluon_name() -> str:
    """The ``CS336_FLASH_GLUON`` value in force (``none`` when unset), for benchmarks to record with their timings."""
    switch = (AUTOTUNED_GLUON, AUTOTUNED_GLUON_BACKWARD)
    return next(name for name, value in GLUON_CHOICES.items() if value == switch)


def _kernels() -> ModuleType:
    """Import the Triton kernels on first use: ``triton.jit`` picks compile or interpret mode at
    decoration time, and tests switch on ``TRITON_INTERPRET`` after this module may be imported."""
    return importlib.import_module("cs336_systems.flash_attention.triton_kernels")


def _gluon() -> ModuleType:
    """The Gluon forward, imported on first use: only ``CS336_FLASH_GLUON`` needs it."""
    return importlib.import_module("cs336_systems.flash_attention.gluon_forward")


def _gluon_backward_module() -> ModuleType:
    """The Gluon backward, imported on first use."""
    return importlib.import_module("cs336_systems.flash_attention.gluon_backward")


def _gluon_backward_for(q4: Tensor, k4: Tensor, v4: Tensor, is_causal: bool) -> bool:
    """Whether the Gluon backward takes a plan of these ``(batch, heads, n, d)`` inputs: ``CS336_FLASH_GLUON`` asks
    for it and :func:`~cs336_systems.flash_attention.gluon_backward.gluon_backward_refusal` accepts the case. Each
    call still checks the layouts (:meth:`_Plan.run_backward`)."""
    if not AUTOTUNED_GLUON_BACKWARD:
        return False
    capability = torch.cuda.get_device_capability(q4.device) if q4.device.type == "cuda" else None
    rows, n_heads, n_queries, head_dim = q4.shape
    dtypes = tuple(str(t.dtype) for t in (q4, k4, v4))
    refusal = _gluon_backward_module().gluon_backward_refusal(
        capability, dtypes, is_causal, head_dim, n_queries, k4.shape[2], rows * n_heads
    )
    return refusal is None


def _gluon_forward_for(
    q4: Tensor, k4: Tensor, v4: Tensor, is_causal: bool, forward_config: "ForwardConfig | None"
) -> "GluonForwardLaunch | None":
    """The Gluon forward's launch for a plan of these ``(batch, heads, n, d)`` inputs when it takes their forwards:
    ``CS336_FLASH_GLUON=forward``, no pinned config, and a case
    :func:`~cs336_systems.flash_attention.gluon_forward.gluon_forward_refusal` accepts; None for the Triton forward.
    Each call still checks the layout (:meth:`_Plan.run_forward`)."""
    if not AUTOTUNED_GLUON or forward_config is not None:
        return None
    gluon = _gluon()
    capability = torch.cuda.get_device_capability(q4.device) if q4.device.type == "cuda" else None
    rows, n_heads, n_queries, head_dim = q4.shape
    dtypes = tuple(str(t.dtype) for t in (q4, k4, v4))
    refusal = gluon.gluon_forward_refusal(
        capability, dtypes, is_causal, head_dim, n_queries, k4.shape[2], rows * n_heads
    )
    return gluon.gluon_forward_launch(tuple(q4.shape), dtypes[0]) if refusal is None else None


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


def _as_heads(t: Float[Tensor, "... n d"]) -> Float[Tensor, "batch heads n d"]:
    """A ``(batch, heads, n, d)`` view: one head for 2-D and 3-D tensors; dims before the head dim fold into batch
    (a copy only where they cannot, as ``reshape`` does)."""
    if t.dim() == 4:
        return t
    if t.dim() < 4:
        return t.reshape(-1, 1, *t.shape[-2:])
    return t.reshape(-1, *t.shape[-3:])


def _row_strides(t4: Tensor) -> tuple[int, int, int]:
    """The batch, head and sequence strides of a ``(batch, heads, n, d)`` tensor, 0 for a dim of size 1 (never
    stepped along: its stride, often 1 or arbitrary, would only change Triton's specialisation)."""
    return tuple(stride if size > 1 else 0 for size, stride in zip(t4.shape[:3], t4.stride()[:3], strict=True))


def _readable(t4: Tensor) -> bool:
    """Whether the kernels can index this ``(batch, heads, n, d)`` tensor as it lies."""
    strides = _row_strides(t4)
    return (
        t4.stride(3) == 1
        and all(stride % STRIDE_MULTIPLE == 0 and stride < INT32_LIMIT for stride in strides)
        and t4.shape[2] * strides[2] < INT32_LIMIT
    )


def _require_readable(t4: Tensor) -> None:
    """A clear error for a tensor the launcher must not copy (a caller's output, or a tuning input) that the kernels
    cannot index. Outputs the launchers allocate need no check: ``empty_like`` of a readable input lays d last and
    every other stride as a product with the head size, a power of two of at least 16."""
    if not _readable(t4):
        raise ValueError(
            f"the kernels need a contiguous last dim and (batch, head, sequence) strides that are multiples of "
            f"{STRIDE_MULTIPLE} below 2**31; got shape {tuple(t4.shape)}, strides {t4.stride()}"
        )


def _kernel_input(t: Float[Tensor, "... n d"]) -> Float[Tensor, "batch heads n d"]:
    """``t`` as a ``(batch, heads, n, d)`` view the kernels read where it lies, or a contiguous copy where they cannot
    (a last dim that is not contiguous, e.g. the stride-0 dO of ``o.sum().backward()``, which Triton could not load
    vectorised anyway; strides of another alignment or too large for int32 offsets)."""
    t4 = _as_heads(t)
    return t4 if _readable(t4) else t4.contiguous()


def _empty_output(q4: Tensor, v4: Tensor) -> Tensor:
    """O for these ``(batch, heads, n, d)`` inputs: in V's layout when Q and V have one shape (see the module
    docstring), in Q's otherwise. ``empty_like`` keeps a dense tensor's strides and lays a strided view's elements
    out densely in the same dim order."""
    return torch.empty_like(v4 if v4.shape == q4.shape else q4)


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
    Q, K, V and O through tensor descriptors (Hopper's tensor memory accelerator): 4 % faster than the best pointer
    forward on an H200 (19.52 ms with 128 x 128 tiles, 4 warps, 3 stages, against 20.33; batch 16 x 16 heads,
    n = 16384, d = 64, bf16, causal). Outside the autotuned path unless ``CS336_FLASH_TMA`` puts it there.

    ``poly_exp2`` computes half of each key tile's exponentials with a degree-3 polynomial on the FMA units
    (FlashAttention-4's trick; ``triton_kernels.poly_exp2``), to halve the special-function unit's work. Each key
    tile is then two halves (two dots for the scores, two for P·V), so ``block_n`` must be at least 32; 16-bit inputs
    only (its 8.6e-5 relative error is below bfloat16's and float16's rounding of P, not float32's). Pinned launches
    only, and slower: 26.49 ms at best against 20.47 with pointers, 26.80 against 19.65 with TMA, on an H200 at the
    shape above (BENCHMARKS.md, eighth H200 run): there the exponentials are not what bounds the forward."""

    block_m: int
    block_n: int
    num_warps: int = 4
    num_stages: int = 3
    tma: bool = False
    poly_exp2: bool = False

    def __post_init__(self):
        if self.poly_exp2 and self.block_n < 32:
            raise ValueError(
                f"poly_exp2 splits each key tile into two halves of at least 16 keys (tl.dot's minimum): block_n must "
                f"be >= 32; got {self.block_n}"
            )

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
    its best against 61.53 ms for the dK/dV and dQ programs; BENCHMARKS.md, fifth H200 run); with ``tma`` too, each
    dQ tile is added by one TMA reduction instead of one atomic per element. ``tma`` moves Q, K, V, dO, dQ, dK and dV
    through tensor descriptors, as the forward's does: 2.3 % faster than the
    best pointer backward on an H200 (62.31 ms with the 32/128 + 128/64 tiles, 4 warps, 4 stages, against 63.77;
    BENCHMARKS.md, seventh H200 run). Outside the autotuned path unless ``CS336_FLASH_TMA`` puts it there."""

    dkdv_block_m: int
    dkdv_block_n: int
    dq_block_m: int
    dq_block_n: int
    num_warps: int = 4
    num_stages: int = 3
    atomic_dq: bool = False
    tma: bool = False

    def meta(self) -> dict:
        return {
            "BLOCK_M1": self.dkdv_block_m,
            "BLOCK_N1": self.dkdv_block_n,
            "BLOCK_M2": self.dq_block_m,
            "BLOCK_N2": self.dq_block_n,
            "num_warps": self.num_warps,
            "num_stages": self.num_stages,
        }


def _forward_grid(rows: int, n_queries: int) -> Grid:
    return lambda meta: (_cdiv(n_queries, meta["BLOCK_M"]), rows)


def _backward_grid(rows: int, n_queries: int, n_keys: int, dkdv: bool = True, dq: bool = True) -> Grid:
    """dK/dV programs (one per key tile) followed by dQ programs (one per query tile), per row (batch element and
    head).

    The flags pick the counts with ``if`` rather than multiplying them: under dynamic shapes the lengths are
    SymInts, and torch 2.11 turns ``SymInt * bool`` into a sympy product with a boolean, which sympy rejects."""

    def grid(meta: dict) -> tuple[int, int]:
        dkdv_programs = _cdiv(n_keys, meta["BLOCK_N1"]) if dkdv else 0
        dq_programs = _cdiv(n_queries, meta["BLOCK_M2"]) if dq else 0
        return dkdv_programs + dq_programs, rows

    return grid


def _backward_switches(atomic_dq: bool, tma: bool, passes: tuple[bool, bool] = (True, True)) -> dict:
    """The backward kernel's program switches (its grid follows ``DKDV`` and ``DQ``): with ``atomic_dq`` only dK/dV
    programs run, and add dQ themselves."""
    return {"DKDV": passes[0], "DQ": passes[1] and not atomic_dq, "ATOMIC_DQ": atomic_dq, "USE_TMA": tma}


def _preprocess_grid(rows: int, n_queries: int) -> tuple[int, int]:
    return (_cdiv(n_queries, PREPROCESS_BLOCK_M), rows)


def _scalars(n_heads: int, n_queries: int, n_keys: int) -> tuple[int, int, int, int]:
    """The kernels' scalar arguments: heads per batch element, lengths and the autotune length bucket (the softmax
    scale is a constant of the kernels' ``HEAD_DIM``: no float is passed, since launchers disagree on a float's
    type)."""
    return n_heads, n_queries, n_keys, _length_bucket(n_queries, n_keys)


class _Plan:
    """Everything a call on one (Q shape, K shape, dtype, device, causal) needs besides the tensors."""

    def __init__(
        self,
        rows: int,
        n_heads: int,
        n_queries: int,
        n_keys: int,
        head_dim: int,
        is_causal: bool,
        forward_config: ForwardConfig | None = None,
        backward_config: BackwardConfig | None = None,
        passes: tuple[bool, bool] = (True, True),
        gluon: "GluonForwardLaunch | None" = None,
        gluon_backward: bool = False,
    ):
        kernels = _kernels()
        self.gluon = gluon
        self.gluon_backward = gluon_backward
        self.scalars = _scalars(n_heads, n_queries, n_keys)
        common = {"HEAD_DIM": head_dim, "IS_CAUSAL": is_causal}
        self.forward_tma = AUTOTUNED_TMA[0] if forward_config is None else forward_config.tma
        poly_exp2 = forward_config is not None and forward_config.poly_exp2
        self.forward = KernelLaunch(
            kernels.flash_fwd_kernel,
            _forward_grid(rows, n_queries),
            {**common, "USE_TMA": self.forward_tma, "POLY_EXP2": poly_exp2},
            n_pointers=5,
            meta=None if forward_config is None else forward_config.meta(),
        )
        self.preprocess = KernelLaunch(
            kernels.flash_bwd_preprocess_kernel,
            lambda meta: _preprocess_grid(rows, n_queries),
            {"HEAD_DIM": head_dim},
            n_pointers=3,
            meta={"BLOCK_M": PREPROCESS_BLOCK_M},
        )
        if backward_config is None:
            self.backward_tma, self.atomic_dq = AUTOTUNED_TMA[1], AUTOTUNED_TMA[2]
        else:
            self.backward_tma, self.atomic_dq = backward_config.tma, backward_config.atomic_dq
        if self.atomic_dq and passes != (True, True):
            raise ValueError(f"atomic_dq computes dK, dV and dQ in the dK/dV programs; got passes {passes}")
        switches = _backward_switches(self.atomic_dq, self.backward_tma, passes)
        self.backward = KernelLaunch(
            kernels.flash_bwd_atomic_dq_kernel if self.atomic_dq else kernels.flash_bwd_kernel,
            _backward_grid(rows, n_queries, n_keys, switches["DKDV"], switches["DQ"]),
            {**common, **switches},
            n_pointers=9,
            meta=None if backward_config is None else backward_config.meta(),
        )

    def run_forward(self, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor) -> None:
        """O and L of ``(batch, heads, n, d)`` tensors the kernels can read (:func:`_kernel_input`): by the Gluon
        forward where the plan has it (:func:`_gluon_forward_for`) and its descriptors can move these tensors as they
        lie, else by the Triton forward."""
        if self.gluon is not None and self.gluon.launch(q, k, v, out, lse) is None:
            return
        if self.forward_tma:
            _prepare_tma(q, k, v, out)
        strides = (*_row_strides(q), *_row_strides(k), *_row_strides(v), *_row_strides(out))
        self.forward(q, k, v, out, lse, *strides, *self.scalars)

    def run_backward(self, q, k, v, out, grad_out, lse, dq, dk, dv) -> None:
        """D = rowsum(O ∘ dO) into a fresh buffer, then dQ, dK, dV; with atomic dQ (and the Gluon backward), dQ is
        summed in a zeroed float32 buffer and copied into ``dq``. The Gluon backward runs where the plan has it and
        its descriptors can move these tensors as they lie, the Triton backward otherwise."""
        if self.gluon_backward and self._run_gluon_backward(q, k, v, out, grad_out, lse, dq, dk, dv):
            return
        if self.atomic_dq:
            dq_sum = torch.zeros(dq.shape, dtype=torch.float32, device=dq.device)
            self._run_backward(q, k, v, out, grad_out, lse, dq_sum, dk, dv)
            dq.copy_(dq_sum)
        else:
            self._run_backward(q, k, v, out, grad_out, lse, dq, dk, dv)

    def _run_gluon_backward(self, q, k, v, out, grad_out, lse, dq, dk, dv) -> bool:
        """The Gluon backward's launch (D first, into a zeroed float32 dQ); False where its descriptors cannot move
        these tensors (its launcher checks the layouts once and launches nothing then; the D and dQ buffers of that
        rare case are dropped, and the Triton backward makes its own)."""
        delta = self._delta(out, grad_out, lse)
        dq_sum = torch.zeros(dq.shape, dtype=torch.float32, device=dq.device)
        if _gluon_backward_module().launch_gluon_backward(q, k, v, grad_out, lse, delta, dq_sum, dk, dv) is not None:
            return False
        dq.copy_(dq_sum)
        return True

    def _delta(self, out: Tensor, grad_out: Tensor, lse: Tensor) -> Tensor:
        """D = rowsum(O ∘ dO), float32, in L's shape."""
        delta = torch.empty_like(lse)
        self.preprocess(out, grad_out, delta, *_row_strides(out), *_row_strides(grad_out), *self.scalars[:2])
        return delta

    def _run_backward(self, q, k, v, out, grad_out, lse, dq, dk, dv) -> None:
        if self.backward_tma:
            _prepare_tma(q, k, v, grad_out, dq, dk, dv)
        delta = self._delta(out, grad_out, lse)
        strides = (*_row_strides(q), *_row_strides(k), *_row_strides(v), *_row_strides(grad_out))
        strides += (*_row_strides(dq), *_row_strides(dk), *_row_strides(dv))
        self.backward(q, k, v, grad_out, lse, delta, dq, dk, dv, *strides, *self.scalars)


class _EagerPlan(_Plan):
    """A plan for the autograd Function: autotuned launches (the Gluon forward where ``CS336_FLASH_GLUON`` asks and
    it applies) plus the sizes of L, kept as ints (``torch.empty`` parses unpacked ints faster than a size)."""

    def __init__(self, q: Tensor, k: Tensor, v: Tensor, is_causal: bool):
        q4, k4, v4 = _as_heads(q), _as_heads(k), _as_heads(v)
        rows, n_heads, n_queries, head_dim = q4.shape
        gluon = _gluon_forward_for(q4, k4, v4, is_causal, None)
        super().__init__(
            rows * n_heads, n_heads, n_queries, k.shape[-2], head_dim, is_causal, gluon=gluon,
            gluon_backward=_gluon_backward_for(q4, k4, v4, is_causal),
        )  # fmt: skip
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
        plan = _PLANS[key] = _EagerPlan(q, k, v, is_causal)
    return plan


def _check_rows(*tensors: Tensor) -> None:
    """L and D are contiguous ``(rows, n)``."""
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError(f"the launchers take a contiguous L; got strides {t.stride()}")


def _tma_scratch(size: int, alignment: int, stream: int | None) -> Tensor:
    """Global memory for the descriptors a kernel builds on the device, from PyTorch's caching allocator (its
    blocks are 512-byte aligned; Triton asks for at most 128)."""
    return torch.empty(size, dtype=torch.int8, device="cuda")


def _check_tma_device(device: torch.device) -> None:
    """A clear error, not a fallback, where tensor descriptors are asked for on a GPU older than Hopper."""
    interpreted = os.environ.get("TRITON_INTERPRET", "0") == "1"
    if not interpreted and device.type == "cuda" and torch.cuda.get_device_capability(device) < (9, 0):
        name = torch.cuda.get_device_name(device)
        raise ValueError(f"the TMA kernels need a GPU of compute capability 9.0 or newer (Hopper); got {name}")


def _prepare_tma(*tensors: Tensor) -> None:
    """Raise a clear error unless a kernel can move these ``(batch, heads, n, d)`` tensors through tensor
    descriptors, then give Triton the allocator their launch needs (a context variable: set where the launch
    happens, not once per process: the eager backward may run on autograd's device thread). Descriptors need 16-byte
    aligned starts and strides: the strides are multiples of ``STRIDE_MULTIPLE`` elements (checked with the views,
    :func:`_launch_views`, or made so by :func:`_kernel_input`), so only the starts are checked here. Under
    ``torch.compile`` the ops check with :func:`_check_traced_tma` instead."""
    _check_tma_device(tensors[0].device)
    _check_tma_starts("address", [t.data_ptr() for t in tensors])
    triton.set_allocator(_tma_scratch)


def _check_traced_tma(*tensors: Tensor) -> None:
    """:func:`_prepare_tma` for the ``triton_op`` bodies, which see fake tensors (no addresses) under
    ``torch.compile``: the starts are checked as byte offsets into their storages (the caching allocator aligns
    storages to 512 bytes), and Inductor's launcher sets its own allocator before each launch of a kernel that needs
    one."""
    _check_tma_device(tensors[0].device)
    _check_tma_starts("byte offset into its storage", [t.storage_offset() * t.element_size() for t in tensors])


def _check_tma_starts(what: str, starts: list[int]) -> None:
    for start in starts:
        if start % 16:
            raise ValueError(f"the TMA kernels need 16-byte aligned tensors; got one at {what} {start:#x}")


def _launch_views(*tensors: Tensor) -> list[Tensor]:
    """``(batch, heads, n, d)`` views of the launchers' tensors, which are used where they lie (timed as given,
    written in place): a clear error where the kernels cannot read one."""
    views = [_as_heads(t) for t in tensors]
    for t, view in zip(tensors, views, strict=True):
        if view.untyped_storage().data_ptr() != t.untyped_storage().data_ptr():
            raise ValueError(f"the launchers need dims before (heads, n, d) that fold into one; got {t.stride()}")
        _require_readable(view)
    return views


def launch_forward(
    q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, is_causal: bool, config: ForwardConfig | None = None
) -> None:
    """Fill O and L for ``(..., n, d)`` tensors in any layout the kernels read (a contiguous last dim) and a
    contiguous L; ``config`` pins the tiles instead of autotuning (and may ask for the TMA forward; without one,
    ``CS336_FLASH_TMA`` and ``CS336_FLASH_GLUON`` decide, and for the polynomial exponentials, 16-bit inputs only)."""
    _check_rows(lse)
    if config is not None and config.poly_exp2 and torch.float32 in (q.dtype, k.dtype, v.dtype):
        raise ValueError("poly_exp2's polynomial is accurate to 16-bit P, not float32: pass bfloat16 or float16 inputs")
    q4, k4, v4, o4 = _launch_views(q, k, v, o)
    rows, n_heads, n_queries, head_dim = q4.shape
    gluon = _gluon_forward_for(q4, k4, v4, is_causal, config)
    shape = (rows * n_heads, n_heads, n_queries, k4.shape[2], head_dim, is_causal)
    plan = _Plan(*shape, forward_config=config, gluon=gluon)
    plan.run_forward(q4, k4, v4, o4, lse)


def launch_backward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    grad_out: Tensor,
    lse: Tensor,
    dq: Tensor,
    dk: Tensor,
    dv: Tensor,
    is_causal: bool,
    config: BackwardConfig | None = None,
    passes: tuple[bool, bool] = (True, True),
) -> None:
    """Fill dQ, dK, dV (D preprocessing, then the backward kernel) for tensors as :func:`launch_forward` takes them;
    ``passes`` = (dK/dV, dQ) restricts the backward launch to one kind of program, as the tuning script does. A
    config with ``atomic_dq`` accumulates dQ in a zeroed float32 buffer (by element atomics, or by TMA reductions
    with ``tma``) and copies it into ``dq`` (both timed with it)."""
    _check_rows(lse)
    q4, k4, v4, o4, do4, dq4, dk4, dv4 = _launch_views(q, k, v, o, grad_out, dq, dk, dv)
    rows, n_heads, n_queries, head_dim = q4.shape
    shape = (rows * n_heads, n_heads, n_queries, k4.shape[2], head_dim, is_causal)
    plan = _Plan(*shape, backward_config=config, passes=passes)
    plan.run_backward(q4, k4, v4, o4, do4, lse, dq4, dk4, dv4)


def _eager_forward(
    plan: _EagerPlan, q: Float[Tensor, "... n d"], k: Float[Tensor, "... m d"], v: Float[Tensor, "... m d"]
) -> tuple[Float[Tensor, "... n d"], Float[Tensor, "... n"]]:
    """O (in V's layout, or Q's: :func:`_empty_output`) and L."""
    q4, k4, v4 = _kernel_input(q), _kernel_input(k), _kernel_input(v)
    out = _empty_output(q4, v4)
    lse = torch.empty(*plan.lse_size, dtype=torch.float32, device=plan.device)
    plan.run_forward(q4, k4, v4, out, lse)
    return out.view(q.shape), lse


def _eager_backward(
    plan: _EagerPlan, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, grad_out: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """dQ, dK, dV in their inputs' layouts; dO is read where it lies unless the kernels cannot read it
    (:func:`_kernel_input`); O and L are the forward's own outputs."""
    q4, k4, v4, out4, grad_out4 = (_kernel_input(t) for t in (q, k, v, out, grad_out))
    dq, dk, dv = torch.empty_like(q4), torch.empty_like(k4), torch.empty_like(v4)
    plan.run_backward(q4, k4, v4, out4, grad_out4, lse, dq, dk, dv)
    return dq.view(q.shape), dk.view(k.shape), dv.view(v.shape)


@triton_op("cs336_systems::flash_attention_forward", mutates_args=())
def flash_attention_forward(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    """The forward for ``torch.compile``: O (Q's shape and dtype, V's layout as in the eager path) and float32 L
    (Q's shape without d)."""
    check_triton_inputs(q, k, v)
    q4, k4, v4 = _kernel_input(q), _kernel_input(k), _kernel_input(v)
    rows, n_heads, n_queries, head_dim = q4.shape
    out = _empty_output(q4, v4)
    lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    if AUTOTUNED_TMA[0]:
        _check_traced_tma(q4, k4, v4, out)
    strides = (*_row_strides(q4), *_row_strides(k4), *_row_strides(v4), *_row_strides(out))
    wrap_triton(_kernels().flash_fwd_kernel)[_forward_grid(rows * n_heads, n_queries)](
        q4, k4, v4, out, lse, *strides, *_scalars(n_heads, n_queries, k4.shape[2]),
        HEAD_DIM=head_dim, IS_CAUSAL=is_causal, USE_TMA=AUTOTUNED_TMA[0], POLY_EXP2=False,
    )  # fmt: skip
    return out.view(q.shape), lse


def inductor_sees_descriptor_reductions() -> bool:
    """Whether Inductor's analysis of user Triton kernels counts a tensor descriptor's ``atomic_add``
    (``tt.descriptor_reduce``) as a write. torch 2.11's does not: under ``torch.compile`` it took the atomic backward's
    float32 dQ for the zeros it was created as and folded the copy into zeros (dQ all zero on an H200; BENCHMARKS.md,
    eleventh H200 run), so there the compiled backward keeps its dQ programs."""
    from torch._higher_order_ops import triton_kernel_wrap

    return "tt.descriptor_reduce" in getattr(triton_kernel_wrap, "_KERNEL_ACCESS_OPS", {})


@triton_op("cs336_systems::flash_attention_backward", mutates_args=())
def flash_attention_backward(
    q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, grad_out: Tensor, is_causal: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """The backward for ``torch.compile``: dQ, dK, dV in the inputs' shapes and layouts (``atomic_dq`` only where
    Inductor sees the descriptor reductions: :func:`inductor_sees_descriptor_reductions`)."""
    q4, k4, v4, o4, do4 = (_kernel_input(t) for t in (q, k, v, o, grad_out))
    rows, n_heads, n_queries, head_dim = q4.shape
    scalars = _scalars(n_heads, n_queries, k4.shape[2])
    delta = torch.empty_like(lse)
    dq, dk, dv = torch.empty_like(q4), torch.empty_like(k4), torch.empty_like(v4)
    atomic_dq = AUTOTUNED_TMA[2] and inductor_sees_descriptor_reductions()
    dq_sum = torch.zeros(dq.shape, dtype=torch.float32, device=dq.device) if atomic_dq else dq
    if AUTOTUNED_TMA[1]:
        _check_traced_tma(q4, k4, v4, do4, dq_sum, dk, dv)
    kernels = _kernels()
    o_strides, do_strides = _row_strides(o4), _row_strides(do4)
    wrap_triton(kernels.flash_bwd_preprocess_kernel)[_preprocess_grid(rows * n_heads, n_queries)](
        o4, do4, delta, *o_strides, *do_strides, *scalars[:2], HEAD_DIM=head_dim, BLOCK_M=PREPROCESS_BLOCK_M
    )
    strides = (*_row_strides(q4), *_row_strides(k4), *_row_strides(v4), *do_strides)
    strides += (*_row_strides(dq_sum), *_row_strides(dk), *_row_strides(dv))
    kernel = kernels.flash_bwd_atomic_dq_kernel if atomic_dq else kernels.flash_bwd_kernel
    switches = _backward_switches(atomic_dq, AUTOTUNED_TMA[1])
    wrap_triton(kernel)[_backward_grid(rows * n_heads, n_queries, k4.shape[2], switches["DKDV"], switches["DQ"])](
        q4, k4, v4, do4, lse, delta, dq_sum, dk, dv, *strides, *scalars, HEAD_DIM=head_dim, IS_CAUSAL=is_causal,
        **switches,
    )  # fmt: skip
    if atomic_dq:
        dq.copy_(dq_sum)
    return dq.view(q.shape), dk.view(k.shape), dv.view(v.shape)


@torch.library.custom_op("cs336_systems::gluon_attention_backward", mutates_args=())
def gluon_attention_backward(
    q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, grad_out: Tensor, is_causal: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """The backward for ``torch.compile`` with ``CS336_FLASH_GLUON=backward`` or ``both``: an op Inductor calls as it
    is (it cannot wrap a Gluon kernel), whose body is the eager backward, so the plan decides on the real tensors
    whether the Gluon kernel takes them (:func:`_gluon_backward_for`; the Triton backward otherwise). dQ, dK, dV in
    the inputs' shapes and the layouts :func:`_eager_backward` gives them."""
    return _eager_backward(_plan(q, k, v, is_causal), q, k, v, o, lse, grad_out)


@gluon_attention_backward.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, grad_out: Tensor, is_causal: bool):
    return tuple(torch.empty_like(_kernel_input(t)).view(t.shape) for t in (q, k, v))


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
        if torch.compiler.is_compiling() and AUTOTUNED_GLUON_BACKWARD:
            dQ, dK, dV = gluon_attention_backward(Q, K, V, Out, L, dO, ctx.is_causal)
        elif torch.compiler.is_compiling():
            dQ, dK, dV = flash_attention_backward(Q, K, V, Out, L, dO, ctx.is_causal)
        else:
            dQ, dK, dV = _eager_backward(ctx.plan, Q, K, V, Out, L, dO)
        return dQ, dK, dV, None
