"""The demo's configuration (every field a flag of ``scripts/demo.py``), importable without torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from cs336_basics.model_config import ModelConfig


@dataclass
class DemoConfig:
    """BPE + a small LM trained on offline English text within a wall-clock budget."""

    out_dir: str = field(default="runs/demo", metadata={"help": "corpus, tokenizer, tokens, checkpoint, plots"})
    train_seconds: float = field(default=160.0, metadata={"help": "wall-clock budget of the training loop"})
    include_wikipedia: bool = field(default=True, metadata={"help": "add the Wikipedia excerpt to the Lee news"})
    model: ModelConfig = field(
        default_factory=lambda: ModelConfig(
            vocab_size=2048, context_length=128, d_model=128, num_layers=4, num_heads=4, d_ff=384
        )
    )
    batch_size: int = 16
    max_lr: float = 3e-3
    min_lr: float = 3e-4
    samples_max_tokens: int = 60
    temperature: float = 0.8
    top_p: float = 0.9
    threads: int | None = field(default=None, metadata={"help": "CPU threads (default: the faster of 1 and all)"})
    iterations: int | None = field(
        default=None, metadata={"help": "train exactly this many steps (default: as many as fit train_seconds)"}
    )
    seed: int = 0
    progress: bool = True
