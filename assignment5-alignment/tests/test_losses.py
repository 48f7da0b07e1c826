"""Losses against float64 reference formulas written out element by element."""

import math

import pytest
import torch
from cs336_alignment.losses import (
    compute_entropy,
    compute_grpo_clip_loss,
    compute_naive_policy_gradient_loss,
    compute_policy_gradient_loss,
    dpo_loss,
    masked_mean,
    masked_normalize,
)


def test_entropy_matches_float64_definition():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 17) * 4
    got = compute_entropy(logits)
    p = torch.softmax(logits.double(), dim=-1)
    expected = -(p * p.log()).sum(-1)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


def test_entropy_is_stable_for_huge_logits():
    logits = torch.tensor([[300.0, 300.0, -300.0], [0.0, 0.0, 0.0]])
    got = compute_entropy(logits)
    torch.testing.assert_close(got, torch.tensor([math.log(2), math.log(3)]), rtol=0, atol=1e-4)
    assert torch.isfinite(compute_entropy(torch.tensor([[1e30, 0.0, -1e30]]))).all()


def test_masked_normalize_and_mean_match_loops():
    torch.manual_seed(1)
    x = torch.randn(4, 6)
    mask = torch.rand(4, 6) > 0.4
    mask[:, 0] = True
    for dim in (0, 1, -1):
        norm = masked_normalize(x, mask, 3.0, dim=dim)
        mean = masked_mean(x, mask, dim=dim)
        d = dim % 2
        for i in range(x.shape[1 - d]):
            vals = [
                float(x[i, j] if d == 1 else x[j, i])
                for j in range(x.shape[d])
                if (mask[i, j] if d == 1 else mask[j, i])
            ]
            assert norm[i].item() == pytest.approx(sum(vals) / 3.0, abs=1e-5)
            assert mean[i].item() == pytest.approx(sum(vals) / len(vals), abs=1e-5)
    all_vals = [float(v) for v, m in zip(x.flatten(), mask.flatten()) if m]
    assert masked_normalize(x, mask, 2.0).item() == pytest.approx(sum(all_vals) / 2, abs=1e-5)
    assert masked_mean(x, mask).item() == pytest.approx(sum(all_vals) / len(all_vals), abs=1e-5)


def test_masked_ops_ignore_non_finite_values_under_the_mask():
    x = torch.tensor([[1.0, float("inf")], [2.0, float("nan")]])
    mask = torch.tensor([[True, False], [True, False]])
    torch.testing.assert_close(masked_mean(x, mask, dim=1), torch.tensor([1.0, 2.0]))
    assert masked_normalize(x, mask).item() == 3.0


def test_naive_policy_gradient_broadcasts_reward():
    rewards = torch.tensor([[2.0], [-1.0]])
    logp = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.2, -0.3]])
    expected = torch.tensor([[1.0, 2.0, 4.0], [-0.1, -0.2, -0.3]])
    torch.testing.assert_close(compute_naive_policy_gradient_loss(rewards, logp), expected)


def test_grpo_clip_loss_matches_scalar_formula():
    torch.manual_seed(2)
    adv = torch.randn(3, 1)
    new = torch.randn(3, 7) * 0.3 - 1
    old = new + torch.randn(3, 7) * 0.3
    eps = 0.2
    loss, meta = compute_grpo_clip_loss(adv, new, old, eps)
    for b in range(3):
        for t in range(7):
            a = float(adv[b, 0])
            r = math.exp(float(new[b, t]) - float(old[b, t]))
            unclipped, clipped = r * a, min(max(r, 1 - eps), 1 + eps) * a
            assert loss[b, t].item() == pytest.approx(-min(unclipped, clipped), rel=1e-5, abs=1e-6)
            assert bool(meta["clipped"][b, t]) == (clipped < unclipped)


def test_grpo_clip_gradient_vanishes_outside_trust_region():
    new = torch.tensor([[math.log(2.0), math.log(1.05)]], requires_grad=True)
    old = torch.zeros(1, 2)
    loss, _ = compute_grpo_clip_loss(torch.tensor([[1.0]]), new, old, 0.2)
    loss.sum().backward()
    # ratio 2 > 1.2 with A > 0: clipped, no gradient; ratio 1.05 inside: d(-r)/d(logp) = -r
    torch.testing.assert_close(new.grad, torch.tensor([[0.0, -1.05]]))


def test_policy_gradient_dispatch_and_argument_checks():
    logp = torch.randn(2, 4)
    rewards, adv = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.5], [-0.5]])
    loss, _ = compute_policy_gradient_loss(logp, "no_baseline", raw_rewards=rewards)
    torch.testing.assert_close(loss, -rewards * logp)
    loss, _ = compute_policy_gradient_loss(logp, "reinforce_with_baseline", advantages=adv)
    torch.testing.assert_close(loss, -adv * logp)
    loss, meta = compute_policy_gradient_loss(logp, "grpo_clip", advantages=adv, old_log_probs=logp, cliprange=0.2)
    torch.testing.assert_close(loss, -adv.expand(2, 4))
    assert not meta["clipped"].any()
    loss, _ = compute_policy_gradient_loss(logp, "grpo_no_clip", advantages=adv, old_log_probs=logp - 1)
    torch.testing.assert_close(loss, -math.e * adv.expand(2, 4))
    with pytest.raises(ValueError, match="raw_rewards"):
        compute_policy_gradient_loss(logp, "no_baseline", advantages=adv)
    with pytest.raises(ValueError, match="old_log_probs"):
        compute_policy_gradient_loss(logp, "grpo_clip", advantages=adv, cliprange=0.2)
    with pytest.raises(ValueError, match="unknown loss_type"):
        compute_policy_gradient_loss(logp, "ppo", advantages=adv)


def test_dpo_loss_formula():
    got = dpo_loss(torch.tensor(-10.0), torch.tensor(-12.0), torch.tensor(-11.0), torch.tensor(-11.5), beta=0.5)
    margin = (-10 + 11) - (-12 + 11.5)
    assert got.item() == pytest.approx(math.log(1 + math.exp(-0.5 * margin)), rel=1e-6)
