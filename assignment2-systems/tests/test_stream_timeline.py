"""Kernels per CUDA stream in one profiled step (``cs336_systems.stream_timeline``): interval arithmetic against
hand-worked cases, span extraction from profiler events built by hand (the CUPTI records a GPU profile holds) and from
a real CPU profile's marks, the summary, the files, and the benchmark's refusal without CUDA."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cs336_systems.stream_timeline import (
    KernelSpan,
    PhaseMarks,
    busy_us,
    kernel_spans,
    overlap_us,
    phase_marks,
    summarize,
    write_stream_timelines,
)
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile

REPOSITORY = Path(__file__).parents[2]
COMPUTE_STREAM, NCCL_STREAM = 7, 20


def test_busy_time_counts_overlapping_intervals_once():
    assert busy_us([]) == 0
    assert busy_us([(0, 10), (5, 15), (20, 25)]) == 20  # [0, 15] and [20, 25]
    assert busy_us([(0, 10), (10, 12)]) == 12


def test_overlap_is_the_time_both_sets_run():
    assert overlap_us([(0, 10)], [(10, 20)]) == 0
    assert overlap_us([(0, 10), (20, 30)], [(5, 25)]) == 10  # [5, 10] and [20, 25]
    assert overlap_us([(0, 4), (2, 6)], [(1, 3), (5, 9)]) == 3  # [0, 6] against [1, 3] and [5, 9]
    assert overlap_us([(5, 25)], [(0, 10), (20, 30)]) == overlap_us([(0, 10), (20, 30)], [(5, 25)])


def host(correlation: int, name: str, start: float, end: float | None = None) -> FunctionEvent:
    return FunctionEvent(correlation, name, thread=1, start_us=start, end_us=start if end is None else end)


def kernel(correlation: int, name: str, stream: int, start: float, end: float) -> FunctionEvent:
    return FunctionEvent(
        correlation, name, thread=0, start_us=start, end_us=end, device_type=DeviceType.CUDA, device_resource_id=stream
    )


def naive_ddp_step_events() -> list[FunctionEvent]:
    """A step as CUPTI records it: a forward kernel, a backward kernel launched from autograd's thread, the gradient
    all-reduce launched after the backward's mark, the optimizer; the all-reduce's GPU time partly overlaps the last
    backward kernel, which was launched earlier but runs late. Times in µs on the profiler's clock."""
    return [
        host(1, "cudaLaunchKernel", 1000),
        kernel(1, "ampere_sgemm_128x64_tn", COMPUTE_STREAM, 1010, 1100),
        host(0, "phase_end:fwd", 1050),
        host(2, "cudaLaunchKernel", 1060),
        kernel(2, "elementwise_kernel", COMPUTE_STREAM, 1100, 1300),
        host(0, "phase_end:bwd", 1070),
        host(3, "cuLaunchKernelEx", 1080),
        kernel(3, "ncclDevKernel_AllReduce_Sum_f32_RING_LL", NCCL_STREAM, 1200, 1500),
        host(0, "phase_end:sync", 1090),
        host(4, "cudaLaunchKernel", 1095),
        kernel(4, "multi_tensor_apply_kernel", COMPUTE_STREAM, 1500, 1550),
        host(0, "phase_end:opt", 1099),
        FunctionEvent(
            9, "opt", thread=0, start_us=1500, end_us=1550, device_type=DeviceType.CUDA, is_user_annotation=True
        ),  # a record_function range's copy on the GPU timeline: not a kernel
    ]


def test_kernels_get_their_stream_kind_and_launch_phase():
    spans = kernel_spans(naive_ddp_step_events())
    assert [(s.stream, s.kind, s.phase, s.start_us, s.end_us) for s in spans] == [
        (COMPUTE_STREAM, "compute", "fwd", 0, 90),
        (COMPUTE_STREAM, "compute", "bwd", 90, 290),
        (NCCL_STREAM, "communication", "sync", 190, 490),
        (COMPUTE_STREAM, "compute", "opt", 490, 540),
    ]


def test_a_kernel_without_a_launch_record_is_placed_by_its_own_start():
    events = [host(0, "phase_end:fwd", 100), kernel(5, "gemm", COMPUTE_STREAM, 50, 60), kernel(6, "gemm", 3, 150, 160)]
    assert [s.phase for s in kernel_spans(events)] == ["fwd", "after"]


def test_summary_of_the_naive_step():
    summary = summarize(kernel_spans(naive_ddp_step_events()))
    assert summary["span_ms"] == pytest.approx(0.54)
    assert summary["compute_ms"] == pytest.approx(0.34)  # [0, 290] and [490, 540]
    assert summary["communication_ms"] == pytest.approx(0.30)
    assert summary["overlapped_ms"] == pytest.approx(0.10)  # the all-reduce under the backward kernel's tail
    assert summary["hidden_share"] == pytest.approx(1 / 3)
    assert list(summary["phases"]) == ["fwd", "bwd", "sync", "opt"]
    assert summary["phases"]["sync"] == pytest.approx({"start_ms": 0.19, "end_ms": 0.49, "communication_ms": 0.3})
    assert summary["streams"] == {
        COMPUTE_STREAM: {"kernels": 3, "communication_kernels": 0, "busy_ms": pytest.approx(0.34)},
        NCCL_STREAM: {"kernels": 1, "communication_kernels": 1, "busy_ms": pytest.approx(0.30)},
    }


def test_no_communication_has_no_hidden_share():
    spans = [KernelSpan(COMPUTE_STREAM, "gemm", 0, 10, "compute", "fwd")]
    assert summarize(spans)["hidden_share"] is None and summarize([])["span_ms"] == 0


def test_marks_of_a_real_profile_are_found_in_order():
    marks, x = PhaseMarks(), torch.randn(64, 64)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        marks.start_step()
        y = x @ x
        marks.mark("fwd")
        (y @ x).sum()
        marks.mark("bwd")
    found = phase_marks(profiler.events())
    assert [phase for _, phase in found] == ["fwd", "bwd"] and found[0][0] < found[1][0]
    assert kernel_spans(profiler.events()) == []  # no CUDA kernels on a CPU


def test_files_are_written(tmp_path):
    spans = kernel_spans(naive_ddp_step_events())
    summaries, panels = {"naive": [summarize(spans)]}, {"naive": spans}
    paths = write_stream_timelines(str(tmp_path), "kernel_timeline_t", summaries, panels, {})
    assert [os.path.basename(p) for p in paths] == ["kernel_timeline_t.json", "kernel_timeline_t.png"]
    assert Path(paths[1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_kernels_on_two_streams_of_a_real_gpu_profile():
    x, side = torch.randn(512, 512, device="cuda"), torch.cuda.Stream()
    marks = PhaseMarks()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        x @ x
        marks.mark("first")
        with torch.cuda.stream(side):
            x @ x
        marks.mark("second")
        torch.cuda.synchronize()
    spans = kernel_spans(profiler.events())
    assert {s.phase for s in spans} == {"first", "second"}
    assert len({s.stream for s in spans if s.phase == "first"} | {s.stream for s in spans if s.phase == "second"}) == 2


def test_the_benchmark_refuses_a_kernel_timeline_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU machine profiles")
    script = REPOSITORY / "assignment2-systems" / "benchmarks" / "bench_ddp.py"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", str(script), "--size", "tiny"]
    command += ["--setups", "local", "--kernel_timeline", "--out_dir", str(tmp_path)]
    finished = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert finished.returncode != 0
    assert "--kernel_timeline needs CUDA GPUs" in finished.stderr
