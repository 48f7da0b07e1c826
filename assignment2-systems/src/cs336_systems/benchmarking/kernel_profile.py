"""Which kernels one model step spends its GPU time in, per phase and by kind (handout problem ``nsys_profile``).

Nsight Systems cannot write reports on our GPU machine, so the same kernel-level data comes from ``torch.profiler``
with CUDA activity (CUPTI, as in nsys). :func:`profile_kernels` runs ``config.warmup`` untimed steps, then profiles
one step: the whole step in a ``step`` range, each phase (forward, backward, optimizer_step) in a
``record_function`` range of its name that ends with a synchronize, and with ``attention="naive"`` each attention
stage of every layer in a range (:data:`~cs336_systems.benchmarking.naive_attention.STAGES`). It returns per range
the kernels' total time, the kernels ranked by it (calls, share) and the time per category (:func:`classify_kernel`:
matmul, softmax, elementwise, reduction, attention, optimizer, other), the host wall time of each phase, and for
the naive attention each stage's time next to its FLOPs (:func:`naive_attention_flops`).

Attribution: a kernel belongs to every range whose host interval contains the start of its launch call
(``cudaLaunchKernel`` and kin, matched to the kernel by CUPTI's correlation id). The launch time, not the profiler's
tree of CPU events (``cpu_parent``), because that tree is per thread and autograd launches the backward's CUDA
kernels from its own device thread, outside the main thread's ``backward`` range; the phases run one after
another, so their host intervals separate their kernels whatever thread launched them. One profiler session rather
than one per phase, because the nested attention ranges need in-session attribution anyway and a session stopped
and started between phases would put host gaps into the step. A kernel without a launch record (counted in
``unlinked_kernels``; none on an H200 with torch 2.11) falls back to its own start on the GPU, which the synchronize
at the end of each phase keeps inside the phase's range. With CUDA activity each range also appears on the GPU's
timeline (``gpu_user_annotation``, later than on the host): those are neither kernels nor intervals to attribute by.

On a CPU there are no kernels: the ATen ops stand in for them, each with its self CPU time, so the same code runs
(and is tested) without a GPU; ``time_source`` says which was measured.
"""

import re
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import torch
from cs336_basics.model_config import ModelConfig
from torch.autograd import DeviceType
from torch.autograd.profiler_util import EventList
from torch.profiler import ProfilerActivity, profile, record_function

from cs336_systems.benchmarking.kernel_times import is_attention_kernel, launch_times
from cs336_systems.benchmarking.model_benchmark import (
    PHASES,
    ModelBenchmarkConfig,
    _released,
    _step_phases,
    _synchronizer,
    is_out_of_memory,
    warm_up,
)
from cs336_systems.benchmarking.naive_attention import STAGES

STEP = "step"
CATEGORIES = ("matmul", "attention", "softmax", "reduction", "elementwise", "optimizer", "other")
_ATEN = r"\baten::"
_PATTERNS = {  # checked in this order: the first match names the category
    "optimizer": re.compile(r"multi_tensor_apply|_foreach_|fused_adam", re.IGNORECASE),
    "matmul": re.compile(
        r"gemm|gemv|xmma|cutlass|cublas|nvjet|(volta|turing|ampere|hopper)_|matmul|triton_tem_"
        rf"|{_ATEN}(mm|bmm|addmm|baddbmm|addbmm|mv|addmv|dot)\b",
        re.IGNORECASE,
    ),
    "softmax": re.compile(r"softmax", re.IGNORECASE),
    "reduction": re.compile(
        rf"reduce|triton_(red|per)_|\bcub::|{_ATEN}(sum|mean|amax|amin|max|min|argmax|argmin|logsumexp|norm"
        r"|linalg_vector_norm|var|std|prod|all|any)\b"
    ),
    "elementwise": re.compile(
        rf"elementwise|triton_poi_|{_ATEN}(add|sub|rsub|mul|div|neg|exp|log|sqrt|rsqrt|reciprocal|pow|sigmoid|silu"
        r"|gelu|relu|tanh|sin|cos|where|masked_fill|fill|zero|copy|clamp|lerp|addcmul|addcdiv|triu|tril)_?\b"
    ),
}
"""Category -> a pattern its kernel names match. Matmul: cuBLAS/cuBLASLt GEMMs by their families (``sm90_xmma_gemm``,
``ampere_sgemm``, ``nvjet_sm90``, CUTLASS, split-K ``cublasLt::splitKreduce``), Inductor's matmul templates and
ATen's matmul ops (CPU). Attention (checked first, by :func:`kernel_times.is_attention_kernel`): SDPA's flash,
memory-efficient and cuDNN kernels and ours. Elementwise and reduction: ATen's ``*elementwise_kernel`` and
``reduce_kernel`` templates and Inductor's pointwise (``triton_poi_``) and reduction (``triton_red_``/``_per_``)
kernels. ``Memcpy``/``Memset`` records, copies like ``CatArrayBatchedCopy`` and the embedding's index kernels are
other."""


def classify_kernel(name: str) -> str:
    """The category of :data:`CATEGORIES` a kernel (or, on a CPU, an ATen op) belongs to, from its name alone."""
    if is_attention_kernel(name) or name.startswith("aten::_scaled_dot_product") or "fmha" in name:
        return "attention"
    return next((category for category, pattern in _PATTERNS.items() if pattern.search(name)), "other")


@dataclass(frozen=True)
class KernelRecord:
    """One kernel run: its name, its time on the device and when its launch started on the host (profile clock)."""

    name: str
    duration_us: float
    launched_us: float


@dataclass(frozen=True)
class Range:
    """One host interval of a named range (a phase, the step, one layer's attention stage), in µs."""

    name: str
    start_us: float
    end_us: float


def summarize_kernels(kernels: Iterable[KernelRecord]) -> dict:
    """``kernel_ms`` (the kernels' total time), ``kernels`` (one entry per name, most time first: ``category``,
    ``calls``, ``total_ms``, ``mean_us`` and ``share`` of the total) and ``categories`` (category -> ``ms``,
    ``share`` and ``calls``, every category of :data:`CATEGORIES` present)."""
    per_name: dict[str, list[float]] = {}
    for kernel in kernels:
        entry = per_name.setdefault(kernel.name, [0.0, 0])
        entry[0] += kernel.duration_us
        entry[1] += 1
    total_us = sum(us for us, _ in per_name.values())

    def share(us: float) -> float:
        return us / total_us if total_us else 0.0

    ranked = sorted(per_name.items(), key=lambda item: (-item[1][0], item[0]))
    entries = [
        {
            "name": name,
            "category": classify_kernel(name),
            "calls": calls,
            "total_ms": us / 1e3,
            "mean_us": us / calls,
            "share": share(us),
        }
        for name, (us, calls) in ranked
    ]
    categories = {category: {"ms": 0.0, "share": 0.0, "calls": 0} for category in CATEGORIES}
    for entry in entries:
        category = categories[entry["category"]]
        category["ms"] += entry["total_ms"]
        category["calls"] += entry["calls"]
    for category in categories.values():
        category["share"] = share(category["ms"] * 1e3)
    return {"kernel_ms": total_us / 1e3, "kernels": entries, "categories": categories}


def attribute(kernels: Iterable[KernelRecord], ranges: Iterable[Range]) -> dict[str, list[KernelRecord]]:
    """Range name -> the kernels launched inside any of its intervals (a name's intervals must not overlap each
    other; intervals of different names may nest, and a kernel then counts for each)."""
    by_name: dict[str, list[Range]] = {}
    for interval in ranges:
        by_name.setdefault(interval.name, []).append(interval)
    starts = {}
    for name, intervals in by_name.items():
        intervals.sort(key=lambda interval: interval.start_us)
        starts[name] = [interval.start_us for interval in intervals]
    attributed: dict[str, list[KernelRecord]] = {name: [] for name in by_name}
    for kernel in kernels:
        for name, intervals in by_name.items():
            index = bisect_right(starts[name], kernel.launched_us) - 1
            if index >= 0 and kernel.launched_us <= intervals[index].end_us:
                attributed[name].append(kernel)
    return attributed


def naive_attention_flops(model: ModelConfig, batch_size: int) -> dict[str, float]:
    """FLOPs of the naive attention's stages in one forward, summed over the layers. Both matmuls (QKᵀ and PV) are
    ``2·b·h·n²·d_head``; the softmax (``cs336_basics.layers.softmax``: row max, subtract, exp, row sum, divide) is
    5 per score, ``5·b·h·n²``, counting exp as one. The score stage's scaling and causal mask (2 per score) are left
    out, as the handout's count does; the naive attention computes every score, masked or not."""
    heads, n = model.num_heads, model.context_length
    scores = batch_size * heads * n * n * model.num_layers
    matmul = 2.0 * scores * (model.d_model // heads)
    scores_stage, softmax_stage, matmul_stage = STAGES
    return {scores_stage: matmul, softmax_stage: 5.0 * scores, matmul_stage: matmul}


def attention_stage_report(stage_kernels: Mapping[str, list[KernelRecord]], flops: Mapping[str, float]) -> dict:
    """Each stage's kernel summary and FLOPs, and the softmax against the two matmuls: ``softmax_ms`` (the softmax
    stage's kernels), ``matmul_ms`` (the GEMM kernels of the other two stages, whose FLOPs are the ones counted),
    ``time_ratio`` and ``flop_ratio`` (softmax over matmuls)."""
    scores_stage, softmax_stage, matmul_stage = STAGES
    stages = {name: {**summarize_kernels(stage_kernels.get(name, [])), "flops": flops[name]} for name in STAGES}
    softmax_ms = stages[softmax_stage]["kernel_ms"]
    matmul_ms = sum(stages[name]["categories"]["matmul"]["ms"] for name in (scores_stage, matmul_stage))
    matmul_flops = flops[scores_stage] + flops[matmul_stage]
    return {
        "stages": stages,
        "softmax_ms": softmax_ms,
        "matmul_ms": matmul_ms,
        "time_ratio": softmax_ms / matmul_ms if matmul_ms else None,
        "flop_ratio": flops[softmax_stage] / matmul_flops,
    }


def _is_annotation(event, range_names: set[str]) -> bool:
    """A ``record_function`` range: on the host, and with CUDA activity also its copy on the GPU's timeline
    (``gpu_user_annotation``, spanning the range's kernels there), which is neither a kernel nor a host interval."""
    return event.name in range_names or bool(getattr(event, "is_user_annotation", False))


def collect(events: Iterable, range_names: Iterable[str], on_gpu: bool) -> tuple[list[KernelRecord], list[Range], int]:
    """The profile's kernels (CUDA kernels on a GPU, else ATen ops by self CPU time), the host intervals of the
    ranges named ``range_names`` and the number of kernels with no launch record."""
    names = set(range_names)
    host = [e for e in events if e.device_type == DeviceType.CPU]
    ranges = [Range(e.name, e.time_range.start, e.time_range.end) for e in host if e.name in names]
    if not on_gpu:
        ops = [
            KernelRecord(e.name, e.self_cpu_time_total, e.time_range.start)
            for e in host
            if not _is_annotation(e, names)
        ]
        return ops, ranges, 0
    launches = launch_times(host)
    kernels, unlinked = [], 0
    for event in events:
        if event.device_type != DeviceType.CUDA or _is_annotation(event, names):
            continue
        launched = launches.get(event.id)
        if launched is None:
            unlinked += 1
            launched = event.time_range.start
        kernels.append(KernelRecord(event.name, event.time_range.elapsed_us(), launched))
    return kernels, ranges, unlinked


def profiled_step(phases: list[tuple[str, Callable[[], object]]], device: torch.device) -> tuple[EventList, dict]:
    """Run one step under ``torch.profiler`` (CPU activity, and CUDA's on a GPU), each phase in a range of its name
    that ends with a synchronize: the profiler's events and each phase's host wall time in ms."""
    synchronize = _synchronizer(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    wall_ms = {}
    with profile(activities=activities) as profiler, record_function(STEP):
        for name, run in phases:
            with record_function(name):
                start = time.perf_counter()
                run()
                synchronize()
                wall_ms[name] = (time.perf_counter() - start) * 1e3
    wall_ms[STEP] = sum(wall_ms.values())
    return profiler.events(), wall_ms


def profile_kernels(config: ModelBenchmarkConfig) -> dict:
    """One profiled steady-state step of ``config``: the config, ``status`` ("ok" or "OOM"), ``time_source``,
    ``wall_ms`` (per phase and ``step``: host time under the profiler, which adds host overhead), ``phases``
    (phase and ``step`` -> :func:`summarize_kernels`), ``unlinked_kernels`` and with ``attention="naive"``
    ``attention_stages`` (:func:`attention_stage_report`, the forward's stages)."""
    device = torch.device(config.device)
    on_gpu = device.type == "cuda"
    result: dict = {**asdict(config), "status": "ok"}
    result["time_source"] = "CUDA kernels" if on_gpu else "CPU ops (self time)"
    phase_names = PHASES[config.mode]
    stage_names = STAGES if config.attention == "naive" else ()
    with _released(device):
        try:
            phases = _step_phases(config, device, profiler_ranges=bool(stage_names))
            warm_up(phases, config.warmup, device)
            events, result["wall_ms"] = profiled_step(phases, device)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            result["status"] = "OOM"
            return result
        kernels, ranges, result["unlinked_kernels"] = collect(events, [*phase_names, STEP, *stage_names], on_gpu)
        del events
    by_range = attribute(kernels, ranges)
    result["phases"] = {name: summarize_kernels(by_range.get(name, [])) for name in [*phase_names, STEP]}
    if stage_names:
        flops = naive_attention_flops(config.model, config.batch_size)
        result["attention_stages"] = attention_stage_report(by_range, flops)
    return result


def short_kernel_name(name: str, width: int = 60) -> str:
    """A kernel name for a table: without ``void``, template arguments and parameter lists, at most ``width``."""
    name = re.sub(r"^void ", "", name)
    for bracket in "<(":
        if (cut := name.find(bracket)) > 0:
            name = name[:cut] + bracket + "…" + {"<": ">", "(": ")"}[bracket]
            break
    return name if len(name) <= width else name[: width - 1] + "…"


def kernel_profile_row(result: dict) -> dict:
    """The compact row of a :func:`profile_kernels` result: the cell, kernel ms per phase and step, host wall ms of
    the step, the forward's top kernel (name, calls, share), matmul share in the forward and the whole step, and for
    the naive attention the softmax's time and FLOPs against the matmuls'."""
    keys = ["size", "context_length", "batch_size", "precision", "mode", "attention", "compile", "warmup", "status"]
    row = {key: result[key] for key in keys}
    if result["status"] != "ok":
        return row
    row["time_source"] = result["time_source"]
    for name, summary in result["phases"].items():
        row[f"{name}_kernel_ms"] = summary["kernel_ms"]
    row["forward_wall_ms"] = result["wall_ms"]["forward"]
    row["step_wall_ms"] = result["wall_ms"][STEP]
    forward = result["phases"]["forward"]
    if forward["kernels"]:
        top = forward["kernels"][0]
        row |= {"top_forward_kernel": top["name"], "top_forward_calls": top["calls"], "top_forward_share": top["share"]}
    row["forward_matmul_share"] = forward["categories"]["matmul"]["share"]
    row["step_matmul_share"] = result["phases"][STEP]["categories"]["matmul"]["share"]
    if stages := result.get("attention_stages"):
        row |= {f"attention_{key}": stages[key] for key in ("softmax_ms", "matmul_ms", "time_ratio", "flop_ratio")}
    row["unlinked_kernels"] = result["unlinked_kernels"]
    return row
