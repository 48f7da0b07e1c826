"""Rollout tokens/s of our sampler against ``transformers``' ``generate`` on the same model and prompts, at the
batch sizes GRPO uses (rollout batches of 64-256 = prompts x a group of 8).

Our sampler runs in three modes: ``graphs`` (static cache, decode steps replayed as CUDA graphs: the default on a
GPU), ``static`` (static cache, eager) and ``dynamic`` (``DynamicCache``, as before the static cache). Workloads:

- ``greedy``: distinct prompts, exactly ``--new_tokens`` per row (EOS ignored) -- equal work, and the tokens are
  compared with ``generate``'s row by row ("identical rows");
- ``groups``: ``batch / group_size`` prompts x ``group_size`` samples at temperature 1, exactly ``--new_tokens``;
- ``rollouts``: GRPO's real workload -- GSM8K r1_zero prompts, temperature 1, stop at ``</answer>`` or EOS,
  at most ``--new_tokens``; tokens/s counts the tokens each row generated before it stopped, so ``generate``,
  which keeps computing finished rows, is charged for that (needs the real model, not ``--model random``).

Each mode keeps one sampler per batch size across calls, as GRPO does; its first call (graph capture, buffer
allocation) is timed apart as ``warm-up s``, then ``--repeats`` calls are timed and the median reported.

GPU (after scripts/gpu_carry.py; README "GPU experiments"):
    bash assignment5-alignment/scripts/gpu_run.sh bench_sampler --out_dir $OUT
CPU (small):
    uv run python assignment5-alignment/benchmarks/bench_sampler.py --batch_sizes 8 --new_tokens 16 \
        --prompt_tokens 32 --workloads greedy groups --modes static dynamic generate --policy.threads 2
Writes bench_sampler.md (table), bench_sampler.json, bench_sampler.png.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[2] / d) for d in ("assignment1-basics/src", "assignment5-alignment/src")
]

import torch  # noqa: E402
from cs336_alignment.intervals import Estimate  # noqa: E402
from cs336_alignment.math_data import load_gsm8k, r1_zero_prompt  # noqa: E402
from cs336_alignment.math_eval import R1_ZERO_STOP  # noqa: E402
from cs336_alignment.plots import plot_estimates  # noqa: E402
from cs336_alignment.reports import write_report  # noqa: E402
from cs336_alignment.run_config import PolicyConfig  # noqa: E402
from cs336_alignment.run_setup import DTYPES, load_policy  # noqa: E402
from cs336_alignment.sampling import KVCacheSampler, SamplingParams  # noqa: E402
from cs336_alignment.tokenization import encode_texts, eos_token_id  # noqa: E402
from cs336_basics.toolkit.cli import parse_config  # noqa: E402
from cs336_basics.toolkit.device import select_device  # noqa: E402

MODES = {"graphs": {"cuda_graphs": True}, "static": {"cuda_graphs": False}, "dynamic": {"static_cache": False}}
WORKLOADS = ("greedy", "groups", "rollouts")
COLUMNS = {
    "workload": "workload",
    "batch": "batch",
    "mode": "sampler",
    "tokens_per_second": "tokens/s",
    "vs_generate": "vs generate",
    "warmup_seconds": "warm-up s",
    "mean_tokens": "tokens per row",
    "identical_rows": "identical rows",
}


@dataclass
class BenchConfig:
    """Tokens/s of our sampler's modes against ``transformers.generate`` at GRPO's batch sizes."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    batch_sizes: list[int] = field(default_factory=lambda: [64, 128, 256], metadata={"help": "rows decoded at once"})
    group_size: int = field(default=8, metadata={"help": "samples per prompt in the groups and rollouts workloads"})
    prompt_tokens: int = field(default=200, metadata={"help": "prompt length of the greedy and groups workloads"})
    new_tokens: int = field(default=256, metadata={"help": "tokens per row (most, for rollouts)"})
    modes: list[str] = field(
        default_factory=lambda: ["graphs", "static", "dynamic", "generate"],
        metadata={"help": "graphs, static, dynamic (our sampler) and generate (transformers)"},
    )
    workloads: list[str] = field(default_factory=lambda: list(WORKLOADS), metadata={"help": ", ".join(WORKLOADS)})
    repeats: int = field(default=3, metadata={"help": "timed calls per setting (the median is reported)"})
    out_dir: str = field(default="runs/bench_sampler", metadata={"help": "folder for the table, JSON and plot"})

    def __post_init__(self):
        """Refuse a setting that could only fail after minutes of decoding the settings before it."""
        if unknown := sorted(set(self.modes) - {*MODES, "generate"}):
            raise ValueError(f"unknown --modes {unknown}: choose from {', '.join([*MODES, 'generate'])}")
        if unknown := sorted(set(self.workloads) - set(WORKLOADS)):
            raise ValueError(f"unknown --workloads {unknown}: choose from {', '.join(WORKLOADS)}")
        if min(self.batch_sizes, default=0) < 1 or min(self.group_size, self.prompt_tokens, self.new_tokens) < 1:
            raise ValueError("--batch_sizes, --group_size, --prompt_tokens and --new_tokens must be positive")
        grouped = {"groups", "rollouts"} & set(self.workloads)
        if grouped and (odd := [batch for batch in self.batch_sizes if batch % self.group_size]):
            raise ValueError(
                f"--batch_sizes {odd} are not multiples of --group_size {self.group_size}, which the "
                f"{' and '.join(sorted(grouped))} workloads need"
            )


def random_smollm2_shaped(device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A random Llama with exactly SmolLM2-135M's configuration: the same shapes and kernels, no weights needed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn):
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def generate_rows(model, prompts, params: SamplingParams, eos: int | None, tokenizer, pad: int) -> list[list[int]]:
    """``transformers.generate`` on left-padded prompts; each row's tokens before EOS (or padding after a stop)."""
    width = max(map(len, prompts))
    device = next(model.parameters()).device
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    sampling = {"do_sample": True, "temperature": params.temperature, "top_k": 0, "top_p": 1.0}
    kwargs = sampling if params.temperature > 0 else {"do_sample": False}
    if params.stop:
        kwargs |= {"stop_strings": list(params.stop), "tokenizer": tokenizer}
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=params.max_tokens,
            min_new_tokens=params.min_tokens,
            num_return_sequences=params.n,
            pad_token_id=pad,
            eos_token_id=eos,
            **kwargs,
        )
    rows = out[:, width:].tolist()
    return [row[: row.index(eos)] if eos is not None and eos in row else row for row in rows]


def workload(cfg: BenchConfig, name: str, batch: int, tokenizer, eos: int | None):
    """(prompt token ids, sampling params, EOS id used) of one workload at one batch size."""
    group = 1 if name == "greedy" else cfg.group_size
    if name == "rollouts":
        if tokenizer is None:
            raise SystemExit("the rollouts workload needs the real model and tokenizer, not --model random")
        questions = [p.question for p in load_gsm8k("train")[: batch // group]]
        prompts = encode_texts(tokenizer, [r1_zero_prompt(q) for q in questions])
        params = SamplingParams(temperature=1.0, max_tokens=cfg.new_tokens, stop=R1_ZERO_STOP, n=group, seed=0)
        return prompts, params, eos
    gen = torch.Generator().manual_seed(batch)
    prompts = torch.randint(100, 49000, (batch // group, cfg.prompt_tokens), generator=gen).tolist()
    temperature = 0.0 if name == "greedy" else 1.0
    params = SamplingParams(temperature, max_tokens=cfg.new_tokens, min_tokens=cfg.new_tokens, n=group, seed=0)
    return prompts, params, None


def median_seconds(device: torch.device, call: Callable[[], list[list[int]]], repeats: int):
    """(warm-up seconds, median seconds of ``repeats`` timed calls, the last call's rows)."""
    warmup, _ = timed(device, call)
    times, rows = [], []
    for _ in range(repeats):
        seconds, rows = timed(device, call)
        times.append(seconds)
    return warmup, statistics.median(times), rows


def bench_setting(cfg: BenchConfig, name: str, batch: int, model, tokenizer, eos, device) -> list[dict]:
    """One table row per mode for one workload at one batch size."""
    prompts, params, stop_eos = workload(cfg, name, batch, tokenizer, eos)
    measured = {}
    for mode in cfg.modes:
        if mode == "generate":
            call = partial(generate_rows, model, prompts, params, stop_eos, tokenizer, 0)
        else:
            sampler = KVCacheSampler(
                model, tokenizer, max_batch_size=batch, eos_id=stop_eos, pad_id=0, show_progress=False, **MODES[mode]
            )
            call = partial(lambda s: [ids for ids, _ in s.generate_ids(prompts, params)], sampler)
        measured[mode] = median_seconds(device, call, cfg.repeats)
    rows = []
    for mode, (warmup, seconds, outputs) in measured.items():
        tokens = sum(map(len, outputs))
        row = {
            "workload": name,
            "batch": batch,
            "mode": mode,
            "tokens_per_second": tokens / seconds,
            "warmup_seconds": warmup,
            "mean_tokens": tokens / len(outputs),
        }
        if "generate" in measured:
            _, generate_seconds, reference = measured["generate"]
            row["vs_generate"] = f"{row['tokens_per_second'] * generate_seconds / sum(map(len, reference)):.2f}x"
            if name == "greedy":
                same = sum(a == b for a, b in zip(outputs, reference)) / len(reference)
                row["identical_rows"] = f"{same:.0%}"
        rows.append(row)
        print(
            f"{name:>8} batch {batch:>3} {mode:>8}: {row['tokens_per_second']:9.1f} tok/s {row.get('vs_generate', '')}"
        )
    return rows


def main() -> None:
    cfg = parse_config(BenchConfig)
    if cfg.policy.threads:
        torch.set_num_threads(cfg.policy.threads)
    device = select_device(cfg.policy.device)
    if cfg.policy.model == "random":
        model, tokenizer = random_smollm2_shaped(device, DTYPES[cfg.policy.dtype]), None
    else:
        model, tokenizer = load_policy(cfg.policy)
        model.eval()
    eos = eos_token_id(tokenizer) if tokenizer is not None else None
    rows = []
    for name in cfg.workloads:
        for batch in cfg.batch_sizes:
            rows += bench_setting(cfg, name, batch, model, tokenizer, eos, device)
    import transformers

    details = {
        "model": cfg.policy.model,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "dtype": cfg.policy.dtype,
        "threads": torch.get_num_threads(),
        "prompt_tokens": cfg.prompt_tokens,
        "new_tokens": cfg.new_tokens,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    title = f"Sampler tokens/s on {details['device']} ({cfg.policy.dtype}, {cfg.new_tokens} new tokens)"
    write_report(cfg.out_dir, "bench_sampler", title, rows, COLUMNS, details)
    bars = {f"{r['workload']} {r['batch']}": {} for r in rows}
    for r in rows:
        rate = r["tokens_per_second"]
        bars[f"{r['workload']} {r['batch']}"][r["mode"]] = Estimate(rate, rate, rate, 1)
    plot_estimates(bars, Path(cfg.out_dir) / "bench_sampler.png", title, "generated tokens/s", proportions=False)
    print(f"table: {Path(cfg.out_dir) / 'bench_sampler.md'}")


if __name__ == "__main__":
    main()
