"""Distances between neuron measures and the log-log slope fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wgf_cli.meanfield.distances import grid_support, sliced_w2, uniform, w2
from wgf_cli.meanfield.width import fit_slope

D64 = torch.float64


def test_w2_of_a_translation_is_the_shift():
    g = torch.Generator().manual_seed(0)
    P = torch.randn(40, 2, generator=g, dtype=D64)
    s = torch.cat([torch.ones(20, dtype=D64), -torch.ones(20, dtype=D64)])
    shift = torch.tensor([0.3, -0.4], dtype=D64)
    # small shift relative to the spread: the optimal coupling of a translation is the translation
    assert w2(P, uniform(P), s, P + shift, uniform(P), s) == pytest.approx(0.5, rel=1e-9)
    assert w2(P, uniform(P), s, P, uniform(P), s) == pytest.approx(0.0, abs=1e-12)
    # sliced W2 of a translation: sqrt(mean_u <u, shift>^2) = |shift| / sqrt(2) over many directions
    assert sliced_w2(P, uniform(P), s, P + shift, uniform(P), s, n_projections=4000) == pytest.approx(
        0.5 / np.sqrt(2), rel=0.03)


def test_w2_keeps_signs_apart_and_matches_sorting_in_1d():
    """Points on a line: W2 per sign is the sorted matching (NumPy)."""
    g = np.random.default_rng(1)
    a = g.normal(size=(30, 1))
    b = g.normal(size=(30, 1)) + 1.0
    sa = np.repeat([1.0, -1.0], 15)
    Pa = torch.tensor(np.hstack([a, np.zeros_like(a)]))
    Pb = torch.tensor(np.hstack([b, np.zeros_like(b)]))
    ref = 0.0
    for sign in (1.0, -1.0):
        ref += 0.5 * np.mean((np.sort(a[sa == sign, 0]) - np.sort(b[sa == sign, 0])) ** 2)
    val = w2(Pa, uniform(Pa), torch.tensor(sa), Pb, uniform(Pb), torch.tensor(sa))
    assert val == pytest.approx(np.sqrt(ref), rel=1e-10)


def test_grid_support_drops_only_negligible_mass():
    pts = torch.tensor([[0.0, 0], [1, 0], [0, 1]], dtype=D64)
    r = torch.tensor([[0.5, 1e-20, 0.0], [0.25, 0.25, 0.0]], dtype=D64)
    P, w, s = grid_support(pts, r, torch.tensor([1.0, -1.0], dtype=D64))
    assert P.shape == (3, 2)
    np.testing.assert_allclose(w.numpy(), [0.5, 0.25, 0.25])
    np.testing.assert_allclose(s.numpy(), [1, -1, -1])


def test_slope_fit_recovers_a_power_law():
    widths = np.array([16, 64, 256, 1024])
    rng = np.random.default_rng(0)
    errors = 3.0 * widths[:, None] ** -0.5 * np.exp(0.05 * rng.normal(size=(4, 6)))
    fit = fit_slope(widths, errors, boot=500)
    assert fit.slope == pytest.approx(-0.5, abs=0.03)
    assert fit.ci_low < fit.slope < fit.ci_high
    assert fit.reg_ci_low < -0.5 < fit.reg_ci_high
    exact = fit_slope(widths, np.repeat((2.0 * widths**-0.7)[:, None], 3, axis=1), boot=50)
    assert exact.slope == pytest.approx(-0.7, abs=1e-12)
    assert exact.ci_high - exact.ci_low == pytest.approx(0.0, abs=1e-12)


def test_slope_fit_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_slope(np.array([1, 2]), np.array([[1.0], [0.0]]))
