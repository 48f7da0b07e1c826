"""Decoding from a :class:`TransformerLM`: temperature and nucleus (top-p) sampling with a KV cache.

Prompts of different lengths are left-padded into one batch; an attention mask hides the padding and each row
gets its own positions, so a padded row decodes exactly as it would alone. When a row would run past the
model's context length, the cache is rebuilt from the last half-context of every row (a sliding window that
re-encodes once per ``context_length / 2`` tokens instead of every token).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from cs336_basics.layers import softmax
from cs336_basics.model import KVCache, TransformerLM


def sample_next_token(
    logits: Float[Tensor, "batch vocab"],
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Int[Tensor, " batch"]:
    """Sample from ``softmax(logits / temperature)`` restricted to the smallest set of most likely tokens whose
    mass reaches ``top_p``. ``temperature == 0`` is greedy decoding."""
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)  # the top token always survives
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return order.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _BatchState:
    """Cache, padding mask and next positions of a left-padded batch."""

    def __init__(self, model: TransformerLM, rows: list[list[int]], device: torch.device):
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        real = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            real[i, width - len(row) :] = True
        self.padded = not bool(real.all())
        self.mask = real.to(device)
        positions = (self.mask.cumsum(dim=-1) - 1).clamp(min=0)
        self.cache = KVCache(len(model.layers))
        self.logits = model(ids.to(device), positions, self.cache, self.mask if self.padded else None)[:, -1]
        self.next_positions = positions[:, -1:] + 1

    def step(self, model: TransformerLM, tokens: Int[Tensor, " batch"]) -> None:
        self.mask = torch.cat((self.mask, torch.ones_like(self.mask[:, :1])), dim=-1)
        mask = self.mask if self.padded else None
        self.logits = model(tokens[:, None], self.next_positions, self.cache, mask)[:, -1]
        self.next_positions = self.next_positions + 1


@torch.no_grad()
def generate_batch(
    model: TransformerLM,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token_id: int | None = None,
    device: str | torch.device | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Continue every prompt by up to ``max_new_tokens`` tokens; each row stops after emitting ``eos_token_id``
    (which is not included in its output). Returns only the new tokens of each row."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (start from the <|endoftext|> id for a blank one)")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    context = model.config.context_length
    was_training = model.training
    model.eval()
    try:
        rows = [list(p[-context:]) for p in prompts]
        outputs: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        state = _BatchState(model, rows, device)
        for step in range(max_new_tokens):
            tokens = sample_next_token(state.logits, temperature, top_p, generator)
            for i, token in enumerate(tokens.tolist()):
                if done[i]:
                    continue
                if token == eos_token_id:
                    done[i] = True
                else:
                    outputs[i].append(token)
                    rows[i].append(token)
            if all(done) or step == max_new_tokens - 1:
                break
            if int(state.next_positions.max()) >= context:
                state = _BatchState(model, [r[-(context // 2) :] for r in rows], device)
            else:
                state.step(model, tokens)
        return outputs
    finally:
        model.train(was_training)


def generate(
    model: TransformerLM,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token_id: int | None = None,
    device: str | torch.device | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Continue one prompt (see :func:`generate_batch`); returns the new token ids, without the stop token."""
    return generate_batch(model, [prompt_ids], max_new_tokens, temperature, top_p, eos_token_id, device, generator)[0]
