"""The model a query describes, and the parameter counts that turn FLOPs into tokens.

``N`` for ``C = 6 N D`` (documented once, used everywhere) counts every weight that multiplies an activation --
attention projections, SwiGLU, RMSNorm gains, final norm and the untied LM head -- and leaves out the
token-embedding table, a lookup that costs no FLOPs (``count_parameters(cfg, include_embeddings=False)``). The
attention-score FLOPs (``QKᵀ`` and the weighted sum over values, ``4 · layers · context · d_model`` per token
forward) are not in ``6 N``; the service reports the exact matmul count, scores included, as ``actual_flops``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

from cs336_basics.accounting import count_parameters
from cs336_basics.model import ModelConfig

from cs336_scaling.run_spec import RunSpec


def ffn_size(d_model: int) -> int:
    """SwiGLU hidden size: 8/3 · d_model rounded up to a multiple of 64 (keeps ~8 d² FFN weights, GPU-friendly)."""
    return 64 * math.ceil(8 * d_model / 3 / 64)


def with_shape(base: ModelConfig, d_model: int, num_layers: int, num_heads: int) -> ModelConfig:
    """``base`` (vocabulary, context) with this shape and the matching SwiGLU width."""
    return replace(base, d_model=d_model, num_layers=num_layers, num_heads=num_heads, d_ff=ffn_size(d_model))


def model_config(spec: RunSpec, vocab_size: int, context_length: int) -> ModelConfig:
    """The model a query trains on a corpus of ``vocab_size`` tokens in windows of ``context_length``."""
    base = ModelConfig(vocab_size=vocab_size, context_length=context_length)
    return with_shape(base, spec.d_model, spec.num_layers, spec.num_heads)


@functools.cache
def flops_parameters(cfg: ModelConfig) -> int:
    """``N`` in ``C = 6 N D``: all parameters except the token-embedding lookup (see the module docstring);
    cached, since a study counts every allowed shape for each scale it tries."""
    return count_parameters(cfg, include_embeddings=False)


def handout_parameters(cfg: ModelConfig | RunSpec) -> float:
    """The handout's non-embedding parameter count ``12 · num_layers · d_model²`` (what its API's runs count)."""
    return 12.0 * cfg.num_layers * cfg.d_model**2


def tokens_for(train_flops: float, cfg: ModelConfig) -> int:
    """``D = C / (6 N)``: the tokens a FLOPs budget buys for this model."""
    return int(train_flops // (6 * flops_parameters(cfg)))
