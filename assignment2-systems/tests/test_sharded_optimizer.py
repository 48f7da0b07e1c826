"""ZeRO-1: sharding the optimizer state must not change training at all (compared with unsharded AdamW)."""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
from cs336_systems.distributed_utils import DistributedContext
from cs336_systems.sharded_optimizer import ShardedOptimizer
from torch import nn

from tests.distributed_harness import ToyNet, run_on_ranks

ADAMW = dict(lr=0.1, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad()
    ((y - model(x)) ** 2).sum().backward()
    optimizer.step()


def _matches_adamw(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(42)  # identical model and data on every rank: only the state is split
    model = ToyNet()
    reference = copy.deepcopy(model)
    sharded = ShardedOptimizer(model.parameters(), torch.optim.AdamW, **ADAMW)
    plain = torch.optim.AdamW(reference.parameters(), **ADAMW)
    for step in range(10):
        x, y = torch.randn(8, 10), torch.randn(8, 5)
        if step == 5:  # a learning-rate schedule edits param_groups; the shard must follow
            for optimizer in (sharded, plain):
                optimizer.param_groups[0]["lr"] = 0.03
        _step(model, sharded, x, y)
        _step(reference, plain, x, y)
        for p, q in zip(model.parameters(), reference.parameters()):
            assert torch.equal(p, q), step

    # the state really is split: each trainable parameter has state on exactly one rank
    owned = [int(len(sharded.local_optimizer.state.get(p, {})) > 0) for p in model.parameters()]
    totals = torch.tensor(owned)
    dist.all_reduce(totals)
    expected = torch.tensor([int(p.requires_grad) for p in model.parameters()])
    assert torch.equal(totals, expected)
    assert 0 < sum(owned) < sum(expected.tolist())
    assert sharded.owner_of(model.fc1.weight) in (0, 1)


def test_sharded_adamw_is_bitwise_adamw():
    run_on_ranks(_matches_adamw)


def _param_groups_and_late_groups(ctx: DistributedContext) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    body, head = nn.Linear(10, 10), nn.Linear(10, 5)
    ref_body, ref_head = copy.deepcopy(body), copy.deepcopy(head)
    extra = nn.Parameter(torch.randn(5))  # a single tensor: one rank owns nothing in its group
    ref_extra = nn.Parameter(extra.detach().clone())

    sharded = ShardedOptimizer(
        [{"params": body.parameters()}, {"params": head.parameters(), "lr": 0.01}], torch.optim.SGD, lr=0.1
    )
    plain = torch.optim.SGD([{"params": ref_body.parameters()}, {"params": ref_head.parameters(), "lr": 0.01}], lr=0.1)
    for step in range(4):
        if step == 2:  # unfreezing more parameters mid-training
            sharded.add_param_group({"params": [extra], "momentum": 0.5})
            plain.add_param_group({"params": [ref_extra], "momentum": 0.5})
        x = torch.randn(4, 10)
        for b, h, e, opt in ((body, head, extra, sharded), (ref_body, ref_head, ref_extra, plain)):
            opt.zero_grad()
            (h(torch.tanh(b(x))) * e).square().mean().backward()
            opt.step()
        for p, q in zip(
            [*body.parameters(), *head.parameters(), extra], [*ref_body.parameters(), *ref_head.parameters(), ref_extra]
        ):
            assert torch.equal(p, q), step


def test_parameter_groups_and_add_param_group():
    run_on_ranks(_param_groups_and_late_groups)


def _balanced_ownership(ctx: DistributedContext) -> None:
    # in parameter order the least-loaded rule gives 1 -> rank 0, 1 -> rank 1, 2 -> rank 0 (loads 3 and 1);
    # largest first gives 2 -> rank 0, then both 1s -> rank 1 (loads 2 and 2)
    params = [nn.Parameter(torch.zeros(n)) for n in (1, 1, 2)]
    sharded = ShardedOptimizer(params, torch.optim.SGD, lr=0.1)
    assert [sharded.owner_of(p) for p in params] == [1, 1, 0]


def test_ownership_balances_parameter_elements():
    run_on_ranks(_balanced_ownership)
