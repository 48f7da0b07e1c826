import numpy as np
import pytest
from cs336_scaling.power_law import bootstrap_power_law, fit_power_law, fit_saturating_power_law


def test_exact_power_law_is_recovered():
    x = np.logspace(15, 21, 7)
    law = fit_power_law(x, 3.7 * x**0.42)
    assert law.exponent == pytest.approx(0.42, abs=1e-10)
    assert law.coefficient == pytest.approx(3.7, rel=1e-8)


def test_noisy_power_law_exponent_within_bootstrap_interval():
    rng = np.random.default_rng(1)
    x = np.logspace(17, 21, 30)
    y = 0.09 * x**0.55 * np.exp(rng.normal(0, 0.1, x.size))
    fit = bootstrap_power_law(x, y, predict_at=[1e23], num_samples=500)
    assert fit.exponent.low < 0.55 < fit.exponent.high
    assert fit.exponent.high - fit.exponent.low < 0.1
    truth = 0.09 * 1e23**0.55
    prediction = fit.predictions[1e23]
    assert prediction.low < truth < prediction.high
    assert prediction.low < prediction.estimate < prediction.high


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        fit_power_law(np.array([1.0, 2.0]), np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="two distinct"):
        fit_power_law(np.array([3.0, 3.0]), np.array([1.0, 2.0]))


def test_saturating_power_law_recovers_floor_and_decay():
    x = np.logspace(15, 18, 6)
    y = 1.8 + 900.0 * x**-0.16
    law = fit_saturating_power_law(x, y)
    assert law.floor == pytest.approx(1.8, abs=0.02)
    assert law.decay == pytest.approx(0.16, abs=0.01)
    assert law(1e19) == pytest.approx(1.8 + 900.0 * 1e19**-0.16, rel=2e-3)


def test_saturating_power_law_needs_a_falling_curve():
    x = np.logspace(15, 17, 4)
    with pytest.raises(ValueError, match="does not fall"):
        fit_saturating_power_law(x, 2.0 + 1e-3 * x**0.1)
    with pytest.raises(ValueError, match="three or more"):
        fit_saturating_power_law(x[:2], np.array([3.0, 2.0]))
