"""Which CUDA stream ran which kernel, when, in one profiled training step: what the handout's Nsight screenshots
show (is communication overlapped with the backward?), from `torch.profiler`'s CUPTI records, since Nsight Systems
cannot write reports on our GPU machine.

Per kernel: its stream (CUPTI's resource id), name, start and end on the GPU's clock, its kind (`communication` for
NCCL's kernels, else `compute`) and the step phase it was launched in. `PhaseMarks` stands in for `PhaseTimer` in
the profiled step: each `mark(phase)` leaves a host instant on the profiler's clock, and a kernel belongs to the
phase in which its launch call ran (matched by correlation id, so kernels that autograd launches from its own thread
are placed too). `summarize` turns the spans into the figures a screenshot only suggests: how long each kind kept
the GPU busy and for how much of it communication ran under compute (`hidden_share`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.figures import pyplot, save_figure
from torch.autograd import DeviceType
from torch.profiler import record_function

from cs336_systems.benchmarking.kernel_times import launch_times

MARK_PREFIX = "phase_end:"
COMMUNICATION = re.compile(r"nccl", re.IGNORECASE)


@dataclass(frozen=True)
class KernelSpan:
    """One kernel on the GPU's timeline, in µs from the profiled step's first kernel."""

    stream: int
    name: str
    start_us: float
    end_us: float
    kind: str  # "communication" or "compute"
    phase: str  # the phase it was launched in: the first marked phase ending after its launch ("after" if none)


class PhaseMarks:
    """A `PhaseTimer` stand-in for a profiled step: `mark(phase)` after each phase records a host instant named
    `phase_end:<phase>` on the profiler's clock."""

    def start_step(self) -> None:
        pass

    def mark(self, phase: str) -> None:
        with record_function(MARK_PREFIX + phase):
            pass


def phase_marks(events: Iterable) -> list[tuple[float, str]]:
    """`(host time in µs, phase)` of each `PhaseMarks.mark` in the profile, in time order."""
    return sorted(
        (e.time_range.start, e.name.removeprefix(MARK_PREFIX))
        for e in events
        if e.device_type == DeviceType.CPU and e.name.startswith(MARK_PREFIX)
    )


def kernel_spans(events: Iterable) -> list[KernelSpan]:
    """The profile's CUDA kernels (user annotations left out), each with its stream, kind and launch phase, sorted by
    start; times in µs from the first kernel's start."""
    events = list(events)
    marks = phase_marks(events)
    launched = launch_times(events)
    kernels = [
        e
        for e in events
        if e.device_type == DeviceType.CUDA
        and not getattr(e, "is_user_annotation", False)
        and not e.name.startswith(MARK_PREFIX)
    ]
    if not kernels:
        return []
    origin = min(e.time_range.start for e in kernels)

    def phase_of(host_us: float) -> str:
        for mark_us, phase in marks:  # the first phase whose end comes after the launch
            if host_us <= mark_us:
                return phase
        return "after"

    spans = [
        KernelSpan(
            stream=int(e.device_resource_id),
            name=e.name,
            start_us=e.time_range.start - origin,
            end_us=e.time_range.end - origin,
            kind="communication" if COMMUNICATION.search(e.name) else "compute",
            phase=phase_of(launched.get(e.id, e.time_range.start)),
        )
        for e in kernels
    ]
    return sorted(spans, key=lambda span: span.start_us)


def _union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def busy_us(intervals: Iterable[tuple[float, float]]) -> float:
    """Time during which at least one of the intervals runs (overlapping intervals counted once)."""
    return sum(end - start for start, end in _union(intervals))


def overlap_us(a: Iterable[tuple[float, float]], b: Iterable[tuple[float, float]]) -> float:
    """Time during which something of `a` and something of `b` run at once."""
    a_union, b_union = _union(a), _union(b)
    total, j = 0.0, 0
    for start, end in a_union:
        while j < len(b_union) and b_union[j][1] <= start:
            j += 1
        k = j
        while k < len(b_union) and b_union[k][0] < end:
            total += min(end, b_union[k][1]) - max(start, b_union[k][0])
            k += 1
    return total


def summarize(spans: Sequence[KernelSpan]) -> dict:
    """GPU time of one step: its span, the busy time of compute and of communication kernels, the time both ran at
    once and the share of communication hidden under compute; per phase the span of its kernels on the GPU and its
    communication time; per stream the kernels and busy time."""
    by_kind = {kind: [(s.start_us, s.end_us) for s in spans if s.kind == kind] for kind in ("compute", "communication")}
    communication_us = busy_us(by_kind["communication"])
    overlapped_us = overlap_us(by_kind["compute"], by_kind["communication"])
    phases: dict[str, dict] = {}
    for phase in dict.fromkeys(s.phase for s in spans):
        mine = [s for s in spans if s.phase == phase]
        phases[phase] = {
            "start_ms": min(s.start_us for s in mine) / 1e3,
            "end_ms": max(s.end_us for s in mine) / 1e3,
            "communication_ms": busy_us((s.start_us, s.end_us) for s in mine if s.kind == "communication") / 1e3,
        }
    streams: dict[int, dict] = {}
    for stream in sorted({s.stream for s in spans}):
        mine = [s for s in spans if s.stream == stream]
        streams[stream] = {
            "kernels": len(mine),
            "communication_kernels": sum(s.kind == "communication" for s in mine),
            "busy_ms": busy_us((s.start_us, s.end_us) for s in mine) / 1e3,
        }
    return {
        "span_ms": max((s.end_us for s in spans), default=0.0) / 1e3,
        "compute_ms": busy_us(by_kind["compute"]) / 1e3,
        "communication_ms": communication_us / 1e3,
        "overlapped_ms": overlapped_us / 1e3,
        "hidden_share": overlapped_us / communication_us if communication_us else None,
        "phases": phases,
        "streams": streams,
    }


def plot_stream_timelines(panels: dict[str, Sequence[KernelSpan]], path: str, title: str) -> None:
    """One panel per setup, one lane per stream: compute kernels blue, NCCL kernels red, and above the lanes each
    phase's extent on the GPU (from its first kernel's start to its last kernel's end)."""
    plt = pyplot()
    from matplotlib.patches import Patch

    colors = {"compute": "tab:blue", "communication": "tab:red"}
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 1.2 + 1.5 * len(panels)), squeeze=False)
    for ax, (setup, spans) in zip(axes[:, 0], panels.items()):
        streams = sorted({s.stream for s in spans})
        labels = []
        for lane, stream in enumerate(streams):
            on_stream = [s for s in spans if s.stream == stream]
            only_nccl = all(s.kind == "communication" for s in on_stream)
            labels.append(f"stream {stream}" + (" (NCCL)" if only_nccl else ""))
            for kind, color in colors.items():
                bars = [(s.start_us / 1e3, (s.end_us - s.start_us) / 1e3) for s in on_stream if s.kind == kind]
                if bars:
                    ax.broken_barh(bars, (lane - 0.35, 0.7), color=color, linewidth=0)
        summary = summarize(spans)
        for index, (phase, extent) in enumerate(summary["phases"].items()):
            y = len(streams) - 0.3 + 0.25 * (index % 2)
            ax.plot([extent["start_ms"], extent["end_ms"]], [y, y], color="black", linewidth=1.2)
            ax.text(extent["start_ms"], y + 0.05, phase, fontsize=7, va="bottom")
        ax.set_yticks(range(len(streams)), labels, fontsize=8)
        ax.set_ylim(-0.6, len(streams) + 0.4)
        hidden = summary["hidden_share"]
        ax.set_title(
            f"{setup}: step {summary['span_ms']:.1f} ms on the GPU, communication {summary['communication_ms']:.1f} ms"
            + ("" if hidden is None else f", {hidden:.0%} of it under compute"),
            fontsize=9,
        )
    axes[-1, 0].set_xlabel("ms from the step's first kernel")
    legend = [Patch(color=color, label=f"{kind} kernel") for kind, color in colors.items()]
    fig.legend(handles=legend, fontsize=8, loc="lower center", ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_figure(fig, path)


def write_stream_timelines(
    out_dir: str, stem: str, per_setup: dict[str, list[dict]], panels: dict[str, Sequence[KernelSpan]], meta: dict
) -> list[str]:
    """`<stem>.json` (per setup every rank's `summarize`) and `<stem>.png` (`plot_stream_timelines` of `panels`)."""
    json_path = os.path.join(out_dir, f"{stem}.json")
    write_json_atomic(json_path, {"meta": meta, "setups": per_setup}, indent=1)
    png_path = os.path.join(out_dir, f"{stem}.png")
    plot_stream_timelines(panels, png_path, title=stem)
    return [json_path, png_path]
