"""The IsoFLOPs analysis of a runs file (by default the course's ``isoflops_curves.json``): for each way of
choosing a profile's optimum, the table of optima, the fitted laws and the predictions at the targets, written to
``table.md`` (and printed), with the plots; a degenerate fit is flagged instead of reported as a result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.toolkit.tables import markdown_table

from cs336_scaling.isoflops import (
    ISOFLOPS_RELATIVE_PATH,
    ISOFLOPS_URL,
    IsoFlopsFit,
    OptimumMethod,
    degenerate_reasons,
    fit_isoflops,
    load_runs,
)
from cs336_scaling.power_law import Interval


@dataclass(frozen=True)
class IsoFlopsConfig:
    """Chinchilla IsoFLOPs analysis of a runs JSON: table of predictions and the plots."""

    data: str | None = field(default=None, metadata={"help": "runs JSON (default: the shared fixture, else download)"})
    out_dir: str = field(default="runs/isoflops", metadata={"help": "folder for table.md and the PNG plots"})
    targets: list[float] = field(default_factory=lambda: [1e23, 1e24], metadata={"help": "budgets to predict for"})
    bootstrap: int = field(default=2000, metadata={"help": "bootstrap resamples for the intervals"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})


def run_isoflops(config: IsoFlopsConfig) -> Path:
    """Fit every optimum method, write ``table.md`` and the plots to ``out_dir``, print the table; its path."""
    from cs336_scaling.plots import plot_profiles, plot_scaling_fit  # matplotlib: not for --help

    out = Path(config.out_dir)
    runs = load_runs(resolve_data(config.data))
    extrapolate_to = max(max(config.targets), 1e24)
    sections = []
    for method in OptimumMethod:
        fit = fit_isoflops(runs, config.targets, method, config.bootstrap, config.seed)
        sections.append(describe(fit))
        budgets = np.array([o.compute_budget for o in fit.optima])
        suffix = "" if method == OptimumMethod.LOWEST_LOSS else f"_{method.value}"
        for values, fitted, quantity, name in (
            ([o.parameters for o in fit.optima], fit.parameters, "parameters N_opt", "n_opt_vs_compute"),
            ([o.tokens for o in fit.optima], fit.tokens, "tokens D_opt", "d_opt_vs_compute"),
        ):
            plot_scaling_fit(budgets, np.array(values), fitted, extrapolate_to, quantity, out / f"{name}{suffix}.png")
        plot_profiles(runs, fit.optima, out / f"profiles{suffix}.png")
    text = "\n\n".join(sections) + "\n"
    print(text)
    return write_text_atomic(out / "table.md", text)


def resolve_data(path: str | None) -> Path:
    """``path``, or the course's file from the shared data folder (downloaded when missing)."""
    if path is not None:
        return Path(path)
    from cs336_basics.toolkit.data_paths import shared_path

    return shared_path(ISOFLOPS_RELATIVE_PATH, url=ISOFLOPS_URL)


def describe(fit: IsoFlopsFit) -> str:
    """One method's markdown section: optima, laws with exponent intervals, predictions (or why there are none)."""
    optima = markdown_table(
        ["C (FLOPs)", "N_opt", "D_opt", "loss"],
        [(f"{o.compute_budget:.0e}", f"{o.parameters:.4g}", f"{o.tokens:.4g}", f"{o.loss:.4f}") for o in fit.optima],
    )
    n, d = fit.parameters, fit.tokens
    lines = [
        f"## optimum per budget: {fit.method.value}",
        "",
        optima,
        "",
        f"N_opt = {n.law.coefficient:.4g} · C^{n.law.exponent:.4f}"
        f"  (exponent 95% CI [{n.exponent.low:.4f}, {n.exponent.high:.4f}])",
        f"D_opt = {d.law.coefficient:.4g} · C^{d.law.exponent:.4f}"
        f"  (exponent 95% CI [{d.exponent.low:.4f}, {d.exponent.high:.4f}])",
        "",
    ]
    reasons = degenerate_reasons(fit)
    if reasons:
        return "\n".join([*lines, "No predictions: the fit is degenerate.", "", *[f"- {r}" for r in reasons]])
    predictions = markdown_table(
        ["target C", "N_opt (95% CI)", "D_opt (95% CI)"],
        [(f"{c:.0e}", _interval(n.predictions[c]), _interval(d.predictions[c])) for c in n.predictions],
    )
    return "\n".join([*lines, predictions])


def _interval(interval: Interval) -> str:
    return f"{interval.estimate:.4g} [{interval.low:.3g}, {interval.high:.3g}]"
