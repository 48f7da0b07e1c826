"""A FlashAttention-3-style causal backward in Gluon: dK/dV programs fed by a producer warp, dQ added by TMA
reductions, and the matmuls of one query tile overlapped with its exponentials. The opt-in backward of
``FlashAttentionTriton`` (``CS336_FLASH_GLUON=backward`` or ``both``, ``triton_function``).

One program per (key tile, batch x head row), key tiles with the most queries first. K and V are loaded once by TMA;
a producer warp streams the Q and dO tiles of ``BLOCK_M`` queries from the diagonal on into a ring of ``NUM_STAGES``
shared-memory buffers guarded by "ready" and "empty" mbarriers; the consumer warps compute, per query tile,
S^T = K Q^T, P^T = exp2(S^T scale log2e - L log2e) (masked on the diagonal tiles only), dV += P^T dO,
dP^T = V dO^T, dS^T = P^T (dP^T - D), dK += dS^T Q and dQ = dS K scale, which goes through shared memory into a
float32 dQ by one TMA reduce-add (``cp.reduce.async.bulk``): five matmuls, where the default Triton backward does
seven. dK (times scale) and dV leave by TMA at the end, through K's and V's buffers.

The modes (:data:`MODES`) are constexpr branches: ``sync`` waits for each wgmma before the next step; ``overlap``
issues dP^T's wgmma with S^T's, so it runs during the exponentials, and lets dV's run while dS is computed
(FlashAttention-3's intra-warpgroup overlap; wgmma groups complete in order, so each wait names how many may stay in
flight); ``split_`` gives each of two consumer warpgroups its own half of the key tile. The default,
:class:`GluonBackwardConfig` ``()``, ``overlap`` on 64 x 64 tiles with 3 stages at 128 registers (two programs per
SM), was the best of ``benchmarks/probe_gluon_backward.py`` on an H200 (torch 2.11, Triton 3.6): at batch 16 x 16
heads, n = 16384, d = 64, bf16, causal, the kernel took 52.7 ms against 58.4 for ``sync``, and at batch 4 x 12
heads, n = 4096, 0.674 ms against 0.723 (cuDNN's whole backward: 51.1 and 0.713 ms).

Q, K, V, dO, dK and dV are read and written in their own layouts through 2-D descriptors over their storages, as
the Gluon forward's are (:func:`~cs336_systems.flash_attention.gluon_forward.gluon_layout_refusal`); dQ is a
contiguous float32 ``(rows, n, d)`` buffer, zeroed by the caller. n must be a multiple of the key tile (no ragged
tiles). L (natural-log) and D = rowsum(dO O) are float32, contiguous ``(rows, n)``. Like the forward's module, this
one imports no torch at import time, so the probe's compile check runs in a Triton-only environment.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from triton._C.libtriton import ir
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language._core import builtin
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

if __package__:
    from cs336_systems.flash_attention import gluon_forward
else:  # loaded by path (the probe's compile check, Triton without torch: the package's __init__ imports torch)
    from cs336_basics.toolkit.entry_points import load_entry_point_module

    gluon_forward = load_entry_point_module(Path(__file__).with_name("gluon_forward.py"))

DTYPES, HEAD_DIM, LOG2_E = gluon_forward.DTYPES, gluon_forward.HEAD_DIM, gluon_forward.LOG2_E
TMA_LOAD, TMA_STORE = gluon_forward.TMA_LOAD, gluon_forward.TMA_STORE
_storage_coordinates = gluon_forward._storage_coordinates

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

MODES = ("sync", "split_sync", "overlap", "split_overlap")
KERNEL_LOG2_E: gl.constexpr = gl.constexpr(LOG2_E)


@dataclass(frozen=True)
class GluonBackwardConfig(gluon_forward.WarpSpecializedRegisters):
    """One launch of the Gluon backward: query tile (streamed), key tile (owned), ring stages, mode, consumer warps
    (4 = one warpgroup; 8 = two, sharing the key tile's rows, or each its own half in the ``split_`` modes), the
    registers per thread at launch (``maxnreg``, which sets how many programs share an SM) and the producer warp's
    after ``setmaxnreg``. Defaults: the probe's best on an H200."""

    block_m: int = 64
    block_n: int = 64
    stages: int = 3
    mode: str = "overlap"
    consumer_warps: int = 4
    maxnreg: int = 128
    producer_registers: int = 24

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.mode.startswith("split") and self.consumer_warps != 8:
            raise ValueError(f"{self.mode} takes two consumer warpgroups (8 warps), each its half of the key tile")
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
        """Consumer partitions: the ``split_`` modes give each warpgroup its own half of the key tile."""
        return self.consumer_warps // 4 if self.mode.startswith("split") else 1

    @property
    def key_rows(self) -> int:
        """Keys per consumer partition: the K/V/dK/dV descriptors' block."""
        return self.block_n // self.consumers

    def kernel_constexprs(self) -> dict:
        return {
            "BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "HEAD_DIM": HEAD_DIM, "NUM_STAGES": self.stages,
            "CONSUMERS": self.consumers, "CONSUMER_REGISTERS": self.consumer_registers,
            "PRODUCER_REGISTERS": self.producer_registers, "OVERLAP": self.mode.endswith("overlap"),
        }  # fmt: skip

    def shared_layouts(self, dtype: gl.dtype) -> dict[str, gl.NVMMASharedLayout]:
        """The swizzled layouts of the Q/dO, K/V/dK/dV and float32 dQ tiles, which descriptors and buffers share."""
        return {
            "q": gl.NVMMASharedLayout.get_default_for([self.block_m, HEAD_DIM], dtype),
            "kv": gl.NVMMASharedLayout.get_default_for([self.key_rows, HEAD_DIM], dtype),
            "dq": gl.NVMMASharedLayout.get_default_for([self.block_m, HEAD_DIM], gl.float32),
        }


def gluon_backward_refusal(
    capability: tuple[int, int] | None,
    dtypes: tuple[str, ...],
    is_causal: bool,
    head_dim: int,
    n_queries: int,
    n_keys: int,
    rows: int,
    config: GluonBackwardConfig = GluonBackwardConfig(),  # noqa: B008 - frozen, so one shared default is safe
) -> str | None:
    """Why the Gluon backward cannot take this case, or None: the forward's conditions
    (:func:`~cs336_systems.flash_attention.gluon_forward.gluon_forward_refusal`) and a length that is a multiple of
    the key tile. The layouts are checked per call (:func:`launch_gluon_backward`)."""
    refusal = gluon_forward.gluon_forward_refusal(capability, dtypes, is_causal, head_dim, n_queries, n_keys, rows)
    if refusal is None and n_queries % config.block_n:
        refusal = f"a length that is a multiple of {config.block_n} only; got {n_queries}"
    return refusal


@builtin
def tma_reduce_add(tensor_desc, coord, src, _semantic=None):
    """Add the shared-memory tile ``src`` into the global tile at ``coord`` by one TMA reduction (Gluon 3.6's
    builder has the op, its Python no wrapper); waited for by ``tma.store_wait`` like a TMA store."""
    coord = _semantic._convert_to_ir_values(coord, require_i64=False)
    _semantic.builder.create_async_tma_reduce(ir.DESCRIPTOR_REDUCE_KIND.ADD, tensor_desc.handle, coord, src.handle)


@gluon.jit
def _producer(
    q_desc, do_desc, q_smem, do_smem, ready, empty, q_row, q_col, do_row, do_col, first_query, num_tiles,
    BLOCK_M: gl.constexpr, NUM_STAGES: gl.constexpr,
):  # fmt: skip
    """Stream the Q and dO tiles from the diagonal on: wait until the consumers freed a stage, load both into it."""
    for i in range(num_tiles):
        stage = i % NUM_STAGES
        mbarrier.wait(empty.index(stage), ((i // NUM_STAGES) & 1) ^ 1)  # the first round passes
        mbarrier.expect(ready.index(stage), q_desc.block_type.nbytes + do_desc.block_type.nbytes)
        start = first_query + i * BLOCK_M
        TMA_LOAD(q_desc, [q_row + start, q_col], ready.index(stage), q_smem.index(stage))
        TMA_LOAD(do_desc, [do_row + start, do_col], ready.index(stage), do_smem.index(stage))


@gluon.jit
def _query_tile(
    q_smem, do_smem, k_smem, v_smem, ds_smem, dq_smem, dq_desc, L, Delta, dk, dv, row_base, key_start, query_start,
    qk_scale, sm_scale, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, MASK: gl.constexpr,
    OVERLAP: gl.constexpr,
):  # fmt: skip
    """One query tile's share: dV and dK accumulate in registers, dQ leaves by a TMA reduce-add. With ``OVERLAP``
    dP^T's wgmma is issued with S^T's and runs while the exponentials are computed, and dV's runs while dS is: each
    wait lets the later wgmma stay in flight (wgmma groups complete in order)."""
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
    if OVERLAP:
        dpt = warpgroup_mma(v_smem, do_smem.permute((1, 0)), zeros, use_acc=False, is_async=True)
        st = warpgroup_mma_wait(1, deps=[st])
    else:
        st = warpgroup_mma_wait(0, deps=[st])
    pt = gl.exp2(st * qk_scale - lse[None, :])
    if MASK:
        offs_n = key_start + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, st_layout))
        pt = gl.where(offs_m[None, :] >= offs_n[:, None], pt, 0.0)
    operand: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=kv_layout, k_width=2)
    pt16 = gl.convert_layout(pt.to(q_smem.dtype), operand)
    dv = warpgroup_mma(pt16, do_smem, dv, is_async=True)
    if OVERLAP:
        dpt = warpgroup_mma_wait(1, deps=[dpt])
    else:
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
    if OVERLAP:
        dv, dk, dq, dst16, pt16 = warpgroup_mma_wait(0, deps=[dv, dk, dq, dst16, pt16])
    else:
        dk, dq, dst16 = warpgroup_mma_wait(0, deps=[dk, dq, dst16])  # dS^T's registers too: read until done
    tma.store_wait(0)  # the previous tile's reduction has read dq_smem
    dq_smem.store(dq * sm_scale)
    fence_async_shared()
    tma_reduce_add(dq_desc, [row_base + query_start, 0], dq_smem)
    return dk, dv


@gluon.jit
def _consumer(
    dk_desc, dv_desc, dq_desc, L, Delta, q_smem, do_smem, k_smem, v_smem, ds_smem, dq_smem, kv_ready, ready, empty,
    row_base, dk_row, dk_col, dv_row, dv_col, first_query, key_start, num_tiles, qk_scale, sm_scale,
    BLOCK_M: gl.constexpr, KEY_ROWS: gl.constexpr, HEAD_DIM: gl.constexpr, NUM_STAGES: gl.constexpr,
    OVERLAP: gl.constexpr,
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
            OVERLAP,
        )  # fmt: skip
        mbarrier.arrive(empty.index(stage))
    for i in range(diagonal, num_tiles):
        stage = i % NUM_STAGES
        mbarrier.wait(ready.index(stage), (i // NUM_STAGES) & 1)
        dk, dv = _query_tile(
            q_smem.index(stage), do_smem.index(stage), k_smem, v_smem, ds_smem, dq_smem, dq_desc, L, Delta, dk, dv,
            row_base, key_start, first_query + i * BLOCK_M, qk_scale, sm_scale, BLOCK_M, KEY_ROWS, HEAD_DIM, False,
            OVERLAP,
        )  # fmt: skip
        mbarrier.arrive(empty.index(stage))
    k_smem.store((dk * sm_scale).to(k_smem.dtype))
    v_smem.store(dv.to(v_smem.dtype))
    fence_async_shared()
    TMA_STORE(dk_desc, [dk_row + key_start, dk_col], k_smem)
    TMA_STORE(dv_desc, [dv_row + key_start, dv_col], v_smem)
    tma.store_wait(0)


@gluon.jit
def gluon_backward_kernel(
    q_desc, k_desc, v_desc, do_desc, dq_desc, dk_desc, dv_desc, L, Delta, N, H, qk_scale, sm_scale,
    stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
    stride_dob, stride_doh, stride_don, stride_dkb, stride_dkh, stride_dkn, stride_dvb, stride_dvh, stride_dvn,
    BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, NUM_STAGES: gl.constexpr,
    CONSUMERS: gl.constexpr, CONSUMER_REGISTERS: gl.constexpr, PRODUCER_REGISTERS: gl.constexpr,
    OVERLAP: gl.constexpr,
):  # fmt: skip
    """Causal dK and dV of one key tile of one (batch x head) row, and its dQ contributions added into the float32
    ``(rows * N, HEAD_DIM)`` dQ: key tiles with the most query tiles first (program 0). One producer warp streams Q
    and dO for 1 or 2 consumer partitions, each its own ``BLOCK_N / CONSUMERS`` keys (the K/V/dK/dV descriptors'
    block), its own dS and dQ buffers and its own dQ reductions. Q, K, V, dO, dK and dV each come with their (batch,
    head, sequence) strides and a descriptor over their storage's ``[rows, stride_n]`` matrix, where the row's tile
    at position s is the box at ``[R + s, C]`` (``gluon_forward._storage_coordinates``). ``L`` natural-log, ``Delta``
    = rowsum(dO O), both float32 ``(rows, N)``; ``qk_scale`` = scale * log2(e)."""
    KEY_ROWS: gl.constexpr = BLOCK_N // CONSUMERS
    key_start = gl.program_id(0) * BLOCK_N
    row = gl.program_id(1)
    row_base = row * N
    q_row, q_col = _storage_coordinates(row, H, stride_qb, stride_qh, stride_qn)
    k_row, k_col = _storage_coordinates(row, H, stride_kb, stride_kh, stride_kn)
    v_row, v_col = _storage_coordinates(row, H, stride_vb, stride_vh, stride_vn)
    do_row, do_col = _storage_coordinates(row, H, stride_dob, stride_doh, stride_don)
    dk_row, dk_col = _storage_coordinates(row, H, stride_dkb, stride_dkh, stride_dkn)
    dv_row, dv_col = _storage_coordinates(row, H, stride_dvb, stride_dvh, stride_dvn)
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
        TMA_LOAD(k_desc, [k_row + key_start + part * KEY_ROWS, k_col], kv_ready, k_smem.index(part))
        TMA_LOAD(v_desc, [v_row + key_start + part * KEY_ROWS, v_col], kv_ready, v_smem.index(part))
    # The argument tuples inline: a tuple assigned to a name turns its constexprs into tensors.
    if CONSUMERS == 1:
        gl.warp_specialize(
            [
                (
                    _consumer,
                    (
                        dk_desc, dv_desc, dq_desc, L, Delta, q_smem, do_smem, k_smem.index(0), v_smem.index(0),
                        ds_smem.index(0), dq_smem.index(0), kv_ready, ready, empty, row_base, dk_row, dk_col, dv_row,
                        dv_col, key_start, key_start, num_tiles, qk_scale, sm_scale, BLOCK_M, KEY_ROWS, HEAD_DIM,
                        NUM_STAGES, OVERLAP,
                    ),
                ),
                (
                    _producer,
                    (
                        q_desc, do_desc, q_smem, do_smem, ready, empty, q_row, q_col, do_row, do_col, key_start,
                        num_tiles, BLOCK_M, NUM_STAGES,
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
                        ds_smem.index(0), dq_smem.index(0), kv_ready, ready, empty, row_base, dk_row, dk_col, dv_row,
                        dv_col, key_start, key_start, num_tiles, qk_scale, sm_scale, BLOCK_M, KEY_ROWS, HEAD_DIM,
                        NUM_STAGES, OVERLAP,
                    ),
                ),
                (
                    _consumer,
                    (
                        dk_desc, dv_desc, dq_desc, L, Delta, q_smem, do_smem, k_smem.index(1), v_smem.index(1),
                        ds_smem.index(1), dq_smem.index(1), kv_ready, ready, empty, row_base, dk_row, dk_col, dv_row,
                        dv_col, key_start, key_start + KEY_ROWS, num_tiles, qk_scale, sm_scale, BLOCK_M, KEY_ROWS,
                        HEAD_DIM, NUM_STAGES, OVERLAP,
                    ),
                ),
                (
                    _producer,
                    (
                        q_desc, do_desc, q_smem, do_smem, ready, empty, q_row, q_col, do_row, do_col, key_start,
                        num_tiles, BLOCK_M, NUM_STAGES,
                    ),
                ),
            ],
            [4, 1],
            [CONSUMER_REGISTERS, PRODUCER_REGISTERS],
        )  # fmt: skip


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
    config: GluonBackwardConfig = GluonBackwardConfig(),  # noqa: B008 - frozen, so one shared default is safe
) -> str | None:
    """Write dK and dV and add dQ (times the softmax scale) into the zeroed, contiguous float32 ``dq32``, and return
    None; or return why these tensors cannot take the Gluon backward, launching nothing. The case (dtype, head size,
    length) is the caller's to check first (:func:`gluon_backward_refusal`)."""
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    batch, heads, n, head_dim = q.shape
    strided = (q, k, v, do, dk, dv)
    refusal = gluon_forward.gluon_layout_refusal(*strided)
    if refusal is None and not (dq32.is_contiguous() and dq32.shape == q.shape and str(dq32.dtype) == "torch.float32"):
        refusal = f"a contiguous float32 dQ of Q's shape is needed; got {dq32.dtype}, strides {dq32.stride()}"
    if refusal is None and not (lse.is_contiguous() and delta.is_contiguous()):
        refusal = "contiguous L and D are needed"
    if refusal is not None:
        return refusal
    layouts = config.shared_layouts(DTYPES[str(q.dtype)])

    def descriptor(t: Tensor, block_rows: int, layout: gl.NVMMASharedLayout) -> TensorDescriptor:
        rows, stride_n = gluon_forward._storage_rows(t), t.stride(2)
        return TensorDescriptor(t, [rows, stride_n], [stride_n, 1], [block_rows, head_dim], layout)

    m_desc = functools.partial(descriptor, block_rows=config.block_m, layout=layouts["q"])
    n_desc = functools.partial(descriptor, block_rows=config.key_rows, layout=layouts["kv"])
    dq_rows = dq32.view(batch * heads * n, head_dim)
    dq_desc = TensorDescriptor(dq_rows, [batch * heads * n, head_dim], [head_dim, 1], [config.block_m, head_dim],
                               layouts["dq"])  # fmt: skip
    strides = tuple(s for t in strided for s in (*gluon_forward._row_strides(t), t.stride(2)))
    gluon_backward_kernel[(n // config.block_n, batch * heads)](
        m_desc(q), n_desc(k), n_desc(v), m_desc(do), dq_desc, n_desc(dk), n_desc(dv), lse, delta, n, heads,
        head_dim**-0.5 * LOG2_E, head_dim**-0.5, *strides, **config.kernel_constexprs(), **config.launch_options(),
    )  # fmt: skip
    return None
