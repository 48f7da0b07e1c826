"""Our Triton FlashAttention-2 as the ``flash_triton`` attention backend of ``cs336_basics``'s model.

Importing ``cs336_systems.flash_attention`` registers it (the package's ``__init__`` calls :func:`register`), so
``ModelConfig(attention="flash_triton")`` works in any process that has imported the package; the registry of
``cs336_basics.attention_backends`` is the only state involved.

The kernels compute causal attention without a mask, so the model's KV-cache and padding-mask calls (decoding,
padded batches) go to the registry's default masked path, SDPA: a model trained with this backend decodes and
serves padded batches unchanged.
"""

import torch
from cs336_basics.attention_backends import AttentionBackend, register_attention_backend
from jaxtyping import Float
from torch import Tensor

from cs336_systems.flash_attention.triton_function import FlashAttentionTriton

BACKEND_NAME = "flash_triton"


def causal_flash_attention(
    q: Float[Tensor, "... seq d"], k: Float[Tensor, "... seq d"], v: Float[Tensor, "... seq d"]
) -> Float[Tensor, "... seq d"]:
    """Causal FlashAttention-2 on Q, K, V of the same positions.

    An autograd Function is invisible to autocast, so under autocast the inputs are cast to its dtype here, as
    autocast does for ``F.scaled_dot_product_attention`` (float32 inputs would otherwise run the TF32 kernels)."""
    device_type = q.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    return FlashAttentionTriton.apply(q, k, v, True)


def register() -> AttentionBackend:
    """Make ``flash_triton`` available to models built from now on (idempotent)."""
    return register_attention_backend(BACKEND_NAME, causal_flash_attention)
