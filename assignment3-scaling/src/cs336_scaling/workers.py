"""Where training runs execute: a local pool with one worker per device, or SLURM jobs through submitit.

Both answer :meth:`submit` with a ``concurrent.futures.Future[RunResult]``, so the service (or an in-process
study) never knows which one it talks to.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import torch

from cs336_scaling.run_spec import RunSpec
from cs336_scaling.training_run import RunResult, TrainingSetup, execute_run


class RunExecutor(Protocol):
    def submit(self, spec: RunSpec) -> Future[RunResult]: ...

    def shutdown(self) -> None: ...


def local_devices(requested: str = "auto", per_device: int = 1) -> list[str]:
    """One entry per worker: ``"auto"``: every visible GPU, else the CPU; ``"cpu:2"``: two CPU workers;
    ``"cuda:0,cuda:1"``: those. ``per_device`` workers share each device (small models leave a GPU mostly idle);
    the list alternates devices, so a few runs queued at once spread over the devices."""
    if per_device < 1:
        raise ValueError(f"per_device must be >= 1, got {per_device}")
    if requested == "auto":
        count = torch.cuda.device_count()
        devices = [f"cuda:{i}" for i in range(count)] if count else ["cpu"]
    elif requested.startswith("cpu:"):
        devices = ["cpu"] * int(requested.split(":", 1)[1])
    else:
        devices = [d.strip() for d in requested.split(",") if d.strip()]
    return [device for _ in range(per_device) for device in devices]  # interleaved: idle workers take turns


class LocalWorkerPool:
    """One worker per entry of ``devices`` pulling from a shared FIFO queue (a run holds its worker until done).

    Threads (the default) suffice when runs spend their time inside kernels, which release the GIL. Small models
    are launch-bound instead: each step is mostly Python, so several runs sharing a GPU through threads would
    wait on one interpreter lock. With ``processes=True`` every worker trains in its own spawned process.
    """

    def __init__(self, setup: TrainingSetup, devices: list[str], processes: bool = False):
        if not devices:
            raise ValueError("a worker pool needs at least one device")
        self.setup = setup
        self.devices = list(devices)
        self._queue: queue.Queue[tuple[RunSpec, TrainingSetup, Future] | None] = queue.Queue()
        spawn = multiprocessing.get_context("spawn")
        # the machine's cores split between the processes: more intra-op threads than cores spin against each other
        threads = (max(1, (os.cpu_count() or 1) // len(devices)),)
        self._processes = [
            ProcessPoolExecutor(1, mp_context=spawn, initializer=torch.set_num_threads, initargs=threads)
            if processes
            else None
            for _ in devices
        ]
        self._threads = [
            threading.Thread(target=self._work, args=(device, process), name=f"run-worker-{device}", daemon=True)
            for device, process in zip(devices, self._processes)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self, device: str, process: ProcessPoolExecutor | None) -> None:
        while (item := self._queue.get()) is not None:
            spec, setup, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if process is None:
                    result = execute_run(spec, setup, device)
                else:
                    result = process.submit(execute_run, spec, setup, device).result()
                future.set_result(result)
            except BaseException as err:  # the caller sees the failure through the future
                future.set_exception(err)

    def submit(self, spec: RunSpec, setup: TrainingSetup | None = None) -> Future[RunResult]:
        """Queue ``spec``; ``setup`` overrides the pool's for this run (e.g. a throughput probe at full scale)."""
        future: Future[RunResult] = Future()
        self._queue.put((spec, setup or self.setup, future))
        return future

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=1)
        for process in self._processes:
            if process is not None:
                process.shutdown(wait=False, cancel_futures=True)


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
