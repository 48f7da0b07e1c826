"""FlashAttention-2 Triton kernels: forward, backward preprocessing (D), dK/dV pass and dQ pass.

Conventions shared by every kernel:
- Tensors are ``(batch, n, d)`` with heads folded into batch; L and D are ``(batch, n)`` float32.
- Scores are kept in base-2 units (``S · log2 e``) so the softmax uses ``exp2``; L is stored in
  natural-log units, as the autograd tests read it.
- Causal masking (query ``i`` sees key ``j`` iff ``i >= j``) is applied only on tiles that cross the
  diagonal; tiles entirely above it are never visited, tiles below it never compare indices.
- The backward runs two passes with no atomics: one program per key tile accumulates dK and dV
  over query tiles, one program per query tile accumulates dQ over key tiles.
- Grids are ``(tiles, batch)`` but programs are renumbered so that, for causal attention, the
  tiles with the most work start first (longest-job-first keeps the tail of the launch short).

This module is imported lazily (on the first launch) because ``triton.jit`` decides at decoration
time whether to compile or interpret; tests set ``TRITON_INTERPRET=1`` before that point.
"""

import inspect
import os

import triton
import triton.language as tl

SHARED_MEMORY_BUDGET = 160 * 1024
"""Bytes of staged tiles a configuration may need (the H100 has 227 KiB per block; the rest is left
for the layout conversions Triton adds)."""


def _is_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _configs(choices: list[tuple[int, int, int, int]], interpreted: tuple[int, int]) -> list[triton.Config]:
    """Autotune space from (BLOCK_M, BLOCK_N, num_warps, num_stages); one small tile in the interpreter,
    where there is nothing to tune and timing would fail on the CPU. The last choice is the smallest
    and is kept when nothing else fits shared memory."""
    if _is_interpreted():
        return [triton.Config({"BLOCK_M": interpreted[0], "BLOCK_N": interpreted[1]}, num_warps=4, num_stages=1)]
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in choices]


def _shared_memory_pruner(resident_rows, streamed_rows):
    """Build an ``early_config_prune`` that drops configurations whose tiles overflow shared memory.

    ``resident_rows(config)`` counts the rows of d-wide tiles a program keeps for its lifetime,
    ``streamed_rows(config)`` those it loads per loop step (multiplied by the pipeline depth)."""

    def prune(configs, named_args, **kwargs):
        elem_bytes = named_args["Q"].element_size()
        head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM"))
        kept = [
            c
            for c in configs
            if (resident_rows(c) + streamed_rows(c) * c.num_stages) * head_dim * elem_bytes <= SHARED_MEMORY_BUDGET
        ]
        return kept or configs[-1:]

    return {"early_config_prune": prune}


def _quick_bench(kernel_call, quantiles):
    """Time each candidate for ~30 ms instead of Triton's default 100 ms: sweeps tune many shapes."""
    return triton.testing.do_bench(kernel_call, warmup=10, rep=30, quantiles=quantiles)


# Triton 3.6 and 3.9 both accept a custom benchmarker; keep the default where one does not.
_AUTOTUNE_BENCH = {"do_bench": _quick_bench} if "do_bench" in inspect.signature(triton.autotune).parameters else {}

# Autotune keys: the head size, the causal flag and the sequence lengths rounded to a power of two,
# so a sweep retunes per length bucket, not per exact length.
_AUTOTUNE_KEY = ["N_BUCKET", "HEAD_DIM", "IS_CAUSAL"]

# Candidates kept from a sweep of 27-33 configurations per kernel on an H100 (leaderboard case; see
# BENCHMARKS.md and benchmarks/tune_flash_kernels.py), plus small tiles for large fp32 heads.
FORWARD_CONFIGS = _configs(
    [(128, 64, 8, 3), (64, 64, 4, 3), (128, 64, 4, 3), (128, 128, 4, 3), (64, 32, 4, 3), (64, 32, 4, 2)],
    interpreted=(32, 16),
)
DKDV_CONFIGS = _configs(  # BLOCK_M: query tile streamed, BLOCK_N: key tile owned (a multiple of BLOCK_M)
    [(32, 64, 4, 3), (64, 64, 4, 3), (32, 128, 4, 3), (16, 64, 4, 3), (16, 32, 4, 2)],
    interpreted=(16, 32),
)
DQ_CONFIGS = _configs(  # BLOCK_M: query tile owned, BLOCK_N: key tile streamed (BLOCK_M a multiple of it)
    [(128, 64, 4, 3), (64, 64, 4, 3), (128, 32, 4, 3), (64, 32, 4, 3), (32, 16, 4, 2)],
    interpreted=(32, 16),
)


@triton.jit
def _program_tile(pid_tile, pid_batch, num_tiles, num_batches, HEAVY_LAST: tl.constexpr):
    """Map the launch's (tile, batch) ids to a (tile, batch) pair in longest-job-first order.

    The hardware starts programs in linear-id order; batches vary fastest, so every batch's
    heaviest tile runs before any light one. ``HEAVY_LAST`` says that high tile indices carry more
    work (query tiles of causal attention)."""
    linear = pid_batch * num_tiles + pid_tile
    batch = linear % num_batches
    rank = linear // num_batches
    if HEAVY_LAST:
        tile = num_tiles - 1 - rank
    else:
        tile = rank
    return tile, batch


@triton.jit
def _forward_key_tiles(
    acc,
    row_sum,
    row_max,
    q,
    K_ptr,
    V_ptr,
    stride_kk,
    stride_kd,
    stride_vk,
    stride_vd,
    offs_m,
    offs_d,
    start,
    stop,
    N_KEYS,
    qk_scale,
    BLOCK_N: tl.constexpr,
    APPLY_MASK: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
):
    """Online-softmax update over key tiles ``[start, stop)``; masks only when ``APPLY_MASK``."""
    for key_start in tl.range(start, stop, BLOCK_N):
        offs_n = key_start + tl.arange(0, BLOCK_N)
        key_valid = offs_n < N_KEYS
        k = tl.load(
            K_ptr + offs_n[:, None] * stride_kk + offs_d[None, :] * stride_kd, mask=key_valid[:, None], other=0.0
        )
        v = tl.load(
            V_ptr + offs_n[:, None] * stride_vk + offs_d[None, :] * stride_vd, mask=key_valid[:, None], other=0.0
        )
        # Raw scores; the scale is folded into one multiply-add with the max subtraction (scale > 0,
        # so max(s · c) = c · max(s)).
        scores = tl.dot(q, tl.trans(k))
        if APPLY_MASK:
            allowed = key_valid[None, :]
            if IS_CAUSAL:
                allowed = allowed & (offs_m[:, None] >= offs_n[None, :])
            scores = tl.where(allowed, scores, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(scores, axis=1) * qk_scale)
        probs = tl.math.exp2(scores * qk_scale - new_max[:, None])
        correction = tl.math.exp2(row_max - new_max)
        row_sum = row_sum * correction + tl.sum(probs, axis=1)
        acc = tl.dot(probs.to(v.dtype), v, acc * correction[:, None])
        row_max = new_max
    return acc, row_sum, row_max


@triton.autotune(
    configs=FORWARD_CONFIGS,
    key=_AUTOTUNE_KEY,
    **_AUTOTUNE_BENCH,
    prune_configs_by=_shared_memory_pruner(lambda c: c.kwargs["BLOCK_M"], lambda c: 2 * c.kwargs["BLOCK_N"]),
)
@triton.jit
def flash_fwd_kernel(
    Q,
    K,
    V,
    Out,
    L,
    stride_qb,
    stride_qq,
    stride_qd,
    stride_kb,
    stride_kk,
    stride_kd,
    stride_vb,
    stride_vk,
    stride_vd,
    stride_ob,
    stride_oq,
    stride_od,
    stride_lb,
    stride_lq,
    N_QUERIES,
    N_KEYS,
    N_BATCH,
    N_BUCKET,
    scale,
    HEAD_DIM: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """O = softmax(Q Kᵀ·scale) V and L = rowwise logsumexp for one query tile of one batch element."""
    tile, batch = _program_tile(tl.program_id(0), tl.program_id(1), tl.num_programs(0), N_BATCH, IS_CAUSAL)
    batch = batch.to(tl.int64)
    q_start = tile * BLOCK_M
    offs_m = q_start + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_valid = offs_m < N_QUERIES
    q = tl.load(
        Q + batch * stride_qb + offs_m[:, None] * stride_qq + offs_d[None, :] * stride_qd,
        mask=row_valid[:, None],
        other=0.0,
    )
    K_ptr = K + batch * stride_kb
    V_ptr = V + batch * stride_vb
    qk_scale = scale * 1.4426950408889634

    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    row_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)

    # Key tiles every row of this query tile sees entirely (no comparisons), then the rest with masks:
    # the diagonal tiles when causal, the ragged last tile otherwise.
    if IS_CAUSAL:
        visible_end = tl.minimum(q_start + BLOCK_M, N_KEYS)
        unmasked_end = (tl.minimum(q_start, N_KEYS) // BLOCK_N) * BLOCK_N
    else:
        visible_end = N_KEYS
        unmasked_end = (N_KEYS // BLOCK_N) * BLOCK_N
    acc, row_sum, row_max = _forward_key_tiles(
        acc,
        row_sum,
        row_max,
        q,
        K_ptr,
        V_ptr,
        stride_kk,
        stride_kd,
        stride_vk,
        stride_vd,
        offs_m,
        offs_d,
        0,
        unmasked_end,
        N_KEYS,
        qk_scale,
        BLOCK_N,
        False,
        IS_CAUSAL,
    )
    acc, row_sum, row_max = _forward_key_tiles(
        acc,
        row_sum,
        row_max,
        q,
        K_ptr,
        V_ptr,
        stride_kk,
        stride_kd,
        stride_vk,
        stride_vd,
        offs_m,
        offs_d,
        unmasked_end,
        visible_end,
        N_KEYS,
        qk_scale,
        BLOCK_N,
        True,
        IS_CAUSAL,
    )

    out = acc / row_sum[:, None]
    tl.store(
        Out + batch * stride_ob + offs_m[:, None] * stride_oq + offs_d[None, :] * stride_od,
        out.to(Out.dtype.element_ty),
        mask=row_valid[:, None],
    )
    logsumexp = (row_max + tl.math.log2(row_sum)) * 0.6931471805599453
    tl.store(L + batch * stride_lb + offs_m * stride_lq, logsumexp, mask=row_valid)


@triton.jit
def flash_bwd_preprocess_kernel(
    Out,
    dO,
    Delta,
    stride_ob,
    stride_oq,
    stride_od,
    stride_dob,
    stride_doq,
    stride_dod,
    stride_deltab,
    stride_deltaq,
    N_QUERIES,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """D_i = Σ_d O_id · dO_id in float32: the row term of dS = P ∘ (dP − D)."""
    batch = tl.program_id(1).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_valid = offs_m < N_QUERIES
    o = tl.load(
        Out + batch * stride_ob + offs_m[:, None] * stride_oq + offs_d[None, :] * stride_od,
        mask=row_valid[:, None],
        other=0.0,
    )
    do = tl.load(
        dO + batch * stride_dob + offs_m[:, None] * stride_doq + offs_d[None, :] * stride_dod,
        mask=row_valid[:, None],
        other=0.0,
    )
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(Delta + batch * stride_deltab + offs_m * stride_deltaq, delta, mask=row_valid)


@triton.jit
def _dkdv_query_tiles(
    dk,
    dv,
    k,
    v,
    Q_ptr,
    dO_ptr,
    L_ptr,
    Delta_ptr,
    stride_qq,
    stride_qd,
    stride_doq,
    stride_dod,
    stride_lq,
    stride_deltaq,
    offs_n,
    offs_d,
    start,
    stop,
    N_QUERIES,
    qk_scale,
    BLOCK_M: tl.constexpr,
    CAUSAL_MASK: tl.constexpr,
):
    """Accumulate dK, dV of one key tile over query tiles ``[start, stop)``, working in transposed
    (key × query) orientation so no tile needs an explicit transpose.

    Out-of-range queries load as zeros (dO = 0, D = 0) and so contribute nothing; out-of-range keys
    only produce rows that are never stored. Only the causal diagonal needs a mask."""
    for query_start in tl.range(start, stop, BLOCK_M):
        offs_m = query_start + tl.arange(0, BLOCK_M)
        row_valid = offs_m < N_QUERIES
        q = tl.load(
            Q_ptr + offs_m[:, None] * stride_qq + offs_d[None, :] * stride_qd, mask=row_valid[:, None], other=0.0
        )
        do = tl.load(
            dO_ptr + offs_m[:, None] * stride_doq + offs_d[None, :] * stride_dod, mask=row_valid[:, None], other=0.0
        )
        lse = tl.load(L_ptr + offs_m * stride_lq, mask=row_valid, other=0.0) * 1.4426950408889634
        delta = tl.load(Delta_ptr + offs_m * stride_deltaq, mask=row_valid, other=0.0)
        scores_t = tl.dot(k, tl.trans(q)) * qk_scale
        probs_t = tl.math.exp2(scores_t - lse[None, :])
        if CAUSAL_MASK:
            probs_t = tl.where(offs_m[None, :] >= offs_n[:, None], probs_t, 0.0)
        dv = tl.dot(probs_t.to(do.dtype), do, dv)
        dprobs_t = tl.dot(v, tl.trans(do))
        dscores_t = probs_t * (dprobs_t - delta[None, :])
        dk = tl.dot(dscores_t.to(q.dtype), q, dk)
    return dk, dv


@triton.autotune(
    configs=DKDV_CONFIGS,
    key=_AUTOTUNE_KEY,
    **_AUTOTUNE_BENCH,
    prune_configs_by=_shared_memory_pruner(lambda c: 2 * c.kwargs["BLOCK_N"], lambda c: 2 * c.kwargs["BLOCK_M"]),
)
@triton.jit
def flash_bwd_dkdv_kernel(
    Q,
    K,
    V,
    dO,
    L,
    Delta,
    dK,
    dV,
    stride_qb,
    stride_qq,
    stride_qd,
    stride_kb,
    stride_kk,
    stride_kd,
    stride_vb,
    stride_vk,
    stride_vd,
    stride_dob,
    stride_doq,
    stride_dod,
    stride_lb,
    stride_lq,
    stride_deltab,
    stride_deltaq,
    stride_dkb,
    stride_dkk,
    stride_dkd,
    stride_dvb,
    stride_dvk,
    stride_dvd,
    N_QUERIES,
    N_KEYS,
    N_BATCH,
    N_BUCKET,
    scale,
    HEAD_DIM: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """dV = Σ_i Pᵀ dO and dK = Σ_i dSᵀ Q · scale for one key tile, streaming query tiles."""
    tile, batch = _program_tile(tl.program_id(0), tl.program_id(1), tl.num_programs(0), N_BATCH, False)
    batch = batch.to(tl.int64)
    key_start = tile * BLOCK_N
    offs_n = key_start + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    key_valid = offs_n < N_KEYS
    k = tl.load(
        K + batch * stride_kb + offs_n[:, None] * stride_kk + offs_d[None, :] * stride_kd,
        mask=key_valid[:, None],
        other=0.0,
    )
    v = tl.load(
        V + batch * stride_vb + offs_n[:, None] * stride_vk + offs_d[None, :] * stride_vd,
        mask=key_valid[:, None],
        other=0.0,
    )
    Q_ptr = Q + batch * stride_qb
    dO_ptr = dO + batch * stride_dob
    L_ptr = L + batch * stride_lb
    Delta_ptr = Delta + batch * stride_deltab
    qk_scale = scale * 1.4426950408889634
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    if IS_CAUSAL:
        # Queries before key_start see none of these keys; the next BLOCK_N queries cross the diagonal.
        diagonal_end = tl.minimum(key_start + BLOCK_N, N_QUERIES)
        dk, dv = _dkdv_query_tiles(
            dk,
            dv,
            k,
            v,
            Q_ptr,
            dO_ptr,
            L_ptr,
            Delta_ptr,
            stride_qq,
            stride_qd,
            stride_doq,
            stride_dod,
            stride_lq,
            stride_deltaq,
            offs_n,
            offs_d,
            key_start,
            diagonal_end,
            N_QUERIES,
            qk_scale,
            BLOCK_M,
            True,
        )
        unmasked_start = key_start + BLOCK_N
    else:
        unmasked_start = 0
    dk, dv = _dkdv_query_tiles(
        dk,
        dv,
        k,
        v,
        Q_ptr,
        dO_ptr,
        L_ptr,
        Delta_ptr,
        stride_qq,
        stride_qd,
        stride_doq,
        stride_dod,
        stride_lq,
        stride_deltaq,
        offs_n,
        offs_d,
        unmasked_start,
        N_QUERIES,
        N_QUERIES,
        qk_scale,
        BLOCK_M,
        False,
    )

    tl.store(
        dK + batch * stride_dkb + offs_n[:, None] * stride_dkk + offs_d[None, :] * stride_dkd,
        (dk * scale).to(dK.dtype.element_ty),
        mask=key_valid[:, None],
    )
    tl.store(
        dV + batch * stride_dvb + offs_n[:, None] * stride_dvk + offs_d[None, :] * stride_dvd,
        dv.to(dV.dtype.element_ty),
        mask=key_valid[:, None],
    )


@triton.jit
def _dq_key_tiles(
    dq,
    q,
    do,
    lse,
    delta,
    K_ptr,
    V_ptr,
    stride_kk,
    stride_kd,
    stride_vk,
    stride_vd,
    offs_m,
    offs_d,
    start,
    stop,
    N_KEYS,
    qk_scale,
    BLOCK_N: tl.constexpr,
    CAUSAL_MASK: tl.constexpr,
):
    """Accumulate dQ of one query tile over key tiles ``[start, stop)``.

    Out-of-range keys load as zeros, so their dS column multiplies a zero row of K: no mask needed
    except on the causal diagonal."""
    for key_start in tl.range(start, stop, BLOCK_N):
        offs_n = key_start + tl.arange(0, BLOCK_N)
        key_valid = offs_n < N_KEYS
        k = tl.load(
            K_ptr + offs_n[:, None] * stride_kk + offs_d[None, :] * stride_kd, mask=key_valid[:, None], other=0.0
        )
        v = tl.load(
            V_ptr + offs_n[:, None] * stride_vk + offs_d[None, :] * stride_vd, mask=key_valid[:, None], other=0.0
        )
        scores = tl.dot(q, tl.trans(k)) * qk_scale
        probs = tl.math.exp2(scores - lse[:, None])
        if CAUSAL_MASK:
            probs = tl.where(offs_m[:, None] >= offs_n[None, :], probs, 0.0)
        dprobs = tl.dot(do, tl.trans(v))
        dscores = probs * (dprobs - delta[:, None])
        dq = tl.dot(dscores.to(k.dtype), k, dq)
    return dq


@triton.autotune(
    configs=DQ_CONFIGS,
    key=_AUTOTUNE_KEY,
    **_AUTOTUNE_BENCH,
    prune_configs_by=_shared_memory_pruner(lambda c: 2 * c.kwargs["BLOCK_M"], lambda c: 2 * c.kwargs["BLOCK_N"]),
)
@triton.jit
def flash_bwd_dq_kernel(
    Q,
    K,
    V,
    dO,
    L,
    Delta,
    dQ,
    stride_qb,
    stride_qq,
    stride_qd,
    stride_kb,
    stride_kk,
    stride_kd,
    stride_vb,
    stride_vk,
    stride_vd,
    stride_dob,
    stride_doq,
    stride_dod,
    stride_lb,
    stride_lq,
    stride_deltab,
    stride_deltaq,
    stride_dqb,
    stride_dqq,
    stride_dqd,
    N_QUERIES,
    N_KEYS,
    N_BATCH,
    N_BUCKET,
    scale,
    HEAD_DIM: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """dQ = Σ_j dS K · scale for one query tile, recomputing P from L and streaming key tiles."""
    tile, batch = _program_tile(tl.program_id(0), tl.program_id(1), tl.num_programs(0), N_BATCH, IS_CAUSAL)
    batch = batch.to(tl.int64)
    q_start = tile * BLOCK_M
    offs_m = q_start + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_valid = offs_m < N_QUERIES
    q = tl.load(
        Q + batch * stride_qb + offs_m[:, None] * stride_qq + offs_d[None, :] * stride_qd,
        mask=row_valid[:, None],
        other=0.0,
    )
    do = tl.load(
        dO + batch * stride_dob + offs_m[:, None] * stride_doq + offs_d[None, :] * stride_dod,
        mask=row_valid[:, None],
        other=0.0,
    )
    lse = tl.load(L + batch * stride_lb + offs_m * stride_lq, mask=row_valid, other=0.0) * 1.4426950408889634
    delta = tl.load(Delta + batch * stride_deltab + offs_m * stride_deltaq, mask=row_valid, other=0.0)
    K_ptr = K + batch * stride_kb
    V_ptr = V + batch * stride_vb
    qk_scale = scale * 1.4426950408889634
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if IS_CAUSAL:
        unmasked_end = tl.minimum(q_start, N_KEYS)
        dq = _dq_key_tiles(
            dq,
            q,
            do,
            lse,
            delta,
            K_ptr,
            V_ptr,
            stride_kk,
            stride_kd,
            stride_vk,
            stride_vd,
            offs_m,
            offs_d,
            0,
            unmasked_end,
            N_KEYS,
            qk_scale,
            BLOCK_N,
            False,
        )
        dq = _dq_key_tiles(
            dq,
            q,
            do,
            lse,
            delta,
            K_ptr,
            V_ptr,
            stride_kk,
            stride_kd,
            stride_vk,
            stride_vd,
            offs_m,
            offs_d,
            unmasked_end,
            tl.minimum(q_start + BLOCK_M, N_KEYS),
            N_KEYS,
            qk_scale,
            BLOCK_N,
            True,
        )
    else:
        dq = _dq_key_tiles(
            dq,
            q,
            do,
            lse,
            delta,
            K_ptr,
            V_ptr,
            stride_kk,
            stride_kd,
            stride_vk,
            stride_vd,
            offs_m,
            offs_d,
            0,
            N_KEYS,
            N_KEYS,
            qk_scale,
            BLOCK_N,
            False,
        )

    tl.store(
        dQ + batch * stride_dqb + offs_m[:, None] * stride_dqq + offs_d[None, :] * stride_dqd,
        (dq * scale).to(dQ.dtype.element_ty),
        mask=row_valid[:, None],
    )
