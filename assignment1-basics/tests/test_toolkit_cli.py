"""Flags generated from config dataclasses: every field type the scripts use, nesting and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from cs336_basics.toolkit.cli import parse_config


@dataclass(frozen=True)
class Inner:
    width: int = 8
    drop_rate: float = 0.5


@dataclass
class Outer:
    path: str = field(metadata={"help": "required: no default"})
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None
    verbose: bool = True
    tags: list[str] = field(default_factory=lambda: ["<|endoftext|>"])


def test_defaults_are_the_dataclass_defaults():
    cfg = parse_config(Outer, ["--path", "x.txt"])
    assert cfg == Outer(path="x.txt")


def test_every_kind_of_flag_is_parsed_into_the_right_type():
    argv = ["--path", "x", "--width", "16", "--drop_rate", "1e-3", "--limit", "7", "--no-verbose", "--tags", "a", "b c"]
    cfg = parse_config(Outer, argv)
    assert cfg == Outer(path="x", inner=Inner(16, 1e-3), limit=7, verbose=False, tags=["a", "b c"])
    assert parse_config(Outer, ["--path", "x", "--limit", "none", "--tags"]).limit is None
    assert parse_config(Outer, ["--path", "x", "--tags"]).tags == []


def test_dashed_spelling_is_accepted_too():
    assert parse_config(Outer, ["--path", "x", "--drop-rate", "2"]).inner.drop_rate == 2.0


def test_missing_required_flag_and_bad_value_exit_with_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        parse_config(Outer, [])
    with pytest.raises(SystemExit):
        parse_config(Outer, ["--path", "x", "--width", "wide"])
    assert "invalid" in capsys.readouterr().err
