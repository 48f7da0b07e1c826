"""FlashAttention-2: a tiled PyTorch autograd Function and a Triton one, plus the naive reference.

Importing this package registers the Triton one as the model's ``flash_triton`` attention backend
(:mod:`cs336_systems.flash_attention.model_backend`).
"""

from cs336_systems.flash_attention import model_backend
from cs336_systems.flash_attention.pytorch_tiled import FlashAttentionPytorch
from cs336_systems.flash_attention.reference import naive_attention, naive_attention_with_logsumexp
from cs336_systems.flash_attention.triton_function import FlashAttentionTriton

__all__ = ["FlashAttentionPytorch", "FlashAttentionTriton", "naive_attention", "naive_attention_with_logsumexp"]

model_backend.register()
