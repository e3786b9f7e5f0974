"""Lagrangian cross-check: interacting Langevin particles against a grid density.

A Wasserstein gradient flow of ``F = D int rho log rho + G(rho)`` is the law of the
McKean-Vlasov diffusion

    dX = -grad(delta G / delta rho)(X) dt + sqrt(2 D) dB,

so a cloud of particles simulated with that SDE and a JKO density computed on a grid must
describe the same measure, up to the sampling error of a finite cloud.  This module gives
the pieces of that check:

* :func:`sample_grid_measure` draws i.i.d. particles from a grid measure (cell by the
  masses, then uniform inside the cell), to start both computations from the same law;
* :func:`simulate_langevin` integrates the SDE by Euler-Maruyama with reflecting walls at
  the grid box (the Lagrangian counterpart of the no-flux grid);
* :func:`particle_grid_distance` measures a cloud against a grid measure (sliced 2-Wasserstein
  in 2-D and 3-D, exact 2-Wasserstein in 1-D, both from :mod:`wgf_cli.ot.pointcloud`);
* :func:`sampling_error` gives the null distribution of that distance: the distance that
  ``count`` exact i.i.d. samples from the grid measure itself show;
* :func:`agrees` applies the rule.

**Agreement rule.**  A particle cloud of ``count`` particles *agrees with the grid
density within its sampling error* when its distance to the density is at most
``mean + 3 std`` of the null distribution of :func:`sampling_error` (same ``count``, same
projections).  ``mean + 3 std`` is used rather than the empirical 95% quantile (also
reported, as ``q95``) because with a few tens of repeats the empirical q95 is a noisy
order statistic, and because a 5% false-alarm rate is too high for a check that is meant
to fail only on real disagreement.  The rule is exact only in spirit: the cloud also
carries the O(dt) Euler-Maruyama bias, and the grid density its own discretisation error;
both add to the distance, so agreement means that they are below the sampling error.

Particles are i.i.d. only for energies without interaction.  For the aggregation energy the
particles interact through the empirical measure and are exchangeable rather than
independent; the propagation of chaos error is O(1/sqrt(N)), the same order as the sampling
error, so the rule is then a consistency check rather than a calibrated test.

Everything here is plain PyTorch (and POT/NumPy for the distances), with explicit
``torch.Generator`` arguments for all randomness.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from wgf_cli.flows.energies import Energy
from wgf_cli.ot.grid import Grid
from wgf_cli.ot.pointcloud import pot_directions, sliced_w2, w2_1d

Tensor = torch.Tensor



# -- sampling ------------------------------------------------------------------------------
def sample_grid_measure(grid: Grid, p: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` i.i.d. particles from the grid measure ``p`` (masses per cell).

    A cell is drawn with probability ``p / p.sum()`` (``torch.multinomial`` with
    ``generator``), then the particle is placed uniformly inside that cell.  The samples
    thus follow the piecewise-constant density ``p / cell_volume``, whose mean is that of
    :func:`~wgf_cli.flows.references.moments` and whose covariance is that of ``moments``
    plus ``diag(dx_k^2 / 12)``.

    Args:
        grid: the grid of ``p``.
        p: non-negative masses of shape ``grid.shape`` (any positive total).
        count: number of particles.
        generator: random generator on ``p``'s device.

    Returns:
        ``(count, grid.dim)`` tensor of positions, in ``grid.dtype``, inside the box.
    """
    if tuple(p.shape) != tuple(grid.shape):
        raise ValueError(f"p has shape {tuple(p.shape)}, grid is {grid.shape}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    w = p.reshape(-1).to(torch.float64)
    if bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ValueError("p must be non-negative with positive total mass")
    idx = torch.multinomial(w, count, replacement=True, generator=generator)
    centres = grid.points()[idx.to(grid.device)]
    u = torch.rand(centres.shape, generator=generator, dtype=centres.dtype, device=w.device)
    spacing = torch.tensor(grid.spacing, dtype=centres.dtype, device=centres.device)
    x = centres + (u.to(centres.device) - 0.5) * spacing
    lo = torch.tensor(grid.lo, dtype=x.dtype, device=x.device)
    hi = torch.tensor(grid.hi, dtype=x.dtype, device=x.device)
    return torch.minimum(torch.maximum(x, lo), hi)


# -- Langevin dynamics ---------------------------------------------------------------------
@dataclass
class LangevinResult:
    """A simulated particle cloud.

    Attributes:
        x: final positions, ``(N, d)``.
        snapshots: ``(t, positions)`` at the requested times (rounded to the nearest step,
            ``t`` is the time of that step), in increasing time.
        steps: number of Euler-Maruyama steps taken.
        dt: time step.
    """

    x: Tensor
    snapshots: list[tuple[float, Tensor]] = field(default_factory=list)
    steps: int = 0
    dt: float = 0.0

    @property
    def t(self) -> float:
        """Final time ``steps * dt``."""
        return self.steps * self.dt


def reflect_into_box(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Reflect the coordinates of ``x`` that left ``[lo, hi]`` back inside.

    Reflecting at ``lo`` and ``hi`` repeatedly until the point is inside is the same as
    folding ``x - lo`` into the triangle wave of period ``2 L`` (``L = hi - lo``); this is
    done in one shot, so arbitrarily large excursions need no loop.  Coordinates already
    inside are returned untouched; a final clamp absorbs round-off.
    """
    lo, hi = lo.expand_as(x), hi.expand_as(x)
    out = x.clone()
    outside = (x < lo) | (x > hi)
    if bool(outside.any()):  # usually a small fraction: fold only those coordinates
        xo, lo_o, hi_o = x[outside], lo[outside], hi[outside]
        length = hi_o - lo_o
        y = torch.remainder(xo - lo_o, 2.0 * length)
        y = torch.where(y > length, 2.0 * length - y, y)
        out[outside] = torch.minimum(torch.maximum(lo_o + y, lo_o), hi_o)
    return out


def simulate_langevin(
    energy: Energy,
    x0: Tensor,
    *,
    diffusion: float | None = None,
    dt: float,
    steps: int,
    generator: torch.Generator,
    snapshot_times: Sequence[float] = (),
    callback: Callable[[int, float, Tensor], None] | None = None,
) -> LangevinResult:
    """Euler-Maruyama for ``dX = drift(X) dt + sqrt(2 D) dB`` in the box of ``energy.grid``.

    ``drift = energy.particle_drift(X)`` (``-grad V`` for Fokker-Planck, ``-grad W * mu_N``
    for aggregation, 0 for heat).  One step is

        X <- reflect(X + drift(X) dt + sqrt(2 D dt) Z),   Z ~ N(0, I) from ``generator``,

    where ``reflect`` mirrors coordinates that left ``[grid.lo, grid.hi]`` back inside
    (repeatedly if needed, see :func:`reflect_into_box`): reflecting walls, the particle
    counterpart of the no-flux boundary of the grid flows.  The particle count, hence the
    mass, is conserved.  The scheme has weak order 1 in ``dt`` away from the walls.

    The aggregation drift is O(N^2) in work; memory is kept bounded by evaluating it in
    row blocks.  N of a few thousand is the intended size.

    Args:
        energy: an energy with ``supports_particles`` (bound to its grid).
        x0: initial positions ``(N, grid.dim)``; not modified.
        diffusion: ``D``; defaults to ``energy.diffusion`` (the physical coefficient, not
            the JKO solver's debiased ``prox_diffusion``).
        dt: time step (> 0).
        steps: number of steps (>= 0); the final time is ``steps * dt``.
        generator: random generator on ``x0``'s device.
        snapshot_times: times at which to keep a copy of the positions; each is rounded to
            the nearest step (one snapshot per distinct step).  Must lie in
            ``[0, steps * dt]`` up to half a step.
        callback: called as ``callback(k, t, x)`` after every step ``k = 1..steps``.

    Returns:
        :class:`LangevinResult`.

    Raises:
        ValueError: if the energy has no particle form, or on bad arguments.
    """
    if not getattr(energy, "supports_particles", False):
        raise ValueError(f"energy {energy.name!r} has no particle (Langevin) form")
    grid = energy.grid
    if x0.ndim != 2 or x0.shape[1] != grid.dim:
        raise ValueError(f"x0 must have shape (N, {grid.dim}), got {tuple(x0.shape)}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    steps = int(steps)
    D = energy.diffusion if diffusion is None else float(diffusion)
    if not D >= 0:
        raise ValueError(f"diffusion must be >= 0, got {D}")

    snap_steps: set[int] = set()
    for t in snapshot_times:
        k = int(round(float(t) / dt))
        if k < 0 or k > steps:
            raise ValueError(f"snapshot time {t} is outside [0, {steps * dt}]")
        snap_steps.add(k)

    lo = torch.tensor(grid.lo, dtype=x0.dtype, device=x0.device)
    hi = torch.tensor(grid.hi, dtype=x0.dtype, device=x0.device)
    noise_scale = math.sqrt(2.0 * D * dt)

    x = x0.detach().clone()
    result = LangevinResult(x=x, steps=steps, dt=float(dt))
    if 0 in snap_steps:
        result.snapshots.append((0.0, x.clone()))
    for k in range(1, steps + 1):
        step = energy.particle_drift(x) * dt
        if noise_scale > 0:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            step = step + noise_scale * z
        x = reflect_into_box(x + step, lo, hi)
        if k in snap_steps:
            result.snapshots.append((k * dt, x.clone()))
        if callback is not None:
            callback(k, k * dt, x)
    result.x = x
    return result


# -- distances -----------------------------------------------------------------------------
def _grid_support(grid: Grid, p: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres carrying mass and their normalised weights, float64 NumPy."""
    if tuple(p.shape) != tuple(grid.shape):
        raise ValueError(f"p has shape {tuple(p.shape)}, grid is {grid.shape}")
    w = p.detach().reshape(-1).to("cpu", torch.float64).numpy()
    pts = grid.points().detach().to("cpu", torch.float64).numpy()
    keep = w > 0
    if not keep.any():
        raise ValueError("p has no mass")
    w = w[keep]
    return pts[keep], w / w.sum()


def particle_grid_distance(
    grid: Grid, p: Tensor, x: Tensor | np.ndarray, *, n_projections: int = 64, seed: int = 0
) -> float:
    """Distance between the particle cloud ``x`` (uniform weights) and the grid measure ``p``.

    The grid measure is the discrete measure on the cell centres with weights ``p / p.sum()``
    (cells with no mass dropped).  In 1-D this is the exact 2-Wasserstein distance (the
    quantile formula, :func:`~wgf_cli.ot.pointcloud.w2_1d`); in 2-D and 3-D the sliced
    2-Wasserstein distance ``sqrt(mean_theta W2^2(theta_# mu, theta_# nu))``
    (:func:`~wgf_cli.ot.pointcloud.sliced_w2`) over ``n_projections`` random directions drawn
    as POT's ``ot.sliced_wasserstein_distance`` draws them from ``seed``
    (:func:`~wgf_cli.ot.pointcloud.pot_directions`), computed in float64.  With a fixed
    ``seed`` the directions are fixed, so distances computed with the same ``seed`` and
    ``n_projections`` are comparable (as :func:`sampling_error` needs).
    """
    X_t, b = _grid_support(grid, p)
    X_s = torch.as_tensor(x).detach().to("cpu", torch.float64).numpy()
    if X_s.ndim != 2 or X_s.shape[1] != grid.dim or X_s.shape[0] < 1:
        raise ValueError(f"x must have shape (N, {grid.dim}), got {tuple(X_s.shape)}")
    if grid.dim == 1:
        return w2_1d(X_s[:, 0], X_t[:, 0], None, b)
    return sliced_w2(X_s, X_t, None, b, projections=pot_directions(grid.dim, n_projections, seed))


@dataclass
class SamplingError:
    """Null distribution of :func:`particle_grid_distance` for ``count`` exact samples.

    Attributes:
        mean, std: mean and sample standard deviation (ddof=1) of the distances.
        q95: empirical 95% quantile (linear interpolation).
        count: particles per cloud.
        distances: the ``repeats`` distances themselves.
    """

    mean: float
    std: float
    q95: float
    count: int
    distances: list[float] = field(default_factory=list)

    @property
    def threshold(self) -> float:
        """``mean + 3 std``: the largest distance that :func:`agrees` accepts."""
        return self.mean + 3.0 * self.std


def sampling_error(
    grid: Grid,
    p: Tensor,
    count: int,
    *,
    repeats: int = 20,
    generator: torch.Generator,
    n_projections: int = 64,
    seed: int = 0,
) -> SamplingError:
    """Distance between ``count`` i.i.d. samples of ``p`` and ``p`` itself, ``repeats`` times.

    This is the distance that an *exact* sampler of ``p`` shows at this cloud size: the
    sampling error of a cloud of ``count`` particles, against which a Langevin cloud is
    judged (see :func:`agrees`).  Use the same ``n_projections`` and ``seed`` as for the
    distance being judged.
    """
    if repeats < 2:
        raise ValueError(f"repeats must be >= 2, got {repeats}")
    d = [
        particle_grid_distance(
            grid, p, sample_grid_measure(grid, p, count, generator),
            n_projections=n_projections, seed=seed,
        )
        for _ in range(repeats)
    ]
    arr = np.asarray(d)
    return SamplingError(
        mean=float(arr.mean()),
        std=float(arr.std(ddof=1)),
        q95=float(np.quantile(arr, 0.95)),
        count=int(count),
        distances=d,
    )


def agrees(distance: float, err: SamplingError) -> bool:
    """Whether a cloud at ``distance`` from the density agrees with it within sampling error.

    Rule: ``distance <= err.mean + 3 * err.std`` (:attr:`SamplingError.threshold`), with
    ``err`` from :func:`sampling_error` at the same cloud size, ``n_projections`` and
    ``seed``.  See the module docstring for why ``mean + 3 std`` and not ``q95``.
    """
    return bool(distance <= err.threshold)


@dataclass
class CrossCheck:
    """A Langevin cloud against a grid density (:func:`cross_check`).

    Attributes:
        x0: the particles' start, drawn from the initial density ``(N, dim)``.
        x: the particles at the final time ``(N, dim)``.
        distance: :func:`particle_grid_distance` of ``x`` to the final density.
        error: the sampling error of a cloud of ``N`` particles (:func:`sampling_error`).
    """

    x0: Tensor
    x: Tensor
    distance: float
    error: SamplingError

    @property
    def agrees(self) -> bool:
        """Whether the cloud agrees with the density within its sampling error (:func:`agrees`)."""
        return agrees(self.distance, self.error)


def cross_check(
    energy: Energy,
    rho0: Tensor,
    rho_final: Tensor,
    t_final: float,
    h: float,
    *,
    particles: int,
    substeps: int,
    repeats: int,
    projections: int,
    seed: int,
) -> CrossCheck:
    """Simulate Langevin particles from ``rho0`` to ``t_final`` and judge them against ``rho_final``.

    One ``torch.Generator`` seeded with ``seed`` draws, in this order, the ``particles``
    starting points from ``rho0``, the Brownian increments and the clouds of the sampling
    error; the distances use ``projections`` directions drawn with ``seed``.

    Args:
        energy: an energy with ``supports_particles``, bound to its grid (float64 on the CPU
            for reproducible particles).
        rho0: the initial grid measure (cell masses) on ``energy.grid``.
        rho_final: the grid measure the flow reached at ``t_final``.
        t_final: the final time.
        h: the flow's time step; the particles take ``substeps`` Euler-Maruyama steps per ``h``
            (``round(t_final / (h / substeps))`` in all).
        particles: cloud size ``N``.
        substeps: Euler-Maruyama steps per flow step.
        repeats: exact clouds in the sampling error.
        projections: directions of the sliced distance (2-D and 3-D).
        seed: seed of the generator and of the projections.

    Returns:
        The clouds, their distance to ``rho_final`` and the sampling error it is judged by.
    """
    grid = energy.grid
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x0 = sample_grid_measure(grid, rho0.to("cpu", torch.float64), particles, gen)
    dt = h / substeps
    res = simulate_langevin(energy, x0, diffusion=energy.diffusion, dt=dt, steps=round(t_final / dt),
                            generator=gen)
    p = rho_final.to("cpu", torch.float64)
    dist = particle_grid_distance(grid, p, res.x, n_projections=projections, seed=seed)
    err = sampling_error(grid, p, particles, repeats=repeats, generator=gen, n_projections=projections, seed=seed)
    return CrossCheck(x0, res.x, dist, err)
