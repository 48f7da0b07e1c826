"""One run: the held-out evaluation (windows spread over the split, scored with torch's loss), token-file checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cs336_basics.model import TransformerLM
from cs336_scaling.model_shape import model_config
from cs336_scaling.run_spec import RunSpec
from cs336_scaling.training_run import ScaleConfig, TrainingSetup, execute_run, held_out_loss


def test_held_out_loss_averages_windows_spread_over_the_split():
    context, count = 16, 5
    setup = TrainingSetup(
        tokens_path="unused", vocab_size=256, scale=ScaleConfig(context_length=context), eval_sequences=count
    )
    rng = np.random.default_rng(0)
    validation = rng.integers(0, 256, 1000).astype(np.uint16)
    torch.manual_seed(0)
    spec = RunSpec(d_model=64, num_layers=2, num_heads=2, batch_size=128, learning_rate=1e-3, train_flops=int(1e13))
    model = TransformerLM(model_config(spec, 256, context))

    # windows from the first token to the last one, evenly spaced: 0, 245, 491, 737, 983
    starts = [0, 245, 491, 737, 983]
    expected = []
    with torch.no_grad():
        for start in starts:
            window = torch.from_numpy(validation[start : start + context + 1].astype(np.int64))
            logits = model(window[None, :-1])
            expected.append(F.cross_entropy(logits[0].float(), window[1:]).item())
    assert starts[-1] + context + 1 == len(validation)
    assert held_out_loss(model, validation, setup, torch.device("cpu")) == pytest.approx(np.mean(expected), rel=1e-5)


def test_a_token_file_beyond_the_vocabulary_fails_before_training(setup):
    small = TrainingSetup(tokens_path=setup.tokens_path, vocab_size=100, scale=setup.scale)
    spec = RunSpec(d_model=64, num_layers=2, num_heads=2, batch_size=128, learning_rate=1e-3, train_flops=int(1e13))
    with pytest.raises(ValueError, match=r"tokens\.bin: token [\d,]+ is id 1\d\d, outside the vocabulary \[0, 100\)"):
        execute_run(spec, small, "cpu")
