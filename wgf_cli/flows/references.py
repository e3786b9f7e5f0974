"""Closed-form solutions used as references by runs and tests.

All functions return *masses per cell* on a grid (density at the cell centre times the
cell volume) unless they say otherwise, so they compare directly with JKO iterates.
:func:`closed_form` picks the one that solves a given energy and initial measure (the
``energy`` / ``initial`` parameter mappings of ``wgf jko``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from wgf_cli.ot.grid import Grid

Tensor = torch.Tensor


def gaussian_density(grid: Grid, mean: Sequence[float], cov: Tensor) -> Tensor:
    """Density of N(mean, cov) at the cell centres (not renormalised)."""
    cov = torch.as_tensor(cov, dtype=grid.dtype, device=grid.device)
    d = grid.dim
    diff = torch.stack([x - m for x, m in zip(grid.mesh(), mean, strict=True)], dim=-1)
    prec = torch.linalg.inv(cov)
    quad = torch.einsum("...i,ij,...j->...", diff, prec, diff)
    norm = (2 * math.pi) ** (d / 2) * math.sqrt(float(torch.linalg.det(cov)))
    return torch.exp(-0.5 * quad) / norm


def heat_gaussian(grid: Grid, mean: Sequence[float], var0: float, diffusion: float, t: float,
                  images: int = 2) -> Tensor:
    """Heat flow ``d rho/dt = D Laplacian rho`` from N(mean, var0 I), with no-flux walls.

    The free-space solution is N(mean, (var0 + 2 D t) I); the walls of the box are taken
    into account by the method of images (``images`` reflections each way per axis), which
    is the exact Neumann solution for an isotropic Gaussian.
    """
    var = var0 + 2.0 * diffusion * t
    out = torch.ones(grid.shape, dtype=grid.dtype, device=grid.device)
    for k, (x, m, lo, hi) in enumerate(zip(grid.mesh(), mean, grid.lo, grid.hi, strict=True)):
        length = hi - lo
        acc = torch.zeros_like(x)
        for j in range(-images, images + 1):
            # images of m under reflections about lo and hi: 2 j L + m and 2 j L + 2 lo - m
            for c in (2 * j * length + m, 2 * j * length + 2 * lo - m):
                acc = acc + torch.exp(-((x - c) ** 2) / (2 * var))
        out = out * acc / math.sqrt(2 * math.pi * var)
        del k
    return out * grid.cell_volume


def ou_moments(mean0: Sequence[float], cov0, center: Sequence[float], matrix, diffusion: float,
               t: float) -> tuple[Tensor, Tensor]:
    """Mean and covariance at time t of ``dX = -A (X - c) dt + sqrt(2D) dB`` (Ornstein-Uhlenbeck).

    This is the Fokker-Planck flow of ``V(x) = 1/2 (x-c)^T A (x-c)``: mean
    ``c + e^{-At}(m0 - c)`` and covariance ``e^{-At} S0 e^{-At} + D A^{-1} (I - e^{-2At})``.
    """
    A = torch.as_tensor(matrix, dtype=torch.float64)
    d = A.shape[0]
    m0 = torch.as_tensor(mean0, dtype=torch.float64)
    c = torch.as_tensor(center, dtype=torch.float64)
    S0 = torch.as_tensor(cov0, dtype=torch.float64)
    E = torch.linalg.matrix_exp(-A * t)
    E2 = torch.linalg.matrix_exp(-2 * A * t)
    mean = c + E @ (m0 - c)
    cov = E @ S0 @ E.T + diffusion * torch.linalg.solve(A, torch.eye(d, dtype=torch.float64) - E2)
    return mean, 0.5 * (cov + cov.T)


def gibbs(V: Tensor, diffusion: float, mass: float = 1.0) -> Tensor:
    """Stationary state ``exp(-V/D) / Z`` of the Fokker-Planck flow, as masses on V's grid."""
    logw = -V / diffusion
    w = torch.exp(logw - logw.max())
    return mass * w / w.sum()


def barenblatt_constant(m: float, dim: int, mass: float) -> float:
    """The constant C of the Barenblatt profile of total mass ``mass``."""
    alpha = dim / (dim * (m - 1) + 2)
    k = alpha * (m - 1) / (2 * m * dim)
    p = 1.0 / (m - 1)
    # int_{R^d} (C - k |y|^2)_+^p dy = C^(p + d/2) (pi/k)^(d/2) Gamma(p+1) / Gamma(p+1+d/2)
    unit = (math.pi / k) ** (dim / 2) * math.exp(math.lgamma(p + 1) - math.lgamma(p + 1 + dim / 2))
    return (mass / unit) ** (1.0 / (p + dim / 2))


def barenblatt_density(xs: Sequence[Tensor], m: float, t: float, center: Sequence[float],
                       mass: float = 1.0) -> Tensor:
    """Barenblatt solution of ``d rho/dt = Laplacian(rho^m)`` at time t > 0 (density).

    The self-similar profile::

    U(t, x) = t^{-alpha} (C - k |x - x0|^2 t^{-2 beta})_+^{1/(m-1)},
    alpha = d / (d (m-1) + 2),  beta = alpha / d,  k = alpha (m-1) / (2 m d).
    """
    dim = len(xs)
    alpha = dim / (dim * (m - 1) + 2)
    beta = alpha / dim
    k = alpha * (m - 1) / (2 * m * dim)
    C = barenblatt_constant(m, dim, mass)
    r2 = sum((x - c) ** 2 for x, c in zip(xs, center, strict=True))
    base = torch.clamp_min(C - k * r2 * t ** (-2 * beta), 0.0)
    return t ** (-alpha) * base ** (1.0 / (m - 1))


def barenblatt(grid: Grid, m: float, t: float, center: Sequence[float], mass: float = 1.0) -> Tensor:
    """Barenblatt profile as masses per cell (density at the centres times the cell volume)."""
    return barenblatt_density(grid.mesh(), m, t, center, mass) * grid.cell_volume


def relative_l1(p: Tensor, ref: Tensor) -> float:
    """``sum |p - ref| / sum |ref|``."""
    return float((p - ref).abs().sum() / ref.abs().sum())


def moments(grid: Grid, p: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the grid measure ``p`` (float64)."""
    pts = grid.points().to(torch.float64)
    w = p.reshape(-1).to(torch.float64)
    w = w / w.sum()
    mean = w @ pts
    c = pts - mean
    return mean, (c * w[:, None]).T @ c


def grid_point(grid: Grid, value: Sequence[float] | None) -> list[float]:
    """``value`` as a list of floats, or the centre of the grid's box when ``None``."""
    if value is None:
        return [(lo + hi) / 2 for lo, hi in zip(grid.lo, grid.hi, strict=True)]
    return [float(v) for v in value]


@dataclass
class Reference:
    """A closed form ``rho(t)`` (masses on the grid) and its name.

    Attributes:
        name: what the closed form is (shown in summaries).
        at: ``t -> rho(t)``, masses per cell on the grid.
    """

    name: str
    at: Callable[[float], Tensor]


def closed_form(energy_spec: Mapping[str, Any], initial_spec: Mapping[str, Any], grid: Grid,
                energy, rho0: Tensor) -> Reference | None:
    """The exact solution of the flow of ``energy`` from ``rho0``, where one is known.

    Known: the heat flow of an isotropic Gaussian (:func:`heat_gaussian`), the Fokker-Planck
    flow of a Gaussian in a quadratic potential (Ornstein-Uhlenbeck, :func:`ou_moments`) and
    the porous medium from a Barenblatt profile of the same exponent (:func:`barenblatt`).

    Args:
        energy_spec: the energy's parameters (``name`` and those of
            :func:`~wgf_cli.flows.energies.build_energy`).
        initial_spec: the initial measure's parameters
            (:func:`~wgf_cli.flows.initial.build_initial`).
        grid: the grid.
        energy: the energy built from ``energy_spec``.
        rho0: the initial measure built from ``initial_spec``.

    Returns:
        The closed form, or ``None`` when none applies.
    """
    e, c = energy_spec, initial_spec
    iso_gauss = c["name"] == "gaussian" and isinstance(c["std"], int | float)
    if e["name"] == "heat" and iso_gauss:
        mean, var0 = grid_point(grid, c.get("mean")), float(c["std"]) ** 2
        return Reference("heat kernel (images at the walls)",
                         lambda t: heat_gaussian(grid, mean, var0, energy.diffusion, t))
    if (e["name"] == "fokker_planck" and e["potential"]["name"] == "quadratic"
            and c["name"] == "gaussian"):
        m0, S0 = moments(grid, rho0)
        pot = energy.potential

        def ou(t):
            mean, cov = ou_moments(m0, S0, pot.mean, pot.matrix, energy.diffusion, t)
            dens = gaussian_density(grid, mean.tolist(), cov.to(grid.dtype))
            return dens * grid.cell_volume

        return Reference("Ornstein-Uhlenbeck Gaussian", ou)
    if (e["name"] == "porous_medium" and c["name"] == "barenblatt"
            and math.isclose(float(c["m"]), float(e["m"]))):
        t0, centre = float(c["t0"]), grid_point(grid, c.get("center"))

        def baren(t):
            ref = barenblatt(grid, float(e["m"]), t0 + t, centre)
            return ref / ref.sum()

        return Reference("Barenblatt profile", baren)
    return None
