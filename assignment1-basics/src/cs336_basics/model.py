"""The pre-norm Transformer language model of assignment 1: attention, block, LM and its KV cache, all built from
a :class:`~cs336_basics.model_config.ModelConfig`.

The attention core is a named backend (:mod:`cs336_basics.attention_backends`): by default
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU), which computes
exactly ``layers.scaled_dot_product_attention`` -- the from-scratch ``naive`` backend the adapters and tests use
as reference -- up to float rounding; ``tests/test_model.py`` checks the two against each other.
"""

from __future__ import annotations

import torch
from einops import rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from cs336_basics.attention_backends import attention_backend
from cs336_basics.layers import Embedding, FeedForward, Linear, RMSNorm, RotaryPositionalEmbedding, SwiGLU
from cs336_basics.model_config import ModelConfig


def matched_d_ff(swiglu_d_ff: int, ffn: str) -> int:
    """The ``d_ff`` giving ``ffn`` as many parameters as a SwiGLU of width ``swiglu_d_ff`` (3 vs 2 matrices)."""
    return swiglu_d_ff if ffn == "swiglu" else round(1.5 * swiglu_d_ff)


class KVCache:
    """Keys and values of every layer seen so far, each ``(batch, heads, cached_len, d_head)``.

    A forward pass with a cache appends the new tokens' keys/values layer by layer; the queries then attend to
    cache + new tokens causally. Positions continue from :attr:`length` unless given explicitly.
    """

    def __init__(self, num_layers: int):
        self.keys: list[Tensor | None] = [None] * num_layers
        self.values: list[Tensor | None] = [None] * num_layers

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[-2]

    def update(self, layer: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's keys/values for ``layer`` and return everything cached for it."""
        if self.keys[layer] is not None:
            keys = torch.cat((self.keys[layer], keys), dim=-2)
            values = torch.cat((self.values[layer], values), dim=-2)
        self.keys[layer], self.values[layer] = keys, values
        return keys, values

    def reorder(self, rows: Int[Tensor, " batch"]) -> None:
        """Keep only ``rows`` of the batch, in that order (drop finished sequences, beam reordering)."""
        self.keys = [None if k is None else k[rows] for k in self.keys]
        self.values = [None if v is None else v[rows] for v in self.values]


def attention_mask_for(
    num_queries: int,
    num_keys: int,
    key_is_real: Bool[Tensor, "batch keys"] | None,
    device: torch.device,
) -> Bool[Tensor, "batch 1 queries keys"] | None:
    """Boolean mask (True = attend) for queries that are the last ``num_queries`` of ``num_keys`` positions.

    Causal, minus padding keys. Every query may always attend to itself, so padding queries (which see no real
    key) get a finite, ignored output instead of NaN that would leak into later layers through ``0 · NaN``.
    Returns None when nothing is masked (single-token decoding without padding).
    """
    if key_is_real is None and num_queries == 1:
        return None
    past = num_keys - num_queries
    query_pos = torch.arange(past, num_keys, device=device)[:, None]
    key_pos = torch.arange(num_keys, device=device)[None, :]
    mask = key_pos <= query_pos
    if key_is_real is not None:
        mask = (mask & key_is_real[:, None, :]) | (key_pos == query_pos)
        return mask[:, None]
    return mask[None, None]


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention; head ``h`` owns rows ``h·d_k … (h+1)·d_k-1`` of each projection.

    Sized by ``cfg.d_model`` and ``cfg.num_heads``. With ``rope=None`` no positional rotation is applied (the
    handout's no-RoPE variant). With ``cfg.qk_norm`` queries and keys are RMS-normalised per head before RoPE, which
    bounds the attention logits. ``cfg.attention`` names the backend computing the attention core; calls with a KV
    cache or a padding mask take its masked path.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        rope: RotaryPositionalEmbedding | None = None,
        layer_index: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        d_model = cfg.d_model
        self.num_heads, self.layer_index = cfg.num_heads, layer_index
        self.q_proj = Linear(d_model, d_model, device, dtype)
        self.k_proj = Linear(d_model, d_model, device, dtype)
        self.v_proj = Linear(d_model, d_model, device, dtype)
        self.output_proj = Linear(d_model, d_model, device, dtype)
        self.rope = rope
        d_head = d_model // cfg.num_heads
        self.q_norm = RMSNorm(d_head, device=device, dtype=dtype) if cfg.qk_norm else None
        self.k_norm = RMSNorm(d_head, device=device, dtype=dtype) if cfg.qk_norm else None
        self.backend = attention_backend(cfg.attention)

    def forward(
        self,
        x: Float[Tensor, "batch seq d_model"],
        token_positions: Int[Tensor, "... seq"] | None = None,
        kv_cache: KVCache | None = None,
        attention_mask: Bool[Tensor, "batch keys"] | None = None,
    ) -> Float[Tensor, "batch seq d_model"]:
        seq = x.shape[-2]
        q, k, v = (
            rearrange(proj(x), "... s (h d) -> ... h s d", h=self.num_heads)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            if token_positions is None:
                past = 0 if kv_cache is None else kv_cache.length
                token_positions = torch.arange(past, past + seq, device=x.device)
            positions = token_positions.unsqueeze(-2)  # broadcast over the head axis
            q, k = self.rope(q, positions), self.rope(k, positions)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_index, k, v)
        if kv_cache is None and attention_mask is None:
            out = self.backend.causal(q, k, v)
        else:
            mask = attention_mask_for(seq, k.shape[-2], attention_mask, x.device)
            out = self.backend.masked(q, k, v, mask)
        return self.output_proj(rearrange(out, "... h s d -> ... s (h d)"))


def _norm_or_identity(cfg: ModelConfig, device=None, dtype=None) -> nn.Module:
    return nn.Identity() if cfg.norm == "none" else RMSNorm(cfg.d_model, device=device, dtype=dtype)


def _feed_forward(cfg: ModelConfig, device=None, dtype=None) -> nn.Module:
    if cfg.ffn == "swiglu":
        return SwiGLU(cfg.d_model, cfg.d_ff, device, dtype)
    return FeedForward(cfg.d_model, cfg.d_ff, cfg.ffn, device, dtype)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``h = x + attn(ln1(x))``, ``out = h + ffn(ln2(h))``.

    With ``cfg.norm`` it can also be post-norm (``h = ln1(x + attn(x))``, ``out = ln2(h + ffn(h))``, the original
    Transformer's placement) or norm-free.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        rope: RotaryPositionalEmbedding | None = None,
        layer_index: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.post_norm = cfg.norm == "post"
        self.ln1 = _norm_or_identity(cfg, device, dtype)
        self.attn = MultiHeadSelfAttention(cfg, rope, layer_index, device, dtype)
        self.ln2 = _norm_or_identity(cfg, device, dtype)
        self.ffn = _feed_forward(cfg, device, dtype)

    def forward(
        self,
        x: Float[Tensor, "batch seq d_model"],
        token_positions: Int[Tensor, "... seq"] | None = None,
        kv_cache: KVCache | None = None,
        attention_mask: Bool[Tensor, "batch keys"] | None = None,
    ) -> Float[Tensor, "batch seq d_model"]:
        if self.post_norm:
            x = self.ln1(x + self.attn(x, token_positions, kv_cache, attention_mask))
            return self.ln2(x + self.ffn(x))
        x = x + self.attn(self.ln1(x), token_positions, kv_cache, attention_mask)
        return x + self.ffn(self.ln2(x))


class TransformerLM(nn.Module):
    """Token embedding → ``num_layers`` pre-norm blocks → final RMSNorm → untied LM head (logits).

    Everything about the model is its :class:`ModelConfig` (defaults: the handout's TinyStories model; named shapes
    in :mod:`cs336_basics.model_sizes`). A post-norm or norm-free model has no final RMSNorm (the last block's
    output is already normalised, or nothing is).
    """

    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"TransformerLM is built from a ModelConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.token_embeddings = Embedding(cfg.vocab_size, cfg.d_model, device, dtype)
        # One RoPE table shared by all layers (a plain attribute of each block, registered once here).
        self.rope = (
            RotaryPositionalEmbedding(
                cfg.rope_theta, cfg.d_model // cfg.num_heads, cfg.context_length, device, cfg.position == "rope_half"
            )
            if cfg.position != "none"
            else None
        )
        self.layers = nn.ModuleList(TransformerBlock(cfg, self.rope, i, device, dtype) for i in range(cfg.num_layers))
        self.ln_final = RMSNorm(cfg.d_model, device=device, dtype=dtype) if cfg.norm == "pre" else nn.Identity()
        self.lm_head = Linear(cfg.d_model, cfg.vocab_size, device, dtype)
        if cfg.zero_init_output:
            for layer in self.layers:
                nn.init.zeros_(layer.attn.output_proj.weight)
                nn.init.zeros_(layer.ffn.w2.weight)

    def forward(
        self,
        in_indices: Int[Tensor, "batch seq"],
        token_positions: Int[Tensor, "batch seq"] | None = None,
        kv_cache: KVCache | None = None,
        attention_mask: Bool[Tensor, "batch keys"] | None = None,
    ) -> Float[Tensor, "batch seq vocab"]:
        """Logits for every position. ``attention_mask`` covers cache + new keys (True = real token)."""
        seq = in_indices.shape[-1]
        past = 0 if kv_cache is None else kv_cache.length
        if past + seq > self.config.context_length and token_positions is None:
            raise ValueError(f"{past + seq} positions exceed context_length={self.config.context_length}")
        if token_positions is None:
            token_positions = torch.arange(past, past + seq, device=in_indices.device)
        x = self.token_embeddings(in_indices)
        for layer in self.layers:
            x = layer(x, token_positions, kv_cache, attention_mask)
        logits = self.lm_head(self.ln_final(x))
        if self.config.logit_softcap:
            cap = self.config.logit_softcap
            logits = cap * torch.tanh(logits / cap)
        return logits
