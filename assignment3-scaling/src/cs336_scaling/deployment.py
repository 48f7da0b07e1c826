"""Start-up configuration of the service (store, corpus, scale, where runs execute) and the server built from it.

The configs import nothing heavy, so ``scripts/serve.py --help`` answers at once; torch, FastAPI and uvicorn load
when the service is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from cs336_scaling.key_admin import DEFAULT_DB

if TYPE_CHECKING:
    from cs336_scaling.service import TrainingService
    from cs336_scaling.training_run import TrainingSetup
    from cs336_scaling.workers import RunExecutor


@dataclass(frozen=True)
class ServiceConfig:
    """The training service: its store, the corpus it trains on, how small its runs are and where they execute."""

    db: str = field(default=DEFAULT_DB, metadata={"help": "SQLite file for keys, budgets and results"})
    tokens: str = field(
        default="runs/corpus/tokens.bin", metadata={"help": "flat uint16 token file to train on (build_corpus.py)"}
    )
    vocab_size: int | None = field(default=None, metadata={"help": "default: largest token id + 1"})
    flops_scale: float = field(default=1.0, metadata={"help": "fraction of train_flops actually trained"})
    context_length: int = field(default=512, metadata={"help": "tokens per training window"})
    batch_divisor: int = field(default=1, metadata={"help": "divide the requested batch size by this"})
    devices: str = field(default="auto", metadata={"help": "'auto' (all GPUs, else CPU), 'cpu:N' or 'cuda:0,cuda:1'"})
    executor: Literal["local", "submitit"] = field(default="local", metadata={"help": "where runs execute"})
    submitit_folder: str = field(default="runs/submitit", metadata={"help": "submitit's job folder"})
    submitit_cluster: str | None = field(default=None, metadata={"help": "submitit cluster: slurm, local or debug"})
    slurm_partition: str | None = field(default=None, metadata={"help": "SLURM partition"})
    seed: int = field(default=0, metadata={"help": "every run's initialisation and data order"})


@dataclass(frozen=True)
class ServeConfig:
    """Run the training API (FastAPI + uvicorn) on a tokenised corpus."""

    service: ServiceConfig = field(default_factory=ServiceConfig)
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port to listen on"})


def training_setup(config: ServiceConfig) -> TrainingSetup:
    from cs336_scaling.training_run import ScaleConfig, TrainingSetup, vocab_size_of

    return TrainingSetup(
        tokens_path=config.tokens,
        vocab_size=config.vocab_size or vocab_size_of(config.tokens),
        scale=ScaleConfig(config.flops_scale, config.context_length, config.batch_divisor),
        seed=config.seed,
    )


def build_executor(config: ServiceConfig, setup: TrainingSetup) -> RunExecutor:
    from cs336_scaling.workers import LocalWorkerPool, SubmititConfig, SubmititPool, local_devices

    if config.executor == "local":
        return LocalWorkerPool(setup, local_devices(config.devices))
    if config.executor == "submitit":
        return SubmititPool(
            setup, SubmititConfig(config.submitit_folder, config.submitit_cluster, config.slurm_partition)
        )
    raise ValueError(f"executor must be 'local' or 'submitit', got {config.executor!r}")


def build_service(config: ServiceConfig) -> TrainingService:
    from cs336_scaling.service import TrainingService
    from cs336_scaling.store import Store

    return TrainingService(Store(config.db), build_executor(config, training_setup(config)))


def serve(config: ServeConfig) -> None:
    """Serve the API until interrupted; the service (and its lock on the store) is released on the way out."""
    import uvicorn

    from cs336_scaling.api import create_app

    with build_service(config.service) as service:
        uvicorn.run(create_app(service), host=config.host, port=config.port)
