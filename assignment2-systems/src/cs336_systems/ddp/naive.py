"""The baseline: one blocking all-reduce per parameter, only after the whole backward pass."""

from __future__ import annotations

from cs336_systems.ddp.base import DataParallel
from cs336_systems.distributed_utils import all_reduce_mean_, trainable_parameters


class NaiveDDP(DataParallel):
    """Averages each gradient with its own all-reduce once backward is done (no overlap, many small calls)."""

    def finish_gradient_synchronization(self) -> None:
        all_reduce_mean_(p.grad for p in trainable_parameters(self.module) if p.grad is not None)
