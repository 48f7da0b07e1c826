"""Training metrics: one JSON line per record (always) and Weights & Biases (when asked)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from cs336_basics.toolkit.atomic import write_text_atomic


class MetricsLogger:
    """Append ``{"step": …, **metrics}`` records to a JSONL file and, optionally, to wandb.

    wandb is offline-safe: without credentials it logs in offline mode (sync later with ``wandb sync``), and if
    it cannot start at all training goes on with the JSONL log and a warning.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        append: bool = False,
        use_wandb: bool = False,
        wandb_project: str = "cs336",
        run_name: str | None = None,
        config: dict[str, Any] | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a" if append else "w")
        self._wandb_run = _start_wandb(wandb_project, run_name, config, self.path.parent) if use_wandb else None

    def log(self, step: int, **metrics: float) -> None:
        record = {"step": step, **metrics}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._wandb_run is not None:
            self._wandb_run.log(metrics, step=step)

    def close(self) -> None:
        self._file.close()
        if self._wandb_run is not None:
            self._wandb_run.finish()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _start_wandb(project: str, run_name: str | None, config: dict[str, Any] | None, directory: Path):
    try:
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        return wandb.init(project=project, name=run_name, config=config, dir=str(directory), mode=mode)
    except Exception as err:  # wandb failing must never stop a training run
        warnings.warn(f"wandb disabled: {err}", stacklevel=2)
        return None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSONL metrics file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def drop_records_after(path: str | os.PathLike, step: int) -> None:
    """Forget records logged after ``step`` (a resumed run repeats those steps; keeping both would plot twice)."""
    path = Path(path)
    if not path.exists():
        return
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in read_metrics(path) if r["step"] <= step))
