"""FSDP on 2 gloo ranks against a single process on the whole batch, in fp32 and with a half compute dtype."""

from __future__ import annotations

import gc
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from cs336_basics.optimizer import AdamW
from cs336_systems.distributed_utils import DistributedContext
from cs336_systems.fsdp import FSDP, PendingUnitGather, ShardedUnit, shard_tensor
from torch import nn

from tests.distributed_harness import model_lm_available, run_on_ranks


class TiedNet(nn.Module):
    """torch layers with sizes that do not split evenly, a bias, a LayerNorm and an lm_head tied to the embedding."""

    vocab_size = 33

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(33, 7)
        self.fc1 = nn.Linear(7, 9)
        self.norm = nn.LayerNorm(9)
        self.fc2 = nn.Linear(9, 7, bias=False)
        self.lm_head = nn.Linear(7, 33, bias=False)
        self.lm_head.weight = self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.fc2(self.norm(torch.relu(self.fc1(self.embedding(ids))))))

    @staticmethod
    def reference_forward(model: TiedNet, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The mixed-precision semantics written out: sharded layers use weights and inputs cast to `dtype`."""
        h = model.embedding.weight.to(dtype)[ids]
        h = F.linear(h.to(dtype), model.fc1.weight.to(dtype), model.fc1.bias.to(dtype))
        h = model.norm(torch.relu(h))
        h = F.linear(h.to(dtype), model.fc2.weight.to(dtype))
        return F.linear(h.to(dtype), model.lm_head.weight.to(dtype))


class BasicsNet(nn.Module):
    """The acceptance suite's FSDP model, built from the assignment-1 layers."""

    vocab_size = 100

    def __init__(self):
        super().__init__()
        from cs336_basics.model import Embedding, Linear, RMSNorm

        self.embedding = Embedding(100, 64)
        self.norm1 = RMSNorm(64)
        self.linear1 = Linear(64, 128)
        self.norm2 = RMSNorm(128)
        self.linear2 = Linear(128, 64)
        self.lm_head = Linear(64, 100)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.linear1(self.norm1(self.embedding(ids))))
        return self.lm_head(self.linear2(self.norm2(h)))

    @staticmethod
    def reference_forward(model: BasicsNet, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        h = model.norm1(model.embedding.weight.to(dtype)[ids])
        h = model.norm2(torch.relu(h.to(dtype) @ model.linear1.weight.to(dtype).T))
        h = h.to(dtype) @ model.linear2.weight.to(dtype).T
        return h.to(dtype) @ model.lm_head.weight.to(dtype).T


def _all_ranks_equal(tensor: torch.Tensor) -> bool:
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def _train_and_compare(
    ctx: DistributedContext,
    net_cls: type[nn.Module],
    dtype: torch.dtype | None,
    tol: float,
    unit_types: tuple[type[nn.Module], ...] | None = None,
):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reference = net_cls()
    torch.manual_seed(1 + ctx.rank)  # rank 1 starts elsewhere: FSDP must broadcast rank 0's weights
    model = net_cls()
    if ctx.rank == 0:
        model.load_state_dict(reference.state_dict())
    fsdp = FSDP(model, compute_dtype=dtype, unit_types=unit_types)
    assert fsdp.module is model
    sharded = {id(weight.shard) for weight in fsdp.sharded_weights}
    assert sharded and all(id(p) in sharded or p.dim() == 1 for p in model.parameters())
    assert sorted(len(unit.weights) for unit in fsdp.units) == ([1, 1, 1] if unit_types else [len(sharded)])
    # AdamW (assignment 1's) on fp32; in half precision Adam's g / (|g| + eps) turns rounding of tiny gradients
    # into full-size update differences, so there SGD shows the gradients' agreement instead
    if dtype is None:
        optimizer, ref_optimizer = (AdamW(m.parameters(), lr=1e-2) for m in (fsdp, reference))
    else:
        optimizer, ref_optimizer = (torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (fsdp, reference))
    generator = torch.Generator().manual_seed(7)
    for _ in range(3):
        ids = torch.randint(0, net_cls.vocab_size, (8, 5), generator=generator)
        targets = torch.randint(0, net_cls.vocab_size, (8,), generator=generator)
        mine = slice(ctx.rank * 4, (ctx.rank + 1) * 4)
        optimizer.zero_grad(set_to_none=True)
        ref_optimizer.zero_grad(set_to_none=True)
        with recorded_gather_starts() as started:
            logits = fsdp(ids[mine])
            assert logits.dtype == (dtype or torch.float32)  # the layers really computed in the compute dtype
            gathers_after_forward = len(started)
            F.cross_entropy(logits[:, -1, :].float(), targets[mine]).backward()
        # freed weights are gathered again for backward, except the root unit's: forward's gather is kept for it
        assert set(started[gathers_after_forward:]) == set(fsdp.units) - {fsdp.root_unit}
        fsdp.finish_gradient_synchronization()
        ref_logits = net_cls.reference_forward(reference, ids, dtype or torch.float32)
        F.cross_entropy(ref_logits[:, -1, :].float(), targets).backward()

        for name, param in model.named_parameters():
            assert param.grad is not None and param.grad.shape == param.shape, name
            assert param.grad.dtype == torch.float32 == param.dtype, name
            if id(param) not in sharded:
                assert _all_ranks_equal(param.grad), name
        optimizer.step()
        ref_optimizer.step()
        full = fsdp.gather_full_params()
        assert list(full) == [name for name, _ in reference.named_parameters()]
        for name, ref_param in reference.named_parameters():
            assert full[name].shape == ref_param.shape and full[name].dtype == torch.float32
            torch.testing.assert_close(full[name], ref_param.detach(), rtol=tol, atol=tol, msg=name)


PER_LAYER = (nn.Linear, nn.Embedding)


@pytest.mark.parametrize(
    ("dtype", "tol", "unit_types"), [(None, 1e-5, None), (None, 1e-5, PER_LAYER), (torch.bfloat16, 2e-3, PER_LAYER)]
)
def test_fsdp_tied_uneven_torch_layers_match_single_process(dtype, tol, unit_types):
    """One unit for the whole net, or one per layer with the tied embedding/lm_head weight in the root unit."""
    run_on_ranks(_train_and_compare, TiedNet, dtype, tol, unit_types)


@pytest.mark.skipif(not model_lm_available(), reason="cs336_basics.model not available")
@pytest.mark.parametrize(("dtype", "tol"), [(None, 1e-5), (torch.float16, 1e-4)])
def test_fsdp_assignment1_layers_match_single_process(dtype, tol):
    run_on_ranks(_train_and_compare, BasicsNet, dtype, tol)


def test_shards_cover_the_flat_weight_with_zero_padding():
    full = torch.arange(10.0).reshape(2, 5)
    shards = [shard_tensor(full, rank, 3) for rank in range(3)]
    assert [s.tolist() for s in shards] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]]


@contextmanager
def recorded_gather_starts() -> Iterator[list[ShardedUnit]]:
    """Every `ShardedUnit.start_gather` call in the block, in order (the unit whose gather started)."""
    started: list[ShardedUnit] = []
    original_start = ShardedUnit.start_gather

    def recording_start(self, dtype, phase=None):
        started.append(self)
        return original_start(self, dtype, phase)

    ShardedUnit.start_gather = recording_start
    try:
        yield started
    finally:
        ShardedUnit.start_gather = original_start


def _prefetch_order(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TiedNet()
    fsdp = FSDP(model, unit_types=PER_LAYER)
    layers = [model.embedding, model.fc1, model.fc2, model.lm_head]  # forward order; lm_head reuses the embedding
    started_when_layer_ran: list[int] = []
    ids = torch.randint(0, TiedNet.vocab_size, (2, 3))
    per_step = []
    with recorded_gather_starts() as started:
        for layer in layers:
            layer.register_forward_hook(lambda *_: started_when_layer_ran.append(len(started)))
        for _ in range(2):
            started.clear()
            started_when_layer_ran.clear()
            fsdp(ids).sum().backward()
            fsdp.finish_gradient_synchronization()
            per_step.append(list(started_when_layer_ran))
    # first forward: no order known yet, one gather per unit; then unit k runs while unit k+1's gather is already
    # under way (and no further one). The root unit (the tied embedding/lm_head weight) stays gathered until the
    # forward returns, so lm_head gathers nothing.
    assert per_step == [[1, 2, 3, 3], [2, 3, 3, 3]]
    root, fc1, fc2 = fsdp.units
    assert [unit.weights for unit in fsdp.units] == [[w] for w in fsdp.sharded_weights]
    assert started[:3] == [root, fc1, fc2]


def test_forward_prefetches_the_next_weight_in_the_previous_order():
    run_on_ranks(_prefetch_order)


def _backward_prefetch(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TiedNet()
    fsdp = FSDP(model, unit_types=PER_LAYER)
    started_when_backward_began: dict[str, int] = {}
    ids = torch.randint(0, TiedNet.vocab_size, (2, 3))
    with recorded_gather_starts() as started:

        def note_start(name: str):
            def hook(module, grad_output):
                started_when_backward_began.setdefault(name, len(started))

            return hook

        for name in ("lm_head", "fc2", "fc1"):
            getattr(model, name).register_full_backward_pre_hook(note_start(name))
        loss = fsdp(ids).sum()
        started.clear()
        loss.backward()
        fsdp.finish_gradient_synchronization()
    root, fc1, fc2 = fsdp.units
    # backward needs lm_head's (the root unit's) weight, then fc2's, then fc1's; the embedding lookup saves no
    # weight, so nothing is gathered for it. The root unit is served from forward's gather, kept for backward; each
    # other gather starts while the layer before it in backward runs: fc2's is under way when fc2's backward
    # begins, fc1's when fc1's begins.
    assert started == [fc2, fc1]
    assert started_when_backward_began == {"lm_head": 0, "fc2": 1, "fc1": 2}


def test_backward_prefetches_the_weight_it_needs_next():
    run_on_ranks(_backward_prefetch)


class GatedBlock(nn.Module):
    """A residual MLP block whose gate is used, skipped, or called with its output thrown away."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc_in = nn.Linear(width, 2 * width)
        self.fc_out = nn.Linear(2 * width, width, bias=False)
        self.gate = nn.Linear(width, width, bias=False)

    def forward(self, h: torch.Tensor, gate_mode: str) -> torch.Tensor:
        out = h + self.fc_out(torch.relu(self.fc_in(self.norm(h))))
        if gate_mode == "skip":
            return out
        gate = torch.sigmoid(self.gate(h))
        return out * gate if gate_mode == "use" else out


class StackNet(nn.Module):
    """Embedding, a ModuleList of gated blocks (one unit each) and an lm_head (root unit with the embedding)."""

    vocab_size = 29

    def __init__(self, width: int = 6, depth: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(self.vocab_size, width)
        self.blocks = nn.ModuleList(GatedBlock(width) for _ in range(depth))
        self.lm_head = nn.Linear(width, self.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor, gate_mode: str = "use") -> torch.Tensor:
        h = self.embedding(ids)
        for block in self.blocks:
            h = block(h, gate_mode)
        return self.lm_head(h)


def _units_with_unused_weights(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reference = StackNet()
    model = StackNet()
    model.load_state_dict(reference.state_dict())
    fsdp = FSDP(model)
    assert sorted(len(unit.weights) for unit in fsdp.units) == [2, 3, 3, 3]
    optimizer, ref_optimizer = (torch.optim.SGD(m.parameters(), lr=0.5) for m in (fsdp, reference))
    generator = torch.Generator().manual_seed(3)
    # "skip": the gates get no gradient; "discard": they are used but their output never reaches the loss, so
    # every block's gradients stay incomplete until finish_gradient_synchronization flushes them
    for gate_mode in ("use", "skip", "discard", "use"):
        ids = torch.randint(0, StackNet.vocab_size, (4, 5), generator=generator)
        targets = torch.randint(0, StackNet.vocab_size, (4, 5), generator=generator)
        mine = slice(2 * ctx.rank, 2 * ctx.rank + 2)
        optimizer.zero_grad(set_to_none=True)
        ref_optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(fsdp(ids[mine], gate_mode).flatten(0, 1), targets[mine].flatten()).backward()
        fsdp.finish_gradient_synchronization()
        F.cross_entropy(reference(ids, gate_mode).flatten(0, 1), targets.flatten()).backward()
        for (name, param), ref_param in zip(model.named_parameters(), reference.parameters()):
            assert (param.grad is None) == (ref_param.grad is None), f"{gate_mode} {name}"
        optimizer.step()
        ref_optimizer.step()
        full = fsdp.gather_full_params()
        for name, ref_param in reference.named_parameters():
            torch.testing.assert_close(full[name], ref_param.detach(), rtol=1e-5, atol=1e-6, msg=f"{gate_mode} {name}")


def test_units_with_skipped_and_unused_weights_match_single_process():
    run_on_ranks(_units_with_unused_weights)


def _count_collectives(counts: Counter, names: dict[str, str]) -> list[tuple[str, Callable]]:
    """Wrap the `torch.distributed` collectives in `names` (function -> counter key) to count their calls."""
    originals = [(name, getattr(dist, name)) for name in names]

    def counting(name: str, original: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            counts[names[name]] += 1
            return original(*args, **kwargs)

        return wrapper

    for name, original in originals:
        setattr(dist, name, counting(name, original))
    return originals


@contextmanager
def counted_collectives() -> Iterator[Counter]:
    """Calls of all-gathers and reduce-scatters in the block; on gloo a reduce-scatter is an all-reduce, so
    `all_reduce` is counted on its own (replicated gradients are all-reduced too)."""
    counts: Counter = Counter()
    names = {
        "all_gather": "all_gather",
        "all_gather_into_tensor": "all_gather",
        "reduce_scatter_tensor": "reduce_scatter",
        "all_reduce": "all_reduce",
    }
    originals = _count_collectives(counts, names)
    try:
        yield counts
    finally:
        for name, original in originals:
            setattr(dist, name, original)


def _transformer_collectives_and_training(ctx: DistributedContext) -> None:
    from cs336_basics.model import TransformerLM
    from cs336_basics.model_config import ModelConfig

    torch.set_num_threads(1)
    config = ModelConfig(vocab_size=31, context_length=8, d_model=16, num_layers=3, num_heads=2, d_ff=24)
    torch.manual_seed(0)
    reference = TransformerLM(config)
    model = TransformerLM(config)
    model.load_state_dict(reference.state_dict())
    fsdp = FSDP(model)
    units = config.num_layers + 1  # one per block, one root (embedding and lm_head)
    replicated = sum(1 for p in reference.parameters() if p.dim() == 1)  # the RMSNorm gains
    optimizer, ref_optimizer = (torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (fsdp, reference))
    tokens = torch.randint(0, config.vocab_size, (4, 9), generator=torch.Generator().manual_seed(5))
    x, y = tokens[:, :-1], tokens[:, 1:]
    mine = slice(2 * ctx.rank, 2 * ctx.rank + 2)
    for _ in range(2):
        optimizer.zero_grad(set_to_none=True)
        with counted_collectives() as forward:
            loss = F.cross_entropy(fsdp(x[mine]).flatten(0, 1), y[mine].flatten())
        with counted_collectives() as backward:
            loss.backward()
            fsdp.finish_gradient_synchronization()
        assert forward == Counter(all_gather=units)
        reduce_scatters = backward["reduce_scatter"] + backward["all_reduce"] - replicated
        assert backward["all_gather"] == units - 1 and reduce_scatters == units, backward  # the root unit is kept
        optimizer.step()
        ref_optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(reference(x).flatten(0, 1), y.flatten()).backward()
        ref_optimizer.step()
    full = fsdp.gather_full_params()
    for name, ref_param in reference.named_parameters():
        torch.testing.assert_close(full[name], ref_param.detach(), rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.skipif(not model_lm_available(), reason="cs336_basics.model not available")
def test_transformer_costs_one_gather_each_way_but_the_root_and_one_reduce_scatter_per_unit():
    run_on_ranks(_transformer_collectives_and_training)


def _gathered_units_are_freed(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = StackNet()
    fsdp = FSDP(model)
    alive: list[weakref.ref] = []
    original_wait = PendingUnitGather.wait

    def recording_wait(self):
        gathered = original_wait(self)
        alive.append(weakref.ref(gathered.untyped_storage()))
        return gathered

    def live() -> list[bool]:
        gc.collect()
        return [ref() is not None for ref in alive]

    def live_count() -> int:
        return sum(live())

    live_inside_block: list[int] = []
    for block in model.blocks:
        block.fc_out.register_forward_hook(lambda *_: live_inside_block.append(live_count()))
    root_live_in_blocks_backward: list[bool] = []  # the kept root unit is released after lm_head's backward
    in_backward = model.blocks[-1].register_full_backward_pre_hook(
        lambda *_: root_live_in_blocks_backward.append(live()[0])
    )
    ids = torch.randint(0, StackNet.vocab_size, (2, 5))
    PendingUnitGather.wait = recording_wait
    try:
        for _ in range(2):
            alive.clear()
            loss = fsdp(ids).square().mean()
            # saved weights are regather tokens; only the root unit's gather, the first, is kept for backward
            assert live() == [True] + [False] * len(model.blocks)
            loss.backward()
            assert live_count() == 0
            fsdp.finish_gradient_synchronization()
        in_backward.remove()
        alive.clear()
        abandoned = fsdp(ids).sum()  # a graph whose backward never runs keeps its root unit until the next forward
        loss = fsdp(ids).sum()
        assert live_count() == 1
        loss.backward()
        assert live_count() == 0
        del abandoned
        fsdp.finish_gradient_synchronization()
    finally:
        PendingUnitGather.wait = original_wait
    # in each of the four forwards: the root unit and the running block's unit, never an earlier forward's root
    assert live_inside_block == [2] * (4 * len(model.blocks))
    assert root_live_in_blocks_backward == [False, False]


def test_gathered_units_are_freed_after_forward():
    run_on_ranks(_gathered_units_are_freed)
