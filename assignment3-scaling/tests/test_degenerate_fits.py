"""A degenerate fit is flagged, not reported: zero-width intervals, negative exponents, sizes outside the API's."""

import json

import numpy as np
from cs336_scaling.isoflops import OptimumMethod, Run, degenerate_reasons, fit_isoflops
from cs336_scaling.isoflops_report import IsoFlopsConfig, run_isoflops
from cs336_scaling.planner import Query, ScalingStudy, StudyResult
from cs336_scaling.run_spec import RunSpec
from cs336_scaling.study_config import PlannerConfig
from cs336_scaling.study_report import write_study_report

from tests.test_isoflops import synthetic_runs
from tests.test_planner import SyntheticApi


def profiles(optima: dict[float, float]) -> list[Run]:
    """Parabolic profiles in log N around each budget's optimum, five sizes over a factor 16."""
    return [
        Run(float(n), c, 3.0 + 0.1 * np.log(n / n_opt) ** 2)
        for c, n_opt in optima.items()
        for n in n_opt * np.logspace(-0.6, 0.6, 5)
    ]


def noisy_fit():
    """Parabola vertices of noisy profiles: off the law by a little, so resamples disagree."""
    rng = np.random.default_rng(0)
    runs = [Run(r.parameters, r.compute_budget, r.final_loss + rng.normal(0, 0.01)) for r in synthetic_runs(9)]
    return fit_isoflops(runs, [1e23], OptimumMethod.PARABOLA, num_bootstrap=50)


def test_a_sound_fit_has_no_reasons():
    fit = noisy_fit()
    assert degenerate_reasons(fit, size_range=(1e6, 1e13)) == []


def test_zero_width_interval():
    # two budgets: every resample with both points gives the same line, so the interval has no width
    fit = fit_isoflops(profiles({1e18: 1e8, 1e19: 3e8}), targets=[1e21], num_bootstrap=50)
    reasons = degenerate_reasons(fit)
    assert any("N_opt bootstrap interval has zero width at exponent, 1e+21" in r for r in reasons)


def test_negative_exponent():
    fit = fit_isoflops(profiles({1e18: 1e8, 1e19: 3e7, 1e20: 1e7}), [1e21], OptimumMethod.PARABOLA, 50)
    assert fit.parameters.law.exponent < 0
    assert any(r.startswith("the N_opt exponent is negative") for r in degenerate_reasons(fit))


def test_prediction_outside_the_api_sizes():
    fit = noisy_fit()
    (reason,) = degenerate_reasons(fit, size_range=(1e5, 1e9))
    assert reason.startswith("N_opt(1e+23) = ") and "outside the API's sizes [1e+05, 1e+09]" in reason


def test_study_report_shows_no_prediction_for_a_degenerate_fit(tmp_path):
    study = ScalingStudy(SyntheticApi(1e20), PlannerConfig(bootstrap=20), log=lambda line: None)
    result = StudyResult(study.config, [1e16, 1e17], None, 1e-3, 128)
    for flops in result.levels:  # two levels: a zero-width interval
        for shape in study.level_shapes(study.prior_n_opt(flops)):
            spec = RunSpec.for_model(shape, 128, 1e-3, flops)
            result.queries.append(Query("isoflops", spec, study.parameters_of(shape), loss=study.api.loss(spec)))
    study._fit(result)
    assert result.degenerate and result.prediction is not None
    text = write_study_report(result, tmp_path).read_text()
    assert "## Prediction: none, the fit is degenerate" in text and "zero width" in text
    assert "## Prediction\n" not in text and "predicted loss" not in text
    assert json.loads((tmp_path / "study.json").read_text())["degenerate"] == result.degenerate


def test_isoflops_table_is_written_and_flags_a_degenerate_fit(tmp_path, capsys):
    data = tmp_path / "runs.json"
    runs = profiles({1e18: 1e8, 1e19: 3e7, 1e20: 1e7})
    data.write_text(
        json.dumps(
            [{"parameters": r.parameters, "compute_budget": r.compute_budget, "final_loss": r.final_loss} for r in runs]
        )
    )
    table = run_isoflops(IsoFlopsConfig(data=str(data), out_dir=str(tmp_path / "out"), bootstrap=20))
    text = table.read_text()
    assert text.strip() == capsys.readouterr().out.strip()
    assert text.count("No predictions: the fit is degenerate.") == len(OptimumMethod)
    assert "exponent is negative" in text and "| target C |" not in text
    assert (tmp_path / "out" / "profiles_joint.png").stat().st_size > 0
