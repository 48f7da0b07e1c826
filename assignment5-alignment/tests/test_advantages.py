"""Group-normalised rewards against Python's statistics module."""

import statistics

import pytest
from cs336_alignment.advantages import compute_group_normalized_rewards


def _reward_by_last_char(response: str, truth: str) -> dict[str, float]:
    r = float(response[-1] == truth)
    return {"reward": r, "format_reward": 1.0, "answer_reward": r}


RESPONSES = ["a1", "b2", "c1", "d1", "e0", "f0", "g0", "h1"]
TRUTHS = ["1"] * 8


@pytest.mark.parametrize("normalize_by_std", [True, False])
def test_group_normalisation_matches_statistics(normalize_by_std):
    adv, raw, meta = compute_group_normalized_rewards(
        _reward_by_last_char, RESPONSES, TRUTHS, 4, 1e-6, normalize_by_std
    )
    rewards = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert raw.tolist() == rewards
    for g in range(2):
        group = rewards[4 * g : 4 * g + 4]
        mu, sd = statistics.mean(group), statistics.stdev(group)
        for k, r in enumerate(group):
            expected = (r - mu) / (sd + 1e-6) if normalize_by_std else r - mu
            assert adv[4 * g + k].item() == pytest.approx(expected, rel=1e-5)
    assert meta["reward_mean"] == pytest.approx(0.5)
    assert meta["reward_max"] == 1.0 and meta["reward_min"] == 0.0
    group_stds = [statistics.stdev(rewards[:4]), statistics.stdev(rewards[4:])]
    assert meta["group_reward_std_mean"] == pytest.approx(statistics.mean(group_stds), rel=1e-6)
    assert meta["frac_groups_all_same"] == 0.0


def test_identical_group_gets_zero_advantage():
    adv, _, meta = compute_group_normalized_rewards(_reward_by_last_char, ["x1"] * 4, ["1"] * 4, 4, 1e-6, True)
    assert adv.abs().max().item() == 0.0
    assert meta["frac_groups_all_same"] == 1.0


def test_rejects_ragged_groups():
    with pytest.raises(ValueError, match="groups of 3"):
        compute_group_normalized_rewards(_reward_by_last_char, RESPONSES, TRUTHS, 3, 1e-6, True)
