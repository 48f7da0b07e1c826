"""Accounting formulas against hand-worked values, brute force, simulations, FLOP counters and measurements."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cs336_basics.accounting import count_parameters
from cs336_basics.model_sizes import model_config
from cs336_systems import accounting as acc
from torch.utils.flop_counter import FlopCounterMode

RESULTS = Path(__file__).parent.parent / "benchmarks" / "results"


def test_residual_stream_activation_of_the_2026_xl_model():
    assert acc.tensor_mib(4, 512, 2560) == 20.0  # batch 4, context 512, d_model 2560, float32


def test_naive_attention_memory_matches_every_measured_row():
    """The H100 sweep measured what naive attention holds between forward and backward (batch 8, bf16)."""
    rows = json.loads((RESULTS / "h100" / "attention_sweep.json").read_text())["rows"]
    naive = [r for r in rows if r["impl"] == "naive"]
    assert len(naive) == 20
    for row in naive:
        predicted = acc.naive_attention_held_bytes(8, row["seq_len"], row["head_dim"], 2) / 2**20
        assert predicted == row["saved_for_bwd_MiB"], row


def test_checkpoint_segments_hand_worked_for_the_handouts_block():
    """Handout §3.2: 3651.31 MiB saved per compiled xl block, 80 MiB block input (4 × 2048 × 2560 fp32), 32 blocks."""
    block, kept, n = 3651.31, acc.tensor_mib(4, 2048, 2560), 32
    assert kept == 80.0
    assert acc.checkpointed_peak_activation_bytes(n, 1, kept, block) == pytest.approx(32 * 80 + 3651.31)
    assert acc.checkpointed_peak_activation_bytes(n, 2, kept, block) == pytest.approx(16 * 80 + 2 * 3651.31)
    assert acc.best_checkpoint_segment(n, kept, block) == 1
    # With blocks 8x their input, sqrt(32 / 8) = 2 blocks per segment is optimal.
    assert acc.best_checkpoint_segment(32, 1.0, 8.0) == 2


def test_rank_memory_matches_the_measured_xl_tensors_on_two_h200s():
    """DISTRIBUTED.md (XL, fp32, 2 ranks): params / grads / optimizer MiB per rank from the tensors."""
    n = count_parameters(model_config("xl", context_length=128))
    measured = {"ddp": (7623, 7623, 15245), "zero1": (7623, 7623, 7623), "fsdp": (3812, 3812, 7623)}
    for sharding, expected in measured.items():
        memory = acc.rank_training_memory(n, 2, sharding)
        got = (memory.parameters / 2**20, memory.gradients / 2**20, memory.optimizer_state / 2**20)
        assert got == pytest.approx(expected, abs=1.0), sharding
    assert acc.rank_training_memory(n, 2, "ddp").total == acc.ADAMW_TRAINING_BYTES_PER_PARAMETER * n
    with pytest.raises(ValueError, match="sharding"):
        acc.rank_training_memory(n, 2, "zero3")


def test_bucket_overhead_is_lowest_at_sqrt_of_s_w_o():
    s, w, o = 1e9, 1e11, 1e-4  # hand-worked: sqrt(1e9 · 1e11 · 1e-4) = 1e8 bytes, i.e. 10 buckets
    assert acc.optimal_bucket_bytes(s, w, o) == pytest.approx(1e8)
    overheads = {n: acc.ddp_bucket_overhead(s, w, o, n) for n in range(1, 101)}
    assert min(overheads, key=overheads.get) == 10
    assert overheads[10] == pytest.approx(2e-3)


def _simulate_ring(inputs: list[np.ndarray], alternate: bool) -> tuple[list[np.ndarray], int]:
    """Run a ring all-reduce step by step; returns every device's result and the elements a device sends in
    all (the most any device sends per step, summed over steps), so time = elements × bytes / W."""
    n, size = len(inputs), len(inputs[0])
    if alternate:
        # Step t: device i sends x^((i-t+1) mod N) onward and adds the x^((i-t) mod N) it receives.
        sums = [x.copy() for x in inputs]
        holding = list(range(n))  # index of the input tensor each device forwards next
        for _ in range(n - 1):
            received = [holding[(i - 1) % n] for i in range(n)]
            for i in range(n):
                sums[i] += inputs[received[i]]
            holding = received
        return sums, (n - 1) * size
    chunks = [np.array_split(x.copy(), n) for x in inputs]
    for t in range(1, n):  # reduce-scatter: device i passes chunk (i - t + 1) mod n
        sent = [chunks[i][(i - t + 1) % n].copy() for i in range(n)]
        for i in range(n):
            chunks[i][(i - t) % n] += sent[(i - 1) % n]
    for t in range(n - 1):  # all-gather: device i owns chunk (i + 1) mod n and passes what it last got
        sent = [chunks[i][(i + 1 - t) % n].copy() for i in range(n)]
        for i in range(n):
            chunks[i][(i - t) % n] = sent[(i - 1) % n]
    per_step = max(len(c) for c in chunks[0])
    return [np.concatenate(c) for c in chunks], 2 * (n - 1) * per_step


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_ring_all_reduce_times_match_a_step_by_step_simulation(n):
    size, bandwidth = 40 * n, 1.0  # elements of one byte, so bytes sent / W is the time
    for alternate, formula in [(False, acc.ring_all_reduce_time), (True, acc.alternate_all_reduce_time)]:
        inputs = [np.random.default_rng(seed).standard_normal(size) for seed in range(n)]
        results, elements_sent = _simulate_ring(inputs, alternate)
        total = np.sum(inputs, axis=0)
        for result in results:
            np.testing.assert_allclose(result, total)
        assert elements_sent / bandwidth == pytest.approx(formula(size, n, bandwidth))
    assert acc.alternate_all_reduce_time(1.0, n, 1.0) / acc.ring_all_reduce_time(1.0, n, 1.0) == pytest.approx(n / 2)


SETTING = acc.FfnSetting(batch=7000, d_model=64, d_ff=4096, flops=1e14, bandwidth=1e11)


def _ffn_flops(batch: int, d_model: int, d_ff: int) -> tuple[int, int]:
    """Forward and backward matmul FLOPs of the §8.2 FFN on these (per-device) shapes, from PyTorch's counter."""
    x = torch.randn(batch, d_model, requires_grad=True)
    w1, w2 = (torch.randn(d_model, d_ff, requires_grad=True) for _ in range(2))
    w3 = torch.randn(d_ff, d_model, requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        y = (torch.nn.functional.silu(x @ w1) * (x @ w2)) @ w3
    with FlopCounterMode(display=False) as backward:
        y.backward(torch.ones_like(y))
    return forward.get_total_flops(), backward.get_total_flops()


def test_flops_per_device_match_pytorchs_counter():
    n = 4
    setting = acc.FfnSetting(batch=64, d_model=32, d_ff=128, flops=1.0, bandwidth=1.0)
    dp_forward_flops, dp_backward_flops = _ffn_flops(64 // n, 32, 128)  # batch-sharded, full weights
    assert acc.dp_backward(setting, n)[0] == dp_backward_flops
    assert acc.fsdp_forward(setting, n)[0] == dp_forward_flops
    assert acc.fsdp_backward(setting, n)[0] == dp_backward_flops
    tp_forward_flops, tp_backward_flops = _ffn_flops(64, 32, 128 // n)  # full batch, F/N columns
    assert acc.tp_forward(setting, n)[0] == tp_forward_flops
    assert acc.tp_backward(setting, n)[0] == tp_backward_flops
    fsdp_tp_forward_flops, _ = _ffn_flops(64 // 2, 32, 128 // 2)
    assert acc.fsdp_tp_forward(setting, 2, 2)[0] == fsdp_tp_forward_flops


def test_communication_hand_worked():
    s = acc.FfnSetting(batch=8, d_model=10, d_ff=20, flops=1.0, bandwidth=2.0)
    # DP: all-reduce 3·10·20 fp16 = 1200 bytes over 4 devices: 2 · 3/4 · 1200 / 2 = 900 s.
    assert acc.dp_backward(s, 4)[1] == pytest.approx(900)
    assert acc.fsdp_forward(s, 4)[1] == pytest.approx(450)
    assert acc.fsdp_backward(s, 4)[1] == pytest.approx(900)
    # TP: all-reduce of (8, 10) fp16 = 160 bytes over 4 devices: 2 · 3/4 · 160 / 2 = 120 s.
    assert acc.tp_forward(s, 4)[1] == acc.tp_backward(s, 4)[1] == pytest.approx(120)
    # 2 × 2: all-gather of 1200 / 2 bytes over 2 = 150 s; all-reduce of 160 / 2 bytes over 2 = 40 s.
    assert acc.fsdp_tp_forward(s, 2, 2)[1] == pytest.approx(150)
    assert acc.fsdp_tp_forward(s, 2, 2, overlapped=False)[1] == pytest.approx(190)


def test_device_limits_are_where_compute_stops_hiding_communication():
    limits = [
        (acc.max_dp_devices(SETTING), acc.dp_backward),  # 1 + 7000 · 1e-3 = 8
        (acc.max_dp_devices(SETTING), acc.fsdp_forward),
        (acc.max_dp_devices(SETTING), acc.fsdp_backward),
        (acc.max_tp_devices(SETTING, backward=True), acc.tp_backward),  # 1 + 3 · 4.096 = 13.3
        (acc.max_tp_devices(SETTING, backward=False), acc.tp_forward),  # 1 + 1.5 · 4.096 = 7.1
    ]
    assert [math.floor(limit) for limit, _ in limits] == [8, 8, 8, 13, 7]
    for limit, phase in limits:
        n = math.floor(limit)
        assert acc.is_compute_bound(*phase(SETTING, n), SETTING)
        assert not acc.is_compute_bound(*phase(SETTING, n + 1), SETTING)


@pytest.mark.parametrize("overlapped", [True, False])
def test_2d_limit_is_the_best_split_found_by_search(overlapped):
    """Search real N_FSDP for the largest N = N_FSDP · N_TP whose forward stays compute-bound ((N-1)/N ≈ 1)."""
    s = acc.FfnSetting(batch=4096, d_model=1024, d_ff=8192, flops=1e15, bandwidth=1e12)
    best = 0.0
    for n_fsdp in np.linspace(0.05, 40, 40_000):
        if overlapped:  # each axis alone: N_FSDP <= B·W/C and N_TP <= 1.5·F·W/C
            n_tp = 1.5 * s.d_ff * s.bandwidth / s.flops if n_fsdp <= s.batch * s.bandwidth / s.flops else 0.0
        else:  # 6BDF/(N C) >= 6DF/(N_TP W) + 4BD/(N_FSDP W), times N/D: 6BF/C >= (6F·N_FSDP + 4B·N_TP)/W
            room = 6 * s.batch * s.d_ff / s.flops - 6 * s.d_ff * n_fsdp / s.bandwidth
            n_tp = max(room * s.bandwidth / (4 * s.batch), 0.0)
        best = max(best, n_fsdp * n_tp)
    assert best == pytest.approx(acc.max_fsdp_tp_devices(s, overlapped), rel=1e-3)


def test_xxl_communication_accounting_hand_worked():
    """2025 communication_accounting: d_model 16384, d_ff 53248, 126 blocks; TPU v5p numbers."""
    n = acc.ffn_stack_parameters(16384, 53248, 126)
    assert n == 219_848_638_464
    state = acc.ADAMW_TRAINING_BYTES_PER_PARAMETER * n
    assert state / 80e9 == pytest.approx(43.97, abs=0.01)  # H100s of 80 GB for weights, gradients, AdamW
    assert acc.ffn_stack_saved_bytes_per_token(16384, 53248, 126) == (16384 + 53248) * 126 * 2
    assert acc.min_fsdp_devices(n, 0, 95e9) == 38  # 3.52e12 / 95e9 = 37.03
    tokens = 1024  # 1024 tokens of activations: 18.0 GB, half of it on every device
    activations = tokens * acc.ffn_stack_saved_bytes_per_token(16384, 53248, 126)
    k = acc.min_fsdp_devices(n, activations, 95e9)
    assert acc.fsdp_device_bytes(n, activations, k) <= 95e9 < acc.fsdp_device_bytes(n, activations, k - 1)
    mesh = acc.MeshFfn(d_ff=53248, flops=4.6e14, ici_bandwidth=2 * 9e10, x=16, y=4, m_x=2, m_y=1)
    assert mesh.alpha == pytest.approx(2555.56, abs=0.01)
    assert mesh.tp_is_compute_bound()  # Y = 4 <= 53248 / 2555.6 = 20.8
    assert mesh.min_batch() == pytest.approx(16 * 2555.56 / 2, rel=1e-5)  # 20,444 tokens, 319 per chip
    assert mesh.min_batch_per_device_at_best_split() == pytest.approx(2555.56**2 / (2 * 53248), rel=1e-5)
