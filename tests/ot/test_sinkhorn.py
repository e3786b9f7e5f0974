"""KL-proximal Sinkhorn (wgf_cli.ot.sinkhorn): log path vs plain path, grid vs dense,
balanced limit vs POT, overflow handling, and small-gamma robustness of JKO runs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import pytest
import torch

from wgf_cli.flows import initial
from wgf_cli.flows.energies import FokkerPlanck, Heat
from wgf_cli.flows.jko import EntropicJKO
from wgf_cli.flows.potentials import QuadraticPotential
from wgf_cli.ot.grid import Grid, GridGeometry
from wgf_cli.ot.sinkhorn import (
    DenseGeometry,
    ProxProblem,
    ProxSinkhorn,
    SinkhornNotConverged,
    prox_sinkhorn,
)

DT = torch.float64


def fp_problem(n=20, gamma_factor=2.0, h=5e-3):
    grid = Grid((n, n + 4), (0.0, 0.0), (1.0, 1.2))
    energy = FokkerPlanck(grid, QuadraticPotential([0.5, 0.6], [[4.0, 1.0], [1.0, 3.0]], 2), 0.05)
    gamma = gamma_factor * max(grid.spacing) ** 2
    q = initial.gaussian(grid, [0.4, 0.5], 0.1)
    sigma = 2 * h / gamma
    return grid, energy, gamma, q, (lambda lp: energy.prox_log(lp, sigma))


def test_log_domain_equals_plain_fokker_planck():
    grid, _, gamma, q, prox = fp_problem()
    geom = GridGeometry(grid, gamma)
    kw = dict(tol=1e-13, inner_max=20000, check_every=1)
    plain = prox_sinkhorn(geom, q, prox, log_domain=False, **kw)
    logd = prox_sinkhorn(geom, q, prox, log_domain=True, **kw)
    assert plain.converged and logd.converged
    assert not plain.log_domain and logd.log_domain
    # same iterates: the same number of iterations and the same errors
    assert plain.n_iters == logd.n_iters
    np.testing.assert_allclose(plain.errors[:5], logd.errors[:5], rtol=1e-8)
    torch.testing.assert_close(logd.rho, plain.rho, rtol=1e-10, atol=1e-16)
    torch.testing.assert_close(logd.f, plain.f, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(logd.g, plain.g, rtol=1e-10, atol=1e-10)
    # mass is carried by the exact second marginal; the first marginal is pi 1
    np.testing.assert_allclose(float(plain.rho.sum()), float(q.sum()), rtol=1e-12)
    # the result is a fixed point of the prox: rho = prox(K b) exactly
    log_kb = geom.apply_lse_kernel(logd.g)
    torch.testing.assert_close(torch.log(logd.rho), prox(log_kb), rtol=1e-12, atol=1e-12)


def test_log_domain_equals_plain_heat_compact_support():
    """Zero masses in q (g = -inf there) are handled identically by both paths."""
    grid = Grid.regular(24, 2)
    energy = Heat(grid, 0.1)
    gamma = 2 * grid.spacing[0] ** 2
    q = initial.box(grid, [0.3, 0.2], [0.6, 0.7])
    assert (q == 0).any()
    sigma = 2 * 1e-3 / gamma
    geom = GridGeometry(grid, gamma)
    kw = dict(tol=1e-13, inner_max=20000)
    prox = lambda lp: energy.prox_log(lp, sigma)  # noqa: E731
    plain = prox_sinkhorn(geom, q, prox, log_domain=False, **kw)
    logd = prox_sinkhorn(geom, q, prox, log_domain=True, **kw)
    assert plain.converged and logd.converged
    torch.testing.assert_close(logd.rho, plain.rho, rtol=1e-10, atol=1e-16)
    torch.testing.assert_close(logd.f, plain.f, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(logd.g, plain.g, rtol=1e-10, atol=1e-10)  # -inf == -inf
    assert torch.isneginf(plain.g[q == 0]).all()


def test_grid_geometry_equals_dense_geometry():
    """The separable grid geometry and the explicit dense one run the same iterations."""
    grid, _, gamma, q, prox = fp_problem(n=12)
    pts = grid.points()
    dense = DenseGeometry(torch.cdist(pts, pts) ** 2, gamma)
    kw = dict(tol=1e-13, inner_max=20000)
    for mode in (False, True):
        rg = prox_sinkhorn(GridGeometry(grid, gamma), q, prox, log_domain=mode, **kw)
        rd = prox_sinkhorn(
            dense, q.reshape(-1), lambda lp: prox(lp.reshape(grid.shape)).reshape(-1),
            log_domain=mode, **kw,
        )
        assert rg.converged and rd.converged
        torch.testing.assert_close(rg.rho.reshape(-1), rd.rho, rtol=1e-10, atol=1e-16)
        np.testing.assert_allclose(
            GridGeometry(grid, gamma).transport_cost(rg.f, rg.g),
            dense.transport_cost(rd.f, rd.g), rtol=1e-10,
        )


def test_balanced_limit_matches_pot_sinkhorn():
    """With prox = projection on a fixed marginal the iterations are plain Sinkhorn:
    the plan equals POT's ``ot.sinkhorn`` (log-stabilised) with the same cost and reg."""
    grid = Grid((9, 7), (0.0, 0.0), (1.0, 0.8))
    gamma = 0.05
    p0 = initial.gaussian(grid, [0.3, 0.4], 0.15)
    q = initial.gaussian(grid, [0.6, 0.4], 0.2)
    log_p0 = torch.log(p0)
    geom = GridGeometry(grid, gamma)
    pts = grid.points().numpy()
    M = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    ref = ot.sinkhorn(p0.numpy().ravel(), q.numpy().ravel(), M, gamma, method="sinkhorn_log",
                      numItermax=100000, stopThr=1e-15)
    np.testing.assert_allclose(ref.sum(1), p0.numpy().ravel(), rtol=1e-10)
    np.testing.assert_allclose(ref.sum(0), q.numpy().ravel(), rtol=1e-10)
    for mode in (False, True):
        res = prox_sinkhorn(geom, q, lambda lp: log_p0, tol=1e-14, inner_max=100000,
                            log_domain=mode)
        assert res.converged
        logk = -torch.as_tensor(M) / gamma
        plan = torch.exp(res.f.reshape(-1, 1) + logk + res.g.reshape(1, -1))
        np.testing.assert_allclose(plan.numpy(), ref, rtol=1e-8, atol=1e-14)
        torch.testing.assert_close(res.rho, p0, rtol=1e-12, atol=0.0)
        np.testing.assert_allclose(geom.transport_cost(res.f, res.g), (ref * M).sum(), rtol=1e-9)


def test_plain_raises_on_overflowing_warm_start_and_auto_recovers():
    grid, _, gamma, q, prox = fp_problem(n=10)
    geom = GridGeometry(grid, gamma)
    f0 = torch.full_like(q, 800.0)  # exp(800) = inf in float64
    g0 = torch.zeros_like(q)
    with pytest.raises(FloatingPointError):
        prox_sinkhorn(geom, q, prox, log_domain=False, init=(f0, g0))
    with pytest.raises(FloatingPointError):
        prox_sinkhorn(geom, q, prox, log_domain=False, init=(g0, f0))
    kw = dict(tol=1e-13, inner_max=20000)
    auto = prox_sinkhorn(geom, q, prox, log_domain="auto", init=(f0, g0), **kw)
    logd = prox_sinkhorn(geom, q, prox, log_domain=True, init=(f0, g0), **kw)
    cold = prox_sinkhorn(geom, q, prox, log_domain=False, **kw)
    assert auto.log_domain and auto.converged
    torch.testing.assert_close(auto.rho, logd.rho, rtol=0, atol=0)
    # the solution does not depend on the warm start
    torch.testing.assert_close(auto.rho, cold.rho, rtol=1e-10, atol=1e-16)


def test_plain_raises_when_scalings_overflow_during_iterations():
    """gamma far below dx^2 on a compact-support q: the plain path overflows mid-run;
    ``False`` raises, ``"auto"`` restarts in the log domain and matches ``True``."""
    grid = Grid.regular(32, 2)
    energy = Heat(grid, 0.1)
    gamma = grid.spacing[0] ** 2 / 8
    q = initial.box(grid, [0.3, 0.3], [0.5, 0.6])
    # sigma D = 2 h D / gamma = 80: a = (K b)^(-sigma D / (1 + sigma D)) * const overflows
    # where K b underflows towards exp(-745)
    sigma = 2 * 5e-2 / gamma
    prox = lambda lp: energy.prox_log(lp, sigma)  # noqa: E731
    geom = GridGeometry(grid, gamma)
    with pytest.raises(FloatingPointError):
        prox_sinkhorn(geom, q, prox, log_domain=False, tol=1e-12, inner_max=500)
    auto = prox_sinkhorn(geom, q, prox, log_domain="auto", tol=1e-12, inner_max=500)
    logd = prox_sinkhorn(geom, q, prox, log_domain=True, tol=1e-12, inner_max=500)
    assert auto.log_domain
    torch.testing.assert_close(auto.rho, logd.rho, rtol=0, atol=0)
    assert torch.isfinite(auto.rho).all()
    np.testing.assert_allclose(float(auto.rho.sum()), 1.0, rtol=1e-12)


@pytest.mark.parametrize("dtype, mass_rtol", [(torch.float32, 1e-5), (torch.float64, 1e-9)])
@pytest.mark.parametrize("energy_name", ["heat", "fokker_planck"])
def test_small_gamma_jko_auto_is_finite_and_conserves_mass(dtype, mass_rtol, energy_name):
    """gamma = dx^2/2 on 64^2 with a compact-support initial density: entries of K drop to
    exp(-2 * 63^2) (0 in float32 and float64), scalings of the plain path overflow;
    log_domain="auto" must still give finite, mass-conserving iterates."""
    grid = Grid.regular(64, 2, dtype=dtype)
    if energy_name == "heat":
        energy = Heat(grid, 0.05)
    else:
        energy = FokkerPlanck(grid, QuadraticPotential([0.5, 0.5], 2.0, 2), 0.05)
    gamma = grid.spacing[0] ** 2 / 2
    rho0 = initial.box(grid, [0.25, 0.3], [0.55, 0.7])
    assert rho0.dtype == dtype and (rho0 == 0).any()
    flow = EntropicJKO(energy, 1e-3, gamma, tol=1e-5 if dtype == torch.float32 else 1e-9,
                       inner_max=300, log_domain="auto")
    masses = []

    def check(step):
        assert step.rho.dtype == dtype
        assert torch.isfinite(step.rho).all(), f"non-finite density at step {step.step}"
        assert (step.rho >= 0).all()
        assert math.isfinite(step.transport_cost)
        masses.append(float(step.rho.double().sum()))

    res = flow.run(rho0, 4, callback=check)
    assert len(masses) == 4
    np.testing.assert_allclose(masses, 1.0, rtol=mass_rtol)
    assert torch.isfinite(res.rho).all()


@pytest.mark.parametrize("dtype, mass_rtol", [(torch.float32, 1e-5), (torch.float64, 1e-9)])
def test_small_gamma_jko_auto_falls_back_to_log_domain(dtype, mass_rtol):
    """Same setting with h = 5e-2 (sigma D = 2hD/gamma = 41): the plain scalings overflow in
    the first step, "auto" finishes in the log domain, finite and mass-conserving."""
    grid = Grid.regular(64, 2, dtype=dtype)
    energy = FokkerPlanck(grid, QuadraticPotential([0.5, 0.5], 2.0, 2), 0.05)
    rho0 = initial.box(grid, [0.25, 0.3], [0.55, 0.7])
    flow = EntropicJKO(energy, 5e-2, grid.spacing[0] ** 2 / 2, tol=1e-12, inner_max=100,
                       log_domain="auto")
    masses = []

    def check(step):
        assert step.log_domain  # the fallback is what this test exercises
        assert torch.isfinite(step.rho).all() and (step.rho >= 0).all()
        masses.append(float(step.rho.double().sum()))

    flow.run(rho0, 2, callback=check)
    assert len(masses) == 2
    np.testing.assert_allclose(masses, 1.0, rtol=mass_rtol)


@pytest.mark.parametrize("log_domain", [False, True])
@pytest.mark.parametrize("energy_name", ["heat", "porous"])
def test_overrelaxation_same_fixed_point_exact_mass(log_domain, energy_name):
    """Over-relaxed updates (omega = 1.5) reach the plain scheme's answer; mass stays exact."""
    from wgf_cli.flows.energies import PorousMedium

    grid = Grid.regular(24, 2)
    gamma, h = grid.spacing[0] ** 2, 2e-3
    if energy_name == "heat":
        energy, q = Heat(grid, 0.1), initial.gaussian(grid, [0.5, 0.5], 0.1)
    else:
        energy, q = PorousMedium(grid, 2.0), initial.barenblatt(grid, 2.0, 2e-3, [0.5, 0.5])
    sigma = 2 * h / gamma
    kw = dict(tol=1e-13, inner_max=50000, log_domain=log_domain)
    plain = prox_sinkhorn(GridGeometry(grid, gamma), q, lambda lp: energy.prox_log(lp, sigma), **kw)
    fast = prox_sinkhorn(GridGeometry(grid, gamma), q, lambda lp: energy.prox_log(lp, sigma),
                         overrelax=1.5, **kw)
    assert plain.converged and fast.converged
    torch.testing.assert_close(fast.rho, plain.rho, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(float(fast.rho.sum()), float(q.sum()), rtol=1e-12)
    with pytest.raises(ValueError, match="overrelax"):
        prox_sinkhorn(GridGeometry(grid, gamma), q, lambda lp: lp, overrelax=2.0)


# ============================================================================ solver API
def test_not_converged_warns_and_converged_does_not():
    grid, energy, gamma, q, prox = fp_problem()
    problem = ProxProblem(GridGeometry(grid, gamma), q, prox)
    for log_domain in (False, True):
        with pytest.warns(SinkhornNotConverged, match="inner_max=2"):
            res = ProxSinkhorn(tol=1e-12, inner_max=2, log_domain=log_domain).solve(problem)
        assert not res.converged and res.n_iters == 2 and not res.stalled
        with warnings.catch_warnings():
            warnings.simplefilter("error", SinkhornNotConverged)
            res = ProxSinkhorn(tol=1e-10, inner_max=5000, log_domain=log_domain).solve(problem)
        assert res.converged and res.error <= 1e-10
    # the warning can be switched off
    with warnings.catch_warnings():
        warnings.simplefilter("error", SinkhornNotConverged)
        assert not ProxSinkhorn(tol=1e-12, inner_max=2, warn=False).solve(problem).converged


@pytest.mark.parametrize("log_domain", [False, True, "auto"])
@pytest.mark.parametrize("overrelax", [1.0, 1.5, "auto"])
def test_solve_leaves_its_inputs_unchanged(log_domain, overrelax):
    grid, energy, gamma, q, prox = fp_problem()
    warm = prox_sinkhorn(GridGeometry(grid, gamma), q, prox, tol=1e-4)
    init = (warm.f + 0.1, warm.g - 0.1)
    saved = [q.clone(), init[0].clone(), init[1].clone()]
    geom = GridGeometry(grid, gamma, truncation=1e-8)  # banded: the solve widens a copy
    band = list(geom.band)
    problem = ProxProblem(geom, q, prox)
    res = ProxSinkhorn(tol=1e-10, inner_max=400, log_domain=log_domain,
                       overrelax=overrelax).solve(problem, init=init)
    for now, before in zip([q, *init], saved, strict=True):
        assert torch.equal(now, before)
    assert list(geom.band) == band and problem.geom is geom and problem.q is q
    assert res.rho is not q and res.f is not init[0] and res.g is not init[1]


def test_plain_and_log_domain_reach_the_same_fixed_point():
    grid, energy, gamma, q, prox = fp_problem()
    problem = ProxProblem(GridGeometry(grid, gamma, truncation=None), q, prox)
    plain = ProxSinkhorn(tol=1e-14, inner_max=20000, log_domain=False).solve(problem)
    logd = ProxSinkhorn(tol=1e-14, inner_max=20000, log_domain=True).solve(problem)
    assert not plain.log_domain and logd.log_domain
    assert plain.converged and logd.converged
    np.testing.assert_allclose(plain.rho, logd.rho, rtol=0, atol=1e-12 * float(q.max()))
    finite = torch.isfinite(plain.f)
    assert torch.equal(finite, torch.isfinite(logd.f))
    np.testing.assert_allclose(plain.f[finite], logd.f[finite], rtol=0, atol=1e-9)
    np.testing.assert_allclose(plain.g, logd.g, rtol=0, atol=1e-9)


def test_problem_is_frozen_and_prox_sinkhorn_is_the_solver():
    grid, energy, gamma, q, prox = fp_problem()
    problem = ProxProblem(GridGeometry(grid, gamma), q, prox)
    assert problem.mass == float(q.sum())
    with pytest.raises(AttributeError):
        problem.q = q * 2
    kw = dict(tol=1e-9, inner_max=500, overrelax="auto")
    a = ProxSinkhorn(**kw).solve(problem)
    b = prox_sinkhorn(problem.geom, q, prox, **kw)
    assert torch.equal(a.rho, b.rho) and a.errors == b.errors and a.omega == b.omega
    with pytest.raises(ValueError):
        ProxSinkhorn(overrelax=2.0)


def test_auto_omega_ignores_a_cold_start_jump_but_backs_off_on_growth():
    """The automatic over-relaxation keeps its omega through one jump of a cold start's huge
    errors (measured at 1024^2, gamma = dx^2: 6e109 -> 5e117 -> 7e80 -> ... -> 1e-9), backs off
    at the first clear growth once the relative error is below 1, and at the second growth in a
    row above 1 (a diverging iteration)."""
    from wgf_cli.ot.sinkhorn import _Omega

    def final(errors, omega=1.871):
        om = _Omega(omega, auto=True)
        for e in errors:
            om.observe(e, 10)
        return om.omega

    assert final([6.0e109, 5.0e117, 7.1e80, 2.2e43, 1.3e16, 1.7, 0.82, 0.63]) == 1.871
    assert final([0.1, 0.05, 0.2]) == pytest.approx(1.0 + 0.8 * 0.871)  # growth below 1
    assert final([5.0, 20.0]) == 1.871  # one jump above 1: kept
    assert final([5.0, 20.0, 80.0]) == pytest.approx(1.0 + 0.8 * 0.871)  # two in a row
    assert final([0.1, 0.3], omega=1.0) == 1.0  # unrelaxed: nothing to back off


def test_auto_omega_is_estimated_once_the_unrelaxed_decay_is_steady():
    """Without a starting omega, the automatic over-relaxation reads the unrelaxed rate ``lam``
    off STEADY_CHECKS checks in a row that agree (here at a relative error near 1e-2, where
    waiting for 1e-5 would cost ~1/(1 - lam) more iterations) and moves to the SOR optimum."""
    import math

    from wgf_cli.ot.sinkhorn import STEADY_CHECKS, _Omega

    lam, every = 0.995, 10
    om = _Omega(1.0, auto=True)
    errs = [5.0, 0.9] + [0.9 * lam ** (every * k) for k in range(1, STEADY_CHECKS + 1)]
    for e in errs[:-1]:
        om.observe(e, every)
    assert om.omega == 1.0  # one steady rate short
    om.observe(errs[-1], every)
    assert om.omega == pytest.approx(2.0 / (1.0 + math.sqrt(1.0 - lam)), rel=1e-9)
    # rates that still drift (fast modes dying out) are not steady: no estimate
    om = _Omega(1.0, auto=True)
    e = 0.9
    for k in range(12):
        e *= (0.5 + 0.04 * k) ** every
        om.observe(e, every)
    assert om.omega == 1.0
