"""The shared optimiser: AdamW on float32 weights, with a warning when the weights are bf16 or fp16."""

import warnings

import pytest
import torch
from cs336_alignment.optim import clip_and_step, make_optimizer


def _layer(dtype: torch.dtype) -> torch.nn.Linear:
    layer = torch.nn.Linear(8, 8, bias=False).to(dtype)
    with torch.no_grad():
        layer.weight.fill_(0.1)
    return layer


def _one_step(layer: torch.nn.Linear, lr: float) -> torch.Tensor:
    before = layer.weight.detach().clone()
    optimizer = make_optimizer(layer, lr)
    layer(torch.ones(2, 8, dtype=layer.weight.dtype)).sum().backward()
    clip_and_step(optimizer, 1.0)
    return layer.weight.detach() - before


def test_bf16_weights_lose_small_adam_updates_and_the_optimiser_warns():
    # Adam's first update is lr per weight; half a bf16 ulp at 0.1 is 2**-12 = 2.4e-4
    with pytest.warns(UserWarning, match="bfloat16 weights"):
        assert torch.all(_one_step(_layer(torch.bfloat16), 2e-5) == 0)
    with pytest.warns(UserWarning, match="bfloat16 weights"):
        assert torch.all(_one_step(_layer(torch.bfloat16), 1e-3) != 0)


def test_float32_weights_take_small_adam_updates_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step = _one_step(_layer(torch.float32), 2e-5)
    assert torch.allclose(step, torch.full_like(step, -2e-5), rtol=1e-3)
