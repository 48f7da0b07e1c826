"""Start-up configuration of the service: store, corpus, scale and where runs execute."""

from __future__ import annotations

from dataclasses import dataclass

from cs336_scaling.service import TrainingService
from cs336_scaling.store import Store
from cs336_scaling.training_run import ScaleConfig, TrainingSetup, vocab_size_of
from cs336_scaling.workers import LocalWorkerPool, RunExecutor, SubmititConfig, SubmititPool, local_devices


@dataclass(frozen=True)
class ServiceConfig:
    db: str
    tokens: str
    vocab_size: int | None = None  # None: largest token id + 1
    flops_scale: float = 1.0
    context_length: int = 512
    batch_divisor: int = 1
    devices: str = "auto"  # "auto", "cpu:N" or "cuda:0,cuda:1"
    executor: str = "local"  # "local" or "submitit"
    submitit_folder: str = "submitit_runs"
    submitit_cluster: str | None = None
    slurm_partition: str | None = None
    seed: int = 0


def training_setup(config: ServiceConfig) -> TrainingSetup:
    return TrainingSetup(
        tokens_path=config.tokens,
        vocab_size=config.vocab_size or vocab_size_of(config.tokens),
        scale=ScaleConfig(config.flops_scale, config.context_length, config.batch_divisor),
        seed=config.seed,
    )


def build_executor(config: ServiceConfig, setup: TrainingSetup) -> RunExecutor:
    if config.executor == "local":
        return LocalWorkerPool(setup, local_devices(config.devices))
    if config.executor == "submitit":
        return SubmititPool(
            setup, SubmititConfig(config.submitit_folder, config.submitit_cluster, config.slurm_partition)
        )
    raise ValueError(f"executor must be 'local' or 'submitit', got {config.executor!r}")


def build_service(config: ServiceConfig) -> TrainingService:
    setup = training_setup(config)
    return TrainingService(Store(config.db), build_executor(config, setup))
