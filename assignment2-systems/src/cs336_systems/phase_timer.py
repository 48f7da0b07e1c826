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


class PhaseTimer:
    """`mark(name)` after each phase of a step; `end_step()` closes it; `mean_ms()` averages phases over steps."""

    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"
        self._steps: list[list[tuple[str, object]]] = []

    def _now(self):
        if not self._cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def start_step(self) -> None:
        self._steps.append([("start", self._now())])

    def mark(self, phase: str) -> None:
        self._steps[-1].append((phase, self._now()))

    def mean_ms(self) -> dict[str, float]:
        """Per-phase mean duration in milliseconds, plus `step` (start to last mark)."""
        if self._cuda:
            torch.cuda.synchronize()
        totals: dict[str, float] = defaultdict(float)
        for marks in self._steps:
            for (_, begin), (phase, end) in zip(marks, marks[1:]):
                totals[phase] += self._elapsed_ms(begin, end)
            totals["step"] += self._elapsed_ms(marks[0][1], marks[-1][1])
        return {phase: total / len(self._steps) for phase, total in totals.items()}

    def _elapsed_ms(self, begin, end) -> float:
        return begin.elapsed_time(end) if self._cuda else (end - begin) * 1e3
