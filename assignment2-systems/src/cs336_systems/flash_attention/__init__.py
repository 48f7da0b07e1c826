"""FlashAttention-2: a tiled PyTorch autograd Function and a Triton one, plus the naive reference."""

from cs336_systems.flash_attention.pytorch_tiled import FlashAttentionPytorch
from cs336_systems.flash_attention.reference import naive_attention, naive_attention_with_logsumexp
from cs336_systems.flash_attention.triton_function import FlashAttentionTriton

__all__ = ["FlashAttentionPytorch", "FlashAttentionTriton", "naive_attention", "naive_attention_with_logsumexp"]
