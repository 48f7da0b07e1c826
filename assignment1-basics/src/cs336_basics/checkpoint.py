"""Checkpoints: model, optimizer, iteration (and optional extras), written atomically, verified on load.

The file is a plain ``torch.save`` of a dict, loadable with ``weights_only=True``. It also holds a SHA-256 of its
contents (every tensor's bytes, dtype and shape, every key and value), so a bit flipped on disk or in transfer is
an error on load instead of a silently changed weight. A checkpoint without one (e.g. written by the course's
reference code) still loads, with a warning.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import IO, Any, BinaryIO

import torch
from torch import nn

from cs336_basics.toolkit.atomic import atomic_output

CHECKSUM_KEY = "checksum"
_REQUIRED_KEYS = ("model", "optimizer", "iteration")


class CorruptCheckpointError(ValueError):
    """A checkpoint that cannot be read, or whose contents differ from what was saved."""


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
    """Save ``{"model", "optimizer", "iteration", **extra, "checksum"}``.

    A path is written through a temporary file in the same directory and renamed into place (see
    :mod:`cs336_basics.toolkit.atomic`), so a crash mid-write leaves the previous checkpoint intact, never a
    truncated file under the final name; the next save removes a killed writer's temporary.
    """
    payload = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "iteration": int(iteration),
        **(extra or {}),
    }
    if CHECKSUM_KEY in payload:
        raise ValueError(f"extra must not use the reserved key {CHECKSUM_KEY!r}")
    payload[CHECKSUM_KEY] = content_checksum(payload)
    if not isinstance(out, (str, os.PathLike)):
        torch.save(payload, out)
        return
    with atomic_output(out) as f:
        torch.save(payload, f)


def read_checkpoint(src: str | os.PathLike | BinaryIO | IO[bytes]) -> dict[str, Any]:
    """The checkpoint dict (checksum verified and removed), on the CPU, loaded with ``weights_only=True``."""
    name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else getattr(src, "name", "<file object>")
    if isinstance(src, (str, os.PathLike)):
        if not Path(src).is_file():
            raise FileNotFoundError(f"checkpoint {name} does not exist")
        if Path(src).stat().st_size == 0:
            raise CorruptCheckpointError(f"checkpoint {name} is empty (0 bytes): it was never completely written")
    try:
        payload = torch.load(src, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # torch reports a damaged file as EOFError, RuntimeError, UnpicklingError, ...
        raise CorruptCheckpointError(f"checkpoint {name} cannot be read (truncated or corrupt?): {err}") from err
    if not isinstance(payload, dict):
        raise CorruptCheckpointError(f"checkpoint {name} holds a {type(payload).__name__}, not a checkpoint dict")
    stored = payload.pop(CHECKSUM_KEY, None)
    if stored is None:
        warnings.warn(f"checkpoint {name} has no checksum (not written by save_checkpoint): unverified", stacklevel=2)
    elif stored != content_checksum(payload):
        raise CorruptCheckpointError(
            f"checkpoint {name} is corrupt: its contents differ from the checksum stored when it was saved"
        )
    return payload


def load_checkpoint(
    src: str | os.PathLike | BinaryIO | IO[bytes],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Restore model (and optimizer) state in place; return the saved iteration."""
    payload = read_checkpoint(src)
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise CorruptCheckpointError(f"checkpoint {src} lacks {missing}: not a model/optimizer checkpoint")
    unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    return payload["iteration"]


def content_checksum(value: Any) -> str:
    """SHA-256 of a checkpoint's contents: containers in order, tensors by dtype, shape and bytes."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return "sha256:" + digest.hexdigest()


def _feed(digest: hashlib._Hash, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}\n".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)}\n".encode())
        for item in value:
            _feed(digest, item)
    else:  # numbers, strings, None, dtypes: repr round-trips them exactly
        digest.update(f"{type(value).__name__} {value!r}\n".encode())
