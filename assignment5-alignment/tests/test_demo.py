"""The offline demo's GRPO options reach the loop's config, and bad ones fail before any training."""

import pytest
from cs336_alignment.demo import DemoConfig, demo_grpo_config


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
