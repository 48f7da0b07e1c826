"""The handout's flash_benchmarking grid: our Triton FlashAttention-2 vs the PyTorch-tiled one vs naive attention.

Batch 1, causal, sequence lengths 128 … 65536, head sizes 16 … 128, bfloat16 and float32 (the handout's
grid); forward, backward and forward+backward medians from ``triton.testing.do_bench`` per implementation
(``bench_attention.measure``), one table row per (dtype, head size, length) with the three implementations
side by side. The Python-loop tiled version is timed only up to ``--pytorch_tiled_max_seq``; an
out-of-memory cell reads ``OOM``. ``flash_grid.md`` (a header naming the device and versions, then the
table) is rewritten after every cell, so a cut-off run still leaves a committable table of what finished;
raw rows go to ``flash_grid.jsonl``.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \\
        python3 assignment2-systems/benchmarks/bench_flash_grid.py --out_dir /tmp/flash_grid
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Literal

from cs336_basics.toolkit.cli import parse_config

IMPLS = {"triton": "Triton", "pytorch_tiled": "PyTorch tiled", "naive": "naive"}
PHASES = {"fwd_ms": "fwd", "bwd_ms": "bwd", "fwd_bwd_ms": "fwd+bwd"}


@dataclass(frozen=True)
class GridConfig:
    """The handout's flash_benchmarking grid: Triton vs PyTorch-tiled vs naive attention, side by side."""

    out_dir: str = field(default="runs/flash_grid", metadata={"help": "folder for flash_grid.md and .jsonl"})
    seq_lens: list[int] = field(
        default_factory=lambda: [2**p for p in range(7, 17)], metadata={"help": "sequence lengths"}
    )
    head_dims: list[int] = field(default_factory=lambda: [16, 32, 64, 128], metadata={"help": "head sizes"})
    dtypes: list[Literal["float32", "bfloat16"]] = field(
        default_factory=lambda: ["bfloat16", "float32"], metadata={"help": "input dtypes"}
    )
    impls: list[Literal["triton", "pytorch_tiled", "naive"]] = field(
        default_factory=lambda: list(IMPLS), metadata={"help": "implementations, in the table's column order"}
    )
    pytorch_tiled_max_seq: int = field(
        default=512, metadata={"help": "the Python-loop tiled version is only timed up to this length"}
    )
    warmup_ms: int = field(default=10, metadata={"help": "do_bench warm-up time per measurement"})
    rep_ms: int = field(default=50, metadata={"help": "do_bench measuring time per measurement"})


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(GridConfig, description=__doc__)

import torch  # noqa: E402
import torch._functorch.config  # noqa: E402  (patched around the grid)
import triton  # noqa: E402
from bench_attention import DTYPES, build_implementations, measure  # noqa: E402
from cs336_basics.toolkit.atomic import write_text_atomic  # noqa: E402


def _cell(value) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else f"{value:.3f}" if value < 100 else f"{value:.1f}"


def grid_table(cells: dict[tuple, dict], impls: list[str]) -> str:
    """One row per (dtype, d, seq): each implementation's fwd / bwd / fwd+bwd ms, then naive ÷ Triton."""
    header = ["dtype", "d", "seq"] + [f"{IMPLS[i]} {p}" for i in impls for p in PHASES.values()]
    speedup = "naive" in impls and "triton" in impls
    header += ["fwd+bwd naive ÷ Triton"] if speedup else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dtype, head_dim, seq_len in dict.fromkeys(key[:3] for key in cells):
        row = [dtype, str(head_dim), str(seq_len)]
        for impl in impls:
            result = cells.get((dtype, head_dim, seq_len, impl), {})
            row += [_cell(result.get(phase)) for phase in PHASES]
        if speedup:
            naive = cells.get((dtype, head_dim, seq_len, "naive"), {}).get("fwd_bwd_ms")
            ours = cells.get((dtype, head_dim, seq_len, "triton"), {}).get("fwd_bwd_ms")
            both = isinstance(naive, float) and isinstance(ours, float)
            row.append(f"{naive / ours:.2f}x" if both else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(config: GridConfig) -> None:
    if not torch.cuda.is_available():
        sys.exit("bench_flash_grid needs a CUDA GPU")
    os.makedirs(config.out_dir, exist_ok=True)
    header = (
        f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}; "
        f"batch 1, causal; do_bench medians in ms (warm-up {config.warmup_ms} ms, {config.rep_ms} ms of repeats); "
        f"PyTorch tiled up to {config.pytorch_tiled_max_seq} tokens"
    )
    print(header, flush=True)
    impls = build_implementations()
    cells: dict[tuple, dict] = {}
    grid = itertools.product(config.dtypes, config.head_dims, config.seq_lens, config.impls)
    # The backward is timed by replaying one graph (retain_graph=True), which compiled backwards' donated
    # buffers would forbid.
    with (
        open(os.path.join(config.out_dir, "flash_grid.jsonl"), "w") as jsonl,
        torch._functorch.config.patch(donated_buffer=False),
    ):
        for dtype, head_dim, seq_len, impl in grid:
            if impl == "pytorch_tiled" and seq_len > config.pytorch_tiled_max_seq:
                continue
            timing = measure(impls[impl], (1, seq_len, head_dim), DTYPES[dtype], True, config.warmup_ms, config.rep_ms)
            cells[dtype, head_dim, seq_len, impl] = timing
            row = {"dtype": dtype, "head_dim": head_dim, "seq_len": seq_len, "impl": impl, **timing}
            jsonl.write(json.dumps(row) + "\n")
            jsonl.flush()
            print(row, flush=True)
            table = grid_table(cells, config.impls)
            write_text_atomic(os.path.join(config.out_dir, "flash_grid.md"), f"{header}\n\n{table}\n")
    print(grid_table(cells, config.impls))


if __name__ == "__main__":
    main(CONFIG)
