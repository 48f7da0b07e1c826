"""Where shard jobs run: a local process pool (default) or a SLURM job array through submitit.

Both expose ``map(fn, items, desc)``: ``fn`` is a picklable top-level function (or ``functools.partial``) applied to
every item, results come back in item order, with a progress bar. Resumability lives in the shard functions
(completion markers), so an executor only has to run things.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
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

    folder: str = field(default="slurm_logs", metadata={"help": "submitit's folder for job scripts and logs"})
    partition: str | None = field(default=None, metadata={"help": "SLURM partition"})
    account: str | None = field(default=None, metadata={"help": "SLURM account"})
    qos: str | None = field(default=None, metadata={"help": "SLURM quality of service"})
    timeout_min: int = field(default=60, metadata={"help": "minutes each job may run"})
    cpus_per_task: int = field(default=2, metadata={"help": "CPUs per job"})
    mem_gb: int = field(default=4, metadata={"help": "memory per job (GB)"})
    max_parallel: int = field(default=64, metadata={"help": "jobs of one array running at once"})
    cluster: str | None = field(
        default=None, metadata={"help": "submitit cluster: none (detect SLURM), slurm, or debug (in-process)"}
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar per stage"})

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
