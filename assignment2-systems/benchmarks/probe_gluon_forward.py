"""Does a hand warp-specialised FlashAttention-3-style forward, written in Gluon, beat cuDNN on this GPU?

Our Triton forward is level with cuDNN at batch 16 x 16 heads, n = 16384, d = 64, bf16, causal, and every setting
is spent (Triton's automatic warp specialisation miscompiles the loop on 3.6, ``probe_warp_specialization.py``).
What cuDNN and FlashAttention-3 add is warp specialisation by hand, which Triton's lower-level language Gluon
exposes: the kernel, its modes and its launcher live in the library, ``cs336_systems/flash_attention/gluon_forward.py``
(its docstring describes them; ``CS336_FLASH_GLUON=forward`` puts its default configuration in the autotuned forward),
loaded here by path; this probe keeps the variant list, their checks, timings and compile report.

Per variant (BLOCK_M, BLOCK_N, stages, mode, consumer warps, maxnreg): the largest error of O and of the
logsumexp L against float32 at a small shape (``--check_seq_len``), the share of wrong rows, and the time at the
main shape, next to cuDNN and our autotuned Triton forward with TMA (``CS336_FLASH_TMA=forward``, as the
leaderboard's TMA rows). Each row has two times: ``ms``, do_bench's median wall time per call, and ``kernel_ms``,
the GPU time of the call's kernels from a profile. At the model's training shapes a call's GPU time (about 90 µs) is
close to its host cost (the Triton baseline builds a launch plan on every call, ``launch_forward``), so the wall time
can measure the host: the Triton row read 0.177 ms in one process and 0.092 in another, for 0.087 ms of kernel time
(seventeenth H200 run). Rows print as they finish; ``gluon_forward.json`` / ``.md`` go to ``--out_dir``.
``--compile_only`` compiles every variant for ``--arch`` on any machine, GPU or not, without torch, and reports
registers, spills and what the PTX shows (wgmma, TMA, mbarriers, setmaxnreg), under Triton 3.6 (the GPU image's) or
3.9 (the locked environment's: the library resolves its renamed TMA copies).

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/probe_gluon_forward.py --out_dir /tmp/gluon_probe
At the small model's training shape, against the default pointer forward (where the library's default Gluon config
lost, sixteenth H200 run):
    ... probe_gluon_forward.py --batch 16 --heads 12 --seq_len 1024 --layout model --baseline_tma none
Compile check (any machine, Triton 3.6 in a scratch environment):
    PYTHONPATH=assignment1-basics/src /tmp/t36/bin/python assignment2-systems/benchmarks/probe_gluon_forward.py \
        --compile_only --out_dir /tmp/gluon_compile
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.entry_points import load_entry_point_module
from cs336_basics.toolkit.tables import records_table

if TYPE_CHECKING:
    from torch import Tensor

LAYOUTS = ("contiguous", "model")
DEFAULT_VARIANTS = (
    "128,64,2,split_sync,8,80",
    "128,64,2,pingpong,8,168",
    "128,64,3,split_sync,8,80",
    "256,64,2,split_sync,16,96",
    "128,128,2,pingpong,8,168",
    "128,128,2,split_async,8,168",
    "128,64,3,sync,8,80",
    "64,64,2,sync,4,80",
    "128,64,2,split_async,8,168",
    "64,64,2,sync,4,64",
)
"""Most promising first, after the first H200 run (two programs per SM beat one; sync beat async; 128,64,2,sync,8,80
came within 9 % of cuDNN): each consumer warpgroup its own partition (``split``) at two programs per SM (80);
FlashAttention-3's recipe, ping-pong of two async warpgroups at one program per SM (168: 240 registers per
consumer); four split warpgroups sharing one K/V ring at one program per SM (96); then more stages, split async
without the turns, and 64-row tiles at three (80) or four (64; 41 KB of shared memory each) programs per SM.
Under Triton 3.6 ptxas spills split async and ping-pong at 80 (444 and 416 bytes) and 256 x 64 split async at 96
(2004), and cannot fit 128,128,2,split_sync,8,80: left out."""

VARIANT_COLUMNS = ["BLOCK_M", "BLOCK_N", "stages", "mode", "consumer_warps", "maxnreg"]
BENCHMARKS = Path(__file__).resolve().parent
PROFILED_CALLS = 20
"""Calls per row profiled for ``kernel_ms``."""
PTX_FEATURES = {
    "wgmma": "wgmma.mma_async",
    "tma_load": "cp.async.bulk.tensor",
    "tma_store": "cp.async.bulk.tensor.2d.global.shared",
    "mbarrier": "mbarrier.try_wait",
}
"""What the PTX of a variant should contain: the markers of the features this kernel is written for."""
SETMAXNREG = re.compile(r"setmaxnreg\.(inc|dec)\.sync\.aligned\.u32\s+(\d+)")


GLUON_FORWARD_PATH = BENCHMARKS.parent / "src" / "cs336_systems" / "flash_attention" / "gluon_forward.py"


def load_gluon_forward() -> ModuleType:
    """The library's ``gluon_forward.py`` (the kernel, its launcher and :class:`GluonForwardConfig`) loaded by path:
    the package's ``__init__`` would import torch, which ``--compile_only`` runs without. It imports Triton: loaded on
    first use, after ``--help``."""
    return load_entry_point_module(GLUON_FORWARD_PATH)


def parse_config_text(text: str, producer_registers: int, config_class: type, modes: tuple[str, ...]):
    """``BLOCK_M,BLOCK_N,NUM_STAGES,mode,warps,maxnreg`` as ``config_class`` (a library Gluon config, which checks
    the values), with a clear error naming the variant."""
    parts = text.split(",")
    numbers = parts[:3] + parts[4:]
    if len(parts) != 6 or not all(p.isdigit() and int(p) > 0 for p in numbers):
        raise ValueError(f"variant {text!r}: expected BLOCK_M,BLOCK_N,NUM_STAGES,{'|'.join(modes)},warps,maxnreg")
    block_m, block_n, stages, warps, maxnreg = (int(p) for p in numbers)
    try:
        return config_class(block_m, block_n, stages, parts[3], warps, maxnreg, producer_registers)
    except ValueError as error:
        raise ValueError(f"variant {text!r}: {error}") from None


def parse_variant(text: str, producer_registers: int):
    """A variant as the library's ``GluonForwardConfig``."""
    gluon = load_gluon_forward()
    return parse_config_text(text, producer_registers, gluon.GluonForwardConfig, gluon.MODES)


def variant_columns(variant) -> dict:
    """A variant's table columns (``VARIANT_COLUMNS``)."""
    return {
        "BLOCK_M": variant.block_m, "BLOCK_N": variant.block_n, "stages": variant.stages,
        "mode": variant.mode, "consumer_warps": variant.consumer_warps, "maxnreg": variant.maxnreg,
    }  # fmt: skip


@dataclass(frozen=True)
class ProbeConfig:
    """The Gluon forward's variants, compiled or checked and timed on one shape."""

    out_dir: str = field(default="runs/gluon_forward", metadata={"help": "folder for the .json and .md"})
    batch: int = field(default=16, metadata={"help": "batch size of the timed shape"})
    heads: int = field(default=16, metadata={"help": "attention heads of the timed shape"})
    seq_len: int = field(default=16384, metadata={"help": "sequence length of the timed shape"})
    check_seq_len: int = field(default=2048, metadata={"help": "sequence length of the correctness check"})
    head_dim: int = field(default=64, metadata={"help": "head size (the kernel is written for 64)"})
    variants: list[str] = field(
        default_factory=lambda: list(DEFAULT_VARIANTS),
        metadata={"help": "BLOCK_M,BLOCK_N,NUM_STAGES,sync|async,consumer warps,maxnreg of the Gluon forward"},
    )
    baselines: bool = field(
        default=True, metadata={"help": "time cuDNN and our autotuned Triton forward too (off: the Gluon rows alone)"}
    )
    baseline_tma: str = field(
        default="forward",
        metadata={"help": "CS336_FLASH_TMA of the Triton baseline: forward (TMA loads) or none (pointers, default)"},
    )
    layout: str = field(
        default="contiguous",
        metadata={"help": "Q, K, V, O as contiguous (batch, heads, n, d), or model: views of (batch, n, heads, d)"},
    )
    producer_registers: int = field(default=24, metadata={"help": "registers per thread of the producer warp"})
    warmup_ms: int = field(default=50, metadata={"help": "do_bench warm-up time per row"})
    rep_ms: int = field(default=200, metadata={"help": "do_bench measuring time per row"})
    compile_only: bool = field(
        default=False, metadata={"help": "compile every variant for --arch on the CPU (no torch) and report the PTX"}
    )
    arch: int = field(default=90, metadata={"help": "CUDA compute capability --compile_only targets (90 = Hopper)"})

    def __post_init__(self):
        if self.head_dim != 64:
            raise ValueError(f"head_dim {self.head_dim}: the Gluon forward is written for 64")
        if self.baseline_tma not in ("forward", "none"):
            raise ValueError(f"baseline_tma must be forward or none; got {self.baseline_tma!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}")
        for text, variant in zip(self.variants, self.parsed_variants(), strict=True):
            if self.check_seq_len % variant.block_m or self.seq_len % variant.block_m:
                raise ValueError(f"variant {text!r}: BLOCK_M must divide both lengths")

    def parsed_variants(self) -> list:
        """The variants as the library's ``GluonForwardConfig`` (loads it, and Triton)."""
        return [parse_variant(text, self.producer_registers) for text in self.variants]


if __name__ == "__main__":  # parsed before torch loads: --help answers at once (variants load Triton to check)
    CONFIG = parse_config(ProbeConfig, description=__doc__)

import triton  # noqa: E402
from triton.experimental.gluon import language as gl  # noqa: E402

GLUON = load_gluon_forward()


def error_summary(error: Exception) -> str:
    """The root cause's type and last line: a ``CompilationError`` begins with the source, and its cause says why."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines() or [""]
    return f"error: {type(error).__name__}: {lines[-1][:160]}"


def compile_variant(variant, config: ProbeConfig, even_n: bool = True, dtype: str = "bf16"):
    """The kernel compiled for ``config.arch`` from its signature alone (no tensors, no GPU): ``even_n`` (lengths
    that are multiples of BLOCK_M, as the probe's) stores O by TMA, a ragged length by masked pointer stores;
    ``dtype`` ``bf16`` or ``fp16``."""
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    layouts = variant.shared_layouts(config.head_dim, {"bf16": gl.bfloat16, "fp16": gl.float16}[dtype])
    q_type = f"tensordesc<{dtype}[{variant.q_rows}, {config.head_dim}],{layouts['q']!r}>"
    kv_type = f"tensordesc<{dtype}[{variant.block_n}, {config.head_dim}],{layouts['kv']!r}>"
    constexprs = variant.kernel_constexprs(config.head_dim, even_n)
    signature = {"q_desc": q_type, "k_desc": kv_type, "v_desc": kv_type, "o_desc": q_type, "Out": f"*{dtype}"}
    strides = [f"stride_{tensor}{dim}" for tensor in "qkvo" for dim in "bhn"]
    signature |= {"L": "*fp32", "N": "i32", "qk_scale": "fp32", "H": "i32"} | dict.fromkeys(strides, "i32")
    signature |= dict.fromkeys(constexprs, "constexpr")
    source = GluonASTSource(fn=GLUON.gluon_forward_kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", config.arch, 32), options=variant.launch_options())


def compile_all(config: ProbeConfig) -> list[dict]:
    """A row per variant: registers and spills (``ptxas -v``), shared memory, warps and the PTX features found."""
    from cs336_basics.toolkit.entry_points import load_entry_point_module

    ptxas_resources = load_entry_point_module(
        BENCHMARKS.parent / "scripts" / "compile_flash_kernels.py"
    ).ptxas_resources
    rows = []
    for variant in config.parsed_variants():
        row = variant_columns(variant)
        start = time.perf_counter()
        try:
            compiled = compile_variant(variant, config)
            ptx = compiled.asm["ptx"]
            row.update(status="ok", shared_bytes=compiled.metadata.shared, warps=compiled.metadata.num_warps)
            row.update(ptxas_resources(ptx, config.arch))
            row.update({name: marker in ptx for name, marker in PTX_FEATURES.items()})
            row["setmaxnreg"] = " ".join(sorted({" ".join(m) for m in SETMAXNREG.findall(ptx)})) or "none"
        except Exception as error:  # noqa: BLE001 - a compile error is this mode's result
            row["status"] = error_summary(error)
        row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
        print(row, flush=True)
    return rows


def check(small: tuple[Tensor, Tensor, Tensor], forward, warps_probe) -> dict:
    """Errors of one variant against float32 causal attention (NaN compares as wrong), with the tolerances of
    ``probe_warp_specialization``."""
    import torch

    q, k, v = small
    expected_out, expected_lse = warps_probe.reference(q, k, v, True)
    out, lse = torch.full_like(q, float("nan")), torch.full(q.shape[:-1], float("nan"), device=q.device)
    forward(q, k, v, out, lse)
    row_error = (out.float() - expected_out).abs().amax(-1).nan_to_num(float("inf"))
    lse_error = (lse - expected_lse).abs().nan_to_num(float("inf")).max().item()
    right = row_error.max().item() <= warps_probe.O_TOLERANCE and lse_error <= warps_probe.L_TOLERANCE
    return {
        "max_out_error": row_error.max().item(),
        "max_lse_error": lse_error,
        "wrong_row_share": (row_error > warps_probe.O_TOLERANCE).float().mean().item(),
        "verdict": "right" if right else "wrong",
    }


def baselines(tma: str) -> list[tuple[str, Callable[..., None] | None, dict]]:
    """(name, forward or None for cuDNN, no variant columns): cuDNN, and our autotuned Triton forward, with TMA
    loads (``tma`` ``forward``, as the leaderboard's TMA rows) or pointers (``none``, the default)."""
    os.environ["CS336_FLASH_TMA"] = tma  # read when triton_function is imported, just below
    os.environ["CS336_FLASH_GLUON"] = "none"  # the Triton forward, not this probe's kernel
    from cs336_systems.flash_attention import triton_function

    def triton_forward(q, k, v, out, lse):
        triton_function.launch_forward(q, k, v, out, lse, is_causal=True)

    name = f"Triton forward (autotuned, CS336_FLASH_TMA={triton_function.autotuned_tma_name()})"
    return [("SDPA cuDNN", None, {}), (name, triton_forward, {})]


def random_inputs(shape: tuple[int, int, int, int], layout: str) -> Tensor:
    """Random bf16 ``(batch, heads, n, d)`` inputs, contiguous or as the model's views of ``(batch, n, heads, d)``
    projections (``torch.empty_like`` keeps that layout for O)."""
    import torch

    batch, heads, n, head_dim = shape
    if layout == "model":
        return torch.randn(batch, n, heads, head_dim, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    return torch.randn(shape, device="cuda", dtype=torch.bfloat16)


def kernel_ms(fn: Callable[[], object], calls: int = PROFILED_CALLS) -> float:
    """Milliseconds of GPU time per call of ``fn``: its kernels' durations summed over ``calls`` profiled calls, so
    neither the host's launch cost nor the gaps between launches count."""
    import torch
    from cs336_systems.benchmarking.kernel_times import profile_kernel_times

    return round(profile_kernel_times(fn, torch.device("cuda"), steps=calls)["cuda_ms"], 4)


def probe(config: ProbeConfig) -> list[dict]:
    """cuDNN and our autotuned Triton forward (``--baselines``, with ``--baseline_tma``), then each Gluon variant:
    checked, then timed (causal), all in ``--layout``."""
    import torch
    from cs336_basics.toolkit.entry_points import load_entry_point_module

    warps_probe = load_entry_point_module(BENCHMARKS / "probe_warp_specialization.py")
    torch.manual_seed(0)
    small = tuple(random_inputs((2, 4, config.check_seq_len, config.head_dim), config.layout) for _ in range(3))
    shape = (config.batch, config.heads, config.seq_len, config.head_dim)
    q, k, v = (random_inputs(shape, config.layout) for _ in range(3))
    out, lse = torch.empty_like(q), torch.empty(shape[:-1], device="cuda")
    flops = warps_probe.attention_flops(*shape, True)

    forwards = list(baselines(config.baseline_tma)) if config.baselines else []
    for variant in config.parsed_variants():
        forward = functools.partial(GLUON.launch_gluon_forward, config=variant)
        forwards.append(("Gluon forward", forward, variant_columns(variant)))
    rows = []
    for name, forward, columns in forwards:
        row = {"kernel": name, **columns}
        try:
            if forward is None:
                timed = functools.partial(warps_probe.cudnn_attention, q, k, v, True)
            else:
                row.update(check(small, forward, warps_probe))
                timed = functools.partial(forward, q, k, v, out, lse)
            row.update(warps_probe.timed(timed, flops, config))
            row["kernel_ms"] = kernel_ms(timed)
        except Exception as error:  # noqa: BLE001 - a compile or launch failure is this probe's result
            row["verdict"] = error_summary(error)
        rows.append(row)
        print(row, flush=True)
    return rows


def write_results(
    config, machine: dict, rows: list[dict], columns: list[str], header: str, stem: str = "gluon_forward"
) -> None:
    """``<stem>.json`` (every field, and the probe's config dataclass) and ``<stem>.md`` (the table) in the config's
    ``out_dir``, and the table; the backward probe writes through it too."""
    os.makedirs(config.out_dir, exist_ok=True)
    result = {**machine, "config": asdict(config), "rows": rows}
    write_text_atomic(os.path.join(config.out_dir, f"{stem}.json"), json.dumps(result, indent=1))
    table = records_table(rows, columns)
    write_text_atomic(os.path.join(config.out_dir, f"{stem}.md"), f"{header}\n\n{table}\n")
    print(table)


def main(config: ProbeConfig) -> bool:
    """Compile (``--compile_only``) or check and time every variant; False when one failed."""
    if config.compile_only:
        rows = compile_all(config)
        columns = [*VARIANT_COLUMNS, "status", "warps", "shared_bytes", "registers", "spill_bytes", *PTX_FEATURES]
        columns.append("setmaxnreg")
        header = f"Triton {triton.__version__}, sm_{config.arch}, head dim {config.head_dim}, bf16, causal"
        write_results(config, {"triton": triton.__version__, "arch": config.arch}, rows, columns, header)
        return all(row["status"] == "ok" for row in rows)
    import torch

    if not torch.cuda.is_available():
        sys.exit("probe_gluon_forward.py needs a CUDA GPU (Hopper: wgmma, TMA, setmaxnreg); --compile_only does not")
    rows = probe(config)
    machine = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}
    columns = ["kernel", *VARIANT_COLUMNS, "verdict", "max_out_error", "max_lse_error"]
    header = (
        f"{machine['device']}, torch {machine['torch']}, triton {machine['triton']}; causal, timed at batch "
        f"{config.batch}, {config.heads} heads, n = {config.seq_len}, d = {config.head_dim}, bf16, {config.layout} "
        f"layout; checked at n = {config.check_seq_len} against float32"
    )
    write_results(config, machine, rows, [*columns, "wrong_row_share", "ms", "kernel_ms", "tflops"], header)
    return all(row.get("verdict") == "right" for row in rows if "verdict" in row)


if __name__ == "__main__":
    sys.exit(0 if main(CONFIG) else 1)
