"""The point-cloud OT facade (wgf_cli.ot.pointcloud) against float64 NumPy closed forms and POT.

Stated tolerances: exact distances (network simplex, quantile formula) agree with the sorted
coupling / hand-written quantile formula to 1e-10 relative (float64 rounding of cumulative
sums and of the simplex's cost sums); against POT on the same directions the sliced distance
agrees to 1e-12; the Sinkhorn divergence approaches ``W2^2 / 2`` monotonically over five
blurs (to 1e-5 at blur 0.02), equals ``|v|^2 / 2`` on a translate by ``v`` to 1e-5 at every
blur, is positive between distinct clouds and below 1e-4 on equal weighted ones (both bounds
are the convergence of the iterations, slow on weighted clouds at some blurs).
"""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from wgf_cli.ot.pointcloud import (
    directions,
    geomloss_sinkhorn,
    pot_directions,
    sinkhorn_divergence,
    sliced_w2,
    w2,
    w2_1d,
)

D64 = torch.float64


def _quantile_w2sq(x, wx, y, wy, p=2):
    """``int_0^1 |F^-1(t) - G^-1(t)|^p dt`` by evaluating both quantile functions at the
    midpoints of the merged levels (an implementation independent of the facade's)."""
    ix, iy = np.argsort(x), np.argsort(y)
    x, wx, y, wy = x[ix], wx[ix] / wx.sum(), y[iy], wy[iy] / wy.sum()
    cx, cy = np.cumsum(wx), np.cumsum(wy)
    u = np.unique(np.concatenate([[0.0], cx, cy]).clip(0, 1))
    mid = 0.5 * (u[1:] + u[:-1])
    qx = x[np.minimum(np.searchsorted(cx, mid), len(x) - 1)]
    qy = y[np.minimum(np.searchsorted(cy, mid), len(y) - 1)]
    return float(np.sum(np.diff(u) * np.abs(qx - qy) ** p))


# -- exact W2 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 2])
def test_w2_of_gaussian_samples_on_a_line_is_the_sorted_coupling(p):
    """Two Gaussians' samples on a line embedded in the plane: the simplex (2-D path) and the
    quantile formula (1-D path) both equal the sorted coupling."""
    rng = np.random.default_rng(0)
    s, t = rng.normal(0.0, 1.0, 150), rng.normal(0.7, 0.5, 150)
    ref = np.mean(np.abs(np.sort(s) - np.sort(t)) ** p) ** (1 / p)
    plane = lambda v: np.stack([v, np.zeros_like(v)], 1)  # noqa: E731
    np.testing.assert_allclose(w2(plane(s), plane(t), p=p), ref, rtol=1e-10)
    np.testing.assert_allclose(w2(s[:, None], t[:, None], p=p), ref, rtol=1e-10)
    np.testing.assert_allclose(w2_1d(s, t, p=p), ref, rtol=1e-10)
    np.testing.assert_allclose(w2(s[:, None], t[:, None], p=p, squared=True), ref**p, rtol=1e-10)


def test_w2_1d_weighted_matches_the_quantile_formula():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.normal(size=25) * 2 + 1
    wx, wy = rng.random(40), rng.random(25) ** 3
    wx[:5] = 0.0  # points without mass
    wx, wy = wx / wx.sum(), wy / wy.sum()
    ref = _quantile_w2sq(x, wx, y, wy)
    np.testing.assert_allclose(w2_1d(x, y, wx, wy, squared=True), ref, rtol=1e-10)
    np.testing.assert_allclose(w2_1d(x, y, wx, wy), math.sqrt(ref), rtol=1e-10)
    got = w2_1d(*(torch.tensor(t) for t in (x, y, wx, wy)), squared=True)  # POT's torch backend
    assert isinstance(got, torch.Tensor) and got.dtype == D64
    np.testing.assert_allclose(float(got), ref, rtol=1e-10)
    # the exact solver on the same weighted problem
    np.testing.assert_allclose(w2(np.c_[x, 0 * x], np.c_[y, 0 * y], wx, wy, squared=True), ref, rtol=1e-10)
    # two weightings of one support: the merge formula, any total mass
    wz = rng.random(40)
    np.testing.assert_allclose(w2_1d(x, None, 3.0 * wx, wz, squared=True),
                               _quantile_w2sq(x, wx, x, wz), rtol=1e-10)


def test_w2_1d_is_batched_over_columns():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(20, 4))
    b = rng.random(20)
    b /= b.sum()
    got = w2_1d(x, y, None, b)
    assert got.shape == (4,)
    want = [w2_1d(x[:, k], y[:, k], None, b) for k in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_w2_between_diracs_and_against_a_dirac():
    x, y = np.array([[0.3, -1.2]]), np.array([[1.5, 0.4]])
    np.testing.assert_allclose(w2(x, y), math.hypot(1.2, 1.6), rtol=1e-12)
    np.testing.assert_allclose(w2(x, y, p=1), 2.0, rtol=1e-12)
    # a weighted cloud against one Dirac: the only coupling sends everything to it
    rng = np.random.default_rng(3)
    cloud, a = rng.normal(size=(30, 3)), rng.random(30)
    a /= a.sum()
    dirac = np.array([[0.2, -0.1, 0.5]])
    ref = float(a @ ((cloud - dirac) ** 2).sum(1))
    np.testing.assert_allclose(w2(cloud, dirac, a, np.ones(1), squared=True), ref, rtol=1e-10)
    # and a translate is at the length of the shift
    np.testing.assert_allclose(w2(cloud, cloud + [0.01, 0.02, -0.02], a, a), 0.03, rtol=1e-10)


def test_w2_torch_path_keeps_dtype_and_gradients():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(25, 2)), rng.normal(size=(25, 2)) + 0.5
    xt = torch.tensor(x, requires_grad=True)
    val = w2(xt, torch.tensor(y), squared=True)
    assert isinstance(val, torch.Tensor) and val.dtype == D64
    np.testing.assert_allclose(float(val.detach()), w2(x, y, squared=True), rtol=1e-12)
    val.backward()
    # d/dx_i sum_ij P_ij |x_i - y_j|^2 = 2 sum_j P_ij (x_i - y_j), P the optimal plan
    plan = ot.emd(np.full(25, 1 / 25), np.full(25, 1 / 25), ot.dist(x, y))
    want = 2 * (plan.sum(1)[:, None] * x - plan @ y)
    np.testing.assert_allclose(xt.grad.numpy(), want, rtol=1e-10, atol=1e-14)


def test_w2_rejects_bad_input():
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        w2(np.zeros((2, 2)), np.zeros((2, 2)), p=3)
    with pytest.raises(ValueError, match="dimensions differ"):
        w2(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="both a and b"):
        w2_1d(np.zeros(3), None, np.ones(3))


# -- sliced W2 --------------------------------------------------------------------------------
def test_sliced_matches_pot_per_direction():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(60, 3)), rng.normal(size=(45, 3)) * 0.7 + 0.3
    a, b = rng.random(60), rng.random(45)
    a, b = a / a.sum(), b / b.sum()
    # POT's own directions: POT's sliced distance
    ref = ot.sliced_wasserstein_distance(x, y, a, b, n_projections=32, seed=7)
    np.testing.assert_allclose(sliced_w2(x, y, a, b, projections=pot_directions(3, 32, 7)), ref, rtol=1e-12)
    # the default directions: the mean of POT's 1-D distances direction by direction
    dirs = directions(3, 16, seed=2).numpy()
    per_dir = [ot.wasserstein_1d(x @ d, y @ d, a, b, p=2) for d in dirs]
    np.testing.assert_allclose(sliced_w2(x, y, a, b, n_projections=16, seed=2), np.sqrt(np.mean(per_dir)),
                               rtol=1e-12)
    np.testing.assert_allclose(sliced_w2(x, y, a, b, n_projections=16, seed=2, squared=True),
                               np.mean(per_dir), rtol=1e-12)


def test_sliced_same_support_and_uniform_paths_match_pot():
    rng = np.random.default_rng(6)
    pts = rng.random((80, 2))
    a, b = rng.random(80), rng.random(80) ** 2
    a, b = a / a.sum(), b / b.sum()
    proj = pot_directions(2, 24, 1)
    ref = ot.sliced_wasserstein_distance(pts, pts, a, b, projections=proj)
    np.testing.assert_allclose(sliced_w2(pts, None, a, b, projections=proj), ref, rtol=1e-10)
    # uniform clouds of one size: the sorted matching, NumPy and torch (differentiable)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 0.2
    ref = ot.sliced_wasserstein_distance(x, y, projections=proj)
    np.testing.assert_allclose(sliced_w2(x, y, projections=proj), ref, rtol=1e-12)
    xt = torch.tensor(x, requires_grad=True)
    val = sliced_w2(xt, torch.tensor(y), projections=torch.tensor(proj), squared=True)
    np.testing.assert_allclose(float(val.detach()), ref**2, rtol=1e-12)
    val.backward()
    assert xt.grad is not None and torch.isfinite(xt.grad).all()


def test_sliced_torch_weighted_path_matches_numpy():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    b = rng.random(20)
    b /= b.sum()
    want = sliced_w2(x, y, None, b, n_projections=12, seed=4)
    got = sliced_w2(torch.tensor(x), torch.tensor(y), None, torch.tensor(b), n_projections=12, seed=4)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(float(got), want, rtol=1e-12)


def test_sliced_of_a_translation():
    """Every direction theta sees a translate by <theta, v>: SW2^2 = mean_theta <theta, v>^2."""
    rng = np.random.default_rng(8)
    x, v = rng.normal(size=(40, 3)), np.array([0.2, -0.1, 0.3])
    dirs = directions(3, 64, seed=0).numpy()
    np.testing.assert_allclose(sliced_w2(x, x + v), math.sqrt(np.mean((dirs @ v) ** 2)), rtol=1e-10)
    assert sliced_w2(x, x + v) <= w2(x, x + v) + 1e-12


# -- Sinkhorn divergence ----------------------------------------------------------------------
def _clouds(seed, n=6, m=5, d=2):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, n, generator=g, dtype=D64) + 0.2
    b = torch.rand(1, m, generator=g, dtype=D64) + 0.2
    x = torch.randn(1, n, d, generator=g, dtype=D64)
    y = torch.randn(1, m, d, generator=g, dtype=D64) + 0.5
    return a / a.sum(), x, b / b.sum(), y


def test_sinkhorn_divergence_tends_to_half_w2_squared():
    """Cost |x - y|^2 / 2: S_eps -> W2^2 / 2 as blur -> 0 (uniform clouds of one size, whose
    Sinkhorn iterations converge within 500 steps down to blur 0.02)."""
    g = torch.Generator().manual_seed(0)
    a = torch.full((1, 5), 1 / 5, dtype=D64)
    x = torch.randn(1, 5, 2, generator=g, dtype=D64)
    y = torch.randn(1, 5, 2, generator=g, dtype=D64) + 0.5
    exact = w2(x[0].numpy(), y[0].numpy(), squared=True)
    errs = [abs(2 * float(sinkhorn_divergence(a, x, a, y, blur=blur, iters=500)[0]) - exact) / exact
            for blur in (0.5, 0.2, 0.1, 0.05, 0.02)]
    assert all(e1 > e2 for e1, e2 in zip(errs, errs[1:], strict=False))
    assert errs[0] > 1e-2  # the entropic bias is visible at a large blur ...
    assert errs[-1] < 1e-5  # ... and gone at a small one


def test_sinkhorn_divergence_of_a_translate_is_half_the_shift_squared():
    """|x - (y + v)|^2 / 2 = |x - y|^2 / 2 - <x - y, v> + |v|^2 / 2 and <x - y, v> integrates
    to 0 under any coupling of a measure with itself: S_eps(mu, mu + v) = |v|^2 / 2 at every
    blur (to the convergence of 1000 iterations)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 6, 2, generator=g, dtype=D64)
    a = torch.full((1, 6), 1 / 6, dtype=D64)
    v = torch.tensor([0.3, -0.2], dtype=D64)
    for blur in (1.0, 0.3, 0.1, 0.03):
        np.testing.assert_allclose(float(sinkhorn_divergence(a, x, a, x + v, blur=blur, iters=1000)[0]),
                                   0.5 * float(v @ v), rtol=1e-5)


def test_sinkhorn_divergence_is_nonnegative_and_zero_on_equal_clouds():
    for seed in range(5):
        a, x, b, y = _clouds(seed + 10)
        assert float(sinkhorn_divergence(a, x, b, y, blur=0.2)[0]) > 1e-2
        # zero up to the convergence of the non-symmetric iterations, slow on weighted clouds
        # (at worst 1.1e-5 after 300 steps here)
        assert abs(float(sinkhorn_divergence(a, x, a, x, blur=0.2, iters=300)[0])) < 1e-4


def test_geomloss_sinkhorn_matches_the_converged_divergence_on_uniform_clouds():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(20, 2, generator=g, dtype=D64), torch.randn(15, 2, generator=g, dtype=D64) + 0.3
    loss = geomloss_sinkhorn(p=2, blur=0.3, scaling=0.99)
    ours = sinkhorn_divergence(torch.full((1, 20), 1 / 20, dtype=D64), x[None],
                               torch.full((1, 15), 1 / 15, dtype=D64), y[None], blur=0.3, iters=300)
    np.testing.assert_allclose(float(loss(x, y)), float(ours[0]), rtol=1e-3)
