"""A hand warp-specialised FlashAttention-3-style causal forward in Gluon (Triton's lower-level language), and its
launch: the opt-in fast forward of ``FlashAttentionTriton`` (``CS336_FLASH_GLUON=forward``, ``triton_function``).

One producer warp streams K and V tiles by TMA into a ring of ``NUM_STAGES`` shared-memory buffers guarded by
"ready" and "empty" mbarriers, with few registers (``setmaxnreg``), while one to four consumer warpgroups run
asynchronous wgmma (S = Q K^T, O += P V) and the online softmax in registers; the causal mask only on the diagonal
tiles. The modes (:data:`MODES`) are constexpr branches of the one kernel: ``sync`` waits for each matmul, ``async``
issues S of the next key tile before the softmax of this one and lets P V of this tile run during it
(FlashAttention-3's intra-warpgroup overlap), ``split_`` gives each consumer warpgroup its own partition, query rows
and Q/O tile, so the warpgroups drift apart (one's softmax runs while another's wgmma does), and ``pingpong``
arranges that by hand, as FlashAttention-3 does: two async partitions take turns to issue their matmuls.

The default, :class:`GluonForwardConfig` ``()`` (256 x 64 tiles, four split sync warpgroups of 64 rows, 2 stages,
``maxnreg`` 96), was the best of ``benchmarks/probe_gluon_forward.py`` on an H200 (torch 2.11, Triton 3.6) at batch
16 x 16 heads, n = 16384, d = 64, bf16, causal: 19.0-19.5 ms against cuDNN's 19.3-19.4 ms and the autotuned Triton
forward's 20.0-20.7 ms, exact against float32. It reads Q, K, V and writes O, each in its own layout (contiguous
``(batch, heads, n, d)``, or the model's views of ``(batch, n, heads, d)`` projections, among others:
:func:`gluon_layout_refusal`), through 2-D descriptors over its storage as ``[rows, sequence stride]`` matrices; a
ragged last query tile stores O with a masked pointer store instead, since a box past a row's end would write another
row's O. L is natural-log, float32, contiguous ``(rows, n)``, as the backward reads it.

Written for Triton 3.6's Gluon (the GPU image's); 3.9 (the locked environment's) renamed the TMA copies, resolved
once at import (:data:`TMA_LOAD`, :data:`TMA_STORE`). This module imports no torch, so that the probe's compile
check runs in a Triton-only environment.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

if TYPE_CHECKING:
    from collections.abc import Callable

    from jaxtyping import Float
    from torch import Tensor


def _renamed(new: str, old: str):
    """A TMA copy by its Triton 3.9 name, else its 3.6 one (3.9 keeps the old name only to raise), or None."""
    return getattr(tma, new, None) or getattr(tma, old, None)


TMA_LOAD = _renamed("async_load", "async_copy_global_to_shared")
TMA_STORE = _renamed("async_store", "async_copy_shared_to_global")
MODES = ("sync", "async", "split_sync", "split_async", "pingpong")
HEAD_DIM = 64
DTYPES = {"torch.bfloat16": gl.bfloat16, "torch.float16": gl.float16}
"""The inputs the kernel takes, by ``str(torch dtype)`` (no torch import here), and their Gluon types."""
INT32_LIMIT = 2**31
"""TMA coordinates and the kernel's row offsets are int32: rows x n must stay below."""
LOG2_E = 1.4426950408889634
LN_2: gl.constexpr = gl.constexpr(0.6931471805599453)


def gluon_forward_available() -> bool:
    """Whether this Triton's Gluon has the TMA copies the kernel calls (3.6's or 3.9's names)."""
    return TMA_LOAD is not None and TMA_STORE is not None


class WarpSpecializedRegisters:
    """The register split of a warp-specialised Gluon launch, shared by the forward's and the backward's configs
    (which define ``consumer_warps``, ``consumers``, ``maxnreg`` and ``producer_registers``)."""

    consumer_warps: int
    maxnreg: int
    producer_registers: int

    @property
    def consumers(self) -> int:
        raise NotImplementedError

    @property
    def consumer_registers(self) -> int:
        """Registers per thread of each consumer partition after ``setmaxnreg``: the program's share (``maxnreg`` x
        its warps, the producer warp padded to a warpgroup) less the producer's, split evenly and rounded down to a
        multiple of 8, as the compiler does for the default partition."""
        warps = self.consumer_warps + 4
        return min(256, (self.maxnreg * warps - self.producer_registers * 4) // self.consumer_warps // 8 * 8)

    def launch_options(self) -> dict:
        """The default partition is the (first) consumer's, so its warps are the kernel's ``num_warps``."""
        return {"num_warps": self.consumer_warps // self.consumers, "maxnreg": self.maxnreg}


@dataclass(frozen=True)
class GluonForwardConfig(WarpSpecializedRegisters):
    """One launch of the Gluon forward: its tiles, mode, consumer warps (4 = one warpgroup; 8 = two, each owning
    part of the query rows in the split modes), the registers per thread at launch (``maxnreg``), which set how many
    programs share an SM, and the producer warp's after ``setmaxnreg``, which hands its spare registers to the
    consumers. Defaults: the probe's best on an H200."""

    block_m: int = 256
    block_n: int = 64
    stages: int = 2
    mode: str = "split_sync"
    consumer_warps: int = 16
    maxnreg: int = 96
    producer_registers: int = 24

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.block_n not in (64, 128) or self.block_m % self.block_n:
            raise ValueError(f"BLOCK_N must be 64 or 128 and divide BLOCK_M; got {self.block_m} x {self.block_n}")
        if self.consumer_warps % 4 or self.block_m % (16 * self.consumer_warps):
            raise ValueError(
                f"whole warpgroups of consumer warps, 16 query rows each or a multiple; got {self.consumer_warps} "
                f"warps for {self.block_m} rows"
            )
        if self.pipeline and self.stages < 2:
            raise ValueError("async holds a stage while the next loads: 2 stages at least")
        if self.mode == "pingpong" and self.consumer_warps != 8:
            raise ValueError("ping-pong takes two consumer warpgroups (8 warps)")
        if self.mode.startswith("split") and self.consumer_warps not in (4, 8, 16):
            raise ValueError("1, 2 or 4 split consumer warpgroups")

    @property
    def pipeline(self) -> bool:
        return self.mode in ("async", "split_async", "pingpong")

    @property
    def consumers(self) -> int:
        """Consumer partitions: ``split`` modes and ``pingpong`` give each warpgroup its own partition (its own query
        rows, barriers and schedule); the others run every consumer warp in one partition."""
        return self.consumer_warps // 4 if self.mode.startswith("split") or self.mode == "pingpong" else 1

    @property
    def q_rows(self) -> int:
        """Query rows per consumer partition: the Q and O tiles its descriptors move."""
        return self.block_m // self.consumers

    def kernel_constexprs(self, head_dim: int, even_n: bool) -> dict:
        """The kernel's constexpr arguments; ``even_n``: the length is a multiple of ``block_m`` (O stored by TMA)."""
        return {
            "BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "HEAD_DIM": head_dim, "NUM_STAGES": self.stages,
            "PIPELINE": self.pipeline, "CONSUMERS": self.consumers, "PINGPONG": self.mode == "pingpong",
            "CONSUMER_REGISTERS": self.consumer_registers, "PRODUCER_REGISTERS": self.producer_registers,
            "EVEN_N": even_n,
        }  # fmt: skip

    def shared_layouts(self, head_dim: int, dtype: gl.dtype) -> dict[str, gl.NVMMASharedLayout]:
        """The swizzled shared layouts of the Q/O and K/V tiles, which the descriptors and the kernel's buffers
        share."""
        return {
            "q": gl.NVMMASharedLayout.get_default_for([self.q_rows, head_dim], dtype),
            "kv": gl.NVMMASharedLayout.get_default_for([self.block_n, head_dim], dtype),
        }


def gluon_forward_refusal(
    capability: tuple[int, int] | None,
    dtypes: tuple[str, ...],
    is_causal: bool,
    head_dim: int,
    n_queries: int,
    n_keys: int,
    rows: int,
) -> str | None:
    """Why the Gluon forward cannot take this case, or None when it can: a Hopper GPU (``capability``, None off
    CUDA), one 16-bit dtype (``str`` of the torch dtypes of Q, K, V), causal, head size 64, as many keys as queries,
    and ``rows`` (batch x heads) x n within int32 coordinates. The layout is checked per call
    (:func:`gluon_layout_refusal`)."""
    if not gluon_forward_available():
        return f"Triton {triton.__version__}'s Gluon has no TMA load and store by either known name"
    if capability is None or capability[0] != 9:
        return f"a CUDA GPU of compute capability 9.x (Hopper) is needed; got {capability}"
    if len(set(dtypes)) != 1 or dtypes[0] not in DTYPES:
        return f"Q, K, V of one dtype among {', '.join(DTYPES)} are needed; got {', '.join(dtypes)}"
    if not is_causal:
        return "causal attention only"
    if head_dim != HEAD_DIM:
        return f"head size {HEAD_DIM} only; got {head_dim}"
    if n_queries != n_keys:
        return f"as many keys as queries only; got {n_queries} queries, {n_keys} keys"
    if rows * n_queries >= INT32_LIMIT:
        return f"rows x n must stay below 2**31 (int32 coordinates); got {rows} x {n_queries}"
    return None


def gluon_layout_refusal(*tensors: Tensor) -> str | None:
    """Why the descriptors cannot move these ``(batch, heads, n, d)`` tensors as they lie, or None. Each is read as
    the ``[rows, s_n]`` matrix of its storage (``s_n`` its sequence stride; the kernel's docstring), which TMA takes
    with a contiguous last dim, a 16-byte aligned base and row stride, every (batch, head) row's columns starting at
    a multiple of 16 bytes and ending within the row (``C + d <= s_n``), and int32 coordinates. The columns are
    checked without enumerating the rows: with ``c_b``, ``c_h`` the batch and head strides modulo ``s_n``, row
    (b, h) starts at column ``b * c_b + h * c_h`` when the last one, ``(batch - 1) * c_b + (heads - 1) * c_h``,
    leaves room for d columns (the contiguous layout, c = 0, and the model's ``(batch, n, heads, d)`` one, c_h = d,
    among others). And the rows past each row's end, which a ragged length's boxes read, must be another row's or
    past the storage (:func:`_rows_run_on`)."""
    for t in tensors:
        if t.dim() != 4:
            return f"(batch, heads, n, d) tensors only; got shape {tuple(t.shape)}"
        batch, heads, _, head_dim = t.shape
        stride_b, stride_h = _row_strides(t)
        stride_n, per_16_bytes = t.stride(2), 16 // t.element_size()
        layout = f"shape {tuple(t.shape)}, strides {t.stride()}"
        if t.stride(3) != 1:
            return f"a contiguous last dim only; got {layout}"
        if t.data_ptr() % 16:
            return f"16-byte aligned tensors only; got one at {t.data_ptr():#x}"
        if stride_n <= 0 or stride_n % per_16_bytes:
            return f"a sequence stride that is a positive multiple of 16 bytes only; got {layout}"
        column_b, column_h = stride_b % stride_n, stride_h % stride_n
        if column_b % per_16_bytes or column_h % per_16_bytes:
            return f"(batch, head) rows starting at multiples of 16 bytes within a sequence stride only; got {layout}"
        if (batch - 1) * column_b + (heads - 1) * column_h + head_dim > stride_n:
            return f"every (batch, head) row's d columns within one sequence stride only; got {layout}"
        if _storage_rows(t) >= INT32_LIMIT:
            return f"a storage of fewer than 2**31 sequence strides only (int32 coordinates); got {layout}"
        if not _rows_run_on(tuple(t.shape), t.stride()):
            return (
                f"(batch, head) rows that run on into each other or to the storage's end only (a ragged length's "
                f"boxes read past a row's end); got {layout}"
            )
    return None


@functools.lru_cache(maxsize=256)
def _rows_run_on(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """Whether the matrix rows just past each (batch, head) row's end belong to another row of the same tensor (at
    the same columns) or lie past the descriptor's last row (zeros): a ragged length's last key tiles read V there,
    and finite values times the masked zero probabilities add nothing, while the uninitialised gap of, say, a slice
    ``[:, :, :n]`` of a longer buffer could hold NaN. Per column start, the row starts must step by n up to the last
    row's. Cached: a pure function of the layout, checked on every call."""
    batch, heads, n, _ = shape
    stride_b, stride_h = (stride if size > 1 else 0 for size, stride in zip(shape[:2], strides[:2], strict=True))
    starts_by_column: dict[int, set[int]] = {}
    for b in range(batch):
        for h in range(heads):
            row, column = divmod(b * stride_b + h * stride_h, strides[2])
            starts_by_column.setdefault(column, set()).add(row)
    last = ((batch - 1) * stride_b + (heads - 1) * stride_h) // strides[2]
    return all(
        ordered[-1] == last and all(later - earlier == n for earlier, later in itertools.pairwise(ordered))
        for ordered in (sorted(starts) for starts in starts_by_column.values())
    )


def _row_strides(t: Tensor) -> tuple[int, int]:
    """The batch and head strides of a ``(batch, heads, n, d)`` tensor, 0 for a dim of size 1 (never stepped along,
    so its stride, often arbitrary, moves no row)."""
    return tuple(stride if size > 1 else 0 for size, stride in zip(t.shape[:2], t.stride()[:2], strict=True))


def _storage_rows(t: Tensor) -> int:
    """Rows of the ``[rows, s_n]`` matrix a descriptor spans: through the last (batch, head) row's last query, so
    that boxes past it read zeros, not memory past the tensor."""
    batch, heads, n, _ = t.shape
    stride_b, stride_h = _row_strides(t)
    return ((batch - 1) * stride_b + (heads - 1) * stride_h) // t.stride(2) + n


@gluon.jit
def _producer(
    k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, empty, k_row, k_col, v_row, v_col, num_tiles,
    BLOCK_N: gl.constexpr, NUM_STAGES: gl.constexpr,
):  # fmt: skip
    """Stream K and V tiles into the ring: wait until the consumer freed a stage, then load both into it by TMA,
    each with its own "ready" barrier so that S = Q K^T can start before V lands."""
    for j in range(num_tiles):
        stage = j % NUM_STAGES
        phase = (j // NUM_STAGES) & 1
        mbarrier.wait(empty.index(stage), phase ^ 1)  # the first round passes: a fresh barrier's "previous phase"
        mbarrier.expect(k_ready.index(stage), k_desc.block_type.nbytes)
        TMA_LOAD(k_desc, [k_row + j * BLOCK_N, k_col], k_ready.index(stage), k_smem.index(stage))
        mbarrier.expect(v_ready.index(stage), v_desc.block_type.nbytes)
        TMA_LOAD(v_desc, [v_row + j * BLOCK_N, v_col], v_ready.index(stage), v_smem.index(stage))


@gluon.jit
def _scores(q_smem, k_smem, k_ready, j, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, NUM_STAGES: gl.constexpr):
    """Issue S = Q K_j^T asynchronously once K_j landed; returns the wgmma token."""
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[gl.num_warps(), 1], instr_shape=[16, BLOCK_N, 16]
    )
    stage = j % NUM_STAGES
    mbarrier.wait(k_ready.index(stage), (j // NUM_STAGES) & 1)
    zeros = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, s_layout)
    return warpgroup_mma(q_smem, k_smem.index(stage).permute((1, 0)), zeros, use_acc=False, is_async=True)


@gluon.jit
def _softmax(s, m_i, l_i, offs_m, key_start, qk_scale, BLOCK_N: gl.constexpr, MASK: gl.constexpr):
    """The online softmax of one score tile (log2 units): P, the new row max and sum, and the factor that rescales
    the accumulator; the causal mask only where ``MASK`` (the diagonal tiles, which also hide a ragged length's keys
    past the end from every query before it)."""
    s = s * qk_scale
    if MASK:
        offs_n = key_start + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s.type.layout))
        s = gl.where(offs_m[:, None] >= offs_n[None, :], s, float("-inf"))
    m_new = gl.maximum(m_i, gl.max(s, 1))
    p = gl.exp2(s - m_new[:, None])
    alpha = gl.exp2(m_i - m_new)
    return p, m_new, l_i * alpha + gl.sum(p, 1), alpha


@gluon.jit
def _sync_step(
    q_smem, k_smem, v_smem, k_ready, v_ready, empty, j, acc, m_i, l_i, offs_m, qk_scale,
    BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, NUM_STAGES: gl.constexpr, MASK: gl.constexpr,
):  # fmt: skip
    """One key tile, each matmul waited for: S, softmax, O = O * alpha + P V, then the stage freed."""
    stage = j % NUM_STAGES
    s = _scores(q_smem, k_smem, k_ready, j, BLOCK_M, BLOCK_N, NUM_STAGES)
    s = warpgroup_mma_wait(0, deps=[s])
    p, m_i, l_i, alpha = _softmax(s, m_i, l_i, offs_m, j * BLOCK_N, qk_scale, BLOCK_N, MASK)
    acc = acc * gl.convert_layout(alpha, gl.SliceLayout(1, acc.type.layout))[:, None]
    p16 = gl.convert_layout(p.to(v_smem.dtype), gl.DotOperandLayout(operand_index=0, parent=acc.type.layout, k_width=2))
    mbarrier.wait(v_ready.index(stage), (j // NUM_STAGES) & 1)
    acc = warpgroup_mma(p16, v_smem.index(stage), acc, is_async=True)
    acc, p16 = warpgroup_mma_wait(0, deps=[acc, p16])  # P's registers too: the matmul reads them until done
    mbarrier.arrive(empty.index(stage))
    return acc, m_i, l_i


@gluon.jit
def _take_turn(turns, step, PART: gl.constexpr):
    """FlashAttention-3's ping-pong between two consumer partitions: partition 0 issues its matmuls of step k once
    partition 1 issued those of step k - 1 (the first round passes: a fresh barrier's "previous phase"), partition 1
    once partition 0 issued step k; each then arrives on the other's barrier, so that one's softmax runs while the
    other's matmuls do. Strict alternation: neither can arrive twice before the other waited."""
    mbarrier.wait(turns.index(PART), (step & 1) ^ (1 - PART))


@gluon.jit
def _async_step(
    q_smem, k_smem, v_smem, k_ready, v_ready, empty, turns, j, acc, p, alpha, m_i, l_i, offs_m, qk_scale,
    BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, NUM_STAGES: gl.constexpr, MASK: gl.constexpr,
    PART: gl.constexpr, PINGPONG: gl.constexpr,
):  # fmt: skip
    """P_j V_j overlapped with S_{j+1} and its softmax: issue S_{j+1}, rescale O and issue O += P_j V_j, wait for
    S_{j+1} alone (wgmma groups complete in order), run its softmax while P_j V_j is in flight, then wait for O
    and free stage j. With ``PINGPONG`` the two partitions take turns to issue their matmuls (``_take_turn``)."""
    stage = j % NUM_STAGES
    if PINGPONG:
        _take_turn(turns, j, PART)
    s = _scores(q_smem, k_smem, k_ready, j + 1, BLOCK_M, BLOCK_N, NUM_STAGES)
    acc = acc * gl.convert_layout(alpha, gl.SliceLayout(1, acc.type.layout))[:, None]
    p16 = gl.convert_layout(p.to(v_smem.dtype), gl.DotOperandLayout(operand_index=0, parent=acc.type.layout, k_width=2))
    mbarrier.wait(v_ready.index(stage), (j // NUM_STAGES) & 1)
    acc = warpgroup_mma(p16, v_smem.index(stage), acc, is_async=True)
    if PINGPONG:
        mbarrier.arrive(turns.index(1 - PART))
    s = warpgroup_mma_wait(1, deps=[s])
    p, m_i, l_i, alpha = _softmax(s, m_i, l_i, offs_m, (j + 1) * BLOCK_N, qk_scale, BLOCK_N, MASK)
    acc, p16 = warpgroup_mma_wait(0, deps=[acc, p16])
    mbarrier.arrive(empty.index(stage))
    return acc, p, alpha, m_i, l_i


@gluon.jit
def _store_output(
    out, o_desc, Out, L, q_smem, m_i, l_i, offs_m, o_row, o_col, stride_on, l_base, q_start, N,
    BLOCK_M: gl.constexpr, HEAD_DIM: gl.constexpr, EVEN_N: gl.constexpr,
):  # fmt: skip
    """O by TMA through Q's buffer (no matmul reads Q any more), or, for a ragged length, by a pointer store masked
    to the rows before ``N`` (a box past them would write another row's O: see the kernel); L, contiguous
    ``(rows, N)`` in natural-log units, by a masked store."""
    if EVEN_N:
        q_smem.store(out.to(q_smem.dtype))
        fence_async_shared()
        TMA_STORE(o_desc, [o_row + q_start, o_col], q_smem)
    else:
        offs_o = q_start + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, out.type.layout))
        offs_d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, out.type.layout))
        pointers = Out + (o_row + offs_o).to(gl.int64)[:, None] * stride_on + o_col + offs_d[None, :]
        mask = (offs_o < N)[:, None] & (offs_d < HEAD_DIM)[None, :]
        gl.store(pointers, out.to(Out.dtype.element_ty), mask=mask)
    lse = (m_i + gl.log2(l_i)) * LN_2
    gl.store(L + l_base + offs_m, lse, mask=offs_m < N)
    if EVEN_N:
        tma.store_wait(0)


@gluon.jit
def _consumer(
    o_desc, Out, L, q_smem, k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns, o_row, o_col, stride_on, l_base,
    q_start, program_tiles, N, qk_scale, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
    NUM_STAGES: gl.constexpr, PIPELINE: gl.constexpr, PART: gl.constexpr, PINGPONG: gl.constexpr,
    EVEN_N: gl.constexpr,
):  # fmt: skip
    """O and L of the ``BLOCK_M`` query rows from ``q_start``: the key tiles left of the diagonal unmasked, the
    diagonal ones masked. The program's key tiles past these rows' diagonal (a split partition's upper rows) are only
    released, so that every "empty" barrier counts every partition."""
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[gl.num_warps(), 1], instr_shape=[16, BLOCK_N, 16]
    )
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[gl.num_warps(), 1], instr_shape=[16, HEAD_DIM, 16]
    )
    offs_m = q_start + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, s_layout))
    m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, gl.SliceLayout(1, s_layout))
    l_i = gl.zeros([BLOCK_M], gl.float32, gl.SliceLayout(1, s_layout))
    acc = gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, o_layout)
    unmasked = q_start // BLOCK_N
    num_tiles = gl.cdiv(q_start + BLOCK_M, BLOCK_N)
    mbarrier.wait(q_ready, 0)
    if PIPELINE:
        s = warpgroup_mma_wait(0, deps=[_scores(q_smem, k_smem, k_ready, 0, BLOCK_M, BLOCK_N, NUM_STAGES)])
        p, m_i, l_i, alpha = _softmax(s, m_i, l_i, offs_m, 0, qk_scale, BLOCK_N, True)  # right off the diagonal too
        for j in range(0, unmasked - 1):
            acc, p, alpha, m_i, l_i = _async_step(
                q_smem, k_smem, v_smem, k_ready, v_ready, empty, turns, j, acc, p, alpha, m_i, l_i, offs_m,
                qk_scale, BLOCK_M, BLOCK_N, NUM_STAGES, False, PART, PINGPONG,
            )  # fmt: skip
        for j in range(gl.maximum(unmasked - 1, 0), num_tiles - 1):
            acc, p, alpha, m_i, l_i = _async_step(
                q_smem, k_smem, v_smem, k_ready, v_ready, empty, turns, j, acc, p, alpha, m_i, l_i, offs_m,
                qk_scale, BLOCK_M, BLOCK_N, NUM_STAGES, True, PART, PINGPONG,
            )  # fmt: skip
        last = num_tiles - 1
        acc = acc * gl.convert_layout(alpha, gl.SliceLayout(1, o_layout))[:, None]
        p16 = gl.convert_layout(p.to(v_smem.dtype), gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2))
        mbarrier.wait(v_ready.index(last % NUM_STAGES), (last // NUM_STAGES) & 1)
        acc = warpgroup_mma(p16, v_smem.index(last % NUM_STAGES), acc, is_async=True)
        acc, p16 = warpgroup_mma_wait(0, deps=[acc, p16])
    else:
        for j in range(0, unmasked):
            acc, m_i, l_i = _sync_step(
                q_smem, k_smem, v_smem, k_ready, v_ready, empty, j, acc, m_i, l_i, offs_m, qk_scale,
                BLOCK_M, BLOCK_N, NUM_STAGES, False,
            )  # fmt: skip
        for j in range(unmasked, num_tiles):
            acc, m_i, l_i = _sync_step(
                q_smem, k_smem, v_smem, k_ready, v_ready, empty, j, acc, m_i, l_i, offs_m, qk_scale,
                BLOCK_M, BLOCK_N, NUM_STAGES, True,
            )  # fmt: skip
    for j in range(num_tiles, program_tiles):
        if PINGPONG:  # the async steps were 0 .. num_tiles - 2: keep the turns going for the other partition
            _take_turn(turns, j - 1, PART)
            mbarrier.arrive(turns.index(1 - PART))
        mbarrier.wait(k_ready.index(j % NUM_STAGES), (j // NUM_STAGES) & 1)  # loaded, so stage j's previous round
        mbarrier.wait(v_ready.index(j % NUM_STAGES), (j // NUM_STAGES) & 1)  # is released: this arrive is round j's
        mbarrier.arrive(empty.index(j % NUM_STAGES))
    out = acc / gl.convert_layout(l_i, gl.SliceLayout(1, o_layout))[:, None]
    _store_output(
        out, o_desc, Out, L, q_smem, m_i, l_i, offs_m, o_row, o_col, stride_on, l_base, q_start, N,
        BLOCK_M, HEAD_DIM, EVEN_N,
    )  # fmt: skip


@gluon.jit
def _storage_coordinates(row, H, stride_b, stride_h, stride_n):
    """Where (batch x head) row ``row``'s ``(N, HEAD_DIM)`` matrix starts in its descriptor's ``[rows, stride_n]``
    matrix: element (s, d) lies at ``b * stride_b + h * stride_h + s * stride_n + d`` = ``(R + s) * stride_n + C + d``
    with ``R, C`` the quotient and remainder of ``b * stride_b + h * stride_h`` by ``stride_n``."""
    offset = (row // H).to(gl.int64) * stride_b + (row % H).to(gl.int64) * stride_h
    return (offset // stride_n).to(gl.int32), (offset % stride_n).to(gl.int32)


@gluon.jit
def gluon_forward_kernel(
    q_desc, k_desc, v_desc, o_desc, Out, L, N, qk_scale, H,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn, stride_ob, stride_oh, stride_on,
    BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, NUM_STAGES: gl.constexpr,
    PIPELINE: gl.constexpr, CONSUMERS: gl.constexpr, PINGPONG: gl.constexpr, CONSUMER_REGISTERS: gl.constexpr,
    PRODUCER_REGISTERS: gl.constexpr, EVEN_N: gl.constexpr,
):  # fmt: skip
    """Causal O and L of one query tile of one (batch x head) row, longest tiles first: Q loaded once by TMA, then
    the producer warp and the consumer partitions (1, 2 or 4, each its own ``BLOCK_M / CONSUMERS`` query rows, the Q
    and O descriptors' block) split the work. Each of Q, K, V, O has its own (batch, head, sequence) strides; its
    descriptor is the ``[rows, stride_n]`` matrix (strides ``[stride_n, 1]``) of its storage, where the row's tile
    at query s is the ``[BLOCK, HEAD_DIM]`` box at ``[R + s, C]`` (:func:`_storage_coordinates`; the launcher
    checks ``C + HEAD_DIM <= stride_n``). ``Out`` is O's base, for the masked store of a ragged length (``EVEN_N``
    false).

    Past a ragged row's end (s >= N) the boxes read rows R + s of the storage matrix, which hold another row's
    elements, or zeros past the matrix's last row: contiguous ``(batch, heads, N, d)``, R = (b * H + h) * N and C = 0,
    so the next head's first queries and keys; the model's ``(batch, N, heads, d)`` projections, R = b * N and
    C = h * d, so batch b + 1's first positions of the same head. Either way keys s >= N sit right of the diagonal of
    every query s' < N, so the causal mask hides them; V rows s >= N meet only those zero probabilities (finite
    values: the launcher takes only layouts where they are elements of the same tensor, :func:`_rows_run_on`); and
    queries s >= N are never stored: their O by the masked store, since an O box would overwrite the other row's O
    (EVEN_N, N a multiple of BLOCK_M, has no such queries), their L by the mask ``offs_m < N``."""
    Q_ROWS: gl.constexpr = BLOCK_M // CONSUMERS
    tile = gl.num_programs(0) - 1 - gl.program_id(0)
    row = gl.program_id(1)
    q_row, q_col = _storage_coordinates(row, H, stride_qb, stride_qh, stride_qn)
    k_row, k_col = _storage_coordinates(row, H, stride_kb, stride_kh, stride_kn)
    v_row, v_col = _storage_coordinates(row, H, stride_vb, stride_vh, stride_vn)
    o_row, o_col = _storage_coordinates(row, H, stride_ob, stride_oh, stride_on)
    l_base = row * N
    q_start = tile * BLOCK_M
    num_tiles = (q_start + BLOCK_M) // BLOCK_N
    q_smem = gl.allocate_shared_memory(q_desc.dtype, [CONSUMERS, Q_ROWS, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(k_desc.dtype, [NUM_STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(v_desc.dtype, [NUM_STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    turns = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_ready, count=1)
    if PINGPONG:
        gl.static_assert(CONSUMERS == 2 and PIPELINE, "ping-pong takes two async consumer partitions")
        mbarrier.init(turns.index(0), count=1)
        mbarrier.init(turns.index(1), count=1)
    for stage in gl.static_range(NUM_STAGES):
        mbarrier.init(k_ready.index(stage), count=1)
        mbarrier.init(v_ready.index(stage), count=1)
        mbarrier.init(empty.index(stage), count=CONSUMERS)  # one elected arrive per consumer partition
    fence_async_shared()
    mbarrier.expect(q_ready, CONSUMERS * q_desc.block_type.nbytes)
    for part in gl.static_range(CONSUMERS):
        TMA_LOAD(q_desc, [q_row + q_start + part * Q_ROWS, q_col], q_ready, q_smem.index(part))
    # The argument tuples inline: a tuple assigned to a name turns its constexprs into tensors.
    if CONSUMERS == 1:
        gl.warp_specialize(
            [
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(0), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        o_row, o_col, stride_on, l_base, q_start, num_tiles, N, qk_scale,
                        Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES, PIPELINE, 0, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _producer,
                    (
                        k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, empty, k_row, k_col, v_row, v_col,
                        num_tiles, BLOCK_N, NUM_STAGES,
                    ),
                ),
            ],
            [1],
            [PRODUCER_REGISTERS],
        )  # fmt: skip
    elif CONSUMERS == 2:
        gl.warp_specialize(
            [
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(0), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        o_row, o_col, stride_on, l_base, q_start, num_tiles, N, qk_scale,
                        Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES, PIPELINE, 0, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(1), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        o_row, o_col, stride_on, l_base, q_start + Q_ROWS, num_tiles, N, qk_scale,
                        Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES, PIPELINE, 1, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _producer,
                    (
                        k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, empty, k_row, k_col, v_row, v_col,
                        num_tiles, BLOCK_N, NUM_STAGES,
                    ),
                ),
            ],
            [4, 1],
            [CONSUMER_REGISTERS, PRODUCER_REGISTERS],
        )  # fmt: skip
    else:
        gl.static_assert(CONSUMERS == 4, "1, 2 or 4 consumer partitions")
        gl.warp_specialize(
            [
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(0), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        o_row, o_col, stride_on, l_base, q_start, num_tiles, N, qk_scale,
                        Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES, PIPELINE, 0, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(1), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        o_row, o_col, stride_on, l_base, q_start + Q_ROWS, num_tiles, N, qk_scale,
                        Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES, PIPELINE, 1, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(2), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        o_row, o_col, stride_on, l_base, q_start + 2 * Q_ROWS, num_tiles, N, qk_scale,
                        Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES, PIPELINE, 2, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(3), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        o_row, o_col, stride_on, l_base, q_start + 3 * Q_ROWS, num_tiles, N, qk_scale,
                        Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES, PIPELINE, 3, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _producer,
                    (
                        k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, empty, k_row, k_col, v_row, v_col,
                        num_tiles, BLOCK_N, NUM_STAGES,
                    ),
                ),
            ],
            [4, 4, 4, 1],
            [CONSUMER_REGISTERS, CONSUMER_REGISTERS, CONSUMER_REGISTERS, PRODUCER_REGISTERS],
        )  # fmt: skip


@dataclass(frozen=True)
class _LayoutLaunch:
    """What a launch in one layout needs besides the tensors: each descriptor's matrix shape, strides, block and
    shared layout (Q, K, V, O), the kernel's stride arguments, and the kernel kept for them."""

    descriptors: tuple[tuple, ...]
    strides: tuple[int, ...]
    kernel: Callable[..., None]


class GluonForwardLaunch:
    """The Gluon forward for one ``(batch, heads, n, d)`` shape and dtype, as a plan launches it on every call.

    The grid, shared layouts and constexprs are computed once; each layout's check, descriptor shapes and stride
    arguments on its first call; and from a layout's second call on, Triton's per-launch Python is bypassed
    (:class:`~cs336_systems.flash_attention.kernel_launch.KernelLaunch`, one per layout, since Triton specialises
    the kernel on the strides and pointer alignment). Why: doing it all per call cost 345 µs of host time per
    forward on the GPU machine against 78 for the Triton forward's plan (sixteenth H200 run), which left the
    1024-token forward host-bound."""

    def __init__(
        self,
        shape: tuple[int, int, int, int],
        dtype: str,
        config: GluonForwardConfig = GluonForwardConfig(),  # noqa: B008 - frozen, so one shared default is safe
    ):
        batch, heads, n, head_dim = shape
        if dtype not in DTYPES:
            raise ValueError(f"the Gluon forward takes {', '.join(DTYPES)}; got {dtype}")
        self.shape, self.dtype, self.config = tuple(shape), dtype, config
        self.lse_shape = self.shape[:-1]
        self.shared_layouts = config.shared_layouts(head_dim, DTYPES[dtype])
        self.scalars = (n, head_dim**-0.5 * LOG2_E, heads)
        self.grid = (triton.cdiv(n, config.block_m), batch * heads)
        self.constexprs = config.kernel_constexprs(head_dim, n % config.block_m == 0)
        self._layouts: dict[tuple, _LayoutLaunch | str] = {}

    def launch(
        self,
        q: Float[Tensor, "batch heads n d"],
        k: Float[Tensor, "batch heads n d"],
        v: Float[Tensor, "batch heads n d"],
        out: Float[Tensor, "batch heads n d"],
        lse: Float[Tensor, "batch heads n"],
    ) -> str | None:
        """Fill ``out`` and ``lse`` and return None, or return why these tensors cannot take the Gluon forward
        (launching nothing)."""
        tensors = (q, k, v, out, lse)
        pointer_bits = q.data_ptr() | k.data_ptr() | v.data_ptr() | out.data_ptr() | lse.data_ptr()
        key = (*(t.shape for t in tensors), *(t.stride() for t in tensors), *(t.dtype for t in tensors))
        key += (pointer_bits % 16 == 0,)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = self._layout_launch(q, k, v, out, lse)
        if isinstance(layout, str):
            return layout
        (q_spec, k_spec, v_spec, o_spec) = layout.descriptors
        layout.kernel(
            TensorDescriptor(q, *q_spec), TensorDescriptor(k, *k_spec), TensorDescriptor(v, *v_spec),
            TensorDescriptor(out, *o_spec), out, lse, *self.scalars, *layout.strides,
        )  # fmt: skip
        return None

    def _layout_launch(self, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor) -> _LayoutLaunch | str:
        """The launch for these tensors' layout, or why the kernel cannot take them."""
        if not q.shape == k.shape == v.shape == out.shape == self.shape or lse.shape != self.lse_shape:
            shapes = ", ".join(str(tuple(t.shape)) for t in (q, k, v, out, lse))
            return f"Q, K, V, O of shape {self.shape} and an L of shape {self.lse_shape} are needed; got {shapes}"
        if any(str(t.dtype) != self.dtype for t in (q, k, v, out)):
            return f"Q, K, V, O of {self.dtype} are needed; got {', '.join(str(t.dtype) for t in (q, k, v, out))}"
        if str(lse.dtype) != "torch.float32" or not lse.is_contiguous() or lse.data_ptr() % 16:
            return f"a contiguous, 16-byte aligned float32 L is needed; got {lse.dtype}, strides {lse.stride()}"
        refusal = gluon_layout_refusal(q, k, v, out)
        if refusal is not None:
            return refusal
        head_dim, config = self.shape[-1], self.config
        q_tile = (config.q_rows, self.shared_layouts["q"])
        kv_tile = (config.block_n, self.shared_layouts["kv"])
        descriptors = tuple(
            ([_storage_rows(t), t.stride(2)], [t.stride(2), 1], [rows, head_dim], shared)
            for t, (rows, shared) in zip((q, k, v, out), (q_tile, kv_tile, kv_tile, q_tile), strict=True)
        )
        strides = tuple(stride for t in (q, k, v, out) for stride in (*_row_strides(t), t.stride(2)))
        return _LayoutLaunch(descriptors, strides, self._kernel())

    def _kernel(self) -> Callable[..., None]:
        """The kernel launch for one layout: through Triton on its first call, directly after (no pointer checks
        there: the layout check asked for 16-byte aligned tensors, and the key records the alignment)."""
        from cs336_systems.flash_attention.kernel_launch import KernelLaunch

        grid = self.grid
        options = self.config.launch_options()
        return KernelLaunch(gluon_forward_kernel, lambda meta: grid, self.constexprs, n_pointers=0, meta=options)


@functools.lru_cache(maxsize=64)
def gluon_forward_launch(
    shape: tuple[int, int, int, int],
    dtype: str,
    config: GluonForwardConfig = GluonForwardConfig(),  # noqa: B008 - frozen, so one shared default is safe
) -> GluonForwardLaunch:
    """The one :class:`GluonForwardLaunch` of a shape, ``str(torch dtype)`` and config (its layouts' kernels kept)."""
    return GluonForwardLaunch(shape, dtype, config)


def launch_gluon_forward(
    q: Float[Tensor, "batch heads n d"],
    k: Float[Tensor, "batch heads n d"],
    v: Float[Tensor, "batch heads n d"],
    out: Float[Tensor, "batch heads n d"],
    lse: Float[Tensor, "batch heads n"],
    config: GluonForwardConfig = GluonForwardConfig(),  # noqa: B008 - frozen, so one shared default is safe
) -> None:
    """Fill ``out`` and ``lse`` (causal) through descriptors over each tensor's storage as it lies (any layout
    :func:`gluon_layout_refusal` accepts, e.g. the model's ``(batch, n, heads, d)`` projections seen as ``(batch,
    heads, n, d)``); a clear error for inputs it or :func:`gluon_forward_refusal` refuses."""
    import torch

    if q.dim() != 4 or not q.shape == k.shape == v.shape == out.shape or lse.shape != q.shape[:-1]:
        shapes = ", ".join(str(tuple(t.shape)) for t in (q, k, v, out, lse))
        raise ValueError(
            f"the Gluon forward needs (batch, heads, n, d) Q, K, V, O and a (batch, heads, n) L; got {shapes}"
        )
    batch, heads, n, head_dim = q.shape
    capability = torch.cuda.get_device_capability(q.device) if q.device.type == "cuda" else None
    dtypes = tuple(str(t.dtype) for t in (q, k, v, out))
    refusal = gluon_forward_refusal(capability, dtypes, True, head_dim, n, n, batch * heads)
    if refusal is None:
        refusal = gluon_forward_launch(tuple(q.shape), dtypes[0], config).launch(q, k, v, out, lse)
    if refusal is not None:
        raise ValueError(f"the Gluon forward cannot take these inputs: {refusal}")
