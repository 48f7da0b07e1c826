"""Experiment outputs written atomically: JSON, JSON lines, and a report as a markdown table with its JSON twin.

A run killed mid-write (a GPU call that reaches its time limit) leaves the previous file or none, never half
of one: each file is written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_json_atomic(data: Any, path: str | os.PathLike) -> Path:
    return write_text_atomic(json.dumps(data, indent=2, ensure_ascii=False) + "\n", path)


def write_jsonl_atomic(records: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    return write_text_atomic("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), path)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> str:
    """A markdown table of ``rows`` with one column per ``columns`` key (its value is the header)."""
    lines = ["| " + " | ".join(columns.values()) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_cell(row.get(key, "")) for key in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


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
    write_json_atomic({"title": title, "rows": list(rows), **(details or {})}, out_dir / f"{name}.json")
    text = f"# {title}\n\n{markdown_table(rows, columns)}"
    if notes:
        text += f"\n{notes.rstrip()}\n"
    return write_text_atomic(text, out_dir / f"{name}.md")
