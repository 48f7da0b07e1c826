"""Every script and benchmark: a typed config through ``toolkit.cli.parse_config``, a ``--help`` that lists every
option with its default without loading torch or Triton, clear errors on bad values, the documented commands parse."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from cs336_basics.toolkit.cli import flag_names, parse_config
from cs336_basics.toolkit.entry_points import help_probe, load_entry_point_module, unparsable_commands

PACKAGE = Path(__file__).parents[1]
ROOT = PACKAGE.parent
CONFIGS = {
    "check_distributed_correctness": "CorrectnessConfig",
    "compile_flash_kernels": "CompileConfig",
    "bench_attention": "AttentionSweepConfig",
    "bench_attention_backends": "BenchConfig",
    "bench_checkpointing": "CheckpointingConfig",
    "bench_comm": "CommBenchConfig",
    "bench_ddp": "DDPBenchConfig",
    "bench_flash_forward_paths": "ForwardPathsConfig",
    "bench_flash_grid": "GridConfig",
    "bench_flash_host_overhead": "HostOverheadConfig",
    "bench_flash_leaderboard": "LeaderboardConfig",
    "bench_memory_sharding": "MemoryBenchConfig",
    "bench_model": "SweepConfig",
    "gpu_clock_summary": "ClockSummaryConfig",
    "plot_memory_snapshot": "SnapshotPlotConfig",
    "probe_gluon_backward": "ProbeConfig",
    "probe_gluon_forward": "ProbeConfig",
    "probe_warp_specialization": "ProbeConfig",
    "tune_flash_kernels": "TuneConfig",
}
ENTRY_POINTS = {path.stem: path for path in [*PACKAGE.glob("scripts/*.py"), *PACKAGE.glob("benchmarks/*.py")]}
HEAVY = ("torch", "triton", "matplotlib")
SHELL_VALUES = {"$size": "small", "$precision": "fp32", "$MEMORY_SIZE": "xl"}
"""Values for the shell variables of ``run_distributed_benchmarks.sh``'s commands."""


def config_class(script: str) -> type:
    """The config dataclass of an entry point (loading the module also loads torch: fine in the test process)."""
    return getattr(load_entry_point_module(ENTRY_POINTS[script]), CONFIGS[script])


def test_every_entry_point_has_a_config():
    assert sorted(CONFIGS) == sorted(ENTRY_POINTS)


@pytest.mark.parametrize("script", sorted(CONFIGS))
def test_help_lists_every_option_with_its_default_without_heavy_imports(script):
    help_text, loaded = help_probe(ENTRY_POINTS[script], HEAVY)
    assert loaded == [], f"--help imported {loaded}"
    options = " ".join(help_text.split("options:", 1)[1].split())  # after the usage; argparse wraps lines
    for flag in flag_names(config_class(script)):
        assert re.search(re.escape(flag) + r"\b[^-].*?\((default: [^)]*|required)\)", options), flag
    assert "--out_dir" in options


@pytest.mark.parametrize("script", sorted(CONFIGS))
def test_every_option_has_a_line_of_help(script):
    cls = config_class(script)
    assert [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")] == []


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("bench_ddp", ["--setups", "bucketed-0"], "unknown setup 'bucketed-0'"),
        ("bench_ddp", ["--size", "huge"], "size must be one of"),
        ("bench_ddp", ["--precision", "fp16"], "invalid choice value: 'fp16' (choose from fp32, bf16)"),
        ("bench_memory_sharding", ["--setups"], "setups is empty"),
        ("bench_comm", ["--sizes_mb", "0"], "sizes positive"),
        ("bench_comm", ["--ops", "broadcast"], "(choose from all_reduce, all_gather, reduce_scatter)"),
        ("bench_model", ["--sizes", "small", "huge"], "unknown sizes ['huge']"),
        ("bench_checkpointing", ["--policies", "all"], "invalid choice value: 'all'"),
        ("check_distributed_correctness", ["--backend", "mpi"], "(choose from nccl, gloo, none)"),
        ("bench_attention", ["--out", "x"], "unknown flag --out (did you mean --out_dir?)"),
        ("bench_flash_grid", ["--impls", "cudnn"], "(choose from triton, pytorch_tiled, naive)"),
        ("tune_flash_kernels", ["--seq-len", "long"], "invalid int value: 'long'"),
        ("probe_warp_specialization", ["--variants", "128,64,4"], "expected four positive integers"),
        ("probe_warp_specialization", ["--variants", "128,96,4,2"], "a multiple of BLOCK_N"),
        ("probe_gluon_forward", ["--variants", "128,64,2,sync,4"], "expected BLOCK_M,BLOCK_N,NUM_STAGES"),
        ("probe_gluon_forward", ["--variants", "128,64,1,async,4,128"], "2 stages at least"),
        ("probe_gluon_forward", ["--head_dim", "128"], "written for 64"),
        ("probe_gluon_forward", ["--layout", "rows"], "layout must be one of contiguous, model"),
        ("probe_gluon_forward", ["--baseline_tma", "both"], "baseline_tma must be forward or none"),
        ("probe_gluon_backward", ["--variants", "64,128,2,split_sync,4,128"], "two consumer warpgroups"),
    ],
)
def test_a_bad_value_is_a_usage_error(script, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(config_class(script), argv)
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())


def documented_commands() -> list[tuple[str, list[str]]]:
    """``(script, argv)`` of every command in the docs, the distributed runner and the entry points' docstrings."""
    docs = [PACKAGE / f"{name}.md" for name in ("README", "BENCHMARKS", "WRITEUP", "DISTRIBUTED")]
    sources = [*docs, ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "Makefile"]
    sources.append(PACKAGE / "scripts" / "run_distributed_benchmarks.sh")
    sources += [ENTRY_POINTS[script] for script in CONFIGS]
    commands = []
    for source in sources:
        text = re.sub(r"\\\\?\n\s*", " ", source.read_text())  # join continued lines (\\ inside docstrings)
        text = re.sub(r"(?<!`)`[^`\n]+\n[^`\n]+`(?!`)", lambda span: span.group().replace("\n", " "), text)  # wrapped
        for match in re.finditer(r"\b(\w+)\.py\"?([^\n`#|;&]*)", text):
            script, args = match.group(1), match.group(2).split("2>")[0].strip()
            if script not in CONFIGS or "..." in args or "[" in args or (args and not args.startswith("-")):
                continue  # another script, a synopsis or prose
            for variable, value in SHELL_VALUES.items():
                args = args.replace(f'"{variable}"', value)
            commands.append((script, shlex.split(args)))
    return commands


def test_documented_commands_still_parse():
    """A flag renamed or removed makes a documented command stop with a usage error (flags only: values that need
    files from other steps are not checked)."""
    commands = documented_commands()
    documented = {script for script, _ in commands}
    assert {"check_distributed_correctness", "bench_ddp", "bench_model", "bench_flash_leaderboard"} <= documented
    assert ("bench_comm", ["--backend", "gloo", "--warmup", "2", "--iters", "10"]) in commands  # `make bench`
    assert unparsable_commands(commands, config_class) == []


def test_the_distributed_runner_writes_where_each_command_says():
    runner = (PACKAGE / "scripts" / "run_distributed_benchmarks.sh").read_text()
    assert "--out " not in runner and runner.count("--out_dir") == 4


def test_every_gpu_part_command_parses(tmp_path):
    """``benchmarks/gpu_parts.sh`` runs with a ``python3`` that only records its arguments: every script command of
    every part, as bash expands it (loops and variables included), must get past its parser. A refused flag would
    otherwise surface only on the GPU machine, after its start-up time is spent."""
    script = PACKAGE / "benchmarks" / "gpu_parts.sh"
    parts = re.findall(r"^\s+(\w+)\) part ", script.read_text(), flags=re.MULTILINE)
    argv_log = tmp_path / "argv.log"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_python = fake_bin / "python3"
    fake_python.write_text("#!/usr/bin/env bash\n{ printf '%s\\x1f' \"$@\"; printf '\\n'; } >> \"$ARGV_LOG\"\n")
    fake_python.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "ARGV_LOG": str(argv_log),
        "PARTS": " ".join(parts),
        "END": "100000",
        "RESULTS": str(tmp_path / "results"),
    }
    subprocess.run(["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    calls = [line.split("\x1f")[:-1] for line in argv_log.read_text().splitlines()]
    commands = [(Path(argv[0]).stem, argv[1:]) for argv in calls if argv[0].endswith(".py")]
    assert {script for script, _ in commands} >= {"bench_flash_leaderboard", "bench_model", "gpu_clock_summary"}
    assert len(commands) >= len(parts) + 1  # the pytest part runs a module; two parts loop over two commands
    assert unparsable_commands(commands, config_class) == []
