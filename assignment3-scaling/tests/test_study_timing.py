"""Study timing: the run-time model fitted to probes, the worker schedule, and a study timed phase by phase."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from cs336_scaling.model_shape import handout_parameters
from cs336_scaling.planner import ScalingStudy
from cs336_scaling.study_config import PlannerConfig
from cs336_scaling.study_timing import ProbeRun, RunTime, StudyClock, wave_seconds


def test_run_time_fit_recovers_start_overhead_and_per_parameter_cost():
    truth = RunTime(start=2.0, overhead=0.004, per_parameter=3e-9)
    probes = [ProbeRun(n, steps, truth.seconds(n, steps)) for n in (2e5, 3e6) for steps in (40, 160) for _ in range(3)]
    fitted = RunTime.fit(probes)
    assert fitted.start == pytest.approx(2.0)
    assert fitted.overhead == pytest.approx(0.004)
    assert fitted.per_parameter == pytest.approx(3e-9)


def test_run_time_fit_needs_two_sizes_and_two_lengths():
    with pytest.raises(ValueError, match="two different step counts"):
        RunTime.fit([ProbeRun(1e5, 40, 1.0), ProbeRun(1e6, 40, 2.0), ProbeRun(1e6, 80, 3.0)])
    with pytest.raises(ValueError, match="two model sizes"):
        RunTime.fit([ProbeRun(1e5, 40, 1.0), ProbeRun(1e5, 80, 2.0)])


def test_noise_cannot_make_a_bigger_model_faster():
    # the larger model's steps came out a little faster (timing noise): its cost is not negative
    probes = [ProbeRun(1e5, 40, 1.0), ProbeRun(1e5, 80, 1.5), ProbeRun(1e6, 40, 1.0), ProbeRun(1e6, 80, 1.45)]
    fitted = RunTime.fit(probes)
    assert fitted.per_parameter == 0.0
    assert fitted.step_seconds(1e6) == pytest.approx((0.5 / 40 + 0.45 / 40) / 2)


def test_wave_seconds_on_hand_worked_schedules():
    assert wave_seconds([3, 3, 2, 2, 2], workers=2) == 7  # 3+2+2 on one worker, 3+2 on the other
    assert wave_seconds([3, 3, 2, 2, 2], workers=1) == 12
    assert wave_seconds([3, 1], workers=8) == 3
    assert wave_seconds([], workers=2) == 0


def two_levels(**overrides) -> PlannerConfig:
    """No sweep (one learning rate and batch size), two levels of three sizes."""
    return PlannerConfig(
        budget=1e19,
        min_levels=2,
        max_levels=2,
        sizes_per_level=3,
        size_spread=4.0,
        learning_rates=[1e-3],
        batch_sizes=[128],
        allowed_flops=[1e17, 3e17],
        **overrides,
    )


def test_study_clock_times_each_phase_from_the_planned_runs():
    # runs cost 10 ms per step
    config = two_levels()
    study = ScalingStudy(api=None, config=config, count=handout_parameters)
    levels, sweep_level = study.plan()
    assert levels == [1e17, 3e17] and sweep_level is None
    clock = StudyClock(study, RunTime(0.0, 0.01, 0.0), flops_scale=1e-3, tokens_per_step=1000, workers=3)

    def seconds(parameters: float, flops: float) -> float:
        return 0.01 * math.floor(flops * 1e-3 / (6 * parameters * 1000))

    expected = 0.0
    for flops in levels:
        sizes = [handout_parameters(s) for s in study.level_shapes(study.prior_n_opt(flops))]
        assert len(sizes) == 3
        expected += max(seconds(n, flops) for n in sizes)  # three runs on three workers at once
        edge = study.parameters_of(study.shape_for(min(sizes) / 2))  # one size beyond the smallest, alone
        expected += seconds(edge, flops)
    assert clock.study_seconds() == pytest.approx(expected)

    one_worker = StudyClock(study, RunTime(0.0, 0.01, 0.0), flops_scale=1e-3, tokens_per_step=1000, workers=1)
    assert one_worker.study_seconds() > clock.study_seconds()
    # a larger scale trains more steps: a longer study
    bigger = StudyClock(study, RunTime(0.0, 0.01, 0.0), flops_scale=2e-3, tokens_per_step=1000, workers=3)
    assert bigger.study_seconds() > clock.study_seconds()


def test_study_clock_times_all_levels_at_once_as_one_wave():
    # the same two levels asked together: one wave of all six sizes, then one wave of both edge sizes
    config = two_levels(adaptive_levels=False)
    study = ScalingStudy(api=None, config=config, count=handout_parameters)

    def seconds(parameters: float, flops: float) -> float:
        return 0.01 * math.floor(flops * 1e-3 / (6 * parameters * 1000))

    runs, edges = [], []
    for flops in (1e17, 3e17):
        sizes = [handout_parameters(s) for s in study.level_shapes(study.prior_n_opt(flops))]
        runs += [seconds(n, flops) for n in sizes]
        edges.append(seconds(study.parameters_of(study.shape_for(min(sizes) / 2)), flops))
    clock = StudyClock(study, RunTime(0.0, 0.01, 0.0), flops_scale=1e-3, tokens_per_step=1000, workers=6)
    assert clock.study_seconds() == pytest.approx(max(runs) + max(edges))
    adaptive = StudyClock(
        ScalingStudy(api=None, config=replace(config, adaptive_levels=True), count=handout_parameters),
        RunTime(0.0, 0.01, 0.0),
        flops_scale=1e-3,
        tokens_per_step=1000,
        workers=6,
    )
    assert adaptive.study_seconds() > clock.study_seconds()
