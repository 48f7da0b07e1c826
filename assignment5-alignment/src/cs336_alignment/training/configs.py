"""The configs of the training scripts, importable without torch so that a script's ``--help`` answers at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from cs336_alignment.loop_configs import DPOConfig, ExpertIterationConfig, GRPOConfig, SFTConfig
from cs336_alignment.run_config import OutputConfig, PolicyConfig


@dataclass
class SFTRunConfig:
    """SFT on r1_zero-formatted worked solutions, validated with the r1_zero reward."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(out_dir="runs/sft"))
    sft: SFTConfig = field(default_factory=SFTConfig)
    dataset: str = field(default="gsm8k", metadata={"help": "gsm8k, arithmetic, or a JSONL with worked solutions"})
    train_size: int = field(default=0, metadata={"help": "unique training examples (0: all)"})
    val_dataset: str = field(default="gsm8k", metadata={"help": "validation questions (its test split)"})
    val_size: int = field(default=256, metadata={"help": "validation questions per evaluation"})
    max_tokens: int = field(default=512, metadata={"help": "validation response length cap (tokens)"})


@dataclass
class ExpertIterationRunConfig:
    """Expert iteration on math problems with the r1_zero reward as the verifier."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(out_dir="runs/expert_iteration"))
    ei: ExpertIterationConfig = field(default_factory=ExpertIterationConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    dataset: str = field(default="gsm8k", metadata={"help": "training questions: gsm8k, arithmetic or a JSONL"})
    val_dataset: str = field(default="gsm8k", metadata={"help": "validation questions (its test split)"})
    val_size: int = field(default=256, metadata={"help": "validation questions evaluated after each round"})


@dataclass
class GRPORunConfig:
    """GRPO on math problems with the r1_zero reward, validated on held-out problems."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(out_dir="runs/grpo"))
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    dataset: str = field(default="gsm8k", metadata={"help": "gsm8k, arithmetic or a MATH-style JSONL"})
    val_dataset: str = field(default="gsm8k", metadata={"help": "validation questions (its test split)"})
    val_size: int = field(default=256, metadata={"help": "validation questions per evaluation"})


@dataclass
class DPORunConfig:
    """DPO of a policy against a frozen copy of itself on preference pairs (Anthropic HH or a local JSONL)."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(out_dir="runs/dpo"))
    dpo: DPOConfig = field(default_factory=DPOConfig)
    pairs: str = field(default="hh", metadata={"help": "hh (Anthropic HH, downloaded when online) or a JSONL path"})
    val_size: int = field(default=200, metadata={"help": "validation pairs held out (at most a tenth of them)"})
    ref_device: str | None = field(default=None, metadata={"help": "reference model's device (none: the policy's)"})
