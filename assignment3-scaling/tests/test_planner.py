"""The planner: against a synthetic API drawn from a known Chinchilla law, and against the real server.

The synthetic API answers ``L = E + A N^-alpha + B D^-beta`` (``D = C / 6N``) plus a penalty away from the
best learning rate and batch size, and enforces the budget like the service. For that law the optimum is
known in closed form (Hoffmann et al. 2022, eq. 4):
``N_opt = G (C/6)^(beta/(alpha+beta))``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``, and
``L_opt(C) = E + (A G^-alpha + B G^beta) (C/6)^(-alpha beta/(alpha+beta))``.
"""

from __future__ import annotations

import math
import threading
import time

import httpx
import numpy as np
import pytest
from cs336_scaling.client import ApiError, HttpTrainingApi
from cs336_scaling.isoflops import OptimumMethod
from cs336_scaling.model_shape import handout_parameters
from cs336_scaling.planner import Query, ScalingStudy, StudyResult, all_shapes, choose_levels, nearest_shape
from cs336_scaling.run_spec import RunSpec, validated_spec
from cs336_scaling.store import Store
from cs336_scaling.study_config import PlannerConfig
from cs336_scaling.study_report import write_study_report

from tests.conftest import running_server

E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))


def true_n_opt(c: float) -> float:
    return G * (c / 6) ** (BETA / (ALPHA + BETA))


def true_loss_opt(c: float) -> float:
    return E + (A * G**-ALPHA + B * G**BETA) * (c / 6) ** (-ALPHA * BETA / (ALPHA + BETA))


class SyntheticApi:
    """The API's budget rules over a known loss surface (best at learning rate 1e-3, batch size 128)."""

    def __init__(self, budget: float):
        self.budget = budget
        self.answered: dict[RunSpec, float] = {}

    def loss(self, spec: RunSpec) -> float:
        spec = validated_spec(**vars(spec))
        if spec not in self.answered:
            if self.total_flops_used() + spec.train_flops > self.budget:
                raise ApiError(403, "Budget exceeded")
            n = handout_parameters(spec)
            d = spec.train_flops / (6 * n)
            penalty = 0.1 * math.log(spec.learning_rate / 1e-3) ** 2 + (0.03 if spec.batch_size == 256 else 0.0)
            self.answered[spec] = E + A * n**-ALPHA + B * d**-BETA + penalty
        return self.answered[spec]

    def total_flops_used(self) -> float:
        return float(sum(spec.train_flops for spec in self.answered))

    def previous_runs(self) -> list[dict]:
        return [{**vars(spec), "loss": loss} for spec, loss in self.answered.items()]


def test_every_shape_is_accepted_by_the_api():
    shapes = all_shapes()
    assert len(shapes) == 16 * 23
    for shape in shapes:
        validated_spec(shape.d_model, shape.num_layers, shape.num_heads, 128, 1e-3, 1e13)


def test_nearest_shape_matches_the_wanted_size():
    shapes = all_shapes()
    for wanted in np.logspace(5.5, 8, 12):
        shape = nearest_shape(wanted, shapes, handout_parameters, aspect_ratio=64)
        assert abs(math.log(handout_parameters(shape) / wanted)) < 0.15


def test_levels_are_the_highest_affordable_block():
    config = PlannerConfig(sizes_per_level=5, min_levels=3, max_levels=6)
    levels = choose_levels(1.6e18, config, eligible=lambda c: True)
    assert levels == [3e15, 6e15, 1e16, 3e16, 6e16, 1e17]
    assert 5 * sum(levels) <= 1.6e18
    # one level higher would not fit: 5 * (6e16 + 1e17 + 3e17) > 1.6e18
    assert 5 * (6e16 + 1e17 + 3e17) > 1.6e18
    assert choose_levels(1.6e18, config, eligible=lambda c: c >= 1e16) == [1e16, 3e16, 6e16, 1e17]
    with pytest.raises(ValueError, match="cannot buy"):
        choose_levels(1e14, config, eligible=lambda c: True)


def test_study_recovers_the_known_law_within_budget():
    api = SyntheticApi(budget=2e18)
    result = ScalingStudy(api, PlannerConfig(bootstrap=200), log=lambda line: None).run()

    assert api.total_flops_used() <= 2e18
    assert result.flops_used == api.total_flops_used()
    assert not any(q.error for q in result.queries)
    assert (result.learning_rate, result.batch_size) == (1e-3, 128)
    assert len(result.levels) >= 3
    # every level's optimum is bracketed by smaller and larger sizes
    for optimum in result.fit.optima:
        sizes = [r.parameters for r in result.runs() if r.compute_budget == optimum.compute_budget]
        assert min(sizes) < optimum.parameters < max(sizes)

    expected = BETA / (ALPHA + BETA)
    assert result.fit.method == OptimumMethod.PARABOLA
    assert result.fit.parameters.law.exponent == pytest.approx(expected, abs=0.02)
    assert result.fit.tokens.law.exponent == pytest.approx(1 - expected, abs=0.02)
    # the lowest-loss choice, quantised to sizes a factor 2 apart, lands further off
    others = {fit.method: fit for fit in result.other_fits}
    assert others[OptimumMethod.LOWEST_LOSS].parameters.law.exponent == pytest.approx(expected, abs=0.1)
    # one curvature for every level (not exact for this law's profiles) still lands close
    assert others[OptimumMethod.JOINT].parameters.law.exponent == pytest.approx(expected, abs=0.03)
    assert result.loss_law.decay == pytest.approx(ALPHA * BETA / (ALPHA + BETA), abs=0.05)

    assert not [w for w in result.warnings if "not bracketed" in w]

    prediction = result.prediction
    assert prediction.n_opt == pytest.approx(true_n_opt(1e19), rel=0.1)
    assert prediction.loss == pytest.approx(true_loss_opt(1e19), rel=0.02)
    assert prediction.tokens == pytest.approx(1e19 / (6 * prediction.parameters))
    assert prediction.batch_size in (128, 256)


class SlowSharedApi(SyntheticApi):
    """The synthetic surface behind a lock, answering after a pause, counting the queries in flight at once."""

    def __init__(self, budget: float):
        super().__init__(budget)
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0

    def loss(self, spec: RunSpec) -> float:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.01)
        with self.lock:
            self.in_flight -= 1
            return super().loss(spec)


def test_concurrent_queries_give_the_sequential_study():
    sequential = ScalingStudy(SyntheticApi(2e18), PlannerConfig(bootstrap=50), log=lambda line: None).run()
    api = SlowSharedApi(2e18)
    concurrent = ScalingStudy(api, PlannerConfig(bootstrap=50, concurrency=4), log=lambda line: None).run()
    assert 1 < api.most_in_flight <= 4  # the sweep's six pairs and a level's five sizes run four at a time
    assert [(q.phase, q.spec, q.loss) for q in concurrent.queries] == [
        (q.phase, q.spec, q.loss) for q in sequential.queries
    ]
    assert concurrent.prediction == sequential.prediction
    assert api.total_flops_used() == concurrent.flops_used <= 2e18


def test_concurrent_queries_never_overspend():
    # five queries of 1e16 FLOPs against 3e16 left: the last two are skipped before any query is sent
    api = SlowSharedApi(budget=1e18)
    study = ScalingStudy(api, PlannerConfig(budget=3e16, concurrency=5), log=lambda line: None)
    result = StudyResult(study.config, [], None, 1e-3, 128)
    shapes = study.level_shapes(study.prior_n_opt(1e16))
    assert len(shapes) == 5
    queries = study.ask_all(result, "isoflops", [(shape, 1e16, 1e-3, 128) for shape in shapes])
    assert [q.loss is not None for q in queries] == [True, True, True, False, False]
    assert queries[3].error == "skipped: over the study budget"
    assert api.most_in_flight <= 3 and api.total_flops_used() == result.flops_used == 3e16
    # asking again answers the known three from the record, for free
    again = study.ask_all(result, "isoflops", [(shape, 1e16, 1e-3, 128) for shape in shapes[:3]])
    assert again == queries[:3] and api.total_flops_used() == 3e16


def test_all_levels_at_once_recovers_the_law_in_one_wave():
    api = SlowSharedApi(2e18)
    config = PlannerConfig(bootstrap=200, concurrency=32, adaptive_levels=False, prior_tokens_per_parameter=20.0)
    result = ScalingStudy(api, config, log=lambda line: None).run()
    level_queries = [q for q in result.queries if q.phase == "isoflops"]
    assert len({q.spec.train_flops for q in level_queries}) == len(result.levels) >= 3
    assert api.most_in_flight > config.sizes_per_level  # sizes of several levels were in flight together
    assert api.total_flops_used() <= 2e18
    expected = BETA / (ALPHA + BETA)
    assert result.fit.parameters.law.exponent == pytest.approx(expected, abs=0.03)
    assert result.prediction.n_opt == pytest.approx(true_n_opt(1e19), rel=0.15)
    assert result.prediction.loss == pytest.approx(true_loss_opt(1e19), rel=0.02)


def test_unbracketed_levels_are_left_out_of_the_fits():
    # three levels on the known law, plus a cheap level whose sizes all lie above its optimum (lowest loss at
    # the smallest size): its parabola vertex would be an extrapolation, so only the three enter the fits
    study = ScalingStudy(SyntheticApi(1e20), PlannerConfig(bootstrap=50), log=lambda line: None)
    levels = [1e16, 1e17, 3e17, 1e18]
    result = StudyResult(study.config, levels, None, 1e-3, 128)
    for flops in levels:
        center = true_n_opt(flops) * (8 if flops == 1e16 else 1)
        for shape in study.level_shapes(center):
            spec = RunSpec(shape.d_model, shape.num_layers, shape.num_heads, 128, 1e-3, int(flops))
            result.queries.append(Query("isoflops", spec, study.parameters_of(shape), loss=study.api.loss(spec)))
    assert study._optima(result) and 1e16 not in [c for c, _ in study._optima(result)]
    study._fit(result)
    result.warnings = study._warnings(result)
    assert [o.compute_budget for o in result.fit.optima] == [1e17, 3e17, 1e18]
    assert result.fit.parameters.law.exponent == pytest.approx(BETA / (ALPHA + BETA), abs=0.03)
    assert any(w.startswith("at 1e+16 FLOPs") and w.endswith("so the fits leave it out") for w in result.warnings)


class EdgeApi(SyntheticApi):
    """A surface the grid cannot bracket (what a GPU study at a tiny FLOPs scale saw): the loss falls with the
    tokens a run reads and not with its size, so the smallest model always wins, and the best learning rate,
    3e-3, lies above the grid."""

    def loss(self, spec: RunSpec) -> float:
        spec = validated_spec(**vars(spec))
        if spec not in self.answered:
            if self.total_flops_used() + spec.train_flops > self.budget:
                raise ApiError(403, "Budget exceeded")
            d = spec.train_flops / (6 * handout_parameters(spec))
            self.answered[spec] = E + B * d**-BETA + 0.1 * math.log(spec.learning_rate / 3e-3) ** 2
        return self.answered[spec]


def test_unbracketed_optima_are_reported(tmp_path):
    result = ScalingStudy(EdgeApi(budget=2e18), PlannerConfig(bootstrap=20), log=lambda line: None).run()
    assert result.learning_rate == 1e-3
    assert any("best learning rate 0.001 is the largest in the grid" in w for w in result.warnings)
    unbracketed = [w for w in result.warnings if "the smallest size trained" in w and "not bracketed" in w]
    assert len(unbracketed) == len(result.levels)
    text = write_study_report(result, tmp_path).read_text()
    assert "## Warnings" in text and "not bracketed" in text


def test_study_report_is_written(tmp_path):
    api = SyntheticApi(budget=2e18)
    result = ScalingStudy(api, PlannerConfig(bootstrap=50), log=lambda line: None).run()
    run = {
        "d_model": 64,
        "num_layers": 2,
        "parameters": 1e5,
        "tokens": 1e6,
        "steps": 9,
        "seconds": 1.0,
        "device": "cpu",
    }
    report = write_study_report(result, tmp_path, check={"loss": 3.0, "run": {**run, "loss": 3.0}})
    text = report.read_text()
    assert "## Prediction" in text and "Trained loss 3.0000" in text and "| predicted | 64 | 2 |" in text
    for name in ("profiles.png", "n_opt.png", "d_opt.png", "loss.png", "study.json"):
        assert (tmp_path / name).stat().st_size > 0
        assert name.endswith(".json") or f"({name})" in text
    # after a check, only the loss figure (which marks the check) needs drawing again
    inodes = {name: (tmp_path / name).stat().st_ino for name in ("profiles.png", "n_opt.png", "loss.png")}
    write_study_report(result, tmp_path, check={"loss": 2.0, "run": {**run, "loss": 2.0}}, redraw_fit_plots=False)
    assert (tmp_path / "profiles.png").stat().st_ino == inodes["profiles.png"]
    assert (tmp_path / "n_opt.png").stat().st_ino == inodes["n_opt.png"]
    assert (tmp_path / "loss.png").stat().st_ino != inodes["loss.png"]


TINY = PlannerConfig(
    budget=3e14,
    target_flops=1e15,
    sizes_per_level=3,
    min_levels=2,
    max_levels=2,
    size_spread=4.0,
    prior_tokens_per_parameter=40.0,
    learning_rates=[1e-3],
    batch_sizes=[128],
    allowed_flops=[1e13, 3e13],
    bootstrap=50,
)


def test_study_against_the_real_server(tmp_path, setup):
    """Tiny real runs through HTTP: a fit comes out, the spend is exact, and a rerun is free from the store."""
    db = tmp_path / "api.sqlite"
    key = Store(db).create_key(TINY.budget)
    with running_server(db, setup) as (base, pool):
        api = HttpTrainingApi(base, key, timeout_s=60)
        result = ScalingStudy(api, TINY, log=lambda line: None).run()
        answered = [q for q in result.queries if q.loss is not None]
        assert len(answered) == len(pool.started) >= 6
        spent = sum({q.spec: q.spec.train_flops for q in answered}.values())
        assert result.flops_used == spent == httpx.get(f"{base}/total_flops_used", params={"api_key": key}).json()
        assert result.prediction is not None and math.isfinite(result.prediction.loss)
        assert all(0 < q.loss < math.log(256) + 1 for q in answered)

        again = ScalingStudy(api, TINY, log=lambda line: None).run()
        assert len(pool.started) == len(answered)
        assert again.flops_used == result.flops_used
        assert [q.loss for q in again.queries] == [q.loss for q in result.queries]
        api.close()
