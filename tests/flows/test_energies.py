"""Energies (wgf_cli.flows.energies) and potentials: proximal maps are exact minimisers,
first variations are gradients of the values, the FFT convolution is the direct sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wgf_cli.flows.energies import (
    Aggregation,
    Crowd,
    FokkerPlanck,
    Heat,
    PorousMedium,
    exit_distance,
)
from wgf_cli.flows.potentials import (
    DoubleWellPotential,
    ExprPotential,
    QuadraticPotential,
    RadialKernel,
    make_potential,
)
from wgf_cli.ot.grid import Grid

DT = torch.float64
A = [[4.0, 1.0], [1.0, 3.0]]


@pytest.fixture
def grid():
    return Grid((16, 20), (0.0, -0.5), (1.0, 1.0))


def gen(seed):
    return torch.Generator().manual_seed(seed)


def random_log_p(shape, seed, lo=math.log(1e-12), hi=0.0):
    """log p uniform in [lo, hi] (p from 1e-12 to 1 by default)."""
    return lo + (hi - lo) * torch.rand(shape, generator=gen(seed), dtype=DT)


def random_measure(shape, seed):
    p = torch.rand(shape, generator=gen(seed), dtype=DT) + 0.05
    return p / p.sum()


SIGMAS = [1e-3, 0.37, 5.0, 300.0]


def direct_convolution(grid, kernel, p):
    """(W * p)_i = sum_j W(x_i - x_j) p_j by an O(N^2) float64 NumPy sum."""
    pts = grid.points().numpy()
    r = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    w = kernel.radial(torch.as_tensor(r)).numpy()
    return (w @ p.numpy().reshape(-1)).reshape(grid.shape)


# ------------------------------------------------------------- prox: optimality conditions
# r = prox(p) minimises  sigma F(r) + sum r log(r/p) - r, so (elementwise, F separable)
#     sigma dF/dr_i + log r_i - log p_i = 0,
# with the derivative dF/dr written out here from the definition of each energy.
def entropy_grad(r, v, d):
    return d * (torch.log(r / v) + 1.0)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_prox_heat_optimality(grid, sigma):
    energy = Heat(grid, 0.1)
    log_p = random_log_p(grid.shape, 0)
    r = torch.exp(energy.prox_log(log_p, sigma))
    res = sigma * entropy_grad(r, grid.cell_volume, 0.1) + torch.log(r) - log_p
    torch.testing.assert_close(res, torch.zeros_like(res), rtol=0, atol=1e-10)
    # the prox uses prox_diffusion (lowered by debiasing), not diffusion
    energy.prox_diffusion = 0.03
    r = torch.exp(energy.prox_log(log_p, sigma))
    res = sigma * entropy_grad(r, grid.cell_volume, 0.03) + torch.log(r) - log_p
    torch.testing.assert_close(res, torch.zeros_like(res), rtol=0, atol=1e-10)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_prox_fokker_planck_optimality(grid, sigma):
    energy = FokkerPlanck(grid, QuadraticPotential([0.5, 0.2], A, 2), 0.05)
    log_p = random_log_p(grid.shape, 1)
    r = torch.exp(energy.prox_log(log_p, sigma))
    x, y = grid.mesh()
    dx, dy = x - 0.5, y - 0.2
    V = 0.5 * (4 * dx * dx + 2 * dx * dy + 3 * dy * dy)
    res = sigma * (entropy_grad(r, grid.cell_volume, 0.05) + V) + torch.log(r) - log_p
    torch.testing.assert_close(res, torch.zeros_like(res), rtol=0, atol=1e-10)


@pytest.mark.parametrize("m", [2.0, 3.0, 1.5])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_prox_porous_medium_optimality(grid, m, sigma):
    energy = PorousMedium(grid, m)
    v = grid.cell_volume
    log_p = random_log_p(grid.shape, 2)
    log_p.reshape(-1)[:2] = torch.tensor([math.log(1e-12), 0.0], dtype=DT)  # both ends
    log_r = energy.prox_log(log_p, sigma)
    assert torch.isfinite(log_r).all()
    # the prox of an increasing F only removes mass (up to rounding of the Newton solve)
    assert (log_r <= log_p + 1e-14 * (1.0 + log_p.abs())).all()
    # sigma m/(m-1) (r/v)^(m-1) + log r - log p = 0; the terms reach ~1e8 for m = 3, so the
    # residual is judged relative to the size of the terms it balances
    term = sigma * m / (m - 1) * torch.exp((m - 1) * (log_r - math.log(v)))
    res = term + log_r - log_p
    scale = 1.0 + term + log_p.abs()
    torch.testing.assert_close(res / scale, torch.zeros_like(res), rtol=0, atol=1e-13)
    torch.testing.assert_close(res, torch.zeros_like(res), rtol=0, atol=1e-10)


def test_prox_porous_medium_extreme_inputs(grid):
    """-inf (empty cells) stays -inf; very large and very small p converge too."""
    energy = PorousMedium(grid, 2.0)
    log_p = torch.linspace(-700.0, 30.0, grid.size, dtype=DT).reshape(grid.shape)
    log_p.reshape(-1)[::7] = float("-inf")
    sigma = 0.5
    log_r = energy.prox_log(log_p, sigma)
    empty = torch.isneginf(log_p)
    assert torch.isneginf(log_r[empty]).all()
    lr, lp = log_r[~empty], log_p[~empty]
    term = sigma * 2.0 * torch.exp(lr - math.log(grid.cell_volume))
    res = term + lr - lp
    torch.testing.assert_close(res / (1.0 + term + lp.abs()), torch.zeros_like(res), rtol=0,
                               atol=1e-13)


@pytest.mark.parametrize("diffusion", [0.0, 0.02])
@pytest.mark.parametrize("sigma", [0.37, 5.0])
def test_prox_crowd_optimality_with_active_cap(grid, diffusion, sigma):
    """KKT of min sigma F(r) + KL(r|p) s.t. r <= kappa v: stationary below the cap; at the
    cap the unconstrained derivative is <= 0 (the objective still decreases there)."""
    v = grid.cell_volume
    V = exit_distance(grid, [0.9, 0.9], [1.0, 1.0])
    kappa = 2.0
    energy = Crowd(grid, V, kappa, diffusion)
    log_p = random_log_p(grid.shape, 3, lo=math.log(1e-8), hi=math.log(10 * kappa * v))
    log_r = energy.prox_log(log_p, sigma)
    cap = math.log(kappa * v)
    assert (log_r <= cap).all()
    at_cap = log_r == cap
    assert at_cap.any() and (~at_cap).any(), "the test needs both active and inactive cells"
    r = torch.exp(log_r)
    res = sigma * (V + entropy_grad(r, v, diffusion)) + log_r - log_p
    torch.testing.assert_close(res[~at_cap], torch.zeros_like(res[~at_cap]), rtol=0, atol=1e-10)
    assert (res[at_cap] <= 1e-10).all()
    # at the cap the unconstrained minimiser lies above the cap (and only there)
    free = energy._entropy_prox(log_p, sigma, V)
    assert (free[at_cap] >= cap).all() and (free[~at_cap] < cap).all()


@pytest.mark.parametrize("diffusion", [0.0, 0.03])
@pytest.mark.parametrize("sigma", [0.37, 5.0])
def test_prox_aggregation_optimality(diffusion, sigma):
    grid = Grid((12, 10), (0.0, 0.0), (1.0, 0.8))
    kernel = RadialKernel("power", 2.0, 1.0, strength=1.5)
    energy = Aggregation(grid, kernel, diffusion)
    p0 = random_measure(grid.shape, 4)
    energy.begin_step(p0)  # linearisation point: potential W * p0
    phi = torch.as_tensor(direct_convolution(grid, kernel, p0))
    log_p = random_log_p(grid.shape, 5)
    log_r = energy.prox_log(log_p, sigma)
    r = torch.exp(log_r)
    res = sigma * (phi + entropy_grad(r, grid.cell_volume, diffusion)) + log_r - log_p
    torch.testing.assert_close(res, torch.zeros_like(res), rtol=0, atol=1e-10)


def test_prox_zero_mass_stays_zero(grid):
    V = exit_distance(grid, [0.9, 0.9], [1.0, 1.0])
    log_p = random_log_p(grid.shape, 6)
    log_p[0, :] = float("-inf")
    energies = [
        Heat(grid, 0.1),
        FokkerPlanck(grid, QuadraticPotential([0.5, 0.2], A, 2), 0.05),
        PorousMedium(grid, 2.0),
        Crowd(grid, V, 2.0, 0.01),
        Aggregation(grid, RadialKernel(), 0.01),
    ]
    for e in energies:
        out = e.prox_log(log_p, 0.7)
        assert torch.isneginf(out[0, :]).all(), e.name
        assert torch.isfinite(out[1:, :]).all(), e.name


# ------------------------------------------------ values and first variations (autograd)
def formula_values(name, grid, p, extra):
    """Each energy written out from its definition, differentiable in p (float64)."""
    v = grid.cell_volume
    if name == "heat":
        return 0.1 * (p * torch.log(p / v)).sum()
    if name == "fokker_planck":
        return 0.05 * (p * torch.log(p / v)).sum() + (extra * p).sum()
    if name.startswith("porous"):
        m = float(name.split("_")[1])
        return (v * (p / v) ** m).sum() / (m - 1)
    if name == "crowd":
        return (extra * p).sum() + 0.02 * (p * torch.log(p / v)).sum()
    if name == "aggregation":
        W = torch.as_tensor(extra)  # dense N x N matrix W(x_i - x_j)
        flat = p.reshape(-1)
        return 0.5 * flat @ W @ flat + 0.01 * (p * torch.log(p / v)).sum()
    raise AssertionError(name)


def build(name, grid):
    """(energy, extra data for formula_values)."""
    if name == "heat":
        return Heat(grid, 0.1), None
    if name == "fokker_planck":
        e = FokkerPlanck(grid, QuadraticPotential([0.5, 0.2], A, 2), 0.05)
        x, y = grid.mesh()
        dx, dy = x - 0.5, y - 0.2
        return e, 0.5 * (4 * dx * dx + 2 * dx * dy + 3 * dy * dy)
    if name.startswith("porous"):
        return PorousMedium(grid, float(name.split("_")[1])), None
    if name == "crowd":
        V = exit_distance(grid, [0.9, 0.9], [1.0, 1.0])
        return Crowd(grid, V, 5.0, 0.02), V
    if name == "aggregation":
        kernel = RadialKernel("power", 2.0, 1.0)
        pts = grid.points().numpy()
        r = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
        return Aggregation(grid, kernel, 0.01), kernel.radial(torch.as_tensor(r)).numpy()
    raise AssertionError(name)


NAMES = ["heat", "fokker_planck", "porous_2", "porous_3", "crowd", "aggregation"]


@pytest.mark.parametrize("name", NAMES)
def test_value_and_first_variation_match_autograd(grid, name):
    energy, extra = build(name, grid)
    p = random_measure(grid.shape, 7).requires_grad_(True)
    val = formula_values(name, grid, p, extra)
    (grad,) = torch.autograd.grad(val, p)
    p = p.detach()
    np.testing.assert_allclose(energy.value(p), float(val.detach()), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sum(energy.parts(p).values()), energy.value(p), rtol=1e-15)
    torch.testing.assert_close(energy.first_variation(p), grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_first_variation_is_derivative_of_value(grid, name):
    """Directly on energy.value: central difference along a mass-preserving direction."""
    energy, _ = build(name, grid)
    p = random_measure(grid.shape, 8)
    d = torch.randn(grid.shape, generator=gen(9), dtype=DT) * p
    d = d - p * d.sum() / p.sum()
    eps = 1e-5
    fd = (energy.value(p + eps * d) - energy.value(p - eps * d)) / (2 * eps)
    an = float((energy.first_variation(p) * d).sum())
    # central difference: O(eps^2) truncation, O(1e-16 |F| / eps) rounding
    np.testing.assert_allclose(fd, an, rtol=1e-6, atol=1e-9)


def test_entropy_value_with_empty_cells(grid):
    """0 log 0 = 0: empty cells contribute nothing."""
    p = random_measure(grid.shape, 10)
    p[:4] = 0.0
    p = p / p.sum()
    v = grid.cell_volume
    q = p[p > 0]
    np.testing.assert_allclose(Heat(grid, 0.1).value(p), 0.1 * float((q * torch.log(q / v)).sum()),
                               rtol=1e-13)


# ------------------------------------------------------------------ FFT convolution
@pytest.mark.parametrize(
    "shape, lo, hi",
    [((13,), (-1.0,), (2.0,)), ((9, 14), (0.0, -0.5), (1.0, 1.5)), ((4, 5, 6), (0, 0, 0), (1, 2, 1))],
    ids=["1d", "2d", "3d"],
)
@pytest.mark.parametrize(
    "kernel",
    [RadialKernel("power", 2.0, 1.0, 1.3), RadialKernel("expr", expr="exp(-r**2 / 0.1)")],
    ids=["power", "expr"],
)
def test_convolve_equals_direct_sum(shape, lo, hi, kernel):
    grid = Grid(shape, tuple(map(float, lo)), tuple(map(float, hi)))
    energy = Aggregation(grid, kernel)
    p = random_measure(shape, 11)
    ref = direct_convolution(grid, kernel, p)
    np.testing.assert_allclose(energy.convolve(p).numpy(), ref, rtol=1e-12, atol=1e-12)
    energy.begin_step(p)
    np.testing.assert_allclose(energy._phi.numpy(), ref, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ potentials, exits
def test_exit_distance_matches_numpy():
    grid = Grid((10, 12), (0.0, 0.0), (1.0, 2.0))
    lo, hi = np.array([0.8, 0.5]), np.array([1.0, 0.7])
    pts = grid.points().numpy()
    gap = np.maximum(lo - pts, 0.0) + np.maximum(pts - hi, 0.0)
    ref = np.sqrt((gap**2).sum(-1)).reshape(grid.shape)
    out = exit_distance(grid, lo.tolist(), hi.tolist())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-14, atol=0)
    assert (out == 0).any()  # some cells are in the exit


def test_quadratic_potential_and_gradient():
    pot = QuadraticPotential([0.5, 0.2], A, 2)
    x = torch.rand(50, 2, generator=gen(12), dtype=DT)
    An = np.array(A)
    dev = x.numpy() - np.array([0.5, 0.2])
    np.testing.assert_allclose(pot([x[:, 0], x[:, 1]]).numpy(),
                               0.5 * np.einsum("ni,ij,nj->n", dev, An, dev), rtol=1e-14)
    np.testing.assert_allclose(pot.grad(x).numpy(), dev @ An.T, rtol=1e-13, atol=1e-15)
    iso = QuadraticPotential([0.0, 0.0, 0.0], 2.0, 3)
    y = torch.rand(5, 3, generator=gen(13), dtype=DT)
    np.testing.assert_allclose(iso.grad(y).numpy(), 2.0 * y.numpy(), rtol=1e-14)
    with pytest.raises(ValueError):
        QuadraticPotential([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], 2)  # indefinite
    with pytest.raises(ValueError):
        QuadraticPotential([0.0], A, 2)


def test_double_well_and_expr_potentials():
    x = torch.rand(40, 2, generator=gen(14), dtype=DT)
    dw = DoubleWellPotential([0.5, 0.5], 0.2, 1.5, 3.0)
    xs = x.numpy()
    u = (xs[:, 0] - 0.5) ** 2 / 0.04 - 1.0
    np.testing.assert_allclose(dw([x[:, 0], x[:, 1]]).numpy(),
                               1.5 * u**2 + 1.5 * (xs[:, 1] - 0.5) ** 2, rtol=1e-13)
    grad = np.stack([1.5 * 2 * u * 2 * (xs[:, 0] - 0.5) / 0.04, 3.0 * (xs[:, 1] - 0.5)], -1)
    np.testing.assert_allclose(dw.grad(x).numpy(), grad, rtol=1e-12, atol=1e-13)
    ex = make_potential("expr", 2, expr="2*(x-0.5)**2 + sin(6*y)")
    assert isinstance(ex, ExprPotential)
    np.testing.assert_allclose(
        ex.grad(x).numpy(), np.stack([4 * (xs[:, 0] - 0.5), 6 * np.cos(6 * xs[:, 1])], -1),
        rtol=1e-13, atol=1e-14,
    )
    with pytest.raises(ValueError):
        ExprPotential("__import__('os')", 2)


def test_radial_kernel_gradient():
    k = RadialKernel("power", 2.0, 1.0, strength=1.3)
    diff = torch.randn(30, 2, generator=gen(15), dtype=DT)
    diff[0] = 0.0
    r = diff.norm(dim=-1, keepdim=True).numpy()
    d = diff.numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = 1.3 * (d - d / r)  # grad(r^2/2 - r) = x - x/|x|
    ref[0] = 0.0
    np.testing.assert_allclose(k.grad(diff).numpy(), ref, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError):
        RadialKernel("power", 1.0, 2.0)


def test_energy_validation(grid):
    with pytest.raises(ValueError):
        PorousMedium(grid, 1.0)
    with pytest.raises(ValueError):
        Crowd(grid, torch.zeros(grid.shape, dtype=DT), 0.0)


@pytest.mark.parametrize("m", [1.5, 2.0, 3.0])
def test_porous_prox_warm_start_gives_the_cold_answer(m):
    """The Newton warm start (previous root) changes the iterations, not the root."""
    g = Grid.regular(24, 2)
    gen = torch.Generator().manual_seed(3)
    lp_a = torch.log(torch.rand(g.shape, generator=gen, dtype=DT) * 1e-2 + 1e-12)
    lp_b = lp_a + 0.3 * torch.randn(g.shape, generator=gen, dtype=DT)  # far and near moves
    warm = PorousMedium(g, m)
    warm.prox_log(lp_a, 2.5)
    torch.testing.assert_close(warm.prox_log(lp_b, 2.5), PorousMedium(g, m).prox_log(lp_b, 2.5),
                               rtol=1e-12, atol=1e-12)


def test_power_kernel_length_scale():
    """w(r) = s ((r/l)^a/a - (r/l)^b/b): minimum at r = l, value s (1/a - 1/b) there."""
    k = RadialKernel("power", 2.0, 1.0, 0.3, length=0.15)
    r = torch.linspace(0.0, 1.0, 101, dtype=DT)
    u = r.numpy() / 0.15
    np.testing.assert_allclose(k.radial(r).numpy(), 0.3 * (u**2 / 2 - u), rtol=1e-14, atol=1e-15)
    x = torch.tensor([[0.15, 0.0], [0.0, 0.3]], dtype=DT)
    # grad W(x) = w'(|x|) x/|x|, w'(r) = s (r/l - 1)/l: zero at r = l, 0.3 * 1/0.15 * (0, 1) at 2l
    torch.testing.assert_close(k.grad(x), torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=DT),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="length"):
        RadialKernel("power", 2.0, 1.0, 1.0, length=0.0)
