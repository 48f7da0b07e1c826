"""Time each FlashAttention-2 Triton kernel alone over a grid of fixed tile configurations.

The autotuner only reports its winner; this shows the whole landscape for one shape (by default the
leaderboard case: 16 heads, n = 16384, d = 64, bf16, causal), with achieved TFLOP/s per kernel, so
the autotune space can be chosen from measurements. Configurations that fail to compile (shared
memory) are listed as errors. Results go to ``<out>/kernel_configs.json`` and ``.md``.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/tune_flash_kernels.py --out /tmp/flash_tune
"""

import argparse
import functools
import itertools
import json
import os
import sys
from dataclasses import asdict, dataclass

import torch
import triton
from cs336_systems.flash_attention.triton_function import (
    KernelConfig,
    launch_dkdv,
    launch_dq,
    launch_forward,
    launch_preprocess,
)


@dataclass
class TuneConfig:
    out: str = "flash_tune_results"
    heads: int = 16
    seq_len: int = 16384
    head_dim: int = 64
    causal: bool = True
    warmup_ms: int = 5
    rep_ms: int = 25
    top: int = 5


def parse_args() -> TuneConfig:
    d = TuneConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=d.out)
    parser.add_argument("--heads", type=int, default=d.heads)
    parser.add_argument("--seq-len", type=int, default=d.seq_len)
    parser.add_argument("--head-dim", type=int, default=d.head_dim)
    parser.add_argument("--causal", action=argparse.BooleanOptionalAction, default=d.causal)
    parser.add_argument("--warmup-ms", type=int, default=d.warmup_ms)
    parser.add_argument("--rep-ms", type=int, default=d.rep_ms)
    parser.add_argument("--top", type=int, default=d.top, help="rows per kernel in the printed table")
    return TuneConfig(**vars(parser.parse_args()))


def candidate_configs(kernel: str) -> list[KernelConfig]:
    """Tile grids per kernel; the backward kernels need the owned tile to be a multiple of the streamed one."""
    if kernel == "forward":
        tiles = [(128, 64), (128, 128), (128, 32), (64, 64), (64, 32), (256, 64)]
    elif kernel == "dkdv":  # (streamed query tile, owned key tile)
        tiles = [(32, 128), (64, 128), (16, 128), (32, 64), (64, 64), (16, 64)]
    else:  # dq: (owned query tile, streamed key tile)
        tiles = [(128, 32), (128, 64), (128, 16), (64, 32), (64, 64), (64, 16)]
    return [
        KernelConfig(m, n, warps, stages)
        for (m, n), warps, stages in itertools.product(tiles, [4, 8], [2, 3, 4])
        if not (warps == 8 and m * n < 64 * 64)
    ]


def matmul_flops(kernel: str, batch: int, n: int, d: int, causal: bool) -> float:
    """Tensor-core FLOPs each kernel must do (2 for the forward, 4 for dK/dV, 3 for dQ matmuls of n×n×d)."""
    products = {"forward": 2, "dkdv": 4, "dq": 3}[kernel]
    return products * 2.0 * batch * n * n * d * (0.5 if causal else 1.0)


def main() -> None:
    config = parse_args()
    if not torch.cuda.is_available():
        sys.exit("tune_flash_kernels needs a CUDA GPU")
    os.makedirs(config.out, exist_ok=True)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}", flush=True)
    shape = (config.heads, config.seq_len, config.head_dim)
    q, k, v, do = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    o = torch.empty_like(q)
    lse = torch.empty(shape[:2], device="cuda", dtype=torch.float32)
    delta = torch.empty_like(lse)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    launch_forward(q, k, v, o, lse, config.causal)  # autotuned: valid O and L for the backward kernels
    launch_preprocess(o, do, delta)

    calls = {
        "forward": lambda c: launch_forward(q, k, v, o, lse, config.causal, c),
        "dkdv": lambda c: launch_dkdv(q, k, v, do, lse, delta, dk, dv, config.causal, c),
        "dq": lambda c: launch_dq(q, k, v, do, lse, delta, dq, config.causal, c),
    }
    rows = []
    for kernel, call in calls.items():
        flops = matmul_flops(kernel, *shape[:2], config.head_dim, config.causal)
        for candidate in candidate_configs(kernel):
            row = {"kernel": kernel, **asdict(candidate)}
            try:
                ms = triton.testing.do_bench(
                    functools.partial(call, candidate), warmup=config.warmup_ms, rep=config.rep_ms, return_mode="median"
                )
                row.update(ms=ms, tflops=flops / ms / 1e9)
            except Exception as error:  # noqa: BLE001 - out of resources / compile errors are results here
                row.update(ms=None, error=f"{type(error).__name__}: {str(error)[:120]}")
            rows.append(row)
            print(row, flush=True)

    lines = ["| kernel | BLOCK_M | BLOCK_N | warps | stages | ms | TFLOP/s |", "|---|---|---|---|---|---|---|"]
    for kernel in calls:
        ranked = sorted((r for r in rows if r["kernel"] == kernel and r["ms"]), key=lambda r: r["ms"])
        for r in ranked[: config.top]:
            lines.append(
                f"| {kernel} | {r['block_m']} | {r['block_n']} | {r['num_warps']} | {r['num_stages']} | "
                f"{r['ms']:.3f} | {r['tflops']:.0f} |"
            )
    table = "\n".join(lines)
    for name, text in [("kernel_configs.json", json.dumps(rows, indent=1)), ("kernel_configs.md", table + "\n")]:
        tmp = os.path.join(config.out, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(config.out, name))
    print(table)


if __name__ == "__main__":
    main()
