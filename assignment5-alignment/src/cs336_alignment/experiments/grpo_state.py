"""The saved state of a ``grpo_experiment`` run that a later call continues (``--state_dir``): the device tool
allows 10 minutes a call, and the handout's 200 GRPO steps take several calls.

A state is one folder ``<state_dir>/step_<next step>/``: ``policy.pt`` (the weights), ``trainer.pt`` (AdamW's
state and the random generators' states) and ``run.json`` (the config, the "before" evaluation and the metrics
records so far). It is written as a hidden temporary folder and renamed into place, so a folder named
``step_*`` is always complete; a writer killed mid-write leaves only its temporary, which is never loaded and which
the next save removes. After the rename the older states are deleted.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cs336_alignment.experiments.configs import GRPOExperimentConfig
from cs336_alignment.experiments.run_state import (
    flat_config,
    load_trainer,
    require_same_run,
    trainer_writer,
    write_state_folder,
)
from cs336_alignment.grpo_loop import GRPOProgress

MAY_CHANGE = ("grpo.max_seconds", "grpo.eval_every", "state_dir", "out_dir")
"""Config keys a resumed call may change: how long this call trains, how often it validates, and where the state
and the report are (the device tool's output folder need not keep its path from call to call)."""
_PREFIX = "step_"


@dataclass
class GRPORunState:
    """Everything a resumed ``grpo_experiment`` call needs besides the model files it starts from."""

    config: dict[str, Any]
    before: list[dict[str, Any]]
    records: list[dict[str, Any]]
    progress: GRPOProgress
    policy: dict[str, torch.Tensor]


def check_same_run(saved: dict[str, Any], cfg: GRPOExperimentConfig, where: Path) -> None:
    """Raise unless ``cfg`` is the saved run's config up to ``MAY_CHANGE``."""
    require_same_run(saved, flat_config(cfg), where, MAY_CHANGE, "GRPO")


def save_state(state_dir: str | os.PathLike, state: GRPORunState) -> Path:
    """Write ``state`` as ``state_dir/step_<next step>`` atomically, then delete older states; return the folder."""
    state_dir = Path(state_dir)
    progress = state.progress
    run = {"next_step": progress.next_step, "config": state.config, "before": state.before, "records": state.records}
    files = {
        "policy.pt": lambda f: torch.save(state.policy, f),
        "trainer.pt": trainer_writer(progress),
        "run.json": lambda f: f.write(json.dumps(run).encode()),
    }
    target = write_state_folder(state_dir, f"{_PREFIX}{progress.next_step:06d}", files)
    for older in saved_states(state_dir)[:-1]:
        shutil.rmtree(older)
    return target


def load_state(state_dir: str | os.PathLike, cfg: GRPOExperimentConfig) -> GRPORunState | None:
    """The latest complete state in ``state_dir`` (None when there is none), checked against ``cfg``."""
    states = saved_states(Path(state_dir))
    if not states:
        return None
    folder = states[-1]
    run = json.loads((folder / "run.json").read_text())
    check_same_run(run["config"], cfg, folder)
    trainer = load_trainer(folder)
    progress = GRPOProgress(
        run["next_step"], trainer["optimizer"], trainer["question_rng"], trainer["torch_rng"], trainer["cuda_rng"]
    )
    policy = torch.load(folder / "policy.pt", map_location="cpu", weights_only=True)
    return GRPORunState(run["config"], run["before"], run["records"], progress, policy)


def saved_states(state_dir: Path) -> list[Path]:
    """The complete state folders in ``state_dir``, oldest first (temporaries are never among them)."""
    if not state_dir.is_dir():
        return []
    return sorted(p for p in state_dir.glob(_PREFIX + "*") if p.is_dir())
