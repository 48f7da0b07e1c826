"""Where shard jobs run: a local process pool (default) or a SLURM job array through submitit.

Both expose ``map(fn, items, desc)``: ``fn`` is a picklable top-level function (or ``functools.partial``) applied to
every item, results come back in item order, with a progress bar. Resumability lives in the shard functions
(completion markers), so an executor only has to run things.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str) -> list[R]: ...


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class LocalExecutor:
    workers: int = available_cpus()
    progress: bool = True

    def map(self, fn, items, desc):
        if self.workers <= 1 or len(items) <= 1:
            return [fn(item) for item in tqdm(items, desc=desc, disable=not self.progress)]
        results: list = [None] * len(items)
        with ProcessPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for future in tqdm(as_completed(futures), total=len(futures), desc=desc, disable=not self.progress):
                results[futures[future]] = future.result()
        return results


@dataclass
class SlurmExecutor:
    """One SLURM array per stage; ``cluster="debug"`` runs the same code in-process (for testing without SLURM)."""

    folder: str = "slurm_logs"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    timeout_min: int = 60
    cpus_per_task: int = 2
    mem_gb: int = 4
    max_parallel: int = 64
    cluster: str | None = None
    progress: bool = True

    def map(self, fn, items, desc):
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        params = dict(timeout_min=self.timeout_min, cpus_per_task=self.cpus_per_task, mem_gb=self.mem_gb)
        if executor.cluster == "slurm":
            params.update(slurm_array_parallelism=self.max_parallel)
            params.update(
                {
                    f"slurm_{k}": v
                    for k, v in (("partition", self.partition), ("account", self.account), ("qos", self.qos))
                    if v
                }
            )
        executor.update_parameters(**params)
        with executor.batch():
            jobs = [executor.submit(fn, item) for item in items]
        for job in tqdm(submitit.helpers.as_completed(jobs), total=len(jobs), desc=desc, disable=not self.progress):
            job.result()
        return [job.result() for job in jobs]
