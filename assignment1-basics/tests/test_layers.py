"""Layers against PyTorch built-ins and float64 formulas written independently here."""

import math

import pytest
import torch
import torch.nn.functional as F
from cs336_basics.layers import (
    Embedding,
    Linear,
    RMSNorm,
    RotaryPositionalEmbedding,
    SwiGLU,
    scaled_dot_product_attention,
    silu,
    softmax,
)


def test_linear_matches_functional_linear_on_any_leading_dims():
    torch.manual_seed(0)
    layer = Linear(6, 5)
    x = torch.randn(2, 3, 4, 6)
    assert layer.weight.shape == (5, 6)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight))


def test_linear_init_is_truncated_normal_with_handout_std():
    torch.manual_seed(0)
    d_in, d_out = 300, 500
    w = Linear(d_in, d_out).weight.detach()
    std = math.sqrt(2 / (d_in + d_out))
    assert w.abs().max() <= 3 * std + 1e-7
    # truncation at 3σ shrinks the std by a factor ≈ 0.9866
    assert w.std().item() == pytest.approx(0.9866 * std, rel=0.02)
    assert w.mean().abs().item() < 0.01 * std


def test_embedding_matches_functional_embedding_and_init():
    torch.manual_seed(0)
    emb = Embedding(1000, 64)
    ids = torch.randint(0, 1000, (3, 7))
    torch.testing.assert_close(emb(ids), F.embedding(ids, emb.weight))
    assert emb.weight.abs().max() <= 3.0
    assert emb.weight.std().item() == pytest.approx(0.9866, rel=0.02)


def test_rmsnorm_matches_float64_formula_and_torch():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(16))
    x = torch.randn(3, 5, 16) * 10
    x64, g64 = x.double(), norm.weight.detach().double()
    expected = x64 / torch.sqrt((x64**2).mean(-1, keepdim=True) + 1e-5) * g64
    torch.testing.assert_close(norm(x).double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm(x), F.rms_norm(x, (16,), norm.weight, eps=1e-5), atol=1e-6, rtol=1e-5)
    assert torch.equal(RMSNorm(4).weight, torch.ones(4))


def test_rmsnorm_upcasts_half_precision_and_returns_input_dtype():
    norm = RMSNorm(8)
    x = torch.full((2, 8), 300.0, dtype=torch.float16)  # x² = 90000 overflows float16 (max 65504)
    out = norm(x)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), torch.ones(2, 8))


def test_silu_and_swiglu_match_functional_reference():
    torch.manual_seed(0)
    x = torch.randn(4, 9) * 5
    torch.testing.assert_close(silu(x), F.silu(x))
    ffn = SwiGLU(8, 24)
    h = torch.randn(2, 3, 8)
    w1, w2, w3 = ffn.w1.weight, ffn.w2.weight, ffn.w3.weight
    expected = F.linear(F.silu(F.linear(h, w1)) * F.linear(h, w3), w2)
    torch.testing.assert_close(ffn(h), expected)
    assert (w1.shape, w2.shape, w3.shape) == ((24, 8), (8, 24), (24, 8))


def test_softmax_matches_torch_and_survives_large_inputs():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5)
    for dim in (0, 1, -1):
        torch.testing.assert_close(softmax(x, dim), F.softmax(x, dim))
        torch.testing.assert_close(softmax(x + 100, dim), F.softmax(x, dim))
    assert torch.isfinite(softmax(torch.tensor([1e4, 0.0]), 0)).all()


def _rope_complex_reference(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE as multiplication of complex numbers x[2k] + i·x[2k+1] by exp(i · pos · theta^(-2k/d)), float64."""
    d = x.shape[-1]
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[..., None] * freqs
    rotation = torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(pairs * rotation).reshape(x.shape)


def test_rope_matches_complex_float64_reference_with_arbitrary_positions():
    torch.manual_seed(0)
    rope = RotaryPositionalEmbedding(10000.0, 16, max_seq_len=64)
    x = torch.randn(2, 3, 10, 16)
    positions = torch.randint(0, 64, (2, 1, 10))  # per-row, unsorted, broadcast over the head axis
    torch.testing.assert_close(
        rope(x, positions).double(), _rope_complex_reference(x, positions, 10000.0), atol=2e-6, rtol=1e-5
    )
    arange = torch.arange(10)
    torch.testing.assert_close(
        rope(x, arange).double(), _rope_complex_reference(x, arange, 10000.0), atol=2e-6, rtol=1e-5
    )


def test_half_split_rope_is_interleaved_rope_of_permuted_dimensions_and_keeps_attention_scores():
    """Interleaved pair k = (2k, 2k+1) is half-split pair k = (k, k + d/2): moving each dimension to its half-split
    place before and after the rotation gives the interleaved rotation, so q·k, the only place RoPE enters, is
    unchanged when queries and keys are permuted alike (what a model trained from scratch absorbs)."""
    torch.manual_seed(0)
    d = 16
    interleaved = RotaryPositionalEmbedding(10000.0, d, max_seq_len=32).double()
    half = RotaryPositionalEmbedding(10000.0, d, max_seq_len=32, half_split=True).double()
    to_half = torch.cat((torch.arange(0, d, 2), torch.arange(1, d, 2)))  # half-split slot j holds this interleaved dim
    q, k = torch.randn(2, 2, 9, d, dtype=torch.float64), torch.randn(2, 2, 9, d, dtype=torch.float64)
    positions = torch.randint(0, 32, (2, 1, 9))
    torch.testing.assert_close(half(q[..., to_half], positions), interleaved(q, positions)[..., to_half])
    scores = interleaved(q, positions) @ interleaved(k, positions).transpose(-1, -2)
    half_scores = half(q[..., to_half], positions) @ half(k[..., to_half], positions).transpose(-1, -2)
    torch.testing.assert_close(half_scores, scores)


def test_rope_is_identity_at_position_zero_and_preserves_norms():
    rope = RotaryPositionalEmbedding(500.0, 8, max_seq_len=8)
    x = torch.randn(5, 8)
    torch.testing.assert_close(rope(x, torch.zeros(5, dtype=torch.long)), x)
    out = rope(x, torch.arange(5))
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    assert "cos" not in rope.state_dict() and "sin" not in rope.state_dict()


def test_rope_rejects_odd_head_dim():
    with pytest.raises(ValueError, match="even"):
        RotaryPositionalEmbedding(10000.0, 7, 4)


@pytest.mark.parametrize("shape", [(4, 12, 16, 32), (2, 2, 12, 16, 8)])
def test_sdpa_matches_torch_with_boolean_mask(shape):
    torch.manual_seed(0)
    *lead, q_len, k_len, d = shape
    Q, K, V = torch.randn(*lead, q_len, d), torch.randn(*lead, k_len, d), torch.randn(*lead, k_len, d)
    mask = torch.randn(*lead, q_len, k_len) > -0.5
    mask[..., 0] = True  # every query sees at least one key
    expected = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    torch.testing.assert_close(scaled_dot_product_attention(Q, K, V, mask), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        scaled_dot_product_attention(Q, K, V), F.scaled_dot_product_attention(Q, K, V), atol=1e-6, rtol=1e-5
    )


def test_sdpa_fully_masked_row_is_nan_like_the_reference():
    Q, K, V = torch.randn(1, 2, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    mask = torch.tensor([[[True, False, True], [False, False, False]]])
    out = scaled_dot_product_attention(Q, K, V, mask)
    assert torch.isfinite(out[0, 0]).all() and torch.isnan(out[0, 1]).all()
