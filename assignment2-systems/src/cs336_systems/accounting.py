"""Closed-form memory and communication accounting for the written problems of assignment 2 (WRITEUP.md).

Conventions: sizes in bytes, bandwidths in bytes/s, compute in FLOP/s, times in seconds; a matmul
``(a, b) @ (b, c)`` costs ``2abc`` FLOPs. Ring collectives follow the 2026 handout (§8.1): every device sends at
``W`` bytes/s, an all-gather or reduce-scatter of an ``S``-byte tensor over ``N`` devices takes
``(N-1)/N · S/W`` and an all-reduce twice that. The FFN of §8.2 has ``W1, W2: (D, F)`` and ``W3: (F, D)``
in 2-byte (fp16) weights and activations, and a batch of ``B`` rows.
"""

import math
from dataclasses import dataclass

ADAMW_TRAINING_BYTES_PER_PARAMETER = 16
"""fp32 master weight, fp32 gradient and AdamW's two fp32 moments."""


# ---------------------------------------------------------------- single-device memory


def tensor_mib(*shape: int, bytes_per_element: int = 4) -> float:
    """Size of a dense tensor in MiB (2**20 bytes); e.g. one residual-stream activation is (batch, seq, d_model)."""
    return math.prod(shape) * bytes_per_element / 2**20


def naive_attention_held_bytes(batch: int, seq_len: int, head_dim: int, bytes_per_element: int) -> int:
    """Memory the naive causal attention of ``reference.py`` allocates in forward and keeps until backward
    (inputs excluded): the softmax output P (batch·n·n, saved for softmax's and P·V's backward), the causal mask
    (n·n bools, saved by ``torch.where``) and the output O (batch·n·d)."""
    return batch * seq_len**2 * bytes_per_element + seq_len**2 + batch * seq_len * head_dim * bytes_per_element


def checkpointed_peak_activation_bytes(n_blocks: int, segment: int, input_bytes: float, block_bytes: float) -> float:
    """Peak activation memory with every ``segment`` consecutive blocks checkpointed (no nesting): one kept
    input per segment, plus the residuals of one segment re-materialised during its backward."""
    return math.ceil(n_blocks / segment) * input_bytes + min(segment, n_blocks) * block_bytes


def best_checkpoint_segment(n_blocks: int, input_bytes: float, block_bytes: float) -> int:
    """Segment length (in blocks) with the lowest :func:`checkpointed_peak_activation_bytes`; ties go to the
    shorter segment. The continuous optimum is ``sqrt(n_blocks · input_bytes / block_bytes)``."""
    return min(
        range(1, n_blocks + 1),
        key=lambda s: (checkpointed_peak_activation_bytes(n_blocks, s, input_bytes, block_bytes), s),
    )


# ---------------------------------------------------------------- data-parallel memory (per rank)


@dataclass(frozen=True)
class RankMemory:
    """Bytes one rank holds for training state (no activations, no communication buffers)."""

    parameters: float
    gradients: float
    optimizer_state: float

    @property
    def total(self) -> float:
        return self.parameters + self.gradients + self.optimizer_state


def rank_training_memory(n_parameters: int, world_size: int, sharding: str) -> RankMemory:
    """fp32 weights and gradients and AdamW's two fp32 moments per rank under ``sharding``: "ddp" (all
    replicated), "zero1" (optimizer state sharded), "fsdp" (weights, gradients and state sharded)."""
    full = 4.0 * n_parameters
    if sharding == "ddp":
        return RankMemory(full, full, 2 * full)
    if sharding == "zero1":
        return RankMemory(full, full, 2 * full / world_size)
    if sharding == "fsdp":
        return RankMemory(full / world_size, full / world_size, 2 * full / world_size)
    raise ValueError(f"sharding must be 'ddp', 'zero1' or 'fsdp'; got {sharding!r}")


def ddp_bucket_overhead(total_bytes: float, bandwidth: float, call_overhead: float, n_buckets: int) -> float:
    """Time DDP spends after backward when each bucket's gradients take as long to compute as to communicate:
    each call's fixed overhead ``o`` delays the communication stream (``n_b · o`` in all) and the last bucket
    cannot overlap anything (``s / (n_b · w)``)."""
    return n_buckets * call_overhead + total_bytes / (n_buckets * bandwidth)


def optimal_bucket_bytes(total_bytes: float, bandwidth: float, call_overhead: float) -> float:
    """Bucket size minimising :func:`ddp_bucket_overhead`: ``n_b* = sqrt(s / (w · o))`` buckets of
    ``sqrt(s · w · o)`` bytes."""
    return math.sqrt(total_bytes * bandwidth * call_overhead)


# ---------------------------------------------------------------- ring collectives (2026 §8.1)


def ring_all_gather_time(size: float, n_devices: int, bandwidth: float) -> float:
    """All-gather (or reduce-scatter) of an ``size``-byte result: N-1 steps of one ``size/N`` chunk each."""
    return (n_devices - 1) / n_devices * size / bandwidth


def ring_all_reduce_time(size: float, n_devices: int, bandwidth: float) -> float:
    """Reduce-scatter then all-gather."""
    return 2 * ring_all_gather_time(size, n_devices, bandwidth)


def alternate_all_reduce_time(size: float, n_devices: int, bandwidth: float) -> float:
    """The alternate ring all-reduce of the 2026 handout: every step forwards a whole ``size``-byte input."""
    return (n_devices - 1) * size / bandwidth


# ---------------------------------------------------------------- FFN parallelism (2026 §8.2-8.5)


@dataclass(frozen=True)
class FfnSetting:
    """One FFN layer of §8.2 on devices of ``flops`` FLOP/s and ``bandwidth`` egress bytes/s (2-byte values)."""

    batch: int
    d_model: int
    d_ff: int
    flops: float
    bandwidth: float

    @property
    def matmul_flops(self) -> float:
        """FLOPs of one (B, D) × (D, F) matmul."""
        return 2.0 * self.batch * self.d_model * self.d_ff


def dp_backward(setting: FfnSetting, n: int) -> tuple[float, float]:
    """(FLOPs per device, communication seconds) of the data-parallel backward: six matmuls on B/N rows
    (dz, dx via W1 and W2, and the three weight gradients), then an all-reduce of the 3·D·F fp16 gradients."""
    flops = 6 * setting.matmul_flops / n
    return flops, ring_all_reduce_time(3 * setting.d_model * setting.d_ff * 2, n, setting.bandwidth)


def fsdp_forward(setting: FfnSetting, n: int) -> tuple[float, float]:
    """(FLOPs per device, communication seconds) of the FSDP forward: three matmuls on B/N rows after
    all-gathering the three weights."""
    return 3 * setting.matmul_flops / n, ring_all_gather_time(
        3 * setting.d_model * setting.d_ff * 2, n, setting.bandwidth
    )


def fsdp_backward(setting: FfnSetting, n: int) -> tuple[float, float]:
    """The FSDP backward: the data-parallel backward's FLOPs, an all-gather of the weights and a reduce-scatter
    of their gradients (each moves the same bytes as one all-gather)."""
    weights = 3 * setting.d_model * setting.d_ff * 2
    return 6 * setting.matmul_flops / n, 2 * ring_all_gather_time(weights, n, setting.bandwidth)


def tp_forward(setting: FfnSetting, n: int) -> tuple[float, float]:
    """Tensor parallel forward (W1, W2 column-, W3 row-parallel): three matmuls with F/N columns, then one
    all-reduce of the (B, D) output."""
    return 3 * setting.matmul_flops / n, ring_all_reduce_time(setting.batch * setting.d_model * 2, n, setting.bandwidth)


def tp_backward(setting: FfnSetting, n: int) -> tuple[float, float]:
    """Tensor parallel backward: six matmuls with F/N columns, one all-reduce of dx (B, D)."""
    return 6 * setting.matmul_flops / n, ring_all_reduce_time(setting.batch * setting.d_model * 2, n, setting.bandwidth)


def fsdp_tp_forward(setting: FfnSetting, n_fsdp: int, n_tp: int, overlapped: bool = True) -> tuple[float, float]:
    """2D (FSDP × TP) forward: FLOPs per device, and communication seconds as the max (``overlapped``) or the
    sum of the FSDP all-gather of each device's TP weight slices and the TP all-reduce of its (B/N_FSDP, D)
    output."""
    weights = 3 * setting.d_model * setting.d_ff * 2 / n_tp
    gather = ring_all_gather_time(weights, n_fsdp, setting.bandwidth)
    reduce = ring_all_reduce_time(setting.batch * setting.d_model * 2 / n_fsdp, n_tp, setting.bandwidth)
    return 3 * setting.matmul_flops / (n_fsdp * n_tp), max(gather, reduce) if overlapped else gather + reduce


def is_compute_bound(flops: float, seconds: float, setting: FfnSetting) -> bool:
    """Communication hides behind compute when it takes no longer than the FLOPs at the device's rate."""
    return seconds <= flops / setting.flops


def max_dp_devices(setting: FfnSetting) -> float:
    """Largest N_DP (and N_FSDP, forward and backward alike) that stays compute-bound: ``N <= 1 + B·W/C``."""
    return 1 + setting.batch * setting.bandwidth / setting.flops


def max_tp_devices(setting: FfnSetting, backward: bool) -> float:
    """Largest N_TP that stays compute-bound: ``1 + 3·F·W/C`` in backward, ``1 + 1.5·F·W/C`` in forward."""
    return 1 + (3.0 if backward else 1.5) * setting.d_ff * setting.bandwidth / setting.flops


def max_fsdp_tp_devices(setting: FfnSetting, overlapped: bool) -> float:
    """Largest N = N_FSDP·N_TP with a compute-bound forward at the best split, taking (N-1)/N ≈ 1.

    Overlapped axes bound each separately (N_FSDP <= B·W/C, N_TP <= 1.5·F·W/C), so N <= 1.5·B·F·W²/C².
    Sequential axes need 3·B·F·W/C >= 3·F·N_FSDP + 2·B·N_TP, best at N_FSDP = sqrt(2·B·N / (3·F)), which gives
    N <= 3·B·F·W² / (8·C²)."""
    ratio = setting.bandwidth / setting.flops
    scale = 1.5 if overlapped else 3 / 8
    return scale * setting.batch * setting.d_ff * ratio**2


# ---------------------------------------------------------------- 2025 communication_accounting (XXL FFN stack)


def ffn_stack_parameters(d_model: int, d_ff: int, n_blocks: int) -> int:
    """Two bias-free linears (d_model→d_ff, d_ff→d_model) per block."""
    return 2 * d_model * d_ff * n_blocks


def ffn_stack_saved_bytes_per_token(d_model: int, d_ff: int, n_blocks: int, bytes_per_element: int = 2) -> int:
    """Activations saved for backward per token: each linear keeps its input (d_model, then d_ff wide)."""
    return (d_model + d_ff) * n_blocks * bytes_per_element


def fsdp_device_bytes(n_parameters: int, activation_bytes: float, n_devices: int) -> float:
    """Per-device bytes when fp32 weights, gradients and AdamW state and half the (bf16) activations are
    sharded over ``n_devices``; the other half of the activations stays on every device."""
    state = ADAMW_TRAINING_BYTES_PER_PARAMETER * n_parameters
    return state / n_devices + activation_bytes / 2 + activation_bytes / (2 * n_devices)


def min_fsdp_devices(n_parameters: int, activation_bytes: float, device_bytes: float) -> int:
    """Fewest devices for which :func:`fsdp_device_bytes` fits ``device_bytes``."""
    room = device_bytes - activation_bytes / 2
    if room <= 0:
        raise ValueError("the unsharded half of the activations alone does not fit on one device")
    needed = (ADAMW_TRAINING_BYTES_PER_PARAMETER * n_parameters + activation_bytes / 2) / room
    n = max(1, math.ceil(needed))
    return n if fsdp_device_bytes(n_parameters, activation_bytes, n) <= device_bytes else n + 1


@dataclass(frozen=True)
class MeshFfn:
    """The Scaling Book's FSDP (axis X) × TP (axis Y) setting for an FFN of width ``d_ff``: ``flops`` per chip,
    ``ici_bandwidth`` per link (bidirectional), ``m_x``/``m_y`` mesh axes spanned by X and Y."""

    d_ff: int
    flops: float
    ici_bandwidth: float
    x: int
    y: int
    m_x: int
    m_y: int

    @property
    def alpha(self) -> float:
        """Arithmetic intensity a chip needs to hide one link's traffic: C / W_ici."""
        return self.flops / self.ici_bandwidth

    def min_batch_per_fsdp_shard(self) -> float:
        """Weight all-gathers (4DF/(Y·W·M_X)) hide behind the matmuls (4BDF/(XY·C)) iff B/X >= alpha / M_X."""
        return self.alpha / self.m_x

    def tp_is_compute_bound(self) -> bool:
        """Activation collectives (4BD/(X·W·M_Y)) hide iff Y <= F·M_Y / alpha (independent of the batch)."""
        return self.y <= self.d_ff * self.m_y / self.alpha

    def min_batch(self) -> float:
        """Smallest global batch (tokens) that keeps both axes compute-bound at this X, Y."""
        if not self.tp_is_compute_bound():
            raise ValueError(
                f"Y={self.y} exceeds F·M_Y/alpha = {self.d_ff * self.m_y / self.alpha:.1f}: TP is comm-bound"
            )
        return self.x * self.min_batch_per_fsdp_shard()

    def min_batch_per_device_at_best_split(self) -> float:
        """With Y as large as TP allows (F·M_Y/alpha), the per-chip batch bound becomes alpha² / (M_X·M_Y·F)."""
        return self.alpha**2 / (self.m_x * self.m_y * self.d_ff)
