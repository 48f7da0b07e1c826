"""Sample text from a trained checkpoint (written by scripts/train.py or the demo).

    uv run python assignment1-basics/scripts/generate.py --checkpoint runs/demo/checkpoint.pt \\
        --vocab runs/demo/vocab.json --merges runs/demo/merges.txt --prompt "The city of" --temperature 0.8 --top_p 0.9
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cs336_basics.toolkit.cli import parse_config


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


def main(cfg: GenerateConfig) -> list[str]:
    # torch and the model load here, not at the top, so that --help answers at once
    import torch
    from cs336_basics.checkpoint import read_checkpoint
    from cs336_basics.generate import generate_batch
    from cs336_basics.model import TransformerLM
    from cs336_basics.model_config import ModelConfig
    from cs336_basics.tokenizer import Tokenizer
    from cs336_basics.toolkit.device import select_device

    payload = read_checkpoint(cfg.checkpoint)
    if "model_config" not in payload:
        raise SystemExit(f"{cfg.checkpoint} has no model_config entry: it was not written by scripts/train.py")
    device = select_device(cfg.device)
    model = TransformerLM(ModelConfig(**payload["model_config"]), device=device)
    model.load_state_dict(payload["model"])
    tokenizer = Tokenizer.from_files(cfg.vocab, cfg.merges, [cfg.end_of_text])
    prompt_ids = tokenizer.encode(cfg.prompt)
    if not prompt_ids:
        prompt_ids = [tokenizer.special_token_ids[cfg.end_of_text]]  # an empty prompt starts a new document
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    outputs = generate_batch(
        model,
        [prompt_ids] * cfg.num_samples,
        cfg.max_new_tokens,
        cfg.temperature,
        cfg.top_p,
        tokenizer.special_token_ids[cfg.end_of_text],
        device,
        generator,
    )
    texts = [cfg.prompt + tokenizer.decode(ids) for ids in outputs]
    for i, text in enumerate(texts):
        print(f"--- sample {i + 1} ---\n{text}\n")
    return texts


if __name__ == "__main__":
    main(parse_config(GenerateConfig))
