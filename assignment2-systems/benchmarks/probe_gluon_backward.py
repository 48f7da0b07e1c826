"""Which schedule and tiles of the library's Gluon backward (``cs336_systems/flash_attention/gluon_backward.py``, a
FlashAttention-3-style causal backward: dK/dV programs fed by a producer warp, dQ added by TMA reductions) are fastest
on this GPU, next to cuDNN's backward and our pinned Triton one?

The kernel and its modes are described in that module's docstring (``sync``, ``overlap``, and their ``split_``
forms with two consumer warpgroups). Here the tensors are contiguous ``(batch, heads, n, d)``; D = rowsum(dO O), the
zeroing of the float32 dQ and its final cast run in PyTorch (the library launches its D kernel instead).

Per variant (BLOCK_M, BLOCK_N, stages, mode, consumer warps, maxnreg): the largest errors of dQ, dK, dV at a small
shape (``--check_seq_len``, O and L from float32 attention) against float32 autograd of naive attention, then the
kernel alone and the whole backward (D, zeroing, kernel, cast) timed at the main shape, next to cuDNN's backward
(autograd of SDPA pinned to cuDNN) and our pinned Triton backward. Rows print as they finish;
``gluon_backward.json`` / ``.md`` go to ``--out_dir``. ``--compile_only`` compiles every variant for ``--arch``
without torch and reports registers, spills, shared memory and the PTX markers (wgmma, TMA loads, the TMA
reduction, mbarriers, setmaxnreg).

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \
        python3 assignment2-systems/benchmarks/probe_gluon_backward.py --out_dir /tmp/gluon_bwd
Compile check (any machine, Triton 3.6 in a scratch environment):
    PYTHONPATH=assignment1-basics/src /tmp/t36/bin/python assignment2-systems/benchmarks/probe_gluon_backward.py \
        --compile_only --out_dir /tmp/gluon_bwd_compile
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.entry_points import load_entry_point_module

if TYPE_CHECKING:
    from torch import Tensor

BENCHMARKS = Path(__file__).resolve().parent
DEFAULT_VARIANTS = (
    "64,64,3,overlap,4,128",
    "64,64,2,overlap,4,128",
    "64,64,2,sync,4,128",
    "64,128,2,overlap,8,168",
    "64,128,2,split_overlap,8,168",
)
"""The library's default (``overlap`` on 64 x 64 tiles, 3 stages, two programs per SM at 128 registers) and its
neighbours: 2 stages, the same tiles with each wgmma waited for (``sync``), and two consumer warpgroups over 128 keys,
sharing the key tile or each its own half. Under Triton 3.6 none of these spills; 128 x 128 tiles in one partition
spill (124 bytes at 168 registers), and ``overlap`` at 168 registers (one program per SM) took 91.5 ms at n = 16384
against 52.7 at 128 (eighteenth H200 run): left out."""
VARIANT_COLUMNS = ["BLOCK_M", "BLOCK_N", "stages", "mode", "consumer_warps", "maxnreg"]
PTX_FEATURES = {
    "wgmma": "wgmma.mma_async",
    "tma_load": "cp.async.bulk.tensor",
    "tma_reduce": "cp.reduce.async.bulk.tensor",
    "tma_store": "cp.async.bulk.tensor.2d.global.shared",
    "mbarrier": "mbarrier.try_wait",
}
"""What the PTX of a variant should contain: the markers of the features this kernel is written for."""


GLUON_BACKWARD_PATH = BENCHMARKS.parent / "src" / "cs336_systems" / "flash_attention" / "gluon_backward.py"


def load_gluon_backward() -> ModuleType:
    """The library's ``gluon_backward.py`` (the kernel, its launcher and ``GluonBackwardConfig``) loaded by path:
    the package's ``__init__`` would import torch, which ``--compile_only`` runs without. It imports Triton: loaded on
    first use, after ``--help``."""
    return load_entry_point_module(GLUON_BACKWARD_PATH)


def parse_variant(text: str, producer_registers: int):
    """A variant as the library's ``GluonBackwardConfig`` (parsed as the forward probe parses its own)."""
    gluon = load_gluon_backward()
    forward_probe = load_entry_point_module(BENCHMARKS / "probe_gluon_forward.py")
    return forward_probe.parse_config_text(text, producer_registers, gluon.GluonBackwardConfig, gluon.MODES)


def variant_columns(variant) -> dict:
    """A variant's table columns (``VARIANT_COLUMNS``)."""
    return {
        "BLOCK_M": variant.block_m, "BLOCK_N": variant.block_n, "stages": variant.stages,
        "mode": variant.mode, "consumer_warps": variant.consumer_warps, "maxnreg": variant.maxnreg,
    }  # fmt: skip


@dataclass(frozen=True)
class ProbeConfig:
    """The Gluon backward's variants, compiled or checked and timed on one shape."""

    out_dir: str = field(default="runs/gluon_backward", metadata={"help": "folder for the .json and .md"})
    batch: int = field(default=16, metadata={"help": "batch size of the timed shape"})
    heads: int = field(default=16, metadata={"help": "attention heads of the timed shape"})
    seq_len: int = field(default=16384, metadata={"help": "sequence length of the timed shape"})
    check_seq_len: int = field(default=2048, metadata={"help": "sequence length of the correctness check"})
    head_dim: int = field(default=64, metadata={"help": "head size (the kernel is written for 64)"})
    variants: list[str] = field(
        default_factory=lambda: list(DEFAULT_VARIANTS),
        metadata={"help": "BLOCK_M,BLOCK_N,NUM_STAGES,mode,consumer warps,maxnreg of the Gluon backward"},
    )
    baselines: bool = field(
        default=True, metadata={"help": "time cuDNN's and our pinned Triton backward too (off: the Gluon rows alone)"}
    )
    producer_registers: int = field(default=24, metadata={"help": "registers per thread of the producer warp"})
    warmup_ms: int = field(default=50, metadata={"help": "do_bench warm-up time per row"})
    rep_ms: int = field(default=200, metadata={"help": "do_bench measuring time per row"})
    compile_only: bool = field(
        default=False, metadata={"help": "compile every variant for --arch on the CPU (no torch) and report the PTX"}
    )
    arch: int = field(default=90, metadata={"help": "CUDA compute capability --compile_only targets (90 = Hopper)"})

    def __post_init__(self):
        head_dim = load_gluon_backward().HEAD_DIM
        if self.head_dim != head_dim:
            raise ValueError(f"head_dim {self.head_dim}: the Gluon backward is written for {head_dim}")
        for text, variant in zip(self.variants, self.parsed_variants(), strict=True):
            if self.check_seq_len % variant.block_n or self.seq_len % variant.block_n:
                raise ValueError(f"variant {text!r}: BLOCK_N must divide both lengths")

    def parsed_variants(self) -> list:
        """The variants as the library's ``GluonBackwardConfig`` (loads it, and Triton)."""
        return [parse_variant(text, self.producer_registers) for text in self.variants]


if __name__ == "__main__":  # parsed before torch and Triton load: --help answers at once
    CONFIG = parse_config(ProbeConfig, description=__doc__)

import triton  # noqa: E402

FORWARD_PROBE = load_entry_point_module(BENCHMARKS / "probe_gluon_forward.py")
GLUON = load_gluon_backward()
HEAD_DIM = GLUON.HEAD_DIM


def compile_variant(variant, arch: int, dtype: str = "bf16"):
    """The kernel compiled for ``arch`` from its signature alone (no tensors, no GPU)."""
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon._runtime import GluonASTSource

    layouts = variant.shared_layouts({"bf16": gl.bfloat16, "fp16": gl.float16}[dtype])
    q_type = f"tensordesc<{dtype}[{variant.block_m}, {HEAD_DIM}],{layouts['q']!r}>"
    kv_type = f"tensordesc<{dtype}[{variant.key_rows}, {HEAD_DIM}],{layouts['kv']!r}>"
    dq_type = f"tensordesc<fp32[{variant.block_m}, {HEAD_DIM}],{layouts['dq']!r}>"
    constexprs = variant.kernel_constexprs()
    signature = {"q_desc": q_type, "k_desc": kv_type, "v_desc": kv_type, "do_desc": q_type, "dq_desc": dq_type}
    signature |= {"dk_desc": kv_type, "dv_desc": kv_type, "L": "*fp32", "Delta": "*fp32", "N": "i32", "H": "i32"}
    signature |= {"qk_scale": "fp32", "sm_scale": "fp32"}
    signature |= {f"stride_{t}{dim}": "i64" for t in ("q", "k", "v", "do", "dk", "dv") for dim in ("b", "h", "n")}
    signature |= dict.fromkeys(constexprs, "constexpr")
    source = GluonASTSource(fn=GLUON.gluon_backward_kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=variant.launch_options())


def compile_all(config: ProbeConfig) -> list[dict]:
    """A row per variant: registers and spills (``ptxas -v``), shared memory, warps and the PTX features found (bf16),
    and whether the fp16 kernel compiles too."""
    ptxas_resources = load_entry_point_module(
        BENCHMARKS.parent / "scripts" / "compile_flash_kernels.py"
    ).ptxas_resources
    rows = []
    for variant in config.parsed_variants():
        row = variant_columns(variant)
        try:
            compiled = compile_variant(variant, config.arch)
            ptx = compiled.asm["ptx"]
            row.update(status="ok", shared_bytes=compiled.metadata.shared, warps=compiled.metadata.num_warps)
            row.update(ptxas_resources(ptx, config.arch))
            row.update({name: marker in ptx for name, marker in PTX_FEATURES.items()})
            found = FORWARD_PROBE.SETMAXNREG.findall(ptx)
            row["setmaxnreg"] = " ".join(sorted({" ".join(m) for m in found})) or "none"
            compile_variant(variant, config.arch, "fp16")
            row["fp16"] = "compiles"
        except Exception as error:  # noqa: BLE001 - a compile error is this mode's result
            row["status"] = FORWARD_PROBE.error_summary(error)
        rows.append(row)
        print(row, flush=True)
    return rows


def launch_kernel(q, k, v, do, lse, delta, dq32, dk, dv, variant) -> None:
    """The library's kernel alone (dK, dV written, dQ added into the zeroed float32 ``dq32``); raises where its
    launcher refuses the tensors."""
    refusal = GLUON.launch_gluon_backward(q, k, v, do, lse, delta, dq32, dk, dv, variant)
    if refusal is not None:
        raise ValueError(f"the Gluon backward refused these tensors: {refusal}")


def whole_backward(q, k, v, out, do, lse, dq, dk, dv, variant) -> None:
    """D = rowsum(dO O), a zeroed float32 dQ, the kernel, and dQ cast into ``dq``: the backward as a caller sees it."""
    import torch

    delta = (do.float() * out.float()).sum(-1)
    dq32 = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    launch_kernel(q, k, v, do, lse, delta, dq32, dk, dv, variant)
    dq.copy_(dq32)


GRAD_TOLERANCE = 2e-2
"""A gradient is wrong past this share of its largest float32 magnitude: bf16 P and dS in the matmuls, as every
flash backward rounds them, stay well within."""


def check(small: tuple[Tensor, Tensor, Tensor], backward: Callable[..., None], warps_probe) -> dict:
    """The largest errors of dQ, dK, dV from ``backward(q, k, v, out, do, lse, dq, dk, dv)`` against float32 autograd
    of naive attention, absolute and as a share of the largest expected value (NaN compares as wrong); O and L from
    float32 attention."""
    import torch

    q, k, v = small
    leaves = [t.float().requires_grad_() for t in small]
    expected_out, lse = warps_probe.reference(*leaves, True)
    do = torch.randn_like(q)
    expected = torch.autograd.grad(expected_out, leaves, do.float())
    out = expected_out.detach().to(q.dtype)
    grads = tuple(torch.full_like(q, float("nan")) for _ in range(3))
    backward(q, k, v, out, do, lse.detach().contiguous(), *grads)
    row, shares = {}, []
    for name, got, want in zip(("dq", "dk", "dv"), grads, expected, strict=True):
        error = (got.float() - want).abs().nan_to_num(float("inf")).max().item()
        row[f"max_{name}_error"] = error
        shares.append(error / want.abs().max().item())
    row["max_error_share"] = max(shares)
    return {**row, "verdict": "right" if max(shares) <= GRAD_TOLERANCE else "wrong"}


def probe(config: ProbeConfig) -> list[dict]:
    """cuDNN's and our pinned Triton backward (``--baselines``), then each Gluon variant: checked, then the kernel
    alone and the whole backward timed (causal)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention

    warps_probe = load_entry_point_module(BENCHMARKS / "probe_warp_specialization.py")
    torch.manual_seed(0)
    small_shape = (2, 4, config.check_seq_len, config.head_dim)
    small = tuple(torch.randn(small_shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    shape = (config.batch, config.heads, config.seq_len, config.head_dim)
    q, k, v, do = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    flops = 2.5 * warps_probe.attention_flops(*shape, True)  # five matmuls to the forward's two
    rows = []
    if config.baselines:
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            cudnn_out = scaled_dot_product_attention(*leaves, is_causal=True)
        row = {"kernel": "SDPA cuDNN backward (autograd)"}
        row.update(
            warps_probe.timed(lambda: torch.autograd.grad(cudnn_out, leaves, do, retain_graph=True), flops, config)
        )
        rows.append(row)
        print(row, flush=True)
        del cudnn_out, leaves
    from cs336_systems.flash_attention import triton_function

    out, lse = torch.empty_like(q), torch.empty(shape[:-1], device="cuda")
    pinned_forward = triton_function.ForwardConfig(128, 128, 4, 3, tma=True)  # O and L for D and P: no autotuning
    triton_function.launch_forward(q, k, v, out, lse, True, pinned_forward)
    dq, dk, dv = (torch.empty_like(q) for _ in range(3))
    if config.baselines:
        pinned = triton_function.BackwardConfig(64, 64, 64, 64, 4, 3, atomic_dq=True, tma=True)

        def triton_backward(*tensors):
            views = [t.view(-1, *t.shape[2:]) for t in tensors]
            triton_function.launch_backward(*views, True, pinned)

        row = {
            "kernel": "Triton backward pinned (64/64, atomic dQ by TMA)",
            **check(small, triton_backward, warps_probe),
        }
        timed = functools.partial(triton_backward, q, k, v, out, do, lse, dq, dk, dv)
        row.update(warps_probe.timed(timed, flops, config))
        rows.append(row)
        print(row, flush=True)
    delta = (do.float() * out.float()).sum(-1)
    dq32 = torch.zeros(shape, dtype=torch.float32, device="cuda")
    for variant in config.parsed_variants():
        row = {"kernel": "Gluon backward", **variant_columns(variant)}
        try:
            row.update(check(small, functools.partial(whole_backward, variant=variant), warps_probe))
            kernel = functools.partial(launch_kernel, q, k, v, do, lse, delta, dq32, dk, dv, variant)
            row.update({f"kernel_{key}": value for key, value in warps_probe.timed(kernel, flops, config).items()})
            whole = functools.partial(whole_backward, q, k, v, out, do, lse, dq, dk, dv, variant)
            row.update(warps_probe.timed(whole, flops, config))
        except Exception as error:  # noqa: BLE001 - a compile or launch failure is this probe's result
            row["verdict"] = FORWARD_PROBE.error_summary(error)
        rows.append(row)
        print(row, flush=True)
    return rows


def main(config: ProbeConfig) -> bool:
    """Compile (``--compile_only``) or check and time every variant; False when one failed."""
    if config.compile_only:
        rows = compile_all(config)
        columns = [*VARIANT_COLUMNS, "status", "warps", "shared_bytes", "registers", "spill_bytes", *PTX_FEATURES]
        columns += ["setmaxnreg", "fp16"]
        header = f"Triton {triton.__version__}, sm_{config.arch}, head dim {HEAD_DIM}, bf16, causal backward"
        FORWARD_PROBE.write_results(
            config, {"triton": triton.__version__, "arch": config.arch}, rows, columns, header, "gluon_backward"
        )
        return all(row["status"] == "ok" for row in rows)
    import torch

    if not torch.cuda.is_available():
        sys.exit("probe_gluon_backward.py needs a CUDA GPU (Hopper: wgmma, TMA, setmaxnreg); --compile_only does not")
    rows = probe(config)
    machine = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}
    columns = ["kernel", *VARIANT_COLUMNS, "verdict", "max_dq_error", "max_dk_error", "max_dv_error", "max_error_share"]
    header = (
        f"{machine['device']}, torch {machine['torch']}, triton {machine['triton']}; causal backward, timed at batch "
        f"{config.batch}, {config.heads} heads, n = {config.seq_len}, d = {HEAD_DIM}, bf16; checked at n = "
        f"{config.check_seq_len} against float32 autograd"
    )
    columns += ["kernel_ms", "ms", "tflops"]
    FORWARD_PROBE.write_results(config, machine, rows, columns, header, "gluon_backward")
    return all(row.get("verdict") == "right" for row in rows if "verdict" in row)


if __name__ == "__main__":
    sys.exit(0 if main(CONFIG) else 1)
