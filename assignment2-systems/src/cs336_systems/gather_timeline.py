"""When each FSDP unit's all-gather was issued, waited for, ready and copied out: "does the gather finish in time?"
answered without Nsight.

A gather that finished before compute needed it costs nothing: the compute stream passes its wait at once. So per
gather the timeline marks, on the compute stream's clock (`phase_timer.StreamClock`: CUDA events on a GPU, no host
synchronisation added; wall-clock on the CPU, where gloo's `wait()` blocks the caller):

- `issued`: the gather was started (before its shards are cast and concatenated into the send buffer);
- `wait`: compute reached the point where it needs the unit;
- `ready`: the wait returned. `ready - wait` is the **stall**, the time compute stood still for the collective;
- `copied`: the rank-major result was copied out into one contiguous full weight per weight (the **copy-out**).

`wait - issued` is how far ahead the gather was started (its **lead**). Where the stall is zero the collective
finished somewhere inside the lead; where it is not, it finished at `ready`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.figures import pyplot, save_figure

from cs336_systems.phase_timer import StreamClock

GATHER_MARKS = ("issued", "wait", "ready", "copied")


@dataclass(eq=False)
class GatherSpan:
    """The marks of one unit gather (see the module docstring); a prefetch nobody used has only `issued`."""

    unit: int
    phase: str
    clock: StreamClock
    marks: dict[str, object] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.marks[name] = self.clock.now()


class GatherTimeline:
    """Records the gathers of one training step: `start_step()`, run the step (`mark(phase)` after forward and
    backward, as with `PhaseTimer`), `stop()`, then `rows()` reads every gather's marks in ms from the step's start."""

    def __init__(self, device: torch.device):
        self.clock = StreamClock(device)
        self.recording = False
        self._origin: object | None = None
        self._spans: list[GatherSpan] = []
        self._phases: list[tuple[str, object]] = []

    def start_step(self) -> None:
        self._spans.clear()
        self._phases.clear()
        self._origin = self.clock.now()
        self.recording = True

    def mark(self, phase: str) -> None:
        self._phases.append((phase, self.clock.now()))

    def stop(self) -> None:
        self.recording = False

    def issue(self, unit: int, phase: str) -> GatherSpan | None:
        """A span for a gather started now, or None when no step is being recorded."""
        if not self.recording:
            return None
        span = GatherSpan(unit, phase, self.clock)
        span.mark("issued")
        self._spans.append(span)
        return span

    def rows(self) -> list[dict]:
        """One row per gather of the recorded step, in issue order: the marks in ms from the step's start, and
        `lead_ms`, `stall_ms` and `copy_ms` (None for a prefetch that was never waited for)."""
        since = self._since_origin()
        rows = []
        for span in self._spans:
            at = {name: since(mark) for name, mark in span.marks.items()}
            used = "copied" in at
            rows.append(
                {
                    "unit": span.unit,
                    "phase": span.phase,
                    **{f"{name}_ms": at.get(name) for name in GATHER_MARKS},
                    "lead_ms": at["wait"] - at["issued"] if used else None,
                    "stall_ms": at["ready"] - at["wait"] if used else None,
                    "copy_ms": at["copied"] - at["ready"] if used else None,
                }
            )
        return rows

    def phase_ends_ms(self) -> dict[str, float]:
        """Where each marked phase of the recorded step ended, in ms from its start."""
        since = self._since_origin()
        return {phase: since(mark) for phase, mark in self._phases}

    def _since_origin(self):
        if self._origin is None:
            raise RuntimeError("no step was recorded: call start_step() before the step")
        self.clock.synchronize()
        return lambda mark: self.clock.elapsed_ms(self._origin, mark)


def summarize(rows: Iterable[dict], stall_threshold_ms: float = 0.05) -> dict[str, dict]:
    """Per phase: gathers used and unused, total and largest stall, how many stalled longer than the threshold
    (an event pair around a wait that had nothing to wait for reads a few microseconds), and total copy-out."""
    summary: dict[str, dict] = {}
    for row in rows:
        phase = summary.setdefault(
            row["phase"],
            {"gathers": 0, "unused": 0, "stall_ms": 0.0, "max_stall_ms": 0.0, "stalled": 0, "copy_ms": 0.0},
        )
        if row["stall_ms"] is None:
            phase["unused"] += 1
            continue
        phase["gathers"] += 1
        phase["stall_ms"] += row["stall_ms"]
        phase["max_stall_ms"] = max(phase["max_stall_ms"], row["stall_ms"])
        phase["stalled"] += row["stall_ms"] > stall_threshold_ms
        phase["copy_ms"] += row["copy_ms"]
    return summary


def write_timeline(out_dir: str, stem: str, per_rank: list[dict], meta: dict) -> list[str]:
    """`<stem>.json` (every rank's rows, phase ends and summary) and `<stem>.png` (one lane per unit and rank)."""
    json_path = os.path.join(out_dir, f"{stem}.json")
    write_json_atomic(json_path, {"meta": meta, "ranks": per_rank}, indent=1)
    png_path = os.path.join(out_dir, f"{stem}.png")
    plot_timeline(per_rank, png_path, title=stem)
    return [json_path, png_path]


def plot_timeline(per_rank: list[dict], path: str, title: str) -> None:
    """Per rank a panel, per unit a lane (its forward gather just below the lane's centre, its backward gather just
    above): the lead (grey line from issue to wait), the stall (red) and the copy-out (blue); dashed lines where
    the step's phases ended."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    units = max((row["unit"] for rank in per_rank for row in rank["rows"]), default=0) + 1
    panel_height = max(2.0, 0.6 + 0.3 * units)
    fig, axes = plt.subplots(len(per_rank), 1, figsize=(12, 0.8 + panel_height * len(per_rank)), squeeze=False)
    for ax, rank in zip(axes[:, 0], per_rank):
        for row in rank["rows"]:
            lane = row["unit"] + (0.18 if row["phase"] == "backward" else -0.18)
            if row["stall_ms"] is None:
                ax.plot([row["issued_ms"]], [lane], marker="x", color="grey", markersize=4)
                continue
            ax.plot([row["issued_ms"], row["wait_ms"]], [lane, lane], color="grey", linewidth=0.8)
            ax.barh(lane, row["stall_ms"], left=row["wait_ms"], height=0.3, color="tab:red")
            ax.barh(lane, row["copy_ms"], left=row["ready_ms"], height=0.3, color="tab:blue")
        for phase, end in rank["phase_ends_ms"].items():
            ax.axvline(end, color="black", linestyle="--", linewidth=0.7)
            ax.text(end, units - 0.45, f"{phase} ", fontsize=7, va="top", ha="right")
        stalls = ", ".join(f"{phase} {s['stall_ms']:.2f} ms" for phase, s in rank["summary"].items())
        ax.set_title(f"rank {rank['rank']}: stalls {stalls}", fontsize=9)
        ax.set_ylabel("unit")
        ax.set_yticks(range(units))
        ax.set_ylim(-0.6, units - 0.4)
    axes[-1, 0].set_xlabel("ms from the step's start")
    legend = [
        Line2D([], [], color="grey", linewidth=0.8, label="gather in flight before compute needed it (lead)"),
        Patch(color="tab:red", label="stall: compute waits for the gather"),
        Patch(color="tab:blue", label="copy-out into full weights"),
    ]
    fig.legend(handles=legend, fontsize=8, loc="lower center", ncol=3)
    fig.suptitle(f"{title} (per unit: forward gather below, backward gather above)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path)
