"""What a process sends: a record of every `torch.distributed` collective and point-to-point call, and the bytes a
ring algorithm moves for each.

Notebook 07 compares the communication of data, tensor, pipeline and fully-sharded parallelism. The ranks run the
project's own wrappers (`cs336_systems`) and the notebook's tensor/pipeline code unchanged; while a
`CommunicationLog` is recording, the `torch.distributed` functions they call are wrapped so that each call is
written down (which op, the size of the tensor it is about, what the rank was doing) before it runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

# The argument each op's cost is measured on: the reduced or sent tensor, the gathered output, the scattered input.
PAYLOAD_ARGUMENT = {
    "all_reduce": "tensor",
    "broadcast": "tensor",
    "send": "tensor",
    "recv": "tensor",
    "isend": "tensor",
    "irecv": "tensor",
    "all_gather": "tensor_list",
    "all_gather_into_tensor": "output_tensor",
    "reduce_scatter_tensor": "input",
}


@dataclass(frozen=True)
class Message:
    """One call: `op` is the `torch.distributed` function, `payload_bytes` the size of the tensor it is about
    (the whole gathered or scattered tensor for all-gather and reduce-scatter), `phase` the caller's label."""

    op: str
    payload_bytes: int
    phase: str


def ring_bytes_sent(op: str, payload_bytes: int, world_size: int) -> float:
    """Bytes each rank sends for one call with a bandwidth-optimal (ring) algorithm.

    All-gather and reduce-scatter pass `(p-1)/p` of the full tensor through every rank; an all-reduce is one of
    each, `2(p-1)/p`; a pipelined broadcast forwards each chunk once, `(p-1)/p`. A send moves its tensor once;
    a receive sends nothing.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    share = (world_size - 1) / world_size
    factors = {
        "all_reduce": 2 * share,
        "all_gather": share,
        "all_gather_into_tensor": share,
        "reduce_scatter_tensor": share,
        "broadcast": share,
        "send": 1.0,
        "isend": 1.0,
        "recv": 0.0,
        "irecv": 0.0,
    }
    if op not in factors:
        raise ValueError(f"unknown op {op!r}; expected one of {sorted(factors)}")
    return factors[op] * payload_bytes


def _payload_bytes(value: torch.Tensor | list[torch.Tensor]) -> int:
    tensors = value if isinstance(value, list | tuple) else [value]
    return sum(t.numel() * t.element_size() for t in tensors)


class CommunicationLog:
    """Messages this process sent or received while recording, in call order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._phase: str | None = None
        self._inside_call = False

    @contextmanager
    def recording(self, phase: str) -> Iterator[None]:
        """Record every call made through `torch.distributed` inside the block, labelled `phase`."""
        if self._phase is not None:
            raise RuntimeError(f"already recording phase {self._phase!r}; recordings do not nest")
        originals = {name: getattr(dist, name) for name in PAYLOAD_ARGUMENT}
        self._phase = phase
        for name, original in originals.items():
            setattr(dist, name, self._wrap(name, original))
        try:
            yield
        finally:
            for name, original in originals.items():
                setattr(dist, name, original)
            self._phase = None

    def _wrap(self, name: str, original: Callable) -> Callable:
        signature = inspect.signature(original)

        @functools.wraps(original)
        def recorded(*args, **kwargs):
            if self._inside_call:  # an op built from another: count the outer call only
                return original(*args, **kwargs)
            payload = signature.bind(*args, **kwargs).arguments[PAYLOAD_ARGUMENT[name]]
            self.messages.append(Message(name, _payload_bytes(payload), self._phase))
            self._inside_call = True
            try:
                return original(*args, **kwargs)
            finally:
                self._inside_call = False

        return recorded

    def bytes_sent(self, world_size: int, phase: str | None = None) -> float:
        """Ring-algorithm bytes this rank sent, over all messages or those of one phase."""
        return sum(
            ring_bytes_sent(m.op, m.payload_bytes, world_size)
            for m in self.messages
            if phase is None or m.phase == phase
        )
