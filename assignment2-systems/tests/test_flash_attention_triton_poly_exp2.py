"""The opt-in polynomial exponentials of the forward (``ForwardConfig(poly_exp2=True)``: half of each key tile's
``exp2`` on the FMA units, FlashAttention-4's trick). One file, so a GPU run selects exactly these:
``pytest tests/test_flash_attention_triton_poly_exp2.py``.

``poly_exp2`` is checked by itself through a small jitted kernel (the interpreter here, the compiler on a GPU: the
integer bit casts must work in both). The forward takes 16-bit inputs only; without a GPU it runs in float16, whose
``tl.dot`` the interpreter computes right (float16 operands, float32 accumulation; its bfloat16 dot is not), and on a
GPU in bfloat16 at the tiles of the leaderboard case too.
"""

import os

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton
import triton.language as tl
from cs336_systems.flash_attention import triton_function
from cs336_systems.flash_attention.triton_function import ForwardConfig, launch_forward

from tests.flash_attention_checks import float64_reference, random_qkv, relative_error

poly_exp2 = triton_function._kernels().poly_exp2  # after TRITON_INTERPRET is set: interpreted without a GPU

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHAPES = [((2, 100, 32), 100), ((1, 70, 16), 130), ((1, 130, 16), 50)]  # ragged tiles, more and fewer keys (as TMA's)
INTERPRETED_FORWARD = ForwardConfig(32, 32, 4, 1)  # key halves of 16, tl.dot's minimum
GPU_FORWARD = ForwardConfig(128, 128, 4, 3)  # the TMA forward's best pinned tiles at the leaderboard case
POLY_MAX_RELATIVE_ERROR = 8.6e-5
"""The degree-3 minimax fit's float64 error is 8.56e-5; float32 evaluation adds a few ulps (2^-24 each)."""
SMALLEST_NORMAL = 2.0**-126
L_TOLERANCE = 2e-5 if DEVICE == "cpu" else 1e-4
"""L against float64 and the exp2 forward: 1.6e-6 measured in the interpreter (the polynomial's error through the row
sums); the GPU's ``exp2`` and ``log2`` are approximations of their own, so a margin there."""


@triton.jit
def _apply_poly_exp2(X, Y, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = offs < n
    tl.store(Y + offs, poly_exp2(tl.load(X + offs, mask=valid)), mask=valid)


def _poly_exp2(x: np.ndarray) -> np.ndarray:
    """``poly_exp2`` of float32 ``x``, through the jitted kernel."""
    inputs = torch.from_numpy(x.astype(np.float32)).to(DEVICE)
    outputs = torch.empty_like(inputs)
    block = 1024
    _apply_poly_exp2[(triton.cdiv(inputs.numel(), block),)](inputs, outputs, inputs.numel(), BLOCK=block)
    return outputs.cpu().numpy()


def test_poly_exp2_relative_error_on_a_dense_grid():
    """Every float32 step of [-1, 0] near 0 and a dense grid over the range softmax inputs take (scores minus the
    row max are <= 0; a fused multiply-add may leave them a few ulps above)."""
    grid = np.concatenate(
        [
            np.linspace(-126.0, 4.0, 1_300_001),
            -np.logspace(-30, 0, 20_001),
            np.nextafter(np.float32(0), np.float32(1), dtype=np.float32) * np.arange(1, 100),
            [0.0, -0.0, np.nextafter(np.float32(0), np.float32(-1), dtype=np.float32), -1.0, -2.0, -126.0],
        ]
    ).astype(np.float32)
    actual = _poly_exp2(grid).astype(np.float64)
    expected = np.exp2(grid.astype(np.float64))
    assert np.abs(actual / expected - 1).max() < POLY_MAX_RELATIVE_ERROR


def test_poly_exp2_gives_exact_zero_below_its_floor_and_nothing_odd_just_above():
    """Masked scores are -inf: their probabilities must be exactly 0. Between the floor (-127) and the smallest
    normal exponent the result is a denormal or zero, never negative, NaN or large."""
    below = np.array([-np.inf, -3.4e38, -1e30, -1000.0, -200.0, -128.0, -127.5, -127.0], dtype=np.float32)
    assert np.array_equal(_poly_exp2(below), np.zeros_like(below))
    assert not np.signbit(_poly_exp2(below)).any()
    just_above = np.linspace(-127.0, -126.0, 10_001, dtype=np.float32)
    result = _poly_exp2(just_above)
    assert np.isfinite(result).all() and (result >= 0).all() and (result <= SMALLEST_NORMAL).all()


def _pinned_forward(q, k, v, is_causal, config):
    """O and L of one pinned forward launch on ``(batch, n, d)`` tensors."""
    out, lse = torch.empty_like(q), torch.empty(q.shape[:2], device=q.device)
    launch_forward(q, k, v, out, lse, is_causal, config)
    return out, lse


def _with(config: ForwardConfig, **changes) -> ForwardConfig:
    return ForwardConfig(**{**config.__dict__, **changes})


@pytest.mark.parametrize(("shape_q", "n_keys"), SHAPES)
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("tma", [False, True])
def test_poly_forward_matches_the_reference_and_the_exp2_forward(shape_q, n_keys, is_causal, tma):
    """float16: O within its rounding of the float64 reference, and of the forward with only ``exp2``; L (float32,
    where the polynomial's error shows through the row sums) within ``L_TOLERANCE``."""
    q, k, v = (x.detach() for x in random_qkv(shape_q, n_keys, torch.float16, DEVICE, seed=40 + is_causal))
    ref_out, ref_lse, *_ = float64_reference(q, k, v, torch.zeros(q.shape), is_causal)
    config = _with(INTERPRETED_FORWARD, tma=tma)
    out, lse = _pinned_forward(q, k, v, is_causal, _with(config, poly_exp2=True))
    exp2_out, exp2_lse = _pinned_forward(q, k, v, is_causal, config)
    assert relative_error(out.cpu(), ref_out) < 2e-3
    assert relative_error(lse.cpu(), ref_lse) < L_TOLERANCE
    assert relative_error(out, exp2_out) < 2e-3
    assert relative_error(lse, exp2_lse) < L_TOLERANCE


@pytest.mark.skipif(DEVICE != "cuda", reason="bf16 tl.dot needs a GPU (the interpreter mishandles it)")
@pytest.mark.parametrize("tma", [False, True])
def test_poly_forward_in_bfloat16_on_gpu(tma):
    """The leaderboard case's tiles, causal, on ragged lengths."""
    q, k, v = (x.detach() for x in random_qkv((4, 1000, 64), 1000, torch.bfloat16, DEVICE, seed=44))
    ref_out, ref_lse, *_ = float64_reference(q, k, v, torch.zeros(q.shape), True)
    config = _with(GPU_FORWARD, tma=tma)
    out, lse = _pinned_forward(q, k, v, True, _with(config, poly_exp2=True))
    exp2_out, exp2_lse = _pinned_forward(q, k, v, True, config)
    assert relative_error(out.cpu(), ref_out) < 2e-2
    assert relative_error(lse.cpu(), ref_lse) < 1e-4
    assert relative_error(out, exp2_out) < 1e-2
    assert relative_error(lse, exp2_lse) < 1e-4


def test_poly_forward_rejects_float32():
    x, lse = torch.zeros(1, 32, 16, device=DEVICE), torch.zeros(1, 32, device=DEVICE)
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        launch_forward(x, x, x, x, lse, True, _with(INTERPRETED_FORWARD, poly_exp2=True))


def test_poly_forward_needs_key_tiles_of_at_least_32():
    with pytest.raises(ValueError, match="block_n must be >= 32; got 16"):
        ForwardConfig(32, 16, poly_exp2=True)
