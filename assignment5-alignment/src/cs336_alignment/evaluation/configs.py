"""The configs of the evaluation scripts, importable without torch so that a script's ``--help`` answers at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cs336_alignment.run_config import PolicyConfig


@dataclass
class MathEvalConfig:
    """Zero-shot accuracy of a policy with the r1_zero prompt and reward."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    dataset: str = field(default="gsm8k", metadata={"help": "gsm8k, arithmetic or a MATH-style JSONL path"})
    split: str = field(default="test", metadata={"help": "train or test (GSM8K; ignored for a JSONL)"})
    limit: int = field(default=0, metadata={"help": "first N problems (0: all)"})
    max_tokens: int = field(default=1024, metadata={"help": "response length cap (tokens)"})
    slow_grader: bool = field(default=False, metadata={"help": "also try math-verify on answers judged wrong"})
    out_dir: str = field(default="runs/eval_math", metadata={"help": "folder for metrics.json and generations.jsonl"})


@dataclass
class MMLUEvalConfig:
    """Zero-shot MMLU accuracy with the supplement's system prompt and answer parser."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    split: str = field(default="test", metadata={"help": "MMLU split: dev, val or test"})
    limit: int = field(default=0, metadata={"help": "first N questions (0: all 14k)"})
    max_tokens: int = field(default=64, metadata={"help": "response length cap (tokens)"})
    out_dir: str = field(default="runs/eval_mmlu", metadata={"help": "folder for metrics.json and generations.jsonl"})


@dataclass
class InstructionOutputsConfig:
    """Greedy outputs for AlpacaEval or SimpleSafetyTests, in the JSON their judges read."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    benchmark: Literal["alpaca_eval", "simple_safety_tests"] = field(
        default="alpaca_eval", metadata={"help": "alpaca_eval or simple_safety_tests"}
    )
    limit: int = field(default=0, metadata={"help": "first N instructions (0: all)"})
    max_tokens: int = field(default=512, metadata={"help": "response length cap (tokens)"})
    generator: str | None = field(default=None, metadata={"help": "name recorded with the outputs (none: the model)"})
    out_dir: str = field(default="runs/instruction_outputs", metadata={"help": "folder for <benchmark>.json"})
