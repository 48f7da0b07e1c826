"""Several GRPO runs compared (the learning-rate sweep, an ablation): one table row per run and their reward,
validation, entropy, response-length and no-signal curves overlaid, from the folders ``grpo_run`` wrote; what
``scripts/experiments/compare_grpo_runs.py`` runs (on the CPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cs336_basics.toolkit.metrics import read_metrics

from cs336_alignment.experiments.configs import GRPOComparisonConfig
from cs336_alignment.grpo_report import COLUMNS, CURVES, LABELS, train_seconds
from cs336_alignment.plots import plot_runs
from cs336_alignment.reports import write_report


def load_run(folder: Path) -> tuple[dict, list[dict]]:
    """A run's summary (``grpo.json``) and step records (``metrics.jsonl``)."""
    summary_path, metrics_path = folder / "grpo.json", folder / "metrics.jsonl"
    for path in (summary_path, metrics_path):
        if not path.is_file():
            raise FileNotFoundError(f"{folder} is not a grpo_experiment output folder: {path.name} is missing")
    return json.loads(summary_path.read_text()), read_metrics(metrics_path)


def compare_grpo_runs(cfg: GRPOComparisonConfig) -> list[dict[str, Any]]:
    """Write ``<name>.{md,json}`` (one row per run) and ``<name>.png`` (the curves) to ``out_dir``; return the rows.
    A row's ``train_seconds`` comes from the folder's step records, so folders written before that column existed
    get it too, in place of their ``seconds`` (which timed only the last call of a run continued across calls)."""
    rows, curves = [], {}
    for folder in map(Path, cfg.runs):
        summary, records = load_run(folder)
        steps = [r for r in records if r.get("phase") == "grpo"]
        row = {k: v for k, v in summary["rows"][0].items() if k != "seconds"} | {"train_seconds": train_seconds(steps)}
        rows.append(row)
        label = row["run"] if row["run"] not in curves else f"{row['run']} ({folder.name})"
        curves[label] = records
    title = cfg.title or f"GRPO runs compared: {cfg.name.replace('_', ' ')}"
    write_report(cfg.out_dir, cfg.name, title, rows, COLUMNS, {"runs": cfg.runs})
    plot_runs(curves, CURVES, Path(cfg.out_dir) / f"{cfg.name}.png", title, labels=LABELS)
    print(f"table: {Path(cfg.out_dir) / f'{cfg.name}.md'}  plot: {Path(cfg.out_dir) / f'{cfg.name}.png'}")
    return rows
