"""The study's outputs: a markdown report with its plots, and every number as JSON."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic
from cs336_basics.toolkit.tables import markdown_table

from cs336_scaling.isoflops import IsoFlopsFit
from cs336_scaling.planner import StudyResult
from cs336_scaling.plots import plot_loss_fit, plot_profiles, plot_scaling_fit


def study_json(result: StudyResult, check: dict | None = None, setting: dict | None = None) -> dict:
    def fit_json(fit: IsoFlopsFit | None) -> dict | None:
        if fit is None:
            return None
        return {
            "optima": [asdict(o) for o in fit.optima],
            "n_opt": {"law": asdict(fit.parameters.law), "exponent_ci": asdict(fit.parameters.exponent)},
            "d_opt": {"law": asdict(fit.tokens.law), "exponent_ci": asdict(fit.tokens.exponent)},
            "n_opt_at_target": {str(c): asdict(i) for c, i in fit.parameters.predictions.items()},
            "d_opt_at_target": {str(c): asdict(i) for c, i in fit.tokens.predictions.items()},
        }

    return {
        "setting": setting or {},
        "config": asdict(result.config),
        "levels": result.levels,
        "sweep_level": result.sweep_level,
        "learning_rate": result.learning_rate,
        "batch_size": result.batch_size,
        "flops_used": result.flops_used,
        "queries": [asdict(q) for q in result.queries],
        "fit": fit_json(result.fit),
        "other_fits": [fit_json(other) for other in result.other_fits],
        "loss_law": asdict(result.loss_law) if result.loss_law else None,
        "prediction": asdict(result.prediction) if result.prediction else None,
        "degenerate": result.degenerate,
        "check": check,
    }


def _fit_lines(name: str, fit: IsoFlopsFit, target: float) -> list[str]:
    n, d = fit.parameters, fit.tokens
    return [
        f"- {name}: N_opt = {n.law.coefficient:.4g} · C^{n.law.exponent:.4f} "
        f"(exponent 95% CI [{n.exponent.low:.3f}, {n.exponent.high:.3f}]), "
        f"D_opt = {d.law.coefficient:.4g} · C^{d.law.exponent:.4f}; at {target:.0e}: "
        f"N_opt = {n.predictions[target].estimate:.4g} [{n.predictions[target].low:.3g}, "
        f"{n.predictions[target].high:.3g}], D_opt = {d.predictions[target].estimate:.4g} "
        f"[{d.predictions[target].low:.3g}, {d.predictions[target].high:.3g}]",
    ]


def _check_lines(check: dict) -> list[str]:
    """The check runs at the target: the predicted shape and, if trained, its smaller and larger neighbours."""
    runs = [("predicted", check["run"])] if "run" in check else []
    runs += [("neighbour", run) for run in check.get("neighbours", [])]
    if not runs:
        return []
    table = markdown_table(
        ["run", "d_model", "layers", "N", "tokens trained", "steps", "loss", "seconds", "device"],
        [
            (
                name,
                run["d_model"],
                run["num_layers"],
                f"{run['parameters']:.4g}",
                f"{run['tokens']:.4g}",
                run["steps"],
                f"{run['loss']:.4f}",
                f"{run['seconds']:.0f}",
                run["device"],
            )
            for name, run in sorted(runs, key=lambda item: item[1]["parameters"])
        ],
    )
    lines = [table]
    if len(runs) > 1:
        best = min((run for _, run in runs), key=lambda run: run["loss"])
        ratio = check["run"]["parameters"] / best["parameters"]
        lines += [
            "",
            f"Lowest loss at the target among these sizes: N = {best['parameters']:.4g} (d_model={best['d_model']}, "
            f"{best['num_layers']} layers), loss {best['loss']:.4f}; the predicted size is {ratio:.2f}x that.",
        ]
    return lines


def write_study_report(
    result: StudyResult,
    out_dir: str | Path,
    title: str = "Scaling-law study",
    setting_lines: list[str] | None = None,
    check: dict | None = None,
    setting: dict | None = None,
    redraw_fit_plots: bool = True,
) -> Path:
    """Write ``report.md``, ``study.json`` and the PNG plots into ``out_dir``; return the report's path.

    ``redraw_fit_plots=False`` keeps the profile and N_opt / D_opt figures already in ``out_dir`` (they do not
    depend on the check) and redraws only the loss figure, which marks the check's loss.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    target = cfg.target_flops
    lines = [f"# {title}", ""]
    if setting_lines:
        lines += ["## Setting", "", *setting_lines, ""]
    lines += [
        "## Plan",
        "",
        f"- budget {cfg.budget:.3g} FLOPs, target {target:.3g} FLOPs; {result.flops_used:.4g} FLOPs used "
        f"in {sum(q.loss is not None for q in result.queries)} answered queries",
        f"- hyperparameter sweep at {result.sweep_level:.0e} FLOPs over learning rates "
        f"{list(cfg.learning_rates)} × batch sizes {list(cfg.batch_sizes)}: best lr {result.learning_rate:g}, "
        f"batch {result.batch_size}"
        if result.sweep_level is not None
        else f"- no sweep: learning rate {result.learning_rate:g} and batch size {result.batch_size} as given",
        f"- IsoFLOPs levels {', '.join(f'{c:.0e}' for c in result.levels)}; {cfg.sizes_per_level} sizes per level "
        f"over a factor {cfg.size_spread:g}, centred on D = {cfg.prior_tokens_per_parameter:g}·N "
        + (
            "for the first two levels, then on the power law fitted so far"
            if cfg.adaptive_levels
            else "(all levels at once)"
        )
        + "; one extra size past an edge optimum",
        f"- shapes: heads of dimension {cfg.head_dim}, d_model / layers near {cfg.aspect_ratio:g} "
        f"(aspect weight {cfg.aspect_weight:g}); optimum per level by {cfg.optimum_method}",
        "",
        "## Queries",
        "",
        markdown_table(
            ["phase", "train_flops", "d_model", "layers", "heads", "N", "lr", "batch", "loss"],
            [
                (
                    q.phase,
                    f"{q.spec.train_flops:.0e}",
                    q.spec.d_model,
                    q.spec.num_layers,
                    q.spec.num_heads,
                    f"{q.parameters:.4g}",
                    f"{q.spec.learning_rate:g}",
                    q.spec.batch_size,
                    f"{q.loss:.4f}" if q.loss is not None else f"({q.error})",
                )
                for q in result.queries
            ],
        ),
        "",
    ]
    if result.warnings:
        lines += ["## Warnings", "", *[f"- {warning}" for warning in result.warnings], ""]
    if result.fit is None or result.prediction is None or result.loss_law is None:
        lines += ["## Fit", "", "Too few answered levels to fit a scaling law."]
    else:
        fit, p, law = result.fit, result.prediction, result.loss_law
        lines += [
            "## Fits",
            "",
            f"Optima per level ({fit.method.value}):",
            "",
            markdown_table(
                ["C", "N_opt", "D_opt = C/6N", "loss"],
                [
                    (f"{o.compute_budget:.0e}", f"{o.parameters:.4g}", f"{o.tokens:.4g}", f"{o.loss:.4f}")
                    for o in fit.optima
                ],
            ),
            "",
            *_fit_lines(f"{fit.method.value} optima (used for the prediction)", fit, target),
        ]
        for other in result.other_fits:
            lines += _fit_lines(f"{other.method.value} optima (comparison)", other, target)
        lines += [f"- optimal loss: L(C) = {law.floor:.4f} + {law.coefficient:.4g} · C^-{law.decay:.4f}", ""]
        if result.degenerate:
            lines += [
                "## Prediction: none, the fit is degenerate",
                "",
                *[f"- {reason}" for reason in result.degenerate],
                "",
                f"(The fit's shape for {target:.0e} FLOPs, d_model={p.shape.d_model} × {p.shape.num_layers} layers, "
                "is kept in study.json for diagnosis, not as a prediction.)",
                "",
            ]
        else:
            lines += [
                "## Prediction",
                "",
                f"For {target:.0e} FLOPs: N_opt ≈ {p.n_opt:.4g} (95% CI [{p.n_opt_low:.3g}, {p.n_opt_high:.3g}]) → "
                f"d_model={p.shape.d_model}, num_layers={p.shape.num_layers}, num_heads={p.shape.num_heads} "
                f"(N = {p.parameters:.4g}), learning rate {p.learning_rate:g}, batch size {p.batch_size}, "
                f"{p.tokens:.4g} tokens; predicted loss {p.loss:.4f}.",
                "",
            ]
        if check is not None:
            lines += [
                "## Check: the predicted model trained at the target budget",
                "",
                f"Trained loss {check['loss']:.4f} vs predicted {p.loss:.4f} "
                f"(error {check['loss'] - p.loss:+.4f}, {100 * (check['loss'] - p.loss) / p.loss:+.2f}%).",
                "",
                *_check_lines(check),
                "",
            ]
        budgets = np.array([o.compute_budget for o in fit.optima])
        fit_plots = [out / "profiles.png", out / "n_opt.png", out / "d_opt.png"]
        if redraw_fit_plots or not all(path.is_file() for path in fit_plots):
            plot_profiles(result.runs(), fit.optima, fit_plots[0])
            parameters = np.array([o.parameters for o in fit.optima])
            plot_scaling_fit(budgets, parameters, fit.parameters, target, "parameters N_opt", fit_plots[1])
            tokens = np.array([o.tokens for o in fit.optima])
            plot_scaling_fit(budgets, tokens, fit.tokens, target, "tokens D_opt", fit_plots[2])
        losses = np.array([o.loss for o in fit.optima])
        checked = None if check is None else check["loss"]
        plots = [*fit_plots, plot_loss_fit(budgets, losses, law, target, out / "loss.png", checked)]
        lines += ["## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots], ""]
    write_json_atomic(out / "study.json", study_json(result, check, setting))
    return write_text_atomic(out / "report.md", "\n".join(lines))
