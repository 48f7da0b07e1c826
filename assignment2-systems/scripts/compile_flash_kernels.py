"""Compile every FlashAttention-2 Triton kernel variant for a GPU target on any machine, GPU or not.

Triton compiles for a target given by name (``GPUTarget("cuda", 90, 32)``) without a GPU: its passes run on the
CPU and its wheels ship ``ptxas``. So a kernel change can be checked against the Triton of the GPU machine (3.6 on
the device image) before spending device time: install that Triton in a scratch environment and run this script
with it. Every autotune configuration of the forward (pointers, TMA, and each with ``POLY_EXP2`` in 16-bit), the
D preprocessing, and the backward (dK/dV + dQ programs, pointers and TMA; dK/dV programs with atomic dQ, element
atomics and TMA reductions) is compiled to a cubin at head size ``--head_dim``, causal, for each dtype and for int32
and int64 lengths (Triton's own launch and Inductor's dynamic shapes), loading ``triton_kernels.py`` by path (no
torch). A row per kernel variant and configuration says ``ok`` with the shared memory it takes and the registers per
thread and spilled bytes ptxas reports for it (``ptxas -v`` on its PTX: spills are what makes a tile configuration
slow before any timing), or the first line of the error; ``compile.json`` / ``compile.md`` go to ``--out_dir`` and
the exit status is 1 if any failed.

    uv venv /tmp/triton36 && uv pip install --python /tmp/triton36/bin/python triton==3.6.0
    PYTHONPATH=assignment1-basics/src /tmp/triton36/bin/python assignment2-systems/scripts/compile_flash_kernels.py \
        --out_dir /tmp/compile36
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.tables import records_table

KERNELS_PATH = Path(__file__).resolve().parents[1] / "src" / "cs336_systems" / "flash_attention" / "triton_kernels.py"
POINTER_TYPES = {"bf16": "*bf16", "fp16": "*fp16", "fp32": "*fp32"}
PREPROCESS_BLOCK_M = 128
"""``triton_function.PREPROCESS_BLOCK_M``, the D kernel's one tile (that module imports torch; a test keeps them
equal)."""


@dataclass(frozen=True)
class CompileConfig:
    """Every kernel variant and autotune configuration compiled for one GPU target."""

    out_dir: str = field(default="runs/compile_flash_kernels", metadata={"help": "folder for compile.json and .md"})
    arch: int = field(default=90, metadata={"help": "CUDA compute capability as an integer (90 = Hopper)"})
    head_dim: int = field(default=64, metadata={"help": "head size the kernels are specialised for"})
    dtypes: list[Literal["bf16", "fp16", "fp32"]] = field(
        default_factory=lambda: ["bf16", "fp32"], metadata={"help": "input dtypes"}
    )
    int_types: list[Literal["i32", "i64"]] = field(
        default_factory=lambda: ["i32", "i64"], metadata={"help": "types of the length arguments"}
    )
    first_config_only: bool = field(
        default=False, metadata={"help": "only each kernel's first autotune configuration (a quick check)"}
    )


@dataclass(frozen=True)
class Variant:
    """One launchable specialisation: a kernel, its constexpr switches and the pointer arguments' element types."""

    name: str
    kernel: str
    configs: str
    switches: dict
    pointers: dict


def variants(dtype: str) -> list[Variant]:
    """The kernel variants the launchers use for ``dtype`` inputs (``POLY_EXP2`` only in 16-bit, as the launcher
    requires)."""
    data = POINTER_TYPES[dtype]
    forward_pointers = {"Q": data, "K": data, "V": data, "Out": data, "L": "*fp32"}
    found = []
    for tma in (False, True):
        for poly in (False, True) if dtype != "fp32" else (False,):
            switches = {"IS_CAUSAL": True, "USE_TMA": tma, "POLY_EXP2": poly}
            name = f"forward{'_tma' if tma else ''}{'_poly' if poly else ''}"
            found.append(Variant(name, "flash_fwd_kernel", "FORWARD_CONFIGS", switches, forward_pointers))
    backward_pointers = {name: data for name in ("Q", "K", "V", "dO", "dK", "dV")} | {"L": "*fp32", "Delta": "*fp32"}
    for tma in (False, True):
        for atomic in (False, True):
            found.append(
                Variant(
                    f"backward{'_tma' if tma else ''}{'_atomic_dq' if atomic else ''}",
                    "flash_bwd_kernel",
                    "ATOMIC_DQ_CONFIGS" if atomic else "BACKWARD_CONFIGS",
                    {"IS_CAUSAL": True, "DKDV": True, "DQ": not atomic, "ATOMIC_DQ": atomic, "USE_TMA": tma},
                    backward_pointers | {"dQ": "*fp32" if atomic else data},
                )
            )
    return found


def load_kernels():
    """``triton_kernels.py`` as a module of its own: the package's ``__init__`` would import torch."""
    spec = importlib.util.spec_from_file_location("flash_triton_kernels", KERNELS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_variant(kernels, variant: Variant, meta: dict, options: dict, config: CompileConfig, int_type: str):
    """The compiled kernel of one variant and configuration (raises what Triton raises)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import ASTSource

    kernel = getattr(kernels, variant.kernel)
    fn = kernel.fn if isinstance(kernel, triton.runtime.Autotuner) else kernel
    constexprs = {"HEAD_DIM": config.head_dim, **variant.switches, **meta}
    signature = {name: variant.pointers.get(name, int_type) for name in fn.arg_names if name not in constexprs}
    source = ASTSource(fn=fn, signature=signature | dict.fromkeys(constexprs, "constexpr"), constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", config.arch, 32), options=options)


def cases(kernels, dtype: str, first_config_only: bool) -> list[tuple[Variant, dict, dict]]:
    """(variant, meta-parameters, compile options) for every autotune configuration of every variant, and the D
    preprocessing kernel (not autotuned)."""
    found = []
    for variant in variants(dtype):
        configs = getattr(kernels, variant.configs)
        for c in configs[:1] if first_config_only else configs:
            found.append((variant, c.kwargs, {"num_warps": c.num_warps, "num_stages": c.num_stages}))
    data = POINTER_TYPES[dtype]
    preprocess = Variant(
        "preprocess", "flash_bwd_preprocess_kernel", "", {}, {"Out": data, "dO": data, "Delta": "*fp32"}
    )
    return [*found, (preprocess, {"BLOCK_M": PREPROCESS_BLOCK_M}, {})]


PTXAS_REGISTERS = re.compile(r"Used (\d+) registers")
PTXAS_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def parse_ptxas_report(report: str) -> dict:
    """Registers per thread and spilled bytes (stores + loads) from ``ptxas -v``'s report of one kernel."""
    registers, spills = PTXAS_REGISTERS.search(report), PTXAS_SPILLS.search(report)
    if registers is None or spills is None:
        raise ValueError(f"no register or spill line in ptxas's report: {report[-300:]!r}")
    return {"registers": int(registers.group(1)), "spill_bytes": int(spills.group(1)) + int(spills.group(2))}


def ptxas_resources(ptx: str, arch: int) -> dict:
    """:func:`parse_ptxas_report` of the ``ptxas`` Triton compiled the kernel with, run again on its PTX (Triton picks
    the tool by architecture, and keeps its report only for failures)."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "kernel.ptx")
        with open(source, "w") as file:
            file.write(ptx)
        command = [get_ptxas(arch).path, "-v", f"--gpu-name={sm_arch_from_capability(arch)}", source]
        finished = subprocess.run(
            [*command, "-o", os.path.join(folder, "kernel.cubin")], capture_output=True, text=True
        )
    finished.check_returncode()
    return parse_ptxas_report(finished.stderr)


def compile_all(config: CompileConfig) -> list[dict]:
    import triton

    kernels = load_kernels()
    rows = []
    for dtype in config.dtypes:
        for variant, meta, options in cases(kernels, dtype, config.first_config_only):
            for int_type in config.int_types:
                row = {"dtype": dtype, "lengths": int_type, "variant": variant.name, **meta, **options}
                start = time.perf_counter()
                try:
                    compiled = compile_variant(kernels, variant, meta, options, config, int_type)
                    resources = ptxas_resources(compiled.asm["ptx"], config.arch)
                    row.update(status="ok", shared_bytes=compiled.metadata.shared, **resources)
                except Exception as error:  # noqa: BLE001 - a compile error is this tool's result
                    row.update(status=f"error: {type(error).__name__}: {str(error).strip().splitlines()[0][:160]}")
                row["seconds"] = round(time.perf_counter() - start, 2)
                rows.append(row)
                print(row, flush=True)
    machine = {"triton": triton.__version__, "arch": config.arch}
    os.makedirs(config.out_dir, exist_ok=True)
    result = {**machine, "config": asdict(config), "rows": rows}
    write_text_atomic(os.path.join(config.out_dir, "compile.json"), json.dumps(result, indent=1))
    columns = ["dtype", "lengths", "variant", "BLOCK_M", "BLOCK_N", "BLOCK_M1", "BLOCK_N1", "num_warps", "num_stages"]
    table = records_table(rows, [*columns, "status", "shared_bytes", "registers", "spill_bytes"])
    header = f"Triton {triton.__version__}, sm_{config.arch}, head dim {config.head_dim}, causal"
    write_text_atomic(os.path.join(config.out_dir, "compile.md"), f"{header}\n\n{table}\n")
    return rows


def main(config: CompileConfig) -> bool:
    rows = compile_all(config)
    failed = [row for row in rows if row["status"] != "ok"]
    print(f"{len(rows) - len(failed)} of {len(rows)} compiled")
    return not failed


if __name__ == "__main__":
    sys.exit(0 if main(parse_config(CompileConfig, description=__doc__)) else 1)
