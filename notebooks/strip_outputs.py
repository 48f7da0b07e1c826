"""Remove outputs, execution counts and run metadata from notebooks, so the committed files stay small and diffable.

``python strip_outputs.py`` strips every lecture notebook in place; ``--check`` only reports the ones
that carry outputs and exits non-zero if there are any.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from cs336_basics.toolkit.cli import parse_config

NOTEBOOK_DIR = Path(__file__).resolve().parent
RUN_METADATA_KEYS = ("execution", "collapsed", "scrolled")


@dataclass
class StripConfig:
    """Remove outputs, execution counts and run metadata from notebooks (in place), or only report them."""

    notebooks: list[Path] = field(default_factory=list, metadata={"help": "notebooks (none given: every .ipynb here)"})
    check: bool = field(default=False, metadata={"help": "report notebooks with outputs, change nothing"})


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
    cfg = parse_config(StripConfig)
    paths = cfg.notebooks or sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    dirty = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        if is_stripped(notebook):
            continue
        dirty.append(path.name)
        if not cfg.check:
            nbformat.write(strip(notebook), path)
    if cfg.check and dirty:
        sys.exit(f"outputs present in: {', '.join(dirty)} (run python strip_outputs.py)")
    for name in dirty:
        print(f"stripped {name}")


if __name__ == "__main__":
    main()
