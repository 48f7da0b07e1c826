"""A file too large for one transfer, moved as checked parts: split here, stored part by part as transfers
arrive there, and put back together once all have, each part and the whole checked against their sha256."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from cs336_basics.toolkit.atomic import atomic_output


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def split_file(path: str | os.PathLike, out_dir: str | os.PathLike, part_bytes: int) -> dict[str, Any]:
    """Write ``out_dir/part<k>/<name>.part<k>`` (one folder per transfer) and return the manifest describing them."""
    path, out_dir = Path(path), Path(out_dir)
    if part_bytes < 1:
        raise ValueError(f"part_bytes must be positive, got {part_bytes}")
    parts = []
    with open(path, "rb") as f:
        for number, chunk in enumerate(iter(lambda: f.read(part_bytes), b""), 1):
            part = out_dir / f"part{number}" / f"{path.name}.part{number}"
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(chunk)
            parts.append({"folder": f"part{number}", "name": part.name, "sha256": hashlib.sha256(chunk).hexdigest()})
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256(path), "parts": parts}


def store_arrived_parts(carry_dir: str | os.PathLike, store: str | os.PathLike, manifest: dict[str, Any]) -> list[str]:
    """Copy the parts present under ``carry_dir`` into ``store`` (each checked); return the folders still missing."""
    carry_dir, store = Path(carry_dir), Path(store)
    store.mkdir(parents=True, exist_ok=True)
    for part in manifest["parts"]:
        arrived = carry_dir / part["folder"] / part["name"]
        if arrived.is_file() and not (store / part["name"]).is_file():
            if sha256(arrived) != part["sha256"]:
                raise ValueError(f"{arrived}: sha256 mismatch, the part was damaged in transit; carry it again")
            with open(arrived, "rb") as source, atomic_output(store / part["name"]) as target:
                shutil.copyfileobj(source, target, 1 << 22)
    return [p["folder"] for p in manifest["parts"] if not (store / p["name"]).is_file()]


def assemble(store: str | os.PathLike, manifest: dict[str, Any], out_path: str | os.PathLike) -> Path:
    """Concatenate the stored parts into ``out_path`` and check the whole file's sha256."""
    store, out_path = Path(store), Path(out_path)
    digest = hashlib.sha256()
    with atomic_output(out_path) as out:  # a mismatch raises inside: out_path is left untouched
        for part in manifest["parts"]:
            with open(store / part["name"], "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != manifest["sha256"]:
            raise ValueError(f"the parts in {store} do not reassemble {manifest['name']} (sha256 mismatch)")
    return out_path
