"""What the resumable experiments (``grpo_state``, ``ei_state``) share about their saved states: the config as
compared across calls, the check that a state belongs to the run continuing it, and the atomic write of one state
folder (a hidden temporary renamed into place, so a folder under its own name is always complete and a writer killed
mid-write leaves only a temporary, which is never loaded and which the next save removes)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import torch
from cs336_basics.toolkit.atomic import fsync_directory

TEMPORARY = ".saving-"

Writer = Callable[[BinaryIO], object]


def flat_config(cfg: Any) -> dict[str, Any]:
    """A dataclass config as compared across calls: flat ``section.key`` names, JSON values."""
    flat = {}
    for key, value in asdict(cfg).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            flat[key] = value
    return json.loads(json.dumps(flat))


def require_same_run(saved: dict[str, Any], now: dict[str, Any], where: Path, may_change: Iterable[str], kind: str):
    """Raise unless ``now`` equals the ``saved`` config up to the keys in ``may_change``."""
    may_change = tuple(may_change)
    differ = [
        f"{key}: saved {saved.get(key)!r}, now {now.get(key)!r}"
        for key in sorted(saved.keys() | now.keys())
        if key not in may_change and saved.get(key) != now.get(key)
    ]
    if differ:
        raise ValueError(
            f"the {kind} state in {where} belongs to another run ({'; '.join(differ)}); only "
            f"{', '.join(may_change)} may change between calls. Repeat the saved run's command, or pass a new "
            "--state_dir for a new run"
        )


def trainer_writer(progress: Any) -> Writer:
    """``trainer.pt``'s contents: AdamW's state and the random generators' states of a run's progress."""
    trainer = {
        "optimizer": progress.optimizer,
        "question_rng": progress.question_rng,
        "torch_rng": progress.torch_rng,
        "cuda_rng": progress.cuda_rng,
    }
    return lambda f: torch.save(trainer, f)


def load_trainer(folder: Path) -> dict[str, Any]:
    return torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)


def write_state_folder(parent: Path, name: str, files: dict[str, Writer]) -> Path:
    """Write ``files`` (name -> writer) as the folder ``parent/name`` atomically, after removing temporaries left by
    killed writers; a state is saved once, so an existing folder is an error. Return the folder."""
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(TEMPORARY + "*"):
        shutil.rmtree(stale)
    target = parent / name
    if target.exists():
        raise FileExistsError(f"{target} exists: a state is saved once")
    tmp = Path(tempfile.mkdtemp(prefix=TEMPORARY, dir=parent))
    for file_name, write in files.items():
        with (tmp / file_name).open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    os.rename(tmp, target)
    fsync_directory(parent)
    return target
