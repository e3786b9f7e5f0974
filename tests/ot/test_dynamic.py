"""Benamou-Brenier by proximal splitting: the kinetic prox, the two projections, and W2^2
against closed forms (Gaussians) and POT (1-D densities on the grid)."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
from numpy.testing import assert_allclose
from scipy.optimize import minimize

from wgf_cli.flows import references as R
from wgf_cli.ot import gaussian as G
from wgf_cli.ot.dynamic import Centred, SpaceTimeGrid, Staggered, benamou_brenier, prox_kinetic
from wgf_cli.ot.grid import Grid


def _brute_prox(rho: float, m: np.ndarray, gamma: float) -> tuple[float, np.ndarray]:
    """Numerical minimiser of 1/2 (r - rho)^2 + 1/2 |q - m|^2 + gamma |q|^2 / (2 r) over r > 0,
    compared with (0, 0)."""
    def obj(z):
        r, q = z[0], z[1:]
        return 0.5 * (r - rho) ** 2 + 0.5 * ((q - m) ** 2).sum() + gamma * (q**2).sum() / (2 * r)

    best = None
    for r0 in (max(rho, 1e-2), abs(rho) + np.linalg.norm(m) + 1.0):
        res = minimize(obj, np.r_[r0, m * 0.5], method="L-BFGS-B",
                       bounds=[(1e-12, None)] + [(None, None)] * len(m), options={"ftol": 1e-15, "gtol": 1e-12})
        if best is None or res.fun < best.fun:
            best = res
    zero = 0.5 * rho**2 + 0.5 * (m**2).sum()
    if zero <= best.fun:
        return 0.0, np.zeros_like(m)
    return float(best.x[0]), best.x[1:]


def test_prox_kinetic_matches_brute_force_minimisation():
    gen = np.random.default_rng(0)
    cases = [(float(gen.normal() * 3), gen.normal(size=2) * 3, float(gen.uniform(0.1, 5))) for _ in range(20)]
    cases += [(2.0, np.zeros(2), 1.0), (-1.0, np.array([0.1, 0.0]), 1.0), (-0.5, np.array([4.0, 3.0]), 2.0),
              (1e-3, np.array([1e-3, 0.0]), 1e-2)]
    rho = torch.tensor([c[0] for c in cases], dtype=torch.float64)
    m = torch.tensor(np.stack([c[1] for c in cases], axis=1), dtype=torch.float64)
    for i, (rh, mm, gamma) in enumerate(cases):
        r, q = prox_kinetic(rho[i:i + 1], m[:, i:i + 1], gamma)
        rb, qb = _brute_prox(rh, mm, gamma)
        assert_allclose(float(r[0]), rb, atol=1e-5, rtol=1e-5)
        assert_allclose(q[:, 0].numpy(), qb, atol=1e-5, rtol=1e-5)


def test_prox_kinetic_optimality_conditions_hold_to_round_off():
    gen = torch.Generator().manual_seed(1)
    rho = torch.randn(1000, generator=gen, dtype=torch.float64) * 5
    m = torch.randn(3, 1000, generator=gen, dtype=torch.float64) * 5
    gamma = 0.7
    r, q = prox_kinetic(rho, m, gamma)
    pos = r > 0
    # stationarity in r and q where r > 0
    assert_allclose((r - rho - gamma * (q * q).sum(0) / (2 * r**2))[pos].numpy(), 0.0, atol=1e-9)
    assert_allclose((q * (r + gamma) - r * m)[:, pos].numpy(), 0.0, atol=1e-9)
    assert (q[:, ~pos] == 0).all()


def _random_staggered(st: SpaceTimeGrid, gen) -> Staggered:
    rho = torch.randn(st.P + 1, *st.shape, generator=gen, dtype=torch.float64)
    m = []
    for j in range(st.d):
        shape = [st.P, *st.shape]
        shape[j + 1] += 1
        m.append(torch.randn(*shape, generator=gen, dtype=torch.float64))
    return Staggered(rho, m)


@pytest.mark.parametrize("shape", [(12,), (10, 7), (5, 6, 4)])
def test_continuity_projection_satisfies_the_discrete_equation(shape):
    gen = torch.Generator().manual_seed(0)
    spacing = tuple(1.0 / s for s in shape)
    st = SpaceTimeGrid(shape, spacing, 9)
    U = _random_staggered(st, gen)
    rho0 = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1
    rho1 = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1
    rho1 *= rho0.sum() / rho1.sum()
    P = st.project_continuity(U, rho0, rho1)
    scale = float(st.divergence(U).abs().max())
    assert float(st.divergence(P).abs().max()) <= 1e-10 * scale
    torch.testing.assert_close(P.rho[0], rho0, rtol=0, atol=0)
    torch.testing.assert_close(P.rho[-1], rho1, rtol=0, atol=0)
    for j, mj in enumerate(P.m):
        assert float(mj.select(j + 1, 0).abs().max()) == 0.0
        assert float(mj.select(j + 1, mj.shape[j + 1] - 1).abs().max()) == 0.0
    # a projection: idempotent, and U - P(U) is orthogonal to feasible directions (P(W) - P(U))
    PP = st.project_continuity(P, rho0, rho1)
    assert (PP - P).sqnorm() ** 0.5 <= 1e-10 * P.sqnorm() ** 0.5
    W = st.project_continuity(_random_staggered(st, gen), rho0, rho1)
    r, dirn = U - P, W - P
    inner = float((r.rho * dirn.rho).sum() + sum((a * b).sum() for a, b in zip(r.m, dirn.m, strict=True)))
    assert abs(inner) <= 1e-9 * (r.sqnorm() * dirn.sqnorm()) ** 0.5


def test_interpolation_projection_is_orthogonal_on_the_graph():
    gen = torch.Generator().manual_seed(2)
    st = SpaceTimeGrid((8, 6), (1 / 8, 1 / 6), 5)
    U = _random_staggered(st, gen)
    V = Centred(torch.randn(5, 8, 6, generator=gen, dtype=torch.float64),
                torch.randn(2, 5, 8, 6, generator=gen, dtype=torch.float64))
    Up, Vp = st.project_interp(U, V)
    Vi = st.interp(Up)
    assert (Vp - Vi).sqnorm() == 0.0
    # optimality: (Up - U) + I^*(I Up - V) = 0, tested against a random graph direction
    dU = _random_staggered(st, gen)
    dV = st.interp(dU)
    inner = float(((Up.rho - U.rho) * dU.rho).sum()
                  + sum(((a - b) * c).sum() for a, b, c in zip(Up.m, U.m, dU.m, strict=True))
                  + ((Vp.rho - V.rho) * dV.rho).sum() + ((Vp.m - V.m) * dV.m).sum())
    assert abs(inner) <= 1e-10 * (U.sqnorm() + V.sqnorm())


def _gaussian_pair(n: int):
    grid = Grid.regular(n, 2)
    m0, m1 = [0.35, 0.4], [0.65, 0.6]
    s0, s1 = G.covariance([0.07, 0.1], 0, 2), G.covariance([0.1, 0.06], 30, 2)
    r0, r1 = R.gaussian_density(grid, m0, s0), R.gaussian_density(grid, m1, s1)
    v = grid.cell_volume
    return grid, r0 / (r0.sum() * v), r1 / (r1.sum() * v), (m0, s0, m1, s1)


def test_benamou_brenier_gaussians_against_the_closed_form():
    grid, r0, r1, (m0, s0, m1, s1) = _gaussian_pair(24)
    exact = G.w2sq(m0, s0, m1, s1)  # 0.131880
    res = benamou_brenier(r0, r1, grid.spacing, time_steps=12, gamma=float(r0.max()) / 8,
                          iters=1500, tol=1e-4, check_every=10)
    assert res.converged
    # measured: 0.131977 after 630 iterations, 7.4e-4 above the closed form; bound 1.5e-3
    assert abs(res.w2sq / exact - 1) <= 1.5e-3
    # POT's exact cost between the same grid measures: 0.132378 (the grid measures carry their
    # own discretisation, ~2e-3 of W2^2 at 24^2); measured 3.0e-3 apart, bound 5e-3
    v = grid.cell_volume
    pts = grid.points()
    emd = ot.emd2((r0 * v).reshape(-1).numpy(), (r1 * v).reshape(-1).numpy(),
                  ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1).numpy())
    assert abs(res.w2sq / emd - 1) <= 5e-3
    # the path: endpoints exact, mass kept, midpoint moments of the Gaussian geodesic
    assert_allclose((res.rho.sum(dim=(1, 2)) * v).numpy(), 1.0, atol=1e-10)
    mid = res.rho[6].clamp_min(0)
    mean, cov = G.moments(grid.points(), mid.reshape(-1))
    em, ec = G.geodesic_moments(m0, s0, m1, s1, 0.5)
    assert_allclose(mean.numpy(), em.numpy(), atol=2e-3)
    # regression bound (float64 CPU): measured max |mean - exact| = 1.33e-4
    assert float((mean - em).abs().max()) <= 2.7e-4
    # measured: largest deviation 3.7e-4 (5 %) at 24^2 x 12 (the coarse scheme blurs a little)
    assert_allclose(cov.numpy(), ec.numpy(), atol=6e-4)
    # the diagnostics are there, per check
    assert res.n_iters == res.errors[-1]["iteration"] and res.errors[-1]["residual"] <= 1e-4
    assert res.errors[-1]["divergence"] <= 1e-9


def test_benamou_brenier_1d_against_pot_on_the_grid():
    grid = Grid.regular(64, 1)
    x = grid.axes[0]
    dx = grid.spacing[0]
    r0 = torch.exp(-0.5 * ((x - 0.3) / 0.08) ** 2) + 0.5 * torch.exp(-0.5 * ((x - 0.75) / 0.05) ** 2)
    r1 = torch.exp(-0.5 * ((x - 0.6) / 0.1) ** 2)
    r0, r1 = r0 / (r0.sum() * dx), r1 / (r1.sum() * dx)
    pot = ot.emd2_1d(x.numpy(), x.numpy(), (r0 * dx).numpy(), (r1 * dx).numpy())  # 0.051661
    res = benamou_brenier(r0, r1, (dx,), time_steps=16, gamma=float(max(r0.max(), r1.max())) / 8,
                          iters=4000, tol=1e-6, check_every=10)
    # measured: 0.051597, rel. -1.2e-3 (time discretisation); tolerance 3e-3
    assert abs(res.w2sq / pot - 1) <= 3e-3


def test_benamou_brenier_rejects_bad_input():
    r = torch.ones(8, dtype=torch.float64)
    with pytest.raises(ValueError, match="same mass"):
        benamou_brenier(r, 2 * r, (1 / 8,))
    with pytest.raises(ValueError, match="same shape"):
        benamou_brenier(r, torch.ones(9, dtype=torch.float64), (1 / 8,))
    with pytest.raises(ValueError, match="alpha"):
        benamou_brenier(r, r, (1 / 8,), alpha=2.0)
    assert math.isfinite(benamou_brenier(r, r, (1 / 8,), time_steps=4, iters=20).w2sq)
