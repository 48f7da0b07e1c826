"""The settings of sampling from a trained checkpoint (every field a flag of ``scripts/generate.py``), importable
without torch so the script's ``--help`` is immediate."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GenerateConfig:
    """Continue a prompt with temperature + nucleus (top-p) sampling, stopping at <|endoftext|>."""

    checkpoint: str = field(metadata={"help": "checkpoint.pt with a model_config entry (as train.py writes)"})
    vocab: str = field(metadata={"help": "vocab.json of the tokenizer the model was trained with"})
    merges: str = field(metadata={"help": "merges.txt of that tokenizer"})
    prompt: str = "Once upon a time"
    num_samples: int = 3
    max_new_tokens: int = 128
    temperature: float = field(default=0.8, metadata={"help": "0 = greedy"})
    top_p: float = field(default=0.9, metadata={"help": "nucleus mass kept (1 = plain sampling)"})
    end_of_text: str = field(default="<|endoftext|>", metadata={"help": "special token that ends a sample"})
    device: str = "auto"
    seed: int = 0
