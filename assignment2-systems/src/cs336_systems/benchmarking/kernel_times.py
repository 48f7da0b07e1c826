"""CUDA time of a training step, and the attention kernels' share of it, from a profile.

Wall-clock step times of two attention backends can differ by more than the backends do: on a power-capped GPU the
clock drifts between rows, and eager steps are partly host-bound. On an H200 one backend's repeated rows in one process
differed by up to 10 % (sixteenth H200 run), while the CUDA time of its steps moved by 0.1 %. The GPU time of the
kernels compares backends directly: the step's total (what every kernel took, summed) and the attention kernels'
part, per step, with each attention kernel's time and calls.

Attention kernels are SDPA's (flash, memory-efficient and cuDNN, by
:data:`~cs336_systems.benchmarking.sdpa_backend.KERNEL_PATTERNS`) and ours: the Triton kernels
``flash_fwd_kernel``, ``flash_bwd_preprocess_kernel``, ``flash_bwd_kernel``, ``flash_bwd_atomic_dq_kernel`` and the
Gluon ``gluon_forward_kernel`` (profiles name a Triton kernel by its function name, with no namespace; PyTorch's own
flash kernels carry ``pytorch_flash::``).
"""

import re
from collections.abc import Callable, Iterable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from cs336_systems.benchmarking.sdpa_backend import classify_kernel

OUR_KERNELS = re.compile(r"^(flash_(fwd|bwd)\w*|gluon_(forward|backward))_kernel$")
"""Names of our attention kernels as a profile reports them (``cs336_systems.flash_attention``)."""


def launch_times(events: Iterable) -> dict[int, float]:
    """Correlation id -> host start (µs) of every CUDA runtime or driver call in a profile (``cudaLaunchKernel``,
    ``cuLaunchKernelEx``, ``cudaMemcpyAsync``...): a kernel's record shares its launch call's id, which places the
    kernel in host time even when autograd launched it from its own thread."""
    return {e.id: e.time_range.start for e in events if e.device_type == DeviceType.CPU and e.name.startswith("cu")}


def is_attention_kernel(name: str) -> bool:
    return classify_kernel(name) is not None or OUR_KERNELS.match(name) is not None


def summarise_kernel_times(kernels: Iterable[tuple[str, float]], steps: int) -> dict:
    """``kernels``: (name, µs) of every CUDA kernel run in ``steps`` steps -> ``cuda_ms`` and ``attention_ms`` per
    step, and ``attention_kernels``: name -> ``us_per_step`` and ``calls_per_step`` of each attention kernel."""
    if steps < 1:
        raise ValueError(f"need at least one profiled step; got {steps}")
    total_us = 0.0
    attention: dict[str, list[float]] = {}
    for name, microseconds in kernels:
        total_us += microseconds
        if is_attention_kernel(name):
            entry = attention.setdefault(name, [0.0, 0])
            entry[0] += microseconds
            entry[1] += 1
    return {
        "cuda_ms": total_us / steps / 1e3,
        "attention_ms": sum(us for us, _ in attention.values()) / steps / 1e3,
        "attention_kernels": {
            name: {"us_per_step": us / steps, "calls_per_step": calls / steps}
            for name, (us, calls) in sorted(attention.items())
        },
    }


def profile_kernel_times(step: Callable[[], None], device: torch.device, steps: int = 3) -> dict:
    """Run ``step`` ``steps`` times under ``torch.profiler`` (CUDA activity) and summarise its kernels
    (:func:`summarise_kernel_times`). Needs a CUDA device: a CPU step has no kernels to time."""
    if device.type != "cuda":
        raise ValueError(f"kernel times need a CUDA device; got {device}")
    with profile(activities=[ProfilerActivity.CUDA]) as profiler:
        for _ in range(steps):
            step()
        torch.cuda.synchronize(device)
    kernels = (
        (event.name, event.time_range.elapsed_us())
        for event in profiler.events()
        if event.device_type == DeviceType.CUDA
    )
    return summarise_kernel_times(kernels, steps)
