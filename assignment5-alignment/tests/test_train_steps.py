"""Micro-batch steps: loss values and accumulated gradients against float64 hand computations."""

import pytest
import torch
from cs336_alignment.train_steps import grpo_microbatch_train_step, sft_microbatch_train_step


def _inputs(seed=0):
    torch.manual_seed(seed)
    logp = torch.randn(3, 6) - 2
    mask = torch.rand(3, 6) > 0.4
    mask[:, 2] = True
    return logp, mask


def test_sft_step_loss_and_gradient():
    logp, mask = _inputs()
    leaf = logp.clone().requires_grad_(True)
    loss, meta = sft_microbatch_train_step(leaf, mask, gradient_accumulation_steps=4, normalize_constant=2.0)
    b, gas, c = 3, 4, 2.0
    expected = -sum(float(logp[i, j]) for i in range(3) for j in range(6) if mask[i, j]) / c / b / gas
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(leaf.grad.double(), -mask.double() / (c * b * gas))
    tokens = int(mask.sum())
    assert meta["nll_per_token"].item() == pytest.approx(-float((logp * mask).sum()) / tokens, rel=1e-5)


def test_sft_step_accumulates_gradients_across_calls():
    logp, mask = _inputs(1)
    leaf = logp.clone().requires_grad_(True)
    for _ in range(3):
        sft_microbatch_train_step(leaf, mask, gradient_accumulation_steps=3)
    torch.testing.assert_close(leaf.grad, -mask.float() / 3)  # three calls of 1/(B*3) each, B=3


def test_grpo_step_masked_mean_loss_and_gradient():
    logp, mask = _inputs(2)
    adv = torch.tensor([[1.0], [-0.5], [2.0]])
    leaf = logp.clone().requires_grad_(True)
    loss, _ = grpo_microbatch_train_step(leaf, mask, 2, "reinforce_with_baseline", advantages=adv)
    per_seq = []
    for i in range(3):
        toks = [j for j in range(6) if mask[i, j]]
        per_seq.append(sum(-float(adv[i, 0]) * float(logp[i, j]) for j in toks) / len(toks))
    assert loss.item() == pytest.approx(sum(per_seq) / 3 / 2, rel=1e-5)
    expected_grad = torch.zeros(3, 6, dtype=torch.float64)
    for i in range(3):
        n = int(mask[i].sum())
        expected_grad[i] = -float(adv[i, 0]) * mask[i].double() / (n * 3 * 2)
    torch.testing.assert_close(leaf.grad.double(), expected_grad)


def test_grpo_step_constant_length_normalisation_weights_tokens_equally():
    logp, mask = _inputs(3)
    adv = torch.ones(3, 1)
    leaf = logp.clone().requires_grad_(True)
    grpo_microbatch_train_step(
        leaf, mask, 1, "reinforce_with_baseline", advantages=adv, length_normalization="constant", normalize_constant=6
    )
    torch.testing.assert_close(leaf.grad.double(), -mask.double() / (6 * 3))
    with pytest.raises(ValueError, match="normalize_constant"):
        grpo_microbatch_train_step(
            logp.clone().requires_grad_(True), mask, 1, "no_baseline", raw_rewards=adv, length_normalization="constant"
        )


def test_grpo_step_reports_clip_fraction_over_response_tokens():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[2.0, 1.0, 2.0, 2.0]])).requires_grad_(True)
    mask = torch.tensor([[True, True, True, False]])
    _, meta = grpo_microbatch_train_step(
        new, mask, 1, "grpo_clip", advantages=torch.ones(1, 1), old_log_probs=old, cliprange=0.2
    )
    assert meta["clip_fraction"].item() == pytest.approx(2 / 3)
