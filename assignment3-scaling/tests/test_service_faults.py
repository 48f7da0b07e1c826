"""Fault injection on the training API: a service killed mid-run, keys in access logs, hostile budgets.

Each probe once found a defect (issue 19). None depends on machine speed: the killed run is far too long to
finish (it trains 1e13 real FLOPs), and the probe waits for states in the store, never for a clock.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from cs336_scaling.api import ACCESS_LOGGER, create_app
from cs336_scaling.run_spec import RunSpec
from cs336_scaling.service import StoreInUse, TrainingService
from cs336_scaling.store import BudgetExceeded, Store
from cs336_scaling.workers import LocalWorkerPool

from tests.conftest import free_port, running_server

SMALL = {"d_model": 64, "num_layers": 2, "num_heads": 2, "batch_size": 128, "learning_rate": 1e-3}
SPEC = RunSpec(**SMALL, train_flops=int(1e13))
API_KEYS_SCRIPT = Path(__file__).parents[1] / "scripts" / "api_keys.py"


def _serve(db: str, setup, port: int) -> None:
    """The service in a forked child: nothing to import, and SIGKILL takes it down with its worker."""
    pool = LocalWorkerPool(setup, ["cpu"])
    service = TrainingService(Store(db), pool)
    uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")).run()


def _wait_until(condition, what: str, seconds: float = 50.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _ask(base: str, key: str, errors: list[Exception]) -> None:
    try:
        httpx.get(f"{base}/loss", params={**SMALL, "train_flops": int(1e13), "api_key": key}, timeout=120)
    except Exception as err:
        errors.append(err)


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _statuses(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT status FROM queries")]


def test_a_service_killed_mid_run_is_settled_on_the_next_start(tmp_path, setup):
    db = tmp_path / "api.sqlite"
    store = Store(db)
    key = store.create_key(1e14)
    port = free_port()
    endless = replace(setup, scale=replace(setup.scale, flops_scale=1.0))  # 1e5 steps: never finishes here
    child = multiprocessing.get_context("fork").Process(target=_serve, args=(str(db), endless, port))
    child.start()
    try:
        _wait_until(lambda: _accepts_connections(port), "the server to listen")
        lost: list[Exception] = []
        client = threading.Thread(target=_ask, args=(f"http://127.0.0.1:{port}", key, lost), daemon=True)
        client.start()
        _wait_until(lambda: _statuses(db) == ["pending"], "the query to be charged")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    client.join(30)
    assert child.exitcode == -signal.SIGKILL
    assert len(lost) == 1 and isinstance(lost[0], httpx.TransportError)  # the caller saw the connection drop
    # what the killed service left: a charge for a run that no longer exists
    assert _statuses(db) == ["pending"] and store.total_flops_used(key) == 1e13

    with running_server(db, setup) as (base, pool):
        assert store.total_flops_used(key) == 0 and _statuses(db) == []
        answer = httpx.get(f"{base}/loss", params={**SMALL, "train_flops": int(1e13), "api_key": key}, timeout=60)
        assert answer.status_code == 200 and answer.json()["total_flops_used"] == 1e13
        assert len(pool.started) == 1 and _statuses(db) == ["done"]


def test_a_pending_query_whose_run_finished_becomes_done_on_start(tmp_path, setup):
    """Killed between saving the result and answering: the key keeps its run, and asking again is free."""
    db = tmp_path / "api.sqlite"
    store = Store(db)
    key = store.create_key(1e14)
    store.charge(key, SPEC)
    store.save_result(SPEC, 2.5, {"loss": 2.5})
    with running_server(db, setup) as (base, pool):
        assert store.previous_runs(key) == [{**SMALL, "train_flops": int(1e13), "loss": 2.5}]
        answer = httpx.get(f"{base}/loss", params={**SMALL, "train_flops": int(1e13), "api_key": key}, timeout=60)
        assert answer.json() == {"loss": 2.5, "total_flops_used": 1e13}
        assert pool.started == []


def test_one_service_per_store(tmp_path):
    store = Store(tmp_path / "api.sqlite")
    with TrainingService(store, executor=None):
        with pytest.raises(StoreInUse, match="another training service is using"):
            TrainingService(Store(tmp_path / "api.sqlite"), executor=None)
    with TrainingService(store, executor=None) as again:  # released on close
        assert again.recovered.refunded == []


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_api_keys_never_reach_the_access_log_and_may_come_in_a_header(tmp_path, setup):
    db = tmp_path / "api.sqlite"
    key = Store(db).create_key(1e14)
    collect = _Collect()
    with running_server(db, setup, log_level="info") as (base, pool):
        logging.getLogger(ACCESS_LOGGER).addHandler(collect)
        try:
            assert httpx.get(f"{base}/previous_runs", params={"api_key": key}).status_code == 200
            assert httpx.get(f"{base}/previous_runs?api%5Fkey={key}&x=1").status_code == 200
            assert (
                httpx.get(
                    f"{base}/loss", params={**SMALL, "d_model": 9999, "train_flops": int(1e13), "api_key": key}
                ).status_code
                == 404
            )
            by_header = httpx.get(f"{base}/previous_runs", headers={"X-API-Key": key})
            assert by_header.json() == {"previous_runs": []}
            both = httpx.get(f"{base}/previous_runs", params={"api_key": key}, headers={"X-API-Key": "other"})
            assert (both.status_code, both.json()["message"]) == (
                422,
                "the api_key parameter and the X-API-Key header differ",
            )
            neither = httpx.get(f"{base}/total_flops_used")
            assert neither.status_code == 422 and neither.json()["message"].startswith("missing required parameter")
        finally:
            logging.getLogger(ACCESS_LOGGER).removeHandler(collect)
    assert len(collect.lines) == 6
    assert not any(key in line for line in collect.lines)
    assert sum("api_key=[redacted]" in line or "api%5Fkey=[redacted]" in line for line in collect.lines) == 4


def _api_keys_script():
    spec = importlib.util.spec_from_file_location("api_keys", API_KEYS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("bad", ["-5", "inf", "nan", "-inf", "1e400"])
def test_budgets_must_be_finite_and_non_negative(tmp_path, capsys, bad):
    db = tmp_path / "api.sqlite"
    store = Store(db)
    key = store.create_key(1e18)
    with pytest.raises(ValueError, match="finite number of FLOPs >= 0"):
        store.set_budget(key, float(bad))
    with pytest.raises(ValueError, match="finite number of FLOPs >= 0"):
        store.create_key(float(bad))
    script = _api_keys_script()
    for argv in (["--action", "set_budget", "--key", key, f"--budget={bad}"], [f"--budget={bad}", "--action=create"]):
        with pytest.raises(SystemExit) as exit_:
            script.main(["--db", str(db), *argv])
        # the config refuses it while parsing (a usage error, exit 2) or the store does (the message as the exit)
        message = str(exit_.value.code) + capsys.readouterr().err
        assert exit_.value.code != 0 and "finite number of FLOPs >= 0" in message
    with pytest.raises(SystemExit) as exit_:
        script.main(["--db", str(db), "--action", "create", "--budget", "lots"])
    assert exit_.value.code == 2 and "lots" in capsys.readouterr().err
    assert store.budget(key) == 1e18 and len(store.keys()) == 1


def test_unknown_key_in_the_script_is_a_clean_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _api_keys_script().main(
            ["--db", str(tmp_path / "api.sqlite"), "--action", "set_budget", "--key", "nokey", "--budget", "5"]
        )
    assert "Invalid API key provided: nokey" in str(exit_.value.code)


def test_concurrent_charges_never_overspend(tmp_path):
    """What must keep holding: 32 different queries at once on a budget for 5 of them; exactly 5 are charged."""
    store = Store(tmp_path / "api.sqlite")
    key = store.create_key(5e13)
    specs = [replace(SPEC, learning_rate=1e-4 + i * 1e-5) for i in range(32)]

    def charge(spec: RunSpec) -> bool:
        try:
            Store(tmp_path / "api.sqlite").charge(key, spec)
            return True
        except BudgetExceeded:
            return False

    with ThreadPoolExecutor(8) as threads:
        accepted = list(threads.map(charge, specs))
    assert sum(accepted) == 5 and store.total_flops_used(key) == 5e13
