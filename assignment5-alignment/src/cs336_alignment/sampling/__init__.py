"""Generation backends behind one ``Sampler`` protocol: our KV-cache sampler and vLLM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cs336_alignment.sampling.kv_cache_sampler import KVCacheSampler
from cs336_alignment.sampling.params import Completion, Sampler, SamplingParams
from cs336_alignment.sampling.vllm_sampler import VLLMSampler, vllm_available

__all__ = [
    "Completion",
    "KVCacheOptions",
    "KVCacheSampler",
    "Sampler",
    "SamplingParams",
    "VLLMSampler",
    "make_sampler",
]


@dataclass(frozen=True)
class KVCacheOptions:
    """Settings of our sampler: the most sequences decoded at once, the decoder of Llama-family models, and the
    dtype of the policy copy it samples from (None: the policy itself, read in place)."""

    max_batch_size: int = 64
    static_cache: bool = True
    cuda_graphs: bool = True
    dtype: torch.dtype | None = None


def make_sampler(
    backend: str,
    policy: torch.nn.Module,
    tokenizer: Any,
    model_id: str | None = None,
    options: KVCacheOptions = KVCacheOptions(),
    **vllm_kwargs: Any,
) -> Sampler:
    """``"kv_cache"``, ``"vllm"``, or ``"auto"`` (vLLM when installed with a GPU and a checkpoint id, else ours)."""
    if backend == "auto":
        backend = "vllm" if vllm_available() and model_id else "kv_cache"
    if backend == "kv_cache":
        return KVCacheSampler(
            policy,
            tokenizer,
            max_batch_size=options.max_batch_size,
            static_cache=options.static_cache,
            cuda_graphs=options.cuda_graphs,
            dtype=options.dtype,
        )
    if backend == "vllm":
        if model_id is None:
            raise ValueError("the vllm backend needs a checkpoint path or hub id (model_id)")
        return VLLMSampler(model_id, **vllm_kwargs)
    raise ValueError(f"unknown sampler backend {backend!r}; expected auto, kv_cache or vllm")
