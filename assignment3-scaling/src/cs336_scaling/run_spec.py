"""What one ``/loss`` query asks for and the course's allowed values (the model it describes: ``model_shape``).

Light on purpose (no torch at import): the key store and the scripts' configs import it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

    @classmethod
    def for_model(cls, model: ModelConfig, batch_size: int, learning_rate: float, train_flops: float) -> RunSpec:
        """The query that trains ``model``'s shape with these hyperparameters."""
        return cls(model.d_model, model.num_layers, model.num_heads, batch_size, learning_rate, int(train_flops))


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
    from cs336_basics.model import ModelConfig  # torch: only a running service validates queries

    try:  # the shape checks (heads divide d_model, RoPE needs an even head size) are ModelConfig's
        ModelConfig(d_model=d_model, num_layers=num_layers, num_heads=num_heads)
    except ValueError as err:
        raise InvalidRunSpec(str(err)) from None
    return RunSpec(d_model, num_layers, num_heads, batch_size, float(learning_rate), int(allowed[0]))
