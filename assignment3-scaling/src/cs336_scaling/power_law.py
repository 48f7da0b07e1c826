"""Power laws ``y = a · x^b`` fitted by least squares in log space, with bootstrap uncertainty.

Scaling laws span many decades, so the fit is done on ``log y = log a + b · log x``: every point
weighs the same whatever its magnitude, and the fit is an ordinary linear regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float


@dataclass(frozen=True)
class PowerLaw:
    """``y = coefficient · x ** exponent``."""

    coefficient: float
    exponent: float

    def __call__(self, x: Float[np.ndarray, "..."] | float) -> Float[np.ndarray, "..."]:
        return self.coefficient * np.asarray(x, dtype=np.float64) ** self.exponent


@dataclass(frozen=True)
class Interval:
    """A central estimate with a bootstrap confidence interval (``low``, ``high``)."""

    estimate: float
    low: float
    high: float


def fit_power_law(x: Float[np.ndarray, " n"], y: Float[np.ndarray, " n"]) -> PowerLaw:
    """Least-squares fit of ``log y = log a + b log x``; needs two or more distinct positive ``x``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of the same length, got shapes {x.shape} and {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("power-law fits need strictly positive x and y")
    if np.unique(x).size < 2:
        raise ValueError("a power-law fit needs at least two distinct x values")
    slope, intercept = np.polyfit(np.log(x), np.log(y), deg=1)
    return PowerLaw(coefficient=float(np.exp(intercept)), exponent=float(slope))


@dataclass(frozen=True)
class BootstrapFit:
    """The fit on all points plus percentile intervals from refits on resampled points."""

    law: PowerLaw
    exponent: Interval
    predictions: dict[float, Interval]


def bootstrap_power_law(
    x: Float[np.ndarray, " n"],
    y: Float[np.ndarray, " n"],
    predict_at: list[float],
    num_samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapFit:
    """Refit on ``num_samples`` resamples of the (x, y) pairs drawn with replacement.

    Resamples with fewer than two distinct ``x`` cannot define a line and are redrawn. The interval is
    the central ``confidence`` percentile range of the refitted exponents and predictions.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    law = fit_power_law(x, y)
    rng = np.random.default_rng(seed)
    exponents = np.empty(num_samples)
    predictions = np.empty((num_samples, len(predict_at)))
    filled = 0
    while filled < num_samples:
        idx = rng.integers(0, x.size, size=x.size)
        if np.unique(x[idx]).size < 2:
            continue
        sample = fit_power_law(x[idx], y[idx])
        exponents[filled] = sample.exponent
        predictions[filled] = sample(np.asarray(predict_at, dtype=np.float64))
        filled += 1
    return bootstrap_fit(law, exponents, predictions, predict_at, confidence)


def bootstrap_fit(
    law: PowerLaw,
    exponents: Float[np.ndarray, " samples"],
    predictions: Float[np.ndarray, "samples targets"],
    predict_at: list[float],
    confidence: float = 0.95,
) -> BootstrapFit:
    """``law`` with the central ``confidence`` percentile ranges of its refits' exponents and predictions."""
    tail = 100 * (1 - confidence) / 2

    def interval(estimate: float, samples: np.ndarray) -> Interval:
        low, high = np.percentile(samples, (tail, 100 - tail))
        return Interval(estimate=float(estimate), low=float(low), high=float(high))

    return BootstrapFit(
        law=law,
        exponent=interval(law.exponent, exponents),
        predictions={c: interval(float(law(c)), predictions[:, i]) for i, c in enumerate(predict_at)},
    )


@dataclass(frozen=True)
class SaturatingPowerLaw:
    """``y = floor + coefficient · x ** -decay``: a loss that falls with compute towards an irreducible floor."""

    floor: float
    coefficient: float
    decay: float

    def __call__(self, x: Float[np.ndarray, "..."] | float) -> Float[np.ndarray, "..."]:
        return self.floor + self.coefficient * np.asarray(x, dtype=np.float64) ** -self.decay


def fit_saturating_power_law(x: Float[np.ndarray, " n"], y: Float[np.ndarray, " n"]) -> SaturatingPowerLaw:
    """Least squares on ``log(y - floor)`` for each floor on a grid below ``min(y)``, keeping the best.

    For a fixed floor the rest is a straight line in log space, so the search is exact in two parameters and
    robust with the handful of points a study has; ``floor = 0`` (a plain power law) is one of the candidates.
    Needs three or more distinct positive ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or np.unique(x).size < 3:
        raise ValueError(f"a saturating power law needs three or more distinct x, got shape {x.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("saturating power-law fits need strictly positive x and y")
    best: tuple[float, SaturatingPowerLaw] | None = None
    for floor in np.min(y) * (1 - np.logspace(0, -4, 400)):  # 0 up to min(y) - 1e-4 min(y), denser near the top
        law = fit_power_law(x, y - floor)
        candidate = SaturatingPowerLaw(float(floor), law.coefficient, -law.exponent)
        error = float(np.sum((candidate(x) - y) ** 2))
        if law.exponent < 0 and (best is None or error < best[0]):
            best = (error, candidate)
    if best is None:
        raise ValueError("y does not fall with x: no decreasing power law fits")
    return best[1]
