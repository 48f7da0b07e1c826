"""SFT, GRPO and DPO loops driven end to end on tiny models (expert iteration: test_expert_iteration.py)."""

import copy
import math

import torch
from cs336_alignment.dpo import PreferencePair
from cs336_alignment.dpo_loop import train_dpo
from cs336_alignment.grpo_loop import pack_rollouts, sample_groups, train_grpo
from cs336_alignment.loop_configs import DPOConfig, GRPOConfig, SFTConfig
from cs336_alignment.sampling import KVCacheSampler
from cs336_alignment.sft_loop import train_sft

from .conftest import ITEM_PROBLEMS, item_style, tiny_basics_lm

EXAMPLES = [("Q: Ava has 3 apples.\nA: <think>", " Ava has 3 apples. </think> <answer> 3 </answer>")] * 4


def test_sft_loop_fits_the_responses_and_calls_back(arith_tokenizer):
    model = tiny_basics_lm(len(arith_tokenizer.vocab))
    records, evaluated, saved = [], [], []
    cfg = SFTConfig(sft_steps=20, batch_size=4, gradient_accumulation_steps=2, lr=1e-2, eval_every=6)
    train_sft(
        model,
        arith_tokenizer,
        EXAMPLES,
        cfg,
        records.append,
        lambda s: evaluated.append(s) or {"val": 1.0},
        saved.append,
    )
    assert [r["step"] for r in records] == list(range(1, 21))
    assert evaluated == saved == [6, 12, 18, 20] and records[5]["val"] == 1.0
    assert records[-1]["nll_per_token"] < 0.25 * records[0]["nll_per_token"]
    assert {"loss", "entropy", "grad_norm", "lr"} <= set(records[0])


def _starts_with_space(response: str, truth: str) -> dict[str, float]:
    reward = float(response.startswith(" "))
    return {"reward": reward, "format_reward": 1.0, "answer_reward": reward}


def test_grpo_loop_raises_a_learnable_reward(arith_tokenizer):
    model = tiny_basics_lm(len(arith_tokenizer.vocab), seed=3)
    sampler = KVCacheSampler(model, arith_tokenizer)
    cfg = GRPOConfig(
        n_grpo_steps=14,
        learning_rate=2e-2,
        rollout_batch_size=32,
        group_size=8,
        sampling_max_tokens=4,
        sampling_min_tokens=1,
        train_batch_size=32,
        gradient_accumulation_steps=2,
        eval_every=7,
    )
    records = []
    train_grpo(
        model,
        arith_tokenizer,
        sampler,
        ITEM_PROBLEMS,
        item_style(_starts_with_space),
        cfg,
        records.append,
        lambda s: {"val_reward": 0.5},
    )
    assert len(records) == 14 and "val_reward" in records[6] and "val_reward" not in records[5]
    for key in ("train_reward", "entropy", "clip_fraction", "response_tokens", "loss", "grad_norm"):
        assert all(math.isfinite(r[key]) for r in records), key
    early = sum(r["train_reward"] for r in records[:3]) / 3
    late = sum(r["train_reward"] for r in records[-3:]) / 3
    assert late > early + 0.3, (early, late)


def _always(value: float):
    def reward(response: str, truth: str) -> dict[str, float]:
        return {"reward": value, "format_reward": 1.0, "answer_reward": value}

    return reward


def test_grpo_warns_loudly_when_a_step_has_no_learning_signal(arith_tokenizer, capsys):
    model = tiny_basics_lm(len(arith_tokenizer.vocab), seed=5)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = GRPOConfig(
        n_grpo_steps=2,
        rollout_batch_size=8,
        group_size=4,
        sampling_max_tokens=3,
        sampling_min_tokens=1,
        train_batch_size=8,
        gradient_accumulation_steps=2,
        weight_decay=0.0,
    )
    records = []
    sampler = KVCacheSampler(model, arith_tokenizer)
    train_grpo(model, arith_tokenizer, sampler, ITEM_PROBLEMS, item_style(_always(1.0)), cfg, records.append)
    err = capsys.readouterr().err
    assert err.count("WARNING: GRPO step") == 2 and "no learning signal" in err
    assert [r["no_learning_signal"] for r in records] == [True, True]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # zero gradient: nothing moved
    # without a baseline the raw reward itself weights the gradient: all-ones rewards still teach
    records = []
    no_baseline = GRPOConfig(**{**cfg.__dict__, "loss_type": "no_baseline", "n_grpo_steps": 1})
    train_grpo(model, arith_tokenizer, sampler, ITEM_PROBLEMS, item_style(_always(1.0)), no_baseline, records.append)
    assert records[0]["no_learning_signal"] is False and "WARNING" not in capsys.readouterr().err


def test_grpo_clip_rollouts_carry_the_sampling_policys_log_probs(arith_tokenizer):
    model = tiny_basics_lm(len(arith_tokenizer.vocab), seed=4).eval()
    sampler = KVCacheSampler(model, arith_tokenizer)
    cfg = GRPOConfig(
        rollout_batch_size=8,
        group_size=4,
        sampling_max_tokens=6,
        train_batch_size=8,
        gradient_accumulation_steps=2,
        loss_type="grpo_clip",
        epochs_per_rollout_batch=2,
    )
    groups, stats = sample_groups(sampler, ITEM_PROBLEMS[:2], item_style(_starts_with_space), cfg, 0)
    rollouts = pack_rollouts(model, arith_tokenizer, groups, stats, cfg)
    reference = copy.deepcopy(model).double()
    with torch.no_grad():
        logits = reference(rollouts.batch["input_ids"])
    expected = torch.log_softmax(logits, -1).gather(-1, rollouts.batch["labels"][..., None])[..., 0]
    mask = rollouts.batch["response_mask"]
    assert mask.sum(dim=1).tolist() == rollouts.response_tokens  # trained on exactly the sampled tokens
    torch.testing.assert_close(rollouts.old_log_probs.double()[mask], expected[mask], atol=1e-4, rtol=1e-4)
    rewards = torch.tensor([_starts_with_space(r, "0")["reward"] for r in rollouts.responses])
    grouped = rewards.view(2, 4)
    centred = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + cfg.advantage_eps)
    torch.testing.assert_close(rollouts.advantages, centred.reshape(-1))


def test_dpo_loop_learns_the_preference(tiny_gpt2, gpt2_tokenizer):
    policy, reference = copy.deepcopy(tiny_gpt2), copy.deepcopy(tiny_gpt2)
    pairs = [
        PreferencePair("Say hello.", "Hello!", "Go away.", "test"),
        PreferencePair("Add 2 and 2.", "4", "5", "test"),
    ]
    records = []
    cfg = DPOConfig(dpo_steps=4, beta=0.5, lr=1e-3, gradient_accumulation_steps=2, eval_every=4)
    train_dpo(policy, reference, gpt2_tokenizer, pairs, pairs, cfg, records.append)
    assert records[-1]["val_accuracy"] == 1.0
    assert records[-1]["val_loss"] < math.log(2) - 0.05
    assert all(p.grad is None for p in reference.parameters())
