"""The vanishing gradient on parallel lines: closed forms, and trained critics against them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wgf_cli.gan import parallel_lines as P


def test_closed_forms():
    th = np.array([-2.0, -0.1, 0.0, 1e-3, 3.0])
    np.testing.assert_array_equal(P.js_divergence(th), [math.log(2)] * 2 + [0.0] + [math.log(2)] * 2)
    np.testing.assert_array_equal(P.w1_distance(th), np.abs(th))


@pytest.mark.parametrize("theta", [0.3, 2.0])
def test_gp_optimum_maximises_the_penalised_value(theta):
    lam = 10.0
    k = np.linspace(0.5, 1.5, 200_001)
    best = k[np.argmax(k * theta - lam * (k - 1) ** 2)]
    np.testing.assert_allclose(P.w1_gp_slope(theta, lam), best, atol=1e-5)
    np.testing.assert_allclose(P.w1_gp_value(theta, lam), best * theta, atol=1e-5)


@pytest.mark.parametrize("theta", [-1.0, 0.5])
def test_trained_critics_match_the_closed_forms(theta):
    gan = P.train_critic(theta, "gan", steps=300)
    assert abs(gan.estimate - math.log(2)) < 1e-3
    assert abs(gan.generator_grad) < 1e-3  # the JS gradient vanishes
    w = P.train_critic(theta, "wgan_gp", steps=300)
    np.testing.assert_allclose(w.estimate, P.w1_gp_value(theta, 10.0), rtol=0.05)
    np.testing.assert_allclose(w.generator_grad, np.sign(theta) * P.w1_gp_slope(theta, 10.0), rtol=0.05)
    # regression bounds (float64 CPU, both thetas): measured |gan - log 2| <= 1.7e-5, WGAN-GP
    # value and slope within 2.6e-3 and 4.7e-3 relative of the closed forms
    assert abs(gan.estimate - math.log(2)) <= 3.5e-5
    assert abs(w.estimate / P.w1_gp_value(theta, 10.0) - 1) <= 5.2e-3
    assert abs(w.generator_grad / (np.sign(theta) * P.w1_gp_slope(theta, 10.0)) - 1) <= 9.4e-3


def test_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        P.train_critic(1.0, "lsgan", steps=1)


def test_vanishing_study_rows_and_errors():
    calls = []
    rows = P.vanishing_study([0.0, 1.0], lam=10.0, steps=200, seed=3, on_critic=lambda: calls.append(1))
    assert len(calls) == 4 and [r["theta"] for r in rows] == [0.0, 1.0]
    # the k-th theta trains with seed + k: the same critic as train_critic with that seed
    one = P.train_critic(1.0, "wgan_gp", steps=200, lam=10.0, seed=4)
    assert rows[1]["wgan_gp_estimate"] == one.estimate and rows[1]["wgan_gp_grad"] == one.generator_grad
    assert rows[1]["js"] == pytest.approx(math.log(2)) and rows[0]["js"] == 0.0
    err = P.vanishing_errors(rows)
    assert err["js_trained_max_error"] < 1e-3 and err["gan_grad_max"] < 1e-3
    assert err["w1_trained_max_rel_error"] < 0.05 and err["wgan_grad_max_rel_error"] < 0.05
    assert err["js_trained_at_zero"] == rows[0]["gan_estimate"] and err["js_trained_at_zero"] < 0.1
    with pytest.raises(ValueError, match="theta != 0"):
        P.vanishing_errors(rows[:1])
