"""Chinchilla's approach 3 (Hoffmann et al., 2022, §3.3) for notebook 08: fit `L(N, D) = E + A/N^α + B/D^β` to
every training run at once, rather than only to the minimum of each IsoFLOPs profile (approach 2, which
`cs336_scaling.isoflops` implements).

The fit follows the paper: minimise the Huber loss (δ = 1e-3) between the predicted and observed log-losses with
L-BFGS, from several starting points because the objective has shallow local minima and plateaus. In log space
the prediction is `log L̂ = logsumexp(a − α log N, b − β log D, e)` with `A = exp a`, `B = exp b`, `E = exp e`,
which keeps A, B and E positive without constraints.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float
from scipy.optimize import minimize, nnls
from scipy.special import logsumexp, softmax

# Starting exponents: for each (α, β) on this grid, E, A and B follow from linear least squares.
EXPONENT_GRID = np.arange(0.05, 2.001, 0.05)


@dataclass(frozen=True)
class ParametricLoss:
    """`L(N, D) = E + A / N^alpha + B / D^beta` for N parameters trained on D tokens."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __call__(
        self, parameters: Float[np.ndarray, "..."] | float, tokens: Float[np.ndarray, "..."] | float
    ) -> Float[np.ndarray, "..."]:
        n, d = np.asarray(parameters, dtype=np.float64), np.asarray(tokens, dtype=np.float64)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    @property
    def parameters_exponent(self) -> float:
        """`b` in `N_opt ∝ C^b`: how fast the compute-optimal model grows with compute."""
        return self.beta / (self.alpha + self.beta)

    def optimal_parameters(self, compute: Float[np.ndarray, "..."] | float) -> Float[np.ndarray, "..."]:
        """`N_opt(C) = G (C/6)^(β/(α+β))` with `G = (αA / βB)^(1/(α+β))`: the minimiser of `L(N, C / 6N)`."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        return g * (np.asarray(compute, dtype=np.float64) / 6) ** self.parameters_exponent

    def optimal_tokens(self, compute: Float[np.ndarray, "..."] | float) -> Float[np.ndarray, "..."]:
        """`D_opt(C) = C / (6 N_opt(C))`."""
        return np.asarray(compute, dtype=np.float64) / (6 * self.optimal_parameters(compute))


def huber(residual: np.ndarray, delta: float) -> np.ndarray:
    """Quadratic within ±delta, linear outside: a few bad runs cannot dominate the fit."""
    size = np.abs(residual)
    return np.where(size <= delta, 0.5 * residual**2, delta * (size - 0.5 * delta))


def objective(
    theta: Float[np.ndarray, " 5"],
    log_n: Float[np.ndarray, " runs"],
    log_d: Float[np.ndarray, " runs"],
    log_loss: Float[np.ndarray, " runs"],
    delta: float,
) -> tuple[float, Float[np.ndarray, " 5"]]:
    """Summed Huber loss of the log-space residuals at `theta = (a, b, e, α, β)`, and its gradient."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    residual = logsumexp(terms, axis=0) - log_loss
    slope = np.clip(residual, -delta, delta)  # d huber / d residual
    weights = softmax(terms, axis=0) * slope  # d residual / d term, times the slope
    gradient = np.array(
        [
            weights[0].sum(),
            weights[1].sum(),
            weights[2].sum(),
            -(weights[0] * log_n).sum(),
            -(weights[1] * log_d).sum(),
        ]
    )
    return float(huber(residual, delta).sum()), gradient


def linear_starts(
    log_n: Float[np.ndarray, " runs"], log_d: Float[np.ndarray, " runs"], losses: Float[np.ndarray, " runs"], count: int
) -> list[Float[np.ndarray, " 5"]]:
    """The `count` best points `(a, b, e, α, β)` of `EXPONENT_GRID`²: with the exponents fixed, the law is linear
    in `(E, A, B)`, so non-negative least squares on the relative errors (≈ the log-space residuals) gives them."""
    candidates = []
    for alpha, beta in itertools.product(EXPONENT_GRID, EXPONENT_GRID):
        features = np.stack([np.ones_like(log_n), np.exp(-alpha * log_n), np.exp(-beta * log_d)], axis=1)
        (e, a, b), error = nnls(features / losses[:, None], np.ones_like(losses))
        floor = 1e-12 * losses.min()  # a coefficient of zero has no logarithm: start just above it
        start = np.log([max(a, floor), max(b, floor), max(e, floor)])
        candidates.append((error, [*start, alpha, beta]))
    candidates.sort(key=lambda candidate: candidate[0])
    return [np.array(start) for _, start in candidates[:count]]


def fit_parametric_loss(
    parameters: Float[np.ndarray, " runs"],
    tokens: Float[np.ndarray, " runs"],
    losses: Float[np.ndarray, " runs"],
    delta: float = 1e-3,
    starts: int = 3,
) -> ParametricLoss:
    """Approach 3: L-BFGS on the Huber objective from the `starts` best linear starts (`linear_starts`), keeping
    the lowest minimum. The paper starts from a grid of all five parameters instead; starting where E, A and B
    already fit the exponents avoids most of the objective's plateaus. The tolerances are tight because default
    ones stop on those plateaus (Besiroglu et al., 2024, trace a discrepancy in the paper's fit to this)."""
    n, d, loss = (np.asarray(v, dtype=np.float64) for v in (parameters, tokens, losses))
    if not n.shape == d.shape == loss.shape or n.ndim != 1 or n.size < 5:
        shapes = f"{n.shape}, {d.shape}, {loss.shape}"
        raise ValueError(f"need five or more runs as 1-D arrays of equal length, got shapes {shapes}")
    if np.any(n <= 0) or np.any(d <= 0) or np.any(loss <= 0):
        raise ValueError("parameters, tokens and losses must be strictly positive")
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    best = None
    for start in linear_starts(log_n, log_d, loss, starts):
        result = minimize(
            objective,
            start,
            args=(log_n, log_d, log_loss, delta),
            jac=True,
            method="L-BFGS-B",
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
        )
        if best is None or result.fun < best.fun:
            best = result
    a, b, e, alpha, beta = best.x
    return ParametricLoss(
        E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta)
    )
