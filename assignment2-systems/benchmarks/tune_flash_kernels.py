"""Time each FlashAttention-2 Triton kernel over a grid of fixed tile configurations.

The autotuner only reports its winner; this shows the whole landscape for one shape (by default the
leaderboard case: batch 1, 16 heads, n = 16384, d = 64, bf16, causal), with achieved TFLOP/s, so the autotune
space can be chosen from measurements. The backward kernel is timed three ways: its dK/dV programs alone,
its dQ programs alone (one launch restricted to one kind), and whole (both kinds in one launch) for the
best tiles of each kind. ``atomic_dq`` times the whole backward done by dK/dV programs alone, which add dQ with
atomics (FlashAttention-2's CUDA scheme: 5 matmul products instead of 7; 16 % slower than the dK/dV and dQ
programs at batch 16 x 16 heads, n = 16384 on an H200), over the dK/dV tiles, and ``atomic_dq_tma`` the same with
every tile through tensor descriptors and each dQ tile added by one TMA reduction (FlashAttention-3's and cuDNN's
scheme); ``forward_tma`` times the forward's
tiles (or autotune list) with Q, K, V and O moved through tensor descriptors (TMA; Hopper or newer), and
``backward_tma`` the whole backward's (the best dK/dV and dQ tiles' pairs, or the autotune list) with Q, K, V, dO,
dQ, dK and dV moved so; ``forward_poly`` and ``forward_poly_tma`` time the forward's (pointers or TMA) with half of
each key tile's exponentials computed by a polynomial on the FMA units (``ForwardConfig(poly_exp2=True)``; tiles of
fewer than 32 keys are skipped, with a message: the halves must be 16 keys at least). Configurations that fail to
compile (shared memory) are listed as errors. Results go to ``<out_dir>/kernel_configs.json`` and ``.md``, rewritten
after each kernel, so a run cut off by a time limit keeps the kernels it finished. ``--kernels dkdv dq backward``
skips the forwards. With ``--autotune_list`` the forwards (all four ways) and the whole backward (both ways) are timed
over the entries of their autotune lists instead (each pinned, in one process), which shows whether the autotuner's
pick is the fastest of what it chooses from.
The rows' L2 group budget (``CS336_FLASH_L2_BUDGET_MIB``, 24 MiB by default, read when the kernels are imported)
is swept one process per value, and recorded in both files, as are ``CS336_FLASH_TMA`` (which kernels the autotuned
launches, here the first forward that fills O and L, run with TMA) and ``CS336_FLASH_GLUON`` (whether that forward is
the Gluon kernel).

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/tune_flash_kernels.py --out_dir /tmp/flash_tune
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
from dataclasses import asdict, astuple, dataclass, field
from typing import Literal

from cs336_basics.toolkit.cli import parse_config

KERNELS = (
    "forward", "forward_tma", "forward_poly", "forward_poly_tma", "dkdv", "dq", "backward", "backward_tma", "atomic_dq",
    "atomic_dq_tma",
)  # fmt: skip
"""Timed in this order: the whole backward combines the best dK/dV and dQ tiles."""


@dataclass(frozen=True)
class TuneConfig:
    """Every FlashAttention-2 Triton kernel timed over a grid of fixed tile configurations on one shape."""

    out_dir: str = field(default="runs/flash_tune", metadata={"help": "folder for kernel_configs.json and .md"})
    batch: int = field(default=1, metadata={"help": "batch size (the kernels see batch x heads rows)"})
    heads: int = field(default=16, metadata={"help": "attention heads"})
    seq_len: int = field(default=16384, metadata={"help": "sequence length"})
    head_dim: int = field(default=64, metadata={"help": "head size"})
    kernels: list[
        Literal[
            "forward",
            "forward_tma",
            "forward_poly",
            "forward_poly_tma",
            "dkdv",
            "dq",
            "backward",
            "backward_tma",
            "atomic_dq",
            "atomic_dq_tma",
        ]
    ] = field(
        default_factory=lambda: list(KERNELS),
        metadata={"help": "kernels to time; backward and backward_tma need dkdv and dq"},
    )
    causal: bool = field(default=True, metadata={"help": "causal mask"})
    warmup_ms: int = field(default=5, metadata={"help": "do_bench warm-up time per configuration"})
    rep_ms: int = field(default=25, metadata={"help": "do_bench measuring time per configuration"})
    top: int = field(default=5, metadata={"help": "rows per kernel in the table; also the tiles combined"})
    autotune_list: bool = field(
        default=False,
        metadata={"help": "time the forwards, the whole backward and atomic_dq over their autotune lists' entries"},
    )

    def __post_init__(self):
        if not self.kernels:
            raise ValueError("kernels is empty")
        if min(self.batch, self.heads, self.seq_len, self.head_dim, self.top) < 1:
            raise ValueError("batch, heads, seq_len, head_dim and top must be >= 1")
        whole = set(self.kernels) & {"backward", "backward_tma"}
        if whole and not self.autotune_list and not {"dkdv", "dq"} <= set(self.kernels):
            raise ValueError(
                f"kernels: {', '.join(sorted(whole))} combines the best dkdv and dq tiles, so it needs both "
                "(or --autotune_list)"
            )

    def rows_shape(self) -> tuple[int, int, int]:
        """The kernels' ``(batch x heads, n, d)`` view of one of Q, K, V, dO."""
        return self.batch * self.heads, self.seq_len, self.head_dim


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(TuneConfig, description=__doc__)

import torch  # noqa: E402
import triton  # noqa: E402
from cs336_basics.toolkit.atomic import write_text_atomic  # noqa: E402
from cs336_systems.flash_attention.triton_function import (  # noqa: E402
    GLUON_ENV,
    TMA_ENV,
    BackwardConfig,
    ForwardConfig,
    autotuned_gluon_name,
    autotuned_tma_name,
    launch_backward,
    launch_forward,
)

FORWARD_FLAGS = {
    "forward": {},
    "forward_tma": {"tma": True},
    "forward_poly": {"poly_exp2": True},
    "forward_poly_tma": {"tma": True, "poly_exp2": True},
}
"""The ``ForwardConfig`` switches each forward kernel is timed with."""
FORWARDS = tuple(FORWARD_FLAGS)
POLY_MIN_BLOCK_N = 32
"""``poly_exp2`` splits each key tile into two halves for ``tl.dot``, which needs 16 keys at least."""
WHOLE_BACKWARDS = ("backward", "backward_tma")
PASSES = {
    "dkdv": (True, False),
    "dq": (False, True),
    "backward": (True, True),
    "backward_tma": (True, True),
    "atomic_dq": (True, True),
    "atomic_dq_tma": (True, True),
}
ATOMIC_DQ_KERNELS = ("atomic_dq", "atomic_dq_tma")


def candidate_tiles(kernel: str) -> list[tuple[int, int]]:
    """Tile grids per kernel; the backward programs need the owned tile to be a multiple of the streamed one."""
    if kernel in FORWARDS:
        return [(128, 64), (128, 128), (128, 32), (64, 64), (64, 32), (256, 64)]
    if kernel in ("dkdv", *ATOMIC_DQ_KERNELS):  # (streamed query tile, owned key tile)
        return [(32, 128), (64, 128), (16, 128), (32, 64), (64, 64), (16, 64)]
    return [(128, 32), (128, 64), (128, 16), (64, 32), (64, 64), (64, 16)]  # dq: (owned queries, streamed keys)


def schedules(tiles: tuple[int, int]) -> list[tuple[int, int]]:
    """(num_warps, num_stages) to try; 8 warps only for tiles of at least 64×64."""
    return [(w, s) for w, s in itertools.product([4, 8], [2, 3, 4]) if not (w == 8 and tiles[0] * tiles[1] < 64 * 64)]


def forward_configs(kernel: str, entries: list[tuple[int, int, int, int]]) -> list[ForwardConfig]:
    """``(block_m, block_n, num_warps, num_stages)`` entries pinned with ``kernel``'s switches; for the polynomial
    forwards, entries with key tiles under ``POLY_MIN_BLOCK_N`` are skipped, saying so."""
    flags = FORWARD_FLAGS[kernel]
    configs = []
    for block_m, block_n, warps, stages in entries:
        if flags.get("poly_exp2") and block_n < POLY_MIN_BLOCK_N:
            print(f"{kernel}: skipping BLOCK_N = {block_n} (key tiles split in halves of >= 16 keys need >= 32)")
            continue
        configs.append(ForwardConfig(block_m, block_n, warps, stages, **flags))
    return configs


def single_kind_configs(kernel: str) -> list[ForwardConfig | BackwardConfig]:
    """Every tile × schedule for a forward or for one kind of backward program (the other kind's tiles are
    unused: its programs are not launched)."""
    if kernel in FORWARDS:
        return forward_configs(
            kernel, [(*tiles, *schedule) for tiles in candidate_tiles(kernel) for schedule in schedules(tiles)]
        )
    configs = []
    for tiles in candidate_tiles(kernel):
        for warps, stages in schedules(tiles):
            if kernel in ("dkdv", *ATOMIC_DQ_KERNELS):
                atomic = kernel in ATOMIC_DQ_KERNELS
                configs.append(BackwardConfig(*tiles, 64, 64, warps, stages, atomic, tma=kernel == "atomic_dq_tma"))
            else:
                configs.append(BackwardConfig(64, 64, *tiles, warps, stages))
    return configs


def autotune_list_configs(
    kernel: Literal[
        "forward",
        "forward_tma",
        "forward_poly",
        "forward_poly_tma",
        "backward",
        "backward_tma",
        "atomic_dq",
        "atomic_dq_tma",
    ],
) -> list[ForwardConfig | BackwardConfig]:
    """The entries the autotuner chooses from (before pruning for shared memory), as pinned configurations (with
    each forward kernel's switches, TMA for ``backward_tma``); for ``atomic_dq`` the backward entries' distinct dK/dV
    tiles and schedules. Imported here because ``triton.jit`` picks compile or interpret mode when the kernels'
    module is imported."""
    from cs336_systems.flash_attention import triton_kernels as kernels

    if kernel in FORWARDS:
        entries = [
            (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) for c in kernels.FORWARD_CONFIGS
        ]
        return forward_configs(kernel, entries)
    if kernel in ATOMIC_DQ_KERNELS:
        dkdv_only = (
            BackwardConfig(
                c.kwargs["BLOCK_M1"], c.kwargs["BLOCK_N1"], 64, 64, c.num_warps, c.num_stages, True,
                tma=kernel == "atomic_dq_tma",
            )
            for c in kernels.BACKWARD_CONFIGS
        )  # fmt: skip
        return list(dict.fromkeys(dkdv_only))
    return [
        BackwardConfig(
            c.kwargs["BLOCK_M1"],
            c.kwargs["BLOCK_N1"],
            c.kwargs["BLOCK_M2"],
            c.kwargs["BLOCK_N2"],
            c.num_warps,
            c.num_stages,
            tma=kernel == "backward_tma",
        )
        for c in kernels.BACKWARD_CONFIGS
    ]


def candidate_configs(kernel: str, best: dict[str, list[dict]], autotune_list: bool) -> list:
    """What to time for ``kernel``: its tile grid, the pairs of the best dK/dV and dQ tiles, or its autotune list."""
    if autotune_list and kernel in (*FORWARDS, *WHOLE_BACKWARDS, *ATOMIC_DQ_KERNELS):
        return autotune_list_configs(kernel)
    if kernel in WHOLE_BACKWARDS:
        return combined_configs(best, tma=kernel == "backward_tma")
    return single_kind_configs(kernel)


def combined_configs(best: dict[str, list[dict]], tma: bool = False) -> list[BackwardConfig]:
    """The whole backward launch for every pair of the best dK/dV and dQ tiles, at the schedules either has."""
    configs = set()
    for dkdv, dq in itertools.product(best["dkdv"], best["dq"]):
        for warps, stages in {(dkdv["num_warps"], dkdv["num_stages"]), (dq["num_warps"], dq["num_stages"])}:
            configs.add(
                BackwardConfig(
                    dkdv["dkdv_block_m"],
                    dkdv["dkdv_block_n"],
                    dq["dq_block_m"],
                    dq["dq_block_n"],
                    warps,
                    stages,
                    tma=tma,
                )
            )
    return sorted(configs, key=astuple)


def matmul_flops(kernel: str, batch: int, n: int, d: int, causal: bool) -> float:
    """Tensor-core FLOPs each kernel must do (2 for a forward, 4 for dK/dV, 3 for dQ, 7 for the whole backward,
    5 for the backward with atomic dQ, in matmuls of n×n×d)."""
    products = {"dkdv": 4, "dq": 3, "backward": 7, "backward_tma": 7, "atomic_dq": 5, "atomic_dq_tma": 5}
    products = 2 if kernel in FORWARDS else products[kernel]
    return products * 2.0 * batch * n * n * d * (0.5 if causal else 1.0)


def tile_columns(row: dict) -> tuple:
    if row["kernel"] in FORWARDS:
        return row["block_m"], row["block_n"]
    if row["kernel"] in ("dkdv", *ATOMIC_DQ_KERNELS):
        return row["dkdv_block_m"], row["dkdv_block_n"]
    if row["kernel"] == "dq":
        return row["dq_block_m"], row["dq_block_n"]
    return f"{row['dkdv_block_m']}/{row['dq_block_m']}", f"{row['dkdv_block_n']}/{row['dq_block_n']}"


def write_results(config: TuneConfig, rows: list[dict], best: dict[str, list[dict]]) -> str:
    """Every timed row to kernel_configs.json, the best per kernel to kernel_configs.md; returns the markdown."""
    from cs336_systems.flash_attention.triton_kernels import L2_BUDGET

    l2_budget_mib = L2_BUDGET.value / 2**20
    tma_switch, gluon_switch = autotuned_tma_name(), autotuned_gluon_name()
    shape = f"batch {config.batch}, {config.heads} heads, n = {config.seq_len}, d = {config.head_dim}"
    lines = [
        f"{torch.cuda.get_device_name()}, triton {triton.__version__}; {shape}, bf16, causal {config.causal}; "
        f"L2 group budget {l2_budget_mib:g} MiB; {TMA_ENV} {tma_switch}; {GLUON_ENV} {gluon_switch}",
        "",
        "| kernel | BLOCK_M | BLOCK_N | warps | stages | ms | TFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for kernel, ranked in best.items():
        for r in ranked:
            block_m, block_n = tile_columns(r)
            lines.append(
                f"| {kernel} | {block_m} | {block_n} | {r['num_warps']} | {r['num_stages']} | "
                f"{r['ms']:.3f} | {r['tflops']:.0f} |"
            )
    table = "\n".join(lines)
    result = {"config": asdict(config), "l2_budget_mib": l2_budget_mib, "tma_switch": tma_switch}
    result |= {"gluon_switch": gluon_switch, "rows": rows}
    for name, text in [("kernel_configs.json", json.dumps(result, indent=1)), ("kernel_configs.md", table + "\n")]:
        write_text_atomic(os.path.join(config.out_dir, name), text)
    return table


def main(config: TuneConfig) -> None:
    if not torch.cuda.is_available():
        sys.exit("tune_flash_kernels needs a CUDA GPU")
    os.makedirs(config.out_dir, exist_ok=True)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}", flush=True)
    shape = config.rows_shape()
    q, k, v, do = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    o = torch.empty_like(q)
    lse = torch.empty(shape[:2], device="cuda", dtype=torch.float32)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    launch_forward(q, k, v, o, lse, config.causal)  # autotuned: valid O and L for the backward kernels

    def call(kernel: str, candidate) -> None:
        if kernel in FORWARDS:
            launch_forward(q, k, v, o, lse, config.causal, candidate)
        else:  # includes the small D kernel, as every backward does
            launch_backward(q, k, v, o, do, lse, dq, dk, dv, config.causal, candidate, PASSES[kernel])

    rows = []
    best: dict[str, list[dict]] = {}
    for kernel in [name for name in KERNELS if name in config.kernels]:
        flops = matmul_flops(kernel, *shape[:2], config.head_dim, config.causal)
        candidates = candidate_configs(kernel, best, config.autotune_list)
        for candidate in candidates:
            row = {"kernel": kernel, **asdict(candidate)}
            try:
                ms = triton.testing.do_bench(
                    functools.partial(call, kernel, candidate), warmup=config.warmup_ms, rep=config.rep_ms,
                    return_mode="median",
                )  # fmt: skip
                row.update(ms=ms, tflops=flops / ms / 1e9)
            except Exception as error:  # noqa: BLE001 - out of resources / compile errors are results here
                row.update(ms=None, error=f"{type(error).__name__}: {str(error)[:120]}")
            rows.append(row)
            print(row, flush=True)
        best[kernel] = sorted((r for r in rows if r["kernel"] == kernel and r["ms"]), key=lambda r: r["ms"])[
            : config.top
        ]
        table = write_results(config, rows, best)
    print(table)


if __name__ == "__main__":
    main(CONFIG)
