"""The handouts' model shapes, named once for every package: ``model_config("xl", context_length=1024)``.

``tinystories`` is assignment 1's 17M-parameter model (:class:`ModelConfig`'s defaults). ``small`` … ``2.7B`` are
the GPT-2-like shapes of assignment 2's Table 1 (2025 handout; vocabulary 10,000, ``d_ff = 4 · d_model``), and
``10B`` the one the 2026 handout adds. The 2026 handout calls the 2.7B shape ``xl`` and drops the 2025 ``xl``; here
``xl`` keeps its 2025 meaning (1600 wide, 48 layers) and the 2560-wide shape is ``2.7B`` everywhere. ``tiny`` and
``mini`` are CPU-sized shapes for smoke runs (gloo, tests), not the handouts'.

Each entry is a whole :class:`ModelConfig` with the default vocabulary (10,000) and context (256); callers
override what their experiment fixes (context length, vocabulary, feed-forward type) through :func:`model_config`.
"""

from __future__ import annotations

from dataclasses import replace

from cs336_basics.model_config import ModelConfig


def _shape(d_model: int, d_ff: int, num_layers: int, num_heads: int) -> ModelConfig:
    return ModelConfig(d_model=d_model, d_ff=d_ff, num_layers=num_layers, num_heads=num_heads)


MODEL_SIZES: dict[str, ModelConfig] = {
    "tinystories": ModelConfig(),
    "small": _shape(768, 3072, 12, 12),
    "medium": _shape(1024, 4096, 24, 16),
    "large": _shape(1280, 5120, 36, 20),
    "xl": _shape(1600, 6400, 48, 25),
    "2.7B": _shape(2560, 10240, 32, 32),
    "10B": _shape(4608, 12288, 50, 36),
    "tiny": _shape(128, 512, 2, 4),
    "mini": _shape(256, 1024, 4, 4),
}


def model_config(size: str, **overrides) -> ModelConfig:
    """The named shape with ``overrides`` (any :class:`ModelConfig` field) applied and validated."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}")
    return replace(MODEL_SIZES[size], **overrides)
