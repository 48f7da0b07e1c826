"""The saved state of one ``expert_iteration_experiment`` setting that a later call continues (``--state_dir``):
the device tool allows 10 minutes a call, and the handout's 5 rounds of 1,024-2,048 questions take several calls.

Each setting keeps its own folder ``<state_dir>/<G>x<rounds>/``, saved after every round as
``round_<next round>/``: ``policy.pt`` (the weights), ``trainer.pt`` (AdamW's state and the random generators'
states) and ``run.json`` (the setting's config, the metrics records so far and the seconds spent). A setting whose
rounds are all done and whose final evaluation ran is saved as ``finished/``, ``run.json`` alone (with that
evaluation), so a later call reports it without loading the model. A state is written as a hidden temporary folder
and renamed into place, so a named folder is always complete; a writer killed mid-write leaves only its temporary,
which is never loaded and which the next save removes. After the rename the older states are deleted.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from cs336_alignment.experiments.configs import ExpertIterationSweepConfig, parse_setting
from cs336_alignment.experiments.run_state import (
    flat_config,
    load_trainer,
    require_same_run,
    trainer_writer,
    write_state_folder,
)
from cs336_alignment.expert_iteration import EIProgress

MAY_CHANGE = ("ei.ei_max_seconds", "state_dir", "out_dir")
"""Config keys a resumed call may change: how long this call trains, and where the state and the report are (the
device tool's output folder need not keep its path from call to call). Other settings may join or leave
``--settings``: each setting's state is compared with that setting's config alone."""
FINISHED = "finished"
_PREFIX = "round_"


@dataclass
class EIRunState:
    """Everything a resumed setting needs besides the model files it starts from; a finished one keeps only its
    records, seconds and final evaluation (``progress`` and ``policy`` are None)."""

    config: dict[str, Any]
    records: list[dict[str, Any]]
    seconds: float
    progress: EIProgress | None
    policy: dict[str, torch.Tensor] | None
    final: list[dict[str, Any]] | None = None


def setting_name(setting: str) -> str:
    """``"8X5"`` -> ``"8x5"``: the folder of a setting, however it was typed."""
    samples, rounds = parse_setting(setting)
    return f"{samples}x{rounds}"


def setting_folder(cfg: ExpertIterationSweepConfig, setting: str) -> Path:
    return Path(cfg.state_dir) / setting_name(setting)


def setting_config(cfg: ExpertIterationSweepConfig, setting: str) -> dict[str, Any]:
    """The config of one setting's run as compared across calls: the sweep's, with the setting's G and rounds in
    ``ei`` and no other setting; flat ``section.key`` names, JSON values."""
    samples, rounds = parse_setting(setting)
    ei = replace(cfg.ei, rollouts_per_question=samples, n_ei_steps=rounds)
    return flat_config(replace(cfg, ei=ei, settings=[setting_name(setting)]))


def check_same_run(saved: dict[str, Any], now: dict[str, Any], where: Path) -> None:
    """Raise unless ``now`` is the saved setting's config up to ``MAY_CHANGE``."""
    require_same_run(saved, now, where, MAY_CHANGE, "expert-iteration")


def save_state(folder: str | os.PathLike, state: EIRunState) -> Path:
    """Write ``state`` into ``folder`` (one setting's) atomically, as ``finished`` when it has its final evaluation
    and as ``round_<next round>`` otherwise, then delete the older states; return the state's folder."""
    folder = Path(folder)
    run: dict[str, Any] = {"config": state.config, "records": state.records, "seconds": state.seconds}
    files = {}
    if state.final is not None:
        name = FINISHED
        run["final"] = state.final
    elif state.progress is not None and state.policy is not None:
        name = f"{_PREFIX}{state.progress.next_round:03d}"
        run |= {"next_round": state.progress.next_round, "step": state.progress.step}
        files = {"policy.pt": lambda f: torch.save(state.policy, f), "trainer.pt": trainer_writer(state.progress)}
    else:
        raise ValueError("a state needs its final evaluation, or its progress and weights")
    files["run.json"] = lambda f: f.write(json.dumps(run).encode())
    target = write_state_folder(folder, name, files)
    for older in saved_states(folder):
        if older != target:
            shutil.rmtree(older)
    return target


def load_state(folder: str | os.PathLike, config: dict[str, Any]) -> EIRunState | None:
    """The latest complete state in ``folder`` (None when there is none), checked against ``config``
    (``setting_config``'s); a finished state comes without weights."""
    states = saved_states(Path(folder))
    if not states:
        return None
    latest = states[-1]
    run = json.loads((latest / "run.json").read_text())
    check_same_run(run["config"], config, latest)
    if latest.name == FINISHED:
        return EIRunState(run["config"], run["records"], run["seconds"], None, None, run["final"])
    trainer = load_trainer(latest)
    progress = EIProgress(
        run["next_round"],
        run["step"],
        trainer["optimizer"],
        trainer["question_rng"],
        trainer["torch_rng"],
        trainer["cuda_rng"],
    )
    policy = torch.load(latest / "policy.pt", map_location="cpu", weights_only=True)
    return EIRunState(run["config"], run["records"], run["seconds"], progress, policy)


def saved_states(folder: Path) -> list[Path]:
    """The complete states in ``folder``, oldest first, ``finished`` last (temporaries are never among them)."""
    if not folder.is_dir():
        return []
    rounds = sorted(p for p in folder.glob(_PREFIX + "*") if p.is_dir())
    return rounds + [p for p in [folder / FINISHED] if p.is_dir()]
