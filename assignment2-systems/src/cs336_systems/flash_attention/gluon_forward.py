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
forward's 20.0-20.7 ms, exact against float32. It reads Q, K, V and writes O through 2-D descriptors over the
contiguous ``(rows * n, d)`` views; a ragged last query tile stores O with a masked pointer store instead, since a
descriptor over those views would write into the next row. L is natural-log, float32, contiguous ``(rows, n)``, as
the backward reads it.

Written for Triton 3.6's Gluon (the GPU image's); 3.9 (the locked environment's) renamed the TMA copies, resolved
once at import (:data:`TMA_LOAD`, :data:`TMA_STORE`). This module imports no torch, so that the probe's compile
check runs in a Triton-only environment.
"""

from __future__ import annotations

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

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class GluonForwardConfig:
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

    @property
    def consumer_registers(self) -> int:
        """Registers per thread of each consumer partition after ``setmaxnreg``: the program's share (``maxnreg`` x
        its warps, the producer warp padded to a warpgroup) less the producer's, split evenly and rounded down to a
        multiple of 8, as the compiler does for the default partition."""
        warps = self.consumer_warps + 4
        return min(256, (self.maxnreg * warps - self.producer_registers * 4) // self.consumer_warps // 8 * 8)

    def kernel_constexprs(self, head_dim: int, even_n: bool) -> dict:
        """The kernel's constexpr arguments; ``even_n``: the length is a multiple of ``block_m`` (O stored by TMA)."""
        return {
            "BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "HEAD_DIM": head_dim, "NUM_STAGES": self.stages,
            "PIPELINE": self.pipeline, "CONSUMERS": self.consumers, "PINGPONG": self.mode == "pingpong",
            "CONSUMER_REGISTERS": self.consumer_registers, "PRODUCER_REGISTERS": self.producer_registers,
            "EVEN_N": even_n,
        }  # fmt: skip

    def launch_options(self) -> dict:
        """The default partition is the (first) consumer's, so its warps are the kernel's ``num_warps``."""
        return {"num_warps": self.consumer_warps // self.consumers, "maxnreg": self.maxnreg}

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
    """Why the descriptors cannot move these tensors as they lie, or None: contiguous (their ``(rows * n, d)`` views
    are the descriptors' bases), starting at 16-byte aligned addresses."""
    for t in tensors:
        if not t.is_contiguous():
            return f"contiguous tensors only; got shape {tuple(t.shape)}, strides {t.stride()}"
        if t.data_ptr() % 16:
            return f"16-byte aligned tensors only; got one at {t.data_ptr():#x}"
    return None


@gluon.jit
def _producer(
    k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, empty, row_base, num_tiles,
    BLOCK_N: gl.constexpr, NUM_STAGES: gl.constexpr,
):  # fmt: skip
    """Stream K and V tiles into the ring: wait until the consumer freed a stage, then load both into it by TMA,
    each with its own "ready" barrier so that S = Q K^T can start before V lands."""
    for j in range(num_tiles):
        stage = j % NUM_STAGES
        phase = (j // NUM_STAGES) & 1
        mbarrier.wait(empty.index(stage), phase ^ 1)  # the first round passes: a fresh barrier's "previous phase"
        mbarrier.expect(k_ready.index(stage), k_desc.block_type.nbytes)
        TMA_LOAD(k_desc, [row_base + j * BLOCK_N, 0], k_ready.index(stage), k_smem.index(stage))
        mbarrier.expect(v_ready.index(stage), v_desc.block_type.nbytes)
        TMA_LOAD(v_desc, [row_base + j * BLOCK_N, 0], v_ready.index(stage), v_smem.index(stage))


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
    out, o_desc, Out, L, q_smem, m_i, l_i, offs_m, row_base, q_start, N,
    BLOCK_M: gl.constexpr, HEAD_DIM: gl.constexpr, EVEN_N: gl.constexpr,
):  # fmt: skip
    """O by TMA through Q's buffer (no matmul reads Q any more), or, for a ragged length, by a pointer store masked
    to the rows before ``N`` (a descriptor over the ``(rows * N, d)`` view would write into the next row); L, in
    natural-log units, by a masked store."""
    if EVEN_N:
        q_smem.store(out.to(q_smem.dtype))
        fence_async_shared()
        TMA_STORE(o_desc, [row_base + q_start, 0], q_smem)
    else:
        offs_o = q_start + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, out.type.layout))
        offs_d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, out.type.layout))
        pointers = Out + (row_base + offs_o).to(gl.int64)[:, None] * HEAD_DIM + offs_d[None, :]
        mask = (offs_o < N)[:, None] & (offs_d < HEAD_DIM)[None, :]
        gl.store(pointers, out.to(Out.dtype.element_ty), mask=mask)
    lse = (m_i + gl.log2(l_i)) * LN_2
    gl.store(L + row_base + offs_m, lse, mask=offs_m < N)
    if EVEN_N:
        tma.store_wait(0)


@gluon.jit
def _consumer(
    o_desc, Out, L, q_smem, k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns, row_base, q_start,
    program_tiles, N, qk_scale, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
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
    _store_output(out, o_desc, Out, L, q_smem, m_i, l_i, offs_m, row_base, q_start, N, BLOCK_M, HEAD_DIM, EVEN_N)


@gluon.jit
def gluon_forward_kernel(
    q_desc, k_desc, v_desc, o_desc, Out, L, N, qk_scale,
    BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, NUM_STAGES: gl.constexpr,
    PIPELINE: gl.constexpr, CONSUMERS: gl.constexpr, PINGPONG: gl.constexpr, CONSUMER_REGISTERS: gl.constexpr,
    PRODUCER_REGISTERS: gl.constexpr, EVEN_N: gl.constexpr,
):  # fmt: skip
    """Causal O and L of one query tile of one (batch x head) row of the ``(rows * N, HEAD_DIM)`` views, longest
    tiles first: Q loaded once by TMA, then the producer warp and the consumer partitions (1, 2 or 4, each its own
    ``BLOCK_M / CONSUMERS`` query rows, the Q and O descriptors' block) split the work. ``Out`` is O's base, for the
    masked store of a ragged length (``EVEN_N`` false). Past a ragged row's end the tiles read the next row's keys
    and queries (zeros past the last row): the causal mask hides those keys from every query before the end, and the
    rows past it are not stored."""
    Q_ROWS: gl.constexpr = BLOCK_M // CONSUMERS
    tile = gl.num_programs(0) - 1 - gl.program_id(0)
    row_base = gl.program_id(1) * N
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
        TMA_LOAD(q_desc, [row_base + q_start + part * Q_ROWS, 0], q_ready, q_smem.index(part))
    # The argument tuples inline: a tuple assigned to a name turns its constexprs into tensors.
    if CONSUMERS == 1:
        gl.warp_specialize(
            [
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(0), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 0, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _producer,
                    (k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, empty, row_base, num_tiles, BLOCK_N, NUM_STAGES),
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
                        row_base, q_start, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 0, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(1), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start + Q_ROWS, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 1, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _producer,
                    (k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, empty, row_base, num_tiles, BLOCK_N, NUM_STAGES),
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
                        row_base, q_start, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 0, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(1), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start + Q_ROWS, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 1, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(2), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start + 2 * Q_ROWS, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 2, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, Out, L, q_smem.index(3), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start + 3 * Q_ROWS, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 3, PINGPONG, EVEN_N,
                    ),
                ),
                (
                    _producer,
                    (k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, empty, row_base, num_tiles, BLOCK_N, NUM_STAGES),
                ),
            ],
            [4, 4, 4, 1],
            [CONSUMER_REGISTERS, CONSUMER_REGISTERS, CONSUMER_REGISTERS, PRODUCER_REGISTERS],
        )  # fmt: skip


def launch_gluon_forward(
    q: Float[Tensor, "... n d"],
    k: Float[Tensor, "... n d"],
    v: Float[Tensor, "... n d"],
    out: Float[Tensor, "... n d"],
    lse: Float[Tensor, "... n"],
    config: GluonForwardConfig = GluonForwardConfig(),  # noqa: B008 - frozen, so one shared default is safe
) -> None:
    """Fill ``out`` and ``lse`` (causal) through descriptors over the ``(rows * n, d)`` views; a clear error for inputs
    :func:`gluon_forward_refusal` or :func:`gluon_layout_refusal` refuses."""
    import torch
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    n, head_dim = q.shape[-2:]
    rows = q.numel() // (n * head_dim)
    if not q.shape == k.shape == v.shape == out.shape or lse.numel() != rows * n or lse.dtype != torch.float32:
        shapes = ", ".join(str(tuple(t.shape)) for t in (q, k, v, out, lse))
        raise ValueError(
            f"the Gluon forward needs Q, K, V, O of one shape and a float32 L of one value per row; got shapes "
            f"{shapes}, L {lse.dtype}"
        )
    capability = torch.cuda.get_device_capability(q.device) if q.device.type == "cuda" else None
    dtypes = tuple(str(t.dtype) for t in (q, k, v, out))
    refusal = gluon_forward_refusal(capability, dtypes, True, head_dim, n, n, rows)
    refusal = refusal or gluon_layout_refusal(q, k, v, out) or gluon_layout_refusal(lse)
    if refusal is not None:
        raise ValueError(f"the Gluon forward cannot take these inputs: {refusal}")
    layouts = config.shared_layouts(head_dim, DTYPES[dtypes[0]])
    total = rows * n

    def descriptor(tensor: Tensor, block_rows: int, layout: gl.NVMMASharedLayout) -> TensorDescriptor:
        view = tensor.view(total, head_dim)
        return TensorDescriptor(view, [total, head_dim], [head_dim, 1], [block_rows, head_dim], layout)

    gluon_forward_kernel[(triton.cdiv(n, config.block_m), rows)](
        descriptor(q, config.q_rows, layouts["q"]), descriptor(k, config.block_n, layouts["kv"]),
        descriptor(v, config.block_n, layouts["kv"]), descriptor(out, config.q_rows, layouts["q"]), out, lse, n,
        head_dim**-0.5 * LOG2_E, **config.kernel_constexprs(head_dim, n % config.block_m == 0),
        **config.launch_options(),
    )  # fmt: skip
