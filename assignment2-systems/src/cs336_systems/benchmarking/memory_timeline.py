"""Read a CUDA memory snapshot the way pytorch.org/memory_viz does, without a browser: the active-memory timeline
(as a PNG), the largest allocations with the source lines that made them, and, when the step's allocations carry
the labels of :mod:`cs336_systems.benchmarking.memory_labels`, what one Transformer block saves for backward and
what its gradients take.

A snapshot (``torch.cuda.memory._snapshot()``) holds the allocator's segments at the end of recording and the trace
of every event while recording. Active memory rises at an ``alloc`` and falls at a ``free_requested`` (the tensor's
death; ``free_completed`` is the stream catching up). The memory active before recording is not in the trace, so it
is inferred: the blocks still allocated at the end, less what the trace added. Sizes are the bytes the tensors asked
for (the trace's sizes, and the blocks' ``requested_size``): ``torch.cuda.max_memory_allocated`` counts the blocks
the allocator handed out, rounded up and sometimes a whole cached block larger than asked, so it reads up to 1 %
higher (0.1-1.0 % at the peaks of the 2.7B model's steps on an H200). Pure Python (no torch), so the analysis runs
anywhere a pickle of a snapshot can be read.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.toolkit.figures import pyplot, save_figure

MIB = 2**20
BEFORE = "before the step"
PHASES = ("forward", "backward", "optimizer_step")
CATEGORIES = (BEFORE, *PHASES, "unlabelled")
"""Bands of the timeline, bottom to top: what was live when recording began, then what each phase allocated."""
CATEGORY_COLOURS = {BEFORE: "#9e9e9e", "forward": "#1f77b4", "backward": "#d62728", "optimizer_step": "#2ca02c"}
BLOCK_LABEL = re.compile(r"^block (\d+) (forward|backward)$")
SOURCE_FILE = re.compile(r"(cs336_\w+/.*\.py)$")
"""Source lines are named from the package down (``cs336_basics/layers.py``), so they read the same on any machine."""
AUTOGRAD_NODE = re.compile(r"torch::autograd::generated::(\w+)::apply\(")
"""Backward allocations come from autograd's device thread, whose stack has no Python frame: the C++ frames name the
backward node instead (``MmBackward0``)."""


def phase_of(label: str) -> str:
    """The phase a label belongs to: ``"forward"``, ``"backward"``, ``"optimizer_step"`` or ``"unlabelled"``."""
    block = BLOCK_LABEL.match(label)
    if block:
        return block.group(2)
    return label if label in PHASES else "unlabelled"


def allocation_source(frames: list[dict]) -> str:
    """The innermost frame in this project's packages, as ``cs336_basics/layers.py:33 (forward)``; else the autograd
    node that allocated, as ``MmBackward0 (autograd)``; else the innermost Python frame of any file; ``"unknown"``
    for a trace recorded without stacks."""
    python = [f for f in frames if f.get("filename", "").endswith(".py")]
    for frame in python:
        ours = SOURCE_FILE.search(frame["filename"].replace(os.sep, "/"))
        if ours:
            return f"{ours.group(1)}:{frame['line']} ({frame['name']})"
    for frame in frames:
        node = AUTOGRAD_NODE.search(frame.get("name", ""))
        if node:
            return f"{node.group(1)} (autograd)"
    if python:
        return f"{Path(python[0]['filename']).name}:{python[0]['line']} ({python[0]['name']})"
    return "unknown"


@dataclass
class Allocation:
    """One allocation made while recording: its size, where and in which labelled span it was made, and the label
    of the span that freed it (None while it lives)."""

    size: int
    label: str
    source: str
    freed_in: str | None = None


@dataclass
class Timeline:
    """Active bytes after each event, split by category, and every allocation made while recording."""

    start_bytes: int
    active: list[int] = field(default_factory=list)
    by_category: dict[str, list[int]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)

    @property
    def peak_bytes(self) -> int:
        return max(self.active, default=self.start_bytes)

    @property
    def end_bytes(self) -> int:
        return self.active[-1] if self.active else self.start_bytes


def _device_trace(snapshot: dict, device: int | None) -> tuple[int, list[dict]]:
    traces = snapshot.get("device_traces")
    if not isinstance(traces, list) or "segments" not in snapshot:
        raise ValueError("not a CUDA memory snapshot: expected 'segments' and 'device_traces' (torch.cuda.memory)")
    recorded = [index for index, trace in enumerate(traces) if trace]
    if device is None:
        if len(recorded) != 1:
            raise ValueError(f"the snapshot has traces for devices {recorded}: pass the device to read")
        device = recorded[0]
    if not 0 <= device < len(traces) or not traces[device]:
        raise ValueError(f"the snapshot has no trace for device {device} (traces for {recorded})")
    return device, traces[device]


def active_timeline(snapshot: dict, device: int | None = None) -> Timeline:
    """The active-memory timeline of ``device``'s trace (the only recorded device when None).

    Raises if the trace cannot be the whole history of the step: when it starts with frees of memory it never saw
    allocated, that is fine (memory from before recording), but a trace that wrapped around its ring buffer
    (``max_entries``) would make the inferred start wrong, and shows as a negative start."""
    device, trace = _device_trace(snapshot, device)
    end_active = sum(
        block.get("requested_size", block["size"])
        for segment in snapshot["segments"]
        if segment.get("device", device) == device
        for block in segment["blocks"]
        if block["state"] == "active_allocated"
    )
    added = sum(e["size"] for e in trace if e["action"] == "alloc")
    removed = sum(e["size"] for e in trace if e["action"] == "free_requested")
    start = end_active - added + removed
    if start < 0:
        raise ValueError(
            f"the trace adds {added - removed} bytes to reach the final {end_active}: it is not the whole recording "
            f"(a wrapped max_entries ring buffer?)"
        )
    timeline = Timeline(start_bytes=start, by_category={category: [] for category in CATEGORIES})
    live: dict[int, tuple[Allocation, str]] = {}
    totals = dict.fromkeys(CATEGORIES, 0)
    totals[BEFORE] = start
    active = start
    for event in trace:
        action = event["action"]
        if action not in ("alloc", "free_requested"):
            continue
        label = event.get("user_metadata", "") or ""
        if action == "alloc":
            allocation = Allocation(event["size"], label, allocation_source(event.get("frames", [])))
            timeline.allocations.append(allocation)
            category = phase_of(label)
            live[event["addr"]] = (allocation, category)
            active += event["size"]
        else:
            allocation, category = live.pop(event["addr"], (None, BEFORE))
            if allocation is not None:
                allocation.freed_in = label
            active -= event["size"]
        totals[category] += event["size"] if action == "alloc" else -event["size"]
        timeline.active.append(active)
        timeline.labels.append(label)
        for name in CATEGORIES:
            timeline.by_category[name].append(totals[name])
    return timeline


def largest_allocations(timeline: Timeline, top: int = 3, sources: int = 3) -> list[dict]:
    """The ``top`` largest allocation sizes made while recording, each with its count and its most frequent source
    lines: what memory_viz shows at a low "Detail" level, with the stack trace read for you."""
    by_size: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for allocation in timeline.allocations:
        by_size[allocation.size][allocation.source] += 1
    rows = []
    for size in sorted(by_size, reverse=True)[:top]:
        counts = by_size[size]
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:sources]
        rows.append({"MiB": size / MIB, "count": sum(counts.values()), "sources": dict(ranked)})
    return rows


def block_indices(timeline: Timeline) -> list[int]:
    """The Transformer blocks whose allocations carry labels, in order."""
    return sorted({int(match.group(1)) for a in timeline.allocations if (match := BLOCK_LABEL.match(a.label))})


def saved_for_backward(timeline: Timeline, block: int, top: int = 5) -> dict:
    """What block ``block`` keeps for backward: its forward's allocations that the forward did not free (they die
    in the backward, or live on), totalled and by source line, the ``top`` largest with their share."""
    kept = [
        a
        for a in timeline.allocations
        if a.label == f"block {block} forward" and (a.freed_in is None or phase_of(a.freed_in) != "forward")
    ]
    return _by_source(kept, top)


def block_gradients(timeline: Timeline, block: int, top: int = 5) -> dict:
    """What block ``block``'s backward allocates that the backward does not free: its parameters' gradients (and
    anything else the backward leaves alive), totalled and by source line."""
    produced = [
        a
        for a in timeline.allocations
        if a.label == f"block {block} backward" and (a.freed_in is None or phase_of(a.freed_in) != "backward")
    ]
    return _by_source(produced, top)


def block_backward_change(timeline: Timeline, block: int) -> int:
    """The net change of active memory over the events labelled ``block {block} backward``: the gradients it
    produces less the saved tensors it frees (the handout's per-block reading of a profile)."""
    label = f"block {block} backward"
    change, previous = 0, timeline.start_bytes
    for active, event_label in zip(timeline.active, timeline.labels, strict=True):
        if event_label == label:
            change += active - previous
        previous = active
    return change


def _by_source(allocations: list[Allocation], top: int) -> dict:
    total = sum(a.size for a in allocations)
    by_source: dict[str, int] = defaultdict(int)
    for allocation in allocations:
        by_source[allocation.source] += allocation.size
    ranked = sorted(by_source.items(), key=lambda item: (-item[1], item[0]))[:top]
    return {
        "MiB": total / MIB,
        "allocations": len(allocations),
        "largest": [{"source": s, "MiB": size / MIB, "share": size / total} for s, size in ranked],
    }


def summarize(timeline: Timeline, block: int | None = None) -> dict:
    """The JSON summary of a snapshot: start, peak and end in MiB, the largest allocations, and for a labelled
    training step the middle block's (or ``block``'s) saved tensors and gradients."""
    summary = {
        "start_MiB": timeline.start_bytes / MIB,
        "peak_MiB": timeline.peak_bytes / MIB,
        "end_MiB": timeline.end_bytes / MIB,
        "events": len(timeline.active),
        "largest_allocations": largest_allocations(timeline),
    }
    blocks = block_indices(timeline)
    if blocks:
        block = blocks[len(blocks) // 2] if block is None else block
        summary["block"] = block
        summary["saved_for_backward"] = saved_for_backward(timeline, block)
        if any(a.label == f"block {block} backward" for a in timeline.allocations):
            summary["gradients"] = block_gradients(timeline, block)
            summary["backward_change_MiB"] = block_backward_change(timeline, block) / MIB
    return summary


def plot_timeline(timeline: Timeline, title: str, path: str | os.PathLike) -> Path:
    """The active-memory timeline as stacked bands (memory from before the step, then what each phase allocated)
    over the allocator's events in order, as memory_viz's "Active Memory Timeline" orders them; written atomically."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    steps = list(range(len(timeline.active)))
    bands = [name for name in CATEGORIES if any(timeline.by_category[name])]
    ax.stackplot(
        steps,
        [[b / 2**30 for b in timeline.by_category[name]] for name in bands],
        labels=[name.replace("_", " ") for name in bands],
        colors=[CATEGORY_COLOURS.get(name, "#ff7f0e") for name in bands],
        step="post",
        alpha=0.85,
    )
    peak = timeline.active.index(timeline.peak_bytes) if timeline.active else 0
    ax.axhline(timeline.peak_bytes / 2**30, color="black", linewidth=0.8, linestyle="--")
    ax.annotate(f"peak {timeline.peak_bytes / MIB:,.0f} MiB", (peak, timeline.peak_bytes / 2**30),
                textcoords="offset points", xytext=(-4, 4), ha="right", fontsize=9)  # fmt: skip
    ax.set_xlabel("allocator event (alloc or free, in order)")
    ax.set_ylabel("active memory (GiB)")
    ax.set_title(title)
    ax.set_xlim(0, max(len(steps) - 1, 1))
    ax.set_ylim(0, timeline.peak_bytes / 2**30 * 1.1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
