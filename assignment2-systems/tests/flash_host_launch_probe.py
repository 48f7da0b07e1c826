"""Which path each eager launch takes, with Triton's compiled-mode launch path against stub kernels.

Run as ``python -m tests.flash_host_launch_probe`` without ``TRITON_INTERPRET`` (in the interpreter Triton returns
no compiled kernel to keep). Uses the stubs of ``benchmarks/bench_flash_host_overhead.py`` and prints one JSON
object: for each scenario, launches and ``JITFunction.run`` calls in one forward+backward, and whether the direct
launches passed the launchers what Triton's own launch passes.
"""

import importlib.util
import json
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_flash_host_overhead.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_flash_host_overhead", BENCH)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module


def _misaligned(shape: tuple[int, ...]) -> torch.Tensor:
    """A contiguous bf16 tensor whose data starts 2 bytes past a 16-byte boundary."""
    numel = torch.Size(shape).numel()
    return torch.randn(numel + 1, dtype=torch.bfloat16)[1:].view(shape).requires_grad_()


def main() -> None:
    bench = _load_bench()
    stubs = bench.install_stubs()
    from cs336_systems.flash_attention import FlashAttentionTriton

    shape = (1, 2, 32, 16)
    q, k, v = (torch.randn(shape, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))

    def step(query: torch.Tensor = q) -> None:
        FlashAttentionTriton.apply(query, k, v, True).sum().backward()

    def counts(run) -> dict[str, int]:
        stubs.launches = stubs.triton_runs = 0
        run()
        return {"launches": stubs.launches, "triton_runs": stubs.triton_runs}

    first = counts(step)
    later = counts(step)
    misaligned_query = _misaligned(shape)
    misaligned = counts(lambda: step(misaligned_query))
    aligned_again = counts(step)
    print(
        json.dumps(
            {
                "first": first,
                "later": later,
                "misaligned": misaligned,
                "aligned_again": aligned_again,
                "launcher_args_match": bench.launcher_args_match(step, stubs),
            }
        )
    )


if __name__ == "__main__":
    main()
