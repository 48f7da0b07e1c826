"""``toolkit.entry_points``: a script's ``--help`` from a fresh interpreter with the heavy modules it loaded, and its
module loaded once, sibling imports included."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest
from cs336_basics.toolkit.entry_points import help_probe, load_entry_point_module, unparsable_commands

SCRIPT = """
import argparse
import tiny_sibling

if __name__ == "__main__":
    argparse.ArgumentParser(description=tiny_sibling.DESCRIPTION).parse_args()
"""


@pytest.fixture
def script(tmp_path):
    (tmp_path / "tiny_sibling.py").write_text('import json\nDESCRIPTION = "a tiny script"\n')
    path = tmp_path / "tiny.py"
    path.write_text(SCRIPT)
    return path


def test_help_probe_returns_the_help_and_the_heavy_modules_loaded(script):
    help_text, loaded = help_probe(script, ["json", "torch"])
    assert "a tiny script" in help_text and "usage:" in help_text
    assert loaded == ["json"]


def test_help_probe_fails_when_help_fails(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit(3)\n")
    with pytest.raises(subprocess.CalledProcessError):
        help_probe(broken, ["torch"])


def test_load_entry_point_module_runs_the_file_once_with_its_folder_importable(script, monkeypatch):
    monkeypatch.setattr(sys, "path", [*sys.path])  # the script's folder goes back off the path
    module = load_entry_point_module(script)
    assert module.tiny_sibling.DESCRIPTION == "a tiny script" and module.__name__ != "__main__"
    assert load_entry_point_module(script) is module


def test_unparsable_commands_names_each_command_a_parser_refuses():
    @dataclass
    class Config:
        steps: int = 1

    commands = [("a", ["--steps", "2"]), ("a", ["--stepz", "2"]), ("a", ["--steps", "two"]), ("a", [])]
    refused = unparsable_commands(commands, lambda script: Config)
    assert [line.split(": ", 1)[0] for line in refused] == ["a --stepz 2", "a --steps two"]
    assert refused[0].endswith("unrecognized arguments: --stepz 2")
    assert refused[1].endswith("argument --steps: invalid int value: 'two'")
