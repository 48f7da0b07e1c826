"""Checkpoints: model, optimizer, iteration (and optional extras), written atomically, loadable ``weights_only``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, BinaryIO

import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The module under ``torch.compile``'s wrapper, so saved keys never carry the ``_orig_mod.`` prefix."""
    return getattr(model, "_orig_mod", model)


def save_checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    out: str | os.PathLike | BinaryIO | IO[bytes],
    extra: dict[str, Any] | None = None,
) -> None:
    """Save ``{"model", "optimizer", "iteration", **extra}``.

    A path is written through a temporary file in the same directory and ``os.replace``d, so a crash mid-write
    leaves the previous checkpoint intact and never a truncated file under the final name.
    """
    payload = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "iteration": int(iteration),
        **(extra or {}),
    }
    if not isinstance(out, (str, os.PathLike)):
        torch.save(payload, out)
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(src: str | os.PathLike | BinaryIO | IO[bytes]) -> dict[str, Any]:
    """The raw checkpoint dict, on the CPU, loaded with ``weights_only=True`` (no arbitrary unpickling)."""
    if isinstance(src, (str, os.PathLike)) and not Path(src).is_file():
        raise FileNotFoundError(f"checkpoint {src} does not exist")
    return torch.load(src, map_location="cpu", weights_only=True)


def load_checkpoint(
    src: str | os.PathLike | BinaryIO | IO[bytes],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Restore model (and optimizer) state in place; return the saved iteration."""
    payload = read_checkpoint(src)
    unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    return payload["iteration"]
