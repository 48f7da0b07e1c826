"""Every script and benchmark answers ``--help`` from its config dataclass without loading torch or matplotlib."""

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1]
ENTRY_POINTS = sorted([*PACKAGE.glob("scripts/*.py"), *PACKAGE.glob("benchmarks/*.py")])
PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit_:
    assert exit_.code in (0, None), exit_.code
print(sorted(name for name in ("torch", "matplotlib", "scipy", "fastapi") if name in sys.modules))
"""


@pytest.mark.parametrize("script", ENTRY_POINTS, ids=lambda path: path.name)
def test_help_lists_defaults_without_heavy_imports(script):
    result = subprocess.run([sys.executable, "-c", PROBE, str(script)], capture_output=True, text=True, check=True)
    assert "(default: " in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
