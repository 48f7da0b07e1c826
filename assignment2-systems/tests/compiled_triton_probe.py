"""Run a probe module in a Python without ``TRITON_INTERPRET``: this session's Triton kernels are decorated for the
interpreter (``conftest.py``), whose functions Triton's compiler and compiled launch path cannot take."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

PROBE_TIMEOUT_S = 300
"""A hang guard, not a speed check: a probe takes 5-30 s (imports and compiles, on a loaded 2-core machine)."""


def run_compiled_triton_probe(module: str, timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """``python -m module`` from the package root; its last stdout line is the JSON result. A probe still running
    after ``timeout_s`` is stopped with SIGABRT, on which ``-X faulthandler`` prints where each of its threads was,
    and that is the error."""
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    process = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", module],
        cwd=Path(__file__).parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate()
        stacks = stderr[max(stderr.find("Fatal Python error"), 0) :][:4000]  # innermost frames first
        raise AssertionError(f"{module} still ran after {timeout_s} s; its threads were at:\n{stacks}") from None
    assert process.returncode == 0, stderr[-4000:]
    return json.loads(stdout.splitlines()[-1])
