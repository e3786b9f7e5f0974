"""Banded (truncated) Gibbs kernel, absorbed log-kernel, adaptive over-relaxation and float32
at scale (wgf_cli.ot.grid / wgf_cli.ot.sinkhorn) against the full-kernel implementation.

Stated tolerances: the banded kernel drops 1-D entries below ``truncation`` (1e-30) of the
diagonal, so applied to positive vectors of moderate range it equals the full kernel to
1e-12 relative, and a converged JKO step (tol 1e-14) lands on the full kernel's fixed point to
1e-12 (relative to the largest mass; the band-edge check keeps the dropped plan mass below
``edge_tol`` = 1e-11 of the total)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wgf_cli.flows import initial
from wgf_cli.flows.energies import FokkerPlanck, Heat
from wgf_cli.flows.jko import EntropicJKO
from wgf_cli.flows.potentials import QuadraticPotential
from wgf_cli.ot.grid import Grid, GridGeometry
from wgf_cli.ot.sinkhorn import prox_sinkhorn

DT = torch.float64


def pair(shape=(96, 80), gamma_factor=1.0, dtype=DT):
    grid = Grid(shape, (0.0, 0.0), (1.0, shape[1] / shape[0]), dtype)
    gamma = gamma_factor * max(grid.spacing) ** 2
    return grid, GridGeometry(grid, gamma), GridGeometry(grid, gamma, truncation=None)


def test_band_width_from_truncation():
    grid, band, full = pair()
    assert band.fully_banded and not full.is_banded
    dx = grid.spacing
    for w, h in zip(band.band, dx, strict=True):
        # kept offsets: entry >= 1e-30; first dropped offset: entry < 1e-30
        assert math.exp(-((w * h) ** 2) / band.gamma) >= 1e-30
        assert math.exp(-(((w + 1) * h) ** 2) / band.gamma) < 1e-30
    assert band.truncation_error() < 1e-30
    assert band.band == [8, 8]  # gamma = dx^2 (here dx is the same on both axes)


@pytest.mark.parametrize("batch", [(), (2,)])
def test_banded_application_equals_full(batch):
    _, band, full = pair()
    gen = torch.Generator().manual_seed(0)
    b = torch.rand((*batch, 96, 80), generator=gen, dtype=DT) + 0.1
    torch.testing.assert_close(band.apply_kernel(b), full.apply_kernel(b), rtol=1e-12, atol=0)
    g = 3.0 * torch.randn((*batch, 96, 80), generator=gen, dtype=DT)
    g[..., :7, :] = float("-inf")  # zero scalings
    out_b, out_f = band.apply_lse_kernel(g), full.apply_lse_kernel(g)
    assert torch.equal(torch.isfinite(out_b), torch.isfinite(out_f))
    fin = torch.isfinite(out_f)
    torch.testing.assert_close(out_b[fin], out_f[fin], rtol=1e-12, atol=1e-12)
    f = torch.randn((96, 80), generator=gen, dtype=DT)
    gg = torch.randn((96, 80), generator=gen, dtype=DT)
    np.testing.assert_allclose(band.transport_cost(f, gg), full.transport_cost(f, gg), rtol=1e-12)
    np.testing.assert_allclose(band.transport_cost(f + 750, gg - 750),
                               full.transport_cost(f, gg), rtol=1e-12)


@pytest.mark.parametrize("log_domain", [False, True])
def test_banded_fixed_point_equals_full(log_domain):
    """One converged Fokker-Planck JKO step from an off-centre Gaussian: same fixed point."""
    grid, band, full = pair((64, 56))
    energy = FokkerPlanck(grid, QuadraticPotential([0.5, 0.4], [[4.0, 1.0], [1.0, 3.0]], 2), 0.05)
    q = initial.gaussian(grid, [0.35, 0.45], 0.08)
    sigma = 2 * 5e-3 / band.gamma
    kw = dict(tol=1e-14, inner_max=50000, log_domain=log_domain)
    rb = prox_sinkhorn(band, q, lambda lp: energy.prox_log(lp, sigma), **kw)
    rf = prox_sinkhorn(full, q, lambda lp: energy.prox_log(lp, sigma), **kw)
    assert rb.converged and rf.converged and rb.log_domain == rf.log_domain == log_domain
    assert rb.geom.is_banded
    torch.testing.assert_close(rb.rho, rf.rho, rtol=0, atol=1e-12 * float(rf.rho.max()))
    np.testing.assert_allclose(float((rb.rho - rf.rho).abs().sum()), 0.0, atol=1e-12)
    np.testing.assert_allclose(float(rb.rho.sum()), float(q.sum()), rtol=1e-13)


def test_band_widens_when_the_plan_reaches_its_edge():
    """A long step (h = 0.1) moves mass ~5 cells, near the band (gamma = dx^2/4: 4 cells):
    the edge check widens the band, and the answer is the full kernel's."""
    grid, _, _ = pair((40, 40))
    gamma = grid.spacing[0] ** 2 / 4
    band, full = GridGeometry(grid, gamma), GridGeometry(grid, gamma, truncation=None)
    energy = FokkerPlanck(grid, QuadraticPotential([0.5, 0.5], 4.0, 2), 0.02)
    q = initial.gaussian(grid, [0.3, 0.6], 0.06)
    sigma = 2 * 0.1 / gamma
    kw = dict(tol=1e-12, inner_max=100000, log_domain=True)
    rb = prox_sinkhorn(band, q, lambda lp: energy.prox_log(lp, sigma), **kw)
    rf = prox_sinkhorn(full, q, lambda lp: energy.prox_log(lp, sigma), **kw)
    assert rb.converged and rf.converged
    assert rb.widened >= 1 and max(rb.geom.band) > max(band.band)
    assert rb.geom.band_edge_mass(rb.f, rb.g) <= 1e-11
    torch.testing.assert_close(rb.rho, rf.rho, rtol=0, atol=1e-10 * float(rf.rho.max()))


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-13), (torch.float32, 2e-6)])
def test_absorbed_kernel_equals_log_sum_exp(dtype, rtol):
    _, band, _ = pair(dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    ref = (40 * torch.randn((96, 80), generator=gen, dtype=DT)).to(dtype)
    ref[:5] = float("-inf")
    ker = band.absorb(ref)
    torch.testing.assert_close(ker.out, band.apply_lse_kernel(ref), rtol=0, atol=0)
    g = ref + torch.randn((96, 80), generator=gen, dtype=DT).to(dtype)
    exact, got = band.apply_lse_kernel(g), ker.apply(g)
    assert torch.equal(torch.isfinite(exact), torch.isfinite(got))
    fin = torch.isfinite(exact)
    scale = float(exact[fin].abs().max())
    torch.testing.assert_close(got[fin], exact[fin], rtol=0, atol=rtol * scale)
    # drift beyond the bound, or a changed support: the caller must absorb again
    assert ker.apply(ref + 2 * ker.bound) is None
    grown = g.clone()
    grown[0] = 0.0
    assert ker.apply(grown) is None


@pytest.mark.parametrize("log_domain", [False, True])
def test_overrelax_auto_same_fixed_point_fewer_iterations(log_domain):
    grid = Grid.regular(64, 2)
    energy = Heat(grid, 0.1)
    gamma, h = grid.spacing[0] ** 2, 2e-3
    q = initial.gaussian(grid, [0.5, 0.45], 0.07)
    sigma = 2 * h / gamma
    geom = GridGeometry(grid, gamma)
    kw = dict(tol=1e-13, inner_max=50000, log_domain=log_domain)
    plain = prox_sinkhorn(geom, q, lambda lp: energy.prox_log(lp, sigma), **kw)
    auto = prox_sinkhorn(geom, q, lambda lp: energy.prox_log(lp, sigma), overrelax="auto", **kw)
    assert plain.converged and auto.converged
    assert auto.omega > 1.2 and auto.n_iters < 0.7 * plain.n_iters
    torch.testing.assert_close(auto.rho, plain.rho, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(float(auto.rho.sum()), float(q.sum()), rtol=1e-12)


def test_jko_flow_banded_auto_equals_full_plain():
    """Five heat steps with every new default (banded kernel, omega=auto) against the full
    kernel without over-relaxation: the same flow to the solver tolerance."""
    grid = Grid.regular(64, 2)
    rho0 = initial.gaussian(grid, [0.5, 0.5], 0.06)
    kw = dict(tol=1e-12, debias=True, inner_max=20000)
    new = EntropicJKO(Heat(grid, 0.1), 1e-3, grid.spacing[0] ** 2, overrelax="auto", **kw)
    old = EntropicJKO(Heat(grid, 0.1), 1e-3, grid.spacing[0] ** 2, truncation=None, **kw)
    rn, ro = new.run(rho0, 5), old.run(rho0, 5)
    assert rn.converged and ro.converged and new.geom.is_banded
    assert sum(rn.n_iters) < sum(ro.n_iters)
    torch.testing.assert_close(rn.rho, ro.rho, rtol=0, atol=1e-10 * float(ro.rho.max()))


@pytest.mark.parametrize("size", [256, pytest.param(512, marks=pytest.mark.slow)])
def test_float32_large_grid_no_overflow_mass(size):
    """float32 heat flow at the default parameters (gamma = dx^2, h = 1e-3, D = 0.1): the
    plain scalings overflow float32, log_domain=auto takes the absorbed log kernel; no NaN,
    mass to 1e-6."""
    grid = Grid.regular(size, 2, dtype=torch.float32)
    rho0 = initial.gaussian(grid, [0.5, 0.5], 0.06)
    flow = EntropicJKO(Heat(grid, 0.1), 1e-3, grid.spacing[0] ** 2, tol=1e-6, debias=True,
                       overrelax="auto", log_domain="auto")
    res = flow.run(rho0, 2)
    assert any(s.log_domain for s in res.steps)
    for s in res.steps:
        assert torch.isfinite(s.rho).all() and (s.rho >= 0).all()
        np.testing.assert_allclose(float(s.rho.double().sum()), 1.0, rtol=0, atol=1e-6)


def test_shifted_slices_equal_dense_masked_product():
    """A grid long enough on one axis (300 cells) that the plain product applies its band by
    shifted slices there and by a band-masked dense matrix on the short axis: both equal the
    full kernel's product to 1e-12 (entries dropped < 1e-30), and the band-edge mass computed
    by plain products equals the dense sum over the outermost offsets."""
    grid = Grid((300, 24), (0.0, 0.0), (1.0, 0.08), DT)
    geom = GridGeometry(grid, grid.spacing[0] ** 2)
    full = GridGeometry(grid, grid.spacing[0] ** 2, truncation=None)
    assert geom.plain_matrix[0] is None and geom.plain_matrix[1] is not None and geom.fully_banded
    gen = torch.Generator().manual_seed(2)
    b = torch.rand(grid.shape, generator=gen, dtype=DT) + 0.1
    torch.testing.assert_close(geom.apply_kernel(b), full.apply_kernel(b), rtol=1e-12, atol=0)
    f = torch.randn(grid.shape, generator=gen, dtype=DT)
    np.testing.assert_allclose(geom.transport_cost(f, torch.log(b)),
                               full.transport_cost(f, torch.log(b)), rtol=1e-12)
    # band-edge mass: dense reference over the pairs at offset exactly +-w on a banded axis
    idx = torch.stack(torch.meshgrid(*[torch.arange(n) for n in grid.shape], indexing="ij"), -1).reshape(-1, 2)
    off = (idx[:, None, :] - idx[None, :, :]).abs()
    kern = geom.dense_kernel()
    a, bb = torch.exp(f).reshape(-1), b.reshape(-1)
    ref = 0.0
    for k, w in enumerate(geom.band):
        inside = (off <= torch.tensor(geom.band)).all(-1)
        mask = inside & (off[..., k] == w)
        ref += float((a[:, None] * torch.where(mask, kern, 0.0) * bb[None, :]).sum())
    np.testing.assert_allclose(geom.band_edge_mass(f, torch.log(b)), ref, rtol=1e-12)


@pytest.mark.parametrize("shape", [(256,), (300, 64), (64, 300), (40, 270, 33)])
def test_block_tridiagonal_product_equals_band_masked_dense(shape):
    """Wide bands on long axes go block-tridiagonal (padded when the blocks do not divide
    n): the same operator as the band-masked dense matrix, to float64 rounding."""
    grid = Grid(shape, [0.0] * len(shape), [1.0] * len(shape), dtype=torch.float64)
    geom = GridGeometry(grid, 2e-4)
    assert any(type(m).__name__ == "_BlockBand" for m in geom.plain_matrix)
    x = torch.rand(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = x
    for k, n in enumerate(shape):
        i = torch.arange(n)
        mat = geom.kernel_1d[k]
        if geom.banded[k]:
            mat = torch.where((i[:, None] - i[None, :]).abs() <= geom.band[k], mat, torch.zeros_like(mat))
        ref = torch.movedim(torch.tensordot(mat, torch.movedim(ref, k, 0), dims=([1], [0])), 0, k)
    got = geom.apply_kernel(x)
    assert float((got - ref).abs().max() / ref.abs().max()) < 1e-14


def test_transport_cost_operators_are_cached_per_band():
    """The cost-weighted block-tridiagonal operators are built once per band: the same cost as a
    fresh geometry's, bit for bit, and a widened copy builds its own."""
    grid = Grid((300, 64), [0.0, 0.0], [1.0, 1.0], dtype=torch.float64)
    geom = GridGeometry(grid, 2e-4)
    assert type(geom.plain_matrix[0]).__name__ == "_BlockBand"
    gen = torch.Generator().manual_seed(3)
    f = torch.rand(300, 64, dtype=torch.float64, generator=gen).log()
    g = torch.rand(300, 64, dtype=torch.float64, generator=gen).log()
    first = geom.transport_cost(f, g)
    block = geom._cost_operators(0)[0][0]
    assert type(block).__name__ == "_BlockBand" and block is not geom.plain_matrix[0]
    assert geom.transport_cost(f, g) == first and geom._cost_operators(0)[0][0] is block
    assert GridGeometry(grid, 2e-4).transport_cost(f, g) == first
    wide = geom.widened()
    assert wide.band != geom.band and wide._cost_ops == {}
    assert wide.transport_cost(f, g) == GridGeometry(grid, 2e-4).widened().transport_cost(f, g)
    assert geom._cost_operators(0)[0][0] is block  # the original keeps its own
