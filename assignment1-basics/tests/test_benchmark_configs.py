"""The benchmarks take typed configs through ``toolkit.cli.parse_config``: ``--help`` lists every option with its
default without loading torch, and the documented commands still parse."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest
from cs336_basics.toolkit.entry_points import help_probe, load_entry_point_module, unparsable_commands

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ROOT = BENCHMARKS.parents[1]
CONFIGS = {
    "bench_bpe_course_targets": "CourseTargetsConfig",
    "bench_bpe_training": "BenchBPETrainingConfig",
    "bench_encode": "BenchEncodeConfig",
    "bench_train_gpu": "BenchTrainGPUConfig",
}

TORCH_AT_IMPORT = {"bench_optimizer_step": "BenchConfig"}  # measures torch itself: its --help may load it


def config_class(script: str) -> type:
    return getattr(load_entry_point_module(BENCHMARKS / f"{script}.py"), (CONFIGS | TORCH_AT_IMPORT)[script])


@pytest.mark.parametrize("script", sorted(CONFIGS))
def test_help_lists_every_option_with_its_default_without_torch(script):
    help_text, loaded = help_probe(BENCHMARKS / f"{script}.py", ("torch", "matplotlib"))
    assert loaded == []
    options = " ".join(help_text.split("options:", 1)[1].split())  # argparse wraps lines
    for f in dataclasses.fields(config_class(script)):
        assert f.metadata.get("help"), f"--{f.name} has no help text"
        assert re.search(rf"--{f.name}\b[^-].*?\(default: [^)]*\)", options), f.name


def test_documented_commands_still_parse():
    sources = [ROOT / "assignment1-basics" / name for name in ("README.md", "BENCHMARKS.md")]
    sources += [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "Makefile"]
    sources += [BENCHMARKS / f"{script}.py" for script in CONFIGS]
    commands = []
    for source in sources:
        text = source.read_text().replace("\\\n", " ")  # a command continued over lines with "\" is one command
        for match in re.finditer(r"\b(\w+)\.py([^\n`#]*)", text):
            script, args = match.group(1), match.group(2).strip()
            if script in CONFIGS | TORCH_AT_IMPORT and "[" not in args and (not args or args.startswith("-")):
                commands.append((script, shlex.split(args)))
    assert {"bench_train_gpu", "bench_encode"} <= {script for script, _ in commands}
    assert ("bench_train_gpu", ["--out_dir", "$OUT"]) in commands
    assert ("bench_optimizer_step", ["--out_dir", "runs/bench"]) in commands  # `make bench`
    assert unparsable_commands(commands, config_class) == []
