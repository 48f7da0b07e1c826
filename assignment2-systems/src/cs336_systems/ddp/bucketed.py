"""Overlap plus batching: gradients are grouped into size-capped buckets, each all-reduced once it is complete."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from cs336_systems.ddp.base import DataParallel
from cs336_systems.distributed_utils import trainable_parameters
from cs336_systems.weak_hooks import weak_tensor_hook

MIB = 2**20


@dataclass
class Bucket:
    """Parameters whose gradients travel in one all-reduce; `ready` counts gradients accumulated this step."""

    params: list[nn.Parameter]
    ready: int = 0
    flat: torch.Tensor | None = None
    work: dist.Work | None = None
    grads_present: list[bool] = field(default_factory=list)

    def reset(self) -> None:
        self.ready, self.flat, self.work, self.grads_present = 0, None, None, []


def assign_buckets(params: list[nn.Parameter], bucket_size_mb: float | None) -> list[list[nn.Parameter]]:
    """Group `params` in reverse order (the order backward produces gradients) into buckets of at most
    `bucket_size_mb` MiB of parameter data; an oversized parameter gets a bucket of its own, `None` means one
    unbounded bucket. A bucket never mixes dtypes or devices, since it is flattened into one tensor."""
    if bucket_size_mb is not None and bucket_size_mb <= 0:
        raise ValueError(f"bucket_size_mb must be positive or None, got {bucket_size_mb}")
    capacity = float("inf") if bucket_size_mb is None else bucket_size_mb * MIB
    buckets: list[list[nn.Parameter]] = []
    used = 0.0
    for param in reversed(params):
        size = param.numel() * param.element_size()
        current = buckets[-1] if buckets else None
        fits = current is not None and used + size <= capacity
        same_kind = current is not None and (current[0].dtype, current[0].device) == (param.dtype, param.device)
        if fits and same_kind:
            current.append(param)
            used += size
        else:
            buckets.append([param])
            used = size
    return buckets


class BucketedDDP(DataParallel):
    """Launches an asynchronous all-reduce per bucket as soon as all of its gradients are accumulated.

    Buckets are launched strictly in index order (a ready bucket waits for earlier ones), so every rank issues
    the same sequence of collectives even if hooks fire in a slightly different order. Gradients are flattened
    into a fresh buffer per step and copied back at the end, because `zero_grad(set_to_none=True)` would
    otherwise orphan persistent views. Buckets with missing gradients (parameters unused this step) are sent
    in `finish_gradient_synchronization` with zeros in their place.
    """

    def __init__(self, module: nn.Module, bucket_size_mb: float | None):
        super().__init__(module)
        self.buckets = [Bucket(params) for params in assign_buckets(trainable_parameters(module), bucket_size_mb)]
        self._bucket_of = {param: index for index, bucket in enumerate(self.buckets) for param in bucket.params}
        self._next_to_launch = 0
        self._sync_enabled = True
        on_ready = weak_tensor_hook(self._on_grad_ready)
        self._hook_handles = [p.register_post_accumulate_grad_hook(on_ready) for p in self._bucket_of]

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate local gradients without communicating (micro-batches before the last one)."""
        self._sync_enabled = False
        try:
            yield
        finally:
            self._sync_enabled = True

    def _on_grad_ready(self, param: nn.Parameter) -> None:
        if not self._sync_enabled:
            return
        self.buckets[self._bucket_of[param]].ready += 1
        while self._next_to_launch < len(self.buckets):
            bucket = self.buckets[self._next_to_launch]
            if bucket.ready < len(bucket.params):
                break
            self._launch(bucket)

    def _launch(self, bucket: Bucket) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in bucket.params]
        bucket.grads_present = [p.grad is not None for p in bucket.params]
        bucket.flat = _flatten_dense_tensors(grads)
        bucket.work = dist.all_reduce(bucket.flat, op=dist.ReduceOp.SUM, async_op=True)
        self._next_to_launch += 1

    def start_train_batch(self) -> None:
        for bucket in self.buckets:
            bucket.reset()
        self._next_to_launch = 0

    def finish_gradient_synchronization(self) -> None:
        while self._next_to_launch < len(self.buckets):
            self._launch(self.buckets[self._next_to_launch])
        world_size = dist.get_world_size()
        for bucket in self.buckets:
            bucket.work.wait()
            bucket.flat.div_(world_size)
            for param, present, averaged in zip(
                bucket.params, bucket.grads_present, _unflatten_dense_tensors(bucket.flat, bucket.params)
            ):
                if present:
                    param.grad.copy_(averaged)
        self.start_train_batch()
