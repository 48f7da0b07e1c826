"""Does a FlashAttention-3-style causal backward, written in Gluon, close the backward's gap to cuDNN on this GPU?

At batch 16 x 16 heads, n = 16384, d = 64, bf16, causal, our fastest backward (Triton, dK/dV programs adding dQ
by one TMA reduction per tile, ``BackwardConfig(64, 64, 64, 64, 4, 3, atomic_dq=True, tma=True)``) takes 58.7 ms
pinned against cuDNN's ~50.6 ms. The forward closed the same kind of gap with Gluon's hand warp specialisation
(``probe_gluon_forward.py``); this probe tries FlashAttention-3's backward scheme the same way.

The kernel: one program per (key tile of ``BLOCK_N`` keys, batch x head row) of the contiguous ``(rows * n, d)``
views; K and V loaded once by TMA; a producer warp streams the Q and dO tiles of ``BLOCK_M`` queries from the
diagonal on into a ring of ``NUM_STAGES`` shared-memory buffers guarded by "ready" and "empty" mbarriers; the
consumer warps (each wgmma waited for; ``sync``: one partition over the key tile, ``split_sync``: two
warpgroups, each its own half of the key tile, its own dS and dQ buffers and dQ reductions) compute S^T = K Q^T,
P^T = exp2(S^T scale log2e - L log2e) (the causal mask on the diagonal tiles only), dV += P^T dO, dP^T = V dO^T,
dS^T = P^T (dP^T - D), dK += dS^T Q, and dQ = dS K scale, which goes through shared memory into a float32 dQ
buffer by one TMA reduce-add (``cp.reduce.async.bulk``) per tile. dK (times scale) and dV leave by TMA at the
end. Gluon 3.6 has no Python wrapper for the TMA reduction, though its builder has the op: :func:`tma_reduce_add`
is that wrapper. D = rowsum(dO O), the zeroing of the float32 dQ and its final cast run in PyTorch.

Per variant (BLOCK_M, BLOCK_N, stages, mode, consumer warps, maxnreg): the largest errors of dQ, dK, dV at a small
shape (``--check_seq_len``, O and L from float32 attention) against float32 autograd of naive attention, then the
kernel alone and the whole backward (D, zeroing, kernel, cast) timed at the main shape, next to cuDNN's backward
(autograd of SDPA pinned to cuDNN) and our pinned Triton backward. Rows print as they finish;
``gluon_backward.json`` / ``.md`` go to ``--out_dir``. ``--compile_only`` compiles every variant for ``--arch``
without torch and reports registers, spills, shared memory and the PTX markers (wgmma, TMA loads, the TMA
reduction, mbarriers, setmaxnreg).

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/probe_gluon_backward.py --out_dir /tmp/gluon_bwd
Compile check (any machine, Triton 3.6 in a scratch environment):
    PYTHONPATH=assignment1-basics/src /tmp/t36/bin/python assignment2-systems/benchmarks/probe_gluon_backward.py \
        --compile_only --out_dir /tmp/gluon_bwd_compile
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.entry_points import load_entry_point_module

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

BENCHMARKS = Path(__file__).resolve().parent
MODES = ("sync", "split_sync")
DEFAULT_VARIANTS = (
    "64,64,2,sync,4,128",
    "64,128,2,split_sync,8,168",
    "64,64,3,sync,4,128",
    "64,128,3,split_sync,8,168",
    "64,128,2,sync,8,168",
    "64,64,4,sync,4,128",
)
"""Each wgmma waited for (the simplest correct scheme): one warpgroup on 64 x 64 tiles at two programs per SM
(128 registers, 74-107 KB of shared memory for 2-4 stages); the forward's winner's shape, each of two consumer
warpgroups its own 64 keys of a 128-key tile sharing one Q/dO ring, at one program per SM (168: up to 240
registers per consumer); and two warpgroups in one partition over 128 keys. Under Triton 3.6 none of these spills;
128 x 128 tiles in one partition spill (124 bytes at 168, 76 at 184) and 256-key split tiles spill heavily (2 KB and
more) or exceed shared memory: left out."""
VARIANT_COLUMNS = ["BLOCK_M", "BLOCK_N", "stages", "mode", "consumer_warps", "maxnreg"]
PTX_FEATURES = {
    "wgmma": "wgmma.mma_async",
    "tma_load": "cp.async.bulk.tensor",
    "tma_reduce": "cp.reduce.async.bulk.tensor",
    "tma_store": "cp.async.bulk.tensor.2d.global.shared",
    "mbarrier": "mbarrier.try_wait",
}
"""What the PTX of a variant should contain: the markers of the features this kernel is written for."""
HEAD_DIM = 64
LOG2_E = 1.4426950408889634


@dataclass(frozen=True)
class BackwardVariant:
    """One launch of the Gluon backward: query tile (streamed), key tile (owned), ring stages, mode, consumer warps
    (4 = one warpgroup; 8 = two, sharing the key tile's rows) and registers per thread at launch."""

    block_m: int
    block_n: int
    stages: int
    mode: str
    consumer_warps: int
    maxnreg: int
    producer_registers: int = 24

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.mode == "split_sync" and self.consumer_warps != 8:
            raise ValueError("split_sync takes two consumer warpgroups (8 warps), each its half of the key tile")
        if self.consumer_warps not in (4, 8):
            raise ValueError(f"4 or 8 consumer warps; got {self.consumer_warps}")
        if self.block_m not in (64, 128) or self.block_n not in (64, 128, 256) or self.key_rows % self.block_m:
            raise ValueError(
                f"BLOCK_M (64 or 128) must divide each partition's keys (BLOCK_N 64, 128 or 256 / partitions); got "
                f"{self.block_m} x {self.block_n}"
            )
        if self.key_rows % (16 * self.consumer_warps // self.consumers):
            raise ValueError(f"16 key rows per consumer warp or more; got {self.key_rows} for {self.consumer_warps}")
        if self.stages < 1:
            raise ValueError("1 stage at least")

    @property
    def consumers(self) -> int:
        """Consumer partitions: ``split_sync`` gives each warpgroup its own half of the key tile."""
        return self.consumer_warps // 4 if self.mode == "split_sync" else 1

    @property
    def key_rows(self) -> int:
        """Keys per consumer partition: the K/V/dK/dV descriptors' block."""
        return self.block_n // self.consumers

    @property
    def consumer_registers(self) -> int:
        """Registers per thread of each consumer partition after ``setmaxnreg``, as the forward's config counts
        them."""
        warps = self.consumer_warps + 4
        return min(256, (self.maxnreg * warps - self.producer_registers * 4) // self.consumer_warps // 8 * 8)

    def kernel_constexprs(self) -> dict:
        return {
            "BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "HEAD_DIM": HEAD_DIM, "NUM_STAGES": self.stages,
            "CONSUMERS": self.consumers, "CONSUMER_REGISTERS": self.consumer_registers,
            "PRODUCER_REGISTERS": self.producer_registers,
        }  # fmt: skip

    def launch_options(self) -> dict:
        """The default partition is the (first) consumer's, so its warps are the kernel's ``num_warps``."""
        return {"num_warps": self.consumer_warps // self.consumers, "maxnreg": self.maxnreg}


def parse_variant(text: str, producer_registers: int) -> BackwardVariant:
    """``BLOCK_M,BLOCK_N,NUM_STAGES,mode,warps,maxnreg`` as a :class:`BackwardVariant`, which checks the values."""
    parts = text.split(",")
    numbers = parts[:3] + parts[4:]
    if len(parts) != 6 or not all(p.isdigit() and int(p) > 0 for p in numbers):
        raise ValueError(f"variant {text!r}: expected BLOCK_M,BLOCK_N,NUM_STAGES,{'|'.join(MODES)},warps,maxnreg")
    block_m, block_n, stages, warps, maxnreg = (int(p) for p in numbers)
    try:
        return BackwardVariant(block_m, block_n, stages, parts[3], warps, maxnreg, producer_registers)
    except ValueError as error:
        raise ValueError(f"variant {text!r}: {error}") from None


def variant_columns(variant: BackwardVariant) -> dict:
    """A variant's table columns (``VARIANT_COLUMNS``)."""
    return {
        "BLOCK_M": variant.block_m, "BLOCK_N": variant.block_n, "stages": variant.stages,
        "mode": variant.mode, "consumer_warps": variant.consumer_warps, "maxnreg": variant.maxnreg,
    }  # fmt: skip


@dataclass(frozen=True)
class ProbeConfig:
    """The Gluon backward's variants, compiled or checked and timed on one shape."""

    out_dir: str = field(default="runs/gluon_backward", metadata={"help": "folder for the .json and .md"})
    batch: int = field(default=16, metadata={"help": "batch size of the timed shape"})
    heads: int = field(default=16, metadata={"help": "attention heads of the timed shape"})
    seq_len: int = field(default=16384, metadata={"help": "sequence length of the timed shape"})
    check_seq_len: int = field(default=2048, metadata={"help": "sequence length of the correctness check"})
    head_dim: int = field(default=64, metadata={"help": "head size (the kernel is written for 64)"})
    variants: list[str] = field(
        default_factory=lambda: list(DEFAULT_VARIANTS),
        metadata={"help": f"BLOCK_M,BLOCK_N,NUM_STAGES,{'|'.join(MODES)},consumer warps,maxnreg of the Gluon backward"},
    )
    baselines: bool = field(
        default=True, metadata={"help": "time cuDNN's and our pinned Triton backward too (off: the Gluon rows alone)"}
    )
    producer_registers: int = field(default=24, metadata={"help": "registers per thread of the producer warp"})
    warmup_ms: int = field(default=50, metadata={"help": "do_bench warm-up time per row"})
    rep_ms: int = field(default=200, metadata={"help": "do_bench measuring time per row"})
    compile_only: bool = field(
        default=False, metadata={"help": "compile every variant for --arch on the CPU (no torch) and report the PTX"}
    )
    arch: int = field(default=90, metadata={"help": "CUDA compute capability --compile_only targets (90 = Hopper)"})

    def __post_init__(self):
        if self.head_dim != HEAD_DIM:
            raise ValueError(f"head_dim {self.head_dim}: the Gluon backward is written for {HEAD_DIM}")
        for text, variant in zip(self.variants, self.parsed_variants(), strict=True):
            if self.check_seq_len % variant.block_n or self.seq_len % variant.block_n:
                raise ValueError(f"variant {text!r}: BLOCK_N must divide both lengths")

    def parsed_variants(self) -> list[BackwardVariant]:
        return [parse_variant(text, self.producer_registers) for text in self.variants]


if __name__ == "__main__":  # parsed before torch and Triton load: --help answers at once
    CONFIG = parse_config(ProbeConfig, description=__doc__)

import triton  # noqa: E402
from triton._C.libtriton import ir  # noqa: E402
from triton.experimental import gluon  # noqa: E402
from triton.experimental.gluon import language as gl  # noqa: E402
from triton.experimental.gluon.language._core import builtin  # noqa: E402
from triton.experimental.gluon.language.nvidia.hopper import (  # noqa: E402
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

FORWARD_PROBE = load_entry_point_module(BENCHMARKS / "probe_gluon_forward.py")
TMA_LOAD = FORWARD_PROBE.GLUON.TMA_LOAD
TMA_STORE = FORWARD_PROBE.GLUON.TMA_STORE
KERNEL_LOG2_E: gl.constexpr = gl.constexpr(LOG2_E)


@builtin
def tma_reduce_add(tensor_desc, coord, src, _semantic=None):
    """Add the shared-memory tile ``src`` into the global tile at ``coord`` by one TMA reduction (Gluon 3.6's
    builder has the op, its Python no wrapper); waited for by ``tma.store_wait`` like a TMA store."""
    coord = _semantic._convert_to_ir_values(coord, require_i64=False)
    _semantic.builder.create_async_tma_reduce(ir.DESCRIPTOR_REDUCE_KIND.ADD, tensor_desc.handle, coord, src.handle)


@gluon.jit
def _producer(
    q_desc, do_desc, q_smem, do_smem, ready, empty, row_base, first_query, num_tiles,
    BLOCK_M: gl.constexpr, NUM_STAGES: gl.constexpr,
):  # fmt: skip
    """Stream the Q and dO tiles from the diagonal on: wait until the consumers freed a stage, load both into it."""
    for i in range(num_tiles):
        stage = i % NUM_STAGES
        mbarrier.wait(empty.index(stage), ((i // NUM_STAGES) & 1) ^ 1)  # the first round passes
        mbarrier.expect(ready.index(stage), q_desc.block_type.nbytes + do_desc.block_type.nbytes)
        start = row_base + first_query + i * BLOCK_M
        TMA_LOAD(q_desc, [start, 0], ready.index(stage), q_smem.index(stage))
        TMA_LOAD(do_desc, [start, 0], ready.index(stage), do_smem.index(stage))


@gluon.jit
def _query_tile(
    q_smem, do_smem, k_smem, v_smem, ds_smem, dq_smem, dq_desc, L, Delta, dk, dv, row_base, key_start, query_start,
    qk_scale, sm_scale, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, MASK: gl.constexpr,
):  # fmt: skip
    """One query tile's share: dV and dK accumulate in registers, dQ leaves by a TMA reduce-add."""
    st_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[gl.num_warps(), 1], instr_shape=[16, BLOCK_M, 16]
    )
    kv_layout: gl.constexpr = dk.type.layout
    dq_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[4, gl.num_warps() // 4], instr_shape=[16, HEAD_DIM // (gl.num_warps() // 4), 16]
    )
    offs_m = query_start + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(0, st_layout))
    lse = gl.load(L + row_base + offs_m) * KERNEL_LOG2_E
    delta = gl.load(Delta + row_base + offs_m)
    zeros = gl.zeros([BLOCK_N, BLOCK_M], gl.float32, st_layout)
    st = warpgroup_mma(k_smem, q_smem.permute((1, 0)), zeros, use_acc=False, is_async=True)
    st = warpgroup_mma_wait(0, deps=[st])
    pt = gl.exp2(st * qk_scale - lse[None, :])
    if MASK:
        offs_n = key_start + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, st_layout))
        pt = gl.where(offs_m[None, :] >= offs_n[:, None], pt, 0.0)
    operand: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=kv_layout, k_width=2)
    pt16 = gl.convert_layout(pt.to(q_smem.dtype), operand)
    dv = warpgroup_mma(pt16, do_smem, dv, is_async=True)
    dpt = warpgroup_mma(v_smem, do_smem.permute((1, 0)), zeros, use_acc=False, is_async=True)
    dv, dpt, pt16 = warpgroup_mma_wait(0, deps=[dv, dpt, pt16])
    dst = (pt * (dpt - delta[None, :])).to(q_smem.dtype)
    ds_smem.store(dst)
    dst16 = gl.convert_layout(dst, operand)
    dk = warpgroup_mma(dst16, q_smem, dk, is_async=True)
    fence_async_shared()
    dq = warpgroup_mma(
        ds_smem.permute((1, 0)), k_smem, gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, dq_layout), use_acc=False,
        is_async=True,
    )  # fmt: skip
    dk, dq, dst16 = warpgroup_mma_wait(0, deps=[dk, dq, dst16])  # dS^T's registers too: read until done
    tma.store_wait(0)  # the previous tile's reduction has read dq_smem
    dq_smem.store(dq * sm_scale)
    fence_async_shared()
    tma_reduce_add(dq_desc, [row_base + query_start, 0], dq_smem)
    return dk, dv


@gluon.jit
def _consumer(
    dk_desc, dv_desc, dq_desc, L, Delta, q_smem, do_smem, k_smem, v_smem, ds_smem, dq_smem, kv_ready, ready, empty,
    row_base, first_query, key_start, num_tiles, qk_scale, sm_scale, BLOCK_M: gl.constexpr, KEY_ROWS: gl.constexpr,
    HEAD_DIM: gl.constexpr, NUM_STAGES: gl.constexpr,
):  # fmt: skip
    """dK and dV of the ``KEY_ROWS`` keys from ``key_start`` (a split partition's share of the program's key tile):
    the program's query tiles before these keys only released (every "empty" barrier counts every partition), the
    diagonal ones masked, the rest not; then dK and dV stored by TMA through K's and V's buffers."""
    kv_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[gl.num_warps(), 1], instr_shape=[16, HEAD_DIM, 16]
    )
    dk = gl.zeros([KEY_ROWS, HEAD_DIM], gl.float32, kv_layout)
    dv = gl.zeros([KEY_ROWS, HEAD_DIM], gl.float32, kv_layout)
    skipped = (key_start - first_query) // BLOCK_M
    diagonal = skipped + KEY_ROWS // BLOCK_M
    for i in range(0, skipped):
        mbarrier.wait(ready.index(i % NUM_STAGES), (i // NUM_STAGES) & 1)
        mbarrier.arrive(empty.index(i % NUM_STAGES))
    mbarrier.wait(kv_ready, 0)
    for i in range(skipped, diagonal):
        stage = i % NUM_STAGES
        mbarrier.wait(ready.index(stage), (i // NUM_STAGES) & 1)
        dk, dv = _query_tile(
            q_smem.index(stage), do_smem.index(stage), k_smem, v_smem, ds_smem, dq_smem, dq_desc, L, Delta, dk, dv,
            row_base, key_start, first_query + i * BLOCK_M, qk_scale, sm_scale, BLOCK_M, KEY_ROWS, HEAD_DIM, True,
        )  # fmt: skip
        mbarrier.arrive(empty.index(stage))
    for i in range(diagonal, num_tiles):
        stage = i % NUM_STAGES
        mbarrier.wait(ready.index(stage), (i // NUM_STAGES) & 1)
        dk, dv = _query_tile(
            q_smem.index(stage), do_smem.index(stage), k_smem, v_smem, ds_smem, dq_smem, dq_desc, L, Delta, dk, dv,
            row_base, key_start, first_query + i * BLOCK_M, qk_scale, sm_scale, BLOCK_M, KEY_ROWS, HEAD_DIM, False,
        )  # fmt: skip
        mbarrier.arrive(empty.index(stage))
    k_smem.store((dk * sm_scale).to(k_smem.dtype))
    v_smem.store(dv.to(v_smem.dtype))
    fence_async_shared()
    TMA_STORE(dk_desc, [row_base + key_start, 0], k_smem)
    TMA_STORE(dv_desc, [row_base + key_start, 0], v_smem)
    tma.store_wait(0)


@gluon.jit
def gluon_backward_kernel(
    q_desc, k_desc, v_desc, do_desc, dq_desc, dk_desc, dv_desc, L, Delta, N, qk_scale, sm_scale,
    BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, NUM_STAGES: gl.constexpr,
    CONSUMERS: gl.constexpr, CONSUMER_REGISTERS: gl.constexpr, PRODUCER_REGISTERS: gl.constexpr,
):  # fmt: skip
    """Causal dK and dV of one key tile of one (batch x head) row, and its dQ contributions added into a float32
    dQ: key tiles with the most query tiles first (program 0). One producer warp streams Q and dO for 1 or 2
    consumer partitions, each its own ``BLOCK_N / CONSUMERS`` keys (the K/V/dK/dV descriptors' block), its own dS
    and dQ buffers and its own dQ reductions. ``L`` natural-log, ``Delta`` = rowsum(dO O), both float32
    ``(rows, N)``; ``qk_scale`` = scale * log2(e)."""
    KEY_ROWS: gl.constexpr = BLOCK_N // CONSUMERS
    key_start = gl.program_id(0) * BLOCK_N
    row_base = gl.program_id(1) * N
    num_tiles = (N - key_start) // BLOCK_M
    q_smem = gl.allocate_shared_memory(q_desc.dtype, [NUM_STAGES, BLOCK_M, HEAD_DIM], q_desc.layout)
    do_smem = gl.allocate_shared_memory(do_desc.dtype, [NUM_STAGES, BLOCK_M, HEAD_DIM], do_desc.layout)
    k_smem = gl.allocate_shared_memory(k_desc.dtype, [CONSUMERS, KEY_ROWS, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(v_desc.dtype, [CONSUMERS, KEY_ROWS, HEAD_DIM], v_desc.layout)
    ds_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([KEY_ROWS, BLOCK_M], q_desc.dtype)
    ds_smem = gl.allocate_shared_memory(q_desc.dtype, [CONSUMERS, KEY_ROWS, BLOCK_M], ds_layout)
    dq_smem = gl.allocate_shared_memory(dq_desc.dtype, [CONSUMERS, BLOCK_M, HEAD_DIM], dq_desc.layout)
    kv_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(kv_ready, count=1)
    for stage in gl.static_range(NUM_STAGES):
        mbarrier.init(ready.index(stage), count=1)
        mbarrier.init(empty.index(stage), count=CONSUMERS)  # one elected arrive per consumer partition
    fence_async_shared()
    mbarrier.expect(kv_ready, CONSUMERS * (k_desc.block_type.nbytes + v_desc.block_type.nbytes))
    for part in gl.static_range(CONSUMERS):
        TMA_LOAD(k_desc, [row_base + key_start + part * KEY_ROWS, 0], kv_ready, k_smem.index(part))
        TMA_LOAD(v_desc, [row_base + key_start + part * KEY_ROWS, 0], kv_ready, v_smem.index(part))
    # The argument tuples inline: a tuple assigned to a name turns its constexprs into tensors.
    if CONSUMERS == 1:
        gl.warp_specialize(
            [
                (
                    _consumer,
                    (
                        dk_desc, dv_desc, dq_desc, L, Delta, q_smem, do_smem, k_smem.index(0), v_smem.index(0),
                        ds_smem.index(0), dq_smem.index(0), kv_ready, ready, empty, row_base, key_start, key_start,
                        num_tiles, qk_scale, sm_scale, BLOCK_M, KEY_ROWS, HEAD_DIM, NUM_STAGES,
                    ),
                ),
                (
                    _producer,
                    (
                        q_desc, do_desc, q_smem, do_smem, ready, empty, row_base, key_start, num_tiles, BLOCK_M,
                        NUM_STAGES,
                    ),
                ),
            ],
            [1],
            [PRODUCER_REGISTERS],
        )  # fmt: skip
    else:
        gl.static_assert(CONSUMERS == 2, "1 or 2 consumer partitions")
        gl.warp_specialize(
            [
                (
                    _consumer,
                    (
                        dk_desc, dv_desc, dq_desc, L, Delta, q_smem, do_smem, k_smem.index(0), v_smem.index(0),
                        ds_smem.index(0), dq_smem.index(0), kv_ready, ready, empty, row_base, key_start, key_start,
                        num_tiles, qk_scale, sm_scale, BLOCK_M, KEY_ROWS, HEAD_DIM, NUM_STAGES,
                    ),
                ),
                (
                    _consumer,
                    (
                        dk_desc, dv_desc, dq_desc, L, Delta, q_smem, do_smem, k_smem.index(1), v_smem.index(1),
                        ds_smem.index(1), dq_smem.index(1), kv_ready, ready, empty, row_base, key_start,
                        key_start + KEY_ROWS, num_tiles, qk_scale, sm_scale, BLOCK_M, KEY_ROWS, HEAD_DIM, NUM_STAGES,
                    ),
                ),
                (
                    _producer,
                    (
                        q_desc, do_desc, q_smem, do_smem, ready, empty, row_base, key_start, num_tiles, BLOCK_M,
                        NUM_STAGES,
                    ),
                ),
            ],
            [4, 1],
            [CONSUMER_REGISTERS, PRODUCER_REGISTERS],
        )  # fmt: skip


def shared_layouts(variant: BackwardVariant, dtype: gl.dtype) -> dict[str, gl.NVMMASharedLayout]:
    """The swizzled layouts of the Q/dO, K/V/dK/dV and float32 dQ tiles, which descriptors and buffers share."""
    return {
        "q": gl.NVMMASharedLayout.get_default_for([variant.block_m, HEAD_DIM], dtype),
        "kv": gl.NVMMASharedLayout.get_default_for([variant.key_rows, HEAD_DIM], dtype),
        "dq": gl.NVMMASharedLayout.get_default_for([variant.block_m, HEAD_DIM], gl.float32),
    }


def compile_variant(variant: BackwardVariant, arch: int, dtype: str = "bf16"):
    """The kernel compiled for ``arch`` from its signature alone (no tensors, no GPU)."""
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    layouts = shared_layouts(variant, {"bf16": gl.bfloat16, "fp16": gl.float16}[dtype])
    q_type = f"tensordesc<{dtype}[{variant.block_m}, {HEAD_DIM}],{layouts['q']!r}>"
    kv_type = f"tensordesc<{dtype}[{variant.key_rows}, {HEAD_DIM}],{layouts['kv']!r}>"
    dq_type = f"tensordesc<fp32[{variant.block_m}, {HEAD_DIM}],{layouts['dq']!r}>"
    constexprs = variant.kernel_constexprs()
    signature = {"q_desc": q_type, "k_desc": kv_type, "v_desc": kv_type, "do_desc": q_type, "dq_desc": dq_type}
    signature |= {"dk_desc": kv_type, "dv_desc": kv_type, "L": "*fp32", "Delta": "*fp32", "N": "i32"}
    signature |= {"qk_scale": "fp32", "sm_scale": "fp32"} | dict.fromkeys(constexprs, "constexpr")
    source = GluonASTSource(fn=gluon_backward_kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=variant.launch_options())


def compile_all(config: ProbeConfig) -> list[dict]:
    """A row per variant: registers and spills (``ptxas -v``), shared memory, warps and the PTX features found (bf16),
    and whether the fp16 kernel compiles too."""
    ptxas_resources = load_entry_point_module(
        BENCHMARKS.parent / "scripts" / "compile_flash_kernels.py"
    ).ptxas_resources
    rows = []
    for variant in config.parsed_variants():
        row = variant_columns(variant)
        try:
            compiled = compile_variant(variant, config.arch)
            ptx = compiled.asm["ptx"]
            row.update(status="ok", shared_bytes=compiled.metadata.shared, warps=compiled.metadata.num_warps)
            row.update(ptxas_resources(ptx, config.arch))
            row.update({name: marker in ptx for name, marker in PTX_FEATURES.items()})
            found = FORWARD_PROBE.SETMAXNREG.findall(ptx)
            row["setmaxnreg"] = " ".join(sorted({" ".join(m) for m in found})) or "none"
            compile_variant(variant, config.arch, "fp16")
            row["fp16"] = "compiles"
        except Exception as error:  # noqa: BLE001 - a compile error is this mode's result
            row["status"] = FORWARD_PROBE.error_summary(error)
        rows.append(row)
        print(row, flush=True)
    return rows


def launch_gluon_backward(
    q: Float[Tensor, "batch heads n d"],
    k: Float[Tensor, "batch heads n d"],
    v: Float[Tensor, "batch heads n d"],
    do: Float[Tensor, "batch heads n d"],
    lse: Float[Tensor, "batch heads n"],
    delta: Float[Tensor, "batch heads n"],
    dq32: Float[Tensor, "batch heads n d"],
    dk: Float[Tensor, "batch heads n d"],
    dv: Float[Tensor, "batch heads n d"],
    variant: BackwardVariant,
) -> None:
    """The kernel alone: dK, dV written, dQ (times scale) added into the zeroed float32 ``dq32``."""
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    n, head_dim = q.shape[-2:]
    rows = q.numel() // (n * head_dim)
    tensors = (q, k, v, do, lse, delta, dq32, dk, dv)
    if head_dim != HEAD_DIM or n % variant.block_n or not all(t.is_contiguous() for t in tensors):
        raise ValueError(f"contiguous inputs, d = {HEAD_DIM}, n a multiple of BLOCK_N; got {tuple(q.shape)}")
    layouts = shared_layouts(variant, FORWARD_PROBE.GLUON.DTYPES[str(q.dtype)])

    def descriptor(tensor: Tensor, block_rows: int, layout: gl.NVMMASharedLayout) -> TensorDescriptor:
        view = tensor.view(rows * n, head_dim)
        return TensorDescriptor(view, [rows * n, head_dim], [head_dim, 1], [block_rows, head_dim], layout)

    m_desc = functools.partial(descriptor, block_rows=variant.block_m, layout=layouts["q"])
    n_desc = functools.partial(descriptor, block_rows=variant.key_rows, layout=layouts["kv"])
    gluon_backward_kernel[(n // variant.block_n, rows)](
        m_desc(q), n_desc(k), n_desc(v), m_desc(do), descriptor(dq32, variant.block_m, layouts["dq"]), n_desc(dk),
        n_desc(dv), lse, delta, n, head_dim**-0.5 * LOG2_E, head_dim**-0.5, **variant.kernel_constexprs(),
        **variant.launch_options(),
    )  # fmt: skip


def whole_backward(q, k, v, out, do, lse, dq, dk, dv, variant: BackwardVariant) -> None:
    """D = rowsum(dO O), a zeroed float32 dQ, the kernel, and dQ cast into ``dq``: the backward as a caller sees it."""
    import torch

    delta = (do.float() * out.float()).sum(-1)
    dq32 = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    launch_gluon_backward(q, k, v, do, lse, delta, dq32, dk, dv, variant)
    dq.copy_(dq32)


GRAD_TOLERANCE = 2e-2
"""A gradient is wrong past this share of its largest float32 magnitude: bf16 P and dS in the matmuls, as every
flash backward rounds them, stay well within."""


def check(small: tuple[Tensor, Tensor, Tensor], backward: Callable[..., None], warps_probe) -> dict:
    """The largest errors of dQ, dK, dV from ``backward(q, k, v, out, do, lse, dq, dk, dv)`` against float32 autograd
    of naive attention, absolute and as a share of the largest expected value (NaN compares as wrong); O and L from
    float32 attention."""
    import torch

    q, k, v = small
    leaves = [t.float().requires_grad_() for t in small]
    expected_out, lse = warps_probe.reference(*leaves, True)
    do = torch.randn_like(q)
    expected = torch.autograd.grad(expected_out, leaves, do.float())
    out = expected_out.detach().to(q.dtype)
    grads = tuple(torch.full_like(q, float("nan")) for _ in range(3))
    backward(q, k, v, out, do, lse.detach().contiguous(), *grads)
    row, shares = {}, []
    for name, got, want in zip(("dq", "dk", "dv"), grads, expected, strict=True):
        error = (got.float() - want).abs().nan_to_num(float("inf")).max().item()
        row[f"max_{name}_error"] = error
        shares.append(error / want.abs().max().item())
    row["max_error_share"] = max(shares)
    return {**row, "verdict": "right" if max(shares) <= GRAD_TOLERANCE else "wrong"}


def probe(config: ProbeConfig) -> list[dict]:
    """cuDNN's and our pinned Triton backward (``--baselines``), then each Gluon variant: checked, then the kernel
    alone and the whole backward timed (causal)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention

    warps_probe = load_entry_point_module(BENCHMARKS / "probe_warp_specialization.py")
    torch.manual_seed(0)
    small_shape = (2, 4, config.check_seq_len, config.head_dim)
    small = tuple(torch.randn(small_shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    shape = (config.batch, config.heads, config.seq_len, config.head_dim)
    q, k, v, do = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    flops = 2.5 * warps_probe.attention_flops(*shape, True)  # five matmuls to the forward's two
    rows = []
    if config.baselines:
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            cudnn_out = scaled_dot_product_attention(*leaves, is_causal=True)
        row = {"kernel": "SDPA cuDNN backward (autograd)"}
        row.update(
            warps_probe.timed(lambda: torch.autograd.grad(cudnn_out, leaves, do, retain_graph=True), flops, config)
        )
        rows.append(row)
        print(row, flush=True)
        del cudnn_out, leaves
    from cs336_systems.flash_attention import triton_function

    out, lse = torch.empty_like(q), torch.empty(shape[:-1], device="cuda")
    pinned_forward = triton_function.ForwardConfig(128, 128, 4, 3, tma=True)  # O and L for D and P: no autotuning
    triton_function.launch_forward(q, k, v, out, lse, True, pinned_forward)
    dq, dk, dv = (torch.empty_like(q) for _ in range(3))
    if config.baselines:
        pinned = triton_function.BackwardConfig(64, 64, 64, 64, 4, 3, atomic_dq=True, tma=True)

        def triton_backward(*tensors):
            views = [t.view(-1, *t.shape[2:]) for t in tensors]
            triton_function.launch_backward(*views, True, pinned)

        row = {
            "kernel": "Triton backward pinned (64/64, atomic dQ by TMA)",
            **check(small, triton_backward, warps_probe),
        }
        timed = functools.partial(triton_backward, q, k, v, out, do, lse, dq, dk, dv)
        row.update(warps_probe.timed(timed, flops, config))
        rows.append(row)
        print(row, flush=True)
    delta = (do.float() * out.float()).sum(-1)
    dq32 = torch.zeros(shape, dtype=torch.float32, device="cuda")
    for variant in config.parsed_variants():
        row = {"kernel": "Gluon backward", **variant_columns(variant)}
        try:
            row.update(check(small, functools.partial(whole_backward, variant=variant), warps_probe))
            kernel = functools.partial(launch_gluon_backward, q, k, v, do, lse, delta, dq32, dk, dv, variant)
            row.update({f"kernel_{key}": value for key, value in warps_probe.timed(kernel, flops, config).items()})
            whole = functools.partial(whole_backward, q, k, v, out, do, lse, dq, dk, dv, variant)
            row.update(warps_probe.timed(whole, flops, config))
        except Exception as error:  # noqa: BLE001 - a compile or launch failure is this probe's result
            row["verdict"] = FORWARD_PROBE.error_summary(error)
        rows.append(row)
        print(row, flush=True)
    return rows


def main(config: ProbeConfig) -> bool:
    """Compile (``--compile_only``) or check and time every variant; False when one failed."""
    if config.compile_only:
        rows = compile_all(config)
        columns = [*VARIANT_COLUMNS, "status", "warps", "shared_bytes", "registers", "spill_bytes", *PTX_FEATURES]
        columns += ["setmaxnreg", "fp16"]
        header = f"Triton {triton.__version__}, sm_{config.arch}, head dim {HEAD_DIM}, bf16, causal backward"
        FORWARD_PROBE.write_results(
            config, {"triton": triton.__version__, "arch": config.arch}, rows, columns, header, "gluon_backward"
        )
        return all(row["status"] == "ok" for row in rows)
    import torch

    if not torch.cuda.is_available():
        sys.exit("probe_gluon_backward.py needs a CUDA GPU (Hopper: wgmma, TMA, setmaxnreg); --compile_only does not")
    rows = probe(config)
    machine = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}
    columns = ["kernel", *VARIANT_COLUMNS, "verdict", "max_dq_error", "max_dk_error", "max_dv_error", "max_error_share"]
    header = (
        f"{machine['device']}, torch {machine['torch']}, triton {machine['triton']}; causal backward, timed at batch "
        f"{config.batch}, {config.heads} heads, n = {config.seq_len}, d = {HEAD_DIM}, bf16; checked at n = "
        f"{config.check_seq_len} against float32 autograd"
    )
    columns += ["kernel_ms", "ms", "tflops"]
    FORWARD_PROBE.write_results(config, machine, rows, columns, header, "gluon_backward")
    return all(row.get("verdict") == "right" for row in rows if "verdict" in row)


if __name__ == "__main__":
    sys.exit(0 if main(CONFIG) else 1)
