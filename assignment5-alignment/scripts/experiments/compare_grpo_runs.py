"""Compare GRPO runs (the learning-rate sweep, an ablation): one table row per run and their reward, validation,
entropy, response-length and no-signal curves overlaid. Runs on the CPU from the folders grpo_experiment wrote.

uv run python assignment5-alignment/scripts/experiments/compare_grpo_runs.py \
    --runs results/grpo/lr_1e-5 results/grpo/lr_3e-5 --name learning_rate --out_dir results/grpo
Writes <name>.md/.json and <name>.png.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cs336_alignment.grpo_report import COLUMNS, CURVES, LABELS
from cs336_alignment.plots import plot_runs
from cs336_alignment.reports import write_report
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.metrics import read_metrics


@dataclass
class CompareConfig:
    """Folders written by grpo_experiment.py, compared in one table and one figure."""

    runs: list[str] = field(default_factory=list, metadata={"help": "grpo_experiment output folders"})
    name: str = field(default="grpo_comparison", metadata={"help": "base name of the table and plot files"})
    title: str = field(default="", metadata={"help": "figure and table title (default: from the name)"})
    out_dir: str = field(default="runs/grpo_comparison", metadata={"help": "folder for the table and plot"})


def load_run(folder: Path) -> tuple[dict, list[dict]]:
    """A run's summary (``grpo.json``) and step records (``metrics.jsonl``)."""
    summary_path, metrics_path = folder / "grpo.json", folder / "metrics.jsonl"
    for path in (summary_path, metrics_path):
        if not path.is_file():
            raise SystemExit(f"{folder} is not a grpo_experiment output folder: {path.name} is missing")
    return json.loads(summary_path.read_text()), read_metrics(metrics_path)


def main() -> None:
    cfg = parse_config(CompareConfig)
    if not cfg.runs:
        raise SystemExit("--runs needs at least one grpo_experiment output folder")
    rows, curves = [], {}
    for folder in map(Path, cfg.runs):
        summary, records = load_run(folder)
        row = summary["rows"][0]
        rows.append(row)
        label = row["run"] if row["run"] not in curves else f"{row['run']} ({folder.name})"
        curves[label] = records
    title = cfg.title or f"GRPO runs compared: {cfg.name.replace('_', ' ')}"
    write_report(cfg.out_dir, cfg.name, title, rows, COLUMNS, {"runs": cfg.runs})
    plot_runs(curves, CURVES, Path(cfg.out_dir) / f"{cfg.name}.png", title, labels=LABELS)
    print(f"table: {Path(cfg.out_dir) / f'{cfg.name}.md'}  plot: {Path(cfg.out_dir) / f'{cfg.name}.png'}")


if __name__ == "__main__":
    main()
