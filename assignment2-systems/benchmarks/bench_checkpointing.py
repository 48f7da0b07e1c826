"""Activation checkpointing trade-off on one GPU: peak memory and training-step time per policy.

For each policy (none, every other block, every block, segments of two blocks, and each block's attention and
feed-forward under their own checkpoints, the next smaller size) a fresh model of the chosen
size (default ``2.7B``, which is the 2026 handout's xl: d_model 2560, 32 layers) trains on a random batch
(default 4 × 2048, the handout's gradient_checkpointing setting) under bf16 autocast with our AdamW. Reported:
peak allocated memory over the timed steps (weights, gradients and AdamW state included), the peak of one
forward + backward without the optimizer step (gradients freed first, as a step does), mean ± std step time, and
the activation bytes autograd saves in one forward (distinct storages, parameters excluded).
An out-of-memory policy is a result row. Rows go to ``checkpointing.jsonl`` as they finish.

Policies run one after another in one process, so each must leave nothing behind: every row records the
memory still allocated when it started (``allocated_at_start_MiB``: 0 but for cuBLAS workspaces), and
``tests/test_bench_checkpointing.py`` checks on the CPU that a policy's model, optimizer and activations are
freed when it ends, after an out-of-memory error too. (The run of 2026-12-03 lacked this: the meter of saved
bytes leaked the no-checkpointing policy's last graph, about 67 GiB of parameters and activations, into the
policies after it.)

Run (GPU machine, repo root):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \\
        python3 assignment2-systems/benchmarks/bench_checkpointing.py --out_dir /tmp/ckpt
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from cs336_basics.model_sizes import MODEL_SIZES
from cs336_basics.toolkit.cli import parse_config

POLICIES = {"none": None, "every_other": (2, 1), "every": (1, 1), "two_block_segments": (1, 2), "sublayers": None}
"""Policy -> (every, segment) for :func:`checkpoint_blocks`; ``sublayers`` is :func:`checkpoint_sublayers`."""


@dataclass(frozen=True)
class CheckpointingConfig:
    """Peak memory and step time of one model per activation-checkpointing policy."""

    out_dir: str = field(default="runs/checkpointing", metadata={"help": "folder for checkpointing.jsonl/.json/.md"})
    size: str = field(default="2.7B", metadata={"help": f"model shape, one of {list(MODEL_SIZES)}"})
    context_length: int = field(default=2048, metadata={"help": "tokens per sequence"})
    batch_size: int = field(default=4, metadata={"help": "sequences per step"})
    precision: Literal["fp32", "bf16"] = field(default="bf16", metadata={"help": "bf16: autocast"})
    policies: list[Literal["none", "every_other", "every", "two_block_segments", "sublayers"]] = field(
        default_factory=lambda: list(POLICIES), metadata={"help": "which blocks recompute their activations"}
    )
    warmup: int = field(default=2, metadata={"help": "untimed steps (AdamW allocates its state)"})
    steps: int = field(default=3, metadata={"help": "timed steps"})
    device: str = field(default="cuda", metadata={"help": "cpu: a smoke run without memory figures (tests)"})

    def __post_init__(self):
        if self.size not in MODEL_SIZES:
            raise ValueError(f"size must be one of {list(MODEL_SIZES)}, got {self.size!r}")
        if self.steps < 1 or self.warmup < 0:
            raise ValueError("steps must be >= 1 and warmup >= 0")
        if self.device not in ("cuda", "cpu"):
            raise ValueError(f"device must be cuda or cpu, got {self.device!r}")


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(CheckpointingConfig, description=__doc__)

import torch  # noqa: E402
from cs336_basics.model import TransformerLM  # noqa: E402
from cs336_basics.model_sizes import model_config  # noqa: E402
from cs336_basics.nn_utils import cross_entropy  # noqa: E402
from cs336_basics.optimizer import AdamW  # noqa: E402
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from cs336_basics.toolkit.tables import records_table  # noqa: E402
from cs336_systems.activation_checkpointing import (  # noqa: E402
    checkpoint_blocks,
    checkpoint_sublayers,
    saved_activation_bytes,
)
from cs336_systems.benchmarking import TimingStats, time_repeated  # noqa: E402
from cs336_systems.benchmarking.model_benchmark import is_out_of_memory  # noqa: E402


def measure(config: CheckpointingConfig, policy: str) -> dict:
    """One policy's row: peak MiB over the timed steps (on a GPU), step time, and MiB saved for backward by one
    forward. Everything it builds is local to :func:`_train_and_meter`, so it is freed when that returns or
    raises (an out-of-memory error's traceback is dropped with the ``except`` clause)."""
    row: dict = {"size": config.size, "context_length": config.context_length, "policy": policy, "status": "ok"}
    on_gpu = config.device == "cuda"
    if on_gpu:
        row["allocated_at_start_MiB"] = torch.cuda.memory_allocated() / 2**20
    try:
        row |= _train_and_meter(config, policy)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        row["status"] = "OOM"
    gc.collect()  # checkpoint_blocks makes each block reference itself through its new forward
    if on_gpu:
        torch.cuda.empty_cache()
    return row


def _train_and_meter(config: CheckpointingConfig, policy: str) -> dict:
    model = TransformerLM(model_config(config.size, context_length=config.context_length), device=config.device)
    if policy == "sublayers":
        checkpoint_sublayers(model.layers)
    elif POLICIES[policy] is not None:
        checkpoint_blocks(model.layers, *POLICIES[policy])
    optimizer = AdamW(model.parameters(), lr=1e-4)
    shape = (config.batch_size, config.context_length)
    inputs = torch.randint(0, model.config.vocab_size, shape, device=config.device)
    targets = torch.randint(0, model.config.vocab_size, shape, device=config.device)
    autocast = torch.autocast(config.device, dtype=torch.bfloat16, enabled=config.precision == "bf16")
    on_gpu = config.device == "cuda"
    synchronize = torch.cuda.synchronize if on_gpu else lambda: None

    def loss() -> torch.Tensor:
        with autocast:
            return cross_entropy(model(inputs), targets)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    for _ in range(config.warmup):
        step()
    synchronize()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    stats = TimingStats.from_seconds(time_repeated(step, 0, config.steps, synchronize))
    row = {"step_ms": stats.mean_ms, "step_std_ms": stats.std_ms}
    optimizer.zero_grad(set_to_none=True)
    if on_gpu:
        row["peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    # The step's peak can be the optimizer's (weights, gradients, moments, temporaries) whatever the policy;
    # forward + backward alone shows what the policy changes.
    loss().backward()
    if on_gpu:
        row["fwd_bwd_peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    optimizer.zero_grad(set_to_none=True)
    row["saved_for_backward_MiB"] = saved_activation_bytes(loss) / 2**20
    return row


def main(config: CheckpointingConfig) -> None:
    if config.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_checkpointing needs a CUDA GPU (or --device cpu for a smoke run)")
    os.makedirs(config.out_dir, exist_ok=True)
    device = torch.cuda.get_device_name() if config.device == "cuda" else "cpu"
    print(f"device: {device}, torch {torch.__version__}", flush=True)
    rows = []
    with open(os.path.join(config.out_dir, "checkpointing.jsonl"), "w") as jsonl:
        for policy in config.policies:
            start = time.perf_counter()
            row = measure(config, policy)
            row["wall_s"] = time.perf_counter() - start
            rows.append(row)
            jsonl.write(json.dumps(row) + "\n")
            jsonl.flush()
            print(json.dumps(row), flush=True)
    columns = [
        "size",
        "context_length",
        "policy",
        "peak_MiB",
        "fwd_bwd_peak_MiB",
        "step_ms",
        "step_std_ms",
        "saved_for_backward_MiB",
        "allocated_at_start_MiB",
        "status",
    ]
    headers = [
        "size",
        "ctx",
        "policy",
        "peak MiB",
        "fwd+bwd peak MiB",
        "step ms",
        "± ms",
        "saved for backward MiB",
        "allocated at start MiB",
        "status",
    ]
    header = (
        f"device: {device}, torch {torch.__version__}; batch {config.batch_size}, {config.precision}, "
        f"warm-up {config.warmup}, {config.steps} timed steps"
    )
    text = f"{header}\n\n{records_table(rows, dict(zip(columns, headers, strict=True)))}\n"
    write_text_atomic(os.path.join(config.out_dir, "checkpointing.md"), text)
    write_json_atomic(
        os.path.join(config.out_dir, "checkpointing.json"), {"config": asdict(config), "rows": rows}, indent=1
    )
    print(text)


if __name__ == "__main__":
    main(CONFIG)
