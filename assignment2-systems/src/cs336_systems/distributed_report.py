"""Turn per-rank measurements into one table: reduce over ranks, format markdown, write files atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist


def reduce_over_ranks(values: dict[str, float], op: str = "max") -> dict[str, float]:
    """Element-wise max (the slowest rank sets the pace) or mean of a dict of floats over all ranks."""
    if op not in ("max", "mean"):
        raise ValueError(f"op must be 'max' or 'mean', got {op!r}")
    keys = sorted(values)
    # NCCL reduces only CUDA tensors; gloo only CPU ones
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    if op == "mean":
        tensor /= dist.get_world_size()
    return dict(zip(keys, tensor.tolist(), strict=True))


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A GitHub markdown table; floats get 3 significant digits (whole numbers from 1000 on), blanks for None."""

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def write_results(out_dir: str | os.PathLike, stem: str, meta: dict, rows: list[dict], table: str) -> None:
    """`<stem>.json` (run metadata and rows) and `<stem>.md` (the table under a line of metadata)."""
    out = Path(out_dir)
    write_atomically(out / f"{stem}.json", json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    header = ", ".join(f"{k}={v}" for k, v in meta.items())
    write_atomically(out / f"{stem}.md", f"<!-- {header} -->\n{table}\n")


def run_metadata(backend: str, device: torch.device) -> dict:
    """Where the numbers come from: world size, backend, device name and torch version."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    return {
        "world_size": dist.get_world_size(),
        "backend": backend,
        "device": name,
        "torch": torch.__version__,
    }
