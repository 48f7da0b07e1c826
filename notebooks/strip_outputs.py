"""Remove outputs, execution counts and run metadata from notebooks, so the committed files stay small and diffable.

``python strip_outputs.py`` strips every lecture notebook in place; ``--check`` only reports the ones
that carry outputs and exits non-zero if there are any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent
RUN_METADATA_KEYS = ("execution", "collapsed", "scrolled")


def is_stripped(notebook: nbformat.NotebookNode) -> bool:
    """True when no code cell holds outputs, an execution count or per-run metadata."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            return False
        if any(key in cell.get("metadata", {}) for key in RUN_METADATA_KEYS):
            return False
    return True


def strip(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in RUN_METADATA_KEYS:
            cell.get("metadata", {}).pop(key, None)
    notebook.metadata.pop("widgets", None)
    return notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: every .ipynb here)")
    parser.add_argument("--check", action="store_true", help="report notebooks with outputs, change nothing")
    args = parser.parse_args()
    paths = args.notebooks or sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    dirty = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        if is_stripped(notebook):
            continue
        dirty.append(path.name)
        if not args.check:
            nbformat.write(strip(notebook), path)
    if args.check and dirty:
        sys.exit(f"outputs present in: {', '.join(dirty)} (run python strip_outputs.py)")
    for name in dirty:
        print(f"stripped {name}")


if __name__ == "__main__":
    main()
