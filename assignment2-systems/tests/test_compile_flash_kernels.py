"""The kernel compile check: every variant the launchers use compiles for Hopper on this CPU-only machine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cs336_basics.toolkit.entry_points import load_entry_point_module

PACKAGE = Path(__file__).parents[1]
SCRIPT = PACKAGE / "scripts" / "compile_flash_kernels.py"


def test_every_kernel_variant_compiles_for_hopper_without_a_gpu(tmp_path):
    """In a fresh process without ``TRITON_INTERPRET`` (other test files set it, and interpreted kernels cannot be
    compiled): each variant's first configuration, float32, int32 lengths, to a cubin for sm_90."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE.parent / "assignment1-basics" / "src"), env.get("PYTHONPATH", "")])
    command = [sys.executable, str(SCRIPT), "--out_dir", str(tmp_path), "--dtypes", "fp32", "--int_types", "i32"]
    finished = subprocess.run([*command, "--first_config_only"], env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    rows = json.loads((tmp_path / "compile.json").read_text())["rows"]
    backwards = ["backward", "backward_atomic_dq", "backward_tma", "backward_tma_atomic_dq"]
    assert [row["variant"] for row in rows] == ["forward", "forward_tma", *backwards, "preprocess"]
    assert all(row["status"] == "ok" for row in rows)
    assert all(row["shared_bytes"] > 0 for row in rows[:-1])  # the tiled kernels stage tiles in shared memory
    assert all(0 < row["registers"] <= 255 and row["spill_bytes"] >= 0 for row in rows)
    assert "| fp32 | i32 | backward_tma_atomic_dq |" in (tmp_path / "compile.md").read_text()


def test_the_preprocessing_tile_is_the_launchers():
    from cs336_systems.flash_attention import triton_function

    assert load_entry_point_module(SCRIPT).PREPROCESS_BLOCK_M == triton_function.PREPROCESS_BLOCK_M


def test_ptxas_report_gives_registers_and_spilled_bytes():
    """A report as ptxas 12.x prints it for one kernel (the lines Triton's ``-v`` run writes to stderr)."""
    tool = load_entry_point_module(SCRIPT)
    report = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'flash_bwd_kernel' for 'sm_90a'
ptxas info    : Function properties for flash_bwd_kernel
    1424 bytes stack frame, 712 bytes spill stores, 712 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 1424 bytes cumulative stack size
"""
    assert tool.parse_ptxas_report(report) == {"registers": 255, "spill_bytes": 1424}
    with pytest.raises(ValueError, match="no register or spill line"):
        tool.parse_ptxas_report("ptxas fatal   : Unresolved extern function")
