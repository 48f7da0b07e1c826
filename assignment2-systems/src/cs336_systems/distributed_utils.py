"""Process-group plumbing shared by the data-parallel wrappers, their tests and the benchmarks.

Collectives here are written against what every backend supports: gloo in torch 2.6 lacks `ReduceOp.AVG` and
the tensor forms of reduce-scatter/all-gather, so averages are SUM-then-divide and the gloo paths fall back to
`all_reduce` / list `all_gather`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job: its rank, the world size and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str


def find_free_port() -> int:
    """A TCP port that was free a moment ago (good enough for local multi-process tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def device_for(local_rank: int, backend: str) -> torch.device:
    """NCCL needs one GPU per rank; gloo runs on the CPU (GPUs, if any, are shared round-robin)."""
    if backend == "nccl":
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


# NVLink multicast (NCCL's NVLS, PyTorch symmetric memory, NVSHMEM) must stay off on shared multi-GPU hosts: it
# can take the host's GPUs out of service. Each library reads its variable when its communicator is created, so
# forcing them before `init_process_group` covers any launcher's environment.
NCCL_SAFE_ENVIRONMENT = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def init_from_env(backend: str | None = None) -> DistributedContext:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*)."""
    for name, value in NCCL_SAFE_ENVIRONMENT.items():
        os.environ[name] = value
    backend = backend or default_backend()
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(f"not launched by torchrun: environment lacks {', '.join(missing)}")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = device_for(local_rank, backend)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, device, backend)


def _spawned_worker(rank: int, world_size: int, backend: str, port: int, fn: Callable[..., None], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="localhost", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
    os.environ["LOCAL_RANK"] = str(rank)
    ctx = init_from_env(backend)
    try:
        fn(ctx, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., None], world_size: int, *args, backend: str = "gloo", start_method: str = "spawn") -> None:
    """Run `fn(ctx, *args)` in `world_size` processes joined into one group; re-raises a rank's error.

    "fork" starts in milliseconds instead of re-importing torch per rank, but is only safe while the parent has
    not initialised CUDA; "spawn" is always safe.
    """
    port = find_free_port()
    mp.start_processes(
        _spawned_worker, args=(world_size, backend, port, fn, args), nprocs=world_size, start_method=start_method
    )


def broadcast_module_state(module: nn.Module, src: int = 0) -> None:
    """Make every rank hold rank `src`'s parameters (frozen ones too) and buffers."""
    with torch.no_grad():
        for tensor in chain(module.parameters(), module.buffers()):
            dist.broadcast(tensor.data, src=src)


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Unique parameters that receive gradients, in `module.parameters()` order (tied weights appear once)."""
    return [p for p in module.parameters() if p.requires_grad]


def all_reduce_mean_(tensors: Iterable[torch.Tensor]) -> None:
    """Average each tensor over ranks in place (SUM then divide, which every backend supports)."""
    world_size = dist.get_world_size()
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(world_size)


def _uses_tensor_collectives() -> bool:
    return dist.get_backend() == "nccl"


def all_gather_flat(output: torch.Tensor, shard: torch.Tensor, async_op: bool = False):
    """Concatenate every rank's equal-sized 1-D `shard` into `output` (length world_size * shard.numel())."""
    if _uses_tensor_collectives():
        return dist.all_gather_into_tensor(output, shard, async_op=async_op)
    return dist.all_gather(list(output.chunk(dist.get_world_size())), shard, async_op=async_op)


class PendingReduceScatter:
    """An in-flight reduce-scatter: `wait()` returns this rank's chunk of the element-wise SUM over ranks."""

    def __init__(self, full: torch.Tensor):
        world_size, rank = dist.get_world_size(), dist.get_rank()
        self._chunk_size = full.numel() // world_size
        if _uses_tensor_collectives():
            self._result = full.new_empty(self._chunk_size)
            self._work = dist.reduce_scatter_tensor(self._result, full, op=dist.ReduceOp.SUM, async_op=True)
        else:  # gloo: all-reduce and keep our chunk (portable back to torch 2.6)
            self._result = full.narrow(0, rank * self._chunk_size, self._chunk_size)
            self._work = dist.all_reduce(full, op=dist.ReduceOp.SUM, async_op=True)

    def wait(self) -> torch.Tensor:
        self._work.wait()
        return self._result
