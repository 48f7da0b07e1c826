"""The forward's way from the tuning script's call to the leaderboard's, timed step by step in one process.

At n = 16384, batch 16 x 16 heads, d = 64, bf16, causal, our forward pinned alone (``tune_flash_kernels.py``:
separate ``(rows, n, d)`` tensors, ``launch_forward`` with a pinned config) took 19.52 ms with TMA and 20.33 with
pointers on an H200, but ~0.8 ms more in ``bench_flash_leaderboard.py``'s forward loop (``(batch, heads, n, d)``
slices of one ``(3, batch, heads, n, d)`` leaf, ``FlashAttentionTriton.apply`` under ``no_grad``, autotuned); the
two never ran in one process. This times the rungs between them on the same values, in order, so the step that
costs the time shows:

- ``rows_pinned``: ``launch_forward`` pinned on separate contiguous ``(rows, n, d)`` tensors, O and L preallocated;
- ``heads_pinned``: the same on separate contiguous ``(batch, heads, n, d)`` tensors;
- ``leaf_pinned``: the same on the leaderboard's slices ``q, k, v = qkv`` of one ``(3, batch, heads, n, d)`` leaf
  that requires grad;
- ``leaf_autotuned``: ``launch_forward`` without a config (the autotuner's pick) on those slices;
- ``leaf_apply``: ``FlashAttentionTriton.apply`` under ``no_grad`` on them, allocating O and L every call;
- ``leaf_cudnn``: SDPA's cuDNN backend on them, the reference.

The pinned config defaults to the autotuner's pick at this shape on an H200 (BENCHMARKS.md, sixth and seventh runs):
128 x 128 tiles, 4 warps, 3 stages with TMA when ``CS336_FLASH_TMA`` puts it in the forward, else 128 x 64, 8 warps,
3 stages with pointer loads. With ``CS336_FLASH_GLUON=forward`` the autotuned rungs (``leaf_autotuned``,
``leaf_apply``) run the Gluon forward, the pinned ones the Triton forward. The ladder runs ``--rounds`` times, so
drift over the run (clocks, temperature) shows as a difference between rounds rather than between rungs. Times are
``triton.testing.do_bench`` medians; every row is printed as it is timed, with its host ms (the CPU time of one call,
the launch path's share), and ``forward_paths.json`` / ``.md`` in ``--out_dir`` are rewritten atomically after it.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \\
        python3 assignment2-systems/benchmarks/bench_flash_forward_paths.py --out_dir /tmp/forward_paths
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from cs336_basics.toolkit.cli import parse_config

RUNGS = {
    "rows_pinned": "(a) launch_forward pinned, separate (rows, n, d) tensors",
    "heads_pinned": "(b) launch_forward pinned, separate (batch, heads, n, d) tensors",
    "leaf_pinned": "(c) launch_forward pinned, slices of one (3, batch, heads, n, d) leaf",
    "leaf_autotuned": "(d) launch_forward autotuned, the leaf's slices",
    "leaf_apply": "(e) FlashAttentionTriton.apply under no_grad, the leaf's slices",
    "leaf_cudnn": "(f) SDPA cuDNN under no_grad, the leaf's slices",
}
"""Short name -> what the rung times, in ladder order (the tuning script's call first, the leaderboard's last)."""
REFERENCE_RUNG = "leaf_cudnn"
PINNED_PICKS = {True: (128, 128, 4, 3), False: (128, 64, 8, 3)}
"""The autotuner's forward pick (BLOCK_M, BLOCK_N, warps, stages) at the leaderboard shape on an H200, with TMA and
with pointer loads (BENCHMARKS.md, sixth and seventh H200 runs)."""


@dataclass(frozen=True)
class ForwardPathsConfig:
    """The forward timed along the ladder from the tuning script's pinned call to the leaderboard's, in one process."""

    out_dir: str = field(
        default="runs/flash_forward_paths", metadata={"help": "folder for forward_paths.json and forward_paths.md"}
    )
    batch: int = field(default=16, metadata={"help": "batch size"})
    heads: int = field(default=16, metadata={"help": "attention heads"})
    seq_len: int = field(default=16384, metadata={"help": "sequence length"})
    head_dim: int = field(default=64, metadata={"help": "head size"})
    rungs: list[Literal["rows_pinned", "heads_pinned", "leaf_pinned", "leaf_autotuned", "leaf_apply", "leaf_cudnn"]] = (
        field(default_factory=lambda: list(RUNGS), metadata={"help": "rungs to time, in the ladder's order"})
    )
    rounds: int = field(default=2, metadata={"help": "times the whole ladder is timed, one round after the other"})
    warmup_ms: int = field(default=50, metadata={"help": "do_bench warm-up time per rung"})
    rep_ms: int = field(default=300, metadata={"help": "do_bench measuring time per rung"})
    host_calls: int = field(default=20, metadata={"help": "calls issued back to back for each rung's host ms"})
    block_m: int | None = field(default=None, metadata={"help": "pinned query tile (none: the autotuner's pick)"})
    block_n: int | None = field(default=None, metadata={"help": "pinned key tile (none: the autotuner's pick)"})
    num_warps: int | None = field(default=None, metadata={"help": "pinned warps (none: the autotuner's pick)"})
    num_stages: int | None = field(default=None, metadata={"help": "pinned stages (none: the autotuner's pick)"})
    pinned_tma: Literal["switch", "on", "off"] = field(
        default="switch",
        metadata={"help": "TMA in the pinned rungs: as CS336_FLASH_TMA puts it in the forward, or on, or off"},
    )

    def __post_init__(self):
        if not self.rungs:
            raise ValueError("rungs is empty")
        if unknown := sorted(set(self.rungs) - set(RUNGS)):
            raise ValueError(f"unknown rungs {unknown}; choose from {', '.join(RUNGS)}")
        if min(self.batch, self.heads, self.seq_len, self.head_dim, self.rounds, self.host_calls) < 1:
            raise ValueError("batch, heads, seq_len, head_dim, rounds and host_calls must be >= 1")
        tiles = (self.block_m, self.block_n, self.num_warps, self.num_stages)
        if any(value is not None and value < 1 for value in tiles):
            raise ValueError(f"the pinned tiles and schedule must be >= 1; got {tiles}")

    def pinned(self, switch_tma: bool) -> tuple[int, int, int, int, bool]:
        """(BLOCK_M, BLOCK_N, warps, stages, tma) of the pinned rungs: the flags given, the autotuner's pick for the
        rest (the TMA pick when the pinned rungs use TMA)."""
        tma = switch_tma if self.pinned_tma == "switch" else self.pinned_tma == "on"
        given = (self.block_m, self.block_n, self.num_warps, self.num_stages)
        return (*(value if value is not None else pick for value, pick in zip(given, PINNED_PICKS[tma])), tma)


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(ForwardPathsConfig, description=__doc__)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
from cs336_basics.toolkit.atomic import write_text_atomic  # noqa: E402
from cs336_basics.toolkit.tables import records_table  # noqa: E402
from cs336_systems.benchmarking.timing import host_seconds_per_call  # noqa: E402
from cs336_systems.flash_attention import FlashAttentionTriton  # noqa: E402
from cs336_systems.flash_attention.triton_function import (  # noqa: E402
    AUTOTUNED_TMA,
    GLUON_ENV,
    TMA_ENV,
    ForwardConfig,
    autotuned_gluon_name,
    autotuned_tma_name,
    launch_forward,
)
from jaxtyping import Float  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

QKV = tuple[Tensor, Tensor, Tensor]
LAYOUTS = {"rows_pinned": "rows", "heads_pinned": "heads"}
"""Rungs on their own tensors; every other rung takes the leaf's slices."""


def ladder_inputs(
    batch: int, heads: int, seq_len: int, head_dim: int, device: str, dtype: torch.dtype = torch.bfloat16
) -> dict[str, QKV]:
    """Q, K, V holding the same values in the three layouts: ``leaf``, the slices ``q, k, v = qkv`` of one
    ``(3, batch, heads, n, d)`` tensor that requires grad (as the leaderboard makes them; the slices keep it alive),
    ``heads``, contiguous copies of them, and ``rows``, contiguous ``(batch x heads, n, d)`` copies."""
    qkv = torch.randn(3, batch, heads, seq_len, head_dim, device=device, dtype=dtype, requires_grad=True)
    leaf: QKV = tuple(qkv)
    by_heads: QKV = tuple(t.detach().clone() for t in leaf)
    by_rows: QKV = tuple(t.reshape(batch * heads, seq_len, head_dim).clone() for t in by_heads)
    return {"leaf": leaf, "heads": by_heads, "rows": by_rows}


def rung_call(rung: str, inputs: dict[str, QKV], pinned: ForwardConfig) -> Callable[[], Tensor]:
    """One forward of ``rung`` on its tensors of ``inputs``, returning O (causal)."""
    q, k, v = inputs[LAYOUTS.get(rung, "leaf")]
    if rung == "leaf_apply":

        def apply() -> Float[Tensor, "batch heads n d"]:
            with torch.no_grad():
                return FlashAttentionTriton.apply(q, k, v, True)

        return apply
    if rung == "leaf_cudnn":

        def cudnn() -> Float[Tensor, "batch heads n d"]:
            with torch.no_grad(), sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        return cudnn
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:-1], device=q.device, dtype=torch.float32)
    config = None if rung == "leaf_autotuned" else pinned

    def launch() -> Float[Tensor, "... n d"]:
        launch_forward(q, k, v, out, lse, True, config)
        return out

    return launch


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row with ``vs_first`` (its ms over the round's first rung) and ``vs_cudnn`` (over the round's cuDNN
    rung, when timed)."""
    firsts, references = {}, {}
    for row in rows:
        firsts.setdefault(row["round"], row["ms"])
        if row["rung"] == REFERENCE_RUNG:
            references[row["round"]] = row["ms"]
    return [
        {
            **row,
            "vs_first": row["ms"] / firsts[row["round"]],
            "vs_cudnn": row["ms"] / references[row["round"]] if row["round"] in references else None,
        }
        for row in rows
    ]


COLUMNS = {
    "round": "round",
    "rung": "rung",
    "path": "path",
    "ms": "ms",
    "host_ms": "host ms",
    "vs_first": "vs first rung",
    "vs_cudnn": "vs cuDNN",
}


def write_results(config: ForwardPathsConfig, machine: dict, rows: list[dict]) -> str:
    """``forward_paths.json`` (config, machine, rows with ratios) and ``forward_paths.md`` (a header line and the
    table), atomically; returns the markdown. ``machine`` holds the device, versions, the ``CS336_FLASH_TMA`` and
    ``CS336_FLASH_GLUON`` switches and the pinned config."""
    rows = with_ratios(rows)
    shape = f"batch {config.batch}, {config.heads} heads, n = {config.seq_len}, d = {config.head_dim}, bf16, causal"
    header = (
        f"{machine['device']}, torch {machine['torch']}, triton {machine['triton']}; {shape}; "
        f"{TMA_ENV} {machine['tma_switch']}; {GLUON_ENV} {machine['gluon_switch']}; pinned {machine['pinned']}; "
        f"do_bench medians, warm-up {config.warmup_ms} ms, {config.rep_ms} ms of repeats"
    )
    table = records_table(rows, COLUMNS, floats=lambda value: f"{value:.3f}")
    text = f"{header}\n\n{table}\n"
    result = {**machine, "config": asdict(config), "rows": rows}
    write_text_atomic(os.path.join(config.out_dir, "forward_paths.json"), json.dumps(result, indent=1))
    write_text_atomic(os.path.join(config.out_dir, "forward_paths.md"), text)
    return text


def main(config: ForwardPathsConfig) -> None:
    if not torch.cuda.is_available():
        sys.exit("bench_flash_forward_paths needs a CUDA GPU")
    os.makedirs(config.out_dir, exist_ok=True)
    pinned = ForwardConfig(*config.pinned(AUTOTUNED_TMA[0]))
    machine = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "tma_switch": autotuned_tma_name(),
        "gluon_switch": autotuned_gluon_name(),
        "pinned": str(pinned),
    }
    print(json.dumps(machine), flush=True)
    inputs = ladder_inputs(config.batch, config.heads, config.seq_len, config.head_dim, "cuda")
    calls = {rung: rung_call(rung, inputs, pinned) for rung in config.rungs}
    for call in calls.values():  # compiles and autotunes before any timing
        call()
    torch.cuda.synchronize()
    rows = []
    for round_ in range(1, config.rounds + 1):
        for rung, call in calls.items():
            ms = triton.testing.do_bench(call, warmup=config.warmup_ms, rep=config.rep_ms, return_mode="median")
            # do_bench times from an event recorded before the call: a host path slower than its L2 flush shows
            host = host_seconds_per_call(call, config.host_calls, torch.cuda.synchronize) * 1e3
            rows.append({"round": round_, "rung": rung, "path": RUNGS[rung], "ms": ms, "host_ms": host})
            print(f"round {round_} {rung}: {ms:.3f} ms, host {host:.3f} ms", flush=True)
            text = write_results(config, machine, rows)
    print(text)


if __name__ == "__main__":
    main(CONFIG)
