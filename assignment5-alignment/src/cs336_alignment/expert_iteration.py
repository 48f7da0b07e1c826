"""Expert iteration: sample several answers per question, keep the ones the verifier accepts, and run SFT on
them; repeat with the improved policy. A ``PromptStyle`` prompts, stops and verifies the rollouts, as in GRPO."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm import tqdm

from cs336_alignment.loop_configs import ExpertIterationConfig, SFTConfig
from cs336_alignment.math_data import MathProblem
from cs336_alignment.math_eval import PromptStyle
from cs336_alignment.rewards import RewardFn
from cs336_alignment.sampling.params import Sampler
from cs336_alignment.sft_loop import LogFn, train_sft
from cs336_alignment.tokenization import end_with_eos


def filter_correct(
    prompts: Sequence[str], responses: Sequence[str], truths: Sequence[str], reward_fn: RewardFn, tokenizer: Any
) -> list[tuple[str, str]]:
    """The SFT examples among the rollouts: (prompt, response) pairs with reward 1, each response ending with the
    tokenizer's EOS text once (rollouts stop at a stop string such as ``</answer>`` without it, and SFT on them must
    teach the policy to stop there), duplicates of a prompt's answer kept once."""
    kept: dict[tuple[str, str], None] = {}
    for prompt, response, truth in zip(prompts, responses, truths):
        if reward_fn(response, truth)["reward"] == 1.0:
            kept[(prompt, end_with_eos(response, tokenizer))] = None
    return list(kept)


def run_expert_iteration(
    policy: torch.nn.Module,
    tokenizer: Any,
    sampler: Sampler,
    problems: Sequence[MathProblem],
    style: PromptStyle,
    cfg: ExpertIterationConfig,
    sft_cfg: SFTConfig,
    log: LogFn,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    checkpoint: Callable[[int], None] | None = None,
) -> None:
    """``n_ei_steps`` rounds; each round's SFT steps are ``ceil(epochs * kept / batch_size)``. Rollouts are
    prompted, stopped and verified as ``style`` says (``math_eval.PROMPT_STYLES``, or a task's own)."""
    rng = random.Random(cfg.ei_seed)
    optimizer = None
    step = 0
    started = time.perf_counter()
    bar = tqdm(range(cfg.n_ei_steps), desc="expert iteration", unit="round")
    for round_index in bar:
        if 0 < cfg.ei_max_seconds <= time.perf_counter() - started:
            break
        batch = rng.sample(list(problems), min(cfg.questions_per_step, len(problems)))
        prompts = [style.prompt_fn(p.question) for p in batch]
        params = style.sampling(cfg.ei_max_tokens, cfg.ei_temperature, cfg.rollouts_per_question, rng.randrange(2**31))
        completions = sampler.generate(prompts, params)
        repeated = [p for p in prompts for _ in range(cfg.rollouts_per_question)]
        truths = [p.answer for p in batch for _ in range(cfg.rollouts_per_question)]
        kept = filter_correct(repeated, [c.text for c in completions], truths, style.reward_fn, tokenizer)
        round_record = {
            "step": step,
            "phase": "ei_rollout",
            "ei_round": round_index + 1,
            "rollout_reward": len(kept) / max(1, len(completions)),
            "kept_examples": len(kept),
        }
        log(round_record)
        bar.set_postfix(rollout_reward=f"{round_record['rollout_reward']:.3f}", kept=len(kept))
        if not kept:
            continue
        steps = max(1, -(-cfg.sft_epochs * len(kept) // sft_cfg.batch_size))
        round_cfg = SFTConfig(**{**sft_cfg.__dict__, "sft_steps": steps, "eval_every": 0, "max_seconds": 0.0})
        optimizer = train_sft(
            policy, tokenizer, kept, round_cfg, log, evaluate, checkpoint, step_offset=step, optimizer=optimizer
        )
        sampler.sync_weights(policy)
        step += steps
