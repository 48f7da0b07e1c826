"""Every script and benchmark: a typed config through ``toolkit.cli.parse_config``, a fast ``--help`` that lists every
option with its default, clear errors on bad values, the documented commands still parse, and the GPU experiment runs
with nothing of this package's own dependencies installed."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cs336_basics.toolkit.cli import dotted_fields, flag_names, parse_config
from cs336_basics.toolkit.entry_points import help_probe, unparsable_commands

PACKAGE = Path(__file__).parents[1]
ROOT = PACKAGE.parent
CONFIGS = {
    "build_sample_crawl": "cs336_data.crawl.build:SampleCrawlConfig",
    "diagnose_filter_experiment": "cs336_data.filter_experiment.diagnostics:DiagnoseConfig",
    "download_assets": "cs336_data.dolma_models:DolmaDownloadConfig",
    "evaluate_classifiers": "cs336_data.classifier_evaluation:EvaluateClassifiersConfig",
    "filter_vs_raw": "cs336_data.filter_experiment.training:FilterVsRawConfig",
    "inspect_filters": "cs336_data.filter_inspection:InspectFiltersConfig",
    "prepare_filter_experiment": "cs336_data.filter_experiment.prepare:PrepareConfig",
    "run_pipeline": "cs336_data.pipeline.run:PipelineConfig",
    "train_quality_classifier": "cs336_data.quality_training:QualityModelConfig",
    "bench_extract_filter": "bench_extract_filter:BenchExtractFilterConfig",
    "bench_minhash_dedup": "bench_minhash_dedup:BenchMinHashConfig",
}
ENTRY_POINTS = sorted([*PACKAGE.glob("scripts/*.py"), *PACKAGE.glob("benchmarks/bench_*.py")])
# Seconds to import (NLTK, scikit-learn, SciPy, torch) or not installed where the experiment trains (the GPU machine).
HEAVY = ("torch", "matplotlib", "scipy", "sklearn", "nltk", "datatrove", "trafilatura")
NOT_ON_GPU_MACHINE = ("fasttext", "resiliparse", "fastwarc", "nltk", "profanity_check", "mmh3", "submitit")


def config_class(script: str) -> type:
    module, name = CONFIGS[script].split(":")
    if module.startswith("bench_"):
        sys.path.insert(0, str(PACKAGE / "benchmarks"))
    return getattr(importlib.import_module(module), name)


def test_every_entry_point_has_a_config():
    assert sorted(path.stem for path in ENTRY_POINTS) == sorted(CONFIGS)


@pytest.mark.parametrize("script", ENTRY_POINTS, ids=lambda path: path.name)
def test_help_lists_every_option_with_its_default_without_heavy_imports(script):
    help_text, loaded = help_probe(script, HEAVY)
    assert loaded == [], f"--help imported {loaded}"
    options = " ".join(help_text.split("options:", 1)[1].split())  # after the usage; argparse wraps lines
    for flag in flag_names(config_class(script.stem)):
        assert re.search(re.escape(flag) + r"\b[^-].*?\((default: [^)]*|required)\)", options), flag


@pytest.mark.parametrize("script", sorted(CONFIGS))
def test_every_option_has_a_line_of_help(script):
    assert [name for name, f in dotted_fields(config_class(script)) if not f.metadata.get("help")] == []


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("run_pipeline", ["--inputs", "no/such.warc.gz"], "input files not found: no/such.warc.gz"),
        ("run_pipeline", ["--inputs"], "no input files"),
        ("run_pipeline", ["--inputs", "{shard}", "--vocab", "v.json"], "vocab and merges go together"),
        ("run_pipeline", ["--inputs", "{shard}", "--min_quality", "1.5"], "min_quality must lie in [0, 1]"),
        ("run_pipeline", ["--inputs", "{shard}", "--minhash.num_bands", "7"], "not divisible by num_bands=7"),
        ("build_sample_crawl", ["--shards", "0"], "shards must be positive"),
        ("filter_vs_raw", ["--seeds"], "seeds is empty"),
        ("filter_vs_raw", ["--budgets", "0"], "positive number of tokens or a corpus name"),
        ("filter_vs_raw", ["--warmup_fraction", "1"], "warmup_fraction must lie in [0, 1)"),
        ("prepare_filter_experiment", ["--vocab_size", "100"], "vocab_size must lie in [257, 65536]"),
        ("diagnose_filter_experiment", ["--window", "1"], "window must be at least 2 tokens"),
        ("diagnose_filter_experiment", ["--seeds"], "seeds is empty"),
        ("train_quality_classifier", ["--positives_warc", "no.warc.gz"], "positives_warc files not found"),
        ("download_assets", ["--timeout", "0"], "timeout must be positive"),
        ("bench_extract_filter", ["--repeats", "0"], "must be positive"),
        ("bench_minhash_dedup", ["--rows", "0"], "must be positive"),
    ],
)
def test_a_bad_value_is_a_clear_error(script, argv, message, capsys):
    shard = PACKAGE / "sample_crawl" / "CC-SAMPLE-00000.warc.gz"
    with pytest.raises(SystemExit) as exit_:
        parse_config(config_class(script), [arg.format(shard=shard) for arg in argv])
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("run_pipeline", ["--inputs", "x", "--executor", "cloud"], "--executor: invalid choice value: 'cloud'"),
        ("build_sample_crawl", ["--preset", "huge"], "--preset: invalid choice value: 'huge'"),
        ("filter_vs_raw", ["--seeds", "one"], "invalid int value: 'one'"),
        ("inspect_filters", ["--out", "x"], "unknown flag --out (did you mean --out_dir?)"),
        ("run_pipeline", ["--inputs", "x", "--output", "y"], "unknown flag --output (did you mean --out_dir?)"),
    ],
)
def test_a_malformed_flag_stops_with_usage(script, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(config_class(script), argv)
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())


def documented_commands() -> list[tuple[str, list[str]]]:
    """``(script, argv)`` of every command in the docs and the root Makefile that runs an A4 script or benchmark."""
    sources = [PACKAGE / name for name in ("README.md", "WRITEUP.md", "BENCHMARKS.md")] + [ROOT / "Makefile"]
    sources += ENTRY_POINTS  # their docstrings' examples
    commands = []
    for source in sources:
        text = re.sub(r"\\\\?\n\s*", " ", source.read_text())  # join continued lines (\\ inside docstrings)
        for match in re.finditer(r"assignment4-data/(?:scripts|benchmarks)/(\w+)\.py([^\n`#]*)", text):
            args = match.group(2).split("2>")[0].strip().rstrip('"')
            if "..." in args or "[" in args:
                continue  # a synopsis, not a command
            commands.append((match.group(1), shlex.split(args.replace("$(RUN)", ""))))
    return commands


def test_documented_commands_still_parse():
    """Flags renamed or removed would make a documented command stop with a usage error; values (files that exist
    only after other steps) may still be refused."""
    commands = documented_commands()
    assert {"run_pipeline", "filter_vs_raw", "build_sample_crawl", "inspect_filters"} <= {s for s, _ in commands}
    assert unparsable_commands(commands, config_class) == []  # flags only: the config's own checks are not run


def test_make_a4_sample_runs_the_pipeline_on_the_shipped_crawl(monkeypatch):
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^a4-sample:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    argv = shlex.split(recipe.replace("\\\n", " ").split("run_pipeline.py", 1)[1])
    monkeypatch.chdir(ROOT)  # make runs it from the root; the config checks that the inputs exist
    config = parse_config(config_class("run_pipeline"), argv)
    assert config.inputs == [Path("assignment4-data/sample_crawl/CC-SAMPLE-00000.warc.gz")]
    assert config.out_dir == Path("runs/a4-sample") and config.log_decisions


TINY_SIZES = {"raw": 6000, "filtered": 3000, "heldout_docs": 600, "heldout_articles": 600}


def tiny_experiment_data(folder: Path, sizes: dict[str, int] = TINY_SIZES) -> None:
    """Token files and meta.json as prepare_filter_experiment writes them, with random ids of a 64-token vocabulary."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name, tokens in sizes.items():
        rng.integers(0, 64, tokens, dtype=np.uint16).tofile(folder / f"{name}.bin")
    corpora = {name: {"documents": 10, "characters": 4 * tokens, "tokens": tokens} for name, tokens in sizes.items()}
    (folder / "meta.json").write_text(json.dumps({"vocab_size": 64, "corpora": corpora}))


TINY_MODEL = (
    "--context_length 16 --d_model 32 --num_layers 1 --num_heads 2 --d_ff 64 --batch_size 4 --evals_per_run 2 "
    "--eval_batches 1 --device cpu"
)


def run_filter_vs_raw_as_on_the_gpu_machine(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The lead's GPU command: PYTHONPATH of A1 and A4 src, python3, nothing of cs336_data's dependencies."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in NOT_ON_GPU_MACHINE)  # import raises ImportError
    probe = f"import runpy, sys; {blocked}; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'assignment1-basics/src'}:{PACKAGE / 'src'}"}
    script = PACKAGE / "scripts" / "filter_vs_raw.py"
    return subprocess.run(
        [sys.executable, "-c", probe, str(script), *argv], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.mark.timeout(300)  # a fresh interpreter imports torch and trains four tiny runs
def test_filter_vs_raw_runs_on_the_cpu_with_only_the_gpu_machines_packages(tmp_path):
    """A tiny model on random tokens, every output written."""
    tiny_experiment_data(tmp_path / "data")
    out = tmp_path / "out"
    argv = f"--data {tmp_path / 'data'} --out_dir {out} --arms raw filtered --seeds 0 --budgets 640 filtered"
    result = run_filter_vs_raw_as_on_the_gpu_machine([*argv.split(), *TINY_MODEL.split()], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [(r["budget"], r["arm"]) for r in results["runs"]] == [
        ("640", "raw"),
        ("640", "filtered"),
        ("filtered", "raw"),
        ("filtered", "filtered"),
    ]
    first = results["runs"][0]
    assert first["tokens_trained"] == 640 and first["epochs"] == pytest.approx(640 / 6000)
    assert np.isfinite([first["heldout_docs_loss"], first["heldout_articles_loss"]]).all()
    assert set(results["summary"]) == {"640/raw", "640/filtered", "filtered/raw", "filtered/filtered"}
    assert "| 640 | raw |" in (out / "results.md").read_text()
    for budget in ("640", "filtered"):
        assert (out / f"loss_curves_{budget}.png").read_bytes().startswith(b"\x89PNG")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {(r["budget"], r["arm"], r["seed"]) for r in records} == {
        (b, a, 0) for b in ("640", "filtered") for a in ("raw", "filtered")
    }
    assert not list(out.glob("runs/*/*/checkpoint.pt"))  # checkpoints removed, numbers kept


@pytest.mark.timeout(300)  # a fresh interpreter imports torch and trains two tiny runs
def test_filter_vs_raw_scores_the_held_out_sets_it_is_given(tmp_path):
    """The equal-unique-token arms and held-out sets drawn like the filtered output: a loss per named set, the first
    set's curve; a missing set is refused before any training."""
    sizes = {"raw_as_filtered": 3200, "filtered": 3200, "heldout_filtered": 600, "heldout_docs": 600}
    tiny_experiment_data(tmp_path / "data", sizes)
    out = tmp_path / "out"
    argv = [
        *f"--data {tmp_path / 'data'} --out_dir {out} --arms raw_as_filtered filtered --seeds 0 --budgets 6400".split(),
        *"--heldout heldout_filtered heldout_docs".split(),
        *TINY_MODEL.split(),
    ]
    result = run_filter_vs_raw_as_on_the_gpu_machine(argv, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["arm"], r["epochs"]) for r in runs] == [("raw_as_filtered", 2.0), ("filtered", 2.0)]
    for run in runs:
        assert np.isfinite([run["heldout_filtered_loss"], run["heldout_docs_loss"]]).all()
        assert "heldout_articles_loss" not in run
    table = (out / "results.md").read_text()
    assert "heldout_filtered loss" in table and "heldout_articles" not in table
    result = run_filter_vs_raw_as_on_the_gpu_machine([*argv, "--heldout", "heldout_articles"], tmp_path)
    assert result.returncode != 0 and "no token file for ['heldout_articles']" in result.stderr
