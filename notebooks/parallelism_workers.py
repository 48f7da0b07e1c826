"""Per-rank functions for the parallelism notebook (07).

With the "spawn" start method (the notebook's choice off Linux) `torch.multiprocessing` pickles the function each
rank runs by reference, so it must live in an importable module rather than in a notebook cell.
`lecture_demonstrations` runs inside a process group made by `cs336_systems.distributed_utils.spawn`, runs every
demonstration of the notebook in turn and writes what this rank observed to `out_dir/rank{r}.pt` (tensors,
numbers, strings, lists and dicts only, so the notebook reads it back with `torch.load`'s safe default).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from communication_log import CommunicationLog
from cs336_basics.layers import SwiGLU
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from cs336_basics.nn_utils import cross_entropy
from cs336_basics.optimizer import AdamW
from cs336_systems.ddp import BucketedDDP
from cs336_systems.distributed_utils import DistributedContext, PendingReduceScatter, all_gather_flat
from cs336_systems.fsdp import FSDP
from cs336_systems.sharded_optimizer import ShardedOptimizer
from model_parallel import PipelineStage, TensorParallelSwiGLU, gpipe_step, stage_layers

TOY_MODEL = dict(vocab_size=64, context_length=16, d_model=32, num_layers=2, num_heads=2, d_ff=64)


def lecture_demonstrations(ctx: DistributedContext, out_dir: str, inputs: dict) -> None:
    """Every demonstration of the notebook in one process group: starting one costs more than all they run.

    `inputs` holds each demonstration's keyword arguments under its name: "collectives" (timing sizes),
    "data_parallel" (data, lr), "feed_forward" (a SwiGLU's state, its input and the output's gradient, for the
    tensor-parallel and the FSDP layer), "pipeline" (a TransformerLM's config and state, a batch of tokens, the
    micro-batch counts to run).
    """
    torch.set_num_threads(1)
    ffn = inputs["feed_forward"]
    result = {
        "collectives": collectives(ctx, **inputs["collectives"]),
        "data_parallel": data_parallel_training(ctx, **inputs["data_parallel"]),
        "tensor_parallel": tensor_parallel_feed_forward(ctx, **ffn),
        "fsdp": fully_sharded_feed_forward(ctx, **ffn),
        "pipeline": pipeline_training(ctx, **inputs["pipeline"]),
    }
    torch.save(result, Path(out_dir) / f"rank{ctx.rank}.pt")


def collectives(ctx: DistributedContext, timing_sizes: list[int], repeats: int = 5) -> dict:
    """Run each collective on a tensor that holds `rank + 1` in every element and record what this rank ends
    with; then time all-reduces of `timing_sizes` float32 elements (best of `repeats`)."""
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
    return {"results": result, "all_reduce_seconds": seconds}


def data_parallel_training(ctx: DistributedContext, data: torch.Tensor, lr: float) -> dict:
    """Train the toy LM with the project's bucketed DDP, each rank on its slice of every global batch.

    Every rank starts from a *different* seed: the DDP wrapper must broadcast rank 0's weights, so the result
    can be compared with one process training on whole batches from seed 0. Alongside, a ZeRO-1 optimizer
    (AdamW state sharded over ranks) trains a second copy, to show that sharding changes memory, not results.
    `data` is (steps, global batch, context + 1) tokens; the messages of each copy's steps are recorded.
    """
    torch.manual_seed(ctx.rank)
    ddp = BucketedDDP(TransformerLM(ModelConfig(**TOY_MODEL)), bucket_size_mb=0.05)
    optimizer = AdamW(ddp.parameters(), lr=lr)
    torch.manual_seed(ctx.rank)
    zero = BucketedDDP(TransformerLM(ModelConfig(**TOY_MODEL)), bucket_size_mb=0.05)
    sharded = ShardedOptimizer(zero.parameters(), AdamW, lr=lr)
    per_rank = data.shape[1] // ctx.world_size
    log = CommunicationLog()
    losses = []
    for batch in data:
        local = batch[ctx.rank * per_rank : (ctx.rank + 1) * per_rank]
        x, y = local[:, :-1], local[:, 1:]
        for name, model, opt in (("DDP", ddp, optimizer), ("ZeRO-1", zero, sharded)):
            with log.recording(name):
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
    return {
        "losses": losses,
        "ddp_state": {k: v.clone() for k, v in ddp.module.state_dict().items()},
        "zero_state": {k: v.clone() for k, v in zero.module.state_dict().items()},
        "optimizer_state_bytes": state_bytes,
        "messages": [asdict(m) for m in log.messages],
    }


def tensor_parallel_feed_forward(
    ctx: DistributedContext, state: dict, x: torch.Tensor, grad_output: torch.Tensor
) -> dict:
    """The SwiGLU split over ranks by hidden units; every rank sees the whole batch `x`. Returns the output, the
    input's gradient, this rank's weight blocks' gradients and the messages of forward and backward."""
    full = SwiGLU(*state["w1.weight"].shape[::-1])
    full.load_state_dict(state)
    layer = TensorParallelSwiGLU(full, ctx.rank, ctx.world_size)
    x = x.clone().requires_grad_()
    log = CommunicationLog()
    with log.recording("forward"):
        out = layer(x)
    with log.recording("backward"):
        (out * grad_output).sum().backward()
    return {
        "output": out.detach(),
        "input_grad": x.grad,
        "weight_grads": {name: p.grad for name, p in layer.named_parameters()},
        "messages": [asdict(m) for m in log.messages],
    }


def fully_sharded_feed_forward(
    ctx: DistributedContext, state: dict, x: torch.Tensor, grad_output: torch.Tensor
) -> dict:
    """The same SwiGLU under the project's FSDP: each rank stores a flat shard of every weight and trains on its
    slice of the batch. Records the weight shapes a rank holds outside and inside the layer's forward, its
    shards' gradients and the messages of forward and backward."""
    layer = SwiGLU(*state["w1.weight"].shape[::-1])
    layer.load_state_dict(state)
    # The layer is a unit inside a model, as a Transformer block is: the root unit (weights outside every unit) is
    # kept gathered from forward to backward instead of gathered twice.
    fsdp = FSDP(torch.nn.Sequential(layer), unit_types=(SwiGLU,))
    inside_forward = {}
    module_names = {getattr(layer, name): name for name in ("w1", "w2", "w3")}

    def note_shape(module: torch.nn.Module, args: tuple) -> None:
        inside_forward[module_names[module]] = tuple(module.weight.shape)

    for module in module_names:
        module.register_forward_pre_hook(note_shape)  # after FSDP's own pre-hook: sees the gathered weight
    per_rank = x.shape[0] // ctx.world_size
    rows = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
    log = CommunicationLog()
    with log.recording("forward"):
        out = fsdp(x[rows])
    with log.recording("backward"):
        (out * grad_output[rows]).sum().backward()
        fsdp.finish_gradient_synchronization()
    return {
        "stored_shapes": {name: tuple(getattr(layer, name).weight.shape) for name in ("w1", "w2", "w3")},
        "forward_shapes": inside_forward,
        "shard_grads": {name: getattr(layer, name).weight.grad for name in ("w1", "w2", "w3")},
        "messages": [asdict(m) for m in log.messages],
    }


def pipeline_training(
    ctx: DistributedContext, config: dict, state: dict, tokens: torch.Tensor, micro_batch_counts: list[int]
) -> dict:
    """One GPipe training step of the TransformerLM split into consecutive stages, for each micro-batch count.
    Returns, per count, the rank's timeline of forward and backward work, the messages, the loss (last stage) and
    the gradients of this stage's parameters under the full model's names."""
    model = TransformerLM(ModelConfig(**config))
    model.load_state_dict(state)
    stage = PipelineStage(model, stage_layers(config["num_layers"], ctx.rank, ctx.world_size))
    names = {id(p): name for name, p in model.named_parameters()}
    runs = {}
    for count in micro_batch_counts:
        gpipe_step(stage, tokens, count, config["d_model"])  # warm-up: the first calls with new shapes are slower
        stage.zero_grad(set_to_none=True)
        log = CommunicationLog()
        dist.barrier()
        with log.recording("step"):
            events, loss = gpipe_step(stage, tokens, count, config["d_model"])
        runs[count] = {
            "events": [asdict(e) for e in events],
            "messages": [asdict(m) for m in log.messages],
            "loss": loss,
            "grads": {names[id(p)]: p.grad.clone() for p in stage.parameters()},
        }
    return runs
