"""Chinchilla approach 3 (`parametric_loss_fit`) against known laws, finite differences and brute force."""

import numpy as np
import pytest
from parametric_loss_fit import ParametricLoss, fit_parametric_loss, huber, objective

CHINCHILLA = ParametricLoss(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


@pytest.mark.parametrize(
    "law",
    [CHINCHILLA, ParametricLoss(E=2.69, A=1606.4, B=3210.7, alpha=0.34, beta=0.36)],
    ids=["chinchilla", "course-like"],
)
def test_recovers_a_known_law_from_exact_losses(law):
    rng = np.random.default_rng(0)
    parameters = 10 ** rng.uniform(7, 10, 60)
    tokens = 10 ** rng.uniform(9, 12, 60)
    fitted = fit_parametric_loss(parameters, tokens, law(parameters, tokens))
    assert fitted.alpha == pytest.approx(law.alpha, abs=1e-3)
    assert fitted.beta == pytest.approx(law.beta, abs=1e-3)
    assert fitted.E == pytest.approx(law.E, rel=1e-3)
    assert fitted.parameters_exponent == pytest.approx(law.parameters_exponent, abs=1e-3)
    np.testing.assert_allclose(fitted(parameters, tokens), law(parameters, tokens), rtol=1e-6)


def test_gradient_matches_central_differences():
    rng = np.random.default_rng(1)
    log_n, log_d = np.log(10 ** rng.uniform(7, 10, 20)), np.log(10 ** rng.uniform(9, 12, 20))
    log_loss = np.log(CHINCHILLA(np.exp(log_n), np.exp(log_d))) + rng.normal(0, 0.01, 20)  # both Huber branches
    theta = np.array([6.0, 6.1, 0.5, 0.3, 0.3])
    _, gradient = objective(theta, log_n, log_d, log_loss, 1e-2)
    step = 1e-6
    numeric = [
        (
            objective(theta + step * e, log_n, log_d, log_loss, 1e-2)[0]
            - objective(theta - step * e, log_n, log_d, log_loss, 1e-2)[0]
        )
        / (2 * step)
        for e in np.eye(5)
    ]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("compute", [1e18, 1e21, 1e24])
def test_optimal_allocation_is_the_minimum_along_the_budget(compute):
    sizes = np.logspace(5, 14, 200_001)
    brute_force = sizes[np.argmin(CHINCHILLA(sizes, compute / (6 * sizes)))]
    assert CHINCHILLA.optimal_parameters(compute) == pytest.approx(brute_force, rel=1e-3)
    assert CHINCHILLA.optimal_tokens(compute) * 6 * CHINCHILLA.optimal_parameters(compute) == pytest.approx(compute)


def test_huber_is_quadratic_inside_and_linear_outside():
    np.testing.assert_allclose(huber(np.array([0.0, 0.5, -1.0, 3.0]), 1.0), [0.0, 0.125, 0.5, 2.5])


@pytest.mark.parametrize(
    "parameters, tokens, losses",
    [
        (np.ones(4), np.ones(4), np.ones(4)),  # too few runs
        (np.ones(6), np.ones(5), np.ones(6)),  # lengths differ
        (np.ones(6), -np.ones(6), np.ones(6)),  # not positive
    ],
)
def test_rejects_bad_input(parameters, tokens, losses):
    with pytest.raises(ValueError):
        fit_parametric_loss(parameters, tokens, losses)
