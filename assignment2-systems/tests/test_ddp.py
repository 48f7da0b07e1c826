"""Every DDP wrapper, on 2 gloo ranks, must train exactly like one process on the whole batch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
from cs336_systems.ddp import BucketedDDP, FlatDDP, NaiveDDP, OverlapDDP, assign_buckets
from cs336_systems.distributed_utils import DistributedContext
from torch import nn

from tests.distributed_harness import ToyNet, ddp_data, model_lm_available, run_on_ranks

VARIANTS = {
    "naive": NaiveDDP,
    "flat": FlatDDP,
    "overlap": OverlapDDP,
    "bucketed-one": lambda m: BucketedDDP(m, None),
    "bucketed-tiny": lambda m: BucketedDDP(m, 0.0001),
    "bucketed-few": lambda m: BucketedDDP(m, 0.0016),
}


def _all_ranks_equal(tensor: torch.Tensor) -> bool:
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def _train_and_compare(ctx: DistributedContext, data: torch.Tensor, labels: torch.Tensor) -> None:
    torch.set_num_threads(1)
    for name, wrap in VARIANTS.items():
        torch.manual_seed(0)
        reference = ToyNet()  # what rank 0 builds: the single-process run starts from it
        torch.manual_seed(ctx.rank)
        local = ToyNet()
        before = copy.deepcopy(local.state_dict())
        ddp = wrap(local)
        for key, tensor in ddp.module.state_dict().items():
            assert torch.equal(tensor, reference.state_dict()[key]), (name, key)
            if ctx.rank == 1:  # broadcast really replaced rank 1's own values, frozen ones and buffers too
                assert not torch.equal(tensor, before[key]), (name, key)
        assert [p is q for p, q in zip(ddp.parameters(), local.parameters())] == [True] * len(list(ddp.parameters()))

        ddp_opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
        ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
        half = data.shape[0] // ctx.world_size
        for step in range(5):
            torch.manual_seed(100 + step)  # same shuffle on every rank
            order = torch.randperm(data.shape[0])
            x, y = data[order], labels[order]
            ddp.start_train_batch()
            ddp_opt.zero_grad(set_to_none=True)
            ref_opt.zero_grad(set_to_none=True)
            mine = slice(ctx.rank * half, (ctx.rank + 1) * half)
            nn.functional.mse_loss(ddp(x[mine]), y[mine]).backward()
            ddp.finish_gradient_synchronization()
            nn.functional.mse_loss(reference(x), y).backward()
            for (pname, p), q in zip(local.named_parameters(), reference.parameters()):
                if q.grad is None:
                    assert p.grad is None, (name, pname)
                else:
                    torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=f"{name} {pname}")
                    assert _all_ranks_equal(p.grad), (name, pname)
            ddp_opt.step()
            ref_opt.step()
            for p, q in zip(local.parameters(), reference.parameters()):
                assert torch.allclose(p, q), (name, step)


def test_every_ddp_variant_matches_single_process_training():
    data, labels = ddp_data()
    run_on_ranks(_train_and_compare, data, labels)


def _bucketed_with_accumulation(ctx: DistributedContext, data: torch.Tensor, labels: torch.Tensor) -> None:
    """Two micro-batches per step under `no_sync` equal one step on the concatenated batch."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reference = ToyNet()
    ddp = BucketedDDP(copy.deepcopy(reference), 0.001)
    overlap = OverlapDDP(copy.deepcopy(reference))
    quarter = data.shape[0] // (2 * ctx.world_size)
    for model in (ddp, overlap):
        with model.no_sync():
            lo = ctx.rank * 2 * quarter
            (nn.functional.mse_loss(model(data[lo : lo + quarter]), labels[lo : lo + quarter]) / 2).backward()
        hi = ctx.rank * 2 * quarter + quarter
        (nn.functional.mse_loss(model(data[hi : hi + quarter]), labels[hi : hi + quarter]) / 2).backward()
        model.finish_gradient_synchronization()
    nn.functional.mse_loss(reference(data), labels).backward()
    for model in (ddp, overlap):
        for p, q in zip(model.parameters(), reference.parameters()):
            if q.grad is not None:
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_gradient_accumulation_with_no_sync():
    data, labels = ddp_data()
    run_on_ranks(_bucketed_with_accumulation, data, labels)


def _transformer_ddp(ctx: DistributedContext) -> None:
    from cs336_basics.model import TransformerLM
    from cs336_basics.model_config import ModelConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=50, context_length=8, d_model=16, num_layers=2, num_heads=2, d_ff=32)
    reference = TransformerLM(config)
    torch.manual_seed(ctx.rank)
    ddp = BucketedDDP(TransformerLM(config), 0.002)
    ddp_opt = torch.optim.AdamW(ddp.parameters(), lr=1e-2)
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-2)
    tokens = torch.randint(0, 50, (4, 9), generator=torch.Generator().manual_seed(1))
    half = tokens.shape[0] // ctx.world_size
    for _ in range(3):
        ddp_opt.zero_grad()
        ref_opt.zero_grad()
        mine = tokens[ctx.rank * half : (ctx.rank + 1) * half]
        logits = ddp(mine[:, :-1])
        nn.functional.cross_entropy(logits.reshape(-1, 50), mine[:, 1:].reshape(-1)).backward()
        ddp.finish_gradient_synchronization()
        ref_logits = reference(tokens[:, :-1])
        nn.functional.cross_entropy(ref_logits.reshape(-1, 50), tokens[:, 1:].reshape(-1)).backward()
        ddp_opt.step()
        ref_opt.step()
    for p, q in zip(ddp.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not model_lm_available(), reason="cs336_basics.model.TransformerLM not available")
def test_bucketed_ddp_trains_transformer_like_single_process():
    run_on_ranks(_transformer_ddp)


def _params(*numels: int) -> list[nn.Parameter]:
    return [nn.Parameter(torch.zeros(n)) for n in numels]


def test_buckets_fill_in_reverse_order_up_to_capacity():
    a, b, c, d = _params(100, 200, 300, 50)  # 400, 800, 1200, 200 bytes
    capacity_mb = 1000 / 2**20
    assert assign_buckets([a, b, c, d], capacity_mb) == [[d], [c], [b]] + [[a]]  # d+c = 1400 > 1000
    assert assign_buckets([a, b, c, d], 2000 / 2**20) == [[d, c], [b, a]]
    assert assign_buckets([a, b, c, d], None) == [[d, c, b, a]]


def test_oversized_parameter_gets_its_own_bucket_and_dtypes_never_mix():
    small, huge = _params(10, 10_000)
    half = nn.Parameter(torch.zeros(10, dtype=torch.float16))
    assert assign_buckets([small, huge, half], 1000 / 2**20) == [[half], [huge], [small]]
    with pytest.raises(ValueError, match="positive"):
        assign_buckets([small], 0)
