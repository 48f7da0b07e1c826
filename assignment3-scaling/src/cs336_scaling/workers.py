"""Where training runs execute: a local pool with one worker per device, or SLURM jobs through submitit.

Both answer :meth:`submit` with a ``concurrent.futures.Future[RunResult]``, so the service (or an in-process
study) never knows which one it talks to.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import torch

from cs336_scaling.run_spec import RunSpec
from cs336_scaling.training_run import RunResult, TrainingSetup, execute_run


class RunExecutor(Protocol):
    def submit(self, spec: RunSpec) -> Future[RunResult]: ...

    def shutdown(self) -> None: ...


def local_devices(requested: str = "auto") -> list[str]:
    """``"auto"``: every visible GPU, else one CPU worker; ``"cpu:2"``: two CPU workers; ``"cuda:0,cuda:1"``: those."""
    if requested == "auto":
        count = torch.cuda.device_count()
        return [f"cuda:{i}" for i in range(count)] if count else ["cpu"]
    if requested.startswith("cpu:"):
        return ["cpu"] * int(requested.split(":", 1)[1])
    return [d.strip() for d in requested.split(",") if d.strip()]


class LocalWorkerPool:
    """One worker thread per device pulling from a shared FIFO queue (a run holds its device until done).

    Threads suffice: a run spends its time inside PyTorch kernels, which release the GIL.
    """

    def __init__(self, setup: TrainingSetup, devices: list[str]):
        if not devices:
            raise ValueError("a worker pool needs at least one device")
        self.setup = setup
        self._queue: queue.Queue[tuple[RunSpec, Future] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._work, args=(device,), name=f"run-worker-{device}", daemon=True)
            for device in devices
        ]
        for thread in self._threads:
            thread.start()

    def _work(self, device: str) -> None:
        while (item := self._queue.get()) is not None:
            spec, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(execute_run(spec, self.setup, device))
            except BaseException as err:  # the caller sees the failure through the future
                future.set_exception(err)

    def submit(self, spec: RunSpec) -> Future[RunResult]:
        future: Future[RunResult] = Future()
        self._queue.put((spec, future))
        return future

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=1)


@dataclass(frozen=True)
class SubmititConfig:
    """SLURM (or submitit's ``local``/``debug``) job settings; one GPU per run."""

    folder: str
    cluster: str | None = None  # None: SLURM if available, else local
    partition: str | None = None
    timeout_min: int = 60
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    extra: dict = field(default_factory=dict)


class SubmititPool:
    """Each run becomes one submitit job; a watcher thread turns the job's result into the future's."""

    def __init__(self, setup: TrainingSetup, config: SubmititConfig):
        import submitit

        self.setup = setup
        self.executor = submitit.AutoExecutor(folder=config.folder, cluster=config.cluster)
        parameters = dict(timeout_min=config.timeout_min, **config.extra)
        if self.executor.cluster == "slurm":
            parameters.update(gpus_per_node=config.gpus_per_node, cpus_per_task=config.cpus_per_task)
            if config.partition:
                parameters["slurm_partition"] = config.partition
        self.executor.update_parameters(**parameters)

    def submit(self, spec: RunSpec) -> Future[RunResult]:
        future: Future[RunResult] = Future()
        job = self.executor.submit(execute_run, spec, self.setup, "auto")

        def wait() -> None:
            try:
                future.set_result(job.result())
            except BaseException as err:
                future.set_exception(err)

        threading.Thread(target=wait, name=f"submitit-{job.job_id}", daemon=True).start()
        return future

    def shutdown(self) -> None:
        pass
