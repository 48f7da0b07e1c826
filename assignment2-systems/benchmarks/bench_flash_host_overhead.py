"""Host cost of our Triton FlashAttention-2 call, measured on the CPU with the kernel launches stubbed out.

At 1024-4096 tokens the leaderboard's forward+backward is host-bound (``bench_flash_leaderboard.py``'s
``host ms``), so what counts is the Python between the launches. This measures exactly that, without a GPU:
Triton runs as on the GPU (argument binding, specialisation, cache lookup, the autotuner's first pick) against a
stand-in driver, and the compiled kernels it would launch are stubs whose launcher records its arguments and
returns. The loop is the leaderboard's, ``attention(q, k, v).sum().backward()`` on q, k, v split from one
``(3, batch, heads, n, d)`` leaf, timed for ``FlashAttentionTriton.apply`` and for a trivial autograd Function
(empty outputs and gradients) as the floor that any autograd Function pays. Host µs per call is the best of
``--rounds`` rounds of ``--calls`` calls. The host path does not grow with ``n`` (plans are per shape), so short
sequences keep the CPU's own arithmetic (the sum, the stride-0 dO copy, gradient accumulation) negligible.

The run also checks that the launches after the first hand each kernel's launcher the arguments that Triton's
own launch path passes (one call is made with a launch hook registered, which sends it through Triton).
Writes ``host_overhead.json`` and ``host_overhead.md``.

Run (any machine, no GPU needed; package dir):
    uv run python benchmarks/bench_flash_host_overhead.py --out_dir runs/flash_host_overhead
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from cs336_basics.toolkit.cli import parse_config


@dataclass(frozen=True)
class HostOverheadConfig:
    """Host µs per forward+backward of our Triton FlashAttention-2 call vs a trivial autograd Function, on the CPU."""

    out_dir: str = field(
        default="runs/flash_host_overhead", metadata={"help": "folder for host_overhead.json and host_overhead.md"}
    )
    batch: int = field(default=1, metadata={"help": "batch size"})
    heads: int = field(default=16, metadata={"help": "attention heads"})
    head_dim: int = field(default=64, metadata={"help": "head size"})
    seq_len: int = field(default=16, metadata={"help": "tokens (the host path does not depend on it)"})
    calls: int = field(default=2000, metadata={"help": "calls per timed round"})
    rounds: int = field(default=5, metadata={"help": "timed rounds; the best is reported"})
    profile: bool = field(default=False, metadata={"help": "also write cProfile's top functions for our call"})

    def __post_init__(self):
        if min(self.batch, self.heads, self.head_dim, self.seq_len, self.calls, self.rounds) < 1:
            raise ValueError("batch, heads, head_dim, seq_len, calls and rounds must be positive")


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(HostOverheadConfig, description=__doc__)

import torch  # noqa: E402
from cs336_basics.toolkit.atomic import write_text_atomic  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import CompiledKernel  # noqa: E402
from triton.knobs import runtime as runtime_knobs  # noqa: E402
from triton.runtime import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)
LAUNCHER_EXTRAS = slice(6, 9)
"""Positions of the launch metadata and the enter/exit hooks among a launcher's arguments (grid x, y, z,
stream, function, packed metadata come first)."""


class StubDriver:
    """The parts of Triton's active driver that its launch path asks: device 0, stream 0, a Hopper target."""

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int) -> int:
        return 0

    def get_current_target(self) -> GPUTarget:
        return HOPPER

    def is_active(self) -> bool:
        return True


class StubKernel(CompiledKernel):
    """What Triton's compile would return, with a launcher that records its arguments instead of launching."""

    def __init__(self, name: str, stubs: Stubs):
        self.name, self.function, self.packed_metadata, self.src = name, 0, (), None
        self._run = stubs.launch

    def _init_handles(self) -> None:
        pass


@dataclass
class Stubs:
    """Counts of launcher calls and of ``JITFunction.run`` calls; the launchers' arguments while ``recording``
    (kept only then: holding every call's tensors would time the garbage collector)."""

    launches: int = 0
    triton_runs: int = 0
    recording: bool = False
    recorded: list[tuple] = field(default_factory=list)

    def launch(self, *args) -> None:
        self.launches += 1
        if self.recording:
            self.recorded.append(args)

    def record(self, step: Callable[[], None]) -> list[tuple]:
        """The launchers' arguments during one call of ``step``."""
        self.recording, self.recorded = True, []
        try:
            step()
        finally:
            self.recording = False
        return self.recorded


def install_stubs() -> Stubs:
    """Point Triton at the stub driver, make every compile return a :class:`StubKernel` and count Triton's
    launches; then import our kernels (decorated for compilation) with one autotuning candidate each, so the
    autotuner picks without benchmarking."""
    stubs = Stubs()
    driver.set_active(StubDriver())

    def compile_stub(self, key, signature, device, constexprs, options, attrs, warmup):
        kernel = self.device_caches[device][0][key] = StubKernel(self.__name__, stubs)
        return kernel

    triton_run = JITFunction.run

    def counted_run(self, *args, **kwargs):
        stubs.triton_runs += 1
        return triton_run(self, *args, **kwargs)

    JITFunction._do_compile = compile_stub
    JITFunction.run = counted_run
    from cs336_systems.flash_attention import triton_function

    os.environ.pop("TRITON_INTERPRET", None)  # Triton's compiled-mode launch path is what is measured
    kernels = triton_function._kernels()
    if not isinstance(kernels.flash_fwd_kernel.fn, JITFunction):
        raise RuntimeError("the kernels were decorated for Triton's interpreter: run this script in its own process")
    for autotuned in (kernels.flash_fwd_kernel, kernels.flash_bwd_kernel):
        autotuned.configs = autotuned.configs[:1]
    os.environ["TRITON_INTERPRET"] = "1"  # only so that the input checks accept CPU tensors; nothing interprets
    return stubs


class TrivialAttention(torch.autograd.Function):
    """The floor: an autograd Function that allocates its output and gradients and does nothing else."""

    @staticmethod
    def forward(ctx, q, k, v, is_causal):
        return torch.empty_like(q)

    @staticmethod
    def backward(ctx, grad_out):
        return torch.empty_like(grad_out), torch.empty_like(grad_out), torch.empty_like(grad_out), None


def best_us_per_call(steps: dict[str, Callable[[], None]], calls: int, rounds: int) -> dict[str, float]:
    """Best µs per call of each step; rounds alternate between the steps, so a load that comes and goes on a
    shared machine weighs on all of them alike."""
    for step in steps.values():
        for _ in range(min(calls, 50)):
            step()
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(calls):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1e6)
    return best


def normalised(launch: tuple) -> tuple:
    """A launcher call without its launch metadata and hooks, tensors as (dtype, shape, 16-byte aligned)."""
    args = launch[: LAUNCHER_EXTRAS.start] + launch[LAUNCHER_EXTRAS.stop :]
    return tuple((a.dtype, tuple(a.shape), a.data_ptr() % 16 == 0) if isinstance(a, torch.Tensor) else a for a in args)


def launcher_args_match(step: Callable[[], None], stubs: Stubs) -> bool:
    """Whether one call through Triton (a launch hook registered) and one through the kept launchers hand the
    launchers the same arguments."""
    hook = runtime_knobs.launch_enter_hook
    hook.add(_no_op_hook)
    try:
        through_triton = [normalised(launch) for launch in stubs.record(step)]
    finally:
        hook.remove(_no_op_hook)
    direct = [normalised(launch) for launch in stubs.record(step)]
    return len(direct) == 3 and direct == through_triton


def _no_op_hook(metadata) -> None:
    pass


def top_functions(step: Callable[[], None], calls: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        step()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def main(config: HostOverheadConfig) -> dict:
    stubs = install_stubs()
    from cs336_systems.flash_attention import FlashAttentionTriton

    torch.set_num_threads(1)
    shape = (3, config.batch, config.heads, config.seq_len, config.head_dim)
    qkv = torch.randn(shape, dtype=torch.bfloat16, requires_grad=True)
    q, k, v = qkv

    def loop(attention: Callable) -> Callable[[], None]:
        return lambda: attention(q, k, v, True).sum().backward()

    ours = loop(FlashAttentionTriton.apply)
    timings = best_us_per_call({"floor": loop(TrivialAttention.apply), "ours": ours}, config.calls, config.rounds)
    floor_us, ours_us = timings["floor"], timings["ours"]
    stubs.launches = stubs.triton_runs = 0
    ours()
    result = {
        "config": asdict(config),
        "torch": torch.__version__,
        "triton": __import__("triton").__version__,
        "floor_us": floor_us,
        "ours_us": ours_us,
        "ours_over_floor_us": ours_us - floor_us,
        "launches_per_call": stubs.launches,
        "triton_runs_per_call": stubs.triton_runs,
        "launcher_args_match": launcher_args_match(ours, stubs),
    }
    lines = [
        f"torch {result['torch']}, triton {result['triton']}; CPU, launches stubbed; batch {config.batch}, "
        f"{config.heads} heads, n={config.seq_len}, d={config.head_dim}, bf16, causal; "
        f"best of {config.rounds} x {config.calls} calls of attention(q, k, v).sum().backward()",
        "",
        "| call | host µs per fwd+bwd |",
        "|---|---|",
        f"| trivial autograd Function (floor) | {floor_us:.1f} |",
        f"| ours (Triton, eager) | {ours_us:.1f} |",
        f"| ours over the floor | {ours_us - floor_us:.1f} |",
        "",
        f"- launches per call: {result['launches_per_call']}; through Triton's JITFunction.run: "
        f"{result['triton_runs_per_call']}",
        f"- direct launches pass what Triton's launch passes: {result['launcher_args_match']}",
    ]
    if config.profile:
        result["profile"] = top_functions(ours, config.calls)
    write_text_atomic(os.path.join(config.out_dir, "host_overhead.json"), json.dumps(result, indent=2))
    write_text_atomic(os.path.join(config.out_dir, "host_overhead.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    if config.profile:
        print(result["profile"])
    return result


if __name__ == "__main__":
    main(CONFIG)
