"""The study's figures: scaling-law fits extrapolated past the data, and the IsoFLOPs profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cs336_basics.toolkit.figures import save_figure
from matplotlib.figure import Figure

from cs336_scaling.isoflops import ProfileOptimum, Run, group_by_budget
from cs336_scaling.power_law import BootstrapFit, SaturatingPowerLaw


def plot_scaling_fit(
    budgets: np.ndarray,
    values: np.ndarray,
    fit: BootstrapFit,
    extrapolate_to: float,
    quantity: str,
    path: str | Path,
) -> Path:
    """Points ``(C_i, value_i)``, the fitted power law out to ``extrapolate_to`` and bootstrap bars at targets."""
    figure = Figure(figsize=(6.4, 4.4))
    ax = figure.subplots()
    grid = np.logspace(np.log10(min(budgets)) - 0.3, np.log10(extrapolate_to) + 0.1, 200)
    ax.loglog(
        grid, fit.law(grid), "-", color="tab:blue", label=f"fit: {fit.law.coefficient:.3g}·C^{fit.law.exponent:.3f}"
    )
    ax.loglog(budgets, values, "o", color="tab:orange", label="IsoFLOPs optima")
    for target, interval in fit.predictions.items():
        ax.errorbar(
            [target],
            [interval.estimate],
            yerr=[[interval.estimate - interval.low], [interval.high - interval.estimate]],
            fmt="s",
            color="tab:red",
            capsize=4,
        )
        ax.annotate(
            f"{interval.estimate:.3g}", (target, interval.estimate), textcoords="offset points", xytext=(-40, 8)
        )
    ax.set_xlabel("compute budget C (FLOPs)")
    ax.set_ylabel(quantity)
    ax.set_title(f"compute-optimal {quantity} (95% bootstrap bars at targets)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save_figure(figure, path, dpi=130, bbox_inches="tight")


def plot_profiles(runs: list[Run], optima: list[ProfileOptimum], path: str | Path) -> Path:
    """Loss against model size per budget, with each profile's chosen optimum marked."""
    figure = Figure(figsize=(6.4, 4.4))
    ax = figure.subplots()
    profiles = group_by_budget(runs)
    colors = [f"C{i % 10}" for i in range(len(profiles))]
    for color, (budget, profile) in zip(colors, profiles.items()):
        profile = sorted(profile, key=lambda r: r.parameters)
        ax.semilogx(
            [r.parameters for r in profile],
            [r.final_loss for r in profile],
            "o-",
            color=color,
            ms=3,
            label=f"{budget:.0e}",
        )
    for color, optimum in zip(colors, optima):
        ax.plot([optimum.parameters], [optimum.loss], "*", color=color, ms=12, markeredgecolor="black")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final loss")
    ax.set_title("IsoFLOPs profiles (star: chosen optimum)")
    ax.legend(title="C (FLOPs)", fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(figure, path, dpi=130, bbox_inches="tight")


def plot_loss_fit(
    compute: np.ndarray,
    losses: np.ndarray,
    law: SaturatingPowerLaw,
    target: float,
    path: str | Path,
    checked_loss: float | None = None,
) -> Path:
    """Optimal loss per budget, the fitted ``E + A C^-γ`` out to the target, and the checked run if any."""
    figure = Figure(figsize=(6.4, 4.4))
    ax = figure.subplots()
    grid = np.logspace(np.log10(min(compute)) - 0.2, np.log10(target) + 0.2, 200)
    label = f"fit: {law.floor:.3f} + {law.coefficient:.3g}·C^-{law.decay:.3f}"
    ax.semilogx(grid, law(grid), "-", color="tab:blue", label=label)
    ax.semilogx(compute, losses, "o", color="tab:orange", label="IsoFLOPs optima")
    ax.semilogx([target], [float(law(target))], "s", color="tab:red", label=f"predicted at {target:.0e}")
    if checked_loss is not None:
        ax.semilogx([target], [checked_loss], "*", ms=14, color="tab:green", label="trained at target")
    ax.set_xlabel("compute budget C (FLOPs)")
    ax.set_ylabel("final loss")
    ax.set_title("compute-optimal loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save_figure(figure, path, dpi=130, bbox_inches="tight")
