"""Overlap communication with backward: each gradient's all-reduce starts the moment it is accumulated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn

from cs336_systems.ddp.base import DataParallel
from cs336_systems.distributed_utils import trainable_parameters
from cs336_systems.weak_hooks import weak_tensor_hook


class OverlapDDP(DataParallel):
    """Per-parameter asynchronous all-reduce launched from `register_post_accumulate_grad_hook`.

    A tied weight is one Parameter, so it gets one hook, which autograd fires once per backward after both uses
    have accumulated. Frozen parameters get no hook and keep `grad=None`.
    """

    def __init__(self, module: nn.Module):
        super().__init__(module)
        self._pending: list[tuple[torch.Tensor, dist.Work]] = []
        self._sync_enabled = True
        launch = weak_tensor_hook(self._launch)
        self._hook_handles = [p.register_post_accumulate_grad_hook(launch) for p in trainable_parameters(module)]

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate local gradients without communicating (micro-batches before the last one)."""
        self._sync_enabled = False
        try:
            yield
        finally:
            self._sync_enabled = True

    def _launch(self, param: torch.Tensor) -> None:
        if not self._sync_enabled:
            return
        self._pending.append((param, dist.all_reduce(param.grad, op=dist.ReduceOp.SUM, async_op=True)))

    def finish_gradient_synchronization(self) -> None:
        world_size = dist.get_world_size()
        for param, work in self._pending:
            work.wait()
            param.grad.div_(world_size)
        self._pending.clear()
