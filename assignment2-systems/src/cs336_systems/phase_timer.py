"""Time the phases of a training step without perturbing it.

On a GPU the marks are CUDA events on the compute stream: the gap between "backward done" and "gradients
synchronised" is then exactly the communication the compute stream had to wait for (a collective that finished
during backward costs nothing), and no host synchronisation is inserted between phases. On the CPU the marks
are wall-clock times, which is the same thing there because gloo's `wait()` blocks the calling thread.
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch


class StreamClock:
    """Marks on the compute stream's clock: CUDA events on a GPU (recorded in stream order, read after one
    synchronisation), wall-clock seconds on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def now(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def elapsed_ms(self, begin, end) -> float:
        """Milliseconds from mark `begin` to mark `end` (after `synchronize()` on a GPU)."""
        return begin.elapsed_time(end) if self.cuda else (end - begin) * 1e3


class PhaseTimer:
    """`start_step()`, then `mark(name)` after each phase of the step; `mean_ms()` averages phases over steps."""

    def __init__(self, device: torch.device):
        self._clock = StreamClock(device)
        self._steps: list[list[tuple[str, object]]] = []

    def start_step(self) -> None:
        self._steps.append([("start", self._clock.now())])

    def mark(self, phase: str) -> None:
        self._steps[-1].append((phase, self._clock.now()))

    def mean_ms(self) -> dict[str, float]:
        """Per-phase mean duration in milliseconds, plus `step` (start to last mark)."""
        self._clock.synchronize()
        elapsed = self._clock.elapsed_ms
        totals: dict[str, float] = defaultdict(float)
        for marks in self._steps:
            for (_, begin), (phase, end) in zip(marks, marks[1:]):
                totals[phase] += elapsed(begin, end)
            totals["step"] += elapsed(marks[0][1], marks[-1][1])
        return {phase: total / len(self._steps) for phase, total in totals.items()}
