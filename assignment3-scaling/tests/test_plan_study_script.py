"""scripts/plan_study.py end to end in-process: tiny real runs, a report, and the predicted model trained."""

import importlib.util
import json
import math
import sys
from pathlib import Path

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
        "--batch-divisor 32 --budget 3e14 --target 6e13 --sizes-per-level 3 --min-levels 2 --max-levels 2 "
        "--size-spread 4 --prior-tokens-per-parameter 0.004 --learning-rates 1e-3 --batch-sizes 128 "
        "--bootstrap 50 --check --check-neighbours 2 4 --check-max-steps 1"
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


def test_time_budgeted_study_on_worker_processes(tmp_path, byte_tokens):
    """--time-budget: probe runs on every worker, a scale chosen to fit, the check and its neighbours at once."""
    out = tmp_path / "study"
    argv = (
        f"--tokens {byte_tokens} --vocab-size 256 --out {out} --devices cpu --workers-per-device 2 --processes "
        "--time-budget 10 --context-length 32 --batch-divisor 32 --budget 3e14 --target 6e13 --sizes-per-level 3 "
        "--min-levels 2 --max-levels 2 --size-spread 4 --prior-tokens-per-parameter 0.004 --learning-rates 1e-3 "
        "--batch-sizes 128 --bootstrap 50 --check --check-neighbours 2"
    ).split()
    summary = load_script().main(argv)
    setting = summary["setting"]
    calibration = setting["calibration"]
    assert setting["workers"] == ["cpu", "cpu"] and calibration["workers"] == 2
    assert len(calibration["probes"]) == 2 * 2 * 2  # two sizes, two lengths, every worker
    assert calibration["run_time"]["overhead"] > 0
    assert calibration["floor"] <= setting["flops_scale"] <= 1.0
    if setting["flops_scale"] > calibration["floor"]:
        assert calibration["estimated_seconds"] <= 10
    assert summary["flops_used"] <= 3e14
    check = summary["check"]
    assert math.isfinite(check["loss"]) and len(check["neighbours"]) >= 1
    sizes = [check["run"]["parameters"]] + [n["parameters"] for n in check["neighbours"]]
    assert len(set(sizes)) == len(sizes)
