"""Training throughput and MFU: the from-scratch TransformerLM against the same model built from ``torch.nn``.

Both models have the handout's TinyStories shapes, identical weights (the reference loads our state dict: the
module names match), bf16 autocast, ``torch.compile`` over forward + loss, and the same optimizer
(``cs336_basics.optimizer.AdamW``), so the only difference is how the layers are written. Before timing, the
two losses on one batch are compared, so a faster baseline that computes something else cannot pass unnoticed.

Run on a GPU (standalone, no install needed):

    PYTHONPATH=assignment1-basics/src python3 assignment1-basics/benchmarks/bench_train_gpu.py --out_dir results/

MFU = achieved matmul FLOP/s / the GPU's dense bf16 peak (989 TFLOP/s for H100/H200 SXM unless
``--peak_tflops`` says otherwise); FLOPs per token come from :mod:`cs336_basics.accounting` (6·N plus
attention, the full ``seq × seq`` square). ``--speedrun_model --profile`` adds our model with the speedrun's
layers, with and without QK-norm, and a per-kernel profile of every row: where the speedrun's step time goes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cs336_basics.toolkit.cli import parse_config  # noqa: E402


@dataclass(frozen=True)
class BenchTrainGPUConfig:
    """Training tokens/s and MFU of the from-scratch TransformerLM against the same model from ``torch.nn``."""

    out_dir: Path | None = field(
        default=None, metadata={"help": "folder for bench_train_gpu.json/.md and profiles (none: print only)"}
    )
    batch_size: int = field(default=128, metadata={"help": "sequences per step"})
    steps: int = field(default=50, metadata={"help": "timed steps per model"})
    warmup: int = field(default=8, metadata={"help": "untimed steps (compilation, autotuning)"})
    device: str = field(default="cuda", metadata={"help": "cuda (the benchmark), or cpu for a --small smoke test"})
    compile: bool = field(default=True, metadata={"help": "torch.compile forward + loss"})
    peak_tflops: float | None = field(default=None, metadata={"help": "dense bf16 peak (none: by GPU name)"})
    small: bool = field(default=False, metadata={"help": "tiny model (a smoke test on a CPU)"})
    swap_losses: bool = field(default=False, metadata={"help": "also each model with the other's loss"})
    profile: bool = field(default=False, metadata={"help": "write a per-kernel profile of each run to --out_dir"})
    speedrun_model: bool = field(
        default=False,
        metadata={
            "help": "also our model with the speedrun's layers (ReLU², QK-norm, zero-initialised projections), with "
            "and without QK-norm: what QK-norm costs a step"
        },
    )

    def __post_init__(self):
        if self.steps < 1 or self.warmup < 0 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1, warmup >= 0")


if __name__ == "__main__":  # parsed before torch loads, so that --help and a bad flag answer at once
    CONFIG = parse_config(BenchTrainGPUConfig, description=__doc__)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from cs336_basics.accounting import count_parameters, training_flops_per_token  # noqa: E402
from cs336_basics.experiments import speedrun_layers  # noqa: E402
from cs336_basics.model import TransformerLM  # noqa: E402
from cs336_basics.model_config import ModelConfig  # noqa: E402
from cs336_basics.nn_utils import cross_entropy  # noqa: E402
from cs336_basics.optimizer import AdamW  # noqa: E402
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from cs336_basics.toolkit.device import autocast_context  # noqa: E402
from cs336_basics.toolkit.tables import markdown_table  # noqa: E402
from torch import Tensor, nn  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


class TorchRoPE(nn.Module):
    """Rotary embedding on interleaved pairs, positions ``0 … seq-1`` (sliced table, the usual nn style)."""

    def __init__(self, theta: float, d_head: int, max_seq_len: int):
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, d_head, 2, dtype=torch.float32) / d_head)
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.shape[-2]
        cos, sin = self.cos[:seq].to(x.dtype), self.sin[:seq].to(x.dtype)
        even, odd = x.unflatten(-1, (-1, 2)).unbind(-1)
        return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class TorchAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, rope: TorchRoPE):
        super().__init__()
        d = cfg.d_model
        self.num_heads, self.rope = cfg.num_heads, rope
        self.q_proj, self.k_proj, self.v_proj, self.output_proj = (nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        b, s, d = x.shape
        q, k, v = (p(x).view(b, s, self.num_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(self.rope(q), self.rope(k), v, is_causal=True)
        return self.output_proj(out.transpose(1, 2).reshape(b, s, d))


class TorchSwiGLU(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w1, self.w3 = nn.Linear(d_model, d_ff, bias=False), nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TorchBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, rope: TorchRoPE):
        super().__init__()
        self.ln1, self.ln2 = nn.RMSNorm(cfg.d_model, eps=1e-5), nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.attn, self.ffn = TorchAttention(cfg, rope), TorchSwiGLU(cfg.d_model, cfg.d_ff)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class TorchLM(nn.Module):
    """The same architecture from ``torch.nn`` layers; parameter names match ``TransformerLM``'s state dict."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.token_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        rope = TorchRoPE(cfg.rope_theta, cfg.d_model // cfg.num_heads, cfg.context_length)
        self.layers = nn.ModuleList(TorchBlock(cfg, rope) for _ in range(cfg.num_layers))
        self.ln_final = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, ids: Tensor) -> Tensor:
        x = self.token_embeddings(ids)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.ln_final(x))


def torch_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


LOSSES = {"cs336_basics": cross_entropy, "torch.nn": torch_cross_entropy}


def build(name: str, cfg: ModelConfig, device: torch.device) -> nn.Module:
    """Both models start from the same seed-0 weights of ``TransformerLM``."""
    torch.manual_seed(0)
    ours = TransformerLM(cfg, device=device)
    if name.startswith("cs336_basics"):
        return ours
    reference = TorchLM(cfg).to(device)
    reference.load_state_dict(ours.state_dict())
    return reference


def measure(name: str, loss_name: str, cfg: ModelConfig, args: BenchTrainGPUConfig, device: torch.device) -> dict:
    """Time ``args.steps`` training steps of model ``name`` with the loss of ``loss_name``."""
    # every row compiles the same ``forward_loss`` code: without a reset the rows' compiled versions pile up on it
    # until Dynamo's recompile limit (8) sends the later rows to eager (the half-split RoPE rows of 2026-12-03)
    torch._dynamo.reset()
    model, loss_fn = build(name, cfg, device), LOSSES[loss_name]
    optimizer = AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)

    def forward_loss(x: Tensor, y: Tensor) -> Tensor:
        with autocast_context(device):
            return loss_fn(model(x), y)

    step_loss = torch.compile(forward_loss) if args.compile else forward_loss
    generator = torch.Generator(device=device).manual_seed(1)
    batches = [
        torch.randint(0, cfg.vocab_size, (args.batch_size, cfg.context_length + 1), device=device, generator=generator)
        for _ in range(4)
    ]
    with torch.no_grad():
        first_loss = step_loss(batches[0][:, :-1], batches[0][:, 1:]).item()

    def train_step(i: int) -> Tensor:
        tokens = batches[i % len(batches)]
        loss = step_loss(tokens[:, :-1], tokens[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    compile_start = time.perf_counter()
    for i in range(args.warmup):
        train_step(i)
    _sync(device)
    warmup_seconds = time.perf_counter() - compile_start
    start = time.perf_counter()
    for i in range(args.steps):
        loss = train_step(i)
    _sync(device)
    seconds = time.perf_counter() - start
    tokens_per_second = args.steps * args.batch_size * cfg.context_length / seconds
    flops_per_token = training_flops_per_token(cfg, cfg.context_length)
    if args.profile and args.out_dir is not None:
        _profile(train_step, device, args.out_dir / re.sub(r"[^\w.-]+", "_", f"profile_{name}_{loss_name}.txt"))
    result = {
        "model": name,
        "loss": loss_name,
        "first_loss": first_loss,
        "final_loss": loss.item(),
        "ms_per_step": 1e3 * seconds / args.steps,
        "tokens_per_second": tokens_per_second,
        "tflops": tokens_per_second * flops_per_token / 1e12,
        "warmup_seconds": warmup_seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }
    if args.peak_tflops:
        result["mfu"] = result["tflops"] / args.peak_tflops
    del model, optimizer, step_loss
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return result


def speedrun_models(cfg: ModelConfig) -> list[tuple[str, ModelConfig]]:
    """The speedrun's layers on the handout's shapes, with and without QK-norm, and with RoPE on half-split pairs
    (the fused QK-norm + RoPE kernels were the speedrun's extra step time on an H200)."""
    speedrun = dataclasses.replace(cfg, **speedrun_layers(cfg))
    return [
        ("cs336_basics, speedrun model", speedrun),
        ("cs336_basics, speedrun model without QK-norm", dataclasses.replace(speedrun, qk_norm=False)),
        ("cs336_basics, speedrun model, half-split RoPE", dataclasses.replace(speedrun, position="rope_half")),
        ("cs336_basics, handout model, half-split RoPE", dataclasses.replace(cfg, position="rope_half")),
    ]


def _profile(train_step, device: torch.device, path: Path) -> None:
    """Per-kernel time of a few steps (the first place to look when one model is slower)."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for i in range(3):
            train_step(i)
        _sync(device)
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    write_text_atomic(path, prof.key_averages().table(sort_by=sort_by, row_limit=40, max_name_column_width=90))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def results_table(results: list[dict]) -> str:
    base = next(r["tokens_per_second"] for r in results if r["model"] == r["loss"] == "torch.nn")  # handout model
    headers = ["model", "loss", "ms/step", "tokens/s", "TFLOP/s", "MFU", "speed vs torch.nn", "first loss", "peak GiB"]
    rows = [
        [
            r["model"],
            r["loss"],
            f"{r['ms_per_step']:.1f}",
            f"{r['tokens_per_second']:,.0f}",
            f"{r['tflops']:.1f}",
            f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a",
            f"{r['tokens_per_second'] / base:.3f}x",
            f"{r['first_loss']:.4f}",
            f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "n/a",
        ]
        for r in results
    ]
    return markdown_table(headers, rows, align="llrrrrrrr")


def main(args: BenchTrainGPUConfig) -> None:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_train_gpu: no CUDA GPU here, nothing measured (run it on a GPU machine; see the docstring)")
        return
    args = dataclasses.replace(args, peak_tflops=args.peak_tflops or _peak_tflops(device))
    cfg = ModelConfig() if not args.small else ModelConfig(vocab_size=512, context_length=32, d_model=64, d_ff=172)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True

    runs = [("cs336_basics", "cs336_basics"), ("torch.nn", "torch.nn")]
    if args.swap_losses:
        runs += [("cs336_basics", "torch.nn"), ("torch.nn", "cs336_basics")]
    results = [measure(name, loss_name, cfg, args, device) for name, loss_name in runs]
    losses = [r["first_loss"] for r in results]
    if not all(math.isclose(loss, losses[0], rel_tol=2e-2) for loss in losses):
        raise RuntimeError(f"the models disagree on the same batch: first losses {losses}")
    if args.speedrun_model:
        results += [measure(name, "cs336_basics", model, args, device) for name, model in speedrun_models(cfg)]
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "config": dataclasses.asdict(cfg),
        "parameters": count_parameters(cfg),
        "batch_size": args.batch_size,
        "tokens_per_step": args.batch_size * cfg.context_length,
        "compiled": args.compile,
        "peak_tflops": args.peak_tflops,
        "results": results,
    }
    table = results_table(results)
    print(json.dumps(info, indent=2))
    print(f"\n{info['device']}, torch {torch.__version__}, batch {args.batch_size} x {cfg.context_length}\n")
    print(table)
    if args.out_dir is not None:
        write_json_atomic(args.out_dir / "bench_train_gpu.json", info)
        write_text_atomic(args.out_dir / "bench_train_gpu.md", table + "\n")


if __name__ == "__main__":
    main(CONFIG)
