"""Every script's ``--help`` explains each option: a line of text and its default, and a description that is the
config's docstring, not the dataclass signature."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from unittest import mock

import pytest
from cs336_basics.toolkit.cli import add_dataclass_arguments, parse_config
from cs336_basics.toolkit.entry_points import help_probe, load_entry_point_module, unparsable_commands

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
SCRIPTS = sorted(p for p in SCRIPTS_DIR.rglob("*.py") if "parse_config" in p.read_text())


class _Parsed(Exception):
    pass


def script_config_class(path: Path) -> type:
    """The config dataclass a script hands to ``parse_config`` (its ``main`` stops right there)."""
    module = load_entry_point_module(path)
    seen = []

    def capture(cls, *args, **kwargs):
        seen.append(cls)
        raise _Parsed

    with mock.patch.object(module, "parse_config", capture), pytest.raises(_Parsed):
        module.main()
    return seen[0]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(SCRIPTS_DIR)))
def test_every_option_has_a_line_of_help_and_its_default(path):
    cls = script_config_class(path)
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, cls)
    for action in parser._actions:
        if action.dest == "help":
            continue
        text = (action.help or "").split("(default:")[0].strip()
        assert text, f"{path.name}: --{action.dest} has no help text"
        assert action.help.count("(default:") == 1, f"{path.name}: --{action.dest} shows its default not once"
    assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("), f"{cls.__name__} needs a docstring"


def test_help_output_is_not_a_dataclass_repr(capsys):
    cls = script_config_class(SCRIPTS_DIR / "grpo.py")
    with pytest.raises(SystemExit):
        parse_config(cls, ["--help"])
    out = capsys.readouterr().out
    assert "<factory>" not in out and f"{cls.__name__}(" not in out
    assert "--grpo.use_std_normalization" in out and "(default: True)" in out


def test_help_does_not_load_torch():
    """--help answers without importing torch (seconds of start-up): every config lives in a torch-free module."""
    for path in SCRIPTS:
        help_text, loaded = help_probe(path, ("torch",))
        assert loaded == [], f"torch loaded by {path}"
        assert help_text.count("usage:") == 1, path


def test_make_bench_commands_parse():
    """`make bench`'s commands for this package's benchmarks: a renamed flag would stop them with a usage error."""
    makefile = SCRIPTS_DIR.parents[1] / "Makefile"
    commands = re.findall(r"assignment5-alignment/benchmarks/(\w+)\.py([^\n]*)", makefile.read_text())
    assert {script for script, _ in commands} == {"bench_grader", "bench_sampler"}
    benchmarks = SCRIPTS_DIR.parent / "benchmarks"
    refused = unparsable_commands(
        [(script, shlex.split(args)) for script, args in commands],
        lambda script: script_config_class(benchmarks / f"{script}.py"),
    )
    assert refused == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch_sizes", "1", "8"], "--batch_sizes [1] are not multiples of --group_size 8"),
        (["--modes", "fast"], "unknown --modes ['fast']"),
        (["--workloads", "greedy", "chat"], "unknown --workloads ['chat']"),
        (["--new_tokens", "0"], "must be positive"),
    ],
)
def test_bench_sampler_refuses_a_bad_setting_before_decoding(argv, message, capsys):
    cls = script_config_class(SCRIPTS_DIR.parent / "benchmarks" / "bench_sampler.py")
    with pytest.raises(SystemExit) as exit_:
        parse_config(cls, argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert parse_config(cls, ["--workloads", "greedy", "--batch_sizes", "1"]).batch_sizes == [1]
