"""SFT runs merged into one report (the dataset-size sweep, when its sizes ran in separate device calls): one table
row per dataset size and their validation-accuracy and loss curves overlaid, from the folders ``sft_experiment``
wrote; what ``scripts/experiments/compare_sft_runs.py`` runs (on the CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cs336_alignment.experiments.configs import RunComparisonConfig
from cs336_alignment.experiments.grpo_comparison import load_run
from cs336_alignment.experiments.sft_sweep import COLUMNS, CURVES, curve_labels
from cs336_alignment.plots import plot_runs
from cs336_alignment.reports import write_report


def compare_sft_runs(cfg: RunComparisonConfig) -> list[dict[str, Any]]:
    """Write ``<name>.{md,json}`` (every run's rows, by dataset size then steps) and ``<name>.png`` (validation
    accuracy and loss per token against steps, one line per dataset size and step count); return the rows."""
    runs = []
    for folder in map(Path, cfg.runs):
        summary, records = load_run(folder, "sft_experiment.json")
        for row in summary["rows"]:
            runs.append((row, [r for r in records if r.get("train_size") == row["train_size"]], folder))
    runs.sort(key=lambda run: (run[0]["train_size"], run[0]["steps"]))
    curves = {}
    for row, records, folder in runs:
        label = f"{row['train_size']} examples, {row['steps']} steps"
        curves[label if label not in curves else f"{label} ({folder.name})"] = records
    rows = [row for row, _, _ in runs]
    title = cfg.title or f"SFT runs compared: {cfg.name.replace('_', ' ')}"
    write_report(cfg.out_dir, cfg.name, title, rows, COLUMNS, {"runs": cfg.runs})
    plot_runs(curves, CURVES, Path(cfg.out_dir) / f"{cfg.name}.png", title, labels=curve_labels())
    print(f"table: {Path(cfg.out_dir) / f'{cfg.name}.md'}  plot: {Path(cfg.out_dir) / f'{cfg.name}.png'}")
    return rows
