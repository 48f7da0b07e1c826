"""What one ``/loss`` query asks for, the course's allowed values, and the model it describes.

Parameter count used for ``C = 6 N D`` (documented once, used everywhere): ``N`` counts every weight that
multiplies an activation -- attention projections, SwiGLU, RMSNorm gains, final norm and the untied LM head
-- and leaves out the token-embedding table, a lookup that costs no FLOPs
(``cs336_basics.accounting.count_parameters(cfg, include_embeddings=False)``). The attention-score FLOPs
(``QKᵀ`` and the weighted sum over values, ``4 · layers · context · d_model`` per token forward) are not in
``6 N``; the service reports the exact matmul count, scores included, as ``actual_flops`` in each result.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

from cs336_basics.accounting import count_parameters
from cs336_basics.model import ModelConfig

D_MODEL_RANGE = (64, 1024)
NUM_LAYERS_RANGE = (2, 24)
NUM_HEADS_RANGE = (2, 16)
BATCH_SIZES = (128, 256)
LEARNING_RATE_RANGE = (1e-4, 1e-3)
TRAIN_FLOPS = (
    1e13, 3e13, 6e13, 1e14, 3e14, 6e14, 1e15, 3e15, 6e15, 1e16, 3e16, 6e16, 1e17, 3e17, 6e17, 1e18,
)  # fmt: skip


class InvalidRunSpec(ValueError):
    """A query outside the allowed values; the message names the parameter, the allowed values and the value."""


@dataclass(frozen=True)
class RunSpec:
    """The hyperparameters of one ``/loss`` query (the course's training API)."""

    d_model: int
    num_layers: int
    num_heads: int
    batch_size: int
    learning_rate: float
    train_flops: int

    def run_id(self) -> str:
        """Stable id of the configuration: a repeated query finds its stored result under it."""
        canonical = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _in_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidRunSpec(f"{name} must be in range [{low}, {high}], got {value}")


def validated_spec(
    d_model: int, num_layers: int, num_heads: int, batch_size: int, learning_rate: float, train_flops: float
) -> RunSpec:
    """Check every value in the course's order and messages; return the canonical :class:`RunSpec`."""
    _in_range("d_model", d_model, D_MODEL_RANGE)
    _in_range("num_layers", num_layers, NUM_LAYERS_RANGE)
    _in_range("num_heads", num_heads, NUM_HEADS_RANGE)
    if batch_size not in BATCH_SIZES:
        raise InvalidRunSpec(f"batch_size must be one of {list(BATCH_SIZES)}, got {batch_size}")
    _in_range("learning_rate", learning_rate, LEARNING_RATE_RANGE)
    allowed = [f for f in TRAIN_FLOPS if math.isclose(f, train_flops, rel_tol=1e-9)]
    if not allowed:
        raise InvalidRunSpec(f"train_flops must be one of {[int(f) for f in TRAIN_FLOPS]}, got {train_flops:g}")
    if d_model % num_heads:
        raise InvalidRunSpec(f"d_model must be divisible by num_heads, got d_model={d_model}, num_heads={num_heads}")
    if (d_model // num_heads) % 2:
        raise InvalidRunSpec(f"d_model / num_heads must be even for rotary embeddings, got {d_model // num_heads}")
    return RunSpec(d_model, num_layers, num_heads, batch_size, float(learning_rate), int(allowed[0]))


def ffn_size(d_model: int) -> int:
    """SwiGLU hidden size: 8/3 · d_model rounded up to a multiple of 64 (keeps ~8 d² FFN weights, GPU-friendly)."""
    return 64 * math.ceil(8 * d_model / 3 / 64)


def model_config(spec: RunSpec, vocab_size: int, context_length: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=vocab_size,
        context_length=context_length,
        d_model=spec.d_model,
        num_layers=spec.num_layers,
        num_heads=spec.num_heads,
        d_ff=ffn_size(spec.d_model),
    )


def flops_parameters(cfg: ModelConfig) -> int:
    """``N`` in ``C = 6 N D``: all parameters except the token-embedding lookup (see the module docstring)."""
    return count_parameters(cfg, include_embeddings=False)


def tokens_for(train_flops: float, cfg: ModelConfig) -> int:
    """``D = C / (6 N)``: the tokens a FLOPs budget buys for this model."""
    return int(train_flops // (6 * flops_parameters(cfg)))
