"""The settings of the data-parallel correctness checks (every field a flag of
``scripts/check_distributed_correctness.py``), importable without torch so that the script's ``--help`` and a bad flag
answer at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class CorrectnessConfig:
    """Every data-parallel wrapper against single-device training, under torchrun."""

    backend: Literal["nccl", "gloo"] | None = field(default=None, metadata={"help": "none: nccl if CUDA, else gloo"})
    out_dir: str = field(default="runs/correctness", metadata={"help": "folder for correctness.json and .md"})
