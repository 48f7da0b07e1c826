"""Expert iteration: sample several answers per question, keep the ones the verifier accepts, and run SFT on
them; repeat with the improved policy. A ``PromptStyle`` prompts, stops and verifies the rollouts, as in GRPO.

A run can stop (``ei_max_seconds``) and continue later: ``run_expert_iteration`` hands an ``EIProgress`` to its
``save_round`` callback after every round, returns the last one, and takes one back, so the resumed rounds draw
the same questions, rollout seeds, shuffles and dropout masks, with the same AdamW state, as an uninterrupted run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from cs336_alignment.loop_configs import ExpertIterationConfig, SFTConfig
from cs336_alignment.math_data import MathProblem
from cs336_alignment.math_eval import PromptStyle
from cs336_alignment.optim import make_optimizer
from cs336_alignment.random_state import capture_generators, restore_generators
from cs336_alignment.rewards import RewardFn
from cs336_alignment.sampling.params import Sampler
from cs336_alignment.sft_loop import LogFn, train_sft
from cs336_alignment.tokenization import end_with_eos


@dataclass
class EIProgress:
    """Where an expert-iteration run stands after a round: the next round (0-based, ``n_ei_steps`` when done), the
    SFT steps taken, AdamW's state (None before the first round that kept anything) and the random generators'
    states (questions and rollout seeds; torch's, for dropout). The tensors are the live optimiser's: save or copy
    them before training on."""

    next_round: int
    step: int
    optimizer: dict[str, Any] | None
    question_rng: tuple
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor]

    def restore(self, policy: torch.nn.Module, sft_cfg: SFTConfig, rng: random.Random) -> torch.optim.Optimizer | None:
        """Set the generators' states and return the optimiser over ``policy`` (which holds the saved weights)."""
        restore_generators(rng, self.question_rng, self.torch_rng, self.cuda_rng)
        if self.optimizer is None:
            return None
        optimizer = make_optimizer(policy, sft_cfg.lr, sft_cfg.weight_decay)
        optimizer.load_state_dict(self.optimizer)
        return optimizer

    @classmethod
    def capture(
        cls, next_round: int, step: int, optimizer: torch.optim.Optimizer | None, rng: random.Random
    ) -> EIProgress:
        state = None if optimizer is None else optimizer.state_dict()
        return cls(next_round, step, state, *capture_generators(rng))


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
    resume: EIProgress | None = None,
    save_round: Callable[[EIProgress], None] | None = None,
) -> EIProgress:
    """Rounds up to ``n_ei_steps`` (this call ends after the round that passes ``ei_max_seconds``); each round's
    SFT steps are ``ceil(epochs * kept / batch_size)``. Rollouts are prompted, stopped and verified as ``style``
    says (``math_eval.PROMPT_STYLES``, or a task's own). ``resume`` (a policy already holding its weights)
    continues a run that returned or saved it; ``save_round`` gets the progress after every round."""
    rng = random.Random(cfg.ei_seed)
    if resume is None:
        torch.manual_seed(cfg.ei_seed)  # dropout masks, where the policy has dropout: a rerun repeats them
        optimizer, first, step = None, 0, 0
    else:
        optimizer, first, step = resume.restore(policy, sft_cfg, rng), resume.next_round, resume.step
    progress = EIProgress.capture(first, step, optimizer, rng)
    started = time.perf_counter()
    bar = tqdm(range(first, cfg.n_ei_steps), desc="expert iteration", unit="round")
    for round_index in bar:
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
        if kept:
            steps = max(1, -(-cfg.sft_epochs * len(kept) // sft_cfg.batch_size))
            round_cfg = SFTConfig(**{**sft_cfg.__dict__, "sft_steps": steps, "eval_every": 0, "max_seconds": 0.0})
            optimizer = train_sft(
                policy, tokenizer, kept, round_cfg, log, evaluate, checkpoint, step_offset=step, optimizer=optimizer
            )
            sampler.sync_weights(policy)
            step += steps
        progress = EIProgress.capture(round_index + 1, step, optimizer, rng)
        if save_round is not None:
            save_round(progress)
        if 0 < cfg.ei_max_seconds <= time.perf_counter() - started:
            break
    bar.close()
    return progress
