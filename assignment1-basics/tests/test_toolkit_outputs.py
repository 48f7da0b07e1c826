"""``toolkit.tables`` (cell formatting, alignment, escaping, errors), ``toolkit.figures`` (atomic, closed) and the
``toolkit.atomic`` writers of text, bytes, JSON and JSON lines."""

from __future__ import annotations

import json

import pytest
from cs336_basics.toolkit.atomic import write_bytes_atomic, write_json_atomic, write_jsonl_atomic, write_text_atomic
from cs336_basics.toolkit.figures import pyplot, save_figure
from cs336_basics.toolkit.tables import markdown_table, records_table


def test_markdown_table_formats_floats_none_and_escapes_cells():
    table = markdown_table(["name", "ms", "note"], [["a", 1234.5678, "x|y\nz"], ["b", 0.123456, None]], align="lrl")
    assert table.splitlines() == [
        "| name | ms | note |",
        "| --- | ---: | --- |",
        "| a | 1,235 | x\\|y z |",
        "| b | 0.123 | - |",
    ]


def test_records_table_takes_keys_or_a_key_to_header_mapping():
    rows = [{"name": "a", "ms": 12.345}, {"name": "b"}]
    assert records_table(rows, ["name", "ms"]).splitlines()[2:] == ["| a | 12.3 |", "| b | - |"]
    custom = records_table(rows, {"name": "impl", "ms": "time ms"}, floats=lambda v: f"{v:.1f}")
    assert custom.splitlines()[0] == "| impl | time ms |" and custom.splitlines()[2] == "| a | 12.3 |"


def test_table_shape_errors_are_clear():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        markdown_table(["a", "b", "c"], [[1, 2]])
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a", "b"], [], align="lx")


def test_save_figure_writes_the_file_atomically_and_closes_the_figure(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "plots" / "line.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]  # no temporary left behind


def test_atomic_writers_create_parents_and_replace_whole_files(tmp_path):
    out = tmp_path / "a" / "b"
    assert write_text_atomic(out / "t.md", "é\n").read_text(encoding="utf-8") == "é\n"
    assert write_bytes_atomic(out / "x.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert write_json_atomic(out / "r.json", {"k": "é"}).read_text(encoding="utf-8") == '{\n  "k": "é"\n}\n'
    write_jsonl_atomic(out / "m.jsonl", [{"step": 1}, {"step": 2}])
    assert [json.loads(line) for line in (out / "m.jsonl").read_text().splitlines()] == [{"step": 1}, {"step": 2}]
    write_json_atomic(out / "r.json", [1])
    assert json.loads((out / "r.json").read_text()) == [1]
    assert sorted(p.name for p in out.iterdir()) == ["m.jsonl", "r.json", "t.md", "x.bin"]
