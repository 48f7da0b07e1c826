"""The handout's flash_benchmarking grid: our Triton FlashAttention-2 vs the PyTorch-tiled one vs naive attention.

Batch 1, causal, sequence lengths 128 … 65536, head sizes 16 … 128, bfloat16 and float32 (the handout's
grid); forward, backward and forward+backward medians from ``triton.testing.do_bench`` per implementation
(``bench_attention.measure``), one table row per (dtype, head size, length) with the three implementations
side by side. The Python-loop tiled version is timed only up to ``--pytorch-tiled-max-seq``; an
out-of-memory cell reads ``OOM``. ``flash_grid.md`` (a header naming the device and versions, then the
table) is rewritten after every cell, so a cut-off run still leaves a committable table of what finished;
raw rows go to ``flash_grid.jsonl``.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \\
        python3 assignment2-systems/benchmarks/bench_flash_grid.py --out /tmp/flash_grid
"""

import argparse
import itertools
import json
import os
import sys
from dataclasses import dataclass, field

import torch
import torch._functorch.config
import triton
from bench_attention import DTYPES, build_implementations, measure

IMPLS = {"triton": "Triton", "pytorch_tiled": "PyTorch tiled", "naive": "naive"}
PHASES = {"fwd_ms": "fwd", "bwd_ms": "bwd", "fwd_bwd_ms": "fwd+bwd"}


@dataclass
class GridConfig:
    out: str = "flash_grid_results"
    seq_lens: list[int] = field(default_factory=lambda: [2**p for p in range(7, 17)])
    head_dims: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    dtypes: list[str] = field(default_factory=lambda: ["bfloat16", "float32"])
    impls: list[str] = field(default_factory=lambda: list(IMPLS))
    pytorch_tiled_max_seq: int = 512
    warmup_ms: int = 10
    rep_ms: int = 50


def parse_args() -> GridConfig:
    d = GridConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=d.out)
    parser.add_argument("--seq-lens", type=int, nargs="+", default=d.seq_lens)
    parser.add_argument("--head-dims", type=int, nargs="+", default=d.head_dims)
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=d.dtypes)
    parser.add_argument("--impls", nargs="+", choices=list(IMPLS), default=d.impls)
    parser.add_argument("--pytorch-tiled-max-seq", type=int, default=d.pytorch_tiled_max_seq)
    parser.add_argument("--warmup-ms", type=int, default=d.warmup_ms)
    parser.add_argument("--rep-ms", type=int, default=d.rep_ms)
    return GridConfig(**vars(parser.parse_args()))


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


def _write_atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main() -> None:
    config = parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_flash_grid needs a CUDA GPU")
    os.makedirs(config.out, exist_ok=True)
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
        open(os.path.join(config.out, "flash_grid.jsonl"), "w") as jsonl,
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
            _write_atomic(os.path.join(config.out, "flash_grid.md"), f"{header}\n\n{grid_table(cells, config.impls)}\n")
    print(grid_table(cells, config.impls))


if __name__ == "__main__":
    main()
