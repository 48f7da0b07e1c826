"""How long an in-process study and its check runs take at a given ``flops_scale``, from measured step times.

Small models are launch-bound: a step costs a fixed overhead plus a part that grows with the model, so at equal
FLOPs the smallest model of a level (the most steps) takes the longest, and a FLOPs-per-second rate measured on
one model misjudges the others. :class:`RunTime` models a run as ``start + steps · (overhead + per_parameter · N)``,
fitted to probe runs of two sizes and two lengths; the study is then timed phase by phase (the sweep, each level
and its edge run, the check runs), each phase's independent runs spread over the workers longest first.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace

from cs336_scaling.model_shape import flops_parameters, model_config
from cs336_scaling.planner import ScalingStudy
from cs336_scaling.run_spec import RunSpec
from cs336_scaling.training_run import TrainingSetup
from cs336_scaling.workers import LocalWorkerPool


@dataclass(frozen=True)
class ProbeRun:
    """One timed run: model size, optimizer steps and wall seconds (start-up and evaluation included)."""

    parameters: float
    steps: int
    seconds: float


@dataclass(frozen=True)
class RunTime:
    """Wall seconds of a run: ``start + steps · (overhead + per_parameter · parameters)``."""

    start: float
    overhead: float
    per_parameter: float

    def step_seconds(self, parameters: float) -> float:
        return self.overhead + self.per_parameter * parameters

    def seconds(self, parameters: float, steps: float) -> float:
        return self.start + steps * self.step_seconds(parameters)

    @classmethod
    def fit(cls, probes: list[ProbeRun]) -> RunTime:
        """Per size, the step time is the slope of seconds over steps and the start-up cost its intercept; the
        step time is then a line in the parameter count through the sizes' step times. Needs two lengths of
        each of two sizes; negative fitted terms (timing noise) are clamped to zero."""
        by_size: dict[float, list[ProbeRun]] = {}
        for probe in probes:
            by_size.setdefault(probe.parameters, []).append(probe)
        lines = {}
        for parameters, runs in by_size.items():
            if len({r.steps for r in runs}) < 2:
                raise ValueError(f"the probes of N={parameters:g} need at least two different step counts")
            lines[parameters] = _line([r.steps for r in runs], [r.seconds for r in runs])
        if len(lines) < 2:
            raise ValueError("step times need probes of at least two model sizes")
        sizes = sorted(lines)
        overhead, per_parameter = _line(sizes, [lines[n][1] for n in sizes])
        start = max(0.0, sum(lines[n][0] for n in sizes) / len(sizes))
        if per_parameter < 0:
            overhead, per_parameter = sum(lines[n][1] for n in sizes) / len(sizes), 0.0
        return cls(start, max(overhead, 0.0), per_parameter)


def _line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope."""
    mean_x, mean_y = sum(x) / len(x), sum(y) / len(y)
    spread = sum((a - mean_x) ** 2 for a in x)
    slope = sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y)) / spread
    return mean_y - slope * mean_x, slope


def wave_seconds(durations: list[float], workers: int) -> float:
    """Wall time of independent runs on ``workers`` workers, each run going to the first worker free (a FIFO
    queue) in longest-first order."""
    finish = [0.0] * max(1, workers)
    for duration in sorted(durations, reverse=True):
        heapq.heappush(finish, heapq.heappop(finish) + duration)
    return max(finish)


@dataclass(frozen=True)
class StudyClock:
    """Times a study's phases at the study's own ``flops_scale`` (runs train ``C · flops_scale`` FLOPs)."""

    study: ScalingStudy
    run_time: RunTime
    flops_scale: float
    tokens_per_step: int  # batch × context of a run at the planner's first batch size
    workers: int

    def run_seconds(self, parameters: float, nominal_flops: float) -> float:
        steps = math.floor(nominal_flops * self.flops_scale / (6 * parameters * self.tokens_per_step))
        return self.run_time.seconds(parameters, steps)

    def sized(self, wanted: float) -> float:
        return self.study.parameters_of(self.study.shape_for(wanted))

    def study_seconds(self) -> float:
        """The sweep, then each level's sizes (around the prior optimum) and one edge size beyond its smallest;
        levels asked all at once (``adaptive_levels=False``) share one wave of sizes and one of edge sizes."""
        config = self.study.config
        levels, sweep_level = self.study.plan()
        total = 0.0
        if sweep_level is not None:
            size = self.sized(self.study.prior_n_opt(sweep_level))
            total += wave_seconds([self.run_seconds(size, sweep_level)] * len(self.study.combos()), self.workers)
        step = config.size_spread ** (1 / (config.sizes_per_level - 1))
        for block in [[flops] for flops in levels] if config.adaptive_levels else [levels]:
            grid = {
                c: [self.study.parameters_of(s) for s in self.study.level_shapes(self.study.prior_n_opt(c))]
                for c in block
            }
            total += wave_seconds([self.run_seconds(n, c) for c, sizes in grid.items() for n in sizes], self.workers)
            edges = [self.run_seconds(self.sized(min(sizes) / step), c) for c, sizes in grid.items()]
            total += wave_seconds(edges, self.workers)
        return total

    def check_seconds(self, target: float, neighbours: list[float]) -> float:
        """The predicted model at the prior optimum and the sizes each factor in ``neighbours`` either side."""
        center = self.study.prior_n_opt(target)
        factors = [1.0, *(g for f in neighbours for g in (1 / f, f))]
        return wave_seconds([self.run_seconds(self.sized(center * f), target) for f in factors], self.workers)


PROBE_SHAPES = ((64, 2, 2), (256, 4, 4))  # the launch-bound small end of a study and a mid-sized model
PROBE_STEPS = (40, 160)


def probe_run_time(
    pool: LocalWorkerPool,
    setup: TrainingSetup,
    shapes: tuple[tuple[int, int, int], ...] = PROBE_SHAPES,
    lengths: tuple[int, ...] = PROBE_STEPS,
    concurrent: int | None = None,
) -> tuple[RunTime, list[ProbeRun]]:
    """Time runs of two sizes and two lengths, ``concurrent`` at once (default: every worker; a study's phases
    run at most a handful, and runs sharing a device slow each other), each size after a cold run of it per
    worker, and fit :class:`RunTime` to them, with the cold runs' mean time as the start-up cost."""
    probe_setup = replace(setup, scale=replace(setup.scale, flops_scale=1.0))
    tokens_per_step = setup.scale.tokens_per_step(128)
    workers = min(concurrent or len(pool.devices), len(pool.devices))

    def wave(shape: tuple[int, int, int], steps: int) -> list[ProbeRun]:
        spec = RunSpec(*shape, 128, 1e-3, 0)
        parameters = flops_parameters(model_config(spec, setup.vocab_size, setup.scale.context_length))
        spec = replace(spec, train_flops=int(6 * parameters * tokens_per_step * (steps + 0.5)))
        results = [future.result() for future in [pool.submit(spec, probe_setup) for _ in range(workers)]]
        return [ProbeRun(r.parameters, r.steps, r.seconds) for r in results]

    cold, probes = [], []
    for shape in shapes:  # a shape's first runs pay its start-up (CUDA context, compilation): timed apart
        for _ in range(-(-len(pool.devices) // workers)):
            cold += [probe.seconds for probe in wave(shape, 5)]
        probes += [probe for steps in lengths for probe in wave(shape, steps)]
    run_time = RunTime.fit(probes)
    # every study run is a new shape: it pays the cold start (at least what the warm runs' fit says)
    return replace(run_time, start=max(run_time.start, sum(cold) / len(cold))), probes
