"""Chinchilla approach 2: pick the compute-optimal model size on each IsoFLOPs profile, then fit power laws.

Three ways to find the optimum of each profile (the runs that share a compute budget):
- ``lowest_loss``: the run with the lowest final loss (what the handout recommends);
- ``parabola``: Hoffmann et al.'s quadratic fit of loss against ``log N``, whose vertex may fall
  between the sizes that were trained.
- ``joint``: one quadratic for all profiles at once, ``L = k (ln N - ln N_opt(C))² + L_opt(C)`` with the same
  curvature ``k`` at every budget and the vertices on a power law ``N_opt = a C^b``. Expanded, it is linear
  in ``(ln N)²``, ``ln N``, ``ln C · ln N`` and one intercept per budget, so ordinary least squares fits it.
  Every run informs the exponent, and no single bent profile can throw a vertex far outside its sizes. The
  shared curvature suits neighbouring budgets: on a Chinchilla surface the curvature at the optimum falls as
  about C^-0.15, so over a wide range of budgets the per-profile parabola is the better model.
The matching data size is ``D_opt = C / (6 N_opt)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from cs336_scaling.power_law import BootstrapFit, PowerLaw, bootstrap_fit, bootstrap_power_law

ISOFLOPS_RELATIVE_PATH = "fixtures/assignment3/isoflops_curves.json"
ISOFLOPS_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment3-scaling/main/data/isoflops_curves.json"


@dataclass(frozen=True)
class Run:
    """One training run: ``parameters`` N, ``compute_budget`` C in FLOPs, ``final_loss``."""

    parameters: float
    compute_budget: float
    final_loss: float


class OptimumMethod(StrEnum):
    LOWEST_LOSS = "lowest_loss"
    PARABOLA = "parabola"
    JOINT = "joint"


@dataclass(frozen=True)
class ProfileOptimum:
    """The compute-optimal point of one IsoFLOPs profile."""

    compute_budget: float
    parameters: float
    tokens: float
    loss: float


def load_runs(path: str | Path) -> list[Run]:
    """Read the course's JSON array of ``{"parameters", "compute_budget", "final_loss"}`` objects."""
    records = json.loads(Path(path).read_text())
    try:
        return [Run(float(r["parameters"]), float(r["compute_budget"]), float(r["final_loss"])) for r in records]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: each run needs parameters, compute_budget and final_loss ({err!r})") from err


def group_by_budget(runs: list[Run]) -> dict[float, list[Run]]:
    profiles: dict[float, list[Run]] = {}
    for run in runs:
        profiles.setdefault(run.compute_budget, []).append(run)
    return dict(sorted(profiles.items()))


def lowest_loss_optimum(profile: list[Run]) -> ProfileOptimum:
    best = min(profile, key=lambda r: r.final_loss)
    return ProfileOptimum(
        best.compute_budget, best.parameters, best.compute_budget / (6 * best.parameters), best.final_loss
    )


def parabola_optimum(profile: list[Run]) -> ProfileOptimum:
    """Vertex of ``loss = a (log N)^2 + b log N + c``; needs three sizes and an upward-opening parabola."""
    if len({r.parameters for r in profile}) < 3:
        raise ValueError(f"a parabola needs at least three model sizes at budget {profile[0].compute_budget:g}")
    log_n = np.log([r.parameters for r in profile])
    losses = np.array([r.final_loss for r in profile])
    a, b, c = np.polyfit(log_n, losses, deg=2)
    if a <= 0:
        raise ValueError(f"the profile at budget {profile[0].compute_budget:g} does not curve upwards (a={a:.3g})")
    vertex = -b / (2 * a)
    budget = profile[0].compute_budget
    parameters = float(np.exp(vertex))
    return ProfileOptimum(budget, parameters, budget / (6 * parameters), float(c - b * b / (4 * a)))


def profile_optima(runs: list[Run], method: OptimumMethod = OptimumMethod.LOWEST_LOSS) -> list[ProfileOptimum]:
    if method == OptimumMethod.JOINT:
        return joint_parabola(runs)[1]
    choose = lowest_loss_optimum if method == OptimumMethod.LOWEST_LOSS else parabola_optimum
    return [choose(profile) for profile in group_by_budget(runs).values()]


def joint_parabola(runs: list[Run]) -> tuple[PowerLaw, list[ProfileOptimum]]:
    """The ``joint`` fit (module docstring): the law ``N_opt(C)`` and each budget's optimum on it."""
    profiles = group_by_budget(runs)
    budgets = list(profiles)
    if len(budgets) < 2 or any(len({r.parameters for r in p}) < 3 for p in profiles.values()):
        raise ValueError("the joint fit needs at least two budgets with three model sizes each")
    log_c0 = np.log(budgets[0])  # centre ln C so the columns are not nearly collinear
    rows, losses = [], []
    for i, (budget, profile) in enumerate(profiles.items()):
        for run in profile:
            log_n, log_c = np.log(run.parameters), np.log(budget) - log_c0
            rows.append([log_n**2, log_n, log_c * log_n, *np.eye(len(budgets))[i]])
            losses.append(run.final_loss)
    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(losses), rcond=None)
    k, linear, cross = coef[:3]
    if k <= 0:
        raise ValueError(f"the joint fit does not curve upwards (k={k:.3g}): no optimum inside the sizes")
    exponent = -cross / (2 * k)
    law = PowerLaw(float(np.exp(-linear / (2 * k) - exponent * log_c0)), float(exponent))
    optima = []
    for budget, intercept in zip(budgets, coef[3:], strict=True):
        n_opt = float(law(budget))
        optima.append(ProfileOptimum(budget, n_opt, budget / (6 * n_opt), float(intercept - k * np.log(n_opt) ** 2)))
    return law, optima


def bootstrap_joint(
    runs: list[Run], law: PowerLaw, targets: list[float], num_samples: int, confidence: float = 0.95, seed: int = 0
) -> tuple[BootstrapFit, BootstrapFit]:
    """Intervals for the joint fit's ``N_opt`` law (``law``, fitted on ``runs``) and its ``D_opt = C / 6N`` from
    refits on runs resampled within each budget (resamples that lose a budget's third size or the upward
    curvature are redrawn)."""
    profiles = list(group_by_budget(runs).values())
    rng = np.random.default_rng(seed)
    exponents, predictions = [], []
    for _ in range(20 * num_samples):
        if len(exponents) == num_samples:
            break
        sample = [profile[i] for profile in profiles for i in rng.integers(0, len(profile), len(profile))]
        try:
            refit, _ = joint_parabola(sample)
        except ValueError:
            continue
        exponents.append(refit.exponent)
        predictions.append(refit(np.asarray(targets, dtype=np.float64)))
    if not exponents:
        raise ValueError("no bootstrap resample of the runs supports the joint fit")
    exponents, predictions = np.array(exponents), np.array(predictions)
    tokens_law = PowerLaw(1 / (6 * law.coefficient), 1 - law.exponent)
    return (
        bootstrap_fit(law, exponents, predictions, targets, confidence),
        bootstrap_fit(tokens_law, 1 - exponents, np.asarray(targets) / (6 * predictions), targets, confidence),
    )


@dataclass(frozen=True)
class IsoFlopsFit:
    """Power laws ``N_opt(C)`` and ``D_opt(C)`` with bootstrap intervals at the target budgets."""

    method: OptimumMethod
    optima: list[ProfileOptimum]
    parameters: BootstrapFit
    tokens: BootstrapFit


def fit_isoflops(
    runs: list[Run],
    targets: list[float],
    method: OptimumMethod = OptimumMethod.LOWEST_LOSS,
    num_bootstrap: int = 2000,
    seed: int = 0,
) -> IsoFlopsFit:
    if method == OptimumMethod.JOINT:
        law, optima = joint_parabola(runs)
        parameters, tokens = bootstrap_joint(runs, law, targets, num_bootstrap, seed=seed)
        return IsoFlopsFit(method=method, optima=optima, parameters=parameters, tokens=tokens)
    optima = profile_optima(runs, method)
    budgets = np.array([o.compute_budget for o in optima])
    return IsoFlopsFit(
        method=method,
        optima=optima,
        parameters=bootstrap_power_law(
            budgets, np.array([o.parameters for o in optima]), targets, num_bootstrap, seed=seed
        ),
        tokens=bootstrap_power_law(budgets, np.array([o.tokens for o in optima]), targets, num_bootstrap, seed=seed),
    )


def degenerate_reasons(fit: IsoFlopsFit, size_range: tuple[float, float] | None = None) -> list[str]:
    """Why ``fit``'s predictions are not results, if they are not (empty: none found).

    A zero-width bootstrap interval means every resample gave the same law (too few distinct points to measure
    any spread), a negative exponent that the optimal size or data shrinks as compute grows, and a predicted
    ``N_opt`` outside ``size_range`` (the smallest and largest model the API allows) a model nobody can train.
    """
    reasons = []
    for name, law in (("N_opt", fit.parameters), ("D_opt", fit.tokens)):
        if law.law.exponent < 0:
            reasons.append(f"the {name} exponent is negative ({law.law.exponent:.3g})")
        intervals = {"exponent": law.exponent} | {f"{c:.0e}": i for c, i in law.predictions.items()}
        flat = [where for where, i in intervals.items() if math.isclose(i.low, i.high, rel_tol=1e-9, abs_tol=0.0)]
        if flat:
            reasons.append(f"the {name} bootstrap interval has zero width at {', '.join(flat)}")
    if size_range is not None:
        low, high = size_range
        for target, n in fit.parameters.predictions.items():
            if not low <= n.estimate <= high:
                reasons.append(
                    f"N_opt({target:.0e}) = {n.estimate:.3g} lies outside the API's sizes [{low:.3g}, {high:.3g}]"
                )
    return reasons
