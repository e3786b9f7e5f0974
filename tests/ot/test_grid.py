"""Separable grid kernels (wgf_cli.ot.grid) against dense float64 NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from wgf_cli.ot.grid import Grid, GridGeometry

DT = torch.float64

# (shape, lo, hi, gamma): 1-D, 2-D and 3-D, non-square shapes and anisotropic boxes
CASES = [
    ((11,), (-0.3,), (1.2,), 0.05),
    ((6, 9), (0.0, -1.0), (1.0, 2.0), 0.4),
    ((7, 5), (0.0, 0.0), (1.0, 1.0), 0.02),
    ((3, 4, 5), (0.0, -0.5, 1.0), (1.0, 0.5, 3.0), 0.3),
]
IDS = ["1d", "2d-aniso", "2d-narrow", "3d-aniso"]


def np_points(shape, lo, hi):
    """Cell centres in C order, computed independently of Grid."""
    axes = [
        lo_k + (np.arange(n) + 0.5) * (hi_k - lo_k) / n
        for n, lo_k, hi_k in zip(shape, lo, hi, strict=True)
    ]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=-1)


def np_cost(shape, lo, hi):
    pts = np_points(shape, lo, hi)
    return ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)


def make(shape, lo, hi, gamma):
    grid = Grid(tuple(shape), tuple(float(x) for x in lo), tuple(float(x) for x in hi), DT)
    return grid, GridGeometry(grid, gamma)


# --------------------------------------------------------------------------- Grid basics
def test_grid_points_are_cell_centres():
    shape, lo, hi = (3, 4, 5), (0.0, -0.5, 1.0), (1.0, 0.5, 3.0)
    grid = Grid(shape, lo, hi)
    np.testing.assert_allclose(grid.points().numpy(), np_points(shape, lo, hi), rtol=0, atol=1e-15)
    assert grid.size == 60 and grid.dim == 3
    np.testing.assert_allclose(grid.spacing, [1 / 3, 0.25, 0.4], rtol=1e-15)
    np.testing.assert_allclose(grid.cell_volume, 1 / 3 * 0.25 * 0.4, rtol=1e-15)
    for m, ax in zip(grid.mesh(), grid.axes, strict=True):
        assert m.shape == shape and ax.dtype == DT


@pytest.mark.parametrize(
    "shape, lo, hi",
    [
        ((4, 4, 4, 4), (0.0,) * 4, (1.0,) * 4),  # dim 4
        ((), (), ()),  # dim 0
        ((4, 4), (0.0, 0.0), (1.0, 0.0)),  # hi == lo
        ((4, 4), (0.0, 1.0), (1.0, 0.5)),  # hi < lo
        ((4, 4), (0.0,), (1.0, 1.0)),  # lengths differ
        ((4, 1), (0.0, 0.0), (1.0, 1.0)),  # a single cell
    ],
)
def test_grid_validation(shape, lo, hi):
    with pytest.raises(ValueError):
        Grid(shape, lo, hi)


def test_regular_dim4_and_bad_gamma():
    with pytest.raises(ValueError):
        Grid.regular(4, dim=4)
    with pytest.raises(ValueError):
        Grid.regular(4, dim=2, lo=1.0, hi=1.0)
    for gamma in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            GridGeometry(Grid.regular(4, 2), gamma)


# ------------------------------------------------------------------------ dense kernel
@pytest.mark.parametrize("shape, lo, hi, gamma", CASES, ids=IDS)
def test_dense_kernel_matches_numpy(shape, lo, hi, gamma):
    _, geom = make(shape, lo, hi, gamma)
    ref = np.exp(-np_cost(shape, lo, hi) / gamma)
    np.testing.assert_allclose(geom.dense_kernel().numpy(), ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("shape, lo, hi, gamma", CASES, ids=IDS)
def test_apply_kernel_equals_dense(shape, lo, hi, gamma):
    grid, geom = make(shape, lo, hi, gamma)
    gen = torch.Generator().manual_seed(0)
    b = torch.rand(shape, generator=gen, dtype=DT) + 0.1
    dense = geom.dense_kernel()
    expected = (dense @ b.reshape(-1)).reshape(shape)
    torch.testing.assert_close(geom.apply_kernel(b), expected, rtol=1e-12, atol=1e-14)
    # independent NumPy kernel, too
    ref = np.exp(-np_cost(shape, lo, hi) / gamma) @ b.numpy().reshape(-1)
    np.testing.assert_allclose(geom.apply_kernel(b).numpy().reshape(-1), ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape, lo, hi, gamma", CASES, ids=IDS)
def test_apply_kernel_batched(shape, lo, hi, gamma):
    """Leading batch axes are carried through (``b`` of shape ``(..., *grid.shape)``)."""
    _, geom = make(shape, lo, hi, gamma)
    gen = torch.Generator().manual_seed(1)
    b = torch.rand((2, 3, *shape), generator=gen, dtype=DT)
    dense = geom.dense_kernel()
    expected = (b.reshape(6, -1) @ dense.T).reshape(b.shape)
    torch.testing.assert_close(geom.apply_kernel(b), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape, lo, hi, gamma", CASES, ids=IDS)
def test_apply_lse_kernel_equals_log_dense(shape, lo, hi, gamma):
    _, geom = make(shape, lo, hi, gamma)
    gen = torch.Generator().manual_seed(2)
    g = 3.0 * torch.randn(shape, generator=gen, dtype=DT)
    expected = torch.log(geom.dense_kernel() @ torch.exp(g).reshape(-1)).reshape(shape)
    torch.testing.assert_close(geom.apply_lse_kernel(g), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, lo, hi, gamma", CASES, ids=IDS)
def test_apply_lse_kernel_huge_and_minus_inf(shape, lo, hi, gamma):
    """Potentials far outside exp's range and -inf entries (zero scalings)."""
    _, geom = make(shape, lo, hi, gamma)
    gen = torch.Generator().manual_seed(3)
    g = 2000.0 + 5.0 * torch.randn(shape, generator=gen, dtype=DT)
    g.reshape(-1)[::3] = float("-inf")
    out = geom.apply_lse_kernel(g)
    logk = -np_cost(shape, lo, hi) / gamma
    ref = logsumexp(logk + g.numpy().reshape(-1)[None, :], axis=1)
    np.testing.assert_allclose(out.numpy().reshape(-1), ref, rtol=1e-13, atol=1e-10)
    # all -inf -> -inf everywhere (no nan)
    out = geom.apply_lse_kernel(torch.full(shape, float("-inf"), dtype=DT))
    assert torch.isneginf(out).all()


def test_apply_lse_kernel_chunked(monkeypatch):
    """The chunked log-sum-exp gives the same result as one chunk."""
    import wgf_cli.ot.grid as grid_mod

    shape, lo, hi, gamma = CASES[3]
    _, geom = make(shape, lo, hi, gamma)
    g = torch.randn((2, *shape), generator=torch.Generator().manual_seed(4), dtype=DT)
    full = geom.apply_lse_kernel(g)
    monkeypatch.setattr(grid_mod, "_LSE_CHUNK", 7)  # forces one row per chunk
    torch.testing.assert_close(geom.apply_lse_kernel(g), full, rtol=1e-14, atol=1e-14)


# ---------------------------------------------------------------------- transport cost
def dense_cost(shape, lo, hi, gamma, f, g):
    """sum_ij exp(f_i - C_ij/gamma + g_j) C_ij in float64 NumPy."""
    c = np_cost(shape, lo, hi)
    logpi = f.reshape(-1)[:, None] - c / gamma + g.reshape(-1)[None, :]
    return float((np.exp(logpi) * c).sum())


@pytest.mark.parametrize("shape, lo, hi, gamma", CASES, ids=IDS)
def test_transport_cost_plain_and_log(shape, lo, hi, gamma):
    _, geom = make(shape, lo, hi, gamma)
    gen = torch.Generator().manual_seed(5)
    f = torch.randn(shape, generator=gen, dtype=DT)
    g = torch.randn(shape, generator=gen, dtype=DT)
    ref = dense_cost(shape, lo, hi, gamma, f.numpy(), g.numpy())
    # also against the torch dense kernel: <C, diag(a) K diag(b)>
    pts = geom.grid.points()
    c = torch.cdist(pts, pts) ** 2
    pi = torch.exp(f).reshape(-1, 1) * geom.dense_kernel() * torch.exp(g).reshape(1, -1)
    np.testing.assert_allclose(float((pi * c).sum()), ref, rtol=1e-12)

    np.testing.assert_allclose(geom.transport_cost(f, g), ref, rtol=1e-12)  # plain path
    # exp(f + 750) overflows float64: forces the log path; pi itself is unchanged
    big_f, big_g = f + 750.0, g - 750.0
    assert not torch.isfinite(torch.exp(big_f)).all()
    np.testing.assert_allclose(geom.transport_cost(big_f, big_g), ref, rtol=1e-12)

    # zero scalings (-inf) on both paths
    f0 = f.clone()
    f0.reshape(-1)[::2] = float("-inf")
    ref0 = dense_cost(shape, lo, hi, gamma, f0.numpy(), g.numpy())
    np.testing.assert_allclose(geom.transport_cost(f0, g), ref0, rtol=1e-12)
    np.testing.assert_allclose(geom.transport_cost(f0 + 750.0, g - 750.0), ref0, rtol=1e-12)


# ---------------------------------------------------------------------- kernel variance
@pytest.mark.parametrize("shape, lo, hi, gamma", CASES, ids=IDS)
def test_kernel_variance_numpy(shape, lo, hi, gamma):
    grid, geom = make(shape, lo, hi, gamma)
    expected = []
    for n, dx in zip(shape, grid.spacing, strict=True):
        offs = np.arange(-(n - 1), n) * dx
        w = np.exp(-(offs**2) / gamma)
        expected.append((w * offs**2).sum() / w.sum())
    np.testing.assert_allclose(geom.kernel_variance(), expected, rtol=1e-13)


def test_kernel_variance_limits():
    grid = Grid.regular(64, 2)
    dx = grid.spacing[0]
    # gamma >> dx^2 (and << box): the continuous Gaussian variance gamma/2.  Poisson
    # summation: relative error ~ 2 exp(-pi^2 gamma / dx^2) = 2e-17 for gamma = 4 dx^2.
    gamma = 4 * dx**2
    np.testing.assert_allclose(GridGeometry(grid, gamma).kernel_variance(), [gamma / 2] * 2, rtol=1e-12)
    # sub-pixel kernel: only the nearest neighbours count, variance ~ 2 dx^2 e^{-dx^2/gamma}
    gamma = dx**2 / 4
    e1, e2 = np.exp(-4.0), np.exp(-16.0)
    expected = dx**2 * (2 * e1 + 8 * e2) / (1 + 2 * e1 + 2 * e2)  # up to e^{-36} terms
    np.testing.assert_allclose(GridGeometry(grid, gamma).kernel_variance(), [expected] * 2, rtol=1e-12)
    assert expected < 0.5 * gamma / 2  # well below the continuum value


# ------------------------------------------------------------------------------ GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_apply_kernel_cuda_float32():
    cpu = Grid((40, 56), (0.0, -1.0), (1.0, 1.0), torch.float64)
    gamma = 4 * max(cpu.spacing) ** 2
    gpu = cpu.to(dtype=torch.float32, device="cuda")
    b = torch.rand(cpu.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected = GridGeometry(cpu, gamma).apply_kernel(b)
    got = GridGeometry(gpu, gamma).apply_kernel(b.to(torch.float32).cuda())
    assert got.dtype == torch.float32 and got.is_cuda
    torch.testing.assert_close(got.cpu().double(), expected, rtol=1e-5, atol=1e-6)
    lse = GridGeometry(gpu, gamma).apply_lse_kernel(torch.log(b).to(torch.float32).cuda())
    torch.testing.assert_close(lse.cpu().double(), torch.log(expected), rtol=1e-5, atol=1e-5)
