"""Tests of the Langevin particle cross-check (wgf_cli.flows.langevin).

All on CPU in float64 with fixed seeds.  Monte-Carlo tolerances are stated as multiples of
the standard error (SE) of the estimator; 5 SE makes a false failure for a correct
implementation a ~1e-6 event per compared number.
"""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
from numpy.testing import assert_allclose

from wgf_cli.flows import initial, references
from wgf_cli.flows.energies import Aggregation, FokkerPlanck, Heat, PorousMedium
from wgf_cli.flows.jko import EntropicJKO
from wgf_cli.flows.langevin import (
    LangevinResult,
    SamplingError,
    agrees,
    particle_grid_distance,
    reflect_into_box,
    sample_grid_measure,
    sampling_error,
    simulate_langevin,
)
from wgf_cli.flows.potentials import QuadraticPotential, RadialKernel
from wgf_cli.ot.grid import Grid

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inside(x: torch.Tensor, grid: Grid) -> bool:
    lo = torch.tensor(grid.lo, dtype=x.dtype)
    hi = torch.tensor(grid.hi, dtype=x.dtype)
    return bool(((x >= lo) & (x <= hi)).all())


def _cov_se(S: torch.Tensor, n: int) -> torch.Tensor:
    """SE of the empirical covariance entries of a Gaussian: sqrt((S_ii S_jj + S_ij^2)/n)."""
    d = torch.diagonal(S)
    return torch.sqrt((d[:, None] * d[None, :] + S**2) / n)


# -- sample_grid_measure -----------------------------------------------------------------
def test_sample_grid_measure_moments_and_cells():
    grid = Grid((32, 32), (-1.0, 0.0), (1.0, 2.0))
    cov = torch.tensor([[0.09, 0.03], [0.03, 0.06]], dtype=F64)
    p = references.gaussian_density(grid, [0.1, 1.1], cov) * grid.cell_volume
    p = p / p.sum()
    n = 200_000
    x = sample_grid_measure(grid, p, n, _gen(0))
    assert x.shape == (n, 2) and x.dtype == F64
    assert _inside(x, grid)

    # Uniform jitter inside a cell: same mean as the grid measure, covariance + dx^2/12.
    mean, S = references.moments(grid, p)
    S = S + torch.diag(torch.tensor([dx**2 / 12 for dx in grid.spacing], dtype=F64))
    emp_mean = x.mean(0)
    emp_cov = torch.cov(x.T)
    # tolerance: 5 SE, SE(mean_k) = sqrt(S_kk / n), SE(cov_ij) = sqrt((S_ii S_jj + S_ij^2)/n)
    assert_allclose(emp_mean.numpy(), mean.numpy(), rtol=0,
                    atol=float(5 * torch.sqrt(torch.diagonal(S).max() / n)))
    err = (emp_cov - S).abs()
    assert bool((err <= 5 * _cov_se(S, n)).all()), (emp_cov, S)

    # Each particle lies in a cell drawn with probability p: binomial counts within 5 SE
    # (+1 for the discreteness), over all 1024 cells.
    idx = [((x[:, k] - grid.lo[k]) / grid.spacing[k]).floor().long().clamp(0, grid.shape[k] - 1)
           for k in range(2)]
    counts = torch.zeros(grid.shape, dtype=F64)
    counts.index_put_((idx[0], idx[1]), torch.ones(n, dtype=F64), accumulate=True)
    expected = n * p
    assert bool(((counts - expected).abs() <= 5 * torch.sqrt(expected * (1 - p)) + 1).all())


def test_sample_grid_measure_respects_zero_cells_and_1d_box():
    grid = Grid.regular(40, dim=1, lo=0.0, hi=4.0)
    p = initial.box(grid, [1.0], [2.0])
    x = sample_grid_measure(grid, p, 50_000, _gen(1))
    assert _inside(x, grid)
    # mass only on the 10 cells with centres 1.05 ... 1.95, which tile [1, 2] ...
    assert int((p > 0).sum()) == 10
    assert float(x.min()) >= 1.0 and float(x.max()) <= 2.0
    # ... uniformly: mean 1.5 and variance 1/12; 5 SE (4th central moment of U: 1/80)
    n = x.shape[0]
    assert_allclose(float(x.mean()), 1.5, rtol=0, atol=5 * math.sqrt(1 / 12 / n))
    assert_allclose(float(x.var()), 1 / 12, rtol=0, atol=5 * math.sqrt((1 / 80 - 1 / 144) / n))


# -- simulate_langevin ---------------------------------------------------------------------
def test_heat_variance_grows_as_2Dt():
    grid = Grid.regular(16, dim=2)
    D, dt, n = 0.1, 1e-3, 20_000
    x0 = torch.full((n, 2), 0.5, dtype=F64)
    res = simulate_langevin(Heat(grid, D), x0, dt=dt, steps=50, generator=_gen(2),
                            snapshot_times=(0.0, 0.02))
    assert isinstance(res, LangevinResult)
    assert res.steps == 50 and res.dt == dt and res.x.shape == (n, 2)
    assert_allclose(res.t, 0.05, rtol=1e-12)
    assert [t for t, _ in res.snapshots] == pytest.approx([0.0, 0.02], abs=1e-12)
    assert torch.equal(res.snapshots[0][1], x0)
    for t, x in [*res.snapshots[1:], (res.t, res.x)]:
        var = 2 * D * t  # std <= 0.1: the walls are >= 5 std away, their effect < 1e-6
        assert_allclose(x.mean(0).numpy(), [0.5, 0.5], rtol=0, atol=5 * math.sqrt(var / n))
        # SE of a Gaussian sample variance: var sqrt(2/n)
        assert_allclose(x.var(0).numpy(), [var, var], rtol=0, atol=5 * var * math.sqrt(2 / n))


def test_fokker_planck_quadratic_follows_ou_moments():
    grid = Grid.regular(16, dim=2)
    A = [[3.0, 1.0], [1.0, 2.0]]
    c, D, dt, steps, n = [0.5, 0.5], 0.02, 2e-3, 250, 20_000
    m0 = torch.tensor([0.3, 0.6], dtype=F64)
    S0 = torch.diag(torch.tensor([0.04**2, 0.05**2], dtype=F64))
    gen = _gen(3)
    x0 = m0 + torch.randn(n, 2, generator=gen, dtype=F64) @ torch.linalg.cholesky(S0).T
    energy = FokkerPlanck(grid, QuadraticPotential(c, A, 2), diffusion=D)
    res = simulate_langevin(energy, x0, dt=dt, steps=steps, generator=gen)
    t = steps * dt
    mean, cov = references.ou_moments(m0, S0, c, A, D, t)

    # The O(dt) bias of Euler-Maruyama, computed exactly from its moment recursion
    # m <- m - dt A (m - c),  S <- (I - dt A) S (I - dt A)^T + 2 D dt I  (no wall is reached:
    # the cloud stays >= 5 std inside the box).
    At, ct = torch.tensor(A, dtype=F64), torch.tensor(c, dtype=F64)
    M = torch.eye(2, dtype=F64) - dt * At
    m_em, S_em = m0.clone(), S0.clone()
    for _ in range(steps):
        m_em = m_em - dt * At @ (m_em - ct)
        S_em = M @ S_em @ M.T + 2 * D * dt * torch.eye(2, dtype=F64)
    bias_m, bias_S = (m_em - mean).abs(), (S_em - cov).abs()
    assert float(bias_S.max()) < 1e-2 * float(cov.abs().max())  # it is O(dt) small

    emp_m, emp_S = res.x.mean(0), torch.cov(res.x.T)
    se_m = torch.sqrt(torch.diagonal(cov) / n)
    se_S = _cov_se(cov, n)
    # tolerance: 5 SE (Monte Carlo) + the O(dt) bias
    assert bool(((emp_m - mean).abs() <= 5 * se_m + bias_m).all()), (emp_m, mean)
    assert bool(((emp_S - cov).abs() <= 5 * se_S + bias_S).all()), (emp_S, cov)
    # sanity: the flow moved the cloud by much more than the tolerance
    assert float((mean - m0).norm()) > 50 * float(se_m.max())


def test_reflecting_walls_keep_particles_inside_and_relax_to_uniform():
    grid = Grid.regular(8, dim=2)
    # t = 2, ten relaxation times L^2/(pi^2 D).  For pure diffusion, folding the free step
    # is exact in law for any dt (reflected Brownian motion), so the steps can be coarse.
    n, D, dt, steps = 20_000, 0.5, 0.02, 100
    x0 = torch.tensor([[0.02, 0.97]], dtype=F64).repeat(n, 1)
    seen_outside = []

    def check(k, t, x):
        if not _inside(x, grid):
            seen_outside.append(k)

    res = simulate_langevin(Heat(grid, D), x0, dt=dt, steps=steps, generator=_gen(4),
                            callback=check)
    assert not seen_outside
    assert res.x.shape == (n, 2)  # particle count (mass) conserved
    # reflection, not clamping: no particle sits on a wall
    assert int(((res.x == 0.0) | (res.x == 1.0)).sum()) == 0
    # uniform on the square: mean 1/2, variance 1/12 per axis (SE from the uniform's moments)
    assert_allclose(res.x.mean(0).numpy(), [0.5, 0.5], rtol=0, atol=5 * math.sqrt(1 / 12 / n))
    assert_allclose(res.x.var(0).numpy(), [1 / 12, 1 / 12], rtol=0,
                    atol=5 * math.sqrt((1 / 80 - 1 / 144) / n))


def test_large_steps_fold_back_into_an_offset_box():
    grid = Grid((4, 4), (-1.0, 0.0), (2.0, 0.5))
    x0 = torch.tensor([[0.5, 0.25]], dtype=F64).repeat(5000, 1)
    # step std sqrt(2 D dt) = 1 per axis, twice the box width in y
    res = simulate_langevin(Heat(grid, 5.0), x0, dt=0.1, steps=3, generator=_gen(5))
    assert _inside(res.x, grid)


def test_reflect_into_box_equals_repeated_reflection():
    lo, hi = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([2.0, 0.5], dtype=F64)
    x = torch.empty(2000, 2, dtype=F64).uniform_(-12.0, 12.0, generator=_gen(6))
    ref = x.clone()
    for _ in range(100):  # naive: mirror at whichever wall was crossed until inside
        ref = torch.where(ref < lo, 2 * lo - ref, ref)
        ref = torch.where(ref > hi, 2 * hi - ref, ref)
        if bool(((ref >= lo) & (ref <= hi)).all()):
            break
    assert bool(((ref >= lo) & (ref <= hi)).all())
    torch.testing.assert_close(reflect_into_box(x, lo, hi), ref, rtol=0, atol=1e-12)
    inside = (x >= lo) & (x <= hi)
    assert torch.equal(reflect_into_box(x, lo, hi)[inside], x[inside])


def test_aggregation_drift_in_blocks_matches_dense():
    grid = Grid.regular(16, dim=2)
    energy = Aggregation(grid, RadialKernel("power", 2.0, 1.0, 1.0), diffusion=0.01)
    x = torch.rand(300, 2, generator=_gen(7), dtype=F64)
    # float64 NumPy reference: -(1/N) sum_j W'(r_ij) (x_i - x_j)/r_ij, W'(r) = r - 1
    xn = x.numpy()
    diff = xn[:, None, :] - xn[None, :, :]
    r = np.linalg.norm(diff, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(r[..., None] > 0, diff / r[..., None], 0.0)
    ref = -((r - 1.0)[..., None] * unit).mean(axis=1)
    dense = energy.particle_drift(x)
    np.testing.assert_allclose(dense.numpy(), ref, rtol=1e-12, atol=1e-14)
    blocks = energy.particle_drift(x, pair_chunk=300 * 7)  # blocks of 7 rows
    torch.testing.assert_close(blocks, dense, rtol=1e-12, atol=1e-14)
    res = simulate_langevin(energy, x, dt=1e-3, steps=5, generator=_gen(8))
    assert res.x.shape == x.shape and _inside(res.x, grid)


def test_bad_arguments():
    grid = Grid.regular(8, dim=2)
    x0 = torch.full((10, 2), 0.5, dtype=F64)
    with pytest.raises(ValueError, match="particle"):
        simulate_langevin(PorousMedium(grid), x0, dt=1e-3, steps=1, generator=_gen(0))
    with pytest.raises(ValueError, match="snapshot"):
        simulate_langevin(Heat(grid), x0, dt=1e-3, steps=10, generator=_gen(0),
                          snapshot_times=(0.1,))
    with pytest.raises(ValueError, match="shape"):
        simulate_langevin(Heat(grid), x0[:, :1], dt=1e-3, steps=1, generator=_gen(0))


# -- particle_grid_distance ------------------------------------------------------------------
def _w2_1d_quantile(x, wx, y, wy):
    """Exact W2 between two discrete 1-D measures: int_0^1 |F^-1(u) - G^-1(u)|^2 du."""
    ix, iy = np.argsort(x), np.argsort(y)
    x, wx, y, wy = x[ix], wx[ix] / wx.sum(), y[iy], wy[iy] / wy.sum()
    cx, cy = np.cumsum(wx), np.cumsum(wy)
    u = np.unique(np.concatenate([[0.0], cx, cy]).clip(0, 1))
    mid = 0.5 * (u[1:] + u[:-1])
    qx = x[np.minimum(np.searchsorted(cx, mid), len(x) - 1)]
    qy = y[np.minimum(np.searchsorted(cy, mid), len(y) - 1)]
    return math.sqrt(float(np.sum(np.diff(u) * (qx - qy) ** 2)))


def test_distance_1d_is_exact_w2():
    grid = Grid.regular(50, dim=1, lo=0.0, hi=2.0)
    p = torch.rand(50, generator=_gen(9), dtype=F64)
    p[10:20] = 0.0
    x = 2.0 * torch.rand(37, 1, generator=_gen(10), dtype=F64)
    got = particle_grid_distance(grid, p, x)
    pts = grid.points()[:, 0].numpy()
    want = _w2_1d_quantile(x[:, 0].numpy(), np.ones(37), pts, p.numpy())
    assert_allclose(got, want, rtol=1e-10)
    assert got > 0.05  # a non-trivial distance


def test_distance_2d_of_a_translate_is_the_sliced_translation():
    grid = Grid.regular(16, dim=2)
    p = torch.zeros(grid.shape, dtype=F64)
    p[3:8, 5:9] = 1.0
    v = torch.tensor([0.13, -0.07], dtype=F64)
    x = grid.points()[p.reshape(-1) > 0] + v
    # every projection theta maps one measure to a translate of the other by theta.v
    theta = ot.sliced.get_random_projections(2, 64, seed=0)
    want = math.sqrt(float(np.mean((v.numpy() @ theta) ** 2)))
    got = particle_grid_distance(grid, p, x, n_projections=64, seed=0)
    assert_allclose(got, want, rtol=1e-10)
    # and below the exact W2 = |v|
    assert got <= float(v.norm()) + 1e-12


def test_distance_2d_between_mean_and_exact_w2_bounds():
    grid = Grid.regular(12, dim=2)
    p = torch.rand(grid.shape, generator=_gen(11), dtype=F64) ** 4
    x = 0.3 + 0.5 * torch.rand(60, 2, generator=_gen(12), dtype=F64)
    got = particle_grid_distance(grid, p, x, n_projections=64, seed=3)
    pts, w = grid.points().numpy(), (p.reshape(-1) / p.sum()).numpy()
    a = np.full(60, 1 / 60)
    w2 = math.sqrt(ot.emd2(a, w, ot.dist(x.numpy(), pts)))  # exact W2
    theta = ot.sliced.get_random_projections(2, 64, seed=3)
    dm = x.numpy().mean(0) - w @ pts
    lower = math.sqrt(float(np.mean((dm @ theta) ** 2)))  # W2(theta) >= |theta.(m_x - m_p)|
    assert lower <= got <= w2, (lower, got, w2)
    assert got > 0.5 * w2  # not vacuous: the sliced distance is of the order of W2


# -- the cross-check ------------------------------------------------------------------------
XC_A = [[8.0, 2.0], [2.0, 5.0]]
XC_D, XC_H, XC_STEPS, XC_N = 0.05, 2e-3, 50, 2000


@pytest.fixture(scope="module")
def cross_check():
    grid = Grid.regular(64, dim=2)
    potential = QuadraticPotential([0.5, 0.5], XC_A, 2)
    p0 = initial.gaussian(grid, [0.3, 0.65], 0.07)
    gamma = grid.spacing[0] ** 2

    energy = FokkerPlanck(grid, potential, diffusion=XC_D)
    jko = EntropicJKO(energy, XC_H, gamma, tol=1e-8, debias=True)
    flow = jko.run(p0, XC_STEPS)
    assert flow.converged and jko.debias_complete

    gen = _gen(2024)
    x0 = sample_grid_measure(grid, p0, XC_N, gen)
    cloud = simulate_langevin(energy, x0, dt=XC_H / 10, steps=10 * XC_STEPS, generator=gen)
    assert_allclose(cloud.t, flow.t, rtol=1e-12)
    return grid, potential, p0, flow, cloud, gen


def test_langevin_agrees_with_entropic_jko_within_sampling_error(cross_check):
    grid, _, _, flow, cloud, gen = cross_check
    dist = particle_grid_distance(grid, flow.rho, cloud.x, n_projections=64, seed=0)
    err = sampling_error(grid, flow.rho, XC_N, repeats=20, generator=gen, n_projections=64, seed=0)
    assert isinstance(err, SamplingError) and err.count == XC_N and len(err.distances) == 20
    assert 0 < err.mean <= err.q95 <= max(err.distances)
    assert agrees(dist, err), (dist, err.mean, err.std, err.q95)


def test_cross_check_rejects_wrong_densities(cross_check):
    grid, potential, p0, _, cloud, gen = cross_check
    # the initial density: the flow moved it far beyond the sampling error
    dist0 = particle_grid_distance(grid, p0, cloud.x)
    err0 = sampling_error(grid, p0, XC_N, repeats=20, generator=gen)
    assert not agrees(dist0, err0), (dist0, err0.threshold)
    # the JKO flow without debiasing: the entropic blur adds a diffusion ~ gamma / (4h) = 0.03
    energy = FokkerPlanck(grid, potential, diffusion=XC_D)
    jko = EntropicJKO(energy, XC_H, grid.spacing[0] ** 2, tol=1e-8, debias=False)
    blurred = jko.run(p0, XC_STEPS)
    dist_b = particle_grid_distance(grid, blurred.rho, cloud.x)
    err_b = sampling_error(grid, blurred.rho, XC_N, repeats=20, generator=gen)
    assert not agrees(dist_b, err_b), (dist_b, err_b.threshold)


def test_cross_check_of_the_heat_kernel_is_deterministic_and_discriminating():
    from wgf_cli.flows import langevin

    grid = Grid.regular(200, dim=1)
    D, t, h = 0.1, 0.05, 5e-3
    p0 = initial.gaussian(grid, [0.5], 0.05)
    exact = initial.gaussian(grid, [0.5], math.sqrt(0.05**2 + 2 * D * t))  # walls >= 3.5 std away
    kw = dict(particles=500, substeps=5, repeats=10, projections=8, seed=1)
    res = langevin.cross_check(Heat(grid, D), p0, exact, t, h, **kw)
    assert res.x0.shape == res.x.shape == (500, 1) and res.error.count == 500
    assert res.agrees, (res.distance, res.error.threshold)
    # one generator, seeded: the same cloud, distance and null distribution again
    again = langevin.cross_check(Heat(grid, D), p0, exact, t, h, **kw)
    assert torch.equal(again.x, res.x) and again.distance == res.distance
    assert again.error.distances == res.error.distances
    # the initial density is far outside the sampling error of the evolved cloud
    assert not langevin.cross_check(Heat(grid, D), p0, p0, t, h, **kw).agrees
