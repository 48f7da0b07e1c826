"""GRPO's dynamic sampling (``max_sampling_rounds > 1``, DAPO): rounds of fresh questions until the batch holds
groups with mixed rewards, the first ones in the order sampled; equal-reward groups set aside pad the batch when the
rounds run out. A scripted sampler makes which groups are mixed known in advance: it answers a "mixed" question
with " 0", " 1", ... (only " 0" earns the reward) and every other question with " 1" throughout."""

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
import torch
from cs336_alignment import grpo_loop
from cs336_alignment.grpo_loop import gather_groups, rollout_seed, train_grpo
from cs336_alignment.loop_configs import GRPOConfig
from cs336_alignment.math_data import MathProblem
from cs336_alignment.sampling import KVCacheSampler
from cs336_alignment.sampling.params import Completion, SamplingParams
from cs336_alignment.tokenization import encode_texts

from .conftest import ITEM_PROBLEMS, item_prompt, item_style, tiny_basics_lm

MIXED = [MathProblem(f"Q: mixed {i}", "0") for i in range(6)]
EQUAL = [MathProblem(f"Q: equal {i}", "0") for i in range(6)]
CFG = GRPOConfig(
    n_grpo_steps=3,
    learning_rate=1e-2,
    rollout_batch_size=8,
    group_size=2,
    train_batch_size=8,
    gradient_accumulation_steps=2,
    sampling_max_tokens=4,
    sampling_min_tokens=1,
    max_sampling_rounds=3,
    seed=2,
)
EVERY_STEP = 1e-9
"""A ``max_seconds`` that every step passes: each call trains exactly one step, whatever the machine's speed."""


def _first_sample(response: str, truth: str) -> dict[str, float]:
    reward = float(response == " 0")
    return {"reward": reward, "format_reward": 1.0, "answer_reward": reward}


STYLE = item_style(_first_sample)


class ScriptedSampler:
    """Varied answers (rewards 1, 0, 0, ...) where ``varies(prompt, call)`` says so, else equal ones (all 0);
    records every call's prompts and seed."""

    def __init__(self, tokenizer, varies: Callable[[str, int], bool] = lambda prompt, call: "mixed" in prompt):
        self.tokenizer, self.varies = tokenizer, varies
        self.calls: list[tuple[list[str], int | None]] = []

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        call = len(self.calls)
        self.calls.append((list(prompts), params.seed))
        texts = [[f" {k}" if self.varies(p, call) else " 1" for k in range(params.n)] for p in prompts]
        return [
            Completion(p, text, encode_texts(self.tokenizer, [text])[0], "stop")
            for p, group in zip(prompts, texts)
            for text in group
        ]

    def sync_weights(self, policy: torch.nn.Module) -> None:
        pass


class ScriptedDraws:
    """The question RNG's stand-in: each ``sample`` returns the next scripted round of questions."""

    def __init__(self, *rounds: list[MathProblem]):
        self.rounds = list(rounds)

    def sample(self, population: list[MathProblem], k: int) -> list[MathProblem]:
        questions = self.rounds.pop(0)
        assert len(questions) == k and all(q in population for q in questions)
        return questions


def _prompts(*problems: MathProblem) -> list[str]:
    return [item_prompt(p.question) for p in problems]


def test_the_batch_holds_the_first_mixed_groups_in_order_and_stops_sampling_once_full(arith_tokenizer):
    m, e = MIXED, EQUAL
    draws = ScriptedDraws([m[0], e[0], m[1], e[1]], [e[2], m[2], m[3], m[4]], [m[5], m[5], m[5], m[5]])
    sampler = ScriptedSampler(arith_tokenizer)
    batch = gather_groups(sampler, MIXED + EQUAL, STYLE, CFG, 5, draws)
    assert [g.prompt for g in batch.groups] == _prompts(m[0], m[1], m[2], m[3])  # m[4], a 5th, is dropped
    assert len(draws.rounds) == 1  # the third round was never drawn
    assert (batch.sampling_rounds, batch.groups_sampled, batch.groups_kept) == (2, 8, 4)
    assert [seed for _, seed in sampler.calls] == [2 * 100_003 + 5, rollout_seed(2, 5, 1)]  # round 0: as before
    assert all(g.raw_rewards.tolist() == [1.0, 0.0] and (g.advantages != 0).all() for g in batch.groups)
    # the statistics cover every group sampled: 3 of 8 equal, rewards 5 of 16
    assert batch.reward_stats["frac_groups_all_same"] == 3 / 8 and batch.reward_stats["reward_mean"] == 5 / 16


def test_when_the_rounds_run_out_the_first_equal_groups_pad_the_batch_in_sampling_order(arith_tokenizer):
    m, e = MIXED, EQUAL
    draws = ScriptedDraws([m[0], e[0], e[1], e[2]], [e[3], m[1], e[4], e[5]])
    two_rounds = replace(CFG, max_sampling_rounds=2)
    batch = gather_groups(ScriptedSampler(arith_tokenizer), MIXED + EQUAL, STYLE, two_rounds, 0, draws)
    assert [g.prompt for g in batch.groups] == _prompts(m[0], e[0], e[1], m[1])
    assert (batch.sampling_rounds, batch.groups_sampled, batch.groups_kept) == (2, 8, 2)
    padding = [g for g in batch.groups if not g.mixed]
    assert all(g.raw_rewards.tolist() == [0.0, 0.0] and (g.advantages == 0).all() for g in padding)


def test_one_round_trains_on_every_group_sampled_with_todays_questions_and_seeds(arith_tokenizer, monkeypatch):
    trained = _spy_on_training(monkeypatch)
    sampler = ScriptedSampler(arith_tokenizer)
    model = tiny_basics_lm(len(arith_tokenizer.vocab), seed=6)
    records = []
    cfg = replace(CFG, max_sampling_rounds=1, n_grpo_steps=2)
    train_grpo(model, arith_tokenizer, sampler, MIXED[:3] + EQUAL, STYLE, cfg, records.append)
    assert [seed for _, seed in sampler.calls] == [2 * 100_003, 2 * 100_003 + 1]
    assert sampler.calls[0][0] == _prompts(*random.Random(2).sample(MIXED[:3] + EQUAL, 4))
    for (prompts, _), batch, record in zip(sampler.calls, trained, records):
        assert batch == prompts  # equal-reward groups too, in the order sampled
        mixed = sum("mixed" in p for p in prompts)
        assert (record["sampling_rounds"], record["groups_sampled"], record["groups_kept"]) == (1, 4, mixed)
        assert record["frac_groups_all_same"] == (4 - mixed) / 4


def test_steps_log_the_rounds_and_keep_only_mixed_groups(arith_tokenizer, monkeypatch, capsys):
    trained = _spy_on_training(monkeypatch)
    sampler = ScriptedSampler(arith_tokenizer, varies=lambda prompt, call: call % 2 == 1)  # every second round
    model = tiny_basics_lm(len(arith_tokenizer.vocab), seed=6)
    before = [p.detach().clone() for p in model.parameters()]
    records = []
    train_grpo(
        model, arith_tokenizer, sampler, ITEM_PROBLEMS, STYLE, replace(CFG, max_sampling_rounds=2), records.append
    )
    assert [(r["sampling_rounds"], r["groups_sampled"], r["groups_kept"]) for r in records] == [(2, 8, 4)] * 3
    assert [r["frac_groups_all_same"] for r in records] == [0.5] * 3 and not any(
        r["no_learning_signal"] for r in records
    )
    assert trained == [sampler.calls[call][0] for call in (1, 3, 5)]  # each step's second round
    assert "WARNING" not in capsys.readouterr().err  # the first round of every step had no signal; the batch has
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_step_whose_rounds_all_have_equal_rewards_pads_warns_and_changes_nothing(
    arith_tokenizer, monkeypatch, capsys
):
    trained = _spy_on_training(monkeypatch)
    sampler = ScriptedSampler(arith_tokenizer)
    model = tiny_basics_lm(len(arith_tokenizer.vocab), seed=6)
    before = [p.detach().clone() for p in model.parameters()]
    records = []
    train_grpo(model, arith_tokenizer, sampler, EQUAL, STYLE, replace(CFG, n_grpo_steps=1), records.append)
    assert (records[0]["sampling_rounds"], records[0]["groups_sampled"], records[0]["groups_kept"]) == (3, 12, 0)
    assert records[0]["no_learning_signal"] and records[0]["frac_groups_all_same"] == 1.0
    assert trained == [sampler.calls[0][0]]  # the batch keeps its shape: the first round's groups
    err = capsys.readouterr().err
    assert "3 sampling rounds found 0 groups with mixed rewards in 12, short of 4" in err
    assert "WARNING: GRPO step 1 has no learning signal" in err
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def _odd_length(response: str, truth: str) -> dict[str, float]:
    reward = float(len(response) % 2)
    return {"reward": reward, "format_reward": 1.0, "answer_reward": reward}


def test_a_dynamic_sampling_run_resumed_after_every_step_equals_an_uninterrupted_one(arith_tokenizer):
    style = item_style(_odd_length)
    cfg = replace(CFG, rollout_batch_size=4, train_batch_size=4)
    whole = tiny_basics_lm(len(arith_tokenizer.vocab), seed=6)
    whole_records = []
    train_grpo(
        whole, arith_tokenizer, KVCacheSampler(whole, arith_tokenizer), ITEM_PROBLEMS, style, cfg, whole_records.append
    )
    resumed, records, progress = tiny_basics_lm(len(arith_tokenizer.vocab), seed=6), [], None
    for call in range(3):
        torch.manual_seed(1000 + call)  # as in a new process: torch's generator elsewhere
        sampler = KVCacheSampler(resumed, arith_tokenizer)
        one_step = replace(cfg, max_seconds=EVERY_STEP)
        progress = copy.deepcopy(
            train_grpo(
                resumed, arith_tokenizer, sampler, ITEM_PROBLEMS, style, one_step, records.append, resume=progress
            )
        )
    assert progress.next_step == 3
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), resumed.parameters()))
    timing = ("rollout_seconds", "step_seconds")
    assert [{k: v for k, v in r.items() if k not in timing} for r in records] == [
        {k: v for k, v in r.items() if k not in timing} for r in whole_records
    ]
    assert any(r["sampling_rounds"] > 1 for r in records) and not all(r["no_learning_signal"] for r in records)


def test_rollout_seeds_differ_across_runs_steps_and_rounds_and_round_0_keeps_its_seed():
    seeds = [rollout_seed(seed, step, r) for seed in range(3) for step in range(200) for r in range(4)]
    assert len(set(seeds)) == len(seeds)
    assert rollout_seed(3, 17, 0) == 3 * 100_003 + 17


def test_dynamic_sampling_needs_a_baseline_and_at_least_one_round():
    with pytest.raises(ValueError, match="at least 1"):
        GRPOConfig(max_sampling_rounds=0)
    with pytest.raises(ValueError, match="no_baseline"):
        GRPOConfig(max_sampling_rounds=2, loss_type="no_baseline")


def _spy_on_training(monkeypatch) -> list[list[str]]:
    """The question prompts of every batch ``train_grpo`` trains on (one per group), in the batch's order."""
    batches: list[list[str]] = []
    real = grpo_loop.grpo_train_on_rollouts

    def spy(policy, optimizer, rollouts, cfg, rng):
        batches.append(rollouts.prompts[:: cfg.group_size])
        return real(policy, optimizer, rollouts, cfg, rng)

    monkeypatch.setattr(grpo_loop, "grpo_train_on_rollouts", spy)
    return batches
