"""The training service without HTTP: charge the key, answer from the store, or train once and remember.

The FastAPI app (:mod:`cs336_scaling.api`) and the in-process study backend both call :meth:`TrainingService.loss`.
Identical configurations asked for at the same time share one training run.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import asdict, dataclass

from cs336_scaling.run_spec import RunSpec
from cs336_scaling.store import Store
from cs336_scaling.workers import RunExecutor


class RunFailed(RuntimeError):
    """The training run behind a query raised; the key was refunded."""


@dataclass(frozen=True)
class LossAnswer:
    loss: float
    total_flops_used: float


class TrainingService:
    def __init__(self, store: Store, executor: RunExecutor):
        self.store = store
        self.executor = executor
        self._in_flight: dict[str, Future] = {}
        self._lock = threading.Lock()

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
