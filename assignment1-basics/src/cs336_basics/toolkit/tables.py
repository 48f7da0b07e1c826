"""Markdown tables: the one formatter behind every results table, report and benchmark printout.

Cells are written with ``str``, except ``None`` (shown as ``-``) and floats (three significant digits below
1000, a thousands-separated whole number from 1000 on; pass ``floats`` for another format). A ``|`` inside a
cell is escaped and a line break becomes a space, so any text keeps the table intact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

_RULES = {"l": "---", "r": "---:", "c": ":---:"}


def format_float(value: float) -> str:
    """Three significant digits below 1000 (``0.123``, ``12.3``), whole and thousands-separated above."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    align: str | None = None,
    floats: Callable[[float], str] = format_float,
) -> str:
    """A GitHub markdown table (no trailing newline). ``align`` has one letter per column: ``l`` (the default),
    ``r`` or ``c``."""
    align = align or "l" * len(headers)
    if len(align) != len(headers) or set(align) - set(_RULES):
        raise ValueError(f"align {align!r} needs one of l/r/c for each of the {len(headers)} columns")
    lines = [_line(headers), _line(_RULES[a] for a in align)]
    for row in rows:
        cells = [_cell(value, floats) for value in row]
        if len(cells) != len(headers):
            raise ValueError(f"a row has {len(cells)} cells for {len(headers)} columns: {cells}")
        lines.append(_line(cells))
    return "\n".join(lines)


def records_table(
    records: Iterable[Mapping[str, Any]],
    columns: Sequence[str] | Mapping[str, str],
    align: str | None = None,
    floats: Callable[[float], str] = format_float,
) -> str:
    """:func:`markdown_table` of dict rows: ``columns`` lists the keys, or maps each key to its header;
    a missing key shows as ``-``."""
    headers = list(columns.values()) if isinstance(columns, Mapping) else list(columns)
    rows = ([record.get(key) for key in columns] for record in records)
    return markdown_table(headers, rows, align, floats)


def _cell(value: Any, floats: Callable[[float], str]) -> str:
    if value is None:
        return "-"
    text = floats(value) if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"
