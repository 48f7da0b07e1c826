"""The settings of the offline demo (every field a flag of ``scripts/demo.py``), importable without torch so the
script's ``--help`` answers at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from cs336_basics.model_config import ModelConfig

from cs336_alignment.run_config import SMOLLM2_NAME


@dataclass
class DemoConfig:
    """Sizes chosen so the whole demo runs in minutes on two CPU cores."""

    out_dir: str = field(default="runs/alignment_demo", metadata={"help": "metrics, plot, samples, checkpoint"})
    model: str = field(default="basics", metadata={"help": f"basics (trained here) or {SMOLLM2_NAME}"})
    prompt: str = field(default="short", metadata={"help": "short ('{question} Assistant: <think>') or r1_zero"})
    max_number: int = field(default=9, metadata={"help": "largest operand in the word problems"})
    train_problems: int = field(default=4000, metadata={"help": "procedural training problems"})
    heldout_problems: int = field(default=256, metadata={"help": "held-out problems evaluated along the way"})
    basics_model: ModelConfig = field(
        default_factory=lambda: ModelConfig(
            vocab_size=600, context_length=256, d_model=128, num_layers=4, num_heads=4, d_ff=512
        ),
        metadata={"help": "the basics model; vocab_size is the BPE vocabulary trained here"},
    )
    sft_steps: int = field(default=200, metadata={"help": "SFT optimiser steps"})
    sft_lr: float = field(default=3e-3, metadata={"help": "SFT peak learning rate (cosine)"})
    sft_batch_size: int = field(default=32, metadata={"help": "SFT examples per step"})
    sft_wrong_answer_rate: float = field(
        default=0.6,
        metadata={"help": "fraction of SFT demonstrations whose final answer is off by one (noisy demonstrations)"},
    )
    grpo_steps: int = field(default=24, metadata={"help": "GRPO steps after SFT"})
    grpo_lr: float = field(default=1e-4, metadata={"help": "GRPO learning rate"})
    grpo_questions_per_step: int = field(default=32, metadata={"help": "questions per rollout batch"})
    group_size: int = field(default=8, metadata={"help": "samples per question"})
    loss_type: str = field(default="reinforce_with_baseline", metadata={"help": "GRPO loss (see grpo.py)"})
    grpo_temperature: float = field(default=1.0, metadata={"help": "rollout sampling temperature"})
    grpo_epochs: int = field(default=1, metadata={"help": "passes over each rollout batch (>1 is off-policy)"})
    use_std_normalization: bool = field(default=True, metadata={"help": "divide advantages by the group std"})
    length_normalization: str = field(default="masked_mean", metadata={"help": "masked_mean or constant (Dr. GRPO)"})
    max_tokens: int = field(default=64, metadata={"help": "response length cap (tokens)"})
    eval_every: int = field(default=8, metadata={"help": "held-out evaluation every N GRPO steps"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (1 is fastest for the tiny model)"})
    seed: int = field(default=0, metadata={"help": "problems, tokenizer, initialisation and sampling seed"})
