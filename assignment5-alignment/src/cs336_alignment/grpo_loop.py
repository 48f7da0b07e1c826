"""GRPO: sample a group of responses per question, score them with a verified reward, normalise the rewards
within each group, and take policy-gradient steps (on-policy, or several off-policy epochs with clipping).

Follows the handout's Algorithm 3. The sampler generates from the policy's current weights: ``sync_weights``
after every rollout batch's updates refreshes our KV-cache sampler's low-precision copy (none: it reads the
policy in place) or vLLM's engine. A run can stop (``max_seconds``) and continue later: ``train_grpo`` returns a
``GRPOProgress`` and takes one back, so the resumed steps draw the same questions, rollout seeds, shuffles and
dropout masks, at the same learning rates, as an uninterrupted run.

A small policy's groups mostly have equal rewards (all wrong), and such a group has zero advantage: it teaches
nothing. ``max_sampling_rounds > 1`` turns on DAPO's dynamic sampling (Yu et al. 2025): a step samples rounds of
fresh questions and trains on groups whose rewards differ, so that every group in the batch carries signal.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from cs336_basics.optimizer import lr_cosine_schedule
from cs336_basics.toolkit.device import autocast_context
from jaxtyping import Float
from tqdm import tqdm

from cs336_alignment.advantages import compute_group_normalized_rewards
from cs336_alignment.log_probs import get_response_log_probs
from cs336_alignment.loop_configs import GRPOConfig
from cs336_alignment.losses import masked_mean
from cs336_alignment.math_data import MathProblem
from cs336_alignment.math_eval import PromptStyle
from cs336_alignment.optim import clip_and_step, make_optimizer, set_lr
from cs336_alignment.random_state import capture_generators, restore_generators
from cs336_alignment.sampling.params import Completion, Sampler, SamplingParams
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
        restore_generators(rng, self.question_rng, self.torch_rng, self.cuda_rng)

    @classmethod
    def capture(cls, next_step: int, optimizer: torch.optim.Optimizer, rng: random.Random) -> GRPOProgress:
        return cls(next_step, optimizer.state_dict(), *capture_generators(rng))


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


@dataclass
class ScoredGroup:
    """The ``group_size`` sampled responses to one question, their rewards and group-normalised advantages."""

    prompt: str
    completions: list[Completion]
    raw_rewards: Float[torch.Tensor, " group_size"]
    advantages: Float[torch.Tensor, " group_size"]

    @property
    def mixed(self) -> bool:
        """Whether the rewards differ: only then are the advantages non-zero and the group teaches anything."""
        return bool(self.raw_rewards.max() != self.raw_rewards.min())


@dataclass
class GroupBatch:
    """The groups a GRPO step trains on, the reward statistics of every group sampled for it, and the counts."""

    groups: list[ScoredGroup]
    reward_stats: dict[str, float]
    sampling_rounds: int
    groups_sampled: int
    groups_kept: int


REWARD_STATS = (
    "reward_mean",
    "format_reward_mean",
    "answer_reward_mean",
    "frac_groups_all_same",
    "group_reward_std_mean",
)
"""The reward statistics a step logs: means over equally many responses (or groups) per sampling round, so the
mean over rounds is the mean over everything sampled."""


def sample_groups(
    sampler: Sampler, problems: Sequence[MathProblem], style: PromptStyle, cfg: GRPOConfig, seed: int
) -> tuple[list[ScoredGroup], dict[str, float]]:
    """One group of ``group_size`` scored responses per problem, in order, and the rewards' statistics."""
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
    truths = [p.answer for p in problems for _ in range(cfg.group_size)]
    advantages, raw_rewards, stats = compute_group_normalized_rewards(
        style.reward_fn,
        [c.text for c in completions],
        truths,
        cfg.group_size,
        cfg.advantage_eps,
        cfg.use_std_normalization,
    )
    size = cfg.group_size
    groups = [
        ScoredGroup(
            prompt,
            completions[i * size : (i + 1) * size],
            raw_rewards[i * size : (i + 1) * size],
            advantages[i * size : (i + 1) * size],
        )
        for i, prompt in enumerate(prompts)
    ]
    return groups, stats


def pack_rollouts(
    policy: torch.nn.Module, tokenizer: Any, groups: Sequence[ScoredGroup], stats: dict[str, float], cfg: GRPOConfig
) -> Rollouts:
    """The groups as one rollout batch on the policy's device (with the old log-probs GRPO-Clip needs)."""
    completions = [c for g in groups for c in g.completions]
    device = next(policy.parameters()).device
    # train on the token ids that were sampled: re-encoding the decoded text can split it differently, and the
    # policy gradient must score the actions actually taken
    prompt_ids = [ids for ids in encode_texts(tokenizer, [g.prompt for g in groups]) for _ in range(cfg.group_size)]
    packed = pack_prompt_and_output_ids(prompt_ids, [c.token_ids for c in completions], pad_token_id(tokenizer))
    batch = {k: v.to(device) for k, v in packed.items()}
    rollouts = Rollouts(
        [g.prompt for g in groups for _ in range(cfg.group_size)],
        [c.text for c in completions],
        [len(c.token_ids) for c in completions],
        batch,
        torch.cat([g.advantages for g in groups]),
        torch.cat([g.raw_rewards for g in groups]),
        stats,
    )
    if cfg.needs_old_log_probs:
        rollouts.old_log_probs = policy_log_probs(policy, batch, cfg.micro_batch_size, cfg.precision)
    return rollouts


def gather_groups(
    sampler: Sampler,
    train_problems: Sequence[MathProblem],
    style: PromptStyle,
    cfg: GRPOConfig,
    step: int,
    rng: random.Random,
) -> GroupBatch:
    """A step's groups, DAPO's dynamic sampling when ``cfg.max_sampling_rounds > 1``: each round draws
    ``rollout_batch_size // group_size`` fresh questions from ``rng`` until that many groups with mixed rewards
    are in hand (the first ones, in the order sampled) or the rounds run out; then the first groups with equal
    rewards (zero advantage) fill the batch, so its shape, micro-batches and loss normalisation stay fixed. The
    batch keeps the order sampled; with one round it is that round's groups, as without dynamic sampling."""
    wanted = cfg.rollout_batch_size // cfg.group_size
    sampled: list[ScoredGroup] = []
    round_stats: list[dict[str, float]] = []
    for sampling_round in range(cfg.max_sampling_rounds):
        problems = rng.sample(list(train_problems), wanted)
        seed = rollout_seed(cfg.seed, step, sampling_round)
        groups, stats = sample_groups(sampler, problems, style, cfg, seed)
        sampled += groups
        round_stats.append(stats)
        if sum(g.mixed for g in sampled) >= wanted:
            break
    kept = [i for i, g in enumerate(sampled) if g.mixed][:wanted]
    padding = [i for i, g in enumerate(sampled) if not g.mixed][: wanted - len(kept)]
    return GroupBatch(
        [sampled[i] for i in sorted(kept + padding)],
        {key: sum(s[key] for s in round_stats) / len(round_stats) for key in REWARD_STATS},
        len(round_stats),
        len(sampled),
        len(kept),
    )


def rollout_seed(seed: int, step: int, sampling_round: int) -> int:
    """The sampler's seed of a step's sampling round: round 0 keeps the seed every step had before dynamic
    sampling; later rounds hash (seed, step, round), so no two rounds of a run repeat one another's samples."""
    if sampling_round == 0:
        return seed * 100_003 + step
    digest = hashlib.sha256(f"grpo rollouts: seed {seed} step {step} round {sampling_round}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


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
        gathered = gather_groups(sampler, train_problems, style, cfg, step, rng)
        rollouts = pack_rollouts(policy, tokenizer, gathered.groups, gathered.reward_stats, cfg)
        rollout_seconds = time.perf_counter() - started
        if cfg.max_sampling_rounds > 1 and gathered.groups_kept < questions_per_step:
            note_padding(step_offset + step + 1, gathered, questions_per_step)
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
            "sampling_rounds": gathered.sampling_rounds,
            "groups_sampled": gathered.groups_sampled,
            "groups_kept": gathered.groups_kept,
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


def note_padding(step: int, gathered: GroupBatch, wanted: int) -> None:
    """A line on stderr: dynamic sampling ran out of rounds, and equal-reward groups fill part of the batch."""
    tqdm.write(
        f"GRPO step {step}: {gathered.sampling_rounds} sampling rounds found {gathered.groups_kept} groups with "
        f"mixed rewards in {gathered.groups_sampled}, short of {wanted}; {wanted - gathered.groups_kept} groups "
        "with equal rewards (zero advantage) fill the batch",
        file=sys.stderr,
    )


def warn_no_signal(step: int, reward_stats: dict[str, float]) -> None:
    """A loud line on stderr (above the progress bar): the step cannot change the policy."""
    tqdm.write(
        f"WARNING: GRPO step {step} has no learning signal: every group's rewards are equal "
        f"(mean reward {reward_stats['reward_mean']:.3f}, format {reward_stats['format_reward_mean']:.3f}), "
        "so every advantage is 0 and the policy gradient is zero. More samples per group, a higher temperature "
        "or easier questions give groups with mixed rewards.",
        file=sys.stderr,
    )
