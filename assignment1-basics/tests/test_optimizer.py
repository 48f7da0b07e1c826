"""AdamW against torch.optim.AdamW over many steps; the cosine schedule against the spec's listed values."""

import math

import pytest
import torch
from cs336_basics.optimizer import AdamW, lr_cosine_schedule


def _train(opt_cls, steps=600, **kwargs):
    torch.manual_seed(42)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8, bias=True), torch.nn.Tanh(), torch.nn.Linear(8, 2, bias=False))
    opt = opt_cls(model.parameters(), **kwargs)
    for _ in range(steps):
        x = torch.rand(16, 3)
        y = torch.stack([x[:, 0] + x[:, 1], -x[:, 2]], dim=1)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.5])
def test_adamw_matches_torch_adamw_over_600_steps(weight_decay):
    kwargs = dict(lr=1e-3, weight_decay=weight_decay, betas=(0.9, 0.999), eps=1e-8)
    for ours, theirs in zip(_train(AdamW, **kwargs), _train(torch.optim.AdamW, **kwargs)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_adamw_first_step_matches_hand_computation():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AdamW([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    p.grad = torch.tensor([0.5, 0.25])
    opt.step()
    # t=1: decay θ(1 - lr·λ); m = 0.1g, v = 0.01g², α = lr·sqrt(0.01)/0.1 = lr → step = lr·g/(|g| + eps)
    decayed = torch.tensor([1.0, -2.0]) * (1 - 0.1 * 0.5)
    expected = decayed - 0.1 * (0.1 * p.grad) / (torch.sqrt(0.01 * p.grad**2) + 1e-8)
    torch.testing.assert_close(p.detach(), expected)
    assert opt.state[p]["step"] == 1


def test_adamw_skips_parameters_without_grad_and_validates_arguments():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = AdamW([a, b], lr=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and b not in opt.state
    with pytest.raises(ValueError):
        AdamW([a], lr=-1.0)
    with pytest.raises(ValueError):
        AdamW([a], betas=(1.0, 0.9))


def test_cosine_schedule_matches_listed_values():
    expected = [
        0,
        0.14285714285714285,
        0.2857142857142857,
        0.42857142857142855,
        0.5714285714285714,
        0.7142857142857143,
        0.8571428571428571,
        1.0,
        0.9887175604818206,
        0.9554359905560885,
        0.9018241671106134,
        0.8305704108364301,
        0.7452476826029011,
        0.6501344202803414,
        0.55,
        0.44986557971965857,
        0.3547523173970989,
        0.26942958916356996,
        0.19817583288938662,
        0.14456400944391146,
        0.11128243951817937,
        0.1,
        0.1,
        0.1,
        0.1,
    ]
    actual = [lr_cosine_schedule(it, 1.0, 0.1, 7, 21) for it in range(25)]
    assert actual == pytest.approx(expected, rel=1e-7, abs=0)
    # independent closed form on a different configuration
    for it in range(10, 101):
        want = 0.01 + 0.5 * (1 + math.cos(math.pi * (it - 10) / 90)) * (3.0 - 0.01)
        assert lr_cosine_schedule(it, 3.0, 0.01, 10, 100) == pytest.approx(want, rel=1e-12)
    assert lr_cosine_schedule(101, 3.0, 0.01, 10, 100) == 0.01
