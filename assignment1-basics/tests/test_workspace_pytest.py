"""pytest from the workspace root stops with the per-package commands (the root ``conftest.py``) instead of five
clashing ``tests`` packages, and a package's suite still runs when named from the root."""

import subprocess
import sys
from pathlib import Path

import pytest

WORKSPACE = Path(__file__).resolve().parents[2]


def run_pytest_in_workspace(*args: str) -> subprocess.CompletedProcess:
    manifest = WORKSPACE / "pyproject.toml"
    if not manifest.is_file() or "[tool.uv.workspace]" not in manifest.read_text():
        pytest.skip(f"not inside the cs336-from-scratch workspace ({WORKSPACE} is no uv workspace root)")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=WORKSPACE, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [(), (".",)])
def test_root_run_stops_with_the_per_package_commands(args):
    result = run_pytest_in_workspace("--collect-only", *args)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "run the tests per package" in result.stderr and "make test" in result.stderr


def test_a_package_named_from_the_root_still_collects():
    result = run_pytest_in_workspace("--collect-only", "assignment1-basics/tests/test_layers.py")
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "test_layers.py" in result.stdout
