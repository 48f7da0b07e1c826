"""95% intervals for accuracies measured on a finite test set, and for the change between two evaluations.

A proportion gets the Wilson score interval: unlike ``p ± 1.96·sqrt(p(1-p)/n)`` it stays inside [0, 1] and
keeps its coverage when the accuracy is near 0 or 1, which is where a 135M model on GSM8K lives. A change of
accuracy between two policies evaluated on the *same* problems gets a paired bootstrap interval: resampling
problems keeps each problem's pair of outcomes together, so the interval reflects how often the two policies
disagree, not two independent sampling errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

Z_95 = 1.959963984540054  # standard normal quantile of 0.975


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval ``[low, high]`` over ``n`` problems."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def wilson_interval(successes: int, n: int, z: float = Z_95) -> Estimate:
    """The Wilson score interval of a binomial proportion ``successes / n``."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at p = 0 or 1 one end equals p in exact arithmetic; clamp so rounding cannot put p outside its interval
    return Estimate(p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)), n)


def accuracy(outcomes: Sequence[float]) -> Estimate:
    """Mean of 0/1 outcomes (rewards) with its Wilson interval."""
    if any(o not in (0.0, 1.0) for o in outcomes):
        raise ValueError("accuracy needs 0/1 outcomes")
    return wilson_interval(int(sum(outcomes)), len(outcomes))


def paired_difference(
    before: Sequence[float], after: Sequence[float], resamples: int = 10_000, seed: int = 0
) -> Estimate:
    """``mean(after) - mean(before)`` over the same problems, with a paired percentile-bootstrap 95% interval."""
    if len(before) != len(after) or not before:
        raise ValueError(f"need two equally long, non-empty outcome lists, got {len(before)} and {len(after)}")
    deltas = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    rows = np.random.default_rng(seed).integers(0, len(deltas), size=(resamples, len(deltas)))
    low, high = np.quantile(deltas[rows].mean(axis=1), [0.025, 0.975])
    return Estimate(float(deltas.mean()), float(low), float(high), len(deltas))
