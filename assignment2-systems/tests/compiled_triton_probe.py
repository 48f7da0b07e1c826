"""Run a probe module in a Python without ``TRITON_INTERPRET``: this session's Triton kernels are decorated for the
interpreter (``conftest.py``), whose functions Triton's compiler and compiled launch path cannot take."""

import json
import os
import subprocess
import sys
from pathlib import Path


def run_compiled_triton_probe(module: str) -> dict:
    """``python -m module`` from the package root; its last stdout line is the JSON result."""
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-m", module], cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.splitlines()[-1])
