"""The training service without HTTP: charge the key, answer from the store, or train once and remember.

The FastAPI app (:mod:`cs336_scaling.api`) and the in-process study backend both call :meth:`TrainingService.loss`.
Identical configurations asked for at the same time share one training run.

One service at a time owns a store: it holds an exclusive lock on ``<db>.service-lock`` from start to
:meth:`TrainingService.close` (the kernel drops it when the process dies, however it dies). Owning the store is
what makes the start-up recovery safe: the queries a killed service left ``pending`` are settled by
:meth:`Store.recover_interrupted` (finished runs become ``done``, the rest are refunded), and no live service can
be waiting on them. Key management (``scripts/api_keys.py``) needs no lock: its writes are transactions.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import asdict, dataclass

from cs336_scaling.run_spec import RunSpec
from cs336_scaling.store import RecoveredQueries, Store
from cs336_scaling.workers import RunExecutor

log = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    """The training run behind a query raised; the key was refunded."""


@dataclass(frozen=True)
class LossAnswer:
    loss: float
    total_flops_used: float


class StoreInUse(RuntimeError):
    """Another live service owns the store."""


class TrainingService:
    def __init__(self, store: Store, executor: RunExecutor):
        self._owner_fd: int | None = _claim(store.path)
        self.store = store
        self.executor = executor
        self._in_flight: dict[str, Future] = {}
        self._lock = threading.Lock()
        try:
            self.recovered: RecoveredQueries = store.recover_interrupted()
        except BaseException:
            self.close()
            raise
        if self.recovered.finished or self.recovered.refunded:
            log.warning(
                "queries left pending by a stopped service: %d answered from saved results, %d refunded (%.3g FLOPs)",
                self.recovered.finished,
                len(self.recovered.refunded),
                sum(flops for _, flops in self.recovered.refunded),
            )

    def close(self) -> None:
        """Give up the store (the executor is the caller's to shut down)."""
        if self._owner_fd is not None:
            os.close(self._owner_fd)
            self._owner_fd = None

    def __enter__(self) -> TrainingService:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def loss(self, key: str, spec: RunSpec) -> LossAnswer:
        """Charge ``key`` (budget checked before anything runs), then the stored or freshly trained loss."""
        charge = self.store.charge(key, spec)
        stored = self.store.result(spec)
        if stored is None:
            try:
                result = self._run_once(spec).result()
            except BaseException as err:
                if charge.newly_charged:
                    self.store.refund(key, spec)
                raise RunFailed(f"training run failed: {err}") from err
            stored = (result.loss, asdict(result))
        self.store.mark_done(key, spec)
        return LossAnswer(loss=stored[0], total_flops_used=charge.total_flops_used)

    def _run_once(self, spec: RunSpec) -> Future:
        run_id = spec.run_id()
        with self._lock:
            future = self._in_flight.get(run_id)
            if future is None:
                future = self.executor.submit(spec)
                self._in_flight[run_id] = future
                future.add_done_callback(lambda done: self._finish(spec, done))
        return future

    def _finish(self, spec: RunSpec, future: Future) -> None:
        """Persist a finished run before anyone waiting on it is answered from the store."""
        if future.exception() is None:
            result = future.result()
            self.store.save_result(spec, result.loss, asdict(result))
        with self._lock:
            self._in_flight.pop(spec.run_id(), None)


def _claim(db_path: str) -> int:
    """Lock ``<db>.service-lock`` for this service; the open descriptor is the claim."""
    fd = os.open(f"{db_path}.service-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreInUse(f"another training service is using {db_path}: one service per store") from None
    return fd
