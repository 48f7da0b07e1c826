"""FlashAttention-2 leaderboard case against PyTorch's flash and cuDNN SDPA backends, same run.

The handout's case: 16 heads folded into the batch, sequence 16384, head size 64, bf16, causal,
``torch.compile(FlashAttentionTriton.apply)`` forward + ``o.sum().backward()``, timed with
``triton.testing.do_bench``. SDPA gets the same tensors viewed as ``(1, 16, n, 64)``. Also times
forward alone, sweeps the sequence length, and checks our output and gradients first.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/bench_flash_leaderboard.py --out /tmp/flash_lb
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
import triton
from cs336_systems.flash_attention import FlashAttentionTriton
from cs336_systems.flash_attention.reference import naive_attention
from torch.nn.attention import SDPBackend, sdpa_kernel


@dataclass
class LeaderboardConfig:
    out: str = "flash_leaderboard_results"
    heads: int = 16
    head_dim: int = 64
    seq_len: int = 16384
    sweep: list[int] = field(default_factory=lambda: [1024, 2048, 4096, 8192, 16384, 32768])
    warmup_ms: int = 200
    rep_ms: int = 1000
    sweep_rep_ms: int = 300


def parse_args() -> LeaderboardConfig:
    defaults = LeaderboardConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=defaults.out, help="directory for leaderboard.json and leaderboard.md")
    parser.add_argument("--heads", type=int, default=defaults.heads)
    parser.add_argument("--head-dim", type=int, default=defaults.head_dim)
    parser.add_argument("--seq-len", type=int, default=defaults.seq_len)
    parser.add_argument("--sweep", type=int, nargs="*", default=defaults.sweep, help="sequence lengths to sweep")
    parser.add_argument("--warmup-ms", type=int, default=defaults.warmup_ms)
    parser.add_argument("--rep-ms", type=int, default=defaults.rep_ms, help="do_bench time for the main case")
    parser.add_argument("--sweep-rep-ms", type=int, default=defaults.sweep_rep_ms)
    return LeaderboardConfig(**vars(parser.parse_args()))


def make_inputs(heads: int, seq_len: int, head_dim: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The handout's inputs: one (3, heads, n, d) leaf (bf16 by default) split into q, k, v."""
    return torch.randn(3, heads, seq_len, head_dim, device="cuda", dtype=dtype, requires_grad=True)


def implementations() -> dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Name -> causal attention on (heads, n, d) tensors."""
    ours = torch.compile(FlashAttentionTriton.apply)

    def sdpa(backend: SDPBackend):
        def run(q, k, v):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]

        return run

    return {
        "ours (Triton, compiled)": lambda q, k, v: ours(q, k, v, True),
        "ours (Triton, eager)": lambda q, k, v: FlashAttentionTriton.apply(q, k, v, True),
        "SDPA flash": sdpa(SDPBackend.FLASH_ATTENTION),
        "SDPA cuDNN": sdpa(SDPBackend.CUDNN_ATTENTION),
    }


def time_case(attention, qkv: torch.Tensor, warmup_ms: int, rep_ms: int) -> dict[str, float]:
    """Median ms of forward+backward (the leaderboard loop) and of forward alone."""
    q, k, v = qkv

    def forward_backward():
        attention(q, k, v).sum().backward()

    def forward():
        with torch.no_grad():
            attention(q, k, v)

    return {
        "fwd_bwd_ms": triton.testing.do_bench(forward_backward, warmup=warmup_ms, rep=rep_ms, return_mode="median"),
        "fwd_ms": triton.testing.do_bench(forward, warmup=warmup_ms, rep=rep_ms, return_mode="median"),
    }


def check_correctness(impls) -> list[dict]:
    """Relative errors against float64 naive attention on fresh inputs: every implementation in bf16,
    ours also in float32 (the SDPA flash and cuDNN backends take only half precision)."""
    results = []
    for dtype in [torch.bfloat16, torch.float32]:
        for heads, seq_len, head_dim in [(4, 1000, 64), (2, 2048, 128), (8, 4096, 64)]:
            qkv = make_inputs(heads, seq_len, head_dim, dtype)
            q, k, v = qkv
            grad_out = torch.randn(heads, seq_len, head_dim, device="cuda", dtype=dtype)
            q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
            ref = naive_attention(q64, k64, v64, True)
            ref.backward(grad_out.double())
            refs = {"O": ref, "dQ": q64.grad, "dK": k64.grad, "dV": v64.grad}
            for name, attention in impls.items():
                if dtype == torch.float32 and not name.startswith("ours"):
                    continue
                qkv.grad = None
                out = attention(q, k, v)
                out.backward(grad_out)
                actual = {"O": out, "dQ": qkv.grad[0], "dK": qkv.grad[1], "dV": qkv.grad[2]}
                rel = {key: ((actual[key].double() - refs[key]).norm() / refs[key].norm()).item() for key in refs}
                tolerance = 2e-2 if dtype == torch.bfloat16 else 5e-3  # bf16 operands; tf32 dots for fp32
                passed = all(error < tolerance for error in rel.values())  # NaN fails
                results.append(
                    {"impl": name, "dtype": str(dtype), "shape": [heads, seq_len, head_dim], **rel, "passed": passed}
                )
    return results


def best_configs() -> dict[str, str]:
    """The tile sizes the autotuner picked, per kernel and key (for the notes)."""
    from cs336_systems.flash_attention import triton_kernels

    picked = {}
    for name in ["flash_fwd_kernel", "flash_bwd_dkdv_kernel", "flash_bwd_dq_kernel"]:
        for key, config in getattr(triton_kernels, name).cache.items():
            picked[f"{name}{list(key)}"] = str(config)
    return picked


def markdown_table(rows: list[dict]) -> str:
    lines = ["| seq | impl | fwd+bwd ms | fwd ms | fwd+bwd vs flash | fwd+bwd vs cuDNN |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['seq_len']} | {row['impl']} | {row['fwd_bwd_ms']:.3f} | {row['fwd_ms']:.3f} | "
            f"{row['vs_flash']:.2f}x | {row['vs_cudnn']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    config = parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_flash_leaderboard needs a CUDA GPU")
    os.makedirs(config.out, exist_ok=True)
    device_name = torch.cuda.get_device_name()
    print(f"device: {device_name}, torch {torch.__version__}, triton {triton.__version__}", flush=True)
    impls = implementations()

    rows = []
    lengths = [config.seq_len] + [n for n in config.sweep if n != config.seq_len]
    for seq_len in lengths:
        rep = config.rep_ms if seq_len == config.seq_len else config.sweep_rep_ms
        qkv = make_inputs(config.heads, seq_len, config.head_dim)
        timings = {name: time_case(attention, qkv, config.warmup_ms, rep) for name, attention in impls.items()}
        for name, t in timings.items():
            rows.append(
                {
                    "seq_len": seq_len,
                    "impl": name,
                    **t,
                    "vs_flash": t["fwd_bwd_ms"] / timings["SDPA flash"]["fwd_bwd_ms"],
                    "vs_cudnn": t["fwd_bwd_ms"] / timings["SDPA cuDNN"]["fwd_bwd_ms"],
                }
            )
            print(rows[-1], flush=True)
        del qkv
        torch.cuda.empty_cache()

    # Checked after timing so a cut-off run still has the leaderboard numbers; same process, same kernels.
    correctness = check_correctness(impls)
    for row in correctness:
        print("check", row, flush=True)
    table = markdown_table(rows)
    result = {
        "device": device_name,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "config": asdict(config),
        "correctness": correctness,
        "timings": rows,
        "autotuned": best_configs(),
    }
    for name, text in [("leaderboard.json", json.dumps(result, indent=2)), ("leaderboard.md", table + "\n")]:
        tmp = os.path.join(config.out, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(config.out, name))
    print(json.dumps(result["autotuned"], indent=1))
    print(table)


if __name__ == "__main__":
    main()
