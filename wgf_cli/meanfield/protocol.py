"""The runs of the mean-field experiments: particle training and the grid flow, from configs.

:class:`ParticleConfig` and :class:`GridConfig` hold what builds a
:class:`~wgf_cli.meanfield.particles.ParticleTrainer` (:func:`make_trainer`) and a
:class:`~wgf_cli.meanfield.grid_flow.GridJKO` on its (w, b) grid (:func:`make_grid_flow`);
:func:`run_particles` and :func:`run_grid` run them over ``[0, T]`` and report through one
optional callback ``callback(event, info)``:

- ``("begin", {"phase", "total"})`` / ``("end", {"phase"})`` around a run of ``total`` steps;
- ``("advance", {"phase", **fields})`` after every step;
- ``("record", row)`` for every record (one row of the metrics table, in order).

:mod:`~wgf_cli.meanfield.compare` and :mod:`~wgf_cli.meanfield.width` build the studies of
several runs on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wgf_cli.meanfield.data import Dataset
from wgf_cli.meanfield.grid_flow import GridJKO, MeanFieldGrid
from wgf_cli.meanfield.network import init_particles
from wgf_cli.meanfield.particles import ParticleResult, ParticleTrainer

Tensor = torch.Tensor
#: ``callback(event, info)`` with ``event`` in ``begin | advance | end | record``
Callback = Callable[[str, dict[str, Any]], None]


@dataclass
class ParticleConfig:
    """The particle methods' hyper-parameters (``wprox_*``: the proximal step).

    Attributes:
        dt: mean-field time per ``gd`` / ``sgd`` step.
        seed: the run seed; the trainer's generator is seeded ``seed * 7919 + 17 + offset``.
        weight_decay: ``lam`` of the loss.
        train_alpha: also train the output weights.
        batch_size: the ``sgd`` minibatch.
        wprox_distance: ``emd | entropic | sliced``.
        wprox_tau: the proximal time step.
        wprox_inner_iters: inner gradient steps per proximal step.
        wprox_inner_lr: their step, in units of ``tau``.
        wprox_blur: the entropic blur.
        wprox_projections: the sliced distance's projections.
    """

    dt: float = 0.01
    seed: int = 0
    weight_decay: float = 0.0
    train_alpha: bool = False
    batch_size: int = 32
    wprox_distance: str = "emd"
    wprox_tau: float = 0.05
    wprox_inner_iters: int = 30
    wprox_inner_lr: float = 0.5
    wprox_blur: float = 0.05
    wprox_projections: int = 64


@dataclass
class GridConfig:
    """The entropic JKO flow on a ``grid_size^2`` grid of ``[-box, box]^2``.

    Attributes:
        grid_size: points per axis.
        box: half-width of the grid.
        h: the JKO time step.
        gamma_factor: the entropic ``gamma`` in units of the squared grid spacing.
        linearize: ``step | inner`` (see :class:`~wgf_cli.meanfield.grid_flow.GridJKO`).
        relax: the damping of the inner iterations, in (0, 1].
        tol: the inner tolerance.
        inner_max: the inner iteration cap.
        init: ``particles`` (the initial neurons on the grid) | ``gaussian``.
        init_std: the std of the ``gaussian`` start.
    """

    grid_size: int = 128
    box: float = 3.0
    h: float = 0.05
    gamma_factor: float = 1.0
    linearize: str = "step"
    relax: float = 1.0
    tol: float = 1e-6
    inner_max: int = 100
    init: str = "particles"
    init_std: float = 1.0


def init_neurons(m: int, dim: int, std: float, seed: int, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """``m`` initial neurons ``(W, alpha)`` from a generator seeded with ``seed``."""
    return init_particles(m, dim, std, torch.Generator().manual_seed(seed), dtype=dtype, device=device)


def make_trainer(data: Dataset, method: str, cfg: ParticleConfig, seed_offset: int = 0, *,
                 dt: float | None = None, noise: float = 0.0) -> ParticleTrainer:
    """The trainer of ``method`` (``gd | sgd | wprox``).

    Args:
        data: the data set.
        method: the particle method.
        cfg: the hyper-parameters.
        seed_offset: added to the trainer's seed (different runs from one config).
        dt: the step of ``gd`` / ``sgd`` instead of ``cfg.dt`` (``wprox`` steps ``cfg.wprox_tau``).
        noise: the Langevin diffusion of ``gd`` steps.

    Returns:
        The :class:`~wgf_cli.meanfield.particles.ParticleTrainer`.
    """
    step = cfg.wprox_tau if method == "wprox" else float(cfg.dt if dt is None else dt)
    return ParticleTrainer(
        data, method, step, weight_decay=cfg.weight_decay, train_alpha=cfg.train_alpha,
        batch_size=cfg.batch_size, distance=cfg.wprox_distance, inner_iters=cfg.wprox_inner_iters,
        inner_lr=cfg.wprox_inner_lr, blur=cfg.wprox_blur, projections=cfg.wprox_projections,
        generator=torch.Generator().manual_seed(cfg.seed * 7919 + 17 + seed_offset), noise=noise)


def make_grid_flow(data: Dataset, cfg: GridConfig, weight_decay: float = 0.0, *,
                   device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
                   ) -> tuple[MeanFieldGrid, GridJKO]:
    """The grid problem and its JKO flow; ``gamma = gamma_factor * spacing^2``."""
    from wgf_cli.ot.grid import Grid

    grid = Grid.regular(cfg.grid_size, 2, -cfg.box, cfg.box, dtype, device)
    problem = MeanFieldGrid(grid, data, weight_decay)
    gamma = cfg.gamma_factor * grid.spacing[0] ** 2
    flow = GridJKO(problem, cfg.h, gamma, linearize=cfg.linearize, relax=cfg.relax, tol=cfg.tol,
                   inner_max=cfg.inner_max)
    return problem, flow


def snap_steps(steps: int, count: int) -> list[int]:
    """``count`` step indices spread evenly over ``0..steps`` (both ends included)."""
    return sorted({round(i * steps / (count - 1)) for i in range(count)})


def _emit(callback: Callback | None, event: str, info: dict[str, Any]) -> None:
    if callback is not None:
        callback(event, info)


def particle_rows(method: str, res: ParticleResult, extra: dict[int, dict] | None = None) -> list[dict[str, Any]]:
    """The metrics rows of a particle run.

    Each row has ``method, t, loss, test_loss, grad_norm`` and, for record ``i`` in ``extra``, the
    entries of ``extra[i]``.
    """
    rows = []
    for i, t in enumerate(res.times):
        row = {"method": method, "t": t, "loss": res.loss[i], "test_loss": res.test_loss[i],
               "grad_norm": res.grad_norm[i]}
        if extra and i in extra:
            row.update(extra[i])
        rows.append(row)
    return rows


def run_particles(trainer: ParticleTrainer, W: Tensor, alpha: Tensor, T: float, *, record_every: int = 1,
                  snapshot_steps: set[int] | None = None, phase: str = "gd",
                  callback: Callback | None = None) -> tuple[ParticleResult, list[int]]:
    """Train ``round(T / trainer.dt)`` steps from ``(W, alpha)``.

    Args:
        trainer: the particle trainer.
        W: the initial first-layer weights.
        alpha: the initial output weights.
        T: the mean-field time.
        record_every: steps between records.
        snapshot_steps: the steps with a snapshot.
        phase: the name of the run in the callback's ``begin | advance | end`` events.
        callback: see the module docstring (no ``record`` events: see :func:`particle_rows`).

    Returns:
        The :class:`~wgf_cli.meanfield.particles.ParticleResult` and the inner iterations of
            every step.
    """
    steps = round(T / trainer.dt)
    inner: list[int] = []
    _emit(callback, "begin", {"phase": phase, "total": steps + 1})

    def cb(k, t, info, W_, a_):
        inner.append(info.inner_iters)
        _emit(callback, "advance", {"phase": phase, "loss": info.loss})

    res = trainer.run(W, alpha, steps, record_every=record_every, snapshot_steps=set(snapshot_steps or ()),
                      callback=cb)
    _emit(callback, "end", {"phase": phase})
    return res, inner


@dataclass
class GridRun:
    """A run of the grid flow.

    Attributes:
        r: the final density.
        times, loss, test_loss: one entry per step (0 included).
        iters, converged: the inner iterations and convergence of every step.
        snaps: ``(t, density)`` at the snapshot steps.
        grid_snaps: the density at the asked ``dist_steps``, by step.
    """

    r: Tensor
    times: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    iters: list[int] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)
    snaps: list[tuple[float, Tensor]] = field(default_factory=list)
    grid_snaps: dict[int, Tensor] = field(default_factory=dict)


def run_grid(problem: MeanFieldGrid, flow: GridJKO, W0: Tensor, a0: Tensor, T: float, cfg: GridConfig, *,
             snapshots: int = 2, dist_steps: set[int] | None = None, method: str = "jko_grid",
             callback: Callback | None = None) -> GridRun:
    """The grid flow over ``[0, T]`` from the initial neurons (``cfg.init = particles``) or a Gaussian.

    One ``record`` event per step (``method, t, loss, test_loss, grad_norm, mass`` and the step
    diagnostics).

    Args:
        problem: the grid problem.
        flow: its JKO flow (step ``flow.h``).
        W0: the initial first-layer weights.
        a0: the initial output weights.
        T: the time.
        cfg: the grid config (``init``, ``init_std``).
        snapshots: snapshots kept, spread evenly.
        dist_steps: steps whose density is kept in ``grid_snaps``.
        method: the ``method`` of the rows.
        callback: see the module docstring.

    Returns:
        The :class:`GridRun`.
    """
    h = flow.h
    steps = round(T / h)
    r = problem.from_particles(W0, a0) if cfg.init == "particles" else problem.gaussian(cfg.init_std)
    snaps = set(snap_steps(steps, snapshots))
    out = GridRun(r)
    x_t, y_t = problem.data.x_test, problem.data.y_test

    def record(k, r, st):
        t = k * h
        row = {"method": method, "t": t, "loss": problem.loss(r), "test_loss": problem.loss(r, x_t, y_t),
               "grad_norm": problem.velocity_norm(r), "mass": float(r.sum())}
        if st is not None:
            row.update(inner_iters=st.inner_iters, marginal_error=st.marginal_error,
                       converged=st.converged, log_domain=st.log_domain, wall_s=round(st.wall_s, 5))
            out.iters.append(st.inner_iters)
            out.converged.append(st.converged)
        out.times.append(t)
        out.loss.append(row["loss"])
        out.test_loss.append(row["test_loss"])
        if k in snaps:
            out.snaps.append((t, r.clone()))
        if dist_steps is not None and k in dist_steps:
            out.grid_snaps[k] = r.clone()
        _emit(callback, "record", row)

    record(0, r, None)
    _emit(callback, "begin", {"phase": method, "total": steps})
    for k in range(1, steps + 1):
        st = flow.step(r)
        r = st.r
        record(k, r, st)
        _emit(callback, "advance", {"phase": method, "loss": st.loss, "iters": st.inner_iters})
    _emit(callback, "end", {"phase": method})
    out.r = r
    return out


def monotone(losses: list[float]) -> bool:
    """The losses never increase (slack ``1e-12`` relative to their largest magnitude)."""
    v = np.asarray(losses, dtype=float)
    return bool((np.diff(v) <= 1e-12 * max(1.0, float(np.abs(v).max()))).all())
