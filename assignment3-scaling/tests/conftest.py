from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import cs336_scaling.study_report  # noqa: F401  (matplotlib, likewise: imported at collection, not inside a test)
import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401  (torch.optim imports it lazily on first use: pay once at collection)
import uvicorn
from cs336_scaling.api import create_app
from cs336_scaling.run_spec import RunSpec
from cs336_scaling.service import TrainingService
from cs336_scaling.store import Store
from cs336_scaling.training_run import RunResult, ScaleConfig, TrainingSetup
from cs336_scaling.workers import LocalWorkerPool

# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine they wait on each other.
torch.set_num_threads(1)

SENTENCES = [
    "Once upon a time there was a little fox who lived in the woods.",
    "Every morning the fox ran to the river to drink cold water.",
    "One day she met a bear who was looking for honey near the old tree.",
    "The bear was sad because the bees had flown away to the hills.",
    "They walked together and found a garden full of flowers and bees.",
    "The fox and the bear became friends and played until the sun went down.",
]

# Tiny runs: 1e13 nominal FLOPs train 1e9 FLOPs of a 123k-parameter model, ten steps of 4 x 32 bytes.
TEST_SCALE = ScaleConfig(flops_scale=1e-4, context_length=32, batch_divisor=32)


@pytest.fixture(scope="session")
def byte_tokens(tmp_path_factory) -> Path:
    """A byte-level (vocab 256) token file of simple English sentences in a seeded random order."""
    rng = np.random.default_rng(0)
    text = " ".join(SENTENCES[i] for i in rng.integers(0, len(SENTENCES), 2000))
    path = tmp_path_factory.mktemp("corpus") / "tokens.bin"
    np.frombuffer(text.encode(), dtype=np.uint8).astype("<u2").tofile(path)
    return path


@pytest.fixture
def setup(byte_tokens) -> TrainingSetup:
    return TrainingSetup(tokens_path=str(byte_tokens), vocab_size=256, scale=TEST_SCALE, eval_sequences=16)


class CountingPool(LocalWorkerPool):
    """The real CPU worker pool, counting the runs it starts (to see which queries trained)."""

    def __init__(self, setup: TrainingSetup):
        super().__init__(setup, ["cpu"])
        self.started: list[RunSpec] = []

    def submit(self, spec: RunSpec) -> Future[RunResult]:
        self.started.append(spec)
        return super().submit(spec)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(db: Path, setup: TrainingSetup, log_level: str = "warning") -> Iterator[tuple[str, CountingPool]]:
    """A real uvicorn server on a free loopback port, stopped on exit."""
    port = free_port()
    pool = CountingPool(setup)
    service = TrainingService(Store(db), pool)
    app = create_app(service)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # a bound for a stuck server, not a speed requirement
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", pool
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        pool.shutdown()
        service.close()
