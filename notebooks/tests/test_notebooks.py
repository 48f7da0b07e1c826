"""Every lecture notebook runs top to bottom on the CPU, quickly, and is committed without outputs."""

import time

import nbformat
import pytest
from run_notebooks import execute_notebook, lecture_notebooks
from strip_outputs import is_stripped

NOTEBOOKS = lecture_notebooks()
TIME_LIMIT_S = 120  # the hard cap per notebook; most take well under 30 s


def test_one_notebook_per_lecture():
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert NOTEBOOKS, "no lecture notebooks found"
    assert len(numbers) == len(set(numbers)) and set(numbers) <= set(range(1, 13)), [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    assert is_stripped(nbformat.read(path, as_version=4)), f"{path.name} has outputs: run strip_outputs.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path):
    start = time.perf_counter()
    executed = execute_notebook(path, timeout_s=TIME_LIMIT_S)  # raises CellExecutionError on any failing cell
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, f"{path.name} took {elapsed:.0f} s"
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
