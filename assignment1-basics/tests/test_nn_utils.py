"""Cross-entropy and gradient clipping against torch.nn.functional and torch.nn.utils."""

import torch
import torch.nn.functional as F
from cs336_basics.nn_utils import cross_entropy, gradient_clipping


def test_cross_entropy_matches_torch_including_huge_logits():
    torch.manual_seed(0)
    logits, targets = torch.randn(8, 5), torch.randint(0, 5, (8,))
    torch.testing.assert_close(cross_entropy(logits, targets), F.cross_entropy(logits, targets))
    big = logits * 1000
    torch.testing.assert_close(cross_entropy(big, targets), F.cross_entropy(big, targets))
    assert torch.isfinite(cross_entropy(big, targets))


def test_cross_entropy_averages_over_all_leading_dims_and_backprops():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7, requires_grad=True)
    targets = torch.randint(0, 7, (2, 3))
    ours = cross_entropy(logits, targets)
    (grad,) = torch.autograd.grad(ours, logits)
    reference = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    (ref_grad,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(grad, ref_grad)


def test_cross_entropy_of_bf16_logits_is_computed_in_float32():
    torch.manual_seed(0)
    logits, targets = (torch.randn(64, 1000) * 4).bfloat16(), torch.randint(0, 1000, (64,))
    loss = cross_entropy(logits, targets)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, F.cross_entropy(logits.float(), targets))


def _params_with_grads(seed):
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s)) for s in ((5, 3), (4,), (2, 2, 2))]
    for p in params:
        p.grad = torch.randn_like(p) * 3
    params.append(torch.nn.Parameter(torch.randn(3)))  # grad None: must be skipped
    return params


def test_gradient_clipping_matches_clip_grad_norm():
    for max_norm in (0.5, 1e4):  # clipped, and left alone
        ours, theirs = _params_with_grads(0), _params_with_grads(0)
        norm = gradient_clipping(iter(ours), max_norm)  # a one-shot iterator must work
        torch_norm = torch.nn.utils.clip_grad_norm_([p for p in theirs if p.grad is not None], max_norm)
        torch.testing.assert_close(norm, torch_norm)
        for a, b in zip(ours, theirs):
            if b.grad is None:
                assert a.grad is None
            else:
                torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=0)


def test_gradient_clipping_of_mixed_dtypes_uses_float32_norms_and_each_gradients_dtype():
    torch.manual_seed(1)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(6).bfloat16())]
    for p in params:
        p.grad = torch.randn_like(p) * 5
    grads = [p.grad.clone() for p in params]
    expected_norm = torch.cat([g.float().flatten() for g in grads]).norm()
    norm = gradient_clipping(params, 1.0)
    torch.testing.assert_close(norm, expected_norm)
    for p, g in zip(params, grads):
        assert p.grad.dtype == g.dtype
        torch.testing.assert_close(p.grad, g * (1.0 / (expected_norm + 1e-6)).to(g.dtype))


def test_cross_entropy_gradient_matches_float64_autograd_for_bf16_and_huge_logits():
    """The hand-written backward against autograd through a float64 log-softmax (and finite for 1e3+ logits)."""
    torch.manual_seed(0)
    targets = torch.randint(0, 50, (4, 6))
    for scale, dtype, tol in ((1.0, torch.float32, 1e-6), (1000.0, torch.float32, 1e-6), (3.0, torch.bfloat16, 5e-4)):
        base = torch.randn(4, 6, 50) * scale
        logits = base.to(dtype).requires_grad_()
        (grad,) = torch.autograd.grad(cross_entropy(logits, targets), logits)
        exact = logits.detach().double().requires_grad_()
        loss = -torch.log_softmax(exact, dim=-1).gather(-1, targets.unsqueeze(-1)).mean()
        (exact_grad,) = torch.autograd.grad(loss, exact)
        assert grad.dtype == dtype and torch.isfinite(grad).all()
        torch.testing.assert_close(grad.double(), exact_grad, atol=tol, rtol=0)
