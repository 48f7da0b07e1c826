"""scripts/plan_study.py end to end in-process: tiny real runs, a report, and the predicted model trained."""

import functools
import importlib.util
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

from cs336_scaling.planner import ScalingStudy
from cs336_scaling.study_timing import RunTime, StudyClock

SCRIPT = Path(__file__).parents[1] / "scripts" / "plan_study.py"


def load_script():
    spec = importlib.util.spec_from_file_location("plan_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_in_process_study_with_check(tmp_path, byte_tokens):
    out = tmp_path / "study"
    argv = (
        f"--tokens {byte_tokens} --vocab-size 256 --out {out} --devices cpu --flops-scale 1e-4 --context-length 32 "
        "--batch-divisor 32 --eval-sequences 16 --budget 3e14 --target 6e13 --sizes-per-level 3 --min-levels 2 "
        "--max-levels 2 --size-spread 4 --prior-tokens-per-parameter 0.004 --learning-rates 1e-3 --batch-sizes 128 "
        "--bootstrap 20 --check --check-neighbours 2 4 --check-max-steps 1"
    ).split()
    summary = load_script().main(argv)
    assert json.loads(json.dumps(summary)) == json.loads((out / "study.json").read_text())
    assert summary["flops_used"] <= 3e14
    assert summary["setting"]["flops_scale"] == 1e-4
    prediction, check = summary["prediction"], summary["check"]
    run = check["run"]
    assert (run["d_model"], run["num_layers"]) == (prediction["shape"]["d_model"], prediction["shape"]["num_layers"])
    # the check trains the predicted model for the target's FLOPs at the service's scale
    assert run["tokens"] <= 6e13 * 1e-4 / (6 * run["parameters"]) < run["tokens"] + 4 * 32
    assert math.isfinite(check["loss"]) and check["loss"] == run["loss"]
    assert check["neighbours"] == []  # every neighbour trains more than --check-max-steps 1
    report = (out / "report.md").read_text()
    assert "## Check" in report and "in-process service" in report


def test_time_budgeted_study_on_two_workers(tmp_path, byte_tokens):
    """--time-budget: probe runs on every worker, a scale chosen from them, the check and its neighbours at once.

    No scale fits a budget of 0.01 s, so the study runs at the floor scale whatever the machine's speed, and tiny
    probe runs keep it short (how the scale is chosen when one fits: the next test, on a fixed run-time model).
    """
    out = tmp_path / "study"
    argv = (
        f"--tokens {byte_tokens} --vocab-size 256 --out {out} --devices cpu --workers-per-device 2 "
        "--time-budget 0.01 --context-length 32 --batch-divisor 32 --eval-sequences 16 --budget 3e14 --target 6e13 "
        "--sizes-per-level 3 --min-levels 2 --max-levels 2 --size-spread 4 --prior-tokens-per-parameter 0.004 "
        "--learning-rates 1e-3 --batch-sizes 128 --bootstrap 20 --check --check-neighbours 2"
    ).split()
    script = load_script()
    script.probe_run_time = functools.partial(script.probe_run_time, shapes=((64, 2, 2), (128, 2, 2)), lengths=(4, 8))
    summary = script.main(argv)
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
    script = load_script()
    argv = (
        "--tokens unused.bin --out unused --devices cpu --time-budget 30 --context-length 32 --batch-divisor 32 "
        "--budget 3e14 --target 6e13 --sizes-per-level 3 --min-levels 2 --max-levels 2 --size-spread 4 "
        "--prior-tokens-per-parameter 0.004 --learning-rates 1e-3 --batch-sizes 128 --check --check-neighbours 2"
    )
    args = script.parse_args(argv.split())
    count = script.service_parameter_count(256, 32)
    run_time = RunTime(start=0.5, overhead=0.002, per_parameter=2e-9)

    def clock_at(scale: float) -> StudyClock:
        study = ScalingStudy(None, replace(script.planner_config(args, scale), concurrency=2), count)
        return StudyClock(study, run_time, scale, tokens_per_step=128, workers=2)

    def seconds(scale: float) -> float:
        clock = clock_at(scale)
        return clock.study_seconds() + clock.check_seconds(args.target, args.check_neighbours)

    scale, calibration = script.choose_flops_scale(args, clock_at, train_tokens=10**9)
    assert calibration["floor"] < scale < calibration["by_data"]
    assert seconds(scale) <= args.time_budget == 30 and calibration["estimated_seconds"] == seconds(scale)
    step = 10.0 ** (math.floor(math.log10(scale)) - 1)
    assert seconds(scale + step) > 30

    tiny, calibration = script.choose_flops_scale(replace(args, time_budget=0.01), clock_at, train_tokens=10**9)
    assert tiny == calibration["floor"]
    capped, calibration = script.choose_flops_scale(args, clock_at, train_tokens=20_000)
    assert calibration["floor"] <= capped <= calibration["by_data"] < scale
