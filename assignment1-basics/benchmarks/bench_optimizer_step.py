"""One optimizer step of the speedrun model: Muon against our AdamW and ``torch.optim.AdamW(fused=True)``.

The model is the speedrun configuration's (``cs336_basics.experiments.speedrun_settings``: 4 layers, d_model 512,
ReLU², QK-norm) and each optimizer is built exactly as training builds it (``train.build_optimizer``), with fixed
random gradients. The step of such a small model is bound by kernel launches on the host, so two times are
reported per optimizer:

- host ms/step: the time for ``step()`` to return, the device idle before each call (synchronised, not counted),
  so it is the cost of issuing the step's kernels, launch overhead included;
- wall ms/step: consecutive steps with one synchronisation at the end, what a training loop pays when the device
  runs nothing else.

Gradient clipping (ours against ``torch.nn.utils.clip_grad_norm_(foreach=True)``) is timed the same way: it is
the other per-step host work of the loop. On a CPU both times are the same computation (no asynchronous queue).

    uv run python assignment1-basics/benchmarks/bench_optimizer_step.py --out_dir runs/bench
    PYTHONPATH=assignment1-basics/src python3 assignment1-basics/benchmarks/bench_optimizer_step.py --out_dir $OUT
"""

from __future__ import annotations

import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from cs336_basics.experiment_config import ExperimentConfig  # noqa: E402
from cs336_basics.experiments import base_train_config, speedrun_settings  # noqa: E402
from cs336_basics.model import TransformerLM  # noqa: E402
from cs336_basics.model_config import ModelConfig  # noqa: E402
from cs336_basics.muon import Muon, muon_param_groups  # noqa: E402
from cs336_basics.nn_utils import gradient_clipping  # noqa: E402
from cs336_basics.toolkit.atomic import write_json_atomic  # noqa: E402
from cs336_basics.toolkit.cli import parse_config  # noqa: E402
from cs336_basics.toolkit.device import select_device  # noqa: E402
from cs336_basics.toolkit.tables import markdown_table  # noqa: E402
from cs336_basics.train import build_optimizer  # noqa: E402
from cs336_basics.train_config import TrainConfig  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

BASELINE = "torch AdamW (fused)"
TORCH_CLIPPING = "clip_grad_norm_ (torch, foreach)"


@dataclass
class BenchConfig:
    """Time one optimizer step (and one gradient clipping) of the speedrun model on one device.

    The model is the handout's unless ``--model.*`` says otherwise (the speedrun changes its feed-forward, as in
    training): a small ``d_model`` keeps the matrices' count and shapes' kinds but not their FLOPs, which shows
    the host overhead on a CPU.
    """

    out_dir: str = field(default="runs/bench", metadata={"help": "bench_optimizer_step.json goes here"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cuda, mps or cpu"})
    steps: int | None = field(default=None, metadata={"help": "timed steps of each (default: 50 on CUDA, 2 on CPU)"})
    warmup: int | None = field(
        default=None, metadata={"help": "untimed steps first: state, compilation, CUDA graphs (default: 5 CUDA, 1 CPU)"}
    )
    muon_compile_modes: list[str] = field(
        default_factory=lambda: ["reduce-overhead"],
        metadata={"help": "also time Muon(compile_mode=...) for each (CUDA only; each compiles for ~10-30 s)"},
    )
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class OperatorCounter(TorchDispatchMode):
    """Counts the ATen operators a block dispatches: a device-independent proxy for kernel launches (a
    ``_foreach_*`` operator counts once, as it launches a few kernels for all tensors; views count too)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def time_step(
    step: Callable[[], object], device: torch.device, warmup: int, steps: int, count: bool = True
) -> dict[str, float]:
    """Median host time of one call on an idle device, wall time per call over ``steps`` queued calls, and the
    operators of one call (after the warm-up; not for compiled code, which dispatches below the counter)."""
    for _ in range(warmup):
        step()
    counter = OperatorCounter()
    if count:
        with counter:
            step()
    host = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        host.append(time.perf_counter() - start)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    wall = (time.perf_counter() - start) / steps
    return {"host_ms": 1e3 * statistics.median(host), "wall_ms": 1e3 * wall, "operators": counter.count or None}


def speedrun_model_and_configs(model: ModelConfig, device: torch.device, seed: int):
    """The speedrun model and the training configs of the speedrun and the baseline."""
    experiment = ExperimentConfig(experiment="speedrun", device=str(device), model=model)
    speedrun = base_train_config(
        experiment, "bench", seed, **speedrun_settings(experiment, experiment.muon_lrs[0], experiment.lr)
    )
    baseline = base_train_config(experiment, "bench", seed)
    torch.manual_seed(seed)
    return TransformerLM(speedrun.model, device=device), speedrun, baseline


def copy_with_gradients(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of ``model`` whose parameters have the same random gradients for every ``seed``-equal call."""
    model = copy.deepcopy(model)
    generator = torch.Generator(model.lm_head.weight.device).manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype) * 1e-3
    return model


def main(cfg: BenchConfig) -> dict:
    device = select_device(cfg.device)
    steps = cfg.steps or (50 if device.type == "cuda" else 2)
    warmup = cfg.warmup if cfg.warmup is not None else (5 if device.type == "cuda" else 1)
    model, speedrun, baseline = speedrun_model_and_configs(cfg.model, device, cfg.seed)
    optimizers: dict[str, Callable[[torch.nn.Module], torch.optim.Optimizer]] = {
        "Muon (cs336_basics)": lambda m: build_optimizer(m, speedrun),
        "AdamW (cs336_basics)": lambda m: build_optimizer(m, baseline),
        BASELINE: lambda m: torch.optim.AdamW(
            m.parameters(),
            lr=baseline.max_lr,
            betas=(baseline.beta1, baseline.beta2),
            eps=baseline.adam_eps,
            weight_decay=baseline.weight_decay,
            fused=True,
        ),
    }
    if device.type == "cuda":
        for mode in cfg.muon_compile_modes:
            optimizers[f"Muon (cs336_basics, compile_mode={mode})"] = partial(
                compiled_muon, speedrun=speedrun, mode=mode
            )
    optimizer_results = {}
    for name, build in optimizers.items():
        optimizer = build(copy_with_gradients(model, cfg.seed))
        optimizer_results[name] = time_step(optimizer.step, device, warmup, steps, count="compile" not in name)
        print(f"{name}: {optimizer_results[name]['host_ms']:.2f} ms host/step", flush=True)
    parameters = list(copy_with_gradients(model, cfg.seed).parameters())
    clipping = {
        "gradient_clipping (cs336_basics)": lambda: gradient_clipping(parameters, 1e9),
        TORCH_CLIPPING: lambda: torch.nn.utils.clip_grad_norm_(parameters, 1e9, foreach=True),
    }
    clipping_results = {name: time_step(clip, device, warmup, steps) for name, clip in clipping.items()}
    summary = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "muon_matrices": sum(len(g["params"]) for g in build_optimizer(model, speedrun).param_groups if g["use_muon"]),
        "steps": steps,
        "config": asdict(cfg),
        "optimizer_step": with_ratios(optimizer_results, BASELINE),
        "gradient_clipping": with_ratios(clipping_results, TORCH_CLIPPING),
    }
    write_json_atomic(Path(cfg.out_dir) / "bench_optimizer_step.json", summary)
    print(f"\n{summary['device']}, torch {summary['torch']}, {summary['parameters']:,} parameters "
          f"({summary['muon_matrices']} Muon matrices); host: median, wall: mean of {steps} steps\n")  # fmt: skip
    for kind, baseline_name in (("optimizer_step", BASELINE), ("gradient_clipping", TORCH_CLIPPING)):
        headers = [kind, "operators", "host ms", "wall ms", f"host vs {baseline_name}", f"wall vs {baseline_name}"]
        rows = [
            [name, r["operators"] or "-", f"{r['host_ms']:.3f}", f"{r['wall_ms']:.3f}", f"{r['host_ratio']:.2f}x",
             f"{r['wall_ratio']:.2f}x"]
            for name, r in summary[kind].items()
        ]  # fmt: skip
        print(markdown_table(headers, rows, align="lrrrrr") + "\n")
    return summary


def with_ratios(results: dict[str, dict[str, float]], baseline: str) -> dict[str, dict[str, float]]:
    """Each result with its host and wall times as multiples of ``baseline``'s."""
    base = results[baseline]
    return {
        name: r | {"host_ratio": r["host_ms"] / base["host_ms"], "wall_ratio": r["wall_ms"] / base["wall_ms"]}
        for name, r in results.items()
    }


def compiled_muon(model: torch.nn.Module, speedrun: TrainConfig, mode: str) -> Muon:
    """The speedrun's optimizer (as ``build_optimizer`` makes it) with the orthogonalisation compiled in ``mode``."""
    groups = muon_param_groups(model, speedrun.muon_lr, speedrun.max_lr, speedrun.weight_decay, speedrun.weight_decay)
    betas = (speedrun.beta1, speedrun.beta2)
    return Muon(groups, momentum=speedrun.muon_momentum, betas=betas, eps=speedrun.adam_eps, compile_mode=mode)


if __name__ == "__main__":
    main(parse_config(BenchConfig))
