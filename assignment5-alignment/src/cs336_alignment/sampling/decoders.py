"""Incremental decoding with a KV cache for the model families the sampler drives.

A decoder keeps the per-batch state (cache, attention mask, next positions) for left-padded prompts:
``prefill`` runs the prompts once, ``step`` feeds one new token per row, and ``select`` keeps only the
rows still generating so finished samples stop costing compute. Llama-family HF models get the static-cache
decoder (``static_decoder.py``: preallocated cache, CUDA graphs on a GPU); other HF models a growing
``DynamicCache``; ``cs336_basics`` models their own ``KVCache``.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from cs336_alignment.sampling.static_decoder import StaticCacheDecoder, supports_static_cache


class Decoder(Protocol):
    model: torch.nn.Module

    def prefill(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Bool[Tensor, "batch seq"],
        repeats: int,
        max_new_tokens: int,
    ) -> Float[Tensor, "batch_x_repeats vocab"]: ...

    def step(self, tokens: Int[Tensor, " batch"]) -> Float[Tensor, "batch vocab"]: ...

    def select(self, rows: Int[Tensor, " kept"]) -> None: ...


def _positions(attention_mask: Tensor) -> Tensor:
    """0-based positions of real tokens under left padding (pads get 0; they are masked anyway)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class HFDecoder:
    """Hugging Face causal LMs: ``DynamicCache``, 2-D attention mask and explicit ``position_ids``."""

    def __init__(self, model: torch.nn.Module):
        from transformers import DynamicCache

        self.model = model
        self._cache_cls = DynamicCache
        # transformers renamed ``past_key_values`` to ``cache`` during 5.x; use whichever this version takes
        self._cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._cache: Any = None
        self._mask: Tensor | None = None
        self._next_pos: Tensor | None = None

    def _forward(self, input_ids: Tensor, position_ids: Tensor) -> Tensor:
        out = self.model(
            input_ids=input_ids,
            attention_mask=self._mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: self._cache},
        )
        return out.logits[:, -1, :]

    def prefill(self, input_ids: Tensor, attention_mask: Tensor, repeats: int, max_new_tokens: int) -> Tensor:
        self._cache = self._cache_cls(config=self.model.config)
        self._mask = attention_mask.long()
        positions = _positions(attention_mask)
        logits = self._forward(input_ids, positions)
        self._next_pos = positions[:, -1:] + 1
        if repeats > 1:  # one prefill per unique prompt, then share it across the n samples
            self._cache.batch_repeat_interleave(repeats)
            self._mask = self._mask.repeat_interleave(repeats, dim=0)
            self._next_pos = self._next_pos.repeat_interleave(repeats, dim=0)
            logits = logits.repeat_interleave(repeats, dim=0)
        return logits

    def step(self, tokens: Tensor) -> Tensor:
        self._mask = torch.cat([self._mask, self._mask.new_ones(len(tokens), 1)], dim=1)
        logits = self._forward(tokens[:, None], self._next_pos)
        self._next_pos = self._next_pos + 1
        return logits

    def select(self, rows: Tensor) -> None:
        self._cache.batch_select_indices(rows)
        self._mask = self._mask[rows]
        self._next_pos = self._next_pos[rows]


class BasicsDecoder:
    """``cs336_basics.model.TransformerLM``: its ``KVCache`` (``reorder`` drops finished rows), boolean key mask
    and ``token_positions``."""

    def __init__(self, model: torch.nn.Module):
        from cs336_basics.model import KVCache

        self.model = model
        self._cache_cls = KVCache
        self._cache: Any = None
        self._mask: Tensor | None = None
        self._next_pos: Tensor | None = None

    def prefill(self, input_ids: Tensor, attention_mask: Tensor, repeats: int, max_new_tokens: int) -> Tensor:
        input_ids = input_ids.repeat_interleave(repeats, dim=0)
        attention_mask = attention_mask.bool().repeat_interleave(repeats, dim=0)
        self._cache = self._cache_cls(self.model.config.num_layers)
        self._mask = attention_mask
        positions = _positions(attention_mask)
        logits = self.model(input_ids, token_positions=positions, kv_cache=self._cache, attention_mask=self._mask)
        self._next_pos = positions[:, -1:] + 1
        return logits[:, -1, :]

    def step(self, tokens: Tensor) -> Tensor:
        self._mask = torch.cat([self._mask, self._mask.new_ones(len(self._mask), 1)], dim=1)
        logits = self.model(
            tokens[:, None], token_positions=self._next_pos, kv_cache=self._cache, attention_mask=self._mask
        )
        self._next_pos = self._next_pos + 1
        return logits[:, -1, :]

    def select(self, rows: Tensor) -> None:
        self._cache.reorder(rows)
        self._mask = self._mask[rows]
        self._next_pos = self._next_pos[rows]


def decoder_for(model: torch.nn.Module, max_batch_size: int, static_cache: bool, cuda_graphs: bool) -> Decoder:
    """The decoder for ``model``: ``cs336_basics`` TransformerLM, Llama-family HF model with a static cache (when
    ``static_cache``; CUDA graphs when also ``cuda_graphs`` and on a GPU), or any HF causal LM (dynamic cache)."""
    if type(model).__module__.startswith("cs336_basics"):
        return BasicsDecoder(model)
    if static_cache and supports_static_cache(model):
        return StaticCacheDecoder(model, max_batch_size, cuda_graphs)
    if hasattr(model, "generate") and hasattr(model, "config"):
        return HFDecoder(model)
    raise TypeError(f"no decoder for {type(model).__name__}: expected a transformers causal LM or a TransformerLM")
