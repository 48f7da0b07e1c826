"""Training throughput per attention backend (issue 17, "Use it"): tokens/s of whole training steps.

A step is forward + cross-entropy + backward + AdamW step of ``cs336_basics``'s TransformerLM under bf16 autocast,
with the attention core computed by each backend of ``ModelConfig.attention``: ``naive`` (the handout's
from-scratch attention), ``sdpa`` (PyTorch's fused kernels, the one SDPA picks) and ``flash_triton`` (our Triton
FlashAttention-2); ``sdpa_flash`` and ``sdpa_cudnn`` pin SDPA to its FlashAttention-2 or its cuDNN kernels (the
benchmark registers them), since SDPA's pick differs by GPU and version (cuDNN on an H200 with torch 2.11).
Every context length processes the same tokens per step (batch = tokens_per_step / context), eager and under
``torch.compile`` (dynamo is reset before every compiled configuration, so no configuration inherits another's
guards or dynamic shapes); each row's "vs sdpa" is its tokens/s over SDPA's at the same context and compile mode,
in the same run. ``--rounds R`` builds a context's backends together and times their steps in R rotated rounds, so
that the GPU's clock drift falls on all of them alike. After the sweep, a fresh model of each row runs again under
``torch.profiler`` (after the timings, so none is timed after a profiler session). For ``sdpa`` rows, one step's CUDA
kernel names say which SDPA backend it ran (flash, cuDNN, memory-efficient or math: the ``sdpa kernel`` column and
the JSON's ``sdpa_kernel`` and ``sdpa_profile``; ``cs336_systems.benchmarking.sdpa_backend``;
``--no-profile_sdpa``: not profiled). For every row, ``--profile_steps`` steps give the CUDA time per step of all
kernels and of the attention kernels (the ``GPU ms`` and ``attention ms`` columns, each attention kernel's in the
JSON; ``cs336_systems.benchmarking.kernel_times``; ``--no-profile_kernels``: not profiled), which compare backends
without the host's and the clock's noise. A configuration that runs out of
memory, or fails otherwise, becomes a row with that status and the sweep carries on. ``attention_backends.json`` and
``attention_backends.md`` in ``--out_dir`` are rewritten atomically after every configuration (and after each
profile), so an interrupted run keeps the rows it finished.

Run (GPU machine, repository root; the compiled configurations take most of the time, each compiling afresh, so
``--compile off`` and ``--compile on`` with two ``--out_dir`` split the sweep into two shorter runs):
    PYTHONPATH=assignment1-basics/src:assignment2-systems/src \\
        python3 assignment2-systems/benchmarks/bench_attention_backends.py --out_dir /tmp/attention_backends
Smoke run on the CPU (seconds; flash_triton only with TRITON_INTERPRET=1):
    ... bench_attention_backends.py --smoke --out_dir /tmp/attention_backends_smoke
"""

import dataclasses
import gc
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Literal

from cs336_basics.model_sizes import MODEL_SIZES
from cs336_basics.toolkit.cli import parse_config

BACKENDS = ("naive", "sdpa", "sdpa_flash", "sdpa_cudnn", "flash_triton")
DEFAULT_BACKENDS = ("naive", "sdpa", "flash_triton")
COMPILE_MODES = {"off": (False,), "on": (True,), "both": (False, True)}
PRECISIONS = ("bf16", "fp32")
SMOKE = {
    "size": "tiny",
    "contexts": [16, 32],
    "tokens_per_step": 64,
    "warmup": 1,
    "steps": 2,
    "compile": "off",
    "precision": "fp32",
    "device": "cpu",
}
"""What ``--smoke`` sets: the CPU-sized model and sweep (fp32: Triton's interpreter mishandles bf16 dots)."""
NOT_ON_CPU = "n/a (cpu)"
"""The ``sdpa kernel`` column on the CPU, where SDPA has no CUDA kernels to name."""


@dataclass(frozen=True)
class BenchConfig:
    """Training tokens/s of the model per attention backend, context length and compile mode."""

    out_dir: str = field(default="attention_backends_results", metadata={"help": "where the JSON and table go"})
    size: str = field(default="small", metadata={"help": f"model shape, one of {list(MODEL_SIZES)}"})
    contexts: list[int] = field(default_factory=lambda: [256, 1024, 4096], metadata={"help": "context lengths"})
    tokens_per_step: int = field(default=16384, metadata={"help": "batch x context, the same for every context"})
    backends: list[str] = field(default_factory=lambda: list(DEFAULT_BACKENDS), metadata={"help": f"of {BACKENDS}"})
    compile: Literal["off", "on", "both"] = field(default="both", metadata={"help": "torch.compile the model"})
    precision: Literal["bf16", "fp32"] = field(default="bf16", metadata={"help": "bf16 autocast (weights fp32)"})
    warmup: int = field(default=5, metadata={"help": "untimed steps first (they include compilation)"})
    steps: int = field(default=20, metadata={"help": "timed steps"})
    rounds: int = field(
        default=1,
        metadata={
            "help": "1: each row's model alone, timed in turn; more: a context's backends built together and their "
            "timed steps interleaved in this many rounds (fair under clock drift)"
        },
    )
    device: str = field(default="cuda", metadata={"help": "cuda, or cpu (flash_triton then needs TRITON_INTERPRET=1)"})
    profile_sdpa: bool = field(
        default=True, metadata={"help": "after the sweep, profile a step of each sdpa row to name its SDPA kernel"}
    )
    profile_kernels: bool = field(
        default=True,
        metadata={"help": "after the sweep, profile steps of each row: CUDA ms per step, and the attention kernels'"},
    )
    profile_steps: int = field(default=3, metadata={"help": "steps per kernel profile"})
    smoke: bool = field(default=False, metadata={"help": f"tiny CPU run, overriding {sorted(SMOKE)}"})

    def __post_init__(self):
        if self.size not in MODEL_SIZES:
            raise ValueError(f"size must be one of {list(MODEL_SIZES)}, got {self.size!r}")
        if unknown := sorted(set(self.backends) - set(BACKENDS)):
            raise ValueError(f"unknown backends {unknown}; choose from {BACKENDS}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {list(COMPILE_MODES)}, got {self.compile!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not self.contexts or not self.backends:
            raise ValueError("need at least one context length and one backend")
        for context in self.contexts:
            if context < 1 or self.tokens_per_step % context:
                raise ValueError(f"tokens_per_step={self.tokens_per_step} is not a multiple of context {context}")
        if self.warmup < 0 or self.steps < 1:
            raise ValueError(f"need warmup >= 0 and steps >= 1; got {self.warmup}, {self.steps}")
        if self.profile_steps < 1:
            raise ValueError(f"profile_steps must be at least 1; got {self.profile_steps}")
        if not 1 <= self.rounds <= self.steps:
            raise ValueError(f"rounds must be in [1, steps={self.steps}]; got {self.rounds}")


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(BenchConfig, description=__doc__)

import cs336_systems.flash_attention  # noqa: E402, F401  (registers the flash_triton backend)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from cs336_basics.attention_backends import CausalAttention, register_attention_backend  # noqa: E402
from cs336_basics.model import TransformerLM  # noqa: E402
from cs336_basics.model_sizes import model_config  # noqa: E402
from cs336_basics.nn_utils import cross_entropy  # noqa: E402
from cs336_basics.optimizer import AdamW  # noqa: E402
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from cs336_basics.toolkit.tables import records_table  # noqa: E402
from cs336_systems.benchmarking.kernel_times import profile_kernel_times  # noqa: E402
from cs336_systems.benchmarking.model_benchmark import is_out_of_memory  # noqa: E402
from cs336_systems.benchmarking.sdpa_backend import profile_sdpa_backend  # noqa: E402
from cs336_systems.benchmarking.timing import TimingStats, time_repeated  # noqa: E402
from cs336_systems.flash_attention.triton_function import TMA_ENV, autotuned_tma_name  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

PINNED_SDPA = {"sdpa_flash": SDPBackend.FLASH_ATTENTION, "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION}


def pinned_sdpa(kernel: SDPBackend) -> CausalAttention:
    """Causal SDPA restricted to one of its kernels (an error where that kernel cannot run these inputs)."""

    def causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(kernel):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return causal


def register_pinned_sdpa() -> None:
    """Make ``sdpa_flash`` and ``sdpa_cudnn`` model attention backends (idempotent)."""
    for name, kernel in PINNED_SDPA.items():
        register_attention_backend(name, pinned_sdpa(kernel))


def flash_triton_unavailable(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on ``device`` here, or None if they can."""
    if device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return "skipped: needs CUDA (or TRITON_INTERPRET=1 on the CPU)"


def _synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


def _release(device: torch.device) -> None:
    """Free what the previous configuration left (its model, optimizer state, a failed step's tensors)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def training_step(
    config: BenchConfig, backend: str, context: int, compiled: bool, device: torch.device
) -> Callable[[], None]:
    """One training step of a fresh model with ``backend`` at ``context`` on a fixed random batch."""
    model_cfg = model_config(config.size, context_length=context, attention=backend)
    model = TransformerLM(model_cfg, device=device)
    forward = torch.compile(model) if compiled else model
    optimizer = AdamW(model.parameters(), lr=1e-4)
    shape = (config.tokens_per_step // context, context)
    inputs = torch.randint(0, model_cfg.vocab_size, shape, device=device)
    targets = torch.randint(0, model_cfg.vocab_size, shape, device=device)
    autocast: AbstractContextManager = (
        torch.autocast(device.type, dtype=torch.bfloat16) if config.precision == "bf16" else nullcontext()
    )

    def step() -> None:
        with autocast:
            loss = cross_entropy(forward(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def prepare(
    config: BenchConfig, backend: str, context: int, compiled: bool, device: torch.device
) -> tuple[dict, Callable[[], None] | None]:
    """A row and the warmed-up step of ``backend`` at ``context``, or a row whose status says why there is no step
    (out of memory or another failure is a status, not a crash)."""
    row = {"backend": backend, "context": context, "batch": config.tokens_per_step // context, "compiled": compiled}
    if backend == "flash_triton" and (reason := flash_triton_unavailable(device)):
        return {**row, "status": reason}, None
    synchronize = _synchronizer(device)
    try:
        step = training_step(config, backend, context, compiled, device)
        start = time.perf_counter()
        for _ in range(config.warmup):  # includes compilation and the autotuning of the Triton kernels
            step()
        synchronize()
    except Exception as error:
        return {**row, "status": failure_status(error)}, None
    return {**row, "warmup_s": time.perf_counter() - start}, step


def failure_status(error: Exception) -> str:
    if is_out_of_memory(error):
        return "OOM"
    traceback.print_exc()
    first_line = (str(error).strip().splitlines() or [""])[0][:160]
    return f"error: {type(error).__name__}: {first_line}"


def with_timings(row: dict, seconds: list[float], config: BenchConfig, device: torch.device) -> dict:
    stats = TimingStats.from_seconds(seconds)
    row = {
        **row,
        "status": "ok",
        "step_ms": stats.mean_ms,
        "step_median_ms": statistics.median(seconds) * 1e3,
        "step_std_ms": stats.std_ms,
        "tokens_per_s": config.tokens_per_step / (stats.mean_ms / 1e3),
    }
    if device.type == "cuda":
        row["peak_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def measure(config: BenchConfig, backend: str, context: int, compiled: bool, device: torch.device) -> dict:
    """One row, its model alone on the device: warm-up, then ``steps`` timed steps."""
    _release(device)
    if compiled:
        torch._dynamo.reset()
    row, step = prepare(config, backend, context, compiled, device)
    if step is None:
        return row
    try:
        seconds = time_repeated(step, 0, config.steps, _synchronizer(device))
    except Exception as error:
        return {**row, "status": failure_status(error)}
    return with_timings(row, seconds, config, device)


def measure_interleaved(config: BenchConfig, context: int, compiled: bool, device: torch.device) -> list[dict]:
    """The rows of every backend at one context and compile mode, timed in ``rounds`` rounds: all models stay built,
    and each round times ``steps / rounds`` steps of each backend (after one untimed step), in an order rotated by
    one every round. The GPU's clock and temperature drift over a group (an H200 at its power cap) then falls on
    every backend alike, instead of on those timed last; sequential rows differed by up to 10 % between repeats of
    one backend (sixteenth H200 run). Peak memory includes the other backends' resident models."""
    _release(device)
    if compiled:
        torch._dynamo.reset()
    prepared = [prepare(config, backend, context, compiled, device) for backend in config.backends]
    seconds: dict[int, list[float]] = {index: [] for index, (_, step) in enumerate(prepared) if step is not None}
    failed: dict[int, str] = {}
    per_round = math.ceil(config.steps / config.rounds)
    synchronize = _synchronizer(device)
    for round_index in range(config.rounds):
        live = [index for index in seconds if index not in failed]
        shift = round_index % max(len(live), 1)
        for index in live[shift:] + live[:shift]:
            try:
                seconds[index] += time_repeated(prepared[index][1], 1, per_round, synchronize)
            except Exception as error:
                failed[index] = failure_status(error)
    rows = []
    for index, (row, _) in enumerate(prepared):
        if index in failed:
            row = {**row, "status": failed[index]}
        elif index in seconds:
            row = {**with_timings(row, seconds[index], config, device), "rounds": config.rounds}
        rows.append(row)
    return rows


def profile_fields(config: BenchConfig, row: dict, device: torch.device) -> dict:
    """What profiling a fresh model of a timed row adds: for ``sdpa`` rows (``--profile_sdpa``), ``sdpa_kernel``, the
    SDPA backend one step ran by its kernels' names (flash, cudnn, efficient, math or unknown;
    :mod:`cs336_systems.benchmarking.sdpa_backend`) and ``sdpa_profile``, the names and ATen ops it was read from; for
    every row (``--profile_kernels``), ``cuda_ms`` and ``attention_ms``, the CUDA time of all kernels and of the
    attention kernels per step over ``--profile_steps`` steps, and ``attention_kernels``, each attention kernel's
    (:mod:`cs336_systems.benchmarking.kernel_times`). Run after the whole sweep, so that no timed step follows a
    profiler session; compiled models compile again first (from Inductor's on-disk cache where it holds the sweep's
    graphs). On the CPU the SDPA column says it does not apply, and there are no kernel times."""
    wants_sdpa = config.profile_sdpa and row["backend"] == "sdpa"
    if device.type != "cuda" or not (wants_sdpa or config.profile_kernels):
        return {"sdpa_kernel": NOT_ON_CPU} if wants_sdpa else {}
    _release(device)
    if row["compiled"]:
        torch._dynamo.reset()
    fields: dict = {}
    try:
        step = training_step(config, row["backend"], row["context"], row["compiled"], device)
        step()  # compiles; the profiled steps are steady ones
        if wants_sdpa:
            profiled = profile_sdpa_backend(step, device)
            fields.update(sdpa_kernel=profiled.pop("backend"), sdpa_profile=profiled)
        if config.profile_kernels:
            fields.update(profile_kernel_times(step, device, config.profile_steps))
    except Exception as error:  # the row keeps its timings; the columns say why they are empty
        traceback.print_exc()
        failed = f"profile failed: {type(error).__name__}"
        if wants_sdpa and "sdpa_kernel" not in fields:
            fields["sdpa_kernel"] = failed
        if config.profile_kernels:
            fields["kernel_profile"] = failed
    return fields


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row with ``vs_sdpa``: its tokens/s over SDPA's at the same context and compile mode (>1 = faster)."""
    sdpa = {
        (row["context"], row["compiled"]): row["tokens_per_s"]
        for row in rows
        if row["backend"] == "sdpa" and row["status"] == "ok"
    }
    return [
        {**row, "vs_sdpa": row["tokens_per_s"] / sdpa[key]}
        if row["status"] == "ok" and (key := (row["context"], row["compiled"])) in sdpa
        else row
        for row in rows
    ]


COLUMNS = {
    "context": "context",
    "batch": "batch",
    "compiled": "compiled",
    "backend": "backend",
    "tokens_per_s": "tokens/s",
    "vs_sdpa": "vs sdpa",
    "step_ms": "step ms",
    "step_std_ms": "± ms",
    "step_median_ms": "median ms",
    "cuda_ms": "GPU ms",
    "attention_ms": "attention ms",
    "peak_GiB": "peak GiB",
    "sdpa_kernel": "sdpa kernel",
    "status": "status",
}


def write_results(config: BenchConfig, rows: list[dict], device: torch.device) -> None:
    """``attention_backends.json`` (config, machine, rows) and ``attention_backends.md`` (the table), atomically."""
    rows = with_ratios(rows)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    meta = {
        "device": machine,
        "torch": torch.__version__,
        "tma_switch": autotuned_tma_name(),
        "config": dataclasses.asdict(config),
    }
    write_json_atomic(os.path.join(config.out_dir, "attention_backends.json"), {**meta, "rows": rows})
    header = (
        f"{config.size} model, {config.tokens_per_step} tokens per step, {config.precision}, "
        f"forward + backward + AdamW step; {machine}, torch {torch.__version__}; flash_triton {TMA_ENV} "
        f"{autotuned_tma_name()}"
    )
    table = records_table([{**row, "compiled": "yes" if row["compiled"] else "no"} for row in rows], COLUMNS)
    write_text_atomic(os.path.join(config.out_dir, "attention_backends.md"), f"{header}\n\n{table}\n")


def run(config: BenchConfig) -> list[dict]:
    """The whole sweep; returns the rows (with ratios) it wrote."""
    if config.smoke:
        config = dataclasses.replace(config, **SMOKE)
    device = torch.device(config.device)
    register_pinned_sdpa()
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA GPU: pass --smoke (or --device cpu) to run on the CPU")
    rows: list[dict] = []
    groups = [(compiled, context) for compiled in COMPILE_MODES[config.compile] for context in config.contexts]
    for index, (compiled, context) in enumerate(groups, 1):
        mode = "compiled" if compiled else "eager"
        print(f"[{index}/{len(groups)}] context {context}, {mode}: {', '.join(config.backends)} ...", flush=True)
        if config.rounds > 1:
            group_rows = measure_interleaved(config, context, compiled, device)
        else:
            group_rows = [measure(config, backend, context, compiled, device) for backend in config.backends]
        for row in group_rows:
            result = f"{row['tokens_per_s']:,.0f} tokens/s" if row["status"] == "ok" else row["status"]
            print(f"[{index}/{len(groups)}] {row['backend']}, context {context}, {mode}: {result}", flush=True)
        rows += group_rows
        write_results(config, rows, device)
    for row in rows:
        if row["status"] != "ok" or not (fields := profile_fields(config, row, device)):
            continue
        row.update(fields)
        mode = "compiled" if row["compiled"] else "eager"
        found = [f"kernels of {fields['sdpa_kernel']}"] if "sdpa_kernel" in fields else []
        if "cuda_ms" in fields:
            found.append(f"{fields['cuda_ms']:.2f} GPU ms a step, attention {fields['attention_ms']:.2f}")
        print(f"{row['backend']}, context {row['context']}, {mode}: {'; '.join(found) or fields}", flush=True)
        write_results(config, rows, device)
    return with_ratios(rows)


def main(config: BenchConfig) -> None:
    rows = run(config)
    print(records_table([{**row, "compiled": "yes" if row["compiled"] else "no"} for row in rows], COLUMNS))


if __name__ == "__main__":
    main(CONFIG)
