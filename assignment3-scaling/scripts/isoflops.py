"""Chinchilla IsoFLOPs analysis of the course's ``isoflops_curves.json``: table of predictions and the two plots.

uv run python assignment3-scaling/scripts/isoflops.py --out assignment3-scaling/results/isoflops
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cs336_scaling.isoflops import (
    ISOFLOPS_RELATIVE_PATH,
    ISOFLOPS_URL,
    IsoFlopsFit,
    OptimumMethod,
    fit_isoflops,
    load_runs,
)
from cs336_scaling.plots import plot_profiles, plot_scaling_fit


@dataclass
class IsoFlopsArgs:
    data: Path | None
    out: Path
    targets: list[float]
    bootstrap: int
    seed: int


def parse_args() -> IsoFlopsArgs:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, default=None, help="runs JSON (default: the shared fixture, else download)"
    )
    parser.add_argument("--out", type=Path, default=Path("isoflops_results"), help="folder for the PNG plots")
    parser.add_argument("--targets", type=float, nargs="+", default=[1e23, 1e24], help="budgets to predict for")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=int, default=0)
    return IsoFlopsArgs(**vars(parser.parse_args()))


def resolve_data(path: Path | None) -> Path:
    if path is not None:
        return path
    from cs336_basics.toolkit.data_paths import shared_path

    return shared_path(ISOFLOPS_RELATIVE_PATH, url=ISOFLOPS_URL)


def describe(fit: IsoFlopsFit) -> str:
    lines = [
        f"## optimum per budget: {fit.method.value}",
        "",
        "| C (FLOPs) | N_opt | D_opt | loss |",
        "|---|---|---|---|",
    ]
    lines += [f"| {o.compute_budget:.0e} | {o.parameters:.4g} | {o.tokens:.4g} | {o.loss:.4f} |" for o in fit.optima]
    lines += [
        "",
        f"N_opt = {fit.parameters.law.coefficient:.4g} · C^{fit.parameters.law.exponent:.4f}"
        f"  (exponent 95% CI [{fit.parameters.exponent.low:.4f}, {fit.parameters.exponent.high:.4f}])",
        f"D_opt = {fit.tokens.law.coefficient:.4g} · C^{fit.tokens.law.exponent:.4f}"
        f"  (exponent 95% CI [{fit.tokens.exponent.low:.4f}, {fit.tokens.exponent.high:.4f}])",
        "",
        "| target C | N_opt (95% CI) | D_opt (95% CI) |",
        "|---|---|---|",
    ]
    for target in fit.parameters.predictions:
        n, d = fit.parameters.predictions[target], fit.tokens.predictions[target]
        n_text = f"{n.estimate:.4g} [{n.low:.3g}, {n.high:.3g}]"
        lines.append(f"| {target:.0e} | {n_text} | {d.estimate:.4g} [{d.low:.3g}, {d.high:.3g}] |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    runs = load_runs(resolve_data(args.data))
    extrapolate_to = max(max(args.targets), 1e24)
    for method in OptimumMethod:
        fit = fit_isoflops(runs, args.targets, method, args.bootstrap, args.seed)
        print(describe(fit), end="\n\n")
        budgets = np.array([o.compute_budget for o in fit.optima])
        suffix = "" if method == OptimumMethod.LOWEST_LOSS else f"_{method.value}"
        n_plot = plot_scaling_fit(
            budgets,
            np.array([o.parameters for o in fit.optima]),
            fit.parameters,
            extrapolate_to,
            "parameters N_opt",
            args.out / f"n_opt_vs_compute{suffix}.png",
        )
        d_plot = plot_scaling_fit(
            budgets,
            np.array([o.tokens for o in fit.optima]),
            fit.tokens,
            extrapolate_to,
            "tokens D_opt",
            args.out / f"d_opt_vs_compute{suffix}.png",
        )
        profile_plot = plot_profiles(runs, fit.optima, args.out / f"profiles{suffix}.png")
        print(f"wrote {n_plot}, {d_plot}, {profile_plot}\n")


if __name__ == "__main__":
    main()
