"""Activation (gradient) checkpointing per Transformer block, and a meter for what autograd saves.

A checkpointed block keeps only its input during the forward and reruns its forward at the start of its
backward (``torch.utils.checkpoint``, non-reentrant), trading one extra forward of that block for its
residuals. :func:`checkpoint_blocks` applies this to an existing ``cs336_basics`` model without changing its
module tree (parameter names and state dicts stay the same), so it composes with loading weights, FSDP
units and the benchmarks' hooks.
"""

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def _pass_through(x: Tensor, *args, **kwargs) -> Tensor:
    """Forward of a segment's later blocks: the segment's first block already ran them."""
    return x


def _run_segment(forwards: list[Callable], x: Tensor, *args, **kwargs) -> Tensor:
    for forward in forwards:
        x = forward(x, *args, **kwargs)
    return x


def _checkpointed(forwards: list[Callable], x: Tensor, *args, **kwargs) -> Tensor:
    """Run ``forwards`` in sequence under one checkpoint; without autograd (inference, KV-cache decoding)
    there is nothing to save, so they just run."""
    if not torch.is_grad_enabled():
        return _run_segment(forwards, x, *args, **kwargs)
    return checkpoint(_run_segment, forwards, x, *args, use_reentrant=False, **kwargs)


def checkpoint_sublayers(layers: nn.ModuleList, names: tuple[str, ...] = ("attn", "ffn")) -> None:
    """Recompute each block's sub-layers ``names`` (by default its attention and its feed-forward) in backward,
    each under its own checkpoint: the next smaller checkpoint than a block. A block then keeps each sub-layer's
    input (the normalised residual stream) and what runs outside them (the norms' inputs, the residual adds)
    instead of the sub-layers' residuals; the peak in backward is one sub-layer's recomputed residuals, not a whole
    block's."""
    for block in layers:
        for name in names:
            sublayer = getattr(block, name, None)
            if not isinstance(sublayer, nn.Module):
                raise ValueError(f"block {type(block).__name__} has no sub-layer module {name!r}")
            sublayer.forward = functools.partial(_checkpointed, [sublayer.forward])


def checkpoint_blocks(layers: nn.ModuleList, every: int = 1, segment: int = 1) -> list[int]:
    """Recompute blocks of ``layers`` (e.g. ``TransformerLM.layers``) in backward instead of keeping their
    activations; returns the indices of the blocks that start a checkpointed segment.

    The blocks are split into consecutive segments of ``segment`` blocks, and segments ``0, every,
    2·every, …`` are checkpointed: ``every=1`` checkpoints all of them, ``every=2`` every other one. A
    checkpointed segment keeps one input (``batch × seq × d_model``) instead of its blocks' residuals, and
    costs one more forward of its blocks in backward. Its first block runs the whole segment; the
    segment's other blocks pass their input through (so their own forward hooks see the identity)."""
    if every < 1 or segment < 1:
        raise ValueError(f"every and segment must be >= 1; got every={every}, segment={segment}")
    blocks = list(layers)
    starts = []
    for index, start in enumerate(range(0, len(blocks), segment)):
        if index % every:
            continue
        members = blocks[start : start + segment]
        forwards = [block.forward for block in members]
        members[0].forward = functools.partial(_checkpointed, forwards)
        for block in members[1:]:
            block.forward = _pass_through
        starts.append(start)
    return starts


def saved_activation_bytes(run: Callable[[], object]) -> int:
    """Bytes of distinct tensor storages autograd saves for backward while ``run()`` executes, parameters
    excluded (they are resident anyway): the memory that activation checkpointing trades for recompute.

    A parameter is often saved as a view (``x @ weight.T`` saves ``weight.T``), whose storage is the parameter's:
    views are traced to their base before the check. Autocast's low-precision copies of weights are new
    storages, held until backward, and are counted.

    The graph keeps a detached alias of each saved tensor (its storage stays alive, so addresses stay
    distinct). Keeping the tensor itself would close a cycle through C++ autograd for a tensor that its own
    ``grad_fn`` saves (``exp``'s output, say) that Python's collector cannot see: dropping ``run()``'s result
    without a backward would then leak the whole graph, parameters included."""
    storages: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        base = tensor if tensor._base is None else tensor._base
        if not isinstance(base, nn.Parameter):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())
