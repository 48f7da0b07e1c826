"""The attention-backend training benchmark: a smoke run on the CPU, failures recorded as rows, ratios to SDPA."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from cs336_basics.toolkit.cli import parse_config

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "bench_attention_backends.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_attention_backends", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_the_table_and_json(bench, tmp_path):
    bench.main(parse_config(bench.BenchConfig, ["--smoke", "--out_dir", str(tmp_path), "--backends", "naive", "sdpa"]))
    result = json.loads((tmp_path / "attention_backends.json").read_text())
    rows = result["rows"]
    assert [(row["backend"], row["context"]) for row in rows] == [
        (backend, context) for context in bench.SMOKE["contexts"] for backend in ("naive", "sdpa")
    ]
    assert {row["status"] for row in rows} == {"ok"}
    assert all(row["batch"] * row["context"] == bench.SMOKE["tokens_per_step"] for row in rows)
    assert all(row["tokens_per_s"] > 0 for row in rows)
    assert [row["vs_sdpa"] for row in rows if row["backend"] == "sdpa"] == [1.0, 1.0]
    assert result["config"]["device"] == "cpu" and result["config"]["compile"] == "off"
    assert [row.get("sdpa_kernel") for row in rows] == [None, bench.NOT_ON_CPU] * len(bench.SMOKE["contexts"])
    table = (tmp_path / "attention_backends.md").read_text()
    assert "| context | batch | compiled | backend | tokens/s | vs sdpa |" in table
    assert "| peak GiB | sdpa kernel | status |" in table and table.count(f"| {bench.NOT_ON_CPU} |") == 2
    assert table.count("| naive |") == len(bench.SMOKE["contexts"])
    unprofiled = bench.run(
        parse_config(bench.BenchConfig, ["--smoke", "--out_dir", str(tmp_path), "--no-profile_sdpa"])
    )
    assert {row.get("sdpa_kernel") for row in unprofiled} == {None}


def test_the_profile_names_sdpa_kernels_times_every_row_and_a_failed_profile_keeps_the_row(bench, monkeypatch):
    steps = []
    monkeypatch.setattr(bench, "_release", lambda device: None)
    monkeypatch.setattr(bench, "training_step", lambda *args: lambda: steps.append(args[1:4]))
    profiled = {"backend": "cudnn", "kernels": {"cudnn_generated_fort_native_sdpa_sm90": "cudnn"}, "ops": ["op"]}
    monkeypatch.setattr(bench, "profile_sdpa_backend", lambda step, device: dict(profiled))
    times = {"cuda_ms": 65.4, "attention_ms": 4.4, "attention_kernels": {"flash_bwd_kernel": {}}}
    monkeypatch.setattr(bench, "profile_kernel_times", lambda step, device, steps: dict(times))
    cuda, config = torch.device("cuda"), bench.BenchConfig()
    sdpa_row = {"backend": "sdpa", "context": 1024, "compiled": False}
    fields = bench.profile_fields(config, sdpa_row, cuda)
    assert fields == {"sdpa_kernel": "cudnn", "sdpa_profile": {"kernels": profiled["kernels"], "ops": ["op"]}, **times}
    assert steps == [("sdpa", 1024, False)]  # a fresh model's first step (its compilation) is not the profiled one
    ours = {"backend": "flash_triton", "context": 4096, "compiled": False}
    assert bench.profile_fields(config, ours, cuda) == times
    no_kernels = bench.BenchConfig(profile_kernels=False)
    assert bench.profile_fields(no_kernels, ours, cuda) == {}
    assert bench.profile_fields(config, sdpa_row, torch.device("cpu")) == {"sdpa_kernel": bench.NOT_ON_CPU}

    def failing(step, device):
        raise RuntimeError("CUPTI_ERROR_NOT_INITIALIZED")

    monkeypatch.setattr(bench, "profile_sdpa_backend", failing)
    failed = bench.profile_fields(config, sdpa_row, cuda)
    assert failed == {"sdpa_kernel": "profile failed: RuntimeError", "kernel_profile": "profile failed: RuntimeError"}


def test_a_failing_configuration_becomes_a_row_and_the_sweep_goes_on(bench, tmp_path, monkeypatch):
    def fake_training_step(config, backend, context, compiled, device):
        def step():
            if backend == "naive" and context == 32:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 96 GiB")
            if backend == "naive":
                raise RuntimeError("Triton compilation failed\nlong details")

        return step

    monkeypatch.setattr(bench, "training_step", fake_training_step)
    rows = bench.run(bench.BenchConfig(out_dir=str(tmp_path), smoke=True, backends=["naive", "sdpa"]))
    statuses = {(row["backend"], row["context"]): row["status"] for row in rows}
    assert statuses == {
        ("naive", 16): "error: RuntimeError: Triton compilation failed",
        ("sdpa", 16): "ok",
        ("naive", 32): "OOM",
        ("sdpa", 32): "ok",
    }
    written = json.loads((tmp_path / "attention_backends.json").read_text())["rows"]
    assert [row["status"] for row in written] == [row["status"] for row in rows]


def test_interleaved_rounds_time_every_backend_in_a_rotated_order(bench, tmp_path, monkeypatch):
    """With rounds, a context's models are all built and warmed up first, then each round times steps / rounds steps
    of each (after one untimed step), the order rotated each round; a backend that fails in a round keeps its
    status and leaves the later rounds."""
    calls = []

    def fake_training_step(config, backend, context, compiled, device):
        def step():
            calls.append(backend)
            if backend == "naive" and calls.count("naive") > 4:
                raise RuntimeError("fails in its second round")

        return step

    monkeypatch.setattr(bench, "training_step", fake_training_step)
    smoke = {**bench.SMOKE, "contexts": [16], "warmup": 1, "steps": 4}
    backends = ["naive", "sdpa", "sdpa_flash"]
    config = bench.BenchConfig(out_dir=str(tmp_path), backends=backends, profile_sdpa=False, rounds=2, **smoke)
    rows = bench.run(config)
    rotated = ["sdpa", "sdpa_flash", "naive"]
    assert calls == backends + [b for b in backends for _ in range(3)] + [b for b in rotated for _ in range(3)][:-2]
    assert [(row["backend"], row["status"], row.get("rounds")) for row in rows] == [
        ("naive", "error: RuntimeError: fails in its second round", None),
        ("sdpa", "ok", 2),
        ("sdpa_flash", "ok", 2),
    ]
    assert all(row["step_median_ms"] >= 0 for row in rows if row["status"] == "ok")


def test_flash_triton_is_skipped_on_the_cpu_without_the_interpreter(bench, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    row = bench.measure(bench.BenchConfig(smoke=True), "flash_triton", 16, False, torch.device("cpu"))
    assert row["status"].startswith("skipped")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert bench.flash_triton_unavailable(torch.device("cpu")) is None


def test_ratios_compare_with_sdpa_at_the_same_context_and_compile_mode(bench):
    def row(backend, context, compiled, tokens_per_s, status="ok"):
        return dict(backend=backend, context=context, compiled=compiled, tokens_per_s=tokens_per_s, status=status)

    rows = bench.with_ratios(
        [row("sdpa", 256, False, 100.0), row("flash_triton", 256, False, 150.0), row("sdpa", 256, True, 300.0)]
        + [row("flash_triton", 256, True, 150.0), row("naive", 1024, False, 10.0), row("sdpa", 1024, False, 0, "OOM")]
    )
    assert [r.get("vs_sdpa") for r in rows] == [1.0, 1.5, 1.0, 0.5, None, None]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tokens_per_step": 1000, "contexts": [256]}, "not a multiple"),
        ({"backends": ["flash"]}, "unknown backends"),
        ({"compile": "yes"}, "compile must be"),
        ({"size": "huge"}, "size must be"),
        ({"rounds": 0}, "rounds must be"),
        ({"profile_steps": 0}, "profile_steps must be"),
        ({"steps": 2, "rounds": 3}, "rounds must be"),
    ],
)
def test_bad_configurations_are_rejected(bench, changes, message):
    with pytest.raises(ValueError, match=message):
        bench.BenchConfig(**changes)


def test_pinned_sdpa_backends_run_only_their_kernel(bench, tmp_path):
    """``sdpa_flash`` / ``sdpa_cudnn`` are SDPA restricted to one kernel: the math kernel pinned the same way matches
    the causal float64 attention; on the CPU, SDPA's flash kernel has a CPU version and cuDNN's has none, so the cuDNN
    rows fail as rows."""
    from torch.nn.attention import SDPBackend

    q, k, v = (
        torch.randn(2, 3, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(i)) for i in range(3)
    )
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    expected = scores.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf")).softmax(-1) @ v
    torch.testing.assert_close(bench.pinned_sdpa(SDPBackend.MATH)(q, k, v), expected)
    rows = bench.run(
        bench.BenchConfig(out_dir=str(tmp_path), smoke=True, backends=["sdpa", "sdpa_flash", "sdpa_cudnn"])
    )
    statuses = {(row["backend"], row["context"]): row["status"] for row in rows}
    assert {status for (backend, _), status in statuses.items() if backend != "sdpa_cudnn"} == {"ok"}
    cudnn = [status for (backend, _), status in statuses.items() if backend == "sdpa_cudnn"]
    assert len(cudnn) == 2 and all(status.startswith("error: RuntimeError: No viable backend") for status in cudnn)
