"""Expert-iteration runs merged into one report (settings run as separate processes, each with its own folder): one
table row per setting, and validation accuracy, the entropy and loss of the policy on the responses it kept, and
the share of rollouts kept, all against SFT steps, from the folders ``expert_iteration_experiment`` wrote; what
``scripts/experiments/compare_ei_runs.py`` runs (on the CPU). The entropy panel is the handout's plot of the
entropy of the model's responses over training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cs336_alignment.experiments.configs import RunComparisonConfig
from cs336_alignment.experiments.expert_iteration_sweep import COLUMNS
from cs336_alignment.experiments.grpo_comparison import load_run
from cs336_alignment.plots import plot_runs
from cs336_alignment.reports import write_report

CURVES = ["val_reward", "entropy", "nll_per_token", "rollout_reward"]
LABELS = {
    "val_reward": "validation accuracy (first subset problems)",
    "entropy": "entropy of the policy on its kept responses",
    "nll_per_token": "loss per response token (nats)",
    "rollout_reward": "share of rollouts kept (at each round's start)",
}


def compare_ei_runs(cfg: RunComparisonConfig) -> list[dict[str, Any]]:
    """Write ``<name>.{md,json}`` (every setting's row, in the order given) and ``<name>.png`` (the curves against
    SFT steps, one line per setting); return the rows."""
    rows, curves = [], {}
    for folder in map(Path, cfg.runs):
        summary, records = load_run(folder, "expert_iteration_experiment.json")
        for row in summary["rows"]:
            label = f"G x rounds = {row['setting']}"
            curves[label if label not in curves else f"{label} ({folder.name})"] = [
                r for r in records if r.get("setting") == row["setting"]
            ]
            rows.append(row)
    title = cfg.title or f"Expert-iteration runs compared: {cfg.name.replace('_', ' ')}"
    write_report(cfg.out_dir, cfg.name, title, rows, COLUMNS, {"runs": cfg.runs})
    plot_runs(curves, CURVES, Path(cfg.out_dir) / f"{cfg.name}.png", title, labels=LABELS)
    print(f"table: {Path(cfg.out_dir) / f'{cfg.name}.md'}  plot: {Path(cfg.out_dir) / f'{cfg.name}.png'}")
    return rows
