"""Chinchilla approach 2: pick the compute-optimal model size on each IsoFLOPs profile, then fit power laws.

Two ways to find the optimum of one profile (the runs that share a compute budget):
- ``lowest_loss``: the run with the lowest final loss (what the handout recommends);
- ``parabola``: Hoffmann et al.'s quadratic fit of loss against ``log N``, whose vertex may fall
  between the sizes that were trained.
The matching data size is ``D_opt = C / (6 N_opt)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from cs336_scaling.power_law import BootstrapFit, bootstrap_power_law

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
    choose = lowest_loss_optimum if method == OptimumMethod.LOWEST_LOSS else parabola_optimum
    return [choose(profile) for profile in group_by_budget(runs).values()]


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
