"""Every lecture notebook runs top to bottom on the CPU, checks its own results, and is committed without outputs."""

import time

import nbformat
import pytest
from run_notebooks import execute_notebook, lecture_notebooks
from strip_outputs import is_stripped, strip

NOTEBOOKS = lecture_notebooks()
TIME_LIMIT_S = 120  # the hard cap per notebook; the slowest (07, 08) need about 45 s of CPU time each


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_one_notebook_per_lecture():
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert NOTEBOOKS, "no lecture notebooks found"
    assert len(numbers) == len(set(numbers)) and set(numbers) <= set(range(1, 13)), [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    assert is_stripped(nbformat.read(path, as_version=4)), f"{path.name} has outputs: run strip_outputs.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checks_its_own_results(path):
    """A notebook that only prints can drift from the truth unnoticed: each one asserts what it demonstrates."""
    sources = [cell.source for cell in code_cells(nbformat.read(path, as_version=4))]
    assert sum("assert " in source for source in sources) >= 2, f"{path.name} has fewer than two checking cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path):
    start = time.perf_counter()
    executed = execute_notebook(path, timeout_s=TIME_LIMIT_S)  # raises CellExecutionError on any failing cell
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, f"{path.name} took {elapsed:.0f} s"
    cells = code_cells(executed)
    assert all(cell.execution_count is not None for cell in cells), "a code cell was skipped"
    outputs = [output for cell in cells for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not missing_outputs(cells)


def missing_outputs(cells: list[nbformat.NotebookNode]) -> list[str]:
    """The cells that print or plot showed something: the reader's view of the lecture is really there.

    A cell that needs course data a user may not have (no ``../shared``, offline) says so in a printed line
    starting with "skipped" instead of drawing.
    """
    missing = []
    for index, cell in enumerate(cells):
        printed = [o.text for o in cell.outputs if o.output_type == "stream" and o.text.strip()]
        if "print(" in cell.source and not printed:
            missing.append(f"code cell {index} printed nothing")
        skipped = any(line.lower().startswith("skipped") for text in printed for line in text.splitlines())
        drew = any("image/png" in o.get("data", {}) for o in cell.outputs)
        if "plt.show()" in cell.source and not drew and not skipped:
            missing.append(f"code cell {index} drew no figure")
    return missing


def executed_cell(source: str, printed: str | None = None, figure: bool = False) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    if printed is not None:
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=printed))
    if figure:
        cell.outputs.append(nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="}))
    return cell


def test_missing_outputs_accepts_only_drawn_or_declared_skipped_figures():
    plot = "print(x)\nplt.show()"
    assert missing_outputs([executed_cell(plot, "x\n", figure=True)]) == []
    assert missing_outputs([executed_cell(plot, "skipped: the data is not available\n")]) == []
    assert missing_outputs([executed_cell(plot, "x\n")]) == ["code cell 0 drew no figure"]
    assert missing_outputs([executed_cell(plot, "the data was skipped\n")]) == ["code cell 0 drew no figure"]
    assert missing_outputs([executed_cell("print(x)"), executed_cell("plt.show()", figure=True)]) == [
        "code cell 0 printed nothing"
    ]


def test_strip_removes_outputs_and_run_metadata():
    run_metadata = {"execution": {"iopub.execute_input": "2026-01-01T00:00:00Z"}, "tags": ["x"]}
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3, metadata=run_metadata)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    notebook = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("# title")])
    assert not is_stripped(notebook)
    stripped = strip(notebook)
    assert is_stripped(stripped)
    assert stripped.cells[0].outputs == [] and stripped.cells[0].execution_count is None
    assert stripped.cells[0].metadata == {"tags": ["x"]} and stripped.cells[0].source == "print(1)"
