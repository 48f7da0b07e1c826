"""cs336_scaling.study end to end in-process: tiny real runs, a report, and the predicted model trained."""

import functools
import json
import math
from dataclasses import replace

import cs336_scaling.study as study_module
from cs336_scaling.model_shape import flops_parameters
from cs336_scaling.planner import ScalingStudy
from cs336_scaling.study import choose_flops_scale, run_study
from cs336_scaling.study_config import CheckConfig, InProcessConfig, PlannerConfig, StudyConfig
from cs336_scaling.study_timing import RunTime, StudyClock

TINY_PLAN = PlannerConfig(
    budget=3e14,
    target_flops=6e13,
    sizes_per_level=3,
    min_levels=2,
    max_levels=2,
    size_spread=4,
    prior_tokens_per_parameter=0.004,
    learning_rates=[1e-3],
    batch_sizes=[128],
    bootstrap=20,
)


def tiny_service(tokens, **overrides) -> InProcessConfig:
    return InProcessConfig(
        tokens=str(tokens),
        vocab_size=256,
        devices="cpu",
        context_length=32,
        batch_divisor=32,
        eval_sequences=16,
        **overrides,
    )


def test_in_process_study_with_check(tmp_path, byte_tokens):
    out = tmp_path / "study"
    config = StudyConfig(
        out_dir=str(out),
        service=tiny_service(byte_tokens, flops_scale=1e-4),
        check=CheckConfig(train=True, neighbours=[2, 4], max_steps=1),
        plan=TINY_PLAN,
    )
    summary = run_study(config, command=["plan_study.py"])
    assert json.loads(json.dumps(summary)) == json.loads((out / "study.json").read_text())
    assert summary["flops_used"] <= 3e14
    assert summary["setting"]["flops_scale"] == 1e-4
    prediction, check = summary["prediction"], summary["check"]
    run = check["run"]
    assert (run["d_model"], run["num_layers"]) == (prediction["shape"]["d_model"], prediction["shape"]["num_layers"])
    # the check trains the predicted model for the target's FLOPs at the service's scale
    assert run["tokens"] <= 6e13 * 1e-4 / (6 * run["parameters"]) < run["tokens"] + 4 * 32
    assert math.isfinite(check["loss"]) and check["loss"] == run["loss"]
    assert check["neighbours"] == []  # every neighbour trains more than check.max_steps 1
    report = (out / "report.md").read_text()
    assert "## Check" in report and "in-process service" in report


def test_time_budgeted_study_on_two_workers(tmp_path, byte_tokens, monkeypatch):
    """service.time_budget: probe runs on every worker, a scale chosen from them, the check and its neighbours.

    No scale fits a budget of 0.01 s, so the study runs at the floor scale whatever the machine's speed, and tiny
    probe runs keep it short (how the scale is chosen when one fits: the next test, on a fixed run-time model).
    """
    tiny_probes = functools.partial(study_module.probe_run_time, shapes=((64, 2, 2), (128, 2, 2)), lengths=(4, 8))
    monkeypatch.setattr(study_module, "probe_run_time", tiny_probes)
    config = StudyConfig(
        out_dir=str(tmp_path / "study"),
        service=tiny_service(byte_tokens, workers_per_device=2, time_budget=0.01),
        check=CheckConfig(train=True, neighbours=[2]),
        plan=TINY_PLAN,
    )
    summary = run_study(config, command=["plan_study.py"])
    setting = summary["setting"]
    calibration = setting["calibration"]
    assert setting["workers"] == ["cpu", "cpu"] and calibration["workers"] == 2
    assert len(calibration["probes"]) == 2 * 2 * 2  # two sizes, two lengths, every worker
    assert {p["steps"] for p in calibration["probes"]} == {4, 8}
    assert calibration["run_time"]["start"] > 0
    assert setting["flops_scale"] == calibration["floor"] and calibration["estimated_seconds"] > 0.01
    assert summary["flops_used"] <= 3e14
    check = summary["check"]
    assert math.isfinite(check["loss"]) and len(check["neighbours"]) >= 1
    sizes = [check["run"]["parameters"]] + [n["parameters"] for n in check["neighbours"]]
    assert len(set(sizes)) == len(sizes)


def test_time_budget_picks_the_largest_scale_that_fits():
    """On a fixed run-time model (a fake clock: no runs, no timing), the chosen scale fits the budget and the next
    scale of two significant digits does not; a tiny budget gives the floor, a small corpus caps the scale."""
    from cs336_basics.model import ModelConfig

    check = CheckConfig(train=True, neighbours=[2])
    run_time = RunTime(start=0.5, overhead=0.002, per_parameter=2e-9)
    base = ModelConfig(vocab_size=256, context_length=32)

    def clock_at(scale: float) -> StudyClock:
        plan = replace(TINY_PLAN, prior_tokens_per_parameter=TINY_PLAN.prior_tokens_per_parameter / scale)
        study = ScalingStudy(None, replace(plan, concurrency=2), flops_parameters, base=base)
        return StudyClock(study, run_time, scale, tokens_per_step=128, workers=2)

    def seconds(scale: float) -> float:
        clock = clock_at(scale)
        return clock.study_seconds() + clock.check_seconds(TINY_PLAN.target_flops, check.neighbours)

    scale, calibration = choose_flops_scale(30, check, clock_at, train_tokens=10**9)
    assert calibration["floor"] < scale < calibration["by_data"]
    assert seconds(scale) <= 30 and calibration["estimated_seconds"] == seconds(scale)
    step = 10.0 ** (math.floor(math.log10(scale)) - 1)
    assert seconds(scale + step) > 30

    tiny, calibration = choose_flops_scale(0.01, check, clock_at, train_tokens=10**9)
    assert tiny == calibration["floor"]
    capped, calibration = choose_flops_scale(30, check, clock_at, train_tokens=20_000)
    assert calibration["floor"] <= capped <= calibration["by_data"] < scale
