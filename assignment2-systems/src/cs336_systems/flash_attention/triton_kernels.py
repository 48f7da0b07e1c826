"""FlashAttention-2 Triton kernels: forward, backward preprocessing (D), and one backward kernel whose
programs compute either dK/dV or dQ.

Conventions shared by every kernel:
- Q, K, V, O, dO, dQ, dK and dV are ``(batch, heads, n, d)`` in any layout whose last dim is contiguous: each
  comes with its batch, head and sequence strides, and a program's row (``batch * heads + head``) is split by
  ``N_HEADS``. So the model's Q, K, V (views of ``(batch, n, heads, d)`` projections) are read where they lie and
  the outputs are written in the layout the launcher chose, with no copies around the kernels. The launchers pass
  only strides that are multiples of 16 below 2**31 (0 for dims of size 1), so every launch of a shape has one
  Triton specialisation, and one row's offsets (``position * stride``) fit int32. L and D are contiguous
  ``(batch * heads, n)`` float32.
- Scores are kept in base-2 units (``S · log2 e``) so the softmax uses ``exp2``; L is stored in
  natural-log units, as the autograd tests read it.
- The softmax scale ``1/√d`` is a compile-time constant derived from ``HEAD_DIM``, so no float crosses a
  launch: launchers type a Python float differently (Triton's own launch fp32, Inductor's generated code
  fp64 in torch 2.11), and an fp64 scale would turn the float32 softmax into fp64 and break ``tl.dot``.
- Integer arguments may arrive as int32 (Triton's launch, static shapes under Inductor) or int64 (Inductor
  with dynamic shapes); every value that a branch of an ``if`` assigns has one type either way.
- Causal masking (query ``i`` sees key ``j`` iff ``i >= j``) is applied only on tiles that cross the
  diagonal; tiles entirely above it are never visited, tiles below it never compare indices.
- The backward is one launch without atomics: its first programs (in launch order) each own a key tile
  and accumulate dK and dV over query tiles, the rest each own a query tile and accumulate dQ over key
  tiles. Both kinds read D, so D is computed by a small kernel launched before it. With ``ATOMIC_DQ`` only the
  dK/dV programs run and add dQ into a float32 buffer themselves (5 matmul products instead of 7): element atomics
  through pointers (slower), or one TMA reduction per tile (``USE_TMA``; faster at n = 16384, slower at short
  lengths, on an H200: the ``atomic_dq`` setting of ``CS336_FLASH_TMA``).
- Programs are renumbered so that, for causal attention, the tiles with the most work start first
  (longest-job-first keeps the tail of the launch short), in groups of rows (one batch element's head each): each
  program streams one row's K and V (dQ and forward programs) or Q, dO, L and D (dK/dV programs), and at large
  batch the programs resident at once would otherwise each belong to another row, so the streamed tensors
  (2 MiB each per row at n = 16384, d = 64, bf16) would come from HBM for every program. Groups hold as many
  rows as fit those tensors in ``L2_BUDGET`` (24 MiB, or ``CS336_FLASH_L2_BUDGET_MIB`` at import), and run one
  after another, longest-first within each: the light tiles of one group overlap the heavy tiles of the next,
  so only the last group's tail is exposed, as without groups. When every row fits (short sequences, small
  batch), there is one group.

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

L2_BUDGET_ENV = "CS336_FLASH_L2_BUDGET_MIB"


def _l2_budget_bytes() -> int:
    """24 MiB, or ``CS336_FLASH_L2_BUDGET_MIB`` MiB when set: the group size was reasoned from the L2's size, not
    swept, and a sweep needs one process per value (a compiled kernel refuses a global changed after its compile)."""
    text = os.environ.get(L2_BUDGET_ENV, "24")
    if not text.isdecimal() or int(text) < 1:
        raise ValueError(f"{L2_BUDGET_ENV} must be a positive whole number of MiB; got {text!r}")
    return int(text) * 1024 * 1024


# Globals read inside kernels must be constexpr.
L2_BUDGET = tl.constexpr(_l2_budget_bytes())
"""Bytes of L2 that the tensors streamed by one group of rows may fill (the H100 and H200 have 50 MB of L2;
the rest is left for the tiles programs load once and for what they write)."""
LOG2_E = tl.constexpr(1.4426950408889634)
LN_2 = tl.constexpr(0.6931471805599453)


def _is_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _configs(choices: list[tuple], names: tuple[str, ...], interpreted: tuple[int, ...]) -> list[triton.Config]:
    """Autotune space from tuples of tile sizes (named ``names``) followed by (num_warps, num_stages); one
    small tile in the interpreter, where there is nothing to tune and timing would fail on the CPU. The
    last choice is the smallest and is kept when nothing else fits shared memory."""
    if _is_interpreted():
        return [triton.Config(dict(zip(names, interpreted, strict=True)), num_warps=4, num_stages=1)]
    return [
        triton.Config(dict(zip(names, choice[:-2], strict=True)), num_warps=choice[-2], num_stages=choice[-1])
        for choice in choices
    ]


def _shared_memory_pruner(staged_rows):
    """Build an ``early_config_prune`` that drops configurations whose tiles overflow shared memory.

    ``staged_rows(config)`` counts the rows of d-wide tiles a program stages (streamed tiles count once
    per pipeline stage)."""

    def prune(configs, named_args, **kwargs):
        elem_bytes = named_args["Q"].element_size()
        head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM"))
        kept = [c for c in configs if staged_rows(c) * head_dim * elem_bytes <= SHARED_MEMORY_BUDGET]
        return kept or configs[-1:]

    return {"early_config_prune": prune}


def _forward_rows(c) -> int:
    return c.kwargs["BLOCK_M"] + 2 * c.kwargs["BLOCK_N"] * c.num_stages


def _backward_rows(c) -> int:
    """The larger of the two program kinds: dK/dV keeps K, V and streams Q, dO; dQ keeps Q, dO and streams K, V."""
    dkdv = 2 * c.kwargs["BLOCK_N1"] + 2 * c.kwargs["BLOCK_M1"] * c.num_stages
    dq = 2 * c.kwargs["BLOCK_M2"] + 2 * c.kwargs["BLOCK_N2"] * c.num_stages
    return max(dkdv, dq)


def _quick_bench(kernel_call, quantiles):
    """Time each candidate for ~30 ms instead of Triton's default 100 ms: sweeps tune many shapes."""
    return triton.testing.do_bench(kernel_call, warmup=10, rep=30, quantiles=quantiles)


# Triton 3.6 and 3.9 both accept a custom benchmarker; keep the default where one does not.
_AUTOTUNE_BENCH = {"do_bench": _quick_bench} if "do_bench" in inspect.signature(triton.autotune).parameters else {}

# Autotune keys: the head size, the causal flag and the sequence lengths rounded to a power of two,
# so a sweep retunes per length bucket, not per exact length.
_AUTOTUNE_KEY = ["N_BUCKET", "HEAD_DIM", "IS_CAUSAL"]

# Candidates kept from a sweep of 27-33 configurations per kernel on an H100 (leaderboard case; see
# BENCHMARKS.md and benchmarks/tune_flash_kernels.py), plus small tiles for large fp32 heads. The lists are
# short because every candidate is compiled once per head size and dtype. The backward's (32, 128, 128, 64, 4, 4)
# is the fastest of an H200 sweep at batch 16 x 16 heads, n = 16384, d = 64, bf16, and of this list pinned in one
# process there (61.53 ms against 62.91 for (32, 128, 128, 32, 4, 3), the previous pick); the pruner drops it at
# d = 128 and in float32 from d = 64. At that shape the forward's first entry is the fastest of the tuning grid.
FORWARD_CONFIGS = _configs(
    [(128, 64, 8, 3), (64, 64, 4, 3), (128, 128, 4, 3), (64, 32, 4, 2)],
    names=("BLOCK_M", "BLOCK_N"),
    interpreted=(32, 16),
)


# dK/dV programs: BLOCK_M1 query tile streamed, BLOCK_N1 key tile owned (a multiple of BLOCK_M1);
# dQ programs: BLOCK_M2 query tile owned, BLOCK_N2 key tile streamed (BLOCK_M2 a multiple of BLOCK_N2).
def _backward_configs(choices: list[tuple]) -> list[triton.Config]:
    return _configs(choices, names=("BLOCK_M1", "BLOCK_N1", "BLOCK_M2", "BLOCK_N2"), interpreted=(16, 32, 32, 16))


BACKWARD_CONFIGS = _backward_configs(
    [
        (32, 64, 128, 64, 4, 3),
        (64, 64, 64, 64, 4, 3),
        (32, 128, 128, 64, 4, 4),
        (32, 128, 128, 32, 4, 3),
        (16, 32, 32, 16, 4, 2),
    ]
)


@triton.jit
def _longest_first(rank, num_tiles, HEAVY_LAST: tl.constexpr):
    """Tile index of the ``rank``-th program to start: high tile indices first when they carry more work
    (query tiles of causal attention)."""
    if HEAVY_LAST:
        tile = num_tiles - 1 - rank
    else:
        tile = rank
    return tile


@triton.jit
def _rows_per_group(length, POSITION_BYTES: tl.constexpr):
    """Rows whose streamed tensors (``length`` positions of ``POSITION_BYTES`` each) fit ``L2_BUDGET``; at
    least one. The budget is divided before the length, so no product of sizes can overflow int32."""
    return tl.maximum(L2_BUDGET // POSITION_BYTES // length, 1)


@triton.jit
def _grouped_longest_first(rank, num_tiles, num_rows, group_rows, HEAVY_LAST: tl.constexpr):
    """(tile, row) of the ``rank``-th program to start, for ranks ``0 .. num_tiles * num_rows - 1``.

    Rows run in groups of ``group_rows`` (the last group may hold fewer), one group after another; inside a
    group, longest-job-first with rows varying fastest, so every row's heaviest tile runs before any light one.
    A bijection: a full group takes ``group_rows * num_tiles`` consecutive ranks, the last group the rest.
    ``group_rows`` is capped at ``num_rows`` first, so every product stays within the launch's program count:
    short keys with long queries give a budget's worth of rows whose product with the tiles overflows int32."""
    group_rows = tl.minimum(group_rows, num_rows)
    group_programs = group_rows * num_tiles
    group = rank // group_programs
    first_row = group * group_rows
    rows_here = tl.minimum(group_rows, num_rows - first_row)
    within = rank - group * group_programs
    return _longest_first(within // rows_here, num_tiles, HEAVY_LAST), first_row + within % rows_here


@triton.jit
def _row_start(Ptr, row, N_HEADS, strides):
    """Pointer to the first position of ``row`` (``batch * N_HEADS + head``, int64) of a strided tensor whose
    ``strides`` tuple starts with the batch and head strides."""
    return Ptr + (row // N_HEADS) * strides[0] + (row % N_HEADS) * strides[1]


POLY_EXP2_COEFFICIENTS = (0.6951166391372681, 0.22764497995376587, 0.07706724107265472)
"""c1, c2, c3 of p(f) = 1 + c1 f + c2 f² + c3 f³ ≈ 2^f on [0, 1]: the minimax fit of the relative error with p(0) = 1
exactly (a linear programme on a dense grid), max relative error 8.56e-5 in float64 (FlashAttention-4's degree-3
constants give 8.76e-5): well under half an ulp of P stored in bfloat16 (2^-9) or float16 (2^-11), not of float32."""
POLY_EXP2_FLOOR = tl.constexpr(-127.0)
"""Inputs are clamped here: 2^floor · p(0) = 2^-127 · 1 becomes the bit pattern 0, so -inf (masked scores) gives
exactly +0.0; inputs in (-127, -126) give denormals below 2^-126 (not exact, negligible next to a row sum >= 1)."""
_C1 = tl.constexpr(POLY_EXP2_COEFFICIENTS[0])
_C2 = tl.constexpr(POLY_EXP2_COEFFICIENTS[1])
_C3 = tl.constexpr(POLY_EXP2_COEFFICIENTS[2])


@triton.jit
def poly_exp2(x):
    """2^x for float32 ``x`` < 128 on the FMA units: 2^floor(x) · p(x - floor(x)), the integer part added into the
    float's exponent bits (FlashAttention-4's trick; ``tl.math.exp2`` runs on the special-function unit). Relative
    error 8.6e-5 (:data:`POLY_EXP2_COEFFICIENTS`); -inf and anything below -127 give +0.0."""
    x = tl.maximum(x, POLY_EXP2_FLOOR)
    whole = tl.floor(x)
    frac = x - whole
    mantissa = 1.0 + frac * (_C1 + frac * (_C2 + frac * _C3))
    bits = tl.cast(mantissa, tl.int32, bitcast=True) + (whole.to(tl.int32) << 23)
    return tl.cast(bits, tl.float32, bitcast=True)


@triton.jit
def _row_tiles(Ptr, row, N_HEADS, strides, length, BLOCK: tl.constexpr, HEAD_DIM: tl.constexpr, USE_TMA: tl.constexpr):
    """One row's ``(length, d)`` slice of a strided tensor as the tile helpers below take it: a tensor descriptor of
    ``BLOCK``-position tiles with ``USE_TMA``, the pointer to its first position otherwise."""
    row_ptr = _row_start(Ptr, row, N_HEADS, strides)
    if USE_TMA:
        rows = tl.make_tensor_descriptor(row_ptr, [length, HEAD_DIM], [strides[2], 1], [BLOCK, HEAD_DIM])
    else:
        rows = row_ptr
    return rows


@triton.jit
def _load_rows(Rows, start, offs, valid, offs_d, stride_s, USE_TMA: tl.constexpr):
    """The tile at positions ``offs`` (starting at ``start``) of a :func:`_row_tiles` slice: through its tensor
    descriptor with ``USE_TMA`` (positions past the end load as zeros), through pointers otherwise (zeros where not
    ``valid``)."""
    if USE_TMA:
        tile = Rows.load([tl.cast(start, tl.int32), 0])
    else:
        tile = tl.load(Rows + offs[:, None] * stride_s + offs_d[None, :], mask=valid[:, None], other=0.0)
    return tile


@triton.jit
def _load_row_tile(
    Ptr,
    row,
    N_HEADS,
    strides,
    length,
    start,
    offs,
    valid,
    offs_d,
    BLOCK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """The one tile a program owns (loads once) of its row: :func:`_row_tiles` then :func:`_load_rows`."""
    rows = _row_tiles(Ptr, row, N_HEADS, strides, length, BLOCK, HEAD_DIM, USE_TMA)
    return _load_rows(rows, start, offs, valid, offs_d, strides[2], USE_TMA)


@triton.jit
def _store_rows(Rows, start, offs, valid, offs_d, stride_s, tile, USE_TMA: tl.constexpr):
    """Store ``tile`` at positions ``offs`` of a :func:`_row_tiles` slice (positions past the end are not written)."""
    if USE_TMA:
        Rows.store([tl.cast(start, tl.int32), 0], tile)
    else:
        tl.store(Rows + offs[:, None] * stride_s + offs_d[None, :], tile, mask=valid[:, None])


@triton.jit
def _raw_scores(q, k, offs_m, offs_n, key_valid, APPLY_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr):
    """Q Kᵀ unscaled, -inf where ``APPLY_MASK`` hides a key (not ``key_valid``, or after the query when causal). The
    scale is folded into one multiply-add with the max subtraction (scale > 0, so max(s · c) = c · max(s))."""
    scores = tl.dot(q, tl.trans(k))
    if APPLY_MASK:
        allowed = key_valid[None, :]
        if IS_CAUSAL:
            allowed = allowed & (offs_m[:, None] >= offs_n[None, :])
        scores = tl.where(allowed, scores, float("-inf"))
    return scores


@triton.jit
def _forward_split_key_tile(
    acc, row_sum, row_max, q, K_rows, V_rows, offs_m, offs_d, key_start, N_KEYS, stride_ks, stride_vs, qk_scale,
    BLOCK_N: tl.constexpr, APPLY_MASK: tl.constexpr, IS_CAUSAL: tl.constexpr, USE_TMA: tl.constexpr,
):  # fmt: skip
    """The online-softmax update of one key tile as two halves (a register tile cannot be sliced): the first half's
    exponentials on the special-function unit (``exp2``), the second's on the FMA units (:func:`poly_exp2`), so both
    units work at once. Two score dots, one max over both, two P·V dots into the same accumulator."""
    offs_lo = key_start + tl.arange(0, BLOCK_N // 2)
    offs_hi = offs_lo + BLOCK_N // 2
    valid_lo = offs_lo < N_KEYS
    valid_hi = offs_hi < N_KEYS
    k_lo = _load_rows(K_rows, key_start, offs_lo, valid_lo, offs_d, stride_ks, USE_TMA)
    k_hi = _load_rows(K_rows, key_start + BLOCK_N // 2, offs_hi, valid_hi, offs_d, stride_ks, USE_TMA)
    v_lo = _load_rows(V_rows, key_start, offs_lo, valid_lo, offs_d, stride_vs, USE_TMA)
    v_hi = _load_rows(V_rows, key_start + BLOCK_N // 2, offs_hi, valid_hi, offs_d, stride_vs, USE_TMA)
    scores_lo = _raw_scores(q, k_lo, offs_m, offs_lo, valid_lo, APPLY_MASK, IS_CAUSAL)
    scores_hi = _raw_scores(q, k_hi, offs_m, offs_hi, valid_hi, APPLY_MASK, IS_CAUSAL)
    new_max = tl.maximum(row_max, tl.maximum(tl.max(scores_lo, axis=1), tl.max(scores_hi, axis=1)) * qk_scale)
    probs_lo = tl.math.exp2(scores_lo * qk_scale - new_max[:, None])
    probs_hi = poly_exp2(scores_hi * qk_scale - new_max[:, None])
    correction = tl.math.exp2(row_max - new_max)
    row_sum = row_sum * correction + tl.sum(probs_lo, axis=1) + tl.sum(probs_hi, axis=1)
    acc = tl.dot(probs_lo.to(v_lo.dtype), v_lo, acc * correction[:, None])
    acc = tl.dot(probs_hi.to(v_hi.dtype), v_hi, acc)
    return acc, row_sum, new_max


@triton.jit
def _forward_key_tiles(
    acc,
    row_sum,
    row_max,
    q,
    K_rows,
    V_rows,
    offs_m,
    offs_d,
    start,
    stop,
    N_KEYS,
    stride_ks,
    stride_vs,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    APPLY_MASK: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr,
    POLY_EXP2: tl.constexpr,
):
    """Online-softmax update over key tiles ``[start, stop)``; masks only when ``APPLY_MASK``. ``K_rows`` and
    ``V_rows`` are the row's tensor descriptors with ``USE_TMA`` (keys past ``N_KEYS`` load as zeros; half-tiles of
    keys with ``POLY_EXP2``), pointers to its first key otherwise. ``POLY_EXP2`` takes each tile in two halves
    (:func:`_forward_split_key_tile`)."""
    for key_start in tl.range(start, stop, BLOCK_N):
        if POLY_EXP2:
            acc, row_sum, row_max = _forward_split_key_tile(
                acc, row_sum, row_max, q, K_rows, V_rows, offs_m, offs_d, key_start, N_KEYS, stride_ks, stride_vs,
                qk_scale, BLOCK_N, APPLY_MASK, IS_CAUSAL, USE_TMA,
            )  # fmt: skip
        else:
            offs_n = key_start + tl.arange(0, BLOCK_N)
            key_valid = offs_n < N_KEYS
            k = _load_rows(K_rows, key_start, offs_n, key_valid, offs_d, stride_ks, USE_TMA)
            v = _load_rows(V_rows, key_start, offs_n, key_valid, offs_d, stride_vs, USE_TMA)
            scores = _raw_scores(q, k, offs_m, offs_n, key_valid, APPLY_MASK, IS_CAUSAL)
            new_max = tl.maximum(row_max, tl.max(scores, axis=1) * qk_scale)
            probs = tl.math.exp2(scores * qk_scale - new_max[:, None])
            correction = tl.math.exp2(row_max - new_max)
            row_sum = row_sum * correction + tl.sum(probs, axis=1)
            acc = tl.dot(probs.to(v.dtype), v, acc * correction[:, None])
            row_max = new_max
    return acc, row_sum, row_max


@triton.autotune(
    configs=FORWARD_CONFIGS, key=_AUTOTUNE_KEY, **_AUTOTUNE_BENCH, prune_configs_by=_shared_memory_pruner(_forward_rows)
)
@triton.jit
def flash_fwd_kernel(
    Q,
    K,
    V,
    Out,
    L,
    stride_qb,
    stride_qh,
    stride_qs,
    stride_kb,
    stride_kh,
    stride_ks,
    stride_vb,
    stride_vh,
    stride_vs,
    stride_ob,
    stride_oh,
    stride_os,
    N_HEADS,
    N_QUERIES,
    N_KEYS,
    N_BUCKET,
    HEAD_DIM: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr,
    POLY_EXP2: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """O = softmax(Q Kᵀ/√d) V and L = rowwise logsumexp for one query tile of one row (batch element and head).

    ``USE_TMA`` moves Q, K, V and O through tensor descriptors built on the row's strided ``(n, d)`` slices (Hopper's
    tensor memory accelerator, as in Triton's fused-attention tutorial; the launch needs ``triton.set_allocator``
    for the descriptors): rows past the end load as zeros and are not stored, so only the diagonal and ragged-end
    key tiles' scores and the store of L take masks.

    ``POLY_EXP2`` (pinned launches only, 16-bit inputs, ``BLOCK_N`` >= 32) computes the exponentials of half of each
    key tile with :func:`poly_exp2` on the FMA units: at d = 64 a score costs 256 tensor-core FLOPs and one ``exp2``,
    and the special-function unit's rate is about the tensor cores' score rate, so the forward is bound by ``exp2``
    as much as by the matmuls (FlashAttention-4's remedy). Its speed is unmeasured: it costs two half-size dots per
    product instead of one, and the polynomial's ~10 FMA-unit instructions per score."""
    # The hardware starts programs in linear-id order; each streams its row's K and V.
    num_rows = tl.num_programs(1)
    linear = tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)
    group_rows = _rows_per_group(N_KEYS, 2 * HEAD_DIM * K.dtype.element_ty.primitive_bitwidth // 8)
    tile, row = _grouped_longest_first(linear, tl.cdiv(N_QUERIES, BLOCK_M), num_rows, group_rows, IS_CAUSAL)
    row = row.to(tl.int64)
    q_start = tile * BLOCK_M
    offs_m = q_start + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_valid = offs_m < N_QUERIES
    KEY_LOAD: tl.constexpr = BLOCK_N // 2 if POLY_EXP2 else BLOCK_N  # POLY_EXP2 loads half-tiles of keys
    Q_rows = _row_tiles(Q, row, N_HEADS, (stride_qb, stride_qh, stride_qs), N_QUERIES, BLOCK_M, HEAD_DIM, USE_TMA)
    K_rows = _row_tiles(K, row, N_HEADS, (stride_kb, stride_kh, stride_ks), N_KEYS, KEY_LOAD, HEAD_DIM, USE_TMA)
    V_rows = _row_tiles(V, row, N_HEADS, (stride_vb, stride_vh, stride_vs), N_KEYS, KEY_LOAD, HEAD_DIM, USE_TMA)
    q = _load_rows(Q_rows, q_start, offs_m, row_valid, offs_d, stride_qs, USE_TMA)
    qk_scale = HEAD_DIM**-0.5 * LOG2_E

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
        acc, row_sum, row_max, q, K_rows, V_rows, offs_m, offs_d, 0, unmasked_end, N_KEYS, stride_ks, stride_vs,
        qk_scale, HEAD_DIM, BLOCK_N, False, IS_CAUSAL, USE_TMA, POLY_EXP2,
    )  # fmt: skip
    acc, row_sum, row_max = _forward_key_tiles(
        acc, row_sum, row_max, q, K_rows, V_rows, offs_m, offs_d, unmasked_end, visible_end, N_KEYS, stride_ks,
        stride_vs, qk_scale, HEAD_DIM, BLOCK_N, True, IS_CAUSAL, USE_TMA, POLY_EXP2,
    )  # fmt: skip

    out = (acc / row_sum[:, None]).to(Out.dtype.element_ty)
    O_rows = _row_tiles(Out, row, N_HEADS, (stride_ob, stride_oh, stride_os), N_QUERIES, BLOCK_M, HEAD_DIM, USE_TMA)
    _store_rows(O_rows, q_start, offs_m, row_valid, offs_d, stride_os, out, USE_TMA)
    logsumexp = (row_max + tl.math.log2(row_sum)) * LN_2
    tl.store(L + row * N_QUERIES + offs_m, logsumexp, mask=row_valid)


@triton.jit
def flash_bwd_preprocess_kernel(
    Out,
    dO,
    Delta,
    stride_ob,
    stride_oh,
    stride_os,
    stride_dob,
    stride_doh,
    stride_dos,
    N_HEADS,
    N_QUERIES,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """D_i = Σ_d O_id · dO_id in float32: the row term of dS = P ∘ (dP − D)."""
    row = tl.program_id(1).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_valid = offs_m < N_QUERIES
    O_row = _row_start(Out, row, N_HEADS, (stride_ob, stride_oh))
    dO_row = _row_start(dO, row, N_HEADS, (stride_dob, stride_doh))
    o = tl.load(O_row + offs_m[:, None] * stride_os + offs_d[None, :], mask=row_valid[:, None], other=0.0)
    do = tl.load(dO_row + offs_m[:, None] * stride_dos + offs_d[None, :], mask=row_valid[:, None], other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(Delta + row * N_QUERIES + offs_m, delta, mask=row_valid)


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
    dQ_ptr,
    stride_qs,
    stride_dos,
    stride_dqs,
    offs_n,
    offs_d,
    start,
    stop,
    N_QUERIES,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    CAUSAL_MASK: tl.constexpr,
    ATOMIC_DQ: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """Accumulate dK, dV of one key tile over query tiles ``[start, stop)``, working in transposed
    (key × query) orientation so no tile needs an explicit transpose; with ``ATOMIC_DQ`` also add each query
    tile's share of dQ = dS K / √d into the float32 dQ with atomics (``dQ_ptr`` a descriptor with ``USE_TMA``).

    Out-of-range queries load as zeros (dO = 0, D = 0) and so contribute nothing; out-of-range keys
    only produce rows that are never stored (and load as zero rows of K, so they add nothing to dQ). Only the
    causal diagonal needs a mask. ``Q_ptr`` and ``dO_ptr`` are the row's tensor descriptors with ``USE_TMA``,
    pointers to its first query otherwise."""
    for query_start in tl.range(start, stop, BLOCK_M):
        offs_m = query_start + tl.arange(0, BLOCK_M)
        row_valid = offs_m < N_QUERIES
        q = _load_rows(Q_ptr, query_start, offs_m, row_valid, offs_d, stride_qs, USE_TMA)
        do = _load_rows(dO_ptr, query_start, offs_m, row_valid, offs_d, stride_dos, USE_TMA)
        lse = tl.load(L_ptr + offs_m, mask=row_valid, other=0.0) * LOG2_E
        delta = tl.load(Delta_ptr + offs_m, mask=row_valid, other=0.0)
        scores_t = tl.dot(k, tl.trans(q)) * qk_scale
        probs_t = tl.math.exp2(scores_t - lse[None, :])
        if CAUSAL_MASK:
            probs_t = tl.where(offs_m[None, :] >= offs_n[:, None], probs_t, 0.0)
        dv = tl.dot(probs_t.to(do.dtype), do, dv)
        dprobs_t = tl.dot(v, tl.trans(do))
        dscores_t = probs_t * (dprobs_t - delta[None, :])
        dk = tl.dot(dscores_t.to(q.dtype), q, dk)
        if ATOMIC_DQ:
            dq = tl.dot(tl.trans(dscores_t).to(k.dtype), k) * HEAD_DIM**-0.5
            if USE_TMA:  # one bulk reduction per tile, done by the TMA unit in L2 (Hopper's cp.reduce.async.bulk)
                dQ_ptr.atomic_add([tl.cast(query_start, tl.int32), 0], dq)
            else:
                dq_rows = offs_m[:, None] * stride_dqs + offs_d[None, :]
                tl.atomic_add(dQ_ptr + dq_rows, dq, mask=row_valid[:, None], sem="relaxed")
    return dk, dv


@triton.jit
def _dkdv_program(
    Q,
    K,
    V,
    dO,
    L,
    Delta,
    dQ,
    dK,
    dV,
    q_strides,
    k_strides,
    v_strides,
    do_strides,
    dq_strides,
    dk_strides,
    dv_strides,
    tile,
    row,
    N_HEADS,
    N_QUERIES,
    N_KEYS,
    HEAD_DIM: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    ATOMIC_DQ: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """dV = Σ_i Pᵀ dO and dK = Σ_i dSᵀ Q / √d for one key tile, streaming query tiles (and, with ``ATOMIC_DQ``,
    this key tile's share of every streamed query tile's dQ). ``USE_TMA`` moves K, V, Q, dO, dK and dV through
    tensor descriptors on the row's ``(n, d)`` slices, as the forward does."""
    key_start = tile * BLOCK_N
    offs_n = key_start + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    key_valid = offs_n < N_KEYS
    k = _load_row_tile(
        K, row, N_HEADS, k_strides, N_KEYS, key_start, offs_n, key_valid, offs_d, BLOCK_N, HEAD_DIM, USE_TMA
    )
    v = _load_row_tile(
        V, row, N_HEADS, v_strides, N_KEYS, key_start, offs_n, key_valid, offs_d, BLOCK_N, HEAD_DIM, USE_TMA
    )
    Q_ptr = _row_tiles(Q, row, N_HEADS, q_strides, N_QUERIES, BLOCK_M, HEAD_DIM, USE_TMA)
    dO_ptr = _row_tiles(dO, row, N_HEADS, do_strides, N_QUERIES, BLOCK_M, HEAD_DIM, USE_TMA)
    L_ptr = L + row * N_QUERIES
    Delta_ptr = Delta + row * N_QUERIES
    # dQ is touched only by ATOMIC_DQ's additions: by TMA reductions with USE_TMA, element atomics otherwise.
    dQ_ptr = _row_tiles(dQ, row, N_HEADS, dq_strides, N_QUERIES, BLOCK_M, HEAD_DIM, USE_TMA and ATOMIC_DQ)
    scale = HEAD_DIM**-0.5
    qk_scale = scale * LOG2_E
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    if IS_CAUSAL:
        # Queries before key_start see none of these keys; the next BLOCK_N queries cross the diagonal.
        diagonal_end = tl.minimum(key_start + BLOCK_N, N_QUERIES)
        dk, dv = _dkdv_query_tiles(
            dk, dv, k, v, Q_ptr, dO_ptr, L_ptr, Delta_ptr, dQ_ptr, q_strides[2], do_strides[2], dq_strides[2], offs_n,
            offs_d, key_start, diagonal_end, N_QUERIES, qk_scale, HEAD_DIM, BLOCK_M, True, ATOMIC_DQ, USE_TMA,
        )  # fmt: skip
        unmasked_start = key_start + BLOCK_N
    else:
        unmasked_start = 0
    dk, dv = _dkdv_query_tiles(
        dk, dv, k, v, Q_ptr, dO_ptr, L_ptr, Delta_ptr, dQ_ptr, q_strides[2], do_strides[2], dq_strides[2], offs_n,
        offs_d, unmasked_start, N_QUERIES, N_QUERIES, qk_scale, HEAD_DIM, BLOCK_M, False, ATOMIC_DQ, USE_TMA,
    )  # fmt: skip

    dk = (dk * scale).to(dK.dtype.element_ty)
    dv = dv.to(dV.dtype.element_ty)
    dK_rows = _row_tiles(dK, row, N_HEADS, dk_strides, N_KEYS, BLOCK_N, HEAD_DIM, USE_TMA)
    dV_rows = _row_tiles(dV, row, N_HEADS, dv_strides, N_KEYS, BLOCK_N, HEAD_DIM, USE_TMA)
    _store_rows(dK_rows, key_start, offs_n, key_valid, offs_d, dk_strides[2], dk, USE_TMA)
    _store_rows(dV_rows, key_start, offs_n, key_valid, offs_d, dv_strides[2], dv, USE_TMA)


@triton.jit
def _dq_key_tiles(
    dq,
    q,
    do,
    lse,
    delta,
    K_ptr,
    V_ptr,
    stride_ks,
    stride_vs,
    offs_m,
    offs_d,
    start,
    stop,
    N_KEYS,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL_MASK: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """Accumulate dQ of one query tile over key tiles ``[start, stop)``.

    Out-of-range keys load as zeros, so their dS column multiplies a zero row of K: no mask needed
    except on the causal diagonal. ``K_ptr`` and ``V_ptr`` are the row's tensor descriptors with ``USE_TMA``."""
    for key_start in tl.range(start, stop, BLOCK_N):
        offs_n = key_start + tl.arange(0, BLOCK_N)
        key_valid = offs_n < N_KEYS
        k = _load_rows(K_ptr, key_start, offs_n, key_valid, offs_d, stride_ks, USE_TMA)
        v = _load_rows(V_ptr, key_start, offs_n, key_valid, offs_d, stride_vs, USE_TMA)
        scores = tl.dot(q, tl.trans(k)) * qk_scale
        probs = tl.math.exp2(scores - lse[:, None])
        if CAUSAL_MASK:
            probs = tl.where(offs_m[:, None] >= offs_n[None, :], probs, 0.0)
        dprobs = tl.dot(do, tl.trans(v))
        dscores = probs * (dprobs - delta[:, None])
        dq = tl.dot(dscores.to(k.dtype), k, dq)
    return dq


@triton.jit
def _dq_program(
    Q,
    K,
    V,
    dO,
    L,
    Delta,
    dQ,
    q_strides,
    k_strides,
    v_strides,
    do_strides,
    dq_strides,
    tile,
    row,
    N_HEADS,
    N_QUERIES,
    N_KEYS,
    HEAD_DIM: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """dQ = Σ_j dS K / √d for one query tile, recomputing P from L and streaming key tiles; ``USE_TMA`` moves Q,
    dO, K, V and dQ through tensor descriptors (L and D stay pointer loads)."""
    q_start = tile * BLOCK_M
    offs_m = q_start + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_valid = offs_m < N_QUERIES
    q = _load_row_tile(
        Q, row, N_HEADS, q_strides, N_QUERIES, q_start, offs_m, row_valid, offs_d, BLOCK_M, HEAD_DIM, USE_TMA
    )
    do = _load_row_tile(
        dO, row, N_HEADS, do_strides, N_QUERIES, q_start, offs_m, row_valid, offs_d, BLOCK_M, HEAD_DIM, USE_TMA
    )
    K_ptr = _row_tiles(K, row, N_HEADS, k_strides, N_KEYS, BLOCK_N, HEAD_DIM, USE_TMA)
    V_ptr = _row_tiles(V, row, N_HEADS, v_strides, N_KEYS, BLOCK_N, HEAD_DIM, USE_TMA)
    lse = tl.load(L + row * N_QUERIES + offs_m, mask=row_valid, other=0.0) * LOG2_E
    delta = tl.load(Delta + row * N_QUERIES + offs_m, mask=row_valid, other=0.0)
    scale = HEAD_DIM**-0.5
    qk_scale = scale * LOG2_E
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if IS_CAUSAL:
        unmasked_end = tl.minimum(q_start, N_KEYS)
        dq = _dq_key_tiles(
            dq, q, do, lse, delta, K_ptr, V_ptr, k_strides[2], v_strides[2], offs_m, offs_d, 0, unmasked_end, N_KEYS,
            qk_scale, HEAD_DIM, BLOCK_N, False, USE_TMA,
        )  # fmt: skip
        dq = _dq_key_tiles(
            dq, q, do, lse, delta, K_ptr, V_ptr, k_strides[2], v_strides[2], offs_m, offs_d, unmasked_end,
            tl.minimum(q_start + BLOCK_M, N_KEYS), N_KEYS, qk_scale, HEAD_DIM, BLOCK_N, True, USE_TMA,
        )  # fmt: skip
    else:
        dq = _dq_key_tiles(
            dq, q, do, lse, delta, K_ptr, V_ptr, k_strides[2], v_strides[2], offs_m, offs_d, 0, N_KEYS, N_KEYS,
            qk_scale, HEAD_DIM, BLOCK_N, False, USE_TMA,
        )  # fmt: skip

    dq = (dq * scale).to(dQ.dtype.element_ty)
    dQ_rows = _row_tiles(dQ, row, N_HEADS, dq_strides, N_QUERIES, BLOCK_M, HEAD_DIM, USE_TMA)
    _store_rows(dQ_rows, q_start, offs_m, row_valid, offs_d, dq_strides[2], dq, USE_TMA)


@triton.autotune(
    configs=BACKWARD_CONFIGS,
    key=_AUTOTUNE_KEY,
    **_AUTOTUNE_BENCH,
    prune_configs_by=_shared_memory_pruner(_backward_rows),
)
@triton.jit
def flash_bwd_kernel(
    Q,
    K,
    V,
    dO,
    L,
    Delta,
    dQ,
    dK,
    dV,
    stride_qb,
    stride_qh,
    stride_qs,
    stride_kb,
    stride_kh,
    stride_ks,
    stride_vb,
    stride_vh,
    stride_vs,
    stride_dob,
    stride_doh,
    stride_dos,
    stride_dqb,
    stride_dqh,
    stride_dqs,
    stride_dkb,
    stride_dkh,
    stride_dks,
    stride_dvb,
    stride_dvh,
    stride_dvs,
    N_HEADS,
    N_QUERIES,
    N_KEYS,
    N_BUCKET,
    HEAD_DIM: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    DKDV: tl.constexpr,
    DQ: tl.constexpr,
    ATOMIC_DQ: tl.constexpr,
    USE_TMA: tl.constexpr,
    BLOCK_M1: tl.constexpr,
    BLOCK_N1: tl.constexpr,
    BLOCK_M2: tl.constexpr,
    BLOCK_N2: tl.constexpr,
):
    """The whole backward in one launch: ``cdiv(N_KEYS, BLOCK_N1)`` dK/dV programs per row start
    first (they carry the most work), then ``cdiv(N_QUERIES, BLOCK_M2)`` dQ programs; each kind in
    longest-job-first order within groups of rows. ``DKDV`` / ``DQ`` restrict a launch to one kind (the tuning
    script times them apart); the grid must then cover only that kind's programs. ``ATOMIC_DQ`` (with dK/dV
    programs only, and a zeroed float32 dQ) has the dK/dV programs add dQ with atomics instead, as
    FlashAttention-2's CUDA backward does: 5 n×n×d matmul products and one exp per score instead of 7 and two,
    for atomic traffic into dQ (an experiment of the tuning script, see ``launch_backward``: 16 % slower on an
    H200 at n = 16384, batch 16 x 16 heads, d = 64, where its float32 atomic adds come to ~69 GB). ``USE_TMA``
    moves the d-wide tiles (not L and D) through tensor descriptors, as the forward's ``USE_TMA`` does, and with
    ``ATOMIC_DQ`` adds each dQ tile by one TMA reduction (as FlashAttention-3 and cuDNN do) instead of one atomic
    per element; the launch needs ``triton.set_allocator``."""
    if ATOMIC_DQ:
        tl.static_assert(dQ.dtype.element_ty == tl.float32, "ATOMIC_DQ accumulates into a float32 dQ")
        tl.static_assert(not DQ, "ATOMIC_DQ replaces the dQ programs")
    # Both kinds of program take each tensor's (batch, head, sequence) strides as one tuple.
    q_strides = (stride_qb, stride_qh, stride_qs)
    k_strides = (stride_kb, stride_kh, stride_ks)
    v_strides = (stride_vb, stride_vh, stride_vs)
    do_strides = (stride_dob, stride_doh, stride_dos)
    dq_strides = (stride_dqb, stride_dqh, stride_dqs)
    num_rows = tl.num_programs(1)
    linear = tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)
    dkdv_programs = 0
    if DKDV:
        dkdv_programs = tl.cdiv(N_KEYS, BLOCK_N1) * num_rows
    # The branches name their tiles and group sizes apart: with int64 lengths the query tile's index is int64,
    # the key tile's int32, and Triton rejects a name that an if and its else assign with different types.
    if linear < dkdv_programs:
        # Streams its row's Q and dO, and L and D (float32); low key tiles see the most queries when causal.
        # With ATOMIC_DQ the row's float32 dQ is read and written in L2 by every program too.
        streamed_bytes = 2 * HEAD_DIM * Q.dtype.element_ty.primitive_bitwidth // 8 + 8 + ATOMIC_DQ * 4 * HEAD_DIM
        key_group_rows = _rows_per_group(N_QUERIES, streamed_bytes)
        key_tile, key_row = _grouped_longest_first(linear, tl.cdiv(N_KEYS, BLOCK_N1), num_rows, key_group_rows, False)
        _dkdv_program(
            Q, K, V, dO, L, Delta, dQ, dK, dV, q_strides, k_strides, v_strides, do_strides, dq_strides,
            (stride_dkb, stride_dkh, stride_dks), (stride_dvb, stride_dvh, stride_dvs), key_tile, key_row.to(tl.int64),
            N_HEADS, N_QUERIES, N_KEYS, HEAD_DIM, IS_CAUSAL, BLOCK_M1, BLOCK_N1, ATOMIC_DQ, USE_TMA,
        )  # fmt: skip
    elif DQ:
        # Streams its row's K and V.
        query_group_rows = _rows_per_group(N_KEYS, 2 * HEAD_DIM * K.dtype.element_ty.primitive_bitwidth // 8)
        query_tile, query_row = _grouped_longest_first(
            linear - dkdv_programs, tl.cdiv(N_QUERIES, BLOCK_M2), num_rows, query_group_rows, IS_CAUSAL
        )
        _dq_program(
            Q, K, V, dO, L, Delta, dQ, q_strides, k_strides, v_strides, do_strides, dq_strides, query_tile,
            query_row.to(tl.int64), N_HEADS, N_QUERIES, N_KEYS, HEAD_DIM, IS_CAUSAL, BLOCK_M2, BLOCK_N2, USE_TMA,
        )  # fmt: skip


ATOMIC_DQ_CONFIGS = _backward_configs(
    [
        (64, 64, 64, 64, 4, 3),
        (64, 64, 64, 64, 4, 4),
        (32, 128, 64, 64, 4, 3),
        (32, 64, 64, 64, 4, 3),
        (16, 32, 32, 16, 4, 2),
    ]
)
"""dK/dV tiles for the backward whose dK/dV programs add dQ by TMA reductions (``BLOCK_M2``/``BLOCK_N2`` unused): the
four fastest of ``tune_flash_kernels.py --kernels atomic_dq_tma`` on an H200 at n = 16384, batch 16 x 16 heads, d = 64
(59.2-59.5 ms for 64/64 with 4 warps, 3 stages, in two processes; BENCHMARKS.md, ninth and tenth H200 runs), then
the smallest."""
flash_bwd_atomic_dq_kernel = triton.autotune(
    configs=ATOMIC_DQ_CONFIGS,
    key=_AUTOTUNE_KEY,
    reset_to_zero=["dQ"],
    **_AUTOTUNE_BENCH,
    prune_configs_by=_shared_memory_pruner(_backward_rows),
)(flash_bwd_kernel.fn)
"""The same kernel autotuned for ``ATOMIC_DQ`` launches of dK/dV programs alone: every timed candidate adds into dQ,
so the autotuner zeroes it before each and before the launch it keeps."""
