"""Every script's ``--help`` explains each option: a line of text and its default, and a description that is the
config's docstring, not the dataclass signature."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from cs336_basics.toolkit.cli import add_dataclass_arguments, parse_config

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
SCRIPTS = sorted(p for p in SCRIPTS_DIR.rglob("*.py") if "parse_config" in p.read_text())


class _Parsed(Exception):
    pass


def script_config_class(path: Path) -> type:
    """The config dataclass a script hands to ``parse_config`` (its ``main`` stops right there)."""
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)
    seen = []

    def capture(cls, *args, **kwargs):
        seen.append(cls)
        raise _Parsed

    module.parse_config = capture
    with pytest.raises(_Parsed):
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
        assert "(default:" in action.help, f"{path.name}: --{action.dest} does not show its default"
    assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("), f"{cls.__name__} needs a docstring"


def test_help_output_is_not_a_dataclass_repr(capsys):
    cls = script_config_class(SCRIPTS_DIR / "grpo.py")
    with pytest.raises(SystemExit):
        parse_config(cls, ["--help"])
    out = capsys.readouterr().out
    assert "<factory>" not in out and f"{cls.__name__}(" not in out
    assert "--grpo.use_std_normalization" in out and "(default: True)" in out


HELP_WITHOUT_TORCH = """
import runpy, sys
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit:
        pass
    if "torch" in sys.modules:
        print(f"torch loaded by {path}")
        break
"""


def test_help_does_not_load_torch():
    """--help answers without importing torch (seconds of start-up): every config lives in a torch-free module."""
    result = subprocess.run(
        [sys.executable, "-c", HELP_WITHOUT_TORCH, *map(str, SCRIPTS)], capture_output=True, text=True, check=True
    )
    assert "torch loaded" not in result.stdout, result.stdout.splitlines()[-1]
    assert result.stdout.count("usage:") == len(SCRIPTS)
