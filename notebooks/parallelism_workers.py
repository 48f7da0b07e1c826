"""Per-rank functions for the parallelism notebook (07).

`torch.multiprocessing` with the "spawn" start method pickles the function each rank runs by reference, so it
must live in an importable module rather than in a notebook cell. Each function runs inside a process group
made by `cs336_systems.distributed_utils.spawn` and writes what it observed to `out_dir/rank{r}.pt`, which the
notebook reads back.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.distributed as dist
from cs336_basics.model import TransformerLM
from cs336_basics.nn_utils import cross_entropy
from cs336_basics.optimizer import AdamW
from cs336_systems.ddp import BucketedDDP
from cs336_systems.distributed_utils import DistributedContext, PendingReduceScatter, all_gather_flat
from cs336_systems.sharded_optimizer import ShardedOptimizer

TOY_MODEL = dict(vocab_size=64, context_length=16, d_model=32, num_layers=2, num_heads=2, d_ff=64)


def _save(ctx: DistributedContext, out_dir: str, result: dict) -> None:
    torch.save(result, Path(out_dir) / f"rank{ctx.rank}.pt")


def collectives(ctx: DistributedContext, out_dir: str, timing_sizes: list[int], repeats: int = 5) -> None:
    """Run each collective on a tensor that holds `rank + 1` in every element and record what this rank ends
    with; then time all-reduces of `timing_sizes` float32 elements (best of `repeats`). One process group does
    both, since starting one costs more than everything it runs here."""
    torch.set_num_threads(1)
    world = ctx.world_size
    mine = torch.full((world,), float(ctx.rank + 1))
    result = {"input": mine.clone()}

    summed = mine.clone()
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    result["all_reduce (sum)"] = summed

    from_rank0 = mine.clone()
    dist.broadcast(from_rank0, src=0)
    result["broadcast from rank 0"] = from_rank0

    gathered = torch.empty(world * world)
    all_gather_flat(gathered, mine)
    result["all_gather"] = gathered

    result["reduce_scatter (sum)"] = PendingReduceScatter(mine.clone()).wait().clone()

    seconds = {}
    for size in timing_sizes:
        tensor = torch.ones(size)
        dist.all_reduce(tensor)  # warm-up: connections and buffers
        best = float("inf")
        for _ in range(repeats):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(tensor)
            best = min(best, time.perf_counter() - start)
        seconds[size] = best
    _save(ctx, out_dir, {"collectives": result, "all_reduce_seconds": seconds})


def data_parallel_training(ctx: DistributedContext, out_dir: str, data: torch.Tensor, steps: int, lr: float) -> None:
    """Train the toy LM with the project's bucketed DDP, each rank on its slice of every global batch.

    Every rank starts from a *different* seed: the DDP wrapper must broadcast rank 0's weights, so the result
    can be compared with one process training on whole batches from seed 0. Alongside, a ZeRO-1 optimizer
    (AdamW state sharded over ranks) trains a second copy, to show that sharding changes memory, not results.
    """
    torch.set_num_threads(1)
    torch.manual_seed(ctx.rank)
    ddp = BucketedDDP(TransformerLM(**TOY_MODEL), bucket_size_mb=0.05)
    optimizer = AdamW(ddp.parameters(), lr=lr)
    torch.manual_seed(ctx.rank)
    zero = BucketedDDP(TransformerLM(**TOY_MODEL), bucket_size_mb=0.05)
    sharded = ShardedOptimizer(zero.parameters(), AdamW, lr=lr)
    per_rank = data.shape[1] // ctx.world_size
    losses = []
    for batch in data:  # data: (steps, global_batch, context + 1)
        local = batch[ctx.rank * per_rank : (ctx.rank + 1) * per_rank]
        x, y = local[:, :-1], local[:, 1:]
        for model, opt in ((ddp, optimizer), (zero, sharded)):
            opt.zero_grad()
            loss = cross_entropy(model(x), y)
            loss.backward()
            model.finish_gradient_synchronization()
            opt.step()
            if model is ddp:
                losses.append(loss.item())
    state_bytes = {
        name: sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
        for name, opt in (("AdamW", optimizer), ("ZeRO-1 AdamW", sharded.local_optimizer))
    }
    _save(
        ctx,
        out_dir,
        {
            "losses": losses,
            "ddp_state": {k: v.clone() for k, v in ddp.module.state_dict().items()},
            "zero_state": {k: v.clone() for k, v in zero.module.state_dict().items()},
            "optimizer_state_bytes": state_bytes,
        },
    )
