"""Tiled PyTorch FlashAttention-2 against float64 naive attention."""

import pytest
import torch
from cs336_systems.flash_attention import FlashAttentionPytorch
from cs336_systems.flash_attention.reference import naive_attention

from tests.flash_attention_checks import float64_reference, random_qkv, relative_error, saved_logsumexp

SHAPES = [  # (Q shape, n_keys): the course case, ragged tiles, more keys than queries, fewer keys
    ((4, 128, 64), 128),
    ((2, 100, 32), 100),
    ((1, 70, 16), 130),
    ((1, 130, 16), 50),
]


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize(("shape_q", "n_keys"), SHAPES)
def test_forward_and_gradients_match_float64_reference(shape_q, n_keys, is_causal):
    q, k, v = random_qkv(shape_q, n_keys, torch.float32, "cpu", seed=sum(shape_q) + n_keys)
    out = FlashAttentionPytorch.apply(q, k, v, is_causal)
    lse = saved_logsumexp(out, shape_q[:-1])
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    ref_out, ref_lse, ref_dq, ref_dk, ref_dv = float64_reference(q, k, v, grad_out, is_causal)

    assert out.dtype == lse.dtype == q.grad.dtype == torch.float32
    for name, actual, expected in [
        ("O", out, ref_out),
        ("L", lse, ref_lse),
        ("dQ", q.grad, ref_dq),
        ("dK", k.grad, ref_dk),
        ("dV", v.grad, ref_dv),
    ]:
        assert relative_error(actual, expected) < 1e-5, name


def test_saves_q_k_v_o_and_l_and_returns_o_directly():
    q, k, v = random_qkv((2, 64, 16), 64, torch.float32, "cpu", seed=1)
    out = FlashAttentionPytorch.apply(q, k, v, True)
    assert type(out.grad_fn).__name__ == "FlashAttentionPytorchBackward"
    assert out.grad_fn.is_causal is True
    saved = out.grad_fn.saved_tensors
    assert len(saved) == 5
    assert [t.data_ptr() for t in saved[:4]] == [q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr()]


def test_four_dimensional_heads_match_folded_batch():
    q, k, v = random_qkv((2, 3, 40, 16), 40, torch.float32, "cpu", seed=2)
    out = FlashAttentionPytorch.apply(q, k, v, True)
    folded = FlashAttentionPytorch.apply(q.reshape(6, 40, 16), k.reshape(6, 40, 16), v.reshape(6, 40, 16), True)
    assert out.shape == q.shape
    torch.testing.assert_close(out.reshape(6, 40, 16), folded)
    saved_logsumexp(out, (2, 3, 40))


def test_causal_matches_handout_reference_that_adds_minus_1e6():
    q, k, v = random_qkv((3, 96, 32), 96, torch.float32, "cpu", seed=3)
    torch.testing.assert_close(
        FlashAttentionPytorch.apply(q, k, v, True), naive_attention(q, k, v, True), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(("shape_k", "message"), [((2, 8, 32), "head size"), ((3, 8, 16), "leading dims")])
def test_mismatched_shapes_raise_clear_errors(shape_k, message):
    q = torch.randn(2, 8, 16)
    k = torch.randn(shape_k)
    with pytest.raises(ValueError, match=message):
        FlashAttentionPytorch.apply(q, k, k, False)
