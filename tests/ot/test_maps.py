"""Static OT on grids and clouds: Gaussian closed forms (against POT), exact plans, maps,
the 1-D quantile formula, entropic plans (against POT) and Kantorovich duality."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from numpy.testing import assert_allclose

from wgf_cli.flows import references as R
from wgf_cli.ot import gaussian as G
from wgf_cli.ot import maps as M
from wgf_cli.ot.grid import Grid

M0, M1 = [0.35, 0.4], [0.65, 0.6]
S0, S1 = G.covariance([0.07, 0.1], 0, 2), G.covariance([0.1, 0.06], 30, 2)


def test_gaussian_closed_forms_against_pot():
    A = G.affine_map(S0, S1)
    torch.testing.assert_close(A, A.T)
    assert float(torch.linalg.eigvalsh(A).min()) > 0
    torch.testing.assert_close(A @ S0 @ A, S1)  # T pushes N(m0, S0) to N(m1, S1)
    A_pot, b_pot = ot.gaussian.bures_wasserstein_mapping(np.array(M0), np.array(M1), S0.numpy(), S1.numpy())
    assert_allclose(A.numpy(), A_pot, atol=1e-10)
    assert_allclose(np.array(M1) - A.numpy() @ np.array(M0), b_pot, atol=1e-10)
    w_pot = ot.gaussian.bures_wasserstein_distance(np.array(M0), np.array(M1), S0.numpy(), S1.numpy())
    assert_allclose(G.w2sq(M0, S0, M1, S1), float(w_pot) ** 2, rtol=1e-10)
    # commuting covariances: Bures^2 = sum (sigma0 - sigma1)^2
    assert_allclose(G.bures2(torch.diag(torch.tensor([4.0, 9.0])), torch.diag(torch.tensor([1.0, 16.0]))), 2.0)
    m, s = G.geodesic_moments(M0, S0, M1, S1, 1.0)
    torch.testing.assert_close(s, S1)
    m, s = G.geodesic_moments(M0, S0, M1, S1, 0.0)
    torch.testing.assert_close(s, S0)


def _pair(n: int):
    grid = Grid.regular(n, 2)
    a, b = R.gaussian_density(grid, M0, S0), R.gaussian_density(grid, M1, S1)
    return grid, a / a.sum(), b / b.sum()


def test_exact_grid_plan_displacement_interpolation_and_maps():
    grid, a, b = _pair(32)
    pts = grid.points()
    plan, ia, ib = M.grid_exact_plan(pts, a, b, threshold=1e-9)
    assert plan.converged and plan.errors["marginal_a"] < 1e-12 and plan.errors["dual_gap"] < 1e-12
    # measured 0.13215 vs 0.13188 (the grid's own discretisation); tolerance 0.5 %
    assert abs(plan.cost / G.w2sq(M0, S0, M1, S1) - 1) < 5e-3
    mid = M.displacement_interpolation(plan, 0.5, grid.lo, grid.spacing, grid.shape)
    assert_allclose(float(mid.sum()), 1.0, atol=1e-12)
    mean, cov = G.moments(pts, mid.reshape(-1))
    em, ec = G.geodesic_moments(M0, S0, M1, S1, 0.5)
    assert_allclose(mean.numpy(), em.numpy(), atol=1e-3)
    # regression bound (float64 CPU): measured max |mean - exact| = 1.16e-5
    assert float((mean - em).abs().max()) <= 2.5e-5
    assert_allclose(cov.numpy(), ec.numpy(), atol=2e-4)  # + dx^2/12 of the deposit
    A = G.affine_map(S0, S1)
    exact = lambda x: torch.tensor(M1, dtype=x.dtype) + (x - torch.tensor(M0, dtype=x.dtype)) @ A.T  # noqa: E731
    bary = M.barycentric_map(plan.plan, plan.y)
    err_b = float((plan.a * ((bary - exact(plan.x)) ** 2).sum(1)).sum()) ** 0.5
    u = torch.zeros(grid.size, dtype=torch.float64)
    u[ia] = plan.u
    tp = M.map_from_potential(u.reshape(grid.shape), pts, grid.spacing)
    err_p = float((a.reshape(-1) * ((tp - exact(pts)) ** 2).sum(1)).sum()) ** 0.5
    # measured 0.0115 and 0.0089 (L2(rho0)) at dx = 0.031: a third of a cell
    assert err_b < 0.02 and err_p < 0.015


def test_quantile_w2_matches_pot():
    gen = np.random.default_rng(0)
    x, y = gen.normal(size=50), gen.normal(size=70) + 1
    a, b = gen.uniform(size=50), gen.uniform(size=70)
    a, b = a / a.sum(), b / b.sum()
    t = lambda z: torch.tensor(z)  # noqa: E731
    assert_allclose(M.quantile_w2sq(t(x), t(a), t(y), t(b)), ot.emd2_1d(x, y, a, b), rtol=1e-12)
    assert_allclose(M.quantile_w2sq(t(x), t(a), t(y), t(b)),
                    ot.emd2(a, b, (x[:, None] - y[None, :]) ** 2), rtol=1e-10)


def test_entropic_plan_matches_pot_and_divergence_tends_to_w2():
    x = torch.linspace(0, 1, 60, dtype=torch.float64)
    a = torch.exp(-0.5 * ((x - 0.3) / 0.1) ** 2)
    b = torch.exp(-0.5 * ((x - 0.7) / 0.05) ** 2)
    a, b = a / a.sum(), b / b.sum()
    X = x[:, None]
    res = M.entropic_plan(a, X, b, X, 1e-2)
    assert res.converged
    c = ((X - X.T) ** 2).numpy()
    p_pot = ot.sinkhorn(a.numpy(), b.numpy(), c, 1e-2, method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
    assert_allclose(res.plan.numpy(), p_pot, atol=1e-9)
    w2 = M.quantile_w2sq(x, a, x, b)
    s = [M.sinkhorn_divergence(a, X, b, X, e) for e in (1e-1, 1e-2, 1e-3)]
    assert all(v >= 0 for v in s)
    assert abs(s[-1] - w2) < abs(s[0] - w2)
    assert abs(s[-1] / w2 - 1) < 0.02
    assert abs(s[-1] / w2 - 1) <= 9e-4, s[-1] / w2 - 1  # regression bound: measured -4.48e-4 (float64 CPU)


def test_grid_entropic_matches_the_dense_plan():
    grid, a, b = _pair(12)
    pts = grid.points()
    dense = M.entropic_plan(a.reshape(-1), pts, b.reshape(-1), pts, 5e-3, tol=1e-11)
    res, T = M.grid_entropic(a, b, grid.axes, 5e-3, tol=1e-11)
    assert res.converged and dense.converged
    assert_allclose(res.value, dense.value, rtol=1e-8)
    assert_allclose(res.cost, dense.cost, rtol=1e-8)
    assert_allclose(T.reshape(-1, 2).numpy(), M.barycentric_map(dense.plan, pts).numpy(), atol=1e-8)


def test_kantorovich_primal_equals_dual_and_c_transforms():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(60, 2, generator=gen, dtype=torch.float64)
    y = torch.rand(45, 2, generator=gen, dtype=torch.float64) + 0.3
    a = torch.rand(60, generator=gen, dtype=torch.float64)
    b = torch.rand(45, generator=gen, dtype=torch.float64)
    plan = M.exact_plan(a, x, b, y)
    c = M.sqdist(x, y)
    assert_allclose(M.dual_value(plan.a, plan.u, plan.b, plan.v), plan.cost, rtol=1e-10)
    assert float((plan.u[:, None] + plan.v[None, :] - c).max()) <= 1e-10  # dual feasible
    # the optimal potentials are c-transforms of each other
    assert_allclose(M.c_transform(plan.v, c).numpy(), plan.u.numpy(), atol=1e-10)
    assert_allclose(M.c_transform_bar(plan.u, c).numpy(), plan.v.numpy(), atol=1e-10)
    # weak duality for any c-transform pair, and the c-transform never lowers the dual value
    v = torch.randn(45, generator=gen, dtype=torch.float64) * 0.1
    u = M.c_transform(v, c)
    d1 = M.dual_value(plan.a, u, plan.b, v)
    d2 = M.dual_value(plan.a, u, plan.b, M.c_transform_bar(u, c))
    assert d1 <= d2 + 1e-12 <= plan.cost + 1e-12


def test_dual_ascent_climbs_to_the_primal_cost_from_below():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(40, 2, generator=gen, dtype=torch.float64)
    y = torch.rand(30, 2, generator=gen, dtype=torch.float64) + 0.2
    a = torch.full((40,), 1 / 40, dtype=torch.float64)
    b = torch.full((30,), 1 / 30, dtype=torch.float64)
    plan = M.exact_plan(a, x, b, y)
    c = M.sqdist(x, y)
    ascent = M.dual_ascent(plan.a, plan.b, c, 5)
    values = [val for pair in ascent for val in pair]
    assert len(ascent) == 5
    # never decreasing, never above the primal (weak duality)
    assert all(v1 <= v2 + 1e-12 for v1, v2 in zip(values, values[1:], strict=False))
    assert max(values) <= plan.cost + 1e-12
    # the first half-step from v = 0 is <a, min_j C_ij>
    assert_allclose(ascent[0][0], float((plan.a * c.min(dim=1).values).sum()), rtol=1e-14)
    # from the optimal potential the ascent stays at the optimum
    assert_allclose(M.dual_ascent(plan.a, plan.b, c, 1, v0=plan.v)[0][1], plan.cost, rtol=1e-10)
    with pytest.raises(ValueError, match="rounds"):
        M.dual_ascent(plan.a, plan.b, c, 0)
