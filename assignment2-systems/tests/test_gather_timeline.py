"""The FSDP gather timeline: what each mark measures (a collective that blocks for a known time), the summary by
hand, and the marks of real FSDP steps on 2 gloo ranks."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from cs336_systems.distributed_utils import DistributedContext
from cs336_systems.fsdp import FSDP, PendingUnitGather
from cs336_systems.gather_timeline import GatherTimeline, summarize, write_timeline

from tests.distributed_harness import run_on_ranks
from tests.test_fsdp import StackNet


class BlockingWork:
    """A collective that is still in flight for `seconds` after it is waited for (as gloo's `wait()` blocks)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def wait(self) -> bool:
        time.sleep(self.seconds)
        return True


def _pending(work, span) -> PendingUnitGather:
    one_weight_unit = SimpleNamespace(weights=[None])  # one weight: wait() returns the gathered buffer as is
    buffer = torch.zeros(4)
    return PendingUnitGather(one_weight_unit, torch.float32, buffer, buffer, work, span)


def test_the_stall_is_the_time_compute_waits_and_the_lead_the_time_before_it_needed_the_unit():
    timeline = GatherTimeline(torch.device("cpu"))
    timeline.start_step()
    span = timeline.issue(unit=3, phase="forward")
    time.sleep(0.02)  # compute that runs while the gather is in flight
    _pending(BlockingWork(0.03), span).wait()
    timeline.stop()
    assert timeline.issue(unit=4, phase="forward") is None  # nothing is marked once the step is over
    (row,) = timeline.rows()
    assert (row["unit"], row["phase"]) == (3, "forward")
    assert 0 <= row["issued_ms"] <= row["wait_ms"] <= row["ready_ms"] <= row["copied_ms"]
    assert row["lead_ms"] >= 20 and row["stall_ms"] >= 30  # sleeps last at least as long as asked
    assert row["lead_ms"] == pytest.approx(row["wait_ms"] - row["issued_ms"])
    assert row["stall_ms"] == pytest.approx(row["ready_ms"] - row["wait_ms"])


def test_a_prefetch_never_waited_for_is_a_row_without_stall():
    timeline = GatherTimeline(torch.device("cpu"))
    timeline.start_step()
    timeline.issue(unit=1, phase="backward")
    timeline.stop()
    (row,) = timeline.rows()
    assert row["issued_ms"] is not None
    assert row["wait_ms"] is row["stall_ms"] is row["copy_ms"] is None
    assert summarize([row]) == {
        "backward": {"gathers": 0, "unused": 1, "stall_ms": 0.0, "max_stall_ms": 0.0, "stalled": 0, "copy_ms": 0.0}
    }


def test_reading_rows_before_any_step_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no step was recorded"):
        GatherTimeline(torch.device("cpu")).rows()


def test_summary_by_hand():
    rows = [
        {"phase": "forward", "stall_ms": 2.0, "copy_ms": 0.5},
        {"phase": "forward", "stall_ms": 0.01, "copy_ms": 0.25},
        {"phase": "backward", "stall_ms": 0.0, "copy_ms": 1.0},
        {"phase": "backward", "stall_ms": None, "copy_ms": None},
    ]
    assert summarize(rows, stall_threshold_ms=0.05) == {
        "forward": {"gathers": 2, "unused": 0, "stall_ms": 2.01, "max_stall_ms": 2.0, "stalled": 1, "copy_ms": 0.75},
        "backward": {"gathers": 1, "unused": 1, "stall_ms": 0.0, "max_stall_ms": 0.0, "stalled": 0, "copy_ms": 1.0},
    }


def _timeline_of_fsdp_steps(ctx: DistributedContext, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = StackNet()
    fsdp = FSDP(model)
    ids = torch.randint(0, StackNet.vocab_size, (2, 5))
    timeline = GatherTimeline(ctx.device)
    fsdp.trace_gathers(timeline)
    per_step = []
    for _ in range(2):
        timeline.start_step()
        loss = F.cross_entropy(fsdp(ids).flatten(0, 1), ids.flatten())
        timeline.mark("forward")
        loss.backward()
        fsdp.finish_gradient_synchronization()
        timeline.mark("backward")
        timeline.stop()
        per_step.append((timeline.rows(), timeline.phase_ends_ms()))
    fsdp.trace_gathers(None)
    root, *blocks = range(len(fsdp.units))
    for rows, ends in per_step:
        forward = [row for row in rows if row["phase"] == "forward"]
        backward = [row for row in rows if row["phase"] == "backward"]
        assert [row["unit"] for row in forward] == [root, *blocks]  # embedding (root unit) first, then each block
        assert [row["unit"] for row in backward] == list(reversed(blocks))  # the root unit is kept from forward
        for row in rows:
            assert row["issued_ms"] <= row["wait_ms"] <= row["ready_ms"] <= row["copied_ms"]
        assert max(row["copied_ms"] for row in forward) <= ends["forward"] <= min(r["issued_ms"] for r in backward)
        assert max(row["copied_ms"] for row in backward) <= ends["backward"]
    # Backward prefetches one unit ahead from its first step on: each block's gather starts before the unit
    # backward needed just before it is ready. Forward learns its order from the previous forward, so only the
    # second step prefetches: each block's gather starts before the unit before it is waited for.
    for rows, _ in per_step:
        backward = [row for row in rows if row["phase"] == "backward"]
        assert all(later["issued_ms"] < earlier["ready_ms"] for earlier, later in zip(backward, backward[1:]))
    first_forward, second_forward = ([row for row in rows if row["phase"] == "forward"] for rows, _ in per_step)
    assert all(later["issued_ms"] > earlier["copied_ms"] for earlier, later in zip(first_forward, first_forward[1:]))
    assert all(later["issued_ms"] < earlier["wait_ms"] for earlier, later in zip(second_forward, second_forward[1:]))
    if ctx.rank == 0:
        rows, ends = per_step[-1]
        write_timeline(
            out_dir, "timeline", [{"rank": 0, "phase_ends_ms": ends, "summary": summarize(rows), "rows": rows}], {}
        )


def test_fsdp_steps_mark_every_gather_in_order_with_prefetches_ahead(tmp_path):
    run_on_ranks(_timeline_of_fsdp_steps, str(tmp_path))
    saved = json.loads((tmp_path / "timeline.json").read_text())
    assert {row["phase"] for row in saved["ranks"][0]["rows"]} == {"forward", "backward"}
    assert (tmp_path / "timeline.png").stat().st_size > 0
