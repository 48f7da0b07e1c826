"""Tensor and pipeline parallelism built from `torch.distributed` calls, for notebook 07.

The project's `cs336_systems` implements data parallelism, ZeRO-1 and FSDP; these two strategies exist only for the
lecture, so they are written here, small enough to read, around the `cs336_basics` modules they split:

* tensor parallelism (Megatron-LM, Shoeybi et al. 2019): a SwiGLU feed-forward whose first matrices are split by
  output columns and whose last matrix is split by input rows, so the only communication is one all-reduce of
  activations in the forward pass and one in the backward pass;
* pipeline parallelism (GPipe, Huang et al. 2019): consecutive layers of a `TransformerLM` per rank, micro-batches
  sent forward as activations and backward as activation gradients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from cs336_basics.layers import Linear, SwiGLU, silu
from cs336_basics.model import TransformerLM
from cs336_basics.nn_utils import cross_entropy
from jaxtyping import Float, Int
from torch import Tensor, nn


class _CopyToTensorParallel(torch.autograd.Function):
    """Megatron's `f`: every rank needs the whole input (identity forward), and the input's gradient is the sum
    of the ranks' partial gradients (all-reduce backward)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad


class _ReduceFromTensorParallel(torch.autograd.Function):
    """Megatron's `g`: the output is the sum of the ranks' partial outputs (all-reduce forward), and every rank
    receives that sum's whole gradient (identity backward)."""

    @staticmethod
    def forward(ctx, partial: Tensor) -> Tensor:
        total = partial.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


def shard_range(size: int, rank: int, world_size: int) -> slice:
    """This rank's contiguous block of `size` rows; `size` must split evenly."""
    if size % world_size:
        raise ValueError(f"{size} does not split evenly over {world_size} ranks")
    block = size // world_size
    return slice(rank * block, (rank + 1) * block)


class TensorParallelSwiGLU(nn.Module):
    """`w2(silu(w1 x) * w3 x)` with this rank's `d_ff / p` hidden units: `w1`, `w3` column-parallel (their output
    rows), `w2` row-parallel (its input columns). `silu(w1 x) * w3 x` is element-wise per hidden unit, so each rank
    computes its units without communication, and `w2`'s partial products add up to the full output."""

    def __init__(self, full: SwiGLU, rank: int, world_size: int):
        super().__init__()
        d_ff, d_model = full.w1.weight.shape
        units = shard_range(d_ff, rank, world_size)
        self.w1 = Linear(d_model, units.stop - units.start)
        self.w3 = Linear(d_model, units.stop - units.start)
        self.w2 = Linear(units.stop - units.start, d_model)
        with torch.no_grad():
            self.w1.weight.copy_(full.w1.weight[units])
            self.w3.weight.copy_(full.w3.weight[units])
            self.w2.weight.copy_(full.w2.weight[:, units])

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        x = _CopyToTensorParallel.apply(x)
        partial = self.w2(silu(self.w1(x)) * self.w3(x))
        return _ReduceFromTensorParallel.apply(partial)


class PipelineStage(nn.Module):
    """Consecutive blocks `layers` of a `TransformerLM`; the first stage also embeds tokens, the last applies the
    final norm and the LM head. The stages of one model, run in order, compute exactly its forward pass."""

    def __init__(self, model: TransformerLM, layers: range):
        super().__init__()
        self.is_first, self.is_last = layers.start == 0, layers.stop == len(model.layers)
        self.embed = model.token_embeddings if self.is_first else None
        self.blocks = nn.ModuleList(model.layers[i] for i in layers)
        self.head = nn.Sequential(model.ln_final, model.lm_head) if self.is_last else None

    def forward(self, x: Tensor) -> Tensor:
        """Token ids `(batch, seq)` on the first stage, hidden states `(batch, seq, d_model)` on the others."""
        if self.embed is not None:
            x = self.embed(x)
        positions = torch.arange(x.shape[1])
        for block in self.blocks:
            x = block(x, positions)
        return self.head(x) if self.head is not None else x


def stage_layers(num_layers: int, rank: int, world_size: int) -> range:
    """The blocks this rank runs: an even split of `num_layers`."""
    block = shard_range(num_layers, rank, world_size)
    return range(block.start, block.stop)


@dataclass(frozen=True)
class PipelineEvent:
    """One unit of work on a rank: `kind` "F" or "B", micro-batch index, start and end (seconds, monotonic clock
    shared by the processes of one machine). Waiting for a neighbour is not inside any event."""

    kind: str
    micro_batch: int
    start: float
    end: float


def gpipe_step(
    stage: PipelineStage,
    tokens: Int[Tensor, "batch seq_plus_1"],
    micro_batches: int,
    d_model: int,
) -> tuple[list[PipelineEvent], float]:
    """One training step's forward and backward with the GPipe schedule: all micro-batches forward, then all
    backward (last first). Each rank gets the whole batch of tokens but uses only what its stage needs (the first
    the inputs, the last the targets). Gradients accumulate in `stage`'s parameters; the loss of each micro-batch
    is divided by `micro_batches`, so they add up to the full batch's mean loss (returned on the last stage)."""
    rank = dist.get_rank()
    inputs, targets = tokens[:, :-1].chunk(micro_batches), tokens[:, 1:].chunk(micro_batches)
    events: list[PipelineEvent] = []
    received: list[Tensor] = []  # the activations each micro-batch got from the previous stage
    outputs: list[Tensor] = []  # what this stage produced: activations to send on, or the loss on the last stage
    for i in range(micro_batches):
        if stage.is_first:
            x = inputs[i]
        else:
            x = torch.empty(*inputs[i].shape, d_model)
            dist.recv(x, src=rank - 1)
            x.requires_grad_()
        start = time.perf_counter()
        out = stage(x)
        if stage.is_last:
            out = cross_entropy(out, targets[i]) / micro_batches
        events.append(PipelineEvent("F", i, start, time.perf_counter()))
        if not stage.is_last:
            dist.send(out.detach(), dst=rank + 1)
        received.append(x)
        outputs.append(out)
    for i in reversed(range(micro_batches)):
        if stage.is_last:
            grad = None
        else:
            grad = torch.empty_like(outputs[i])
            dist.recv(grad, src=rank + 1)
        start = time.perf_counter()
        outputs[i].backward(grad)
        events.append(PipelineEvent("B", i, start, time.perf_counter()))
        if not stage.is_first:
            dist.send(received[i].grad, dst=rank - 1)
    loss = sum(out.item() for out in outputs) if stage.is_last else float("nan")
    return events, loss
