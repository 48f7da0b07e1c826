"""What the packages' tests need of a script or benchmark file: its ``--help`` as a user sees it, with the heavy
modules (torch, matplotlib, ...) that it loaded on the way, the module itself, to reach its config class, and
whether the commands the docs quote still parse.

Entry points are files, not importable modules, so ``help_probe`` and ``load_entry_point_module`` run them the way
``python path/to/script.py`` does: the script's own folder first on ``sys.path`` (sibling modules import), the
script as ``__main__`` for ``--help``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType

from cs336_basics.toolkit.cli import config_parser

_HELP_PROBE = """
import json, pathlib, runpy, sys
script, heavy = sys.argv[1], json.loads(sys.argv[2])
sys.path[0] = str(pathlib.Path(script).resolve().parent)  # as ``python script.py`` does, not the working folder
sys.argv = [script, "--help"]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exit_:
    assert exit_.code in (0, None), f"--help exited with {exit_.code}"
print()
print(json.dumps(sorted(name for name in heavy if name in sys.modules)))
"""


def help_probe(script: Path, heavy_modules: Sequence[str]) -> tuple[str, list[str]]:
    """``(help text, the heavy modules loaded)`` of ``script --help`` run in a fresh interpreter (the test process has
    them all loaded already); raises ``CalledProcessError`` when ``--help`` fails."""
    result = subprocess.run(
        [sys.executable, "-c", _HELP_PROBE, str(script), json.dumps(list(heavy_modules))],
        capture_output=True,
        text=True,
        check=True,
    )
    help_text, _, loaded = result.stdout.rstrip("\n").rpartition("\n")
    return help_text, json.loads(loaded)


def load_entry_point_module(path: Path) -> ModuleType:
    """The module of a script or benchmark file, executed once (not as ``__main__``) and kept in ``sys.modules``,
    where dataclasses resolve their string annotations."""
    name = "_entry_point_" + re.sub(r"\W", "_", str(path.resolve()))
    if name not in sys.modules:
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # benchmarks import their siblings, as when run as a script
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"not a Python file: {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]  # a half-run module must not be handed out next time
            raise
    return sys.modules[name]


def unparsable_commands(commands: Iterable[tuple[str, list[str]]], config_class: Callable[[str], type]) -> list[str]:
    """``script argv: error`` for each ``(script, argv)`` whose flags the script's parser refuses, so a renamed or
    removed flag cannot silently break a command the docs quote. Flags and their types only: the config's own checks
    do not run, since values such as input files exist only after other steps."""
    refused = []
    for script, argv in commands:
        parser = config_parser(config_class(script))
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                parser.parse_args(argv)
        except SystemExit:
            last_line = stderr.getvalue().strip().rpartition("\n")[2]  # argparse's message, after the usage
            refused.append(f"{script} {shlex.join(argv)}: {last_line}")
    return refused
