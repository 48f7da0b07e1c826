"""Wall-clock timing of device work: warm-up, a synchronize after every call, mean and spread."""

import math
import timeit
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass


@dataclass(frozen=True)
class TimingStats:
    """Mean and sample standard deviation of repeated measurements, in milliseconds."""

    mean_ms: float
    std_ms: float
    count: int

    @classmethod
    def from_seconds(cls, seconds: list[float]) -> "TimingStats":
        if not seconds:
            raise ValueError("need at least one measurement")
        ms = [s * 1e3 for s in seconds]
        mean = sum(ms) / len(ms)
        variance = sum((x - mean) ** 2 for x in ms) / (len(ms) - 1) if len(ms) > 1 else 0.0
        return cls(mean, math.sqrt(variance), len(ms))

    def __str__(self) -> str:
        return f"{self.mean_ms:.2f} ± {self.std_ms:.2f}"


def time_repeated(
    step: Callable[[], object],
    warmup: int,
    repeats: int,
    synchronize: Callable[[], None],
    clock: Callable[[], float] = timeit.default_timer,
) -> list[float]:
    """Run ``step`` ``warmup`` times untimed, then ``repeats`` times timed; seconds per timed call.

    ``synchronize`` (``torch.cuda.synchronize`` on a GPU) runs before the clock starts and after every
    call, because kernel launches return before the GPU has done the work."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1; got {warmup}, {repeats}")
    for _ in range(warmup):
        step()
    synchronize()
    durations = []
    for _ in range(repeats):
        start = clock()
        step()
        synchronize()
        durations.append(clock() - start)
    return durations


def host_seconds_per_call(
    call: Callable[[], object],
    calls: int,
    synchronize: Callable[[], None],
    clock: Callable[[], float] = timeit.default_timer,
) -> float:
    """Host (CPU) seconds per call, issuing ``calls`` calls without waiting for the device between them (its queue
    holds them): the launch path's cost, which short kernels expose. ``synchronize`` runs before the clock starts,
    so earlier work is not counted, and once after the clock stops, so the device is idle on return."""
    if calls < 1:
        raise ValueError(f"need calls >= 1; got {calls}")
    synchronize()
    start = clock()
    for _ in range(calls):
        call()
    elapsed = clock() - start
    synchronize()
    return elapsed / calls


def time_phases(
    phases: list[tuple[str, Callable[[], object]]],
    warmup: int,
    repeats: int,
    synchronize: Callable[[], None],
    annotate: Callable[[str], AbstractContextManager] = lambda name: nullcontext(),
    clock: Callable[[], float] = timeit.default_timer,
) -> dict[str, list[float]]:
    """Time consecutive phases of one step (forward, backward, optimizer step) separately.

    Each step runs the phases in order, synchronizing after each so a phase's time is its own device
    work. ``annotate(name)`` wraps the warm-up, every step and every phase (NVTX ranges for nsys, whose
    capture can then skip the ``warmup`` range)."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1; got {warmup}, {repeats}")
    with annotate("warmup"):
        for _ in range(warmup):
            for _, run in phases:
                run()
        synchronize()
    durations: dict[str, list[float]] = {name: [] for name, _ in phases}
    for step in range(repeats):
        with annotate(f"step {step}"):
            for name, run in phases:
                with annotate(name):
                    start = clock()
                    run()
                    synchronize()
                    durations[name].append(clock() - start)
    return durations
