"""Execute the lecture notebooks top to bottom, in place, with the project's virtual environment as kernel.

Used by ``make notebooks``. Outputs stay in the files so a reader can look at them locally; run
``strip_outputs.py`` before committing (the test suite refuses committed outputs).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from cs336_basics.toolkit.cli import parse_config
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parent
KERNEL_NAME = "python3"  # jupyter_client starts a "python" kernelspec with sys.executable: the venv's interpreter


@dataclass
class RunNotebooksConfig:
    """Execute the lecture notebooks top to bottom, in place, with the project's virtual environment as kernel."""

    notebooks: list[Path] = field(
        default_factory=list, metadata={"help": "notebooks to run (none given: every lecture)"}
    )
    timeout: int = field(default=120, metadata={"help": "seconds allowed per cell"})


def lecture_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The lecture notebooks, in course order (their names start with the lecture number)."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def execute_notebook(path: Path, timeout_s: int = 120) -> nbformat.NotebookNode:
    """Run every cell of ``path`` in a fresh kernel whose working directory is the notebook's folder.

    Raises ``nbclient.exceptions.CellExecutionError`` naming the failing cell when any cell fails.
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=timeout_s,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def main() -> None:
    cfg = parse_config(RunNotebooksConfig)
    paths = cfg.notebooks or lecture_notebooks()
    failed = []
    for path in paths:
        start = time.perf_counter()
        try:
            notebook = execute_notebook(path, cfg.timeout)
        except Exception as err:  # report every failing notebook, not just the first
            failed.append(path.name)
            print(f"FAIL {path.name}: {str(err).splitlines()[-1] if str(err) else type(err).__name__}")
            continue
        nbformat.write(notebook, path)
        print(f"ok   {path.name}  {time.perf_counter() - start:5.1f} s")
    if failed:
        sys.exit(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
