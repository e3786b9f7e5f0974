"""The two-point GAN against its closed forms: the first integral H = ω²/2 + V(θ), the clipped
limit orbit H = c²/2 + V(θ*) and the time to reach it (slide in closed form)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wgf_cli.gan import twopoint as T


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_first_integral_is_conserved_by_the_vector_field(p):
    rng = np.random.default_rng(0)
    th, om = rng.uniform(-3, 3, 200), rng.uniform(-1, 1, 200)
    dth, dom = T.vector_field(th, om, p)
    # grad H . f = V'(θ) θ' + ω ω' = 0, with V' by central differences
    e = 1e-6
    dV = (T.potential(th + e, p) - T.potential(th - e, p)) / (2 * e)
    np.testing.assert_allclose(dV * dth + om * dom, 0.0, atol=1e-8)
    # V' = (w - p) / w'
    np.testing.assert_allclose(dV, (T.weight(th) - p) / T.weight_prime(th), rtol=1e-7)


def test_potential_is_cosh_at_one_half_and_minimal_at_theta_star():
    th = np.linspace(-4, 4, 81)
    np.testing.assert_allclose(T.potential(th, 0.5), np.cosh(th), rtol=1e-14)
    for p in (0.2, 0.5, 0.7):
        ts = T.theta_star(p)
        np.testing.assert_allclose(T.weight(ts), p, rtol=1e-14)
        assert (T.potential(th, p) >= T.potential(ts, p) - 1e-14).all()


def test_flow_orbits_are_level_sets_of_H():
    starts_th, starts_om = np.array([2.0, -1.0, 0.3, 3.0]), np.array([0.0, 0.5, -0.2, 1.0])
    tr = T.flow(starts_th, starts_om, T=20.0, h=2e-3, p=0.4)
    H = T.first_integral(tr.theta, tr.psi, 0.4)
    np.testing.assert_allclose(H, np.broadcast_to(H[0], H.shape), rtol=1e-9)
    # closed orbits: θ returns, bounded by the level set's two roots
    for j in range(4):
        lo = T.level_set_theta(H[0, j], np.array([0.0]), 0.4, -1)[0]
        hi = T.level_set_theta(H[0, j], np.array([0.0]), 0.4, 1)[0]
        assert lo - 1e-6 <= tr.theta[:, j].min() and tr.theta[:, j].max() <= hi + 1e-6


@pytest.mark.parametrize(("p", "c"), [(0.5, 0.3), (0.35, 0.15)])
def test_clipped_flow_reaches_the_limit_orbit_at_the_closed_form_time(p, c):
    ts = T.theta_star(p)
    starts = [(ts + 2.0, 0.0), (ts - 1.5, 0.5 * c), (ts + 0.5, -c), (ts + 1.0, c), (ts - 0.8, -0.9 * c)]
    th0, om0 = np.array([a for a, _ in starts]), np.array([b for _, b in starts])
    closed = [T.time_to_limit(a, b, c, p) for a, b in starts]
    level = T.limit_level(c, p)
    tr = T.flow(th0, om0, T=max(t for _, t in closed) + 5.0, h=1e-3, p=p, clip=c)
    measured = T.measured_time_to_limit(tr, p)
    H = T.first_integral(tr.theta, tr.psi, p)
    for j, (lev, t) in enumerate(closed):
        assert lev == level  # every start lies outside the limit orbit
        np.testing.assert_allclose(measured[j], t, atol=1e-3, rtol=0)
        after = tr.t >= t + 1e-2
        np.testing.assert_allclose(H[after, j], level, atol=1e-6, rtol=0)
        # the limit orbit touches the box at (θ*, ±c)
        assert abs(np.abs(tr.psi[after, j]).max() - c) < 1e-4 * c  # sampled every h near the flat top
    assert (np.abs(tr.psi) <= c + 1e-15).all()


def test_slide_time_by_hand_and_inside_starts():
    # on the face ω = c at θ0 = 1 (p = 1/2, θ* = 0): θ' = -2c w'(θ), t = (F(1) - F(0)) / (2c),
    # F(θ) = 2θ + 2 sinh θ
    c = 0.3
    level, t = T.time_to_limit(1.0, c, c)
    assert level == T.limit_level(c) == pytest.approx(0.5 * c * c + 1.0)
    np.testing.assert_allclose(t, (1.0 + math.sinh(1.0)) / c, rtol=1e-10)
    # inside the limit orbit: nothing happens
    assert T.time_to_limit(0.1, 0.05, c) == (pytest.approx(0.5 * 0.05**2 + math.cosh(0.1)), 0.0)
    tr = T.flow([0.1], [0.05], T=10.0, h=1e-3, clip=c)
    assert not tr.on_boundary.any()
    x, y = T.limit_orbit(c)
    np.testing.assert_allclose(T.first_integral(x, y), T.limit_level(c), atol=1e-12)
    assert np.abs(y).max() == pytest.approx(c)


@pytest.mark.parametrize(("args", "match"), [((0.0, 0.5, 0.3), "outside the clipping"),
                                             ((0.0, 0.1, 0.0), "clip must be > 0"),
                                             ((0.0, 0.1, 0.3, 1.0), "p must be in")])
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        T.time_to_limit(*args)


def test_compare_puts_the_flows_next_to_the_closed_forms():
    starts = [(1.0, 0.3), (-1.5, 0.0), (0.1, 0.05)]  # two outside the limit orbit (c = 0.3), one inside
    calls = []
    res = T.compare(starts, p=0.5, clip=0.3, flow_h=2e-3, extra_time=2.0, on_start=lambda: calls.append(1))
    assert len(calls) == 3
    assert list(res.outside) == [True, True, False]
    assert res.closed == [T.time_to_limit(a, b, 0.3, 0.5) for a, b in starts]
    np.testing.assert_array_equal(res.measured, T.measured_time_to_limit(res.clipped, 0.5))
    rows = res.rows()
    assert [r["outside"] for r in rows] == [True, True, False] and rows[0]["H_closed_form"] == res.level
    err = res.errors()
    assert err["starts_outside"] == 2 and err["theta_star"] == 0.0
    assert err["twopoint_integral_drift"] < 1e-9 and err["twopoint_inside_drift"] < 1e-9
    assert err["twopoint_limit_error"] < 1e-6 and err["twopoint_time_error"] < 1e-3
    # the Dirac-GAN beside it starts at (θ0 - θ*, ω0) and keeps its own clip
    np.testing.assert_array_equal(res.dirac.theta[0], [1.0, -1.5, 0.1])
    assert (np.abs(res.dirac.psi) <= 0.3 + 1e-15).all()
