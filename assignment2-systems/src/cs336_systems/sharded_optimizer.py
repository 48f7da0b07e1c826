"""ZeRO stage 1: each rank keeps optimizer state only for the parameters it owns and broadcasts their updates."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.optim import Optimizer


class ShardedOptimizer(Optimizer):
    """Wraps any `optimizer_cls` so that its state is split across ranks.

    Every parameter gets an owner rank (largest parameters first, each to the least-loaded rank so far, ties to
    the lowest rank: every rank computes the same assignment). The local `optimizer_cls(**kwargs)` sees only the owned
    parameters; after its step each owner broadcasts its updated parameters, one flattened buffer per
    (owner, dtype, device). `param_groups` hold all parameters, so `zero_grad` and learning-rate schedules work
    as usual; hyper-parameters are copied into the local groups before each step.
    """

    def __init__(self, params, optimizer_cls: type[Optimizer], **kwargs: Any):
        if not dist.is_initialized():
            raise RuntimeError("ShardedOptimizer needs an initialised torch.distributed process group")
        self._optimizer_cls = optimizer_cls
        self._kwargs = kwargs
        self._rank, self._world_size = dist.get_rank(), dist.get_world_size()
        self._load = [0] * self._world_size
        self._owner: dict[torch.Tensor, int] = {}
        self._local_group_of: list[dict[str, Any] | None] = []  # per entry of param_groups
        self.local_optimizer: Optimizer | None = None
        super().__init__(params, defaults=kwargs)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for param in sorted(group["params"], key=lambda p: -p.numel()):  # largest first balances best
            owner = min(range(self._world_size), key=lambda rank: (self._load[rank], rank))
            self._load[owner] += param.numel()
            self._owner[param] = owner
        owned = [param for param in group["params"] if self._owner[param] == self._rank]
        if not owned:  # never build an optimizer on an empty list: this rank just skips the group
            self._local_group_of.append(None)
            return
        local_group = {**{k: v for k, v in group.items() if k != "params"}, "params": owned}
        if self.local_optimizer is None:
            self.local_optimizer = self._optimizer_cls([local_group], **self._kwargs)
        else:
            self.local_optimizer.add_param_group(local_group)
        self._local_group_of.append(self.local_optimizer.param_groups[-1])

    def owner_of(self, param: torch.Tensor) -> int:
        return self._owner[param]

    @torch.no_grad()
    def step(self, closure=None, **kwargs):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, local_group in zip(self.param_groups, self._local_group_of, strict=True):
            if local_group is not None:  # keep schedulers' edits to param_groups in effect
                local_group.update({k: v for k, v in group.items() if k != "params"})
        if self.local_optimizer is not None:
            self.local_optimizer.step(**kwargs)
        self._broadcast_updates()
        return loss

    def _broadcast_updates(self) -> None:
        buckets: dict[tuple[int, torch.dtype, torch.device], list[torch.Tensor]] = defaultdict(list)
        for group in self.param_groups:
            for param in group["params"]:
                buckets[(self._owner[param], param.dtype, param.device)].append(param.data)
        for (owner, _, _), tensors in buckets.items():  # same insertion order on every rank
            flat = _flatten_dense_tensors(tensors)
            dist.broadcast(flat, src=owner)
            if owner != self._rank:
                for tensor, updated in zip(tensors, _unflatten_dense_tensors(flat, tensors), strict=True):
                    tensor.copy_(updated)

    def local_state_dict(self) -> dict[str, Any]:
        """This rank's shard of the optimizer state (empty when it owns nothing)."""
        return self.local_optimizer.state_dict() if self.local_optimizer is not None else {}
