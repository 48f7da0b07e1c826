"""Which of SDPA's kernels a CUDA training step ran (flash, cuDNN, memory-efficient or math), from a profile.

``F.scaled_dot_product_attention`` picks its backend per call from the inputs (and under ``torch.compile`` Inductor
keeps the choice made when tracing), so a benchmark comparing against "sdpa" should say which one it met. One step
runs under ``torch.profiler``; its CUDA kernel names are matched against the names of PyTorch's and cuDNN's attention
kernels:

- flash: ``pytorch_flash::flash_fwd_kernel<...>``, ``pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<...>``
  and their helpers (``flash_bwd_dot_do_o_kernel``, ``flash_bwd_convert_dq_kernel``, ``flash_fwd_splitkv_kernel``):
  FlashAttention-2 as vendored in ATen (``aten/src/ATen/native/transformers/cuda/flash_attn``, namespace
  ``pytorch_flash``);
- memory-efficient: ``fmha_cutlassF_<dtype>_<aligned>_<tiles>_sm<arch>(PyTorchMemEffAttention::AttentionKernel<...>
  ::Params)`` and ``fmha_cutlassB_...`` (``aten/src/ATen/native/transformers/cuda/mem_eff_attention/kernels``);
- cuDNN: kernels cuDNN generates at run time, named from ``cudnn_generated_fort_native_sdpa`` or
  ``cudnn_generated_fort_sass_sdpa`` followed by the architecture and tiles (prefixes read from cuDNN 9's
  ``libcudnn_engines_runtime_compiled``), and cuDNN's precompiled helpers in namespace ``cudnn::fusion``, which its
  SDPA backward launches around the generated kernel (seen on an H200: ``cudnn::fusion::compute_dot_do_o_specialized``,
  by its name rowsum(dO∘O), and ``cudnn::fusion::convert_dq_to_16bits``, dQ from its float32 accumulator);
- math: no kernel of its own (matmuls and a softmax), so it is named by its ATen op,
  ``aten::_scaled_dot_product_attention_math``, and the kernels launched inside it are its own.

The ATen ops whose names start with ``aten::_scaled_dot_product`` are recorded too (the op PyTorch dispatched to,
e.g. ``aten::_scaled_dot_product_cudnn_attention``), and every kernel launched inside one that matches no pattern is
reported as ``unknown`` with its name, except work that belongs to no backend: ATen's own elementwise kernels
(``at::native::``: fills and copies) and the profiler's memory operations (``Memset (Device)``, ``Memcpy ...``),
which are not kernels.
"""

import re
from collections.abc import Callable, Iterable, Mapping

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

KERNEL_PATTERNS = {
    "flash": re.compile(r"\bpytorch_flash::flash_(fwd|bwd)_"),
    "efficient": re.compile(r"\bfmha_cutlass[FB]_"),
    "cudnn": re.compile(r"\bcudnn_generated_fort_(native|sass)_sdpa|\bcudnn::fusion::"),
}
"""Backend -> a pattern its CUDA kernel names match (see the module docstring for where they come from)."""
NO_BACKEND_WORK = re.compile(r"\bat::native::|^Mem(set|cpy) ")
"""What the SDPA ops may run around the attention kernels that names no backend: ATen's own kernels (elementwise
fills and copies) and the profiler's memory operations (``Memset (Device)``, ``Memcpy DtoD (Device -> Device)``)."""
SDPA_OP_PREFIX = "aten::_scaled_dot_product"
MATH_OP = "aten::_scaled_dot_product_attention_math"
UNKNOWN = "unknown"


def classify_kernel(name: str) -> str | None:
    """The SDPA backend whose kernel this is, or None."""
    return next((backend for backend, pattern in KERNEL_PATTERNS.items() if pattern.search(name)), None)


def classify_step(kernels: Iterable[str], kernels_in_sdpa_ops: Mapping[str, str], sdpa_ops: Iterable[str]) -> dict:
    """``kernels`` (every CUDA kernel name of the step), ``kernels_in_sdpa_ops`` (kernel name -> the SDPA ATen op it
    ran inside) and ``sdpa_ops`` (those ops' names) -> ``backend`` (the backends found, ``+``-joined, ``unknown``
    among them when an SDPA op ran a kernel that matches no pattern or nothing matched), ``kernels`` (name ->
    backend: a pattern's, ``math`` for the math op's own kernels, or ``unknown``) and ``ops``."""
    named = {name: backend for name in kernels if (backend := classify_kernel(name))}
    for name, op in kernels_in_sdpa_ops.items():
        if name not in named and not NO_BACKEND_WORK.search(name):
            named[name] = "math" if op == MATH_OP else UNKNOWN
    ops = sorted(set(sdpa_ops))
    found = sorted({backend for backend in named.values() if backend != UNKNOWN})
    if not found and MATH_OP in ops:
        found = ["math"]
    if UNKNOWN in named.values() or not found:
        found.append(UNKNOWN)
    return {"backend": " + ".join(found), "kernels": dict(sorted(named.items())), "ops": ops}


def profile_sdpa_backend(step: Callable[[], None], device: torch.device) -> dict:
    """Run ``step`` once under ``torch.profiler`` (CPU activity, and CUDA's on a GPU) and classify its kernels
    (:func:`classify_step`)."""
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if on_gpu else [ProfilerActivity.CPU]
    with profile(activities=activities) as profiler:
        step()
        if on_gpu:
            torch.cuda.synchronize(device)
    events = profiler.events()
    kernels = {event.name for event in events if event.device_type == DeviceType.CUDA}
    sdpa_ops = [event for event in events if event.name.startswith(SDPA_OP_PREFIX)]
    inside = {}
    for op in sdpa_ops:
        stack = [op]
        while stack:  # the op's kernels and those of the ops it called
            event = stack.pop()
            inside.update({kernel.name: op.name for kernel in event.kernels if kernel.name not in inside})
            stack.extend(event.cpu_children)
    return classify_step(kernels, inside, (event.name for event in sdpa_ops))
