"""Fully-sharded data parallel: every Linear/Embedding weight lives as a flat fp32 shard per rank.

Lifecycle of one sharded weight in a training step:

1. forward pre-hook: all-gather the shards (cast to `compute_dtype` first, halving the traffic in bf16/fp16)
   and expose the full weight as `module.weight` for this call only; the registered Parameter stays the shard.
   The same hook starts the asynchronous gather of the next weight in the previous forward's order, so it
   overlaps this layer's compute;
2. while the module runs, a saved-tensor hook replaces any view of the gathered weight that autograd wants to
   keep for backward by a small "gather again" token, so the full weight is freed right after the forward;
3. backward: unpacking the token all-gathers the weight again (started early when the weight saved just
   before it in forward was unpacked, so the gather overlaps that layer's backward); the gradient of the full
   weight arrives in `_GatherWeight.backward`, which starts an fp32 reduce-scatter (SUM) into this rank's chunk;
4. `finish_gradient_synchronization` waits, divides by the world size and stores the shard's `.grad` (same
   shape and dtype as the shard). Other parameters (norm gains) are replicated and all-reduced like DDP.

Collectives run in the order the (identical) autograd graphs visit modules, which is the same on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from cs336_systems.distributed_utils import PendingReduceScatter, all_gather_flat, broadcast_module_state
from cs336_systems.weak_hooks import weak_tensor_hook


def sharded_module_types() -> tuple[type[nn.Module], ...]:
    """Module classes whose `weight` is sharded: ours from assignment 1 and torch's own."""
    types: list[type[nn.Module]] = [nn.Linear, nn.Embedding]
    try:
        from cs336_basics.model import Embedding, Linear
    except ImportError:  # the assignment-1 model is optional for plain torch modules
        return tuple(types)
    return (Linear, Embedding, *types)


@dataclass(eq=False)
class ShardedWeight:
    """One weight's flat fp32 shard on this rank (padded so all ranks hold `chunk` elements)."""

    shard: nn.Parameter
    shape: torch.Size
    numel: int
    pending: list[PendingReduceScatter] = field(default_factory=list)

    @property
    def chunk(self) -> int:
        return self.shard.numel()

    def gather_flat(self, dtype: torch.dtype) -> torch.Tensor:
        """All ranks' shards concatenated (padding included), in `dtype`."""
        return self.start_gather(dtype).wait()

    def start_gather(self, dtype: torch.dtype) -> PendingGather:
        send = self.shard.detach().to(dtype)
        out = torch.empty(self.chunk * dist.get_world_size(), dtype=dtype, device=send.device)
        return PendingGather(self, dtype, out, send, all_gather_flat(out, send, async_op=True))

    def gather(self, dtype: torch.dtype) -> torch.Tensor:
        return self.gather_flat(dtype)[: self.numel].view(self.shape)


@dataclass(eq=False)
class PendingGather:
    """An in-flight all-gather of one weight; `send` is kept alive until the collective has read it."""

    state: ShardedWeight
    dtype: torch.dtype
    out: torch.Tensor
    send: torch.Tensor
    work: dist.Work

    def wait(self) -> torch.Tensor:
        self.work.wait()
        return self.out


def shard_tensor(full: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous chunk of `full` flattened and zero-padded to a multiple of `world_size`."""
    chunk = -(-full.numel() // world_size)
    padded = full.new_zeros(chunk * world_size)
    padded[: full.numel()] = full.reshape(-1)
    return padded[rank * chunk : (rank + 1) * chunk].clone()


class _GatherWeight(torch.autograd.Function):
    """shard -> full weight; its backward reduce-scatters the full gradient (asynchronously, into fp32)."""

    @staticmethod
    def forward(ctx, shard: torch.Tensor, gathering: PendingGather) -> torch.Tensor:
        ctx.state = state = gathering.state
        return gathering.wait()[: state.numel].view(state.shape)

    @staticmethod
    def backward(ctx, grad_full: torch.Tensor):
        state: ShardedWeight = ctx.state
        padded = torch.zeros(state.chunk * dist.get_world_size(), dtype=torch.float32, device=grad_full.device)
        padded[: state.numel] = grad_full.reshape(-1)
        state.pending.append(PendingReduceScatter(padded))
        return None, None


class _ForwardRecord:
    """One root forward: the sharded weights in the order it used them, which of those calls saved their weight
    for backward, and the backward gathers started early (keyed by forward position)."""

    def __init__(self):
        self.order: list[ShardedWeight] = []
        self.saved: set[int] = set()
        self.consumed: set[int] = set()
        self.prefetched: dict[int, PendingGather] = {}

    def backward_gather(self, index: int, state: ShardedWeight, dtype: torch.dtype) -> torch.Tensor:
        """The weight of forward call `index` for backward; starts the gather of the weight that backward needs
        next (the nearest earlier call that saved its weight), so it overlaps this layer's backward. Every rank
        runs the same graph, so every rank starts the same gathers in the same order."""
        early = self.prefetched.pop(index, None)
        if early is not None and early.dtype != dtype:
            early.wait()
            early = None
        gathering = early or state.start_gather(dtype)
        self.consumed.add(index)
        earlier = [i for i in self.saved if i < index and i not in self.consumed and i not in self.prefetched]
        if earlier:
            nearest = max(earlier)
            self.prefetched[nearest] = self.order[nearest].start_gather(dtype)
        return gathering.wait()

    def drain(self) -> None:
        """Wait for prefetches backward never used (a saved weight it did not need)."""
        for unused in self.prefetched.values():
            unused.wait()
        self.prefetched.clear()


@dataclass(frozen=True)
class _Regather:
    """Stands in for a saved view of a gathered weight; rebuilt by gathering again in backward."""

    state: ShardedWeight
    dtype: torch.dtype
    size: torch.Size
    stride: tuple[int, ...]
    offset: int
    record: _ForwardRecord | None
    index: int


class _ActiveCall:
    """Bookkeeping for one in-progress forward of a sharded module (`index`: its position in `record`)."""

    def __init__(
        self, state: ShardedWeight, dtype: torch.dtype, full: torch.Tensor, record: _ForwardRecord | None, index: int
    ):
        self.state, self.dtype, self.record, self.index = state, dtype, record, index
        self.storage_ptr = full.untyped_storage().data_ptr()
        self.saved_hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)

    def pack(self, tensor: torch.Tensor):
        if tensor.untyped_storage().data_ptr() != self.storage_ptr:
            return tensor
        if self.record is not None:
            self.record.saved.add(self.index)
        size, stride, offset = tensor.size(), tensor.stride(), tensor.storage_offset()
        return _Regather(self.state, self.dtype, size, stride, offset, self.record, self.index)

    @staticmethod
    def unpack(saved):
        if not isinstance(saved, _Regather):
            return saved
        if saved.record is None:  # the module was called directly: no order to prefetch along
            flat = saved.state.gather_flat(saved.dtype)
        else:
            flat = saved.record.backward_gather(saved.index, saved.state, saved.dtype)
        return flat.as_strided(saved.size, saved.stride, saved.offset)


class FSDP(nn.Module):
    """Shards the `weight` of every Linear/Embedding inside `module` across ranks, in place and under its name.

    `parameters()` yields the fp32 shards and the replicated parameters, so any optimizer (the assignment-1
    AdamW included) updates only this rank's part. With `compute_dtype`, weights are cast before they are
    communicated and used, and floating inputs of sharded modules are cast to it; master weights and
    gradients stay fp32.
    """

    def __init__(self, module: nn.Module, compute_dtype: torch.dtype | None = None):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("FSDP needs an initialised torch.distributed process group")
        self.module = module
        self.compute_dtype = compute_dtype
        broadcast_module_state(module)
        rank, world_size = dist.get_rank(), dist.get_world_size()
        self._state_of: dict[nn.Module, ShardedWeight] = {}
        by_param: dict[nn.Parameter, ShardedWeight] = {}
        for submodule in module.modules():
            weight = getattr(submodule, "weight", None)
            if not isinstance(submodule, sharded_module_types()) or not isinstance(weight, nn.Parameter):
                continue
            if weight not in by_param:  # a tied weight is sharded once and shared
                shard = nn.Parameter(shard_tensor(weight.detach().float(), rank, world_size), weight.requires_grad)
                by_param[weight] = ShardedWeight(shard, weight.shape, weight.numel())
            state = by_param[weight]
            submodule._parameters["weight"] = state.shard
            self._state_of[submodule] = state
            submodule.register_forward_pre_hook(self._before_forward)
            submodule.register_forward_hook(self._after_forward, always_call=True)
        self.sharded_weights = list(dict.fromkeys(self._state_of.values()))
        sharded = {id(state.shard) for state in self.sharded_weights}
        self.replicated = [p for p in module.parameters() if p.requires_grad and id(p) not in sharded]
        self._pending_replicated: list[tuple[torch.Tensor, dist.Work]] = []
        for param in self.replicated:
            param.register_post_accumulate_grad_hook(weak_tensor_hook(self._reduce_replicated))
        self._active: dict[nn.Module, list[_ActiveCall]] = {}
        # forward prefetch: the order in which sharded weights were used by the previous forward, the record of
        # the current one, and gathers started early keyed by their position in that order
        self._forward_order: list[ShardedWeight] = []
        self._this_forward: _ForwardRecord | None = None
        self._prefetched: dict[int, PendingGather] = {}
        self._awaiting_backward: list[_ForwardRecord] = []  # forwards whose backward may have prefetched

    def forward(self, *inputs, **kwargs):
        record = self._this_forward = _ForwardRecord()
        try:
            return self.module(*inputs, **kwargs)
        finally:
            self._forward_order, self._this_forward = record.order, None
            if record.saved:
                self._awaiting_backward.append(record)
            for unused in self._prefetched.values():  # the forward took another path: drain, keep ranks in step
                unused.wait()
            self._prefetched.clear()

    def _gathering_for(self, state: ShardedWeight, dtype: torch.dtype) -> tuple[PendingGather, int]:
        """This call's gather (started early if the previous forward predicted it) and its forward position, and,
        inside a root forward, the start of the next weight's gather: it overlaps this layer's compute and begins
        only once the layer two before the next has finished, so at most two gathered weights are alive."""
        if self._this_forward is None:  # the module was called directly, not through this wrapper
            return state.start_gather(dtype), 0
        order = self._this_forward.order
        index = len(order)
        order.append(state)
        early = self._prefetched.pop(index, None)
        if early is not None and (early.state is not state or early.dtype != dtype):
            early.wait()
            early = None
        gathering = early or state.start_gather(dtype)
        if index + 1 < len(self._forward_order) and index + 1 not in self._prefetched:
            self._prefetched[index + 1] = self._forward_order[index + 1].start_gather(dtype)
        return gathering, index

    def _before_forward(self, submodule: nn.Module, args: tuple):
        state = self._state_of[submodule]
        dtype = self.compute_dtype or torch.float32
        gathering, index = self._gathering_for(state, dtype)
        full = _GatherWeight.apply(state.shard, gathering)
        call = _ActiveCall(state, dtype, full, self._this_forward, index)
        self._active.setdefault(submodule, []).append(call)
        submodule.__dict__["weight"] = full  # shadows the registered shard for this call only
        call.saved_hooks.__enter__()
        if self.compute_dtype is None:
            return None
        for name, param in submodule._parameters.items():  # e.g. a bias: replicated fp32, computed in half
            if name != "weight" and param is not None and param.is_floating_point():
                submodule.__dict__[name] = param.to(self.compute_dtype)
        return tuple(a.to(self.compute_dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    def _after_forward(self, submodule: nn.Module, args: tuple, output):
        call = self._active[submodule].pop()
        call.saved_hooks.__exit__(None, None, None)
        for name in submodule._parameters:
            submodule.__dict__.pop(name, None)
        return None

    def _reduce_replicated(self, param: torch.Tensor) -> None:
        self._pending_replicated.append((param, dist.all_reduce(param.grad, op=dist.ReduceOp.SUM, async_op=True)))

    def finish_gradient_synchronization(self) -> None:
        world_size = dist.get_world_size()
        for record in self._awaiting_backward:
            record.drain()
        self._awaiting_backward.clear()
        for param, work in self._pending_replicated:
            work.wait()
            param.grad.div_(world_size)
        self._pending_replicated.clear()
        for state in self.sharded_weights:
            if not state.pending:
                continue
            grad = sum(pending.wait() for pending in state.pending).div(world_size)
            state.pending.clear()
            if state.shard.grad is None:
                state.shard.grad = grad
            else:
                state.shard.grad.add_(grad)

    @torch.no_grad()
    def gather_full_params(self) -> dict[str, torch.Tensor]:
        """Every parameter under its original name as a full, unpadded fp32 tensor (sharded ones gathered)."""
        state_of_shard = {id(state.shard): state for state in self.sharded_weights}
        full: dict[str, torch.Tensor] = {}
        for name, param in self.module.named_parameters():
            state = state_of_shard.get(id(param))
            full[name] = state.gather(torch.float32).clone() if state is not None else param.detach().clone()
        return full
