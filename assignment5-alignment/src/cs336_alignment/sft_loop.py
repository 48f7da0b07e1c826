"""Supervised fine-tuning on (prompt, response) pairs: the loss is on response tokens only.

The loop is model-agnostic (a Hugging Face causal LM or a ``cs336_basics`` TransformerLM with its
tokenizer); evaluation and checkpointing are callbacks so scripts decide what and where.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from cs336_basics.optimizer import lr_cosine_schedule
from cs336_basics.toolkit.device import autocast_context
from tqdm import tqdm

from cs336_alignment.log_probs import get_response_log_probs
from cs336_alignment.loop_configs import SFTConfig
from cs336_alignment.losses import masked_mean
from cs336_alignment.optim import clip_and_step, make_optimizer, set_lr
from cs336_alignment.tokenization import tokenize_prompt_and_output
from cs336_alignment.train_steps import sft_microbatch_train_step

LogFn = Callable[[dict[str, Any]], None]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def sft_micro_batch(
    policy: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    gradient_accumulation_steps: int,
    normalize_constant: float,
    precision: str = "auto",
) -> dict[str, float]:
    """Forward, loss and backward of one micro-batch; returns its loss, per-token NLL and entropy."""
    device = _device(policy)
    batch = {k: v.to(device) for k, v in tokenize_prompt_and_output(prompts, responses, tokenizer).items()}
    with autocast_context(device, precision):
        out = get_response_log_probs(policy, batch["input_ids"], batch["labels"], return_token_entropy=True)
    loss, meta = sft_microbatch_train_step(
        out["log_probs"], batch["response_mask"], gradient_accumulation_steps, normalize_constant
    )
    return {
        "loss": float(loss),
        "nll_per_token": float(meta["nll_per_token"]),
        "entropy": float(masked_mean(out["token_entropy"], batch["response_mask"])),
    }


def train_sft(
    policy: torch.nn.Module,
    tokenizer: Any,
    examples: Sequence[tuple[str, str]],
    cfg: SFTConfig,
    log: LogFn,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    checkpoint: Callable[[int], None] | None = None,
    step_offset: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
) -> torch.optim.Optimizer:
    """Train ``policy`` on ``examples`` for ``cfg.sft_steps`` steps (fewer when ``cfg.max_seconds`` runs out),
    cycling through shuffled epochs.

    ``log`` receives one record per step (``step`` counts from ``step_offset``) with the evaluation's metrics
    merged in on evaluation steps; ``checkpoint(step)`` runs after each evaluation. The optimiser is
    returned (and may be passed in) so expert iteration keeps Adam's state across rounds.
    """
    if not examples:
        raise ValueError("no SFT examples")
    optimizer = optimizer or make_optimizer(policy, cfg.lr, cfg.weight_decay)
    rng = random.Random(cfg.seed + step_offset)
    order: list[int] = []
    micro = cfg.batch_size // cfg.gradient_accumulation_steps
    policy.train()
    bar = tqdm(total=cfg.sft_steps, desc="sft", unit="step", leave=False)  # nested in expert iteration
    loop_started = time.perf_counter()
    for step in range(cfg.sft_steps):
        started = time.perf_counter()
        lr = lr_cosine_schedule(step, cfg.lr, 0.1 * cfg.lr, cfg.warmup_steps, cfg.sft_steps)
        set_lr(optimizer, lr)
        sums = {"loss": 0.0, "nll_per_token": 0.0, "entropy": 0.0}
        for _ in range(cfg.gradient_accumulation_steps):
            if len(order) < micro:
                fresh = list(range(len(examples)))
                rng.shuffle(fresh)
                order += fresh
            chosen, order = order[:micro], order[micro:]
            stats = sft_micro_batch(
                policy,
                tokenizer,
                [examples[i][0] for i in chosen],
                [examples[i][1] for i in chosen],
                cfg.gradient_accumulation_steps,
                cfg.normalize_constant,
                cfg.precision,
            )
            for key in sums:
                sums[key] += stats[key] / (1 if key == "loss" else cfg.gradient_accumulation_steps)
        grad_norm = clip_and_step(optimizer, cfg.max_grad_norm)
        record = {"step": step_offset + step + 1, "phase": "sft", "lr": lr, "grad_norm": grad_norm, **sums}
        record["step_seconds"] = time.perf_counter() - started
        bar.set_postfix(loss_per_token=f"{sums['nll_per_token']:.3f}")
        bar.update()
        last = step + 1 == cfg.sft_steps or 0 < cfg.max_seconds <= time.perf_counter() - loop_started
        if evaluate is not None and (last or (cfg.eval_every and (step + 1) % cfg.eval_every == 0)):
            record.update(evaluate(step_offset + step + 1))
            policy.train()
            if checkpoint is not None:
                checkpoint(step_offset + step + 1)
        log(record)
        if last:
            break
    bar.close()
    return optimizer
