"""Decoding: the one top-p sampler and the one KV-cached decoding loop of the course.

:func:`sample_continuations` drives any :class:`Decoder` (prefill the left-padded prompts once, then one cached
token per row and step): rows that end (end-of-text token, a caller's stop rule) leave the batch, so a long
straggler does not keep finished rows paying for forward passes. :class:`TransformerLMDecoder` is the decoder
of our :class:`TransformerLM`; assignment 5 plugs in decoders for Hugging Face models. :func:`generate_batch` and
:func:`generate` are the model-level entry points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from cs336_basics.layers import softmax
from cs336_basics.model import KVCache, TransformerLM

FinishReason = Literal["stop", "length"]


def nucleus(probs: Float[Tensor, "batch vocab"], top_p: float) -> Float[Tensor, "batch vocab"]:
    """``probs`` restricted to the nucleus and renormalised. The nucleus is the smallest set of most likely tokens
    whose mass reaches ``top_p`` (the handout's top-p): the most likely token is always in it, and a token is in
    it exactly when the tokens more likely than it hold less than ``top_p``."""
    if not 0 < top_p <= 1:
        raise ValueError(f"need 0 < top_p <= 1, got {top_p}")
    if top_p == 1:
        return probs  # the running sum may round to 1 before the least likely tokens; keep them all
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = F.pad(sorted_probs.cumsum(dim=-1)[..., :-1], (1, 0))
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(mass_before >= top_p, 0.0))
    return kept / kept.sum(dim=-1, keepdim=True)


def sample_next_token(
    logits: Float[Tensor, "batch vocab"],
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Int[Tensor, " batch"]:
    """Sample from ``softmax(logits / temperature)`` restricted to the :func:`nucleus` of mass ``top_p``;
    ``temperature == 0`` is greedy decoding. Low-precision logits are sampled in float32."""
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    probs = nucleus(softmax(scaled, dim=-1), top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def left_padded_positions(attention_mask: Bool[Tensor, "batch seq"]) -> Int[Tensor, "batch seq"]:
    """0-based positions of the real tokens of left-padded rows (pads get 0; they are masked anyway)."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


class Decoder(Protocol):
    """Incremental decoding state of one batch of left-padded rows."""

    model: torch.nn.Module

    def prefill(
        self,
        input_ids: Int[Tensor, "prompts width"],
        attention_mask: Bool[Tensor, "prompts width"],
        repeats: int,
        max_new_tokens: int,
    ) -> Float[Tensor, "rows vocab"]:
        """Run the prompts once and hold ``repeats`` rows per prompt (adjacent); next-token logits of each row."""
        ...

    def step(self, tokens: Int[Tensor, " rows"]) -> Float[Tensor, "rows vocab"]:
        """Feed one token per row; the logits of the next."""
        ...

    def select(self, rows: Int[Tensor, " kept"]) -> None:
        """Keep only ``rows`` (indices into the current rows, in order)."""
        ...


class TransformerLMDecoder:
    """The :class:`Decoder` of a :class:`TransformerLM`: its :class:`KVCache` (``reorder`` shares a prefill
    across samples and drops finished rows), a boolean key mask and per-row positions, so a padded row decodes
    exactly as it would alone.

    When the cache holds ``context_length`` keys, the rows are re-encoded from their last half-context (a sliding
    window that re-encodes once per ``context_length / 2`` tokens instead of every token); prompts longer than
    the context keep their last ``context_length`` tokens.
    """

    def __init__(self, model: TransformerLM):
        self.model = model
        self._context = model.config.context_length
        self._cache = KVCache(len(model.layers))
        self._ids: Tensor | None = None  # every row's tokens so far, left-padded: the sliding window's source
        self._mask: Tensor | None = None
        self._padded = False
        self._next_positions: Tensor | None = None

    def _encode(self, ids: Int[Tensor, "rows width"], mask: Bool[Tensor, "rows width"]) -> Float[Tensor, "rows vocab"]:
        self._ids, self._mask = ids, mask
        self._padded = not bool(mask.all())
        positions = left_padded_positions(mask)
        self._cache = KVCache(len(self.model.layers))
        logits = self.model(ids, positions, self._cache, mask if self._padded else None)[:, -1]
        self._next_positions = positions[:, -1:] + 1
        return logits

    def prefill(
        self,
        input_ids: Int[Tensor, "prompts width"],
        attention_mask: Bool[Tensor, "prompts width"],
        repeats: int,
        max_new_tokens: int,
    ) -> Float[Tensor, "rows vocab"]:
        logits = self._encode(input_ids[:, -self._context :], attention_mask[:, -self._context :].bool())
        if repeats > 1:  # one prefill per prompt, its cache shared by the prompt's samples
            self.select(torch.arange(len(input_ids), device=input_ids.device).repeat_interleave(repeats))
            logits = logits.repeat_interleave(repeats, dim=0)
        return logits

    def step(self, tokens: Int[Tensor, " rows"]) -> Float[Tensor, "rows vocab"]:
        self._ids = torch.cat((self._ids, tokens[:, None]), dim=-1)
        self._mask = torch.cat((self._mask, torch.ones_like(self._mask[:, :1])), dim=-1)
        if self._cache.length >= self._context:
            half = self._context // 2
            return self._encode(self._ids[:, -half:], self._mask[:, -half:])
        mask = self._mask if self._padded else None
        logits = self.model(tokens[:, None], self._next_positions, self._cache, mask)[:, -1]
        self._next_positions = self._next_positions + 1
        return logits

    def select(self, rows: Int[Tensor, " kept"]) -> None:
        self._cache.reorder(rows)
        self._ids, self._mask, self._next_positions = self._ids[rows], self._mask[rows], self._next_positions[rows]


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    real = torch.zeros(len(prompts), width, dtype=torch.bool)
    for i, row in enumerate(prompts):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        real[i, width - len(row) :] = True
    return ids, real


@torch.inference_mode()
def sample_continuations(
    decoder: Decoder,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
    *,
    device: torch.device,
    samples_per_prompt: int = 1,
    min_new_tokens: int = 0,
    pad_id: int = 0,
    stop: Callable[[list[int]], bool] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    drop_finished: bool = True,
) -> list[tuple[list[int], FinishReason]]:
    """``(new tokens, finish reason)`` of each prompt's ``samples_per_prompt`` samples, prompt-major.

    A row ends with reason ``"stop"`` when it samples ``eos_token_id`` (left out of its tokens; suppressed for the
    first ``min_new_tokens`` steps) or when ``stop(its tokens)`` holds after a token (kept; asked from step
    ``min_new_tokens`` on), else ``"length"`` after ``max_new_tokens``. ``on_step(ended, decoded)`` reports each
    step's ended rows and rows decoded. Ended rows leave the decoder's batch unless ``drop_finished`` is False;
    greedy decoding gives the same tokens either way, but seeded sampling does not: every step draws one batch's
    worth of random numbers from ``generator``, so once a row leaves, the others read different ones.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (start from the <|endoftext|> id for a blank one)")
    if max_new_tokens < 1 or not 0 <= min_new_tokens <= max_new_tokens or samples_per_prompt < 1:
        raise ValueError(f"bad lengths: {max_new_tokens=} {min_new_tokens=} {samples_per_prompt=}")
    input_ids, real = _left_pad(prompts, pad_id)
    logits = decoder.prefill(input_ids.to(device), real.to(device), samples_per_prompt, max_new_tokens)
    total = len(prompts) * samples_per_prompt
    generated: list[list[int]] = [[] for _ in range(total)]
    reasons: list[FinishReason] = ["length"] * total
    ended = [False] * total
    rows = list(range(total))  # decoder row -> sample
    for step in range(max_new_tokens):
        if step < min_new_tokens and eos_token_id is not None:
            logits[:, eos_token_id] = float("-inf")
        tokens = sample_next_token(logits, temperature, top_p, generator)
        token_list = tokens.tolist()
        live = [(row, sample) for row, sample in enumerate(rows) if not ended[sample]]
        ended_now = 0
        for row, sample in live:
            token = token_list[row]
            if token != eos_token_id:
                generated[sample].append(token)
            if token == eos_token_id or (stop is not None and step + 1 >= min_new_tokens and stop(generated[sample])):
                reasons[sample], ended[sample] = "stop", True
                ended_now += 1
        last = step + 1 == max_new_tokens or ended_now == len(live)
        if on_step is not None:
            on_step(len(live) if last else ended_now, len(live))
        if last:
            break
        if ended_now and drop_finished:
            keep = torch.tensor([row for row, sample in enumerate(rows) if not ended[sample]], device=device)
            decoder.select(keep)
            tokens, rows = tokens[keep], [sample for sample in rows if not ended[sample]]
        logits = decoder.step(tokens)
    return list(zip(generated, reasons))


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
    (which is not included in its output) and leaves the batch. Returns only the new tokens of each row."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outputs = sample_continuations(
            TransformerLMDecoder(model),
            prompts,
            max_new_tokens,
            temperature,
            top_p,
            eos_token_id,
            generator,
            device=device,
        )
    finally:
        model.train(was_training)
    return [tokens for tokens, _ in outputs]


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
