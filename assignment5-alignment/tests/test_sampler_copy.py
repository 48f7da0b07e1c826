"""The sampler's low-precision copy of a float32 policy: refreshed in place by ``sync_weights`` after an optimiser
step, generating what ``transformers``' own bf16 load of the same weights generates, and absent unless asked."""

import pytest
import torch
from cs336_alignment.expert_iteration import run_expert_iteration
from cs336_alignment.grpo_loop import train_grpo
from cs336_alignment.loop_configs import ExpertIterationConfig, GRPOConfig, SFTConfig
from cs336_alignment.models import save_policy
from cs336_alignment.run_config import PolicyConfig
from cs336_alignment.run_setup import policy_sampler
from cs336_alignment.sampling import KVCacheOptions, KVCacheSampler, SamplingParams, make_sampler
from transformers import AutoModelForCausalLM

from .conftest import ITEM_PROBLEMS, item_style, tiny_basics_lm, tiny_llama

PROMPTS = [[5, 17, 42, 7, 99, 3], [11, 12], [250, 1, 2, 3], [9]]
GREEDY = SamplingParams(temperature=0.0, max_tokens=16)


def _train_step(policy: torch.nn.Module) -> None:
    """One AdamW step on a next-token loss, large enough to move every parameter by more than bf16's spacing."""
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    ids = torch.tensor([[5, 17, 42, 7, 99, 3, 11, 12]])
    policy(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def _rounded(policy: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {name: p.detach().to(dtype) for name, p in policy.named_parameters()}


def _bf16_sampler(policy: torch.nn.Module, static_cache: bool = True) -> KVCacheSampler:
    return KVCacheSampler(policy, None, pad_id=0, show_progress=False, static_cache=static_cache, dtype=torch.bfloat16)


def test_sync_after_an_optimizer_step_copies_the_rounded_weights_in_place():
    policy = tiny_llama()
    sampler = _bf16_sampler(policy)
    copy = sampler.model
    assert copy is not policy and next(policy.parameters()).dtype == torch.float32
    addresses = [p.data_ptr() for p in copy.parameters()]
    for name, param in copy.named_parameters():
        assert param.dtype == torch.bfloat16 and not param.requires_grad
        assert torch.equal(param, _rounded(policy, torch.bfloat16)[name])
    # buffers keep the policy's dtype: RoPE's inverse frequencies stay float32
    assert copy.model.rotary_emb.inv_freq.dtype == torch.float32
    sampler.generate_ids(PROMPTS, GREEDY)  # builds the decoder, whose cache reads the copy's tensors

    _train_step(policy)
    stale = dict(copy.named_parameters())
    moved = _rounded(policy, torch.bfloat16)
    assert all(not torch.equal(stale[name], moved[name]) for name in moved)

    sampler.sync_weights(policy)
    assert sampler.model is copy and [p.data_ptr() for p in copy.parameters()] == addresses
    for name, param in copy.named_parameters():
        assert torch.equal(param, moved[name]), name
    assert copy.lm_head.weight is copy.model.embed_tokens.weight  # still tied
    assert all(p.grad is None for p in copy.parameters())


@pytest.mark.parametrize("static_cache", [True, False], ids=["static_cache", "dynamic_cache"])
def test_greedy_tokens_from_the_synced_copy_equal_a_bf16_load_of_the_trained_policy(static_cache, tmp_path):
    policy = tiny_llama(1)
    sampler = _bf16_sampler(policy, static_cache)
    before = sampler.generate_ids(PROMPTS, GREEDY)  # the decoder built before the update is reused after it
    _train_step(policy)
    assert sampler.generate_ids(PROMPTS, GREEDY) == before  # generation reads the copy, stale until synced
    sampler.sync_weights(policy)
    ours = sampler.generate_ids(PROMPTS, GREEDY)
    assert ours != before

    policy.save_pretrained(tmp_path)  # an independent reference: transformers' own bf16 load of the weights
    reference = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    expected = KVCacheSampler(reference, None, pad_id=0, show_progress=False, static_cache=static_cache)
    assert ours == expected.generate_ids(PROMPTS, GREEDY)


def test_without_a_dtype_or_with_the_policys_own_the_policy_itself_is_read():
    policy = tiny_llama(2)
    default = make_sampler("kv_cache", policy, None, options=KVCacheOptions())
    same_dtype = KVCacheSampler(policy, None, pad_id=0, show_progress=False, dtype=torch.float32)
    assert default.model is policy and same_dtype.model is policy
    before = default.generate_ids(PROMPTS, GREEDY)
    _train_step(policy)
    policy.eval()
    default.sync_weights(policy)
    assert default.model is policy
    fresh = KVCacheSampler(policy, None, pad_id=0, show_progress=False).generate_ids(PROMPTS, GREEDY)
    after = default.generate_ids(PROMPTS, GREEDY)
    assert after == fresh and after != before


def test_syncing_another_module_adopts_it_with_a_new_copy():
    first, second = tiny_llama(3), tiny_llama(4)
    sampler = _bf16_sampler(first)
    sampler.sync_weights(second)
    assert sampler.policy is second
    for name, param in sampler.model.named_parameters():
        assert torch.equal(param, _rounded(second, torch.bfloat16)[name])


def test_policy_config_sampler_dtype_reaches_the_sampler(gpt2_tokenizer, tmp_path):
    policy = tiny_llama()
    save_policy(policy, gpt2_tokenizer, tmp_path / "tiny")
    cfg = PolicyConfig(model=str(tmp_path / "tiny"), device="cpu", backend="kv_cache", sampler_dtype="bfloat16")
    sampler = policy_sampler(cfg, policy, gpt2_tokenizer)
    assert sampler.policy is policy and next(sampler.model.parameters()).dtype == torch.bfloat16
    assert policy_sampler(PolicyConfig(model=cfg.model, backend="kv_cache"), policy, gpt2_tokenizer).model is policy
    with pytest.raises(ValueError, match="sampler_dtype must be one of"):
        policy_sampler(PolicyConfig(model=cfg.model, backend="kv_cache", sampler_dtype="bf16"), policy, None)


class _FreshnessCheckedSampler(KVCacheSampler):
    """Records, at every ``generate``, whether the copy holds the policy's current weights rounded to its dtype."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fresh: list[bool] = []

    def generate(self, prompts, params):
        pairs = zip(self.model.parameters(), self.policy.parameters(), strict=True)
        self.fresh.append(all(torch.equal(c, p.detach().to(c.dtype)) for c, p in pairs))
        return super().generate(prompts, params)


def _always_right(response: str, truth: str) -> dict[str, float]:
    return {"reward": 1.0, "format_reward": 1.0, "answer_reward": 1.0}


def _moving_reward(response: str, truth: str) -> dict[str, float]:
    reward = float(len(response) % 2)
    return {"reward": reward, "format_reward": 1.0, "answer_reward": reward}


def test_grpo_and_expert_iteration_never_sample_from_a_stale_copy(arith_tokenizer):
    policy = tiny_basics_lm(len(arith_tokenizer.vocab), seed=3)
    start = [p.detach().clone() for p in policy.parameters()]
    sampler = _FreshnessCheckedSampler(policy, arith_tokenizer, show_progress=False, dtype=torch.bfloat16)
    grpo = GRPOConfig(
        n_grpo_steps=3,
        learning_rate=2e-2,
        rollout_batch_size=16,
        group_size=8,
        sampling_max_tokens=6,
        sampling_min_tokens=1,
        train_batch_size=16,
        gradient_accumulation_steps=2,
    )
    train_grpo(policy, arith_tokenizer, sampler, ITEM_PROBLEMS, item_style(_moving_reward), grpo, lambda r: None)
    ei = ExpertIterationConfig(n_ei_steps=2, questions_per_step=4, rollouts_per_question=2, ei_max_tokens=6)
    sft = SFTConfig(batch_size=4, gradient_accumulation_steps=1, lr=1e-2)
    run_expert_iteration(
        policy, arith_tokenizer, sampler, ITEM_PROBLEMS, item_style(_always_right), ei, sft, lambda r: None
    )
    assert sampler.fresh == [True] * 5
    assert not any(torch.equal(a, b) for a, b in zip(start, policy.parameters()))  # the policy did move
