"""Continue a prompt with a trained checkpoint (written by ``train.py`` or the demo) and its tokenizer: what
``scripts/generate.py`` runs."""

from __future__ import annotations

import torch

from cs336_basics.checkpoint import read_checkpoint
from cs336_basics.generate import generate_batch
from cs336_basics.generate_config import GenerateConfig
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.device import select_device


def sample_checkpoint(cfg: GenerateConfig) -> list[str]:
    """``cfg.num_samples`` continuations of ``cfg.prompt`` (each printed, and returned with the prompt in front)."""
    payload = read_checkpoint(cfg.checkpoint)
    if "model_config" not in payload:
        raise ValueError(f"{cfg.checkpoint} has no model_config entry: it was not written by scripts/train.py")
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
