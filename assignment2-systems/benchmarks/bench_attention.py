"""Attention sweep from the handout: naive, torch.compile'd naive and our FlashAttention-2 kernels.

For each (sequence length, head size, dtype) it times forward, backward and forward+backward
with ``triton.testing.do_bench`` (median ms) and records the memory held between forward and
backward (what the pass saves for backward). An out-of-memory error becomes an ``OOM`` cell.
Rows are appended to ``attention.jsonl`` as they finish, so a cut-off run keeps its results;
the markdown table is written at the end.

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/bench_attention.py --out_dir /tmp/attn
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from cs336_basics.toolkit.cli import parse_config

Implementation = Literal["naive", "naive_compiled", "triton", "pytorch_tiled"]


@dataclass(frozen=True)
class AttentionSweepConfig:
    """Forward, backward and end-to-end time and memory of each attention implementation over the handout's grid."""

    out_dir: str = field(default="runs/attention", metadata={"help": "folder for attention.jsonl, .json and .md"})
    batch: int = field(default=1, metadata={"help": "batch size"})
    causal: bool = field(default=True, metadata={"help": "causal mask"})
    seq_lens: list[int] = field(
        default_factory=lambda: [2**p for p in range(7, 17)], metadata={"help": "sequence lengths"}
    )
    head_dims: list[int] = field(default_factory=lambda: [16, 32, 64, 128], metadata={"help": "head sizes"})
    dtypes: list[Literal["bfloat16", "float32"]] = field(
        default_factory=lambda: ["bfloat16", "float32"], metadata={"help": "input dtypes"}
    )
    impls: list[Implementation] = field(
        default_factory=lambda: ["naive", "naive_compiled", "triton"], metadata={"help": "implementations to time"}
    )
    pytorch_tiled_max_seq: int = field(
        default=1024, metadata={"help": "the Python-loop tiled version is only timed up to this length"}
    )
    warmup_ms: int = field(default=25, metadata={"help": "do_bench warm-up time per measurement"})
    rep_ms: int = field(default=100, metadata={"help": "do_bench measuring time per measurement"})


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(AttentionSweepConfig, description=__doc__)

import torch  # noqa: E402
import torch._functorch.config  # noqa: E402  (patched around the sweep)
import triton  # noqa: E402
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from cs336_basics.toolkit.tables import markdown_table  # noqa: E402
from cs336_systems.flash_attention import FlashAttentionPytorch, FlashAttentionTriton  # noqa: E402
from cs336_systems.flash_attention.reference import naive_attention  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def build_implementations() -> dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor]]:
    compiled = torch.compile(naive_attention, dynamic=True)
    return {
        "naive": naive_attention,
        "naive_compiled": compiled,
        "triton": FlashAttentionTriton.apply,
        "pytorch_tiled": FlashAttentionPytorch.apply,
    }


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def measure(attention, shape: tuple[int, int, int], dtype: torch.dtype, causal: bool, warmup: int, rep: int) -> dict:
    """Forward, backward and end-to-end medians (ms) plus MiB held for backward; 'OOM' where memory ran out."""
    result: dict = {}
    q, k, v = (torch.randn(shape, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
    grad_out = torch.randn(shape, device="cuda", dtype=dtype)
    out = None
    try:
        result["fwd_ms"] = triton.testing.do_bench(
            lambda: attention(q, k, v, causal), warmup=warmup, rep=rep, return_mode="median"
        )
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        out = attention(q, k, v, causal)
        torch.cuda.synchronize()
        result["saved_for_bwd_MiB"] = (torch.cuda.memory_allocated() - before) / 2**20
        result["bwd_ms"] = triton.testing.do_bench(
            lambda: out.backward(grad_out, retain_graph=True),
            warmup=warmup,
            rep=rep,
            grad_to_none=[q, k, v],
            return_mode="median",
        )
        out = None
        result["fwd_bwd_ms"] = triton.testing.do_bench(
            lambda: attention(q, k, v, causal).backward(grad_out),
            warmup=warmup,
            rep=rep,
            grad_to_none=[q, k, v],
            return_mode="median",
        )
    except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
        if not _is_oom(error):
            raise
        for key in ["fwd_ms", "saved_for_bwd_MiB", "bwd_ms", "fwd_bwd_ms"]:
            result.setdefault(key, "OOM")
    finally:
        del out, q, k, v, grad_out
        torch.cuda.empty_cache()
    return result


def _cell(value) -> str:
    return value if isinstance(value, str) else f"{value:.3f}" if value < 100 else f"{value:.1f}"


def attention_table(rows: list[dict]) -> str:
    headers = ["dtype", "d", "seq", "impl", "fwd ms", "bwd ms", "fwd+bwd ms", "saved MiB", "fwd+bwd vs naive"]
    naive = {(r["dtype"], r["head_dim"], r["seq_len"]): r["fwd_bwd_ms"] for r in rows if r["impl"] == "naive"}
    cells = []
    for r in rows:
        base = naive.get((r["dtype"], r["head_dim"], r["seq_len"]))
        speedup = (
            f"{base / r['fwd_bwd_ms']:.2f}x" if isinstance(base, float) and isinstance(r["fwd_bwd_ms"], float) else "-"
        )
        times = [_cell(r[k]) for k in ("fwd_ms", "bwd_ms", "fwd_bwd_ms", "saved_for_bwd_MiB")]
        cells.append([r["dtype"], r["head_dim"], r["seq_len"], r["impl"], *times, speedup])
    return markdown_table(headers, cells)


def sweep(config: AttentionSweepConfig, impls) -> list[dict]:
    """Every (dtype, head size, length, implementation) cell; rows also go to ``attention.jsonl`` as they finish."""
    rows = []
    jsonl_path = os.path.join(config.out_dir, "attention.jsonl")
    with open(jsonl_path, "w") as jsonl:
        for dtype_name in config.dtypes:
            for head_dim in config.head_dims:
                for seq_len in config.seq_lens:
                    for name in config.impls:
                        if name == "pytorch_tiled" and seq_len > config.pytorch_tiled_max_seq:
                            continue
                        start = time.perf_counter()
                        timing = measure(
                            impls[name],
                            (config.batch, seq_len, head_dim),
                            DTYPES[dtype_name],
                            config.causal,
                            config.warmup_ms,
                            config.rep_ms,
                        )
                        row = {
                            "dtype": dtype_name,
                            "head_dim": head_dim,
                            "seq_len": seq_len,
                            "impl": name,
                            **timing,
                            "wall_s": time.perf_counter() - start,
                        }
                        rows.append(row)
                        jsonl.write(json.dumps(row) + "\n")
                        jsonl.flush()
                        print(row, flush=True)
    return rows


def main(config: AttentionSweepConfig) -> None:
    if not torch.cuda.is_available():
        sys.exit("bench_attention needs a CUDA GPU")
    os.makedirs(config.out_dir, exist_ok=True)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}", flush=True)
    impls = build_implementations()
    # The backward is timed by replaying one graph (retain_graph=True); compiled backwards donate their
    # saved buffers by default, which forbids that.
    with torch._functorch.config.patch(donated_buffer=False):
        rows = sweep(config, impls)
    table = attention_table(rows)
    write_text_atomic(os.path.join(config.out_dir, "attention.md"), table + "\n")
    summary = {"device": torch.cuda.get_device_name(), "config": asdict(config), "rows": rows}
    write_json_atomic(os.path.join(config.out_dir, "attention.json"), summary)
    print(table)


if __name__ == "__main__":
    main(CONFIG)
