"""Attention backends of the model by name: who computes ``softmax(Q Kᵀ / √d) V`` inside every block.

Built in: ``naive`` (:func:`cs336_basics.layers.scaled_dot_product_attention`, the handout's from-scratch
attention, materialising the scores) and ``sdpa`` (``F.scaled_dot_product_attention``: fused flash /
memory-efficient kernels; the default). Later packages add theirs with :func:`register_attention_backend`, so this
package never imports them (they build on it, not the reverse): ``cs336_systems`` registers its Triton
FlashAttention-2 as ``flash_triton`` when ``cs336_systems.flash_attention`` is imported.

A backend has two calls. ``causal`` attends a whole sequence causally (training, prompts without padding: queries
and keys are the same positions). ``masked`` takes an explicit boolean mask, or None for "attend to every key"
(KV-cache decoding, padded batches). A backend registered without a masked call uses SDPA's for those calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from cs336_basics.layers import scaled_dot_product_attention

CausalAttention = Callable[[Tensor, Tensor, Tensor], Tensor]
MaskedAttention = Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor]

PROVIDERS = {"flash_triton": "cs336_systems.flash_attention"}
"""Backends that other packages register, and the module whose import registers each."""


@dataclass(frozen=True)
class AttentionBackend:
    name: str
    causal: CausalAttention
    masked: MaskedAttention


def sdpa_causal(
    q: Float[Tensor, "... seq d"], k: Float[Tensor, "... seq d"], v: Float[Tensor, "... seq d"]
) -> Float[Tensor, "... seq d"]:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def sdpa_masked(
    q: Float[Tensor, "... queries d"],
    k: Float[Tensor, "... keys d"],
    v: Float[Tensor, "... keys d"],
    mask: Bool[Tensor, "... queries keys"] | None,
) -> Float[Tensor, "... queries d"]:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def naive_causal(
    q: Float[Tensor, "... seq d"], k: Float[Tensor, "... seq d"], v: Float[Tensor, "... seq d"]
) -> Float[Tensor, "... seq d"]:
    seq = q.shape[-2]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril()
    return scaled_dot_product_attention(q, k, v, causal)


_BACKENDS: dict[str, AttentionBackend] = {
    "naive": AttentionBackend("naive", naive_causal, scaled_dot_product_attention),
    "sdpa": AttentionBackend("sdpa", sdpa_causal, sdpa_masked),
}
_BUILT_IN = frozenset(_BACKENDS)


def attention_backend_names() -> tuple[str, ...]:
    """Every name a model may ask for: the built-in and registered backends and those of :data:`PROVIDERS`."""
    return tuple(sorted(set(_BACKENDS) | set(PROVIDERS)))


def register_attention_backend(
    name: str, causal: CausalAttention, masked: MaskedAttention | None = None
) -> AttentionBackend:
    """Make ``name`` available to models built afterwards (registering a name again replaces it).

    ``causal(q, k, v)`` takes ``(..., seq, d)`` queries, keys and values of the same positions; ``masked(q, k, v,
    mask)`` defaults to SDPA's. The built-in backends cannot be replaced."""
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is a built-in attention backend and cannot be replaced")
    if not name or not callable(causal) or (masked is not None and not callable(masked)):
        raise ValueError(f"need a name and callables to register an attention backend; got {name!r}")
    backend = AttentionBackend(name, causal, sdpa_masked if masked is None else masked)
    _BACKENDS[name] = backend
    return backend


def attention_backend(name: str) -> AttentionBackend:
    """The backend registered as ``name``; a clear error says what to import or which names exist."""
    if name in _BACKENDS:
        return _BACKENDS[name]
    if name in PROVIDERS:
        module = PROVIDERS[name]
        raise ValueError(
            f"attention backend {name!r} is not registered: install the package that provides it and "
            f"`import {module}` (its import registers {name!r}) before building the model"
        )
    raise ValueError(f"unknown attention backend {name!r}; choose one of {attention_backend_names()}")
