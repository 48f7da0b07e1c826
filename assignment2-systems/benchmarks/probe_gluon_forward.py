"""Does a hand warp-specialised FlashAttention-3-style forward, written in Gluon, beat cuDNN on this GPU?

Our Triton forward is level with cuDNN at batch 16 x 16 heads, n = 16384, d = 64, bf16, causal, and every setting
is spent (Triton's automatic warp specialisation miscompiles the loop on 3.6, ``probe_warp_specialization.py``).
What cuDNN and FlashAttention-3 add is warp specialisation by hand, which Triton's lower-level language Gluon
exposes: here one producer warp streams K and V tiles by TMA into a ring of ``NUM_STAGES`` shared-memory buffers
guarded by "ready" and "empty" mbarriers, with few registers (``setmaxnreg``), while one to four consumer
warpgroups run asynchronous wgmma (S = Q K^T, O += P V) and the online softmax in registers; the causal mask only
on the diagonal tiles. ``async`` variants issue S of the next key tile before the softmax of this one and let P V
of this tile run during that softmax (FlashAttention-3's intra-warpgroup overlap); ``sync`` ones wait for each
matmul. ``split_`` variants give each consumer warpgroup its own partition, query rows and Q/O tile, so that the
barriers Triton places around each mbarrier wait and arrive span one warpgroup (128 threads) instead of all the
consumer warps, and the warpgroups drift apart: one's softmax may run while another's wgmma does. ``pingpong``
arranges that by hand as FlashAttention-3 does: two async partitions take turns, through two mbarriers, to issue
their matmuls. The "empty" barriers then count one arrive per partition.

Per variant (BLOCK_M, BLOCK_N, stages, mode, consumer warps, maxnreg): the largest error of O and of the
logsumexp L against float32 at a small shape (``--check_seq_len``), the share of wrong rows, and the time at the
main shape, next to cuDNN and our autotuned Triton forward with TMA (``CS336_FLASH_TMA=forward``, as the
leaderboard's TMA rows). Rows print as they finish; ``gluon_forward.json`` / ``.md`` go to ``--out_dir``.
``--compile_only`` compiles every variant for ``--arch`` on any machine, GPU or not, without torch, and reports
registers, spills and what the PTX shows (wgmma, TMA, mbarriers, setmaxnreg). Written for Triton 3.6's Gluon, the
GPU image's: 3.9, the locked environment's, renamed the TMA copies (``tma.async_load``), so it does not compile
there.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/probe_gluon_forward.py --out_dir /tmp/gluon_probe
Compile check (any machine, Triton 3.6 in a scratch environment):
    PYTHONPATH=assignment1-basics/src /tmp/t36/bin/python assignment2-systems/benchmarks/probe_gluon_forward.py \
        --compile_only --out_dir /tmp/gluon_compile
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.tables import records_table

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

MODES = ("sync", "async", "split_sync", "split_async", "pingpong")
DEFAULT_VARIANTS = (
    "128,64,2,split_sync,8,80",
    "128,64,2,pingpong,8,168",
    "128,64,3,split_sync,8,80",
    "256,64,2,split_sync,16,96",
    "128,128,2,pingpong,8,168",
    "128,128,2,split_async,8,168",
    "128,64,3,sync,8,80",
    "64,64,2,sync,4,80",
    "128,64,2,split_async,8,168",
    "64,64,2,sync,4,64",
)
"""Most promising first, after the first H200 run (two programs per SM beat one; sync beat async; 128,64,2,sync,8,80
came within 9 % of cuDNN): each consumer warpgroup its own partition (``split``) at two programs per SM (80);
FlashAttention-3's recipe, ping-pong of two async warpgroups at one program per SM (168: 240 registers per
consumer); four split warpgroups sharing one K/V ring at one program per SM (96); then more stages, split async
without the turns, and 64-row tiles at three (80) or four (64; 41 KB of shared memory each) programs per SM.
Under Triton 3.6 ptxas spills split async and ping-pong at 80 (444 and 416 bytes) and 256 x 64 split async at 96
(2004), and cannot fit 128,128,2,split_sync,8,80: left out."""

VARIANT_COLUMNS = ["BLOCK_M", "BLOCK_N", "stages", "mode", "consumer_warps", "maxnreg"]
BENCHMARKS = Path(__file__).resolve().parent
PTX_FEATURES = {
    "wgmma": "wgmma.mma_async",
    "tma_load": "cp.async.bulk.tensor",
    "tma_store": "cp.async.bulk.tensor.2d.global.shared",
    "mbarrier": "mbarrier.try_wait",
}
"""What the PTX of a variant should contain: the markers of the features this kernel is written for."""
SETMAXNREG = re.compile(r"setmaxnreg\.(inc|dec)\.sync\.aligned\.u32\s+(\d+)")


@dataclass(frozen=True)
class Variant:
    """One launch of the Gluon forward: its tiles, whether it overlaps the matmuls with the softmax, the consumer
    warps (4 = one warpgroup; 8 = two, each owning half the query rows) and the registers per thread at launch
    (``maxnreg``), which set how many programs share an SM; ``setmaxnreg`` then moves the producer's spare registers
    to the consumers."""

    block_m: int
    block_n: int
    stages: int
    mode: str
    consumer_warps: int
    maxnreg: int

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

    def consumer_registers(self, producer_registers: int) -> int:
        """Registers per thread of each consumer partition after ``setmaxnreg``: the program's share
        (``maxnreg`` x its warps, the producer warp padded to a warpgroup) less the producer's, split evenly and
        rounded down to a multiple of 8, as the compiler does for the default partition."""
        warps = self.consumer_warps + 4
        return min(256, (self.maxnreg * warps - producer_registers * 4) // self.consumer_warps // 8 * 8)

    @classmethod
    def parse(cls, text: str) -> Variant:
        parts = text.split(",")
        numbers = parts[:3] + parts[4:]
        if len(parts) != 6 or parts[3] not in MODES or not all(p.isdigit() and int(p) > 0 for p in numbers):
            raise ValueError(f"variant {text!r}: expected BLOCK_M,BLOCK_N,NUM_STAGES,{'|'.join(MODES)},warps,maxnreg")
        block_m, block_n, stages, warps, maxnreg = (int(p) for p in numbers)
        if block_n not in (64, 128) or block_m % block_n:
            raise ValueError(f"variant {text!r}: BLOCK_N must be 64 or 128 and divide BLOCK_M")
        if warps % 4 or block_m % (16 * warps):
            raise ValueError(f"variant {text!r}: whole warpgroups of consumer warps, 16 query rows each or a multiple")
        if parts[3] in ("async", "split_async", "pingpong") and stages < 2:
            raise ValueError(f"variant {text!r}: async holds a stage while the next loads: 2 stages at least")
        if parts[3] == "pingpong" and warps != 8:
            raise ValueError(f"variant {text!r}: ping-pong takes two consumer warpgroups (8 warps)")
        if parts[3].startswith("split") and warps not in (4, 8, 16):
            raise ValueError(f"variant {text!r}: 1, 2 or 4 split consumer warpgroups")
        return cls(block_m, block_n, stages, parts[3], warps, maxnreg)

    def columns(self) -> dict:
        return {
            "BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "stages": self.stages,
            "mode": self.mode, "consumer_warps": self.consumer_warps, "maxnreg": self.maxnreg,
        }  # fmt: skip


@dataclass(frozen=True)
class ProbeConfig:
    """The Gluon forward's variants, compiled or checked and timed on one shape."""

    out_dir: str = field(default="runs/gluon_forward", metadata={"help": "folder for the .json and .md"})
    batch: int = field(default=16, metadata={"help": "batch size of the timed shape"})
    heads: int = field(default=16, metadata={"help": "attention heads of the timed shape"})
    seq_len: int = field(default=16384, metadata={"help": "sequence length of the timed shape"})
    check_seq_len: int = field(default=2048, metadata={"help": "sequence length of the correctness check"})
    head_dim: int = field(default=64, metadata={"help": "head size (the kernel is written for 64)"})
    variants: list[str] = field(
        default_factory=lambda: list(DEFAULT_VARIANTS),
        metadata={"help": "BLOCK_M,BLOCK_N,NUM_STAGES,sync|async,consumer warps,maxnreg of the Gluon forward"},
    )
    baselines: bool = field(
        default=True, metadata={"help": "time cuDNN and our autotuned Triton forward too (off: the Gluon rows alone)"}
    )
    producer_registers: int = field(default=24, metadata={"help": "registers per thread of the producer warp"})
    warmup_ms: int = field(default=50, metadata={"help": "do_bench warm-up time per row"})
    rep_ms: int = field(default=200, metadata={"help": "do_bench measuring time per row"})
    compile_only: bool = field(
        default=False, metadata={"help": "compile every variant for --arch on the CPU (no torch) and report the PTX"}
    )
    arch: int = field(default=90, metadata={"help": "CUDA compute capability --compile_only targets (90 = Hopper)"})

    def __post_init__(self):
        if self.head_dim != 64:
            raise ValueError(f"head_dim {self.head_dim}: the Gluon forward is written for 64")
        for text, variant in zip(self.variants, self.parsed_variants(), strict=True):
            if self.check_seq_len % variant.block_m or self.seq_len % variant.block_m:
                raise ValueError(f"variant {text!r}: BLOCK_M must divide both lengths")

    def parsed_variants(self) -> list[Variant]:
        return [Variant.parse(text) for text in self.variants]


if __name__ == "__main__":  # parsed before Triton and torch load, so that --help and a bad flag answer at once
    CONFIG = parse_config(ProbeConfig, description=__doc__)

import triton  # noqa: E402
from triton.experimental import gluon  # noqa: E402
from triton.experimental.gluon import language as gl  # noqa: E402
from triton.experimental.gluon.language.nvidia.hopper import (  # noqa: E402
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

LOG2_E = 1.4426950408889634
LN_2: gl.constexpr = gl.constexpr(0.6931471805599453)


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
        tma.async_copy_global_to_shared(k_desc, [row_base + j * BLOCK_N, 0], k_ready.index(stage), k_smem.index(stage))
        mbarrier.expect(v_ready.index(stage), v_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(v_desc, [row_base + j * BLOCK_N, 0], v_ready.index(stage), v_smem.index(stage))


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
    the accumulator; the causal mask only where ``MASK`` (the diagonal tiles)."""
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
    p16 = gl.convert_layout(p.to(gl.bfloat16), gl.DotOperandLayout(operand_index=0, parent=acc.type.layout, k_width=2))
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
    p16 = gl.convert_layout(p.to(gl.bfloat16), gl.DotOperandLayout(operand_index=0, parent=acc.type.layout, k_width=2))
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
def _consumer(
    o_desc, L, q_smem, k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns, row_base, q_start, program_tiles,
    N, qk_scale, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, NUM_STAGES: gl.constexpr,
    PIPELINE: gl.constexpr, PART: gl.constexpr, PINGPONG: gl.constexpr,
):  # fmt: skip
    """O and L of the ``BLOCK_M`` query rows from ``q_start``: the key tiles left of the diagonal unmasked, the
    diagonal ones masked; O stored by TMA through Q's buffer (no matmul reads Q any more), L with a masked store.
    The program's key tiles past these rows' diagonal (a split partition's upper rows) are only released, so that
    every "empty" barrier counts every partition."""
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
        p16 = gl.convert_layout(p.to(gl.bfloat16), gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2))
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
    q_smem.store(out.to(gl.bfloat16))
    fence_async_shared()
    tma.async_copy_shared_to_global(o_desc, [row_base + q_start, 0], q_smem)
    lse = (m_i + gl.log2(l_i)) * LN_2
    gl.store(L + row_base + offs_m, lse, mask=offs_m < N)
    tma.store_wait(0)


@gluon.jit
def gluon_forward_kernel(
    q_desc, k_desc, v_desc, o_desc, L, N, qk_scale,
    BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, NUM_STAGES: gl.constexpr,
    PIPELINE: gl.constexpr, CONSUMERS: gl.constexpr, PINGPONG: gl.constexpr, CONSUMER_REGISTERS: gl.constexpr,
    PRODUCER_REGISTERS: gl.constexpr,
):  # fmt: skip
    """Causal O and L of one query tile of one (batch x head) row of the ``(rows * N, HEAD_DIM)`` views, longest
    tiles first: Q loaded once by TMA, then the producer warp and the consumer partitions (1, 2 or 4, each its own
    ``BLOCK_M / CONSUMERS`` query rows, the Q and O descriptors' block) split the work."""
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
        tma.async_copy_global_to_shared(
            q_desc, [row_base + q_start + part * Q_ROWS, 0], q_ready, q_smem.index(part)
        )  # fmt: skip
    # The argument tuples inline: a tuple assigned to a name turns its constexprs into tensors.
    if CONSUMERS == 1:
        gl.warp_specialize(
            [
                (
                    _consumer,
                    (
                        o_desc, L, q_smem.index(0), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 0, PINGPONG,
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
                        o_desc, L, q_smem.index(0), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 0, PINGPONG,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, L, q_smem.index(1), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start + Q_ROWS, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 1, PINGPONG,
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
                        o_desc, L, q_smem.index(0), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 0, PINGPONG,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, L, q_smem.index(1), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start + Q_ROWS, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 1, PINGPONG,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, L, q_smem.index(2), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start + 2 * Q_ROWS, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 2, PINGPONG,
                    ),
                ),
                (
                    _consumer,
                    (
                        o_desc, L, q_smem.index(3), k_smem, v_smem, q_ready, k_ready, v_ready, empty, turns,
                        row_base, q_start + 3 * Q_ROWS, num_tiles, N, qk_scale, Q_ROWS, BLOCK_N, HEAD_DIM, NUM_STAGES,
                        PIPELINE, 3, PINGPONG,
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


def error_summary(error: Exception) -> str:
    """The root cause's type and last line: a ``CompilationError`` begins with the source, and its cause says why."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines() or [""]
    return f"error: {type(error).__name__}: {lines[-1][:160]}"


def shared_layouts(q_rows: int, block_n: int, head_dim: int) -> dict[str, gl.NVMMASharedLayout]:
    """The swizzled shared layouts of the Q/O and K/V tiles, which the descriptors and the kernel's buffers share."""
    return {
        "q": gl.NVMMASharedLayout.get_default_for([q_rows, head_dim], gl.bfloat16),
        "kv": gl.NVMMASharedLayout.get_default_for([block_n, head_dim], gl.bfloat16),
    }


def kernel_constexprs(variant: Variant, head_dim: int, producer_registers: int) -> dict:
    return {
        "BLOCK_M": variant.block_m, "BLOCK_N": variant.block_n, "HEAD_DIM": head_dim, "NUM_STAGES": variant.stages,
        "PIPELINE": variant.pipeline, "CONSUMERS": variant.consumers, "PINGPONG": variant.mode == "pingpong",
        "CONSUMER_REGISTERS": variant.consumer_registers(producer_registers), "PRODUCER_REGISTERS": producer_registers,
    }  # fmt: skip


def launch_options(variant: Variant) -> dict:
    """The default partition is the (first) consumer's, so its warps are the kernel's ``num_warps``."""
    return {"num_warps": variant.consumer_warps // variant.consumers, "maxnreg": variant.maxnreg}


def compile_variant(variant: Variant, config: ProbeConfig):
    """The kernel compiled for ``config.arch`` from its signature alone (no tensors, no GPU)."""
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    q_rows, block_n = variant.q_rows, variant.block_n
    layouts = shared_layouts(q_rows, block_n, config.head_dim)
    q_type = f"tensordesc<bf16[{q_rows}, {config.head_dim}],{layouts['q']!r}>"
    kv_type = f"tensordesc<bf16[{block_n}, {config.head_dim}],{layouts['kv']!r}>"
    constexprs = kernel_constexprs(variant, config.head_dim, config.producer_registers)
    signature = {"q_desc": q_type, "k_desc": kv_type, "v_desc": kv_type, "o_desc": q_type}
    signature |= {"L": "*fp32", "N": "i32", "qk_scale": "fp32"} | dict.fromkeys(constexprs, "constexpr")
    source = GluonASTSource(fn=gluon_forward_kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", config.arch, 32), options=launch_options(variant))


def compile_all(config: ProbeConfig) -> list[dict]:
    """A row per variant: registers and spills (``ptxas -v``), shared memory, warps and the PTX features found."""
    from cs336_basics.toolkit.entry_points import load_entry_point_module

    ptxas_resources = load_entry_point_module(
        BENCHMARKS.parent / "scripts" / "compile_flash_kernels.py"
    ).ptxas_resources
    rows = []
    for variant in config.parsed_variants():
        row = variant.columns()
        start = time.perf_counter()
        try:
            compiled = compile_variant(variant, config)
            ptx = compiled.asm["ptx"]
            row.update(status="ok", shared_bytes=compiled.metadata.shared, warps=compiled.metadata.num_warps)
            row.update(ptxas_resources(ptx, config.arch))
            row.update({name: marker in ptx for name, marker in PTX_FEATURES.items()})
            row["setmaxnreg"] = " ".join(sorted({" ".join(m) for m in SETMAXNREG.findall(ptx)})) or "none"
        except Exception as error:  # noqa: BLE001 - a compile error is this mode's result
            row["status"] = error_summary(error)
        row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
        print(row, flush=True)
    return rows


def gluon_forward(
    q: Float[Tensor, "batch heads n d"],
    k: Float[Tensor, "batch heads n d"],
    v: Float[Tensor, "batch heads n d"],
    out: Float[Tensor, "batch heads n d"],
    lse: Float[Tensor, "batch heads n"],
    variant: Variant,
    producer_registers: int,
) -> None:
    """Fill ``out`` and ``lse`` (causal) from contiguous bf16 inputs, through descriptors over the
    ``(batch * heads * n, d)`` views."""
    block_m, block_n = variant.block_m, variant.block_n
    batch, heads, n, head_dim = q.shape
    if n % block_m or not all(t.is_contiguous() for t in (q, k, v, out, lse)):
        raise ValueError(f"contiguous inputs with n a multiple of {block_m} expected; got n = {n}")
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    layouts = shared_layouts(variant.q_rows, block_n, head_dim)
    rows = batch * heads * n

    def descriptor(tensor, block_rows: int, layout) -> TensorDescriptor:
        return TensorDescriptor(
            tensor.view(rows, head_dim), [rows, head_dim], [head_dim, 1], [block_rows, head_dim], layout
        )

    gluon_forward_kernel[(n // block_m, batch * heads)](
        descriptor(q, variant.q_rows, layouts["q"]), descriptor(k, block_n, layouts["kv"]),
        descriptor(v, block_n, layouts["kv"]), descriptor(out, variant.q_rows, layouts["q"]), lse, n,
        head_dim**-0.5 * LOG2_E, **kernel_constexprs(variant, head_dim, producer_registers), **launch_options(variant),
    )  # fmt: skip


def check(small: tuple[Tensor, Tensor, Tensor], forward, warps_probe) -> dict:
    """Errors of one variant against float32 causal attention (NaN compares as wrong), with the tolerances of
    ``probe_warp_specialization``."""
    import torch

    q, k, v = small
    expected_out, expected_lse = warps_probe.reference(q, k, v, True)
    out, lse = torch.full_like(q, float("nan")), torch.full(q.shape[:-1], float("nan"), device=q.device)
    forward(q, k, v, out, lse)
    row_error = (out.float() - expected_out).abs().amax(-1).nan_to_num(float("inf"))
    lse_error = (lse - expected_lse).abs().nan_to_num(float("inf")).max().item()
    right = row_error.max().item() <= warps_probe.O_TOLERANCE and lse_error <= warps_probe.L_TOLERANCE
    return {
        "max_out_error": row_error.max().item(),
        "max_lse_error": lse_error,
        "wrong_row_share": (row_error > warps_probe.O_TOLERANCE).float().mean().item(),
        "verdict": "right" if right else "wrong",
    }


def baselines() -> list[tuple[str, Callable[..., None] | None, dict]]:
    """(name, forward or None for cuDNN, no variant columns): cuDNN, and our forward on the ``(batch * heads, n, d)``
    views as the leaderboard's TMA rows run it."""
    os.environ["CS336_FLASH_TMA"] = "forward"  # read when triton_function is imported, just below
    from cs336_systems.flash_attention import triton_function

    def triton_forward(q, k, v, out, lse):
        rows = q.shape[0] * q.shape[1]
        views = (t.view(rows, *t.shape[2:]) for t in (q, k, v, out, lse))
        triton_function.launch_forward(*views, is_causal=True)

    name = f"Triton forward (autotuned, CS336_FLASH_TMA={triton_function.autotuned_tma_name()})"
    return [("SDPA cuDNN", None, {}), (name, triton_forward, {})]


def probe(config: ProbeConfig) -> list[dict]:
    """cuDNN and our autotuned Triton forward with TMA (``--baselines``), then each Gluon variant: checked, then
    timed (causal)."""
    import torch
    from cs336_basics.toolkit.entry_points import load_entry_point_module

    warps_probe = load_entry_point_module(BENCHMARKS / "probe_warp_specialization.py")
    torch.manual_seed(0)
    small_shape = (2, 4, config.check_seq_len, config.head_dim)
    small = tuple(torch.randn(small_shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    shape = (config.batch, config.heads, config.seq_len, config.head_dim)
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out, lse = torch.empty_like(q), torch.empty(shape[:-1], device="cuda")
    flops = warps_probe.attention_flops(*shape, True)

    forwards = list(baselines()) if config.baselines else []
    for variant in config.parsed_variants():
        forward = functools.partial(gluon_forward, variant=variant, producer_registers=config.producer_registers)
        forwards.append(("Gluon forward", forward, variant.columns()))
    rows = []
    for name, forward, variant_columns in forwards:
        row = {"kernel": name, **variant_columns}
        try:
            if forward is None:
                timed = functools.partial(warps_probe.cudnn_attention, q, k, v, True)
            else:
                row.update(check(small, forward, warps_probe))
                timed = functools.partial(forward, q, k, v, out, lse)
            row.update(warps_probe.timed(timed, flops, config))
        except Exception as error:  # noqa: BLE001 - a compile or launch failure is this probe's result
            row["verdict"] = error_summary(error)
        rows.append(row)
        print(row, flush=True)
    return rows


def write_results(config: ProbeConfig, machine: dict, rows: list[dict], columns: list[str], header: str) -> None:
    """``gluon_forward.json`` (every field) and ``gluon_forward.md`` (the table) in ``--out_dir``, and the table."""
    os.makedirs(config.out_dir, exist_ok=True)
    result = {**machine, "config": asdict(config), "rows": rows}
    write_text_atomic(os.path.join(config.out_dir, "gluon_forward.json"), json.dumps(result, indent=1))
    table = records_table(rows, columns)
    write_text_atomic(os.path.join(config.out_dir, "gluon_forward.md"), f"{header}\n\n{table}\n")
    print(table)


def main(config: ProbeConfig) -> bool:
    """Compile (``--compile_only``) or check and time every variant; False when one failed."""
    if config.compile_only:
        rows = compile_all(config)
        columns = [*VARIANT_COLUMNS, "status", "warps", "shared_bytes", "registers", "spill_bytes", *PTX_FEATURES]
        columns.append("setmaxnreg")
        header = f"Triton {triton.__version__}, sm_{config.arch}, head dim {config.head_dim}, bf16, causal"
        write_results(config, {"triton": triton.__version__, "arch": config.arch}, rows, columns, header)
        return all(row["status"] == "ok" for row in rows)
    import torch

    if not torch.cuda.is_available():
        sys.exit("probe_gluon_forward.py needs a CUDA GPU (Hopper: wgmma, TMA, setmaxnreg); --compile_only does not")
    rows = probe(config)
    machine = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}
    columns = ["kernel", *VARIANT_COLUMNS, "verdict", "max_out_error", "max_lse_error"]
    header = (
        f"{machine['device']}, torch {machine['torch']}, triton {machine['triton']}; causal, timed at batch "
        f"{config.batch}, {config.heads} heads, n = {config.seq_len}, d = {config.head_dim}, bf16; checked at n = "
        f"{config.check_seq_len} against float32"
    )
    write_results(config, machine, rows, [*columns, "wrong_row_share", "ms", "tflops"], header)
    return all(row.get("verdict") == "right" for row in rows if "verdict" in row)


if __name__ == "__main__":
    sys.exit(0 if main(CONFIG) else 1)
