"""Incremental decoding with a KV cache for the model families the sampler drives.

Each is a ``cs336_basics.generate.Decoder`` (``prefill`` the left-padded prompts once, ``step`` one new token per
row, ``select`` the rows still generating), driven by ``cs336_basics.generate.sample_continuations``.
Llama-family HF models get the static-cache decoder (``static_decoder.py``: preallocated cache, CUDA graphs on a
GPU); other HF models a growing ``DynamicCache``; ``cs336_basics`` models their own ``TransformerLMDecoder``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from cs336_basics.generate import Decoder, TransformerLMDecoder, left_padded_positions
from cs336_basics.model import TransformerLM
from torch import Tensor

from cs336_alignment.sampling.static_decoder import StaticCacheDecoder, supports_static_cache


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
        positions = left_padded_positions(attention_mask)
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


def decoder_for(model: torch.nn.Module, max_batch_size: int, static_cache: bool, cuda_graphs: bool) -> Decoder:
    """The decoder for ``model``: ``cs336_basics`` TransformerLM, Llama-family HF model with a static cache (when
    ``static_cache``; CUDA graphs when also ``cuda_graphs`` and on a GPU), or any HF causal LM (dynamic cache)."""
    if isinstance(model, TransformerLM):
        return TransformerLMDecoder(model)
    if static_cache and supports_static_cache(model):
        return StaticCacheDecoder(model, max_batch_size, cuda_graphs)
    if hasattr(model, "generate") and hasattr(model, "config"):
        return HFDecoder(model)
    raise TypeError(f"no decoder for {type(model).__name__}: expected a transformers causal LM or a TransformerLM")
