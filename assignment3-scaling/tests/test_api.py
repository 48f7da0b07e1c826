"""The training API against a running uvicorn server on loopback, with tiny real training runs."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cs336_scaling.store import Store

from tests.conftest import running_server

SMALL = {"d_model": 64, "num_layers": 2, "num_heads": 2, "batch_size": 128, "learning_rate": 1e-3}


def query(base: str, key: str, **overrides) -> httpx.Response:
    params = {**SMALL, "train_flops": int(1e13), "api_key": key, **overrides}
    return httpx.get(f"{base}/loss", params=params, timeout=60)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 9999}, "d_model must be in range [64, 1024], got 9999"),
        ({"num_layers": 1}, "num_layers must be in range [2, 24], got 1"),
        ({"num_heads": 17}, "num_heads must be in range [2, 16], got 17"),
        ({"batch_size": 64}, "batch_size must be one of [128, 256], got 64"),
        ({"learning_rate": 0.01}, "learning_rate must be in range [0.0001, 0.001], got 0.01"),
        ({"train_flops": int(2e13)}, "train_flops must be one of [10000000000000, 30000000000000"),
        ({"d_model": 96, "num_heads": 5}, "d_model=96 is not divisible by num_heads=5"),
        ({"d_model": 100, "num_heads": 4}, "head size 25 must be even for RoPE"),
    ],
)
def test_out_of_range_values_answer_404_with_course_message(tmp_path, setup, overrides, message):
    db = tmp_path / "api.sqlite"
    key = Store(db).create_key(2e18)
    with running_server(db, setup) as (base, pool):
        response = query(base, key, **overrides)
        assert response.status_code == 404
        assert response.json()["message"].startswith(message)
        assert pool.started == []


def test_keys_and_missing_parameters(tmp_path, setup):
    db = tmp_path / "api.sqlite"
    key = Store(db).create_key(2e18)
    with running_server(db, setup) as (base, pool):
        for path in ("/total_flops_used", "/previous_runs"):
            response = httpx.get(f"{base}{path}", params={"api_key": "INVALID_API_KEY"})
            assert (response.status_code, response.json()) == (
                422,
                {"message": "Invalid API key provided: INVALID_API_KEY"},
            )
        response = query(base, "INVALID_API_KEY")
        assert response.status_code == 422 and response.json()["message"].startswith("Invalid API key")
        response = httpx.get(f"{base}/total_flops_used", params={"api_key": key})
        assert response.status_code == 422 and "No queries" in response.json()["message"]
        response = httpx.get(f"{base}/loss", params={"api_key": key, "d_model": 64})
        assert response.status_code == 422 and response.json()["message"].startswith("missing required parameter")
        response = query(base, key, d_model="wide")
        assert response.status_code == 422 and response.json()["message"].startswith("d_model")
        assert pool.started == []


def test_loss_is_trained_once_then_served_from_the_store(tmp_path, setup):
    db = tmp_path / "api.sqlite"
    key = Store(db).create_key(1e14)
    with running_server(db, setup) as (base, pool):
        first = query(base, key).json()
        assert math.isfinite(first["loss"]) and 0 < first["loss"] < math.log(256) + 1
        assert first["total_flops_used"] == 1e13
        again = query(base, key, train_flops="1e13").json()
        assert again == first
        assert len(pool.started) == 1
        bigger = query(base, key, train_flops=int(3e13)).json()
        assert bigger["total_flops_used"] == 4e13
        assert httpx.get(f"{base}/total_flops_used", params={"api_key": key}).json() == 4e13
        runs = httpx.get(f"{base}/previous_runs", params={"api_key": key}).json()["previous_runs"]
        assert runs == [
            {**SMALL, "train_flops": int(1e13), "loss": first["loss"]},
            {**SMALL, "train_flops": int(3e13), "loss": bigger["loss"]},
        ]
        assert len(pool.started) == 2


def test_budget_refuses_before_training_and_failed_runs_are_refunded(tmp_path, setup):
    db = tmp_path / "api.sqlite"
    store = Store(db)
    key = store.create_key(3.5e13)
    with running_server(db, setup) as (base, pool):
        assert query(base, key, train_flops=int(3e13)).status_code == 200
        refused = query(base, key, train_flops=int(1e13))
        assert refused.status_code == 403 and refused.json()["message"].startswith("Budget exceeded")
        assert len(pool.started) == 1
        assert store.total_flops_used(key) == 3e13
        # 3e13 already bought stays free within budget
        assert query(base, key, train_flops=int(3e13)).status_code == 200
        # a model too large for one batch at this scale fails; its charge is refunded
        store.set_budget(key, 1e18)
        failed = query(base, key, d_model=512, num_layers=8, num_heads=8, train_flops=int(1e13))
        assert failed.status_code == 500 and "training run failed" in failed.json()["message"]
        assert store.total_flops_used(key) == 3e13


def test_results_keys_and_budgets_survive_a_restart(tmp_path, setup):
    db = tmp_path / "api.sqlite"
    key = Store(db).create_key(5e13)
    with running_server(db, setup) as (base, pool):
        first = query(base, key).json()
        assert len(pool.started) == 1
    with running_server(db, setup) as (base, pool):
        assert query(base, key).json() == first
        assert pool.started == []
        assert httpx.get(f"{base}/total_flops_used", params={"api_key": key}).json() == 1e13
        assert len(httpx.get(f"{base}/previous_runs", params={"api_key": key}).json()["previous_runs"]) == 1
        other = Store(db).create_key(1e13)
        # another key pays for the same configuration but nothing is retrained
        assert query(base, other).json() == {"loss": first["loss"], "total_flops_used": 1e13}
        assert pool.started == []


def test_identical_concurrent_queries_share_one_run(tmp_path, setup):
    db = tmp_path / "api.sqlite"
    store = Store(db)
    keys = [store.create_key(1e13) for _ in range(3)]
    with running_server(db, setup) as (base, pool):
        with ThreadPoolExecutor(3) as threads:
            answers = list(threads.map(lambda k: query(base, k).json(), keys))
        assert len({a["loss"] for a in answers}) == 1
        assert len(pool.started) == 1
        assert [store.total_flops_used(k) for k in keys] == [1e13] * 3
