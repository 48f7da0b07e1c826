"""95% intervals: Wilson's against the score test it inverts, the paired bootstrap against the normal approximation."""

import math
import random

import pytest
from cs336_alignment.intervals import Z_95, accuracy, paired_difference, wilson_interval


def _score_statistic(successes: int, n: int, p0: float) -> float:
    return abs(successes / n - p0) / math.sqrt(p0 * (1 - p0) / n)


@pytest.mark.parametrize(("successes", "n"), [(1, 10), (5, 10), (81, 263), (37, 500), (499, 500)])
def test_wilson_ends_are_where_the_score_test_reaches_z(successes, n):
    est = wilson_interval(successes, n)
    assert est.low < successes / n < est.high
    assert _score_statistic(successes, n, est.low) == pytest.approx(Z_95, rel=1e-9)
    assert _score_statistic(successes, n, est.high) == pytest.approx(Z_95, rel=1e-9)


def test_wilson_at_the_edges_and_a_textbook_value():
    zero = wilson_interval(0, 10)
    assert (zero.mean, zero.low) == (0.0, 0.0) and zero.high == pytest.approx(0.2775, abs=1e-4)
    full = wilson_interval(500, 500)
    assert (full.mean, full.high) == (1.0, 1.0) and full.low == pytest.approx(1 - 0.00762, abs=1e-4)
    assert str(wilson_interval(81, 263)) == "0.308 [0.255, 0.366]"  # Newcombe (1998), method 3
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        accuracy([0.5])


def test_paired_bootstrap_matches_the_normal_approximation_on_many_problems():
    rng = random.Random(0)
    before = [float(rng.random() < 0.3) for _ in range(2000)]
    after = [float(b == 1.0 or rng.random() < 0.1) for b in before]  # fixes ~10% of the failures, breaks none
    est = paired_difference(before, after, resamples=3000, seed=1)
    deltas = [a - b for a, b in zip(after, before)]
    mean = sum(deltas) / len(deltas)
    sd = math.sqrt(sum((d - mean) ** 2 for d in deltas) / (len(deltas) - 1))
    half = Z_95 * sd / math.sqrt(len(deltas))
    assert est.mean == pytest.approx(mean)
    assert est.low == pytest.approx(mean - half, abs=0.002) and est.high == pytest.approx(mean + half, abs=0.002)
    assert paired_difference(before, before).high == 0.0  # identical outcomes: no change at all
