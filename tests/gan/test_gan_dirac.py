"""Dirac-GAN pendulum against its closed forms (acceptance: to 1e-3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wgf_cli.gan import dirac as D

STARTS_TH = np.array([1.0, -0.8, 0.3, 2.0, -3.0, 0.7])
STARTS_PS = np.array([0.0, 0.3, 0.5, -0.5, -0.2, 0.45])


def test_continuous_flow_conserves_radius_and_matches_rotation():
    tr = D.flow(STARTS_TH, STARTS_PS, T=4 * math.pi, h=1e-2)
    r0 = np.hypot(STARTS_TH, STARTS_PS)
    np.testing.assert_allclose(tr.theta**2 + tr.psi**2, np.broadcast_to(r0**2, tr.theta.shape),
                               rtol=1e-3, atol=0)
    th, ps = D.exact_flow(STARTS_TH, STARTS_PS, tr.t)
    np.testing.assert_allclose(tr.theta, th, atol=1e-3, rtol=0)
    np.testing.assert_allclose(tr.psi, ps, atol=1e-3, rtol=0)
    # regression bounds (float64 CPU, RK4 at h = 1e-2): measured 3.1e-9 from the exact rotation,
    # radius kept to 2.6e-11
    assert max(np.abs(tr.theta - th).max(), np.abs(tr.psi - ps).max()) <= 1e-8
    assert np.abs(np.hypot(tr.theta, tr.psi) - r0).max() <= 1e-10 * r0.max()


@pytest.mark.parametrize(("h", "steps"), [(0.1, 100), (0.05, 400), (0.3, 30)])
def test_simultaneous_steps_spiral_out_at_the_closed_form_rate(h, steps):
    tr = D.simultaneous(STARTS_TH, STARTS_PS, h, steps)
    r0 = np.hypot(STARTS_TH, STARTS_PS)
    expected = np.array([D.simultaneous_radius(r, h, steps) for r in r0])
    np.testing.assert_allclose(tr.radius[-1], expected, rtol=1e-3)
    np.testing.assert_allclose(tr.radius[-1] / r0, (1 + h * h) ** (steps / 2), rtol=1e-3)
    # the closed form is exact: measured within 1.2e-14 relative (float64 CPU)
    np.testing.assert_allclose(tr.radius[-1], expected, rtol=1e-12)
    assert (tr.radius[-1] > r0).all()


def test_alternating_steps_stay_bounded_and_conserve_the_modified_energy():
    h = 0.3
    tr = D.alternating(STARTS_TH, STARTS_PS, h, 2000)
    inv = D.alternating_invariant(tr.theta, tr.psi, h)
    np.testing.assert_allclose(inv, np.broadcast_to(inv[0], inv.shape), rtol=1e-9)
    # bounded: θ²+ψ² <= Q / (1 - h/2) on the ellipse Q = θ²+ψ²+hθψ
    assert (tr.radius**2 <= inv[0] / (1 - h / 2) * (1 + 1e-9)).all()


@pytest.mark.parametrize("c", [0.5, 0.2])
def test_clipped_flow_reaches_the_cycle_of_radius_c_at_the_closed_form_time(c):
    th0, ps0 = STARTS_TH, np.clip(STARTS_PS, -c, c)
    T = 12.0 + max(D.clipped_cycle(a, b, c)[1] for a, b in zip(th0, ps0, strict=True))
    tr = D.flow(th0, ps0, T=T, h=1e-3, clip=c)
    measured = D.time_to_cycle(tr)
    for j, (a, b) in enumerate(zip(th0, ps0, strict=True)):
        radius, t_cycle = D.clipped_cycle(a, b, c)
        assert radius == c  # every start lies outside the circle of radius c
        np.testing.assert_allclose(measured[j], t_cycle, atol=1e-3, rtol=0)
        after = tr.t >= t_cycle + 1e-2
        # on the cycle from then on (radius c to 1e-3), touching the box at (0, ±c)
        np.testing.assert_allclose(tr.radius[after, j], c, rtol=1e-3)
        assert abs(np.abs(tr.psi[after, j]).max() - c) < 1e-3 * c


def test_clipped_cycle_closed_form_by_hand():
    # start on the θ axis at r0 = 1, c = 0.5: ψ = -sin t reaches -c at t = π/6, then slides
    # for √(1 - 1/4)/0.5 = √3
    r, t = D.clipped_cycle(1.0, 0.0, 0.5)
    assert r == 0.5
    np.testing.assert_allclose(t, math.pi / 6 + math.sqrt(3), rtol=1e-12)
    # inside the box's circle: nothing happens
    assert D.clipped_cycle(0.2, 0.1, 0.5) == (math.hypot(0.2, 0.1), 0.0)
    with pytest.raises(ValueError, match="outside"):
        D.clipped_cycle(0.0, 1.0, 0.5)


def test_compare_puts_the_flows_next_to_the_closed_forms():
    starts = [(1.0, 0.0), (2.0, -0.5), (0.3, 0.2)]  # two outside the box c = 0.6, one inside
    res = D.compare(starts, clip=0.6, h=0.1, steps=50, flow_h=1e-3, extra_time=2.0)
    assert res.clipped.theta.shape[1] == 3 and len(res.rows()) == 3
    # the same numbers as the single functions
    np.testing.assert_array_equal(res.measured, D.time_to_cycle(res.clipped))
    assert res.cycle == [D.clipped_cycle(a, b, 0.6) for a, b in starts]
    row = res.rows()[1]
    assert row["start"] == 1 and row["clip_radius_closed_form"] == 0.6
    assert row["simultaneous_closed_form"] == D.simultaneous_radius(math.hypot(2.0, -0.5), 0.1, 50)
    err = res.errors()
    # the flows agree with the closed forms (RK4 at 1e-3; the slide's end is interpolated)
    assert err["conserved_drift"] < 1e-9 and err["simultaneous_rel_error"] < 1e-12
    assert err["alternating_invariant_drift"] < 1e-12
    assert err["clip_radius_error"] < 1e-6 and err["clip_time_error"] < 1e-3
    # inside the box only: no limit-cycle errors to report
    inside = D.compare([(0.3, 0.2)], clip=0.6, h=0.1, steps=5, flow_h=1e-2, extra_time=1.0).errors()
    assert inside["clip_radius_error"] is None and inside["clip_time_error"] is None
    assert inside["clip_time_to_cycle"] == 0.0
