"""Label the CUDA allocations of a recorded step with the phase and Transformer block that made them.

The caching allocator stamps every trace event with its thread's current memory metadata
(``torch.cuda.memory._set_memory_metadata``), which memory_viz shows and :mod:`memory_timeline` reads. The forward
runs on the calling thread, so hooks around each block set ``block i forward`` and then ``forward`` again. The
backward runs on autograd's device thread, where the metadata of the calling thread does not reach, so the labels
there are set by tensor hooks, which run on that thread: the loss's hook (``backward``) when the backward starts,
each block output's hook (``block i backward``) when the gradient reaching that block is complete, and block 0's
input's hook (``backward``) when block 0 is done. A block's input is the previous block's output, whose own hook
already marks that boundary, so only block 0's input gets one.
"""

from collections.abc import Callable

import torch
from cs336_basics.model import TransformerLM
from torch import Tensor
from torch.utils.hooks import RemovableHandle


def set_memory_label(label: str) -> None:
    """Stamp ``label`` on the allocator events of the calling thread from now on."""
    setter = getattr(torch.cuda.memory, "_set_memory_metadata", None) or getattr(
        torch._C, "_cuda_setMemoryMetadata", None
    )
    if setter is None:
        raise RuntimeError(f"torch {torch.__version__} cannot label allocations (no torch.cuda.memory metadata)")
    setter(label)


def _relabel(label: str) -> Callable[[Tensor], None]:
    def hook(grad: Tensor) -> None:  # returns None: the gradient passes unchanged
        set_memory_label(label)

    return hook


def label_backward_start(loss: Tensor) -> None:
    """Label the backward's allocations ``backward`` from its first node on."""
    if loss.requires_grad:
        loss.register_hook(_relabel("backward"))


def label_block_allocations(model: TransformerLM) -> list[RemovableHandle]:
    """Hooks that label each block's forward and backward allocations; remove them with the returned handles."""
    handles = []
    for index, block in enumerate(model.layers):

        def before(module, args, index=index) -> None:
            set_memory_label(f"block {index} forward")
            if index == 0 and isinstance(args[0], Tensor) and args[0].requires_grad:
                args[0].register_hook(_relabel("backward"))

        def after(module, args, output, index=index) -> None:
            set_memory_label("forward")
            if isinstance(output, Tensor) and output.requires_grad:
                output.register_hook(_relabel(f"block {index} backward"))

        handles.append(block.register_forward_pre_hook(before))
        handles.append(block.register_forward_hook(after))
    return handles
