"""The warp-specialisation probe's minimal forward and its verdicts, in Triton's interpreter on CPU (the flag changes
nothing there: the probe's GPU rows measure what the compiler's pass does to the same kernel)."""

import math
from pathlib import Path

import pytest
import torch
from cs336_basics.toolkit.entry_points import load_entry_point_module

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "probe_warp_specialization.py"
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the probe's own run covers the GPU")


@pytest.fixture(scope="module")
def probe():
    return load_entry_point_module(SCRIPT)


def naive_attention(q, k, v, is_causal):
    """Float64 attention written out, independent of the probe's reference."""
    q, k, v = (t.double() for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if is_causal:
        n = q.shape[-2]
        scores = torch.where(torch.arange(n)[:, None] >= torch.arange(n)[None, :], scores, -math.inf)
    return torch.softmax(scores, -1) @ v, torch.logsumexp(scores, -1)


@pytest.mark.parametrize("is_causal", [True, False])
@pytest.mark.parametrize("warp_specialize", [False, True])
def test_minimal_forward_matches_float64_attention(probe, is_causal, warp_specialize):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 64, 16) for _ in range(3))
    out, lse = torch.empty_like(q), torch.empty(2, 3, 64)
    assert probe.minimal_forward(q, k, v, out, lse, (32, 16, 4, 2), is_causal, warp_specialize) == 4
    expected_out, expected_lse = naive_attention(q, k, v, is_causal)
    torch.testing.assert_close(out.double(), expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lse.double(), expected_lse, atol=1e-5, rtol=1e-5)


def test_check_calls_a_right_kernel_right_and_counts_wrong_rows(probe, monkeypatch):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 64, 16) for _ in range(3))
    right = probe.check(q, k, v, (32, 16, 4, 2), True, False)
    assert right["verdict"] == "right" and right["wrong_row_share"] == 0.0
    original = probe.minimal_forward

    def half_rows_wrong(q, k, v, out, lse, *args):
        warps = original(q, k, v, out, lse, *args)
        out[..., 32:, :] += 1.0  # the second half of each row's queries, as the causal probe found on the H200
        return warps

    monkeypatch.setattr(probe, "minimal_forward", half_rows_wrong)
    wrong = probe.check(q, k, v, (32, 16, 4, 2), True, False)
    assert wrong["verdict"] == "wrong" and wrong["wrong_row_share"] == 0.5


def test_flops_halve_when_causal(probe):
    assert probe.attention_flops(16, 16, 16384, 64, False) == 4 * 256 * 16384**2 * 64
    assert probe.attention_flops(16, 16, 16384, 64, True) == 2 * 256 * 16384**2 * 64
