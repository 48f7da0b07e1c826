"""Turn per-rank measurements into one result: reduce over ranks, write the table and its JSON atomically."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic


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


def write_results(out_dir: str | os.PathLike, stem: str, meta: dict, rows: list[dict], table: str) -> None:
    """`<stem>.json` (run metadata and rows) and `<stem>.md` (the table under a line of metadata)."""
    out = Path(out_dir)
    write_json_atomic(out / f"{stem}.json", {"meta": meta, "rows": rows})
    header = ", ".join(f"{k}={v}" for k, v in meta.items())
    write_text_atomic(out / f"{stem}.md", f"<!-- {header} -->\n{table}\n")


def run_metadata(backend: str, device: torch.device) -> dict:
    """Where the numbers come from: world size, backend, device name and torch version."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    return {
        "world_size": dist.get_world_size(),
        "backend": backend,
        "device": name,
        "torch": torch.__version__,
    }
