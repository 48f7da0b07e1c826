"""The Triton kernels on strided Q, K, V, O, dO: the model's layout read where it lies, outputs in the inputs' layouts.

Without a GPU the kernels run in Triton's interpreter (float32: the interpreter mishandles bf16 ``tl.dot``), where
the strided path computes exactly what the contiguous path does, tile for tile.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from cs336_systems.flash_attention import FlashAttentionTriton
from cs336_systems.flash_attention.triton_function import ForwardConfig, launch_forward

from tests.flash_attention_checks import float64_reference, relative_error

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOLERANCE = 5e-3 if DEVICE == "cuda" else 1e-5  # TF32 dots on the GPU, true float32 in the interpreter
BATCH, SEQ, HEADS, HEAD_DIM = 2, 40, 3, 16  # 40: ragged tiles


def _model_layout(seed: int, seq: int = SEQ) -> torch.Tensor:
    """A ``(batch, heads, seq, d)`` view of a ``(batch, seq, heads * d)`` projection, as the model makes Q, K, V."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, seq, HEADS * HEAD_DIM, generator=generator).to(DEVICE)
    return x.view(BATCH, seq, HEADS, HEAD_DIM).transpose(1, 2).requires_grad_()


def _odd_strides(seed: int) -> torch.Tensor:
    """Rows 17 elements apart: strides the kernels do not take, so the launcher copies."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, SEQ, HEAD_DIM + 1, generator=generator).to(DEVICE)[..., :HEAD_DIM].requires_grad_()


def _forward_backward(q, k, v, grad_out, is_causal):
    """O, dQ, dK, dV exactly as the Function returns them (``autograd.grad`` hands back the backward's tensors)."""
    out = FlashAttentionTriton.apply(q, k, v, is_causal)
    return out, *torch.autograd.grad(out, (q, k, v), grad_out)


def _leaves(*tensors):
    return [t.detach().contiguous().requires_grad_() for t in tensors]


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda seed: _model_layout(seed), id="model-layout"),
        pytest.param(lambda seed: _model_layout(seed).detach().contiguous().requires_grad_(), id="4d-contiguous"),
        pytest.param(
            lambda seed: (
                torch.randn(BATCH * HEADS, SEQ, HEAD_DIM, generator=torch.Generator().manual_seed(seed))
                .to(DEVICE)
                .requires_grad_()
            ),
            id="3d-contiguous",
        ),
        pytest.param(_odd_strides, id="copied-odd-strides"),
    ],
)
def test_strided_inputs_match_float64_and_the_contiguous_path(make, is_causal):
    q, k, v = make(1), make(2), make(3)
    grad_out = torch.randn(*q.shape[:-1], 2 * HEAD_DIM, generator=torch.Generator().manual_seed(4))[..., :HEAD_DIM]
    grad_out = grad_out.to(DEVICE)  # strided rows, read where they lie
    results = _forward_backward(q, k, v, grad_out, is_causal)
    expected = float64_reference(q, k, v, grad_out, is_causal)
    contiguous = _forward_backward(*_leaves(q, k, v), grad_out.contiguous(), is_causal)
    for name, actual, reference, plain in zip(
        ("O", "dQ", "dK", "dV"), results, (expected[0], *expected[2:]), contiguous, strict=True
    ):
        assert relative_error(actual.detach().cpu(), reference) < TOLERANCE, name
        if DEVICE == "cpu":
            assert torch.equal(actual, plain), f"{name} differs from the contiguous path's"


@pytest.mark.parametrize("make", [_model_layout, lambda seed: _model_layout(seed).detach().contiguous()])
def test_outputs_take_the_inputs_layouts(make):
    """dQ, dK, dV in Q's, K's and V's layouts, O in V's: in the model's layout the output rearrange is a view."""
    q = make(5).detach().contiguous().requires_grad_()  # the model's Q after RoPE
    k, v = make(6).requires_grad_(), make(7).requires_grad_()
    out, dq, dk, dv = _forward_backward(q, k, v, torch.randn_like(q), True)
    assert out.stride() == v.stride()
    assert (dq.stride(), dk.stride(), dv.stride()) == (q.stride(), k.stride(), v.stride())


def test_a_broadcast_output_gradient_is_copied():
    """``o.sum().backward()`` sends a stride-0 dO, which the kernels cannot read (its last dim is not contiguous)."""
    q, k, v = _model_layout(8), _model_layout(9), _model_layout(10)
    out = FlashAttentionTriton.apply(q, k, v, True)
    dq, dk, dv = torch.autograd.grad(out.sum(), (q, k, v))
    _, _, ref_dq, ref_dk, ref_dv = float64_reference(q, k, v, torch.ones(q.shape), True)
    for name, actual, expected in [("dQ", dq, ref_dq), ("dK", dk, ref_dk), ("dV", dv, ref_dv)]:
        assert relative_error(actual.cpu(), expected) < TOLERANCE, name


def test_leading_dims_fold_into_batch():
    """A 5-D input (two batch dims, then heads) in the model's layout: the batch dims fold into one as a view."""
    q, k, v = (_model_layout(seed).detach().reshape(1, BATCH, SEQ, HEADS, HEAD_DIM) for seed in (11, 12, 13))
    q, k, v = (t.transpose(2, 3).requires_grad_() for t in (q, k, v))
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(14)).to(DEVICE)
    results = _forward_backward(q, k, v, grad_out, True)
    out, _, ref_dq, ref_dk, ref_dv = float64_reference(q, k, v, grad_out, True)
    for name, actual, expected in zip(("O", "dQ", "dK", "dV"), results, (out, ref_dq, ref_dk, ref_dv), strict=True):
        assert relative_error(actual.detach().cpu(), expected) < TOLERANCE, name
    assert results[1].stride() == q.stride()


@pytest.mark.parametrize("tma", [False, True])
def test_pinned_forward_on_the_models_layout(tma):
    """The tuning path's launcher, pointer and TMA forwards (descriptors built on the sequence stride)."""
    q, k, v = (_model_layout(seed).detach() for seed in (15, 16, 17))
    out, lse = torch.empty_like(v), torch.empty(BATCH, HEADS, SEQ, device=DEVICE)
    launch_forward(q, k, v, out, lse, True, ForwardConfig(32, 16, 4, 1, tma=tma))
    ref_out, ref_lse, *_ = float64_reference(q, k, v, torch.zeros(q.shape), True)
    assert relative_error(out.cpu(), ref_out) < TOLERANCE
    assert relative_error(lse.cpu(), ref_lse) < TOLERANCE


def test_launchers_reject_strides_they_cannot_take():
    """The launchers write outputs in place and time inputs as given, so they raise where the eager path copies."""
    q = _odd_strides(18).detach()
    with pytest.raises(ValueError, match="multiples of 16"):
        launch_forward(q, q, q, torch.empty_like(q), torch.empty(BATCH, SEQ, device=DEVICE), False)
    unfoldable = torch.empty(BATCH, 2, HEADS, SEQ, HEAD_DIM, device=DEVICE).transpose(0, 1)  # batch dims swapped
    lse = torch.empty(2, BATCH, HEADS, SEQ, device=DEVICE)
    with pytest.raises(ValueError, match="fold into one"):
        launch_forward(unfoldable, unfoldable, unfoldable, torch.empty_like(unfoldable), lse, False)


@pytest.mark.skipif(DEVICE != "cuda", reason="Inductor launches the Triton kernels on CUDA only")
def test_compiled_on_the_models_layout():
    """The ``triton_op`` path: the strides of the traced tensors reach the kernels from Inductor's generated code."""
    compiled = torch.compile(FlashAttentionTriton.apply, fullgraph=True)
    q, k, v = _model_layout(19), _model_layout(20), _model_layout(21)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(22)).to(DEVICE)
    out = compiled(q, k, v, True)
    results = (out, *torch.autograd.grad(out, (q, k, v), grad_out))
    ref_out, _, ref_dq, ref_dk, ref_dv = float64_reference(q, k, v, grad_out, True)
    for name, actual, expected in zip(("O", "dQ", "dK", "dV"), results, (ref_out, ref_dq, ref_dk, ref_dv), strict=True):
        assert relative_error(actual.detach().cpu(), expected) < TOLERANCE, name
