"""Benchmarking helpers: timing statistics, phase timing with a fake clock, model cells on the CPU.

Nothing here asserts on how long anything takes; the clock is injected where timing logic is checked."""

import math
import statistics

import pytest
import torch
from cs336_basics.model import TransformerLM
from cs336_basics.model_sizes import MODEL_SIZES, model_config
from cs336_systems.benchmarking import ModelBenchmarkConfig, TimingStats, benchmark_model, time_repeated
from cs336_systems.benchmarking.model_benchmark import annotate_blocks, is_out_of_memory
from cs336_systems.benchmarking.timing import host_seconds_per_call, time_phases

TINY = "tiny"  # a CPU-sized shape of the size table


class FakeClock:
    """Advances by a scripted amount whenever the step under test runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timing_stats_match_statistics_module():
    seconds = [0.010, 0.012, 0.011, 0.015]
    stats = TimingStats.from_seconds(seconds)
    assert stats.mean_ms == pytest.approx(statistics.mean(seconds) * 1e3)
    assert stats.std_ms == pytest.approx(statistics.stdev(seconds) * 1e3)
    assert stats.count == 4
    assert TimingStats.from_seconds([0.5]).std_ms == 0.0
    with pytest.raises(ValueError):
        TimingStats.from_seconds([])


def test_time_repeated_warms_up_untimed_and_synchronizes_after_every_step():
    clock, events, durations_script = FakeClock(), [], iter([1.0, 1.0, 0.25, 0.5, 0.75])

    def step():
        events.append("step")
        clock.now += next(durations_script)

    def synchronize():
        events.append("sync")

    durations = time_repeated(step, warmup=2, repeats=3, synchronize=synchronize, clock=clock)
    assert durations == [0.25, 0.5, 0.75]
    assert events == ["step", "step", "sync", "step", "sync", "step", "sync", "step", "sync"]
    with pytest.raises(ValueError):
        time_repeated(step, warmup=0, repeats=0, synchronize=synchronize)


def test_host_seconds_per_call_times_the_calls_between_two_synchronizes():
    clock, events = FakeClock(), []

    def call():
        events.append("call")
        clock.now += 0.002

    def synchronize():
        events.append("sync")
        clock.now += 1.0  # waiting for the device is not host time per call

    assert host_seconds_per_call(call, 4, synchronize, clock) == pytest.approx(0.002)
    assert events == ["sync", "call", "call", "call", "call", "sync"]
    with pytest.raises(ValueError):
        host_seconds_per_call(call, 0, synchronize, clock)


def test_time_phases_times_each_phase_and_labels_ranges():
    clock, ranges = FakeClock(), []
    costs = {"forward": 1.0, "backward": 2.0}

    def phase(name):
        def run():
            clock.now += costs[name]

        return run

    class Recorder:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            ranges.append(self.name)

        def __exit__(self, *exc):
            return False

    durations = time_phases(
        [("forward", phase("forward")), ("backward", phase("backward"))],
        warmup=1,
        repeats=2,
        synchronize=lambda: None,
        annotate=Recorder,
        clock=clock,
    )
    assert durations == {"forward": [1.0, 1.0], "backward": [2.0, 2.0]}
    assert ranges == ["warmup", "step 0", "forward", "backward", "step 1", "forward", "backward"]


def test_block_ranges_open_and_close_once_per_block_and_keep_outputs():
    model = TransformerLM(model_config(TINY, context_length=8))
    tokens = torch.randint(0, 10_000, (2, 8))
    expected = model(tokens)
    calls = []
    annotate_blocks(model, push=lambda name: calls.append(("push", name)) or 7, pop=lambda: calls.append("pop") or 7)
    torch.testing.assert_close(model(tokens), expected)
    assert calls == [("push", "block 0"), "pop", ("push", "block 1"), "pop"]


@pytest.mark.parametrize(
    ("mode", "phases"), [("forward", ["forward"]), ("train_step", ["forward", "backward", "optimizer_step"])]
)
def test_benchmark_model_reports_every_phase_on_cpu(mode, phases):
    config = ModelBenchmarkConfig(TINY, 16, 2, mode, "bf16", warmup=1, steps=2, device="cpu", nvtx=False)
    row = benchmark_model(config)
    assert row["status"] == "ok" and row["mode"] == mode
    for phase in phases:
        assert row[f"{phase}_ms"] > 0 and row[f"{phase}_std_ms"] >= 0
    assert row["step_ms"] == pytest.approx(sum(row[f"{p}_ms"] for p in phases))
    assert row["first_step_ms"] > 0  # the no-warm-up comparison reads the first timed step apart
    assert "backward_ms" not in row if mode == "forward" else math.isfinite(row["backward_ms"])


def test_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("cuDNN error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_invalid_configuration_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        ModelBenchmarkConfig(mode="backward_only")
    with pytest.raises(ValueError, match="precision"):
        ModelBenchmarkConfig(precision="fp8")
    with pytest.raises(ValueError, match="size must be one of"):
        ModelBenchmarkConfig(size="huge")


def test_naive_annotated_attention_matches_the_models_fused_attention():
    from cs336_systems.benchmarking.naive_attention import use_naive_attention

    torch.manual_seed(0)
    model = TransformerLM(model_config(TINY, context_length=12))
    tokens = torch.randint(0, 10_000, (2, 12))
    expected = model(tokens)
    stages = []

    class Recorder:
        def __init__(self, name):
            stages.append(name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    use_naive_attention(model, Recorder)
    torch.testing.assert_close(model(tokens), expected, rtol=1e-5, atol=1e-5)
    assert stages == ["computing attention scores", "computing softmax", "final matmul"] * MODEL_SIZES[TINY].num_layers
    with pytest.raises(ValueError, match="KV cache"):
        model(tokens, attention_mask=torch.ones(2, 12, dtype=torch.bool))


def test_benchmark_model_with_naive_attention_on_cpu():
    config = ModelBenchmarkConfig(TINY, 16, 2, "train_step", "fp32", 1, 1, device="cpu", nvtx=False, attention="naive")
    row = benchmark_model(config)
    assert row["status"] == "ok" and row["attention"] == "naive" and row["backward_ms"] > 0
    with pytest.raises(ValueError, match="attention"):
        ModelBenchmarkConfig(attention="flash3")
