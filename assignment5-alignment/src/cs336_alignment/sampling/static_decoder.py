"""Decoding Llama-family Hugging Face models (SmolLM2, Qwen2.5) from a preallocated KV cache, replayed as CUDA
graphs on a GPU.

Why: a decode step of a 135M-parameter model is ~600 small kernels, so decoding with ``transformers``' growing
``DynamicCache`` is bound by kernel launches and Python overhead (~30 ms per step on an H100 at any batch size),
not by the GPU. With every buffer preallocated, a step reads and writes fixed addresses: it is captured once as
a CUDA graph and then replayed with one launch. The model's own modules (norms, projections, MLP, embedding,
head) do the arithmetic; only attention is ours, reading the static cache.

Layout: row ``r`` of the cache holds one sample; prompts are left-padded to width ``W`` and occupy positions
``[0, W)``; decode step ``t`` writes position ``W + t`` of every row (one shared write index) with each row's
own RoPE position (its count of real tokens). A boolean ``valid`` mask marks real prompt tokens and written
steps. Rows that finish leave the batch: live rows keep their slots, and once they fit a smaller batch bucket
(powers of two) they are moved to the front and that bucket's graph is used. Attention reads the cache only up
to the next multiple of ``length_block`` positions, one graph per (batch bucket, length bucket).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

SUPPORTED_MODEL_TYPES = ("llama", "qwen2")
STATIC_ROPE_TYPES = ("default", "linear", "llama3", "yarn")  # inverse frequencies that do not depend on length
MIN_BUCKET = 8


def supports_static_cache(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a Llama-family causal LM this decoder reproduces exactly (no sliding window, RoPE
    frequencies fixed)."""
    config = getattr(model, "config", None)
    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    return (
        config is not None
        and getattr(config, "model_type", None) in SUPPORTED_MODEL_TYPES
        and not getattr(config, "use_sliding_window", False)
        and rotary is not None
        and getattr(rotary, "rope_type", "default") in STATIC_ROPE_TYPES
    )


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@dataclass
class _Buffers:
    """Everything a decode step reads or writes, at fixed addresses."""

    keys: list[Tensor]  # per layer (batch, kv_heads, length, head_dim)
    values: list[Tensor]
    tokens: Tensor  # (batch,) the token each row feeds next
    positions: Tensor  # (batch,) its RoPE position
    write_at: Tensor  # (1,) cache position this step writes
    valid: Tensor  # (batch, length) keys a row may attend to
    logits: Tensor  # (batch, vocab) float32 output

    @property
    def batch(self) -> int:
        return self.tokens.shape[0]

    @property
    def length(self) -> int:
        return self.valid.shape[1]


class StaticCacheDecoder:
    """The ``Decoder`` of ``decoders.py`` for Llama-family HF models, with a static cache and, on CUDA, graphs.

    One instance serves many ``generate`` calls: buffers grow when a call needs more rows or positions (dropping
    the captured graphs), and graphs read the model's parameters in place, so optimiser steps between calls are
    seen without recapture. A module swapped for another needs a new decoder.
    """

    def __init__(self, model: torch.nn.Module, max_batch_size: int, cuda_graphs: bool = True, length_block: int = 256):
        if not supports_static_cache(model):
            raise TypeError(f"{type(model).__name__} is not a Llama-family model the static-cache decoder supports")
        self.model = model
        config = model.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scaling = self.head_dim**-0.5
        self.max_batch_size = max_batch_size
        self.length_block = length_block
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._buffers: _Buffers | None = None
        self._graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self._pool = None
        self._slots: Tensor | None = None  # live row -> cache row
        self._bucket = 0
        self._write = 0  # host copy of write_at

    # ---- the arithmetic (shared by prefill and decode) -------------------------------------------------------
    def _rope(self, positions: Int[Tensor, "batch seq"]) -> tuple[Tensor, Tensor]:
        """cos/sin tables ``(batch, 1, seq, head_dim)`` computed as ``transformers``' rotary embedding does."""
        rotary = self.model.model.rotary_emb
        freqs = positions[..., None].float() * rotary.inv_freq.float()
        emb = torch.cat((freqs, freqs), dim=-1)
        scale = getattr(rotary, "attention_scaling", 1.0)
        return (emb.cos() * scale).to(self.dtype)[:, None], (emb.sin() * scale).to(self.dtype)[:, None]

    def _project(self, layer, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Normed input -> (q, k, v) as ``(batch, heads, seq, head_dim)``, RoPE applied to q and k."""
        batch, seq, _ = x.shape
        attn = layer.self_attn
        h = layer.input_layernorm(x)
        q = attn.q_proj(h).view(batch, seq, self.heads, self.head_dim).transpose(1, 2)
        k = attn.k_proj(h).view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        v = attn.v_proj(h).view(batch, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        return q, k, v

    def _finish(self, layer, x: Tensor, attended: Float[Tensor, "batch heads seq head_dim"]) -> Tensor:
        batch, _, seq, _ = attended.shape
        x = x + layer.self_attn.o_proj(attended.transpose(1, 2).reshape(batch, seq, self.heads * self.head_dim))
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def _logits(self, x: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch vocab"]:
        return self.model.lm_head(self.model.model.norm(x)).float()

    # ---- buffers ---------------------------------------------------------------------------------------------
    def _ensure_buffers(self, rows: int, length: int) -> _Buffers:
        need_batch = max(MIN_BUCKET, 1 << (max(rows, self.max_batch_size) - 1).bit_length())
        need_length = -(-length // self.length_block) * self.length_block
        current = self._buffers
        if current is not None and current.batch >= need_batch and current.length >= need_length:
            return current
        self._buffers, self._graphs, self._pool = None, {}, None  # free the old ones before allocating
        batch = max(need_batch, current.batch if current else 0)
        length = max(need_length, current.length if current else 0)
        shape = (batch, self.kv_heads, length, self.head_dim)
        layers = len(self.model.model.layers)
        kw = {"device": self.device}
        # zeros, not empty: unwritten positions are masked, but masked NaN garbage would still poison 0 * NaN
        self._buffers = _Buffers(
            keys=[torch.zeros(shape, dtype=self.dtype, **kw) for _ in range(layers)],
            values=[torch.zeros(shape, dtype=self.dtype, **kw) for _ in range(layers)],
            tokens=torch.zeros(batch, dtype=torch.long, **kw),
            positions=torch.zeros(batch, dtype=torch.long, **kw),
            write_at=torch.zeros(1, dtype=torch.long, **kw),
            valid=torch.zeros(batch, length, dtype=torch.bool, **kw),
            logits=torch.zeros(batch, self.model.config.vocab_size, dtype=torch.float32, **kw),
        )
        return self._buffers

    def _bucket_for(self, rows: int) -> int:
        return max(MIN_BUCKET, 1 << (rows - 1).bit_length())

    # ---- the Decoder protocol --------------------------------------------------------------------------------
    @torch.inference_mode()
    def prefill(
        self,
        input_ids: Int[Tensor, "prompts width"],
        attention_mask: Bool[Tensor, "prompts width"],
        repeats: int,
        max_new_tokens: int,
    ) -> Float[Tensor, "rows vocab"]:
        """Run the left-padded prompts once, fill ``repeats`` cache rows per prompt; logits of the next token."""
        prompts, width = input_ids.shape
        rows = prompts * repeats
        buf = self._ensure_buffers(rows, width + max_new_tokens)
        mask = attention_mask.bool()
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        cos, sin = self._rope(positions)
        query = torch.arange(width, device=self.device)
        attend = (query[None, :] <= query[:, None]) & mask[:, None, :]
        attend = (attend | torch.eye(width, dtype=torch.bool, device=self.device))[:, None]  # pads see themselves
        groups = self.heads // self.kv_heads
        x = self.model.model.embed_tokens(input_ids)
        for i, layer in enumerate(self.model.model.layers):
            q, k, v = self._project(layer, x, cos, sin)
            buf.keys[i][:rows, :, :width] = k.repeat_interleave(repeats, dim=0)
            buf.values[i][:rows, :, :width] = v.repeat_interleave(repeats, dim=0)
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, scale=self.scaling)
            x = self._finish(layer, x, attended)
        buf.valid[:rows] = False
        buf.valid[:rows, :width] = mask.repeat_interleave(repeats, dim=0)
        buf.positions[:rows] = mask.sum(-1).repeat_interleave(repeats)
        buf.write_at.fill_(width)
        self._write = width
        self._slots = torch.arange(rows, device=self.device)
        self._bucket = self._bucket_for(rows)
        return self._logits(x[:, -1]).repeat_interleave(repeats, dim=0)

    def _decode(self, batch: int, length: int) -> None:
        """One step for cache rows ``[0, batch)`` attending to positions ``[0, length)``; only fixed buffers are
        read and written (graph-capturable: no host synchronisation, no data-dependent shapes)."""
        buf = self._buffers
        buf.valid[:batch].index_fill_(1, buf.write_at, True)
        cos, sin = self._rope(buf.positions[:batch, None])
        valid = buf.valid[:batch, None, None, :length]
        groups = self.heads // self.kv_heads
        x = self.model.model.embed_tokens(buf.tokens[:batch, None])
        for i, layer in enumerate(self.model.model.layers):
            q, k, v = self._project(layer, x, cos, sin)
            buf.keys[i][:batch].index_copy_(2, buf.write_at, k)
            buf.values[i][:batch].index_copy_(2, buf.write_at, v)
            # grouped-query attention without copying the cache: a KV head's query heads act as its queries
            q = q.reshape(batch, self.kv_heads, groups, self.head_dim)
            attended = F.scaled_dot_product_attention(
                q,
                buf.keys[i][:batch, :, :length],
                buf.values[i][:batch, :, :length],
                attn_mask=valid,
                scale=self.scaling,
            )
            x = self._finish(layer, x, attended.reshape(batch, self.heads, 1, self.head_dim))
        buf.logits[:batch] = self._logits(x[:, -1])

    def _run(self, batch: int, length: int) -> None:
        if not self.use_graphs:
            self._decode(batch, length)
            return
        graph = self._graphs.get((batch, length))
        if graph is None:
            # warm-up on a side stream (the step is idempotent: it rewrites the same cache entries), then capture
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                self._decode(batch, length)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                self._decode(batch, length)
            self._pool = graph.pool()
            self._graphs[(batch, length)] = graph
        graph.replay()

    @torch.inference_mode()
    def step(self, tokens: Int[Tensor, " live"]) -> Float[Tensor, "live vocab"]:
        buf = self._buffers
        buf.tokens.index_copy_(0, self._slots, tokens)
        length = min(buf.length, -(-(self._write + 1) // self.length_block) * self.length_block)
        self._run(self._bucket, length)
        buf.positions[: self._bucket] += 1
        buf.write_at += 1
        self._write += 1
        return buf.logits.index_select(0, self._slots)

    @torch.inference_mode()
    def select(self, rows: Int[Tensor, " kept"]) -> None:
        """Keep live rows ``rows`` (indices into the live rows, in order); compact them into a smaller bucket
        once they fit one."""
        self._slots = self._slots[rows]
        bucket = self._bucket_for(len(self._slots))
        if bucket >= self._bucket:
            return
        buf, order, live = self._buffers, self._slots, len(self._slots)
        upto = min(buf.length, self._write + 1)
        for cache in (*buf.keys, *buf.values):
            cache[:live, :, :upto] = cache[:, :, :upto].index_select(0, order)
        for state in (buf.tokens, buf.positions, buf.valid):
            state[:live] = state.index_select(0, order)
        self._slots = torch.arange(live, device=self.device)
        self._bucket = bucket
