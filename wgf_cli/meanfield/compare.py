"""Particle gd against the grid Wasserstein gradient flow (and wprox) from the same neurons.

:func:`run_compare` runs, from the same initial neurons over ``[0, T]``:

1. the entropic JKO flow on the (w, b) grid (the reference measures);
2. particle gd, and its W2 / sliced W2 to the grid measure at ``distances_at`` times;
3. gd with the Langevin noise of the grid's entropic blur, and gd with the JKO step ``h``:
   the two gaps that set the tolerance of the gd-vs-grid comparison;
4. optionally wprox, with its sliced W2 to the grid measure.

The tolerance of the loss gap is ``max_t (|F_gd - F_gd+blur| + |F_gd - F_gd,h|) +
|F_gd(0) - F_grid(0)|``; the W2 bound of the blur alone is ``sqrt(2) s`` with ``s^2 = 2
D_blur T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wgf_cli.meanfield import distances as Dm
from wgf_cli.meanfield.data import Dataset
from wgf_cli.meanfield.grid_flow import GridJKO, MeanFieldGrid
from wgf_cli.meanfield.particles import ParticleResult
from wgf_cli.meanfield.protocol import (
    Callback,
    GridConfig,
    GridRun,
    ParticleConfig,
    init_neurons,
    make_grid_flow,
    make_trainer,
    particle_rows,
    run_grid,
    snap_steps,
)


@dataclass
class CompareConfig:
    """The comparison.

    Attributes:
        width: neurons ``m``.
        time: the horizon ``T``.
        init_std: the initial neurons' std.
        particles: the particle methods (``particles.seed`` also seeds the initial neurons).
        grid: the grid flow (``grid.h`` must be a multiple of ``particles.dt`` and of the wprox ``tau``).
        wprox: also run wprox.
        distances_at: measurement times of the distances to the grid measure, spread over ``[0, T]``.
        emd_max_pairs: exact W2 up to this many (particle, grid point) pairs (else NaN).
        projections: projections of the sliced W2.
        snapshots: grid-density snapshots kept.
    """

    width: int
    time: float
    init_std: float
    particles: ParticleConfig
    grid: GridConfig
    wprox: bool = True
    distances_at: int = 5
    emd_max_pairs: int = 50_000_000
    projections: int = 64
    snapshots: int = 4


@dataclass
class CompareResult:
    """The runs of :func:`run_compare` and the comparison's statistics.

    Attributes:
        problem, flow: the grid problem and its flow.
        grid: the grid run.
        gd, gd_blur, gd_h, wprox: the particle runs (``wprox`` ``None`` when not run).
        dist_gd, dist_wprox: by record index of the run, the ``dist_to_reference`` (W2; NaN
            for wprox, never computed) and ``sliced_w2_to_reference`` to the grid measure.
        stats: gd against the grid flow: ``loss_gap_max, loss_gap_blur, loss_gap_step,
            loss_gap_initial, loss_gap_tolerance, loss_gap_within_tolerance, max_w2_gd_vs_wgf,
            max_sliced_w2_gd_vs_wgf, w2_initial, w2_blur_bound, max_w2_within_blur``.
        wprox_stats: wprox against gd and the grid flow: ``loss_gap_wprox_max,
            max_sliced_w2_wprox_vs_wgf`` (empty without wprox).
        tolerance: per record time, the tolerance band ``blur gap + step gap + initial gap``.
    """

    problem: MeanFieldGrid
    flow: GridJKO
    grid: GridRun
    gd: ParticleResult
    gd_blur: ParticleResult
    gd_h: ParticleResult
    wprox: ParticleResult | None
    dist_gd: dict[int, dict[str, float]]
    dist_wprox: dict[int, dict[str, float]] | None
    stats: dict[str, Any]
    wprox_stats: dict[str, float]
    tolerance: np.ndarray


def run_compare(data: Dataset, cfg: CompareConfig, *, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float64, callback: Callback | None = None) -> CompareResult:
    """Run the comparison (see the module docstring).

    Args:
        data: the data set (``data.dim == 2``: one input and the bias).
        cfg: the comparison.
        device: where the neurons and the grid live.
        dtype: their dtype.
        callback: ``callback(event, info)`` as in :mod:`~wgf_cli.meanfield.protocol`; the
            ``record`` rows come in order: the grid run, then gd, gd with blur noise (method
            ``gd_blur``), gd with step h (``gd_h``) and wprox.

    Returns:
        The :class:`CompareResult`.
    """
    pc, T, h = cfg.particles, float(cfg.time), float(cfg.grid.h)
    W0, a0 = init_neurons(cfg.width, data.dim, cfg.init_std, pc.seed, device=device, dtype=dtype)
    problem, flow = make_grid_flow(data, cfg.grid, pc.weight_decay, device=device, dtype=dtype)
    dist_grid = set(snap_steps(round(T / h), cfg.distances_at))
    # the grid flow first: its measures at the measurement times are the reference
    grid = run_grid(problem, flow, W0, a0, T, cfg.grid, snapshots=cfg.snapshots, dist_steps=dist_grid,
                    callback=callback)
    pts = problem.points

    def distances_to_grid(res: ParticleResult, exact: bool = True) -> dict[int, dict[str, float]]:
        out = {}
        times = np.asarray(res.times)
        for t, W, a in res.snapshots:
            gp, gw, gs = Dm.grid_support(pts, grid.grid_snaps[round(t / h)], problem.alphas, rel_threshold=1e-8)
            w = Dm.uniform(W)
            out[int(np.argmin(np.abs(times - t)))] = {
                "dist_to_reference": Dm.w2(W, w, a, gp, gw, gs, max_pairs=cfg.emd_max_pairs if exact else 0),
                "sliced_w2_to_reference": Dm.sliced_w2(W, w, a, gp, gw, gs, n_projections=cfg.projections,
                                                       seed=pc.seed)}
        return out

    def particle(method: str, seed_offset: int = 0, **kw) -> ParticleResult:
        trainer = make_trainer(data, method, pc, seed_offset, **kw)
        steps = round(T / trainer.dt)
        every = round(h / trainer.dt)
        if callback is not None:
            callback("begin", {"phase": method, "total": steps + 1})
        res = trainer.run(W0, a0, steps, record_every=every, snapshot_steps={k * every for k in dist_grid},
                          callback=None if callback is None else
                          lambda *args: callback("advance", {"phase": method}))
        if callback is not None:
            callback("end", {"phase": method})
        return res

    def emit(name: str, res: ParticleResult, extra=None) -> None:
        if callback is not None:
            for row in particle_rows(name, res, extra):
                callback("record", row)

    res_gd = particle("gd")
    d_gd = distances_to_grid(res_gd)
    emit("gd", res_gd, d_gd)
    res_blur = particle("gd", 1, noise=flow.blur_diffusion)
    emit("gd_blur", res_blur)
    res_h = particle("gd", dt=h)
    emit("gd_h", res_h)
    res_wp, d_wp = None, None
    if cfg.wprox:
        res_wp = particle("wprox", 2)
        d_wp = distances_to_grid(res_wp, exact=False)  # EMD for gd only (cost)
        emit("wprox", res_wp, d_wp)

    F_gd, F_grid = np.array(res_gd.loss), np.array(grid.loss)
    F_blur, F_h = np.array(res_blur.loss), np.array(res_h.loss)
    gap = np.abs(F_gd - F_grid)
    blur_gap, step_gap = np.abs(F_blur - F_gd), np.abs(F_h - F_gd)
    tolerance = float((blur_gap + step_gap).max() + gap[0])
    w2s = [d_gd[i]["dist_to_reference"] for i in sorted(d_gd)]
    # W2(mu, mu * N(0, s^2 I_2)) <= sqrt(2) s: the entropic blur alone, s^2 = 2 D_blur T
    w2_blur = math.sqrt(2.0 * 2.0 * flow.blur_diffusion * T)
    sw2s = [v["sliced_w2_to_reference"] for v in d_gd.values()]
    any_w2 = not np.isnan(w2s).all()
    stats: dict[str, Any] = {
        "loss_gap_max": float(gap.max()), "loss_gap_blur": float(blur_gap.max()),
        "loss_gap_step": float(step_gap.max()), "loss_gap_initial": float(gap[0]),
        "loss_gap_tolerance": tolerance, "loss_gap_within_tolerance": bool(gap.max() <= tolerance),
        "max_w2_gd_vs_wgf": float(np.nanmax(w2s)) if any_w2 else float("nan"),
        "max_sliced_w2_gd_vs_wgf": float(max(sw2s)),
        "w2_initial": float(w2s[0]),
        "w2_blur_bound": w2_blur,
        "max_w2_within_blur": bool(np.nanmax(w2s) <= w2_blur + w2s[0]) if any_w2 else False,
    }
    wprox_stats: dict[str, float] = {}
    if res_wp is not None:
        wprox_stats["loss_gap_wprox_max"] = float(np.abs(np.array(res_wp.loss) - F_gd).max())
        wprox_stats["max_sliced_w2_wprox_vs_wgf"] = float(max(v["sliced_w2_to_reference"] for v in d_wp.values()))
    return CompareResult(problem, flow, grid, res_gd, res_blur, res_h, res_wp, d_gd, d_wp, stats, wprox_stats,
                         blur_gap + step_gap + gap[0])
