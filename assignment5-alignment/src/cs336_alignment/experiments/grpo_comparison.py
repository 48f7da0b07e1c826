"""Several GRPO runs compared (the learning-rate sweep, an ablation): one table row per run and their reward,
validation, entropy, response-length and no-signal curves overlaid, from the folders ``grpo_run`` wrote; what
``scripts/experiments/compare_grpo_runs.py`` runs (on the CPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cs336_basics.toolkit.metrics import read_metrics

from cs336_alignment.experiments.configs import RunComparisonConfig
from cs336_alignment.grpo_report import COLUMNS, CURVES, LABELS, train_seconds
from cs336_alignment.plots import plot_runs
from cs336_alignment.reports import write_report

AT_STEP_WINDOW = 30


def load_run(folder: Path, summary_name: str = "grpo.json") -> tuple[dict, list[dict]]:
    """A run's summary (``grpo.json``, or ``sft_experiment.json``) and step records (``metrics.jsonl``)."""
    summary_path, metrics_path = folder / summary_name, folder / "metrics.jsonl"
    for path in (summary_path, metrics_path):
        if not path.is_file():
            raise FileNotFoundError(f"{folder} is not an experiment output folder: {path.name} is missing")
    return json.loads(summary_path.read_text()), read_metrics(metrics_path)


def at_step_window(at_step: int) -> tuple[int, int]:
    """The steps whose evaluations ``--at_step`` averages: the last 30 up to ``at_step``, never step 0 itself, since
    the mean is compared with step 0 (a short run's window would otherwise halve its change)."""
    return max(1, at_step - AT_STEP_WINDOW), at_step


def validation_at_step(records: list[dict], at_step: int, folder: Path) -> dict[str, float]:
    """Mean validation accuracy of the evaluations in ``at_step_window(at_step)`` and its change from step 0: runs
    that stopped at different steps compared where all of them got to (a mean of a few evaluations, because one
    evaluation of 200 problems moves by about 0.02 from noise alone)."""
    evals = {r["step"]: r["val_reward"] for r in records if "val_reward" in r}
    first, last = at_step_window(at_step)
    window = [v for step, v in evals.items() if first <= step <= last]
    if 0 not in evals or not window:
        raise ValueError(f"{folder} has no step-0 evaluation or none at steps {first}-{last}")
    mean = sum(window) / len(window)
    return {"val_at_step": mean, "val_change_at_step": mean - evals[0]}


def compare_grpo_runs(cfg: RunComparisonConfig) -> list[dict[str, Any]]:
    """Write ``<name>.{md,json}`` (one row per run) and ``<name>.png`` (the curves) to ``out_dir``; return the rows.
    A row's ``train_seconds`` comes from the folder's step records, so folders written before that column existed
    get it too, in place of their ``seconds`` (which timed only the last call of a run continued across calls)."""
    rows, curves = [], {}
    for folder in map(Path, cfg.runs):
        summary, records = load_run(folder)
        steps = [r for r in records if r.get("phase") == "grpo"]
        row = {k: v for k, v in summary["rows"][0].items() if k != "seconds"} | {"train_seconds": train_seconds(steps)}
        if cfg.at_step:
            row |= validation_at_step(records, cfg.at_step, folder)
        rows.append(row)
        label = row["run"] if row["run"] not in curves else f"{row['run']} ({folder.name})"
        curves[label] = records
    columns = COLUMNS
    if cfg.at_step:
        first, last = at_step_window(cfg.at_step)
        span = f"steps {first}-{last}"
        columns = COLUMNS | {"val_at_step": f"validation, {span}", "val_change_at_step": "its change from step 0"}
    title = cfg.title or f"GRPO runs compared: {cfg.name.replace('_', ' ')}"
    write_report(cfg.out_dir, cfg.name, title, rows, columns, {"runs": cfg.runs, "at_step": cfg.at_step})
    plot_runs(curves, CURVES, Path(cfg.out_dir) / f"{cfg.name}.png", title, labels=LABELS)
    print(f"table: {Path(cfg.out_dir) / f'{cfg.name}.md'}  plot: {Path(cfg.out_dir) / f'{cfg.name}.png'}")
    return rows
