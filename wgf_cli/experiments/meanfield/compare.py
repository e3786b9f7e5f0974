"""``wgf meanfield mode=compare``: gd, the grid Wasserstein gradient flow and wprox from the
same initial neurons (:func:`wgf_cli.meanfield.compare.run_compare`); metrics, arrays, plots."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wgf_cli.experiments.meanfield.config import Reporter, grid_config, methods_of, particle_config
from wgf_cli.experiments.meanfield.train import save_grid_arrays, save_particle_arrays

log = logging.getLogger(__name__)


def run_compare(cfg: DictConfig, run, data, device, dtype) -> dict[str, Any]:
    """Run the comparison; returns the summary (``_plot_s``: the time spent on plots)."""
    from wgf_cli.experiments.meanfield import plots as P
    from wgf_cli.meanfield.compare import CompareConfig
    from wgf_cli.meanfield.compare import run_compare as engine
    from wgf_cli.meanfield.network import predict

    methods = methods_of(cfg)
    m, T, dt, h = int(cfg.model.width), float(cfg.time), float(cfg.dt), float(cfg.jko.h)
    ccfg = CompareConfig(width=m, time=T, init_std=float(cfg.model.init_std), particles=particle_config(cfg),
                         grid=grid_config(cfg), wprox="wprox" in methods,
                         distances_at=int(cfg.compare.distances_at), emd_max_pairs=int(cfg.compare.emd_max_pairs),
                         projections=int(cfg.width_study.projections), snapshots=int(cfg.output.snapshots))
    report = Reporter(run)
    try:
        res = engine(data, ccfg, device=device, dtype=dtype, callback=report)
    finally:
        report.close()
    flow, grid, st = res.flow, res.grid, res.stats
    log.info("compare m=%d T=%g dt=%g h=%g gamma=%.3g blur diffusion %.3g", m, T, dt, h, flow.gamma,
             flow.blur_diffusion)
    save_grid_arrays(run, res.problem, grid)
    summary: dict[str, Any] = {
        "mode": "compare", "method": "+".join(methods), "m": m,
        "final_loss": float(res.gd.loss[-1]), "final_test_loss": float(res.gd.test_loss[-1]),
        "final_loss_jko_grid": float(grid.loss[-1]),
        **st,
        "blur_diffusion": flow.blur_diffusion, "gamma": flow.gamma, "h": h, "dt": dt,
        "grid_size": int(cfg.jko.grid_size),
        "inner_iters_mean": float(np.mean(grid.iters)),
        "converged_fraction": float(np.mean(grid.converged)),
    }
    wp = res.wprox
    if wp is not None:
        summary["loss_gap_wprox_max"] = res.wprox_stats["loss_gap_wprox_max"]
        summary["final_loss_wprox"] = float(np.array(wp.loss)[-1])
        summary["wprox_distance"] = str(cfg.wprox.distance)
        summary["max_sliced_w2_wprox_vs_wgf"] = res.wprox_stats["max_sliced_w2_wprox_vs_wgf"]
    save_particle_arrays(run, res.gd)
    if wp is not None:
        save_particle_arrays(run, wp, "particles_wprox")

    t0 = time.perf_counter()
    gd = res.gd
    curves = {"gd": (gd.times, gd.loss, gd.test_loss),
              "jko_grid": (grid.times, grid.loss, grid.test_loss),
              "gd + blur noise": (res.gd_blur.times, res.gd_blur.loss, None),
              "gd, dt = h": (res.gd_h.times, res.gd_h.loss, None)}
    if wp is not None:
        curves[f"wprox ({cfg.wprox.distance})"] = (wp.times, wp.loss, wp.test_loss)
    P.loss_curves(run, curves, tolerance=(gd.times, np.array(gd.loss), res.tolerance))
    P.grid_snapshots(run, res.problem, grid.snaps, particles=gd.snapshots)
    P.trajectories(run, gd.snapshots, int(cfg.output.trajectories))
    P.distance_curves(run, {"gd": res.dist_gd, **({"wprox": res.dist_wprox} if wp is not None else {})},
                      {"gd": gd.times, "wprox": wp.times if wp is not None else []})
    P.output_snapshots(run, data, [(t, predict(W, a, data.x_test)) for t, W, a in gd.snapshots],
                       grid=[(t, res.problem.predict(rr, data.x_test)) for t, rr in grid.snaps])
    summary["_plot_s"] = time.perf_counter() - t0
    return summary
