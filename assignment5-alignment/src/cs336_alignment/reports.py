"""An experiment's report: a markdown table with its JSON twin, both written atomically (a run killed mid-write,
such as a GPU call that reaches its time limit, leaves the previous file or none, never half of one)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic
from cs336_basics.toolkit.tables import records_table


def write_report(
    out_dir: str | os.PathLike,
    name: str,
    title: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, str],
    details: Mapping[str, Any] | None = None,
    notes: str = "",
) -> Path:
    """``<name>.md`` (title, table, notes in markdown) and ``<name>.json`` (title, rows and ``details``)."""
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / f"{name}.json", {"title": title, "rows": list(rows), **(details or {})})
    text = f"# {title}\n\n{records_table(rows, columns, floats=lambda v: f'{v:.3f}')}\n"
    if notes:
        text += f"\n{notes.rstrip()}\n"
    return write_text_atomic(out_dir / f"{name}.md", text)
