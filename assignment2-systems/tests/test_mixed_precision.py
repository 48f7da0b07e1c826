"""The mixed-precision experiments against numpy's IEEE half and single precision."""

import numpy as np
import torch
from cs336_systems.mixed_precision import accumulation_sums, autocast_dtypes


def _numpy_sum(accumulator: type, term: type) -> float:
    s = accumulator(0)
    for _ in range(1000):
        s = accumulator(s + accumulator(term(0.01)))
    return float(s)


def test_accumulation_sums_match_numpy():
    sums = accumulation_sums()
    assert sums["fp32 += fp32"] == _numpy_sum(np.float32, np.float32)
    assert sums["fp16 += fp16"] == _numpy_sum(np.float16, np.float16) == 9.953125
    # fp16(0.01) = 1311 · 2^-17: a thousand of them summed in fp32 carry the representation error, not rounding.
    assert sums["fp32 += fp16"] == sums["fp32 += fp16.to(fp32)"] == _numpy_sum(np.float32, np.float16)
    assert abs(sums["fp32 += fp16"] - 1000 * 1311 * 2**-17) < 1e-4


def test_autocast_keeps_parameters_loss_and_gradients_in_float32():
    for dtype in [torch.float16, torch.bfloat16]:
        seen = autocast_dtypes("cpu", dtype)
        assert seen["parameters"] == seen["loss"] == seen["gradients"] == torch.float32
        assert seen["fc1 output"] == seen["logits"] == dtype
