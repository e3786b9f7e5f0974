"""``wgf meanfield mode=train``: one method (``gd | sgd | wprox`` particles or the ``jko_grid``
flow) from the initial neurons; metrics, arrays and plots."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wgf_cli.experiments.meanfield.config import Reporter, grid_config, particle_config


def save_particle_arrays(run, res, name: str = "particles") -> None:
    """``<name>.npz``: the snapshots (t, W, alpha) and the loss curve of a particle run."""
    run.save_arrays(name, t=np.array([s[0] for s in res.snapshots]),
                    W=np.stack([s[1].cpu().numpy() for s in res.snapshots]),
                    alpha=np.stack([s[2].cpu().numpy() for s in res.snapshots]),
                    times=np.array(res.times), loss=np.array(res.loss))


def save_grid_arrays(run, problem, grid) -> None:
    """``grid.npz``: the grid axes, the snapshot times and densities, the output weights."""
    axes = np.stack([a.cpu().numpy() for a in problem.grid.axes])
    run.save_arrays("grid", axes=axes, t=np.array([t for t, _ in grid.snaps]),
                    r=np.stack([x.cpu().numpy() for _, x in grid.snaps]), alphas=problem.alphas.cpu().numpy())


def run_train(cfg: DictConfig, run, data, device, dtype) -> dict[str, Any]:
    """Train one method; returns the summary (``_plot_s``: the time spent on plots)."""
    from wgf_cli.experiments.meanfield import plots as P
    from wgf_cli.meanfield import protocol as Pr
    from wgf_cli.meanfield.network import predict

    method, m, T = str(cfg.method), int(cfg.model.width), float(cfg.time)
    W0, a0 = Pr.init_neurons(m, int(cfg.data.dim), float(cfg.model.init_std), int(cfg.seed), device=device,
                             dtype=dtype)
    summary: dict[str, Any] = {"mode": "train", "method": method, "m": m}
    report = Reporter(run)
    if method == "jko_grid":
        gcfg = grid_config(cfg)
        problem, flow = Pr.make_grid_flow(data, gcfg, float(cfg.model.weight_decay), device=device, dtype=dtype)
        try:
            grid = Pr.run_grid(problem, flow, W0, a0, T, gcfg, snapshots=int(cfg.output.snapshots), callback=report)
        finally:
            report.close()
        save_grid_arrays(run, problem, grid)
        summary.update(final_loss=grid.loss[-1], final_test_loss=grid.test_loss[-1],
                       blur_diffusion=flow.blur_diffusion, inner_iters_mean=float(np.mean(grid.iters)),
                       converged_fraction=float(np.mean(grid.converged)), loss_monotone=Pr.monotone(grid.loss))
        t0 = time.perf_counter()
        P.grid_snapshots(run, problem, grid.snaps)
        P.loss_curves(run, {"jko_grid": (grid.times, grid.loss, grid.test_loss)})
        P.output_snapshots(run, data, [(t, problem.predict(rr, data.x_test)) for t, rr in grid.snaps])
        summary["_plot_s"] = time.perf_counter() - t0
        return summary
    pcfg = particle_config(cfg)
    trainer = Pr.make_trainer(data, method, pcfg)
    steps = round(T / trainer.dt)
    snaps = Pr.snap_steps(steps, int(cfg.output.snapshots))
    try:
        res, inner = Pr.run_particles(trainer, W0, a0, T, record_every=max(1, steps // 400), snapshot_steps=set(snaps),
                                      phase=method, callback=report)
    finally:
        report.close()
    for row in Pr.particle_rows(method, res):
        report("record", row)
    summary.update(final_loss=res.loss[-1], final_test_loss=res.test_loss[-1],
                   loss_monotone=Pr.monotone(res.loss), steps=steps, dt=trainer.dt)
    if method == "wprox":
        summary["inner_iters_mean"] = float(np.mean(inner[:-1])) if len(inner) > 1 else 0.0
        summary["distance"] = str(cfg.wprox.distance)
    save_particle_arrays(run, res)
    t0 = time.perf_counter()
    P.loss_curves(run, {method: (res.times, res.loss, res.test_loss)})
    P.trajectories(run, res.snapshots, int(cfg.output.trajectories))
    P.output_snapshots(run, data, [(t, predict(W, a, data.x_test)) for t, W, a in res.snapshots])
    summary["_plot_s"] = time.perf_counter() - t0
    return summary
