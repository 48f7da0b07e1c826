"""What every data-parallel wrapper shares: hold the module, start all ranks from rank 0's weights, delegate."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import nn

from cs336_systems.distributed_utils import broadcast_module_state


class DataParallel(nn.Module, ABC):
    """Wraps `module` (kept as `self.module`, so `parameters()` are exactly the module's) for data parallelism.

    Usage per step: `loss = f(ddp(x)); loss.backward(); ddp.finish_gradient_synchronization(); opt.step()`.
    After `finish_gradient_synchronization` every trainable parameter's `.grad` is the average over ranks.
    All ranks must run the same model code, so the same parameters receive gradients on every rank.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        broadcast_module_state(module)

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)

    def start_train_batch(self) -> None:
        """Hook for per-step bookkeeping before `zero_grad`; wrappers without per-step state ignore it."""

    @abstractmethod
    def finish_gradient_synchronization(self) -> None:
        """Block until every gradient holds its average over ranks."""
