"""The benchmarks take typed configs through ``toolkit.cli.parse_config``: ``--help`` lists every option with its
default without loading torch, and the documented commands still parse."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cs336_basics.toolkit.cli import config_parser

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ROOT = BENCHMARKS.parents[1]
CONFIGS = {
    "bench_bpe_course_targets": "CourseTargetsConfig",
    "bench_bpe_training": "BenchBPETrainingConfig",
    "bench_encode": "BenchEncodeConfig",
    "bench_train_gpu": "BenchTrainGPUConfig",
}
HELP_PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit_:
    assert exit_.code in (0, None), exit_.code
print(sorted(name for name in ("torch", "matplotlib") if name in sys.modules))
"""


def config_class(script: str) -> type:
    name = f"_benchmark_{script}"
    if name not in sys.modules:
        sys.path.insert(0, str(BENCHMARKS))  # the benchmarks import their sibling english_text
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{script}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve string annotations through it
        spec.loader.exec_module(module)
    return getattr(sys.modules[name], CONFIGS[script])


@pytest.mark.parametrize("script", sorted(CONFIGS))
def test_help_lists_every_option_with_its_default_without_torch(script):
    result = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, f"{script}.py"], capture_output=True, text=True, check=True, cwd=BENCHMARKS
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
    options = " ".join(result.stdout.split("options:", 1)[1].split())  # argparse wraps lines
    for f in dataclasses.fields(config_class(script)):
        assert f.metadata.get("help"), f"--{f.name} has no help text"
        assert re.search(rf"--{f.name}\b[^-].*?\(default: [^)]*\)", options), f.name


def test_documented_commands_still_parse():
    sources = [ROOT / "assignment1-basics" / name for name in ("README.md", "BENCHMARKS.md")]
    sources += [ROOT / "README.md", ROOT / "BENCHMARKS.md", *(BENCHMARKS / f"{script}.py" for script in CONFIGS)]
    commands = []
    for source in sources:
        for match in re.finditer(r"\b(\w+)\.py([^\n`#]*)", source.read_text()):
            script, args = match.group(1), match.group(2).strip()
            if script in CONFIGS and "[" not in args and (not args or args.startswith("-")):
                commands.append((script, shlex.split(args)))
    assert {"bench_train_gpu", "bench_encode"} <= {script for script, _ in commands}
    assert ("bench_train_gpu", ["--out_dir", "$OUT"]) in commands
    for script, argv in commands:
        try:
            config_parser(config_class(script)).parse_args(argv)
        except SystemExit:
            pytest.fail(f"documented command {script} {shlex.join(argv)} no longer parses")
