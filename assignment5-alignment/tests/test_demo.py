"""The offline demo's GRPO options reach the loop's config, and bad ones fail before any training; its SFT targets
end with the tokenizer's EOS."""

import pytest
from cs336_alignment.demo import demo_grpo_config, demo_sft_examples, noisy_demonstrations
from cs336_alignment.demo_config import DemoConfig
from cs336_alignment.math_data import arithmetic_word_problems, r1_zero_target
from cs336_alignment.rewards import r1_zero_reward_fn
from cs336_alignment.tokenization import eos_token_id, tokenize_prompt_and_output


def test_demo_grpo_config_carries_every_option():
    cfg = DemoConfig(
        grpo_steps=7,
        grpo_lr=2e-4,
        grpo_questions_per_step=32,
        group_size=8,
        grpo_temperature=0.5,
        grpo_epochs=2,
        loss_type="grpo_clip",
        use_std_normalization=False,
        length_normalization="constant",
        max_tokens=48,
        seed=3,
    )
    grpo = demo_grpo_config(cfg)
    assert (grpo.n_grpo_steps, grpo.learning_rate, grpo.seed) == (7, 2e-4, 3)
    # 32 questions x 8 samples = 256 rollouts, one optimiser step per epoch, micro-batches of 32
    assert (grpo.rollout_batch_size, grpo.train_batch_size, grpo.micro_batch_size) == (256, 256, 32)
    assert (grpo.sampling_temperature, grpo.sampling_max_tokens, grpo.epochs_per_rollout_batch) == (0.5, 48, 2)
    assert grpo.loss_type == "grpo_clip" and grpo.needs_old_log_probs
    assert not grpo.use_std_normalization and grpo.length_normalization == "constant"


@pytest.mark.parametrize("bad", [{"length_normalization": "per_token"}, {"loss_type": "ppo"}])
def test_demo_grpo_config_rejects_unknown_options(bad):
    with pytest.raises(ValueError):
        demo_grpo_config(DemoConfig(**bad))


def test_noisy_demonstrations_state_an_off_by_one_answer_at_the_given_rate():
    problems = arithmetic_word_problems(2000, 0, 9)
    noisy = noisy_demonstrations(problems, 0.6, seed=3)
    changed = [(p, q) for p, q in zip(problems, noisy, strict=True) if p.answer != q.answer]
    assert abs(len(changed) / len(problems) - 0.6) < 0.04
    for clean, wrong in changed:
        assert int(wrong.answer) == int(clean.answer) + 1
        assert (wrong.question, wrong.solution) == (clean.question, clean.solution)  # the reasoning stays right
        assert r1_zero_reward_fn(r1_zero_target(wrong), clean.answer)["answer_reward"] == 0.0
    assert noisy_demonstrations(problems, 0.6, seed=3) == noisy
    assert noisy_demonstrations(problems, 0.0, seed=3) == problems


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_noisy_demonstrations_reject_a_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match="sft_wrong_answer_rate"):
        noisy_demonstrations([], rate, seed=0)


def test_demo_sft_targets_end_with_eos_as_their_last_trained_label(arith_tokenizer):
    problems = arithmetic_word_problems(3, 0, 9)
    examples = demo_sft_examples(DemoConfig(), problems, arith_tokenizer)
    assert [prompt for prompt, _ in examples] == [f"User: {p.question}\nAssistant: <think>" for p in problems]
    assert all(target.endswith(" </answer><|endoftext|>") for _, target in examples)
    batch = tokenize_prompt_and_output(*zip(*examples), arith_tokenizer)
    eos = eos_token_id(arith_tokenizer)
    for labels, mask in zip(batch["labels"], batch["response_mask"], strict=True):
        trained = labels[mask].tolist()
        assert trained[-1] == eos and trained.count(eos) == 1
