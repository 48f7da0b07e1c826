"""GRPO: sample a group of responses per question, score them with a verified reward, normalise the rewards
within each group, and take policy-gradient steps (on-policy, or several off-policy epochs with clipping).

Follows the handout's Algorithm 3. The sampler generates from the policy's current weights: ``sync_weights``
after every rollout batch's updates refreshes our KV-cache sampler's low-precision copy (none: it reads the
policy in place) or vLLM's engine. A run can stop (``max_seconds``) and continue later: ``train_grpo`` returns a
``GRPOProgress`` and takes one back, so the resumed steps draw the same questions, rollout seeds, shuffles and
dropout masks, at the same learning rates, as an uninterrupted run.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from cs336_basics.optimizer import lr_cosine_schedule
from cs336_basics.toolkit.device import autocast_context
from tqdm import tqdm

from cs336_alignment.advantages import compute_group_normalized_rewards
from cs336_alignment.log_probs import get_response_log_probs
from cs336_alignment.loop_configs import GRPOConfig
from cs336_alignment.losses import masked_mean
from cs336_alignment.math_data import MathProblem
from cs336_alignment.math_eval import PromptStyle
from cs336_alignment.optim import clip_and_step, make_optimizer, set_lr
from cs336_alignment.sampling.params import Sampler, SamplingParams
from cs336_alignment.tokenization import encode_texts, pack_prompt_and_output_ids, pad_token_id
from cs336_alignment.train_steps import grpo_microbatch_train_step

LogFn = Callable[[dict[str, Any]], None]


@dataclass
class GRPOProgress:
    """Where a GRPO run stands after ``train_grpo`` returns: the next step (0-based, ``n_grpo_steps`` when done),
    AdamW's state and the random generators' states (question sampling and shuffling; torch's, for dropout).
    The tensors are the live optimiser's: save or copy them before training on."""

    next_step: int
    optimizer: dict[str, Any]
    question_rng: tuple
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor]

    def restore(self, optimizer: torch.optim.Optimizer, rng: random.Random) -> None:
        optimizer.load_state_dict(self.optimizer)
        rng.setstate(self.question_rng)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng:
            torch.cuda.set_rng_state_all(self.cuda_rng)

    @classmethod
    def capture(cls, next_step: int, optimizer: torch.optim.Optimizer, rng: random.Random) -> GRPOProgress:
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return cls(next_step, optimizer.state_dict(), rng.getstate(), torch.get_rng_state(), cuda_rng)


@dataclass
class Rollouts:
    """One rollout batch: prompts repeated per sample, responses, and their tokenisation and scores."""

    prompts: list[str]
    responses: list[str]
    response_tokens: list[int]
    batch: dict[str, torch.Tensor]
    advantages: torch.Tensor
    raw_rewards: torch.Tensor
    reward_stats: dict[str, float]
    old_log_probs: torch.Tensor | None = None


def collect_rollouts(
    policy: torch.nn.Module,
    tokenizer: Any,
    sampler: Sampler,
    problems: Sequence[MathProblem],
    style: PromptStyle,
    cfg: GRPOConfig,
    seed: int,
) -> Rollouts:
    """Sample ``group_size`` responses per problem (prompted and stopped as ``style`` says), score them with the
    style's reward and compute group-normalised advantages."""
    params = SamplingParams(
        temperature=cfg.sampling_temperature,
        max_tokens=cfg.sampling_max_tokens,
        min_tokens=cfg.sampling_min_tokens,
        stop=style.stop,
        include_stop_str_in_output=True,
        n=cfg.group_size,
        seed=seed,
    )
    prompts = [style.prompt_fn(p.question) for p in problems]
    completions = sampler.generate(prompts, params)
    responses = [c.text for c in completions]
    repeated_prompts = [p for p in prompts for _ in range(cfg.group_size)]
    truths = [p.answer for p in problems for _ in range(cfg.group_size)]
    advantages, raw_rewards, stats = compute_group_normalized_rewards(
        style.reward_fn, responses, truths, cfg.group_size, cfg.advantage_eps, cfg.use_std_normalization
    )
    device = next(policy.parameters()).device
    # train on the token ids that were sampled: re-encoding the decoded text can split it differently, and the
    # policy gradient must score the actions actually taken
    prompt_ids = [ids for ids in encode_texts(tokenizer, prompts) for _ in range(cfg.group_size)]
    packed = pack_prompt_and_output_ids(prompt_ids, [c.token_ids for c in completions], pad_token_id(tokenizer))
    batch = {k: v.to(device) for k, v in packed.items()}
    rollouts = Rollouts(
        repeated_prompts, responses, [len(c.token_ids) for c in completions], batch, advantages, raw_rewards, stats
    )
    if cfg.needs_old_log_probs:
        rollouts.old_log_probs = policy_log_probs(policy, batch, cfg.micro_batch_size, cfg.precision)
    return rollouts


@torch.no_grad()
def policy_log_probs(
    policy: torch.nn.Module, batch: dict[str, torch.Tensor], micro_batch_size: int, precision: str = "auto"
) -> torch.Tensor:
    """Per-token log-probs of the rollout batch under the current policy (the "old" policy of GRPO-Clip)."""
    device = batch["input_ids"].device
    chunks = []
    for start in range(0, len(batch["input_ids"]), micro_batch_size):
        rows = slice(start, start + micro_batch_size)
        with autocast_context(device, precision):
            out = get_response_log_probs(policy, batch["input_ids"][rows], batch["labels"][rows])
        chunks.append(out["log_probs"].float())
    return torch.cat(chunks)


def grpo_train_on_rollouts(
    policy: torch.nn.Module, optimizer: torch.optim.Optimizer, rollouts: Rollouts, cfg: GRPOConfig, rng: random.Random
) -> dict[str, float]:
    """``epochs_per_rollout_batch`` passes over the rollouts in shuffled train batches; mean statistics."""
    total = len(rollouts.responses)
    device = rollouts.batch["input_ids"].device
    advantages = rollouts.advantages.to(device)[:, None]
    raw_rewards = rollouts.raw_rewards.to(device)[:, None]
    normalize_constant = cfg.normalize_constant or float(cfg.sampling_max_tokens)
    sums = {"loss": 0.0, "entropy": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0}
    micro_count = step_count = 0
    policy.train()
    for _ in range(cfg.epochs_per_rollout_batch):
        order = list(range(total))
        rng.shuffle(order)
        for start in range(0, total, cfg.train_batch_size):
            train_rows = order[start : start + cfg.train_batch_size]
            for m in range(0, len(train_rows), cfg.micro_batch_size):
                rows = torch.tensor(train_rows[m : m + cfg.micro_batch_size], device=device)
                mask = rollouts.batch["response_mask"][rows]
                with autocast_context(device, cfg.precision):
                    out = get_response_log_probs(
                        policy, rollouts.batch["input_ids"][rows], rollouts.batch["labels"][rows], True
                    )
                loss, meta = grpo_microbatch_train_step(
                    out["log_probs"],
                    mask,
                    cfg.gradient_accumulation_steps,
                    cfg.loss_type,  # type: ignore[arg-type]
                    raw_rewards=raw_rewards[rows],
                    advantages=advantages[rows],
                    old_log_probs=None if rollouts.old_log_probs is None else rollouts.old_log_probs[rows],
                    cliprange=cfg.cliprange,
                    length_normalization=cfg.length_normalization,  # type: ignore[arg-type]
                    normalize_constant=normalize_constant,
                )
                sums["loss"] += float(loss)
                sums["entropy"] += float(masked_mean(out["token_entropy"], mask))
                sums["clip_fraction"] += float(meta.get("clip_fraction", 0.0))
                micro_count += 1
            sums["grad_norm"] += clip_and_step(optimizer, cfg.max_grad_norm)
            step_count += 1
    return {
        "loss": sums["loss"] / step_count,
        "entropy": sums["entropy"] / micro_count,
        "clip_fraction": sums["clip_fraction"] / micro_count,
        "grad_norm": sums["grad_norm"] / step_count,
        "optimizer_steps": step_count,
    }


def train_grpo(
    policy: torch.nn.Module,
    tokenizer: Any,
    sampler: Sampler,
    train_problems: Sequence[MathProblem],
    style: PromptStyle,
    cfg: GRPOConfig,
    log: LogFn,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    checkpoint: Callable[[int], None] | None = None,
    step_offset: int = 0,
    resume: GRPOProgress | None = None,
) -> GRPOProgress:
    """Rounds of rollout, scoring and policy-gradient updates up to ``cfg.n_grpo_steps`` (this call ends earlier
    when ``cfg.max_seconds`` runs out); one log record per round, the last one validated. Rollouts are prompted,
    stopped and scored as ``style`` says (``math_eval.PROMPT_STYLES``, or a task's own). ``resume`` (a policy
    already holding its weights) continues a run that returned it; the return value continues this one."""
    questions_per_step = cfg.rollout_batch_size // cfg.group_size
    if len(train_problems) < questions_per_step:
        raise ValueError(f"need at least {questions_per_step} training problems, got {len(train_problems)}")
    optimizer = make_optimizer(policy, cfg.learning_rate, cfg.weight_decay)
    rng = random.Random(cfg.seed)
    first = 0
    if resume is None:
        torch.manual_seed(cfg.seed)  # dropout masks, where the policy has dropout: a rerun repeats them
    else:
        resume.restore(optimizer, rng)
        first = resume.next_step
    bar = tqdm(total=cfg.n_grpo_steps, initial=first, desc="grpo", unit="step")
    loop_started = time.perf_counter()
    next_step = first
    for step in range(first, cfg.n_grpo_steps):
        started = time.perf_counter()
        # min == max: the linear warm-up, then constant
        lr = lr_cosine_schedule(step, cfg.learning_rate, cfg.learning_rate, cfg.warmup_steps, cfg.n_grpo_steps)
        set_lr(optimizer, lr)
        problems = rng.sample(list(train_problems), questions_per_step)
        rollouts = collect_rollouts(policy, tokenizer, sampler, problems, style, cfg, cfg.seed * 100_003 + step)
        rollout_seconds = time.perf_counter() - started
        signal = has_learning_signal(rollouts, cfg.loss_type)
        if not signal:
            warn_no_signal(step_offset + step + 1, rollouts.reward_stats)
        stats = grpo_train_on_rollouts(policy, optimizer, rollouts, cfg, rng)
        sampler.sync_weights(policy)
        record = {
            "step": step_offset + step + 1,
            "phase": "grpo",
            "lr": lr,
            "train_reward": rollouts.reward_stats["reward_mean"],
            "train_format_reward": rollouts.reward_stats["format_reward_mean"],
            "train_answer_reward": rollouts.reward_stats["answer_reward_mean"],
            "frac_groups_all_same": rollouts.reward_stats["frac_groups_all_same"],
            "group_reward_std": rollouts.reward_stats["group_reward_std_mean"],
            "no_learning_signal": not signal,
            "response_tokens": sum(rollouts.response_tokens) / len(rollouts.response_tokens),
            **stats,
            "rollout_seconds": rollout_seconds,
            "step_seconds": time.perf_counter() - started,
        }
        last = step + 1 == cfg.n_grpo_steps or 0 < cfg.max_seconds <= time.perf_counter() - loop_started
        if evaluate is not None and (last or (cfg.eval_every and (step + 1) % cfg.eval_every == 0)):
            record.update(evaluate(step_offset + step + 1))
            if checkpoint is not None:
                checkpoint(step_offset + step + 1)
        bar.set_postfix(reward=f"{record['train_reward']:.3f}", tokens=f"{record['response_tokens']:.0f}")
        bar.update()
        log(record)
        next_step = step + 1
        if last:
            break
    bar.close()
    return GRPOProgress.capture(next_step, optimizer, rng)


def has_learning_signal(rollouts: Rollouts, loss_type: str) -> bool:
    """Whether the batch's policy gradient can be non-zero: some advantage (some reward, for ``no_baseline``,
    whose weights are the raw rewards) differs from zero. Every group with equal rewards means none does."""
    weights = rollouts.raw_rewards if loss_type == "no_baseline" else rollouts.advantages
    return bool((weights != 0).any())


def warn_no_signal(step: int, reward_stats: dict[str, float]) -> None:
    """A loud line on stderr (above the progress bar): the step cannot change the policy."""
    tqdm.write(
        f"WARNING: GRPO step {step} has no learning signal: every group's rewards are equal "
        f"(mean reward {reward_stats['reward_mean']:.3f}, format {reward_stats['format_reward_mean']:.3f}), "
        "so every advantage is 0 and the policy gradient is zero. More samples per group, a higher temperature "
        "or easier questions give groups with mixed rewards.",
        file=sys.stderr,
    )
