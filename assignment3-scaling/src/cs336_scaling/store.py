"""SQLite store of API keys, budgets, per-key queries and training results; it survives restarts.

Tables:
- ``api_keys(key, budget)``: who may query and how many nominal FLOPs they may spend;
- ``runs(run_id, spec…, loss, result)``: one finished training run per configuration, shared by all keys
  (a configuration is trained once, whoever asks);
- ``queries(key, run_id, flops, status)``: what each key asked for. A key is charged a configuration's
  ``train_flops`` once, when its query is accepted (``pending``); a failed run refunds it, an answered one is
  ``done``. A service that dies meanwhile (killed, out of memory, power loss) leaves the query ``pending``:
  :meth:`Store.recover_interrupted`, run when the next service starts, settles it (see there).

Charging happens in one ``BEGIN IMMEDIATE`` transaction, so concurrent requests cannot overspend a budget.
Every method opens its own connection: the store is safe to share between threads and processes.
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from cs336_scaling.run_spec import RunSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (key TEXT PRIMARY KEY, budget REAL NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, d_model INTEGER, num_layers INTEGER, num_heads INTEGER, batch_size INTEGER,
    learning_rate REAL, train_flops INTEGER, loss REAL NOT NULL, result TEXT NOT NULL, finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    key TEXT NOT NULL REFERENCES api_keys(key), run_id TEXT NOT NULL, spec TEXT NOT NULL, flops REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done')), created_at REAL NOT NULL,
    PRIMARY KEY (key, run_id)
);
"""


def checked_budget(budget: float) -> float:
    """A budget in FLOPs: a finite number >= 0 (SQLite would store NaN as NULL, and inf never runs out)."""
    budget = float(budget)
    if not math.isfinite(budget) or budget < 0:
        raise ValueError(f"a budget must be a finite number of FLOPs >= 0, got {budget}")
    return budget


class UnknownApiKey(KeyError):
    def __init__(self, key: str):
        super().__init__(key)
        self.message = f"Invalid API key provided: {key}"


class BudgetExceeded(RuntimeError):
    def __init__(self, needed: float, used: float, budget: float):
        self.message = (
            f"Budget exceeded: this run needs {needed:.3g} FLOPs, but {used:.3g} of the key's {budget:.3g} FLOPs "
            f"are already used ({budget - used:.3g} left)"
        )
        super().__init__(self.message)


@dataclass(frozen=True)
class Charge:
    """Outcome of accepting a query: whether this key newly paid for it, and its total spend after."""

    newly_charged: bool
    total_flops_used: float


@dataclass(frozen=True)
class RecoveredQueries:
    """What :meth:`Store.recover_interrupted` did: queries completed, and ``(key, flops)`` of each refund."""

    finished: int
    refunded: list[tuple[str, float]]


class Store:
    def __init__(self, path: str | Path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # keys and budgets
    def create_key(self, budget: float, key: str | None = None) -> str:
        """Register a key (random if not given) with a FLOPs budget; an existing key is an error."""
        budget = checked_budget(budget)
        key = key or secrets.token_hex(24)  # hex: never starts with "-", which a command line would read as a flag
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM api_keys WHERE key = ?", (key,)).fetchone():
                raise ValueError(f"API key {key!r} already exists")
            db.execute("INSERT INTO api_keys VALUES (?, ?, ?)", (key, budget, time.time()))
        return key

    def set_budget(self, key: str, budget: float) -> None:
        budget = checked_budget(budget)
        with self._transaction() as db:
            if db.execute("UPDATE api_keys SET budget = ? WHERE key = ?", (budget, key)).rowcount == 0:
                raise UnknownApiKey(key)

    def budget(self, key: str) -> float:
        with self._connect() as db:
            row = db.execute("SELECT budget FROM api_keys WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise UnknownApiKey(key)
        return row[0]

    def keys(self) -> list[tuple[str, float, float]]:
        """``(key, budget, used)`` for every key."""
        with self._connect() as db:
            return db.execute(
                "SELECT k.key, k.budget, COALESCE(SUM(q.flops), 0) FROM api_keys k "
                "LEFT JOIN queries q ON q.key = k.key GROUP BY k.key ORDER BY k.created_at"
            ).fetchall()

    # spending
    @staticmethod
    def _used(db: sqlite3.Connection, key: str) -> float:
        return db.execute("SELECT COALESCE(SUM(flops), 0) FROM queries WHERE key = ?", (key,)).fetchone()[0]

    def total_flops_used(self, key: str) -> float:
        self.budget(key)
        with self._connect() as db:
            return self._used(db, key)

    def query_count(self, key: str) -> int:
        self.budget(key)
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM queries WHERE key = ?", (key,)).fetchone()[0]

    def charge(self, key: str, spec: RunSpec) -> Charge:
        """Accept ``spec`` for ``key``: free if this key asked for it before, else charged if the budget allows."""
        run_id = spec.run_id()
        with self._transaction() as db:
            row = db.execute("SELECT budget FROM api_keys WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise UnknownApiKey(key)
            used = self._used(db, key)
            if db.execute("SELECT 1 FROM queries WHERE key = ? AND run_id = ?", (key, run_id)).fetchone():
                return Charge(newly_charged=False, total_flops_used=used)
            if used + spec.train_flops > row[0]:
                raise BudgetExceeded(spec.train_flops, used, row[0])
            db.execute(
                "INSERT INTO queries VALUES (?, ?, ?, ?, 'pending', ?)",
                (key, run_id, json.dumps(asdict(spec)), float(spec.train_flops), time.time()),
            )
            return Charge(newly_charged=True, total_flops_used=used + spec.train_flops)

    def refund(self, key: str, spec: RunSpec) -> None:
        """Undo a pending charge whose run failed."""
        with self._transaction() as db:
            db.execute("DELETE FROM queries WHERE key = ? AND run_id = ? AND status = 'pending'", (key, spec.run_id()))

    def recover_interrupted(self) -> RecoveredQueries:
        """Settle the queries a dead service left ``pending``; only call it while no service uses the store.

        The rule: a pending query whose run finished (its result was saved before the service died) becomes
        ``done``, so the key keeps what it paid for and asking again answers from the store for free; every
        other pending query is refunded (deleted), since its run died with the service and nobody waits for
        it: asking again trains it and charges once.
        """
        with self._transaction() as db:
            finished = db.execute(
                "UPDATE queries SET status = 'done' WHERE status = 'pending' AND run_id IN (SELECT run_id FROM runs)"
            ).rowcount
            refunded = db.execute("SELECT key, flops FROM queries WHERE status = 'pending'").fetchall()
            db.execute("DELETE FROM queries WHERE status = 'pending'")
        return RecoveredQueries(finished=finished, refunded=[(key, flops) for key, flops in refunded])

    def mark_done(self, key: str, spec: RunSpec) -> None:
        with self._transaction() as db:
            db.execute("UPDATE queries SET status = 'done' WHERE key = ? AND run_id = ?", (key, spec.run_id()))

    # results
    def save_result(self, spec: RunSpec, loss: float, result: dict) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (spec.run_id(), *asdict(spec).values(), loss, json.dumps(result), time.time()),
            )

    def result(self, spec: RunSpec) -> tuple[float, dict] | None:
        """``(loss, details)`` of a finished run of this configuration, if any."""
        with self._connect() as db:
            row = db.execute("SELECT loss, result FROM runs WHERE run_id = ?", (spec.run_id(),)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def previous_runs(self, key: str) -> list[dict]:
        """Every finished query of ``key`` in the order asked: the spec's fields plus ``loss``."""
        self.budget(key)
        with self._connect() as db:
            rows = db.execute(
                "SELECT q.spec, r.loss FROM queries q JOIN runs r ON r.run_id = q.run_id "
                "WHERE q.key = ? AND q.status = 'done' ORDER BY q.created_at",
                (key,),
            ).fetchall()
        return [{**json.loads(spec), "loss": loss} for spec, loss in rows]
