"""What every training and evaluation script does first: load the policy on its device, build its generation
backend, load the problems, and open the metrics log (the settings themselves live in ``run_config``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from cs336_basics.toolkit.device import select_device
from cs336_basics.toolkit.metrics import MetricsLogger
from tqdm import tqdm

from cs336_alignment.math_answer import last_boxed_content
from cs336_alignment.math_data import MathProblem, arithmetic_word_problems, load_gsm8k
from cs336_alignment.models import load_causal_lm, load_tokenizer, resolve_model
from cs336_alignment.run_config import OutputConfig, PolicyConfig
from cs336_alignment.sampling import KVCacheOptions, Sampler, make_sampler
from cs336_alignment.sft_data import read_jsonl

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str, setting: str) -> torch.dtype:
    """The torch dtype a ``PolicyConfig`` setting names."""
    if name not in DTYPES:
        raise ValueError(f"{setting} must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def load_policy(cfg: PolicyConfig) -> tuple[torch.nn.Module, Any]:
    """The policy (in train mode, on its device) and its tokenizer, with a progress bar over the stages."""
    dtype = torch_dtype(cfg.dtype, "dtype")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device)
    with tqdm(total=2, desc=f"loading {cfg.model}", unit="stage") as bar:
        bar.set_postfix_str(f"weights ({cfg.dtype}, {device})")
        model = load_causal_lm(cfg.model, str(device), dtype)
        bar.update()
        bar.set_postfix_str("tokenizer")
        tokenizer = load_tokenizer(cfg.model)
        bar.update()
    return model, tokenizer


def policy_sampler(cfg: PolicyConfig, policy: torch.nn.Module, tokenizer: Any) -> Sampler:
    """Our KV-cache sampler (from a ``sampler_dtype`` copy of the policy when set), or vLLM (on ``vllm_device``)
    for a checkpoint it can load."""
    sampler_dtype = None if cfg.sampler_dtype is None else torch_dtype(cfg.sampler_dtype, "sampler_dtype")
    model_id = None if cfg.model.endswith(".gguf") else resolve_model(cfg.model)
    return make_sampler(
        cfg.backend,
        policy,
        tokenizer,
        model_id,
        KVCacheOptions(cfg.sampler_batch_size, cfg.static_cache, cfg.cuda_graphs, sampler_dtype),
        device=cfg.vllm_device,
    )


def load_math_jsonl(path: str | Path) -> list[MathProblem]:
    r"""MATH-style JSONL: ``problem`` or ``question``, and ``answer`` or a ``solution`` with a ``\boxed{}`` answer."""
    problems = []
    for number, record in enumerate(read_jsonl(path), 1):
        question = record.get("problem", record.get("question"))
        answer = record.get("answer")
        if answer is None and "solution" in record:
            answer = last_boxed_content(record["solution"])
        if question is None or answer is None:
            raise ValueError(f"{path}: record {number} needs 'problem'/'question' and 'answer'/boxed 'solution'")
        problems.append(MathProblem(question, str(answer), record.get("solution", "")))
    return problems


def load_problems(dataset: str, split: str, limit: int = 0, seed: int = 0) -> list[MathProblem]:
    """``gsm8k`` (train/test), ``arithmetic`` (procedural; the split picks the seed), or a JSONL path."""
    if dataset == "gsm8k":
        problems = load_gsm8k(split)
    elif dataset == "arithmetic":
        problems = arithmetic_word_problems(limit or 1000, seed if split == "train" else seed + 1)
    elif Path(dataset).suffix in (".jsonl", ".gz"):
        problems = load_math_jsonl(dataset)
    else:
        raise ValueError(f"dataset must be gsm8k, arithmetic or a .jsonl path, got {dataset!r}")
    return problems[:limit] if limit else problems


def open_metrics(out: OutputConfig, run_name: str, config: Any) -> MetricsLogger:
    """JSONL metrics in ``out_dir`` (and wandb when asked), with the run's full config recorded."""
    Path(out.out_dir).mkdir(parents=True, exist_ok=True)
    return MetricsLogger(
        Path(out.out_dir) / "metrics.jsonl",
        use_wandb=out.use_wandb,
        wandb_project=out.wandb_project,
        run_name=run_name,
        config=dataclasses.asdict(config),
    )
