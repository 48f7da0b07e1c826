"""The settings of the training loops (SFT, expert iteration, GRPO, DPO), importable without torch so that a
script's ``--help`` answers at once; each loop module takes its config from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LossType = Literal["no_baseline", "reinforce_with_baseline", "grpo_clip", "grpo_no_clip"]
LOSS_TYPES: tuple[str, ...] = ("no_baseline", "reinforce_with_baseline", "grpo_clip", "grpo_no_clip")


@dataclass
class SFTConfig:
    """Optimisation settings of an SFT run (one optimiser step = ``batch_size`` examples)."""

    sft_steps: int = field(default=100, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=32, metadata={"help": "examples per optimiser step"})
    gradient_accumulation_steps: int = field(default=4, metadata={"help": "micro-batches per optimiser step"})
    lr: float = field(default=1e-5, metadata={"help": "peak learning rate"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps from 0, then cosine to lr / 10"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm to this (0: no clipping)"})
    normalize_constant: float = field(default=1.0, metadata={"help": "divide each sequence's summed NLL by this"})
    eval_every: int = field(default=0, metadata={"help": "evaluate every N steps (0: only at the end)"})
    max_seconds: float = field(
        default=0.0, metadata={"help": "end after the step that passes this much training time (0: no limit)"}
    )
    precision: str = field(default="auto", metadata={"help": "auto (bf16 autocast on CUDA), bf16 or fp32"})
    seed: int = field(default=0, metadata={"help": "example shuffling seed"})

    def __post_init__(self):
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of {self.gradient_accumulation_steps}")


@dataclass
class ExpertIterationConfig:
    """Rounds of sampling, filtering by the verifier and SFT on what passed."""

    n_ei_steps: int = field(default=5, metadata={"help": "expert-iteration rounds"})
    questions_per_step: int = field(default=512, metadata={"help": "questions sampled each round (D_b)"})
    rollouts_per_question: int = field(default=4, metadata={"help": "answers sampled per question (G)"})
    sft_epochs: int = field(default=1, metadata={"help": "epochs over the kept answers per round"})
    ei_temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    ei_max_tokens: int = field(default=1024, metadata={"help": "response length cap (tokens)"})
    ei_seed: int = field(default=0, metadata={"help": "question sampling and rollout seed"})
    ei_max_seconds: float = field(
        default=0.0, metadata={"help": "end a call after the round that passes this many seconds (0: no limit)"}
    )


@dataclass
class GRPOConfig:
    """The handout's GRPO hyperparameters (defaults are its starting point)."""

    n_grpo_steps: int = field(default=200, metadata={"help": "rollout-and-update rounds"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate (constant after warm-up)"})
    warmup_steps: int = field(default=0, metadata={"help": "GRPO steps of linear learning-rate warm-up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    advantage_eps: float = field(default=1e-6, metadata={"help": "added to the group std before dividing"})
    rollout_batch_size: int = field(default=256, metadata={"help": "responses per rollout batch"})
    group_size: int = field(default=8, metadata={"help": "responses per question"})
    max_sampling_rounds: int = field(
        default=1,
        metadata={"help": "DAPO dynamic sampling: rounds to fill the batch with mixed-reward groups (1: off)"},
    )
    sampling_temperature: float = field(default=1.0, metadata={"help": "rollout sampling temperature"})
    sampling_min_tokens: int = field(default=4, metadata={"help": "no EOS before this many response tokens"})
    sampling_max_tokens: int = field(default=1024, metadata={"help": "response length cap (tokens)"})
    epochs_per_rollout_batch: int = field(default=1, metadata={"help": "1 is on-policy; more is off-policy"})
    train_batch_size: int = field(default=256, metadata={"help": "responses per optimiser step"})
    gradient_accumulation_steps: int = field(default=128, metadata={"help": "micro-batches per optimiser step"})
    loss_type: str = field(default="reinforce_with_baseline", metadata={"help": "|".join(LOSS_TYPES)})
    use_std_normalization: bool = field(default=True, metadata={"help": "divide advantages by the group std"})
    length_normalization: str = field(default="masked_mean", metadata={"help": "masked_mean or constant (Dr. GRPO)"})
    normalize_constant: float | None = field(default=None, metadata={"help": "for constant; default max tokens"})
    cliprange: float = field(default=0.2, metadata={"help": "GRPO-Clip ratio clip epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm to this (0: no clipping)"})
    eval_every: int = field(default=10, metadata={"help": "validate every N GRPO steps (and at the end)"})
    max_seconds: float = field(
        default=0.0, metadata={"help": "end after the step that passes this much training time (0: no limit)"}
    )
    precision: str = field(default="auto", metadata={"help": "auto (bf16 autocast on CUDA), bf16 or fp32"})
    seed: int = field(default=0, metadata={"help": "question sampling, shuffling and rollout seeds"})

    def __post_init__(self):
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.length_normalization not in ("masked_mean", "constant"):
            raise ValueError(f"length_normalization must be masked_mean or constant, got {self.length_normalization!r}")
        if self.rollout_batch_size % self.group_size:
            raise ValueError("rollout_batch_size must be divisible by group_size")
        if self.train_batch_size % self.gradient_accumulation_steps:
            raise ValueError("train_batch_size must be divisible by gradient_accumulation_steps")
        if self.rollout_batch_size % self.train_batch_size:
            raise ValueError("rollout_batch_size must be divisible by train_batch_size")
        if self.max_sampling_rounds < 1:
            raise ValueError(f"max_sampling_rounds must be at least 1, got {self.max_sampling_rounds}")
        if self.max_sampling_rounds > 1 and self.loss_type == "no_baseline":
            raise ValueError(
                "max_sampling_rounds > 1 drops groups with equal rewards and pads with them as zero-advantage "
                "groups, but no_baseline weights by the raw reward, so equal rewards still teach: use 1"
            )

    @property
    def micro_batch_size(self) -> int:
        return self.train_batch_size // self.gradient_accumulation_steps

    @property
    def needs_old_log_probs(self) -> bool:
        return self.loss_type in ("grpo_clip", "grpo_no_clip")


@dataclass
class DPOConfig:
    """Optimisation settings of a DPO run (one optimiser step = ``gradient_accumulation_steps`` pairs)."""

    dpo_steps: int = field(default=100, metadata={"help": "optimiser steps"})
    beta: float = field(default=0.1, metadata={"help": "DPO temperature: strength of the pull to the reference"})
    lr: float = field(default=1e-6, metadata={"help": "AdamW learning rate (constant after warm-up)"})
    warmup_steps: int = field(default=0, metadata={"help": "steps of linear warm-up"})
    gradient_accumulation_steps: int = field(default=64, metadata={"help": "pairs per optimiser step"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient norm to this (0: no clipping)"})
    eval_every: int = field(default=10, metadata={"help": "validation preference accuracy every N steps"})
    seed: int = field(default=0, metadata={"help": "pair shuffling and train/validation split seed"})
