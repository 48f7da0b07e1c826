"""The training run's configuration (every field a flag of ``scripts/train.py``), importable without torch so the
script's ``--help`` is immediate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from cs336_basics.model_config import ModelConfig

OPTIMIZERS = ("adamw", "muon")
SCHEDULES = ("cosine", "trapezoidal")
VOCAB_FROM_TOKENIZER_OR_DATA = 0  # model.vocab_size default: the tokenizer's size (--vocab), else the data's ids


@dataclass
class TrainConfig:
    """Training run configuration (every field is a command-line flag of ``scripts/train.py``)."""

    train_data: str = field(metadata={"help": "uint16 token file (.bin) to train on"})
    valid_data: str | None = field(default=None, metadata={"help": "uint16 token file for validation"})
    out_dir: str = field(default="runs/train", metadata={"help": "checkpoint, metrics.jsonl, loss_curve.png"})
    vocab: str | None = field(
        default=None, metadata={"help": "the tokenizer's vocab.json: the model's vocabulary is its size"}
    )
    model: ModelConfig = field(
        default_factory=lambda: ModelConfig(vocab_size=VOCAB_FROM_TOKENIZER_OR_DATA),
        metadata={"help": "vocab_size 0 (default): the --vocab file's size, else the data's largest token id + 1"},
    )
    batch_size: int = 32
    max_iters: int = 5000
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 200
    cosine_cycle_iters: int | None = field(default=None, metadata={"help": "end of the cosine (default max_iters)"})
    schedule: str = field(default="cosine", metadata={"help": "cosine, or trapezoidal (warm-up, flat, cool-down)"})
    cooldown_fraction: float = field(default=0.4, metadata={"help": "trapezoidal: share of the run cooling down"})
    optimizer: str = field(default="adamw", metadata={"help": "adamw, or muon (block matrices; AdamW for the rest)"})
    muon_lr: float = field(default=0.02, metadata={"help": "muon: peak learning rate of the block matrices"})
    muon_momentum: float = 0.95
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    log_interval: int = 10
    eval_interval: int = 500
    eval_batches: int = 20
    eval_batch_size: int | None = field(
        default=None, metadata={"help": "validation windows per batch (default batch_size)"}
    )
    final_eval_batches: int | None = field(default=None, metadata={"help": "batches of the last validation"})
    checkpoint_interval: int = 1000
    resume: bool = field(default=False, metadata={"help": "continue from out_dir/checkpoint.pt if it exists"})
    device: str = field(default="auto", metadata={"help": "auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 autocast on CUDA), bf16 or fp32"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    seed: int = 0
    max_seconds: float | None = field(default=None, metadata={"help": "stop (and checkpoint) after this wall time"})
    time_budget: float | None = field(
        default=None, metadata={"help": "seconds of training: the run's length is fitted to it after timing steps"}
    )
    evaluations: int | None = field(
        default=None, metadata={"help": "with time_budget: validations spread over the run (else eval_interval)"}
    )
    stop_on_divergence: bool = field(default=True, metadata={"help": "stop when the training loss is not finite"})
    progress: bool = True
    wandb: bool = False
    wandb_project: str = "cs336-basics"
    run_name: str | None = None

    def __post_init__(self):
        if self.max_iters <= 0 or self.batch_size <= 0:
            raise ValueError("max_iters and batch_size must be positive")
        for name in ("log_interval", "eval_interval", "checkpoint_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.cooldown_fraction <= 1.0:
            raise ValueError(f"cooldown_fraction must lie in [0, 1], got {self.cooldown_fraction}")
        if self.time_budget is not None:
            if self.time_budget <= 0:
                raise ValueError(f"time_budget must be positive, got {self.time_budget}")
            if self.resume:
                raise ValueError("time_budget runs fix their length while running and cannot be resumed")
        if self.time_budget is None:
            warn_if_warmup_outlasts(self.warmup_iters, self.max_iters)


def warn_if_warmup_outlasts(warmup_iters: int, total_iters: int) -> None:
    if warmup_iters > total_iters:
        warnings.warn(
            f"warmup_iters={warmup_iters} is longer than the run ({total_iters} steps): "
            "the learning rate never reaches max_lr",
            stacklevel=2,
        )
