"""Shared helpers for the FlashAttention tests: random inputs and a float64 reference."""

import torch
from cs336_systems.flash_attention.reference import naive_attention_with_logsumexp
from torch import Tensor

ON_HOPPER = torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9
"""The Gluon kernels' GPU tests run on Hopper only (wgmma, TMA, setmaxnreg)."""
GLUON_CASE = {
    "capability": (9, 0),
    "dtypes": ("torch.bfloat16",) * 3,
    "is_causal": True,
    "head_dim": 64,
    "rows": 64,
}
"""A case both Gluon kernels take, less its lengths (their refusal functions' keyword arguments)."""


def relative_error(actual: Tensor, expected: Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ in float64; NaN never passes a ``<`` comparison."""
    return ((actual.double() - expected.double()).norm() / expected.double().norm()).item()


def random_qkv(shape_q: tuple[int, ...], n_keys: int, dtype: torch.dtype, device: str, seed: int) -> list[Tensor]:
    """Fresh normal Q, K, V leaves with ``requires_grad``; K and V share Q's leading dims and head size."""
    generator = torch.Generator().manual_seed(seed)
    shape_k = (*shape_q[:-2], n_keys, shape_q[-1])
    return [
        torch.randn(shape, generator=generator).to(device=device, dtype=dtype).requires_grad_()
        for shape in (shape_q, shape_k, shape_k)
    ]


def float64_reference(
    q: Tensor, k: Tensor, v: Tensor, grad_out: Tensor, is_causal: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """O, L, dQ, dK, dV of naive attention computed in float64 on the CPU by autograd."""
    q64, k64, v64 = (x.detach().cpu().double().requires_grad_() for x in (q, k, v))
    out, lse = naive_attention_with_logsumexp(q64, k64, v64, is_causal)
    out.backward(grad_out.detach().cpu().double())
    return out.detach(), lse.detach(), q64.grad, k64.grad, v64.grad


def saved_logsumexp(out: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The one saved tensor of shape ``shape`` (how the course tests find L); fails if there are 0 or 2+."""
    matches = [t for t in out.grad_fn.saved_tensors if t.shape == shape]
    assert len(matches) == 1, f"expected exactly one saved tensor of shape {shape}, found {len(matches)}"
    return matches[0]
