"""``toolkit.cli.parse_config``: every field type the scripts use, dotted flags for nested configs, both
spellings, the help text and the errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from cs336_basics.toolkit.cli import dotted_fields, flag_names, parse_config


@dataclass(frozen=True)
class Inner:
    """The inner part."""

    width: int = field(default=8, metadata={"help": "layer width"})
    drop_rate: float = 0.5


class Mode(enum.StrEnum):
    FAST = "fast"
    SLOW = "slow"


@dataclass
class Outer:
    """An outer config."""

    path: str = field(metadata={"help": "required: no default"})
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None
    verbose: bool = field(default=True, metadata={"help": "print progress"})
    tags: list[str] = field(default_factory=lambda: ["<|endoftext|>"])
    lr: float = field(default=3e-3, metadata={"help": "peak learning rate"})
    out_dir: Path = Path("runs/x")
    schedule: Literal["cosine", "linear"] = "cosine"
    mode: Mode = Mode.FAST


@dataclass
class Deep:
    """Two levels of nesting."""

    outer: Outer = field(default_factory=lambda: Outer(path="p"))
    seed: int = 0


def test_defaults_are_the_dataclass_defaults():
    assert parse_config(Outer, ["--path", "x.txt"]) == Outer(path="x.txt")


def test_every_kind_of_flag_is_parsed_into_the_right_type():
    argv = ["--path", "x", "--inner.width", "16", "--inner.drop_rate", "1e-3", "--limit", "7", "--no-verbose"]
    argv += ["--tags", "a", "b c", "--out_dir", "o", "--schedule", "linear", "--mode", "slow"]
    cfg = parse_config(Outer, argv)
    expected = Outer("x", Inner(16, 1e-3), 7, False, ["a", "b c"], out_dir=Path("o"), schedule="linear", mode=Mode.SLOW)
    assert cfg == expected
    assert parse_config(Outer, ["--path", "x", "--limit", "none", "--tags"]).limit is None
    assert parse_config(Outer, ["--path", "x", "--tags"]).tags == []


def test_nested_configs_get_dotted_flags_at_any_depth():
    cfg = parse_config(Deep, ["--outer.inner.width", "3", "--outer.path", "q", "--seed", "2"])
    assert cfg == Deep(outer=Outer(path="q", inner=Inner(width=3)), seed=2)
    assert parse_config(Deep, ["--no-outer.verbose"]).outer.verbose is False


def test_snake_and_kebab_spellings_are_both_accepted():
    snake = parse_config(Outer, ["--path", "x", "--inner.drop_rate", "2", "--out_dir", "o", "--no-verbose"])
    kebab = parse_config(Outer, ["--path", "x", "--inner.drop-rate", "2", "--out-dir", "o", "--no-verbose"])
    assert snake == kebab and kebab.inner.drop_rate == 2.0 and kebab.out_dir == Path("o")


def test_help_shows_each_line_of_text_and_default_never_a_repr(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(Outer, ["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    assert "An outer config." in out and "The inner part." in out
    assert "peak learning rate (default: 0.003)" in out
    assert "layer width (default: 8)" in out
    assert "required: no default (required)" in out
    assert "print progress (default: True)" in out and out.count("(default: True)") == 1
    assert "--inner.drop_rate FLOAT, --inner.drop-rate FLOAT float (default: 0.5)" in out  # no help: type shown
    assert "int or none (default: none)" in out
    assert "{cosine,linear}" in out and "(default: fast)" in out and "(default: <|endoftext|>)" in out
    assert "Inner(" not in out and "<factory>" not in out and "Mode." not in out


def test_unknown_flags_and_bad_values_are_clear_usage_errors(capsys):
    def error(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as exit_info:
            parse_config(Outer, argv)
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    assert "the following arguments are required: --path" in error([])
    assert "invalid int value: 'wide'" in error(["--path", "x", "--inner.width", "wide"])
    assert "unknown flag --inner.widht (did you mean --inner.width?)" in error(["--path", "x", "--inner.widht", "3"])
    assert "unknown flag --width" in error(["--path", "x", "--width", "3"])  # no flattened names any more
    assert "invalid choice value: 'step' (choose from cosine, linear)" in error(["--path", "x", "--schedule", "step"])
    assert "invalid choice value: 'medium' (choose from fast, slow)" in error(["--path", "x", "--mode", "medium"])
    assert "unknown flag --pat (did you mean --path?)" in error(["--path", "x", "--pat", "y"])  # no abbreviations


def test_unsupported_field_types_are_rejected_when_the_parser_is_built():
    @dataclass
    class Bad:
        pairs: dict[str, int] = field(default_factory=dict)

    with pytest.raises(TypeError, match="Bad.pairs"):
        parse_config(Bad, [])


@dataclass
class Checked:
    """A config that checks its own values."""

    inputs: list[str] = field(default_factory=lambda: ["a.txt"])
    out_dir: Path = Path("runs/checked")
    steps: int = 1

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")


def usage_error(cls: type, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(cls, argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_value_the_config_refuses_is_a_one_line_usage_error(capsys):
    err = usage_error(Checked, ["--steps", "0"], capsys)
    assert err.startswith("usage:") and err.rstrip().endswith("error: steps must be positive, got 0")
    assert "Traceback" not in err


def test_unknown_flags_suggest_the_flag_meant(capsys):
    assert "unknown flag --output (did you mean --out_dir?)" in usage_error(Checked, ["--output", "o"], capsys)
    assert "unknown flag --out (did you mean --out_dir?)" in usage_error(Checked, ["--out", "o"], capsys)
    assert "unknown flag --input (did you mean --inputs?)" in usage_error(Checked, ["--input", "i"], capsys)
    assert "unknown flag --step (did you mean --steps?)" in usage_error(Checked, ["--step=3"], capsys)
    nothing_close = usage_error(Checked, ["--seed", "1"], capsys)
    assert "unknown flag --seed" in nothing_close and "did you mean" not in nothing_close


def test_flag_names_list_every_flag_with_nested_ones_dotted():
    assert flag_names(Deep)[:3] == ["--outer.path", "--outer.inner.width", "--outer.inner.drop_rate"]
    assert flag_names(Deep)[-1] == "--seed" and len(flag_names(Deep)) == 11
    assert [name for name, f in dotted_fields(Deep) if f.metadata.get("help")] == [
        "outer.path",
        "outer.inner.width",
        "outer.verbose",
        "outer.lr",
    ]
