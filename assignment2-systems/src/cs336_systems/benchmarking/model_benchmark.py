"""Time and memory-profile the assignment-1 Transformer at the handout's sizes.

``benchmark_model`` times forward (inference, no autograd graph) or forward, backward and the
AdamW step of a training step separately, with warm-up and a synchronize after every phase, in
float32 or under bf16 autocast, optionally ``torch.compile``d. ``profile_memory`` records one
steady-state step with ``torch.cuda.memory._record_memory_history`` and reports its peak, and can return the
step's snapshot with every allocation labelled by phase and block (:mod:`memory_labels`).
Running out of memory is a result (``status: "OOM"``), not a crash, so sweeps carry on.
"""

import gc
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass

import torch
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from cs336_basics.model_sizes import MODEL_SIZES, model_config
from cs336_basics.nn_utils import cross_entropy
from cs336_basics.optimizer import AdamW

from cs336_systems.benchmarking.memory_labels import label_backward_start, label_block_allocations, set_memory_label
from cs336_systems.benchmarking.naive_attention import use_naive_attention
from cs336_systems.benchmarking.timing import TimingStats, time_phases

MODES = ("forward", "forward_backward", "train_step")
PRECISIONS = ("fp32", "bf16")
ATTENTIONS = ("sdpa", "naive")  # the model's fused F.scaled_dot_product_attention, or the annotated from-scratch one
BATCH_SIZE = 4  # the handout's, for every model size
PHASES = {
    "forward": ["forward"],
    "forward_backward": ["forward", "backward"],
    "train_step": ["forward", "backward", "optimizer_step"],
}


@dataclass(frozen=True)
class ModelBenchmarkConfig:
    """One benchmark cell. ``mode="forward"`` is inference (no graph kept); the other modes time the
    forward with autograd on, then backward, then (``train_step``) AdamW's step and zeroing gradients.
    ``size`` names a shape of :data:`cs336_basics.model_sizes.MODEL_SIZES`."""

    size: str = "small"
    context_length: int = 512
    batch_size: int = BATCH_SIZE
    mode: str = "train_step"
    precision: str = "fp32"
    warmup: int = 5
    steps: int = 10
    compile: bool = False
    device: str = "cuda"
    nvtx: bool = True
    attention: str = "sdpa"

    def __post_init__(self):
        if self.size not in MODEL_SIZES:
            raise ValueError(f"size must be one of {list(MODEL_SIZES)}; got {self.size!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}; got {self.attention!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        if self.context_length < 1 or self.batch_size < 1:
            raise ValueError(f"need context_length, batch_size >= 1; got {self.context_length}, {self.batch_size}")

    @property
    def model(self) -> ModelConfig:
        return model_config(self.size, context_length=self.context_length)


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's allocator error, or a kernel/library reporting memory exhaustion as a RuntimeError."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
    )


def nvtx_annotator(enabled: bool) -> Callable[[str], AbstractContextManager]:
    """NVTX ranges (visible in nsys) when enabled and on CUDA, else no-op contexts."""
    if enabled and torch.cuda.is_available():
        return torch.cuda.nvtx.range
    return lambda name: nullcontext()


def with_profiler_ranges(annotate: Callable[[str], AbstractContextManager]) -> Callable[[str], AbstractContextManager]:
    """``annotate``'s ranges, each also a ``torch.profiler.record_function`` range of the same name, so a
    torch.profiler trace (:mod:`kernel_profile`) can attribute kernels to them as nsys does to the NVTX ones."""

    @contextmanager
    def both(name: str) -> Iterator[None]:
        with annotate(name), torch.profiler.record_function(name):
            yield

    return both


def annotate_blocks(
    model: TransformerLM,
    push: Callable[[str], object] = torch.cuda.nvtx.range_push,
    pop: Callable[[], object] = torch.cuda.nvtx.range_pop,
) -> None:
    """Open a range named ``block i`` around each Transformer block's forward, so nsys attributes
    kernels to layers. The hooks return None: a hook's return value would replace the block's input
    or output."""

    def opener(index: int):
        def hook(module, args) -> None:
            push(f"block {index}")

        return hook

    def closer(module, args, output) -> None:
        pop()

    for index, block in enumerate(model.layers):
        block.register_forward_pre_hook(opener(index))
        block.register_forward_hook(closer)


def _autocast(config: ModelBenchmarkConfig, device: torch.device) -> AbstractContextManager:
    if config.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


@contextmanager
def _released(device: torch.device) -> Iterator[None]:
    """Free everything the cell allocated, so the next cell (or OOM recovery) starts clean."""
    try:
        yield
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _step_phases(
    config: ModelBenchmarkConfig, device: torch.device, label_memory: bool = False, profiler_ranges: bool = False
) -> list[tuple[str, Callable[[], object]]]:
    """Model, random batch and optimizer, and the phase callables of one step for ``config.mode``; with
    ``label_memory`` the allocations of each block's forward and backward carry its label, and with
    ``profiler_ranges`` the naive attention's stages are torch.profiler ranges as well as NVTX ones (only when
    profiling: they would add host work to every timed step)."""
    model = TransformerLM(config.model, device=device)
    if config.nvtx and device.type == "cuda" and not config.compile:  # hooks would split the compiled graph
        annotate_blocks(model)
    if label_memory:
        label_block_allocations(model)
    if config.attention == "naive":
        annotate = nvtx_annotator(config.nvtx)
        use_naive_attention(model, with_profiler_ranges(annotate) if profiler_ranges else annotate)
    forward_model = torch.compile(model) if config.compile else model
    shape = (config.batch_size, config.context_length)
    inputs = torch.randint(0, model.config.vocab_size, shape, device=device)
    targets = torch.randint(0, model.config.vocab_size, shape, device=device)
    optimizer = AdamW(model.parameters(), lr=1e-4)
    state: dict[str, torch.Tensor] = {}

    def inference() -> None:
        with torch.no_grad(), _autocast(config, device):
            forward_model(inputs)

    def forward() -> None:
        with _autocast(config, device):
            state["loss"] = cross_entropy(forward_model(inputs), targets)
        if label_memory:
            label_backward_start(state["loss"])

    def backward() -> None:
        state.pop("loss").backward()
        if config.mode == "forward_backward":
            model.zero_grad(set_to_none=True)

    def optimizer_step() -> None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if config.mode == "forward":
        return [("forward", inference)]
    calls = {"forward": forward, "backward": backward, "optimizer_step": optimizer_step}
    return [(name, calls[name]) for name in PHASES[config.mode]]


def warm_up(phases: list[tuple[str, Callable[[], object]]], steps: int, device: torch.device) -> None:
    """Run ``steps`` whole untimed steps and wait for the device: the first steps allocate AdamW's moments, pick
    cuBLAS algorithms and fill the caching allocator, none of which a steady-state step does."""
    for _ in range(steps):
        for _, run in phases:
            run()
    _synchronizer(device)()


def benchmark_model(config: ModelBenchmarkConfig) -> dict:
    """One result row: the config plus ``<phase>_ms`` mean and ``<phase>_std_ms`` per phase, ``step_ms``
    for their sum, ``first_step_ms`` (the first timed step alone: what warm-up steps keep out of the mean),
    and ``status`` ("ok" or "OOM")."""
    device = torch.device(config.device)
    row: dict = {**asdict(config), "status": "ok"}
    with _released(device):
        try:
            phases = _step_phases(config, device)
            durations = time_phases(
                phases, config.warmup, config.steps, _synchronizer(device), nvtx_annotator(config.nvtx)
            )
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            row["status"] = "OOM"
            return row
        steps = [sum(parts) for parts in zip(*durations.values(), strict=True)]
        row["first_step_ms"] = steps[0] * 1e3
        for name, seconds in [*durations.items(), ("step", steps)]:
            stats = TimingStats.from_seconds(seconds)
            row[f"{name}_ms"], row[f"{name}_std_ms"] = stats.mean_ms, stats.std_ms
        return row


def block_parameter_bytes(config: ModelBenchmarkConfig) -> int:
    """Bytes of one Transformer block's float32 parameters (and so of its gradients), from a model on the meta
    device: nothing is allocated."""
    block = TransformerLM(config.model, device="meta").layers[0]
    return sum(parameter.numel() * parameter.element_size() for parameter in block.parameters())


def profile_memory(
    config: ModelBenchmarkConfig, record_snapshot: bool = False, max_entries: int = 1_000_000
) -> tuple[dict, dict | None]:
    """Peak allocated memory (MiB) of one steady-state step after ``config.warmup`` untimed steps, and with
    ``record_snapshot`` the step's memory snapshot (``torch.cuda.memory._snapshot()``: what
    https://pytorch.org/memory_viz reads, and :mod:`memory_timeline`), its allocations labelled by phase and block
    unless the model is compiled (hooks would split the graph); else None.

    The warm-up matters: AdamW allocates its moments on the first step, which a training step's peak
    must include."""
    device = torch.device(config.device)
    if device.type != "cuda":
        raise ValueError(f"memory profiling reads the CUDA allocator; got device {config.device!r}")
    row: dict = {**asdict(config), "status": "ok"}
    label = record_snapshot and not config.compile
    snapshot = None
    with _released(device):
        try:
            phases = _step_phases(config, device, label_memory=label)
            warm_up(phases, config.warmup, device)
            torch.cuda.reset_peak_memory_stats()
            baseline = torch.cuda.memory_allocated()
            if record_snapshot:
                torch.cuda.memory._record_memory_history(max_entries=max_entries)
            try:
                for name, run in phases:
                    if label:
                        set_memory_label(name)
                    run()
                torch.cuda.synchronize()
                if record_snapshot:
                    snapshot = torch.cuda.memory._snapshot()
            finally:
                if label:
                    set_memory_label("")
                if record_snapshot:
                    torch.cuda.memory._record_memory_history(enabled=None)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            row["status"] = "OOM"
            return row, None
        row["resident_MiB"] = baseline / 2**20
        row["peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
        row["block_parameter_MiB"] = block_parameter_bytes(config) / 2**20
        return row, snapshot
