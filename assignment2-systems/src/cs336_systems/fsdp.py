"""Fully-sharded data parallel: every Linear/Embedding weight lives as a flat fp32 shard per rank, and the weights
are communicated a *unit* at a time (the design of PyTorch's `fully_shard`).

Units: by default every element of an `nn.ModuleList` (a Transformer block) is one unit and all other sharded
weights (embedding, lm_head) form the root unit; a weight shared by several units belongs to the root unit. A unit
costs one all-gather when forward first needs it, one when backward first needs it (not the root unit, see 3.), and
one reduce-scatter of its gradients, instead of one collective per weight per phase.

Lifecycle of a unit in a training step:

1. forward: the first call of a module whose weight is in the unit all-gathers the whole unit (its shards
   concatenated and cast to `compute_dtype` first, so bf16/fp16 halves the traffic; the rank-major result is
   copied out into one contiguous full weight per weight) and starts the gather of the unit that came next in the
   previous forward, so it overlaps this unit's compute. Each call exposes its full weight as `module.weight` for
   that call only; the registered Parameter stays the shard. The gathered unit is dropped when the unit's module
   returns (the root unit when the wrapper's forward returns);
2. while a sharded module runs, a saved-tensor hook replaces any view of the gathered unit that autograd wants to
   keep for backward by a small "gather again" token, so the full weights are freed right after the forward; only
   the root unit's gather is kept for backward (as `fully_shard` leaves its root unsharded after forward): it holds
   lm_head, the first weight backward needs, and only the loss lies in between to hide a regather behind. The next
   forward releases it if this graph's backward never ran;
3. backward: the first token of a unit to be unpacked all-gathers the unit again (the root unit: takes the kept
   gather), and all of the unit's tokens are served from that one gather (released once the last of them is
   unpacked); it also starts the gather of the unit backward needs next (the one used just before in forward), so
   that gather overlaps this unit's backward;
4. each use of a weight in forward adds one expected gradient to its unit; `_GatherWeight.backward` accumulates the
   full-weight gradient (fp32) into the unit's rank-major gradient buffer, and the last expected gradient starts
   one fp32 reduce-scatter (SUM) for the unit;
5. `finish_gradient_synchronization` starts the reduce-scatter of units whose gradients are incomplete (a use whose
   output never reached the loss), waits, divides by the world size and stores or accumulates each shard's `.grad`
   (same shape and dtype as the shard). Other parameters (norm gains, biases) are replicated and all-reduced.

Every rank runs the same autograd graph, so every rank issues the same collectives in the same order: gathers in the
order modules run, reduce-scatters in the order backward completes units, flushes in the fixed unit order.

`trace_gathers(GatherTimeline)` marks when each gather was issued, needed, ready and copied out
(`cs336_systems.gather_timeline`): whether the prefetches finish in time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate

import torch
import torch.distributed as dist
from torch import nn

from cs336_systems.distributed_utils import PendingReduceScatter, all_gather_flat, broadcast_module_state
from cs336_systems.gather_timeline import GatherSpan, GatherTimeline
from cs336_systems.weak_hooks import weak_tensor_hook


def sharded_module_types() -> tuple[type[nn.Module], ...]:
    """Module classes whose `weight` is sharded: ours from assignment 1 and torch's own."""
    types: list[type[nn.Module]] = [nn.Linear, nn.Embedding]
    try:
        from cs336_basics.model import Embedding, Linear
    except ImportError:  # the assignment-1 model is optional for plain torch modules
        return tuple(types)
    return (Linear, Embedding, *types)


def shard_tensor(full: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous chunk of `full` flattened and zero-padded to a multiple of `world_size`."""
    chunk = -(-full.numel() // world_size)
    padded = full.new_zeros(chunk * world_size)
    padded[: full.numel()] = full.reshape(-1)
    return padded[rank * chunk : (rank + 1) * chunk].clone()


@dataclass(eq=False)
class ShardedWeight:
    """One weight's flat fp32 shard on this rank (padded so all ranks hold `chunk` elements); `offset` is where
    its chunk starts in its unit's per-rank concatenation of chunks."""

    shard: nn.Parameter
    shape: torch.Size
    numel: int
    unit: ShardedUnit = field(init=False)
    offset: int = field(init=False)

    @property
    def chunk(self) -> int:
        return self.shard.numel()

    def full_view(self, gathered: torch.Tensor) -> torch.Tensor:
        """This weight inside its unit's gathered buffer, where each weight's padded full tensor is contiguous."""
        start = self.offset * self.unit.world_size
        return gathered[start : start + self.numel].view(self.shape)


class ShardedUnit:
    """Weights gathered and reduce-scattered together: one collective for all of them instead of one each.

    The all-gather sends this rank's chunks concatenated; the result is rank-major (rank r's chunks, then rank
    r+1's), so it is copied out into a weight-major buffer where each padded full weight is contiguous. Gradients
    are accumulated straight into the rank-major layout that reduce-scatter expects.
    """

    def __init__(self, weights: list[ShardedWeight], index: int):
        self.weights = weights
        self.index = index  # position in `FSDP.units`, the root unit first
        self.timeline: GatherTimeline | None = None
        self.chunks = [weight.chunk for weight in weights]
        for weight, offset in zip(weights, accumulate(self.chunks, initial=0)):
            weight.unit, weight.offset = self, offset
        self.chunk = sum(self.chunks)
        self.world_size = dist.get_world_size()
        self.uses_awaiting_grad = 0
        self._grads: torch.Tensor | None = None  # (world_size, chunk), fp32
        self._weights_with_grad: dict[ShardedWeight, None] = {}  # insertion-ordered set
        self._pending: list[tuple[PendingReduceScatter, list[ShardedWeight]]] = []

    def start_gather(self, dtype: torch.dtype, phase: str | None = None) -> PendingUnitGather:
        """All-gather the unit in `dtype`; `phase` ("forward", "backward") puts it on the timeline if one records."""
        span = self.timeline.issue(self.index, phase) if self.timeline is not None and phase else None
        send = torch.empty(self.chunk, dtype=dtype, device=self.weights[0].shard.device)
        torch.cat([weight.shard.detach() for weight in self.weights], out=send)
        out = send.new_empty(self.chunk * self.world_size)
        return PendingUnitGather(self, dtype, out, send, all_gather_flat(out, send, async_op=True), span)

    def add_grad(self, weight: ShardedWeight, grad_full: torch.Tensor) -> None:
        """Accumulate one use's full-weight gradient; the unit's last expected gradient starts its reduce-scatter."""
        if self._grads is None:
            self._grads = torch.zeros(self.world_size, self.chunk, dtype=torch.float32, device=grad_full.device)
        rank_major = self._grads[:, weight.offset : weight.offset + weight.chunk]
        _write_rank_major(rank_major, grad_full, accumulate=weight in self._weights_with_grad)
        self._weights_with_grad[weight] = None
        self.uses_awaiting_grad -= 1
        if self.uses_awaiting_grad == 0:
            self.start_reduce_scatter()

    def flush_grads(self) -> None:
        """Reduce-scatter what backward produced although some expected gradients never came (a use whose output
        did not reach the loss), and forget those."""
        self.start_reduce_scatter()
        self.uses_awaiting_grad = 0

    def start_reduce_scatter(self) -> None:
        """Reduce-scatter the gradients accumulated so far (if any): this rank gets its chunk of every weight."""
        if self._grads is None:
            return
        self._pending.append((PendingReduceScatter(self._grads.view(-1)), list(self._weights_with_grad)))
        self._grads, self._weights_with_grad = None, {}

    def store_grads(self) -> None:
        """Wait for this unit's reduce-scatters and add the averaged chunks to the shards' `.grad`."""
        for pending, weights in self._pending:
            summed = pending.wait().div_(self.world_size)
            for weight in weights:
                grad = summed[weight.offset : weight.offset + weight.chunk]
                if weight.shard.grad is None:
                    weight.shard.grad = grad
                else:
                    weight.shard.grad.add_(grad)
        self._pending.clear()


def _write_rank_major(rank_major: torch.Tensor, full: torch.Tensor, accumulate: bool) -> None:
    """Copy (or add) a full tensor into its (world_size, chunk) padded layout; padding is left untouched.

    When each rank's chunk is whole rows of `full` (no padding), both sides are viewed as (world_size, rows per
    rank, ...) and one strided copy does it, whatever `full`'s layout (a Linear's weight gradient is transposed);
    otherwise `full` is flattened first."""
    world_size, chunk = rank_major.shape
    write = torch.Tensor.add_ if accumulate else torch.Tensor.copy_
    if full.numel() == world_size * chunk and full.shape[0] % world_size == 0:
        rows_per_rank = (world_size, full.shape[0] // world_size, *full.shape[1:])
        write(rank_major.view(rows_per_rank), full.view(rows_per_rank))
        return
    flat = full.reshape(-1)
    rows, rest = divmod(flat.numel(), chunk)
    write(rank_major[:rows], flat[: rows * chunk].view(rows, chunk))
    if rest:
        write(rank_major[rows, :rest], flat[rows * chunk :])


@dataclass(eq=False)
class PendingUnitGather:
    """An in-flight all-gather of one unit; `send` is kept alive until the collective has read it."""

    unit: ShardedUnit
    dtype: torch.dtype
    out: torch.Tensor
    send: torch.Tensor
    work: dist.Work
    span: GatherSpan | None = None

    def wait(self) -> torch.Tensor:
        """The gathered unit, weight-major: each weight's padded full tensor contiguous (see `full_view`)."""
        if self.span is not None:
            self.span.mark("wait")
        self.work.wait()
        if self.span is not None:
            self.span.mark("ready")
        gathered = self._weight_major()
        if self.span is not None:
            self.span.mark("copied")
        return gathered

    def _weight_major(self) -> torch.Tensor:
        if len(self.unit.weights) == 1:  # one weight: rank-major is already weight-major
            return self.out
        world_size = self.unit.world_size
        gathered = torch.empty_like(self.out)
        by_weight = [
            gathered[offset * world_size : (offset + chunk) * world_size].view(world_size, chunk)
            for offset, chunk in zip(accumulate(self.unit.chunks, initial=0), self.unit.chunks)
        ]
        torch.split_with_sizes_copy(self.out.view(world_size, -1), self.unit.chunks, dim=1, out=by_weight)
        return gathered

    def discard(self) -> None:
        """Wait without using the result (a prefetch nobody needed): keeps the ranks' collectives in step."""
        self.work.wait()


@dataclass(frozen=True)
class _GatheredUnit:
    """A unit gathered for forward; `event` is its position among the current forward's gathers (None when a
    module runs outside the wrapper's forward)."""

    unit: ShardedUnit
    dtype: torch.dtype
    buffer: torch.Tensor
    event: int | None


class _GatherWeight(torch.autograd.Function):
    """shard -> full weight (a view of its gathered unit); its backward hands the full gradient to the unit."""

    @staticmethod
    def forward(ctx, shard: torch.Tensor, weight: ShardedWeight, gathered: _GatheredUnit) -> torch.Tensor:
        ctx.weight = weight
        return weight.full_view(gathered.buffer)

    @staticmethod
    def backward(ctx, grad_full: torch.Tensor):
        ctx.weight.unit.add_grad(ctx.weight, grad_full)
        return None, None, None


class _ForwardRecord:
    """One root forward: the units it gathered (`units[event]`), the gather event each sharded-module call used,
    and how many saved tokens each event left for backward; then backward's regathers of those events."""

    def __init__(self):
        self.units: list[ShardedUnit] = []
        self.call_events: list[int] = []
        self.saving_calls: set[int] = set()
        self.saved = Counter[int]()
        self.unpacked = Counter[int]()
        self.regathered: dict[int, torch.Tensor] = {}
        self.prefetched: dict[int, PendingUnitGather] = {}
        self.released: set[int] = set()
        self.kept: dict[int, torch.Tensor] = {}  # forward's gather of the root unit, kept for backward

    def keep(self, event: int, buffer: torch.Tensor) -> None:
        """Serve backward's tokens of `event` from forward's gather instead of a regather (as `fully_shard` keeps its
        root unsharded): the root unit holds lm_head, the first weight backward needs, and only the loss lies
        between forward and backward to hide a regather behind."""
        if self.saved[event]:
            self.kept[event] = buffer

    def note_saved(self, call: int) -> None:
        self.saving_calls.add(call)
        self.saved[self.call_events[call]] += 1

    def backward_buffer(self, call: int, dtype: torch.dtype) -> torch.Tensor:
        """The unit that forward call `call` used, gathered again once for all its saved tokens; the first
        regather of a unit starts the one backward needs next. Released after the unit's last token."""
        event = self.call_events[call]
        if event in self.kept:
            self._prefetch_before(call, event, dtype)
            self.regathered[event] = self.kept.pop(event)
        elif event not in self.regathered:
            early = self.prefetched.pop(event, None)  # started in this backward, so in the same dtype
            gathering = early or self.units[event].start_gather(dtype, "backward")
            self._prefetch_before(call, event, dtype)
            self.regathered[event] = gathering.wait()
        buffer = self.regathered[event]
        self.unpacked[event] += 1
        if self.unpacked[event] == self.saved[event]:
            del self.regathered[event]
            self.released.add(event)
        return buffer

    def _prefetch_before(self, call: int, current: int, dtype: torch.dtype) -> None:
        """Start gathering the unit of the nearest earlier call that saved weights and is not yet gathered."""
        for earlier in range(call - 1, -1, -1):
            event = self.call_events[earlier]
            if earlier in self.saving_calls and event != current and not self._handled(event):
                self.prefetched[event] = self.units[event].start_gather(dtype, "backward")
                return

    def _handled(self, event: int) -> bool:
        return event in self.regathered or event in self.prefetched or event in self.released or event in self.kept

    def drain(self) -> None:
        """Wait for prefetches backward never used and drop regathers whose tokens were not all unpacked."""
        for unused in self.prefetched.values():
            unused.discard()
        self.prefetched.clear()
        self.regathered.clear()
        self.kept.clear()


@dataclass(frozen=True)
class _Regather:
    """Stands in for a saved view of a gathered unit; rebuilt by gathering the unit again in backward."""

    unit: ShardedUnit
    dtype: torch.dtype
    size: torch.Size
    stride: tuple[int, ...]
    offset: int
    record: _ForwardRecord | None
    call: int


class _ActiveCall:
    """Bookkeeping for one in-progress forward of a sharded module (`call`: its position in `record`). Holds only
    the address of the gathered buffer, never the buffer: the saved-tensor hooks live as long as the graph."""

    def __init__(self, gathered: _GatheredUnit, record: _ForwardRecord | None):
        self.unit, self.dtype = gathered.unit, gathered.dtype
        self.record = record if gathered.event is not None else None
        self.call = 0
        if self.record is not None:
            self.call = len(self.record.call_events)
            self.record.call_events.append(gathered.event)
        self.storage_ptr = gathered.buffer.untyped_storage().data_ptr()
        self.saved_hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)

    def pack(self, tensor: torch.Tensor):
        if tensor.untyped_storage().data_ptr() != self.storage_ptr:
            return tensor
        if self.record is not None:
            self.record.note_saved(self.call)
        size, stride, offset = tensor.size(), tensor.stride(), tensor.storage_offset()
        return _Regather(self.unit, self.dtype, size, stride, offset, self.record, self.call)

    @staticmethod
    def unpack(saved):
        if not isinstance(saved, _Regather):
            return saved
        if saved.record is None:  # the module was called directly: no order to prefetch along
            buffer = saved.unit.start_gather(saved.dtype).wait()
        else:
            buffer = saved.record.backward_buffer(saved.call, saved.dtype)
        return buffer.as_strided(saved.size, saved.stride, saved.offset)


def _unit_modules(module: nn.Module, unit_types: tuple[type[nn.Module], ...] | None) -> Iterator[nn.Module]:
    """The outermost submodules that are units: instances of `unit_types`, or by default `nn.ModuleList` elements."""
    in_module_list = isinstance(module, nn.ModuleList)
    for child in module.children():
        if isinstance(child, unit_types) if unit_types is not None else in_module_list:
            yield child
        else:
            yield from _unit_modules(child, unit_types)


class FSDP(nn.Module):
    """Shards the `weight` of every Linear/Embedding inside `module` across ranks, in place and under its name,
    and communicates them per unit (see the module docstring).

    `parameters()` yields the fp32 shards and the replicated parameters, so any optimizer (the assignment-1
    AdamW included) updates only this rank's part. With `compute_dtype`, weights are cast before they are
    communicated and used, and floating inputs of sharded modules are cast to it; master weights and
    gradients stay fp32. `unit_types` makes every outermost submodule of those types a unit instead of the
    elements of `nn.ModuleList`s.
    """

    def __init__(
        self,
        module: nn.Module,
        compute_dtype: torch.dtype | None = None,
        unit_types: tuple[type[nn.Module], ...] | None = None,
    ):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("FSDP needs an initialised torch.distributed process group")
        self.module = module
        self.compute_dtype = compute_dtype
        broadcast_module_state(module)
        self._weight_of = self._shard_weights(module)
        self.sharded_weights = list(dict.fromkeys(self._weight_of.values()))
        self.units, self.root_unit = self._build_units(module, unit_types)
        sharded = {id(weight.shard) for weight in self.sharded_weights}
        self.replicated = [p for p in module.parameters() if p.requires_grad and id(p) not in sharded]
        self._pending_replicated: list[tuple[torch.Tensor, dist.Work]] = []
        for param in self.replicated:
            param.register_post_accumulate_grad_hook(weak_tensor_hook(self._reduce_replicated))
        self._active: dict[nn.Module, list[_ActiveCall]] = {}
        self._live: dict[ShardedUnit, _GatheredUnit] = {}  # units gathered for the running forward
        # forward prefetch: the units the previous forward gathered, in order, the record of the current forward,
        # and gathers started early keyed by their position in that order
        self._previous_units: list[ShardedUnit] = []
        self._this_forward: _ForwardRecord | None = None
        self._prefetched: dict[int, PendingUnitGather] = {}
        self._awaiting_backward: list[_ForwardRecord] = []  # forwards whose backward may have regathered

    def _shard_weights(self, module: nn.Module) -> dict[nn.Module, ShardedWeight]:
        """Replace every Linear/Embedding weight by its shard, registered under the same name; a tied weight is
        sharded once and shared."""
        rank, world_size = dist.get_rank(), dist.get_world_size()
        weight_of: dict[nn.Module, ShardedWeight] = {}
        by_param: dict[nn.Parameter, ShardedWeight] = {}
        for submodule in module.modules():
            weight = getattr(submodule, "weight", None)
            if not isinstance(submodule, sharded_module_types()) or not isinstance(weight, nn.Parameter):
                continue
            if weight not in by_param:
                shard = nn.Parameter(shard_tensor(weight.detach().float(), rank, world_size), weight.requires_grad)
                by_param[weight] = ShardedWeight(shard, weight.shape, weight.numel())
            weight_of[submodule] = by_param[weight]
            submodule._parameters["weight"] = by_param[weight].shard
            submodule.register_forward_pre_hook(self._before_forward)
            submodule.register_forward_hook(self._after_forward, always_call=True)
        return weight_of

    def _build_units(
        self, module: nn.Module, unit_types: tuple[type[nn.Module], ...] | None
    ) -> tuple[list[ShardedUnit], ShardedUnit | None]:
        """Group the sharded weights into units (root unit first, also returned alone; None if every weight has a
        unit module); each unit module drops its gathered unit when it returns. A weight used by modules of several
        units goes to the root unit."""
        owners: dict[ShardedWeight, set[nn.Module | None]] = {weight: set() for weight in self.sharded_weights}
        unit_modules = list(_unit_modules(module, unit_types))
        for unit_module in unit_modules:
            for submodule in unit_module.modules():
                if submodule in self._weight_of:
                    owners[self._weight_of[submodule]].add(unit_module)
        members: dict[nn.Module | None, list[ShardedWeight]] = {None: []}
        for weight, owning in owners.items():
            key = next(iter(owning)) if len(owning) == 1 else None
            members.setdefault(key, []).append(weight)
        units = []
        for key in [None, *unit_modules]:
            if members.get(key):
                units.append(ShardedUnit(members[key], len(units)))
                if key is not None:
                    key.register_forward_hook(self._release_unit(units[-1]), always_call=True)
        return units, units[0] if members[None] else None

    def _release_unit(self, unit: ShardedUnit):
        def release(module: nn.Module, args: tuple, output) -> None:
            self._live.pop(unit, None)

        return release

    def forward(self, *inputs, **kwargs):
        for earlier in self._awaiting_backward:  # one root unit kept at a time: an earlier graph's backward regathers
            earlier.kept.clear()
        record = self._this_forward = _ForwardRecord()
        try:
            return self.module(*inputs, **kwargs)
        finally:
            self._previous_units, self._this_forward = record.units, None
            root = self._live.get(self.root_unit) if self.root_unit is not None else None
            if root is not None:
                record.keep(root.event, root.buffer)
            self._live.clear()
            if record.saved:
                self._awaiting_backward.append(record)
            for unused in self._prefetched.values():  # the forward took another path: drain, keep ranks in step
                unused.discard()
            self._prefetched.clear()

    def _gathered(self, unit: ShardedUnit, dtype: torch.dtype) -> _GatheredUnit:
        """The unit gathered for this call: still live from an earlier call of this forward, or gathered now
        (started early if the previous forward predicted it). A new gather also starts the gather of the unit
        that came next in the previous forward, so it overlaps this unit's compute."""
        if self._this_forward is None:  # the module was called directly, not through this wrapper
            return _GatheredUnit(unit, dtype, unit.start_gather(dtype).wait(), None)
        if unit in self._live:
            return self._live[unit]
        order = self._this_forward.units
        event = len(order)
        order.append(unit)
        early = self._prefetched.pop(event, None)
        if early is not None and (early.unit is not unit or early.dtype != dtype):
            early.discard()
            early = None
        gathering = early or unit.start_gather(dtype, "forward")
        upcoming = event + 1
        if upcoming < len(self._previous_units) and upcoming not in self._prefetched:
            self._prefetched[upcoming] = self._previous_units[upcoming].start_gather(dtype, "forward")
        self._live[unit] = _GatheredUnit(unit, dtype, gathering.wait(), event)
        return self._live[unit]

    def _before_forward(self, submodule: nn.Module, args: tuple):
        weight = self._weight_of[submodule]
        dtype = self.compute_dtype or torch.float32
        gathered = self._gathered(weight.unit, dtype)
        if torch.is_grad_enabled() and weight.shard.requires_grad:
            weight.unit.uses_awaiting_grad += 1
        full = _GatherWeight.apply(weight.shard, weight, gathered)
        call = _ActiveCall(gathered, self._this_forward)
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

    def trace_gathers(self, timeline: GatherTimeline | None) -> None:
        """Mark every unit gather of the steps `timeline` records (None: stop marking)."""
        for unit in self.units:
            unit.timeline = timeline

    def _reduce_replicated(self, param: torch.Tensor) -> None:
        self._pending_replicated.append((param, dist.all_reduce(param.grad, op=dist.ReduceOp.SUM, async_op=True)))

    def finish_gradient_synchronization(self) -> None:
        """Store every shard's averaged gradient. Units whose gradients are still incomplete are reduce-scattered
        now, in the fixed unit order, so all ranks issue the same collectives."""
        world_size = dist.get_world_size()
        for record in self._awaiting_backward:
            record.drain()
        self._awaiting_backward.clear()
        for unit in self.units:
            unit.flush_grads()
        for param, work in self._pending_replicated:
            work.wait()
            param.grad.div_(world_size)
        self._pending_replicated.clear()
        for unit in self.units:
            unit.store_grads()

    @torch.no_grad()
    def gather_full_params(self) -> dict[str, torch.Tensor]:
        """Every parameter under its original name as a full, unpadded fp32 tensor (sharded ones gathered)."""
        gathered = {unit: unit.start_gather(torch.float32).wait() for unit in self.units}
        weight_of_shard = {id(weight.shard): weight for weight in self.sharded_weights}
        full: dict[str, torch.Tensor] = {}
        for name, param in self.module.named_parameters():
            weight = weight_of_shard.get(id(param))
            full[name] = weight.full_view(gathered[weight.unit]).clone() if weight else param.detach().clone()
        return full
