"""The one table of named model shapes."""

import pytest
from cs336_basics.accounting import count_parameters
from cs336_basics.model_config import ModelConfig
from cs336_basics.model_sizes import MODEL_SIZES, model_config


def test_the_handouts_shapes():
    shapes = {name: (c.d_model, c.d_ff, c.num_layers, c.num_heads) for name, c in MODEL_SIZES.items()}
    assert shapes["small"] == (768, 3072, 12, 12)  # assignment 2, Table 1 (2025)
    assert shapes["medium"] == (1024, 4096, 24, 16)
    assert shapes["large"] == (1280, 5120, 36, 20)
    assert shapes["xl"] == (1600, 6400, 48, 25)
    assert shapes["2.7B"] == (2560, 10240, 32, 32)  # the 2026 handout's "xl"
    assert shapes["10B"] == (4608, 12288, 50, 36)
    assert MODEL_SIZES["tinystories"] == ModelConfig(
        vocab_size=10_000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344
    )


def test_tinystories_model_has_17m_parameters_without_embeddings():
    assert count_parameters(MODEL_SIZES["tinystories"], include_embeddings=False) == pytest.approx(17e6, rel=0.05)


def test_overrides_apply_and_keep_the_shape():
    cfg = model_config("medium", context_length=1024, vocab_size=50_257, ffn="silu")
    assert (cfg.context_length, cfg.vocab_size, cfg.ffn) == (1024, 50_257, "silu")
    assert (cfg.d_model, cfg.num_layers) == (1024, 24)
    assert MODEL_SIZES["medium"].context_length == 256  # the table itself is untouched


def test_unknown_size_and_invalid_override_are_errors():
    with pytest.raises(ValueError, match="unknown model size 'huge'.*small"):
        model_config("huge")
    with pytest.raises(ValueError, match="not divisible"):
        model_config("small", num_heads=7)
