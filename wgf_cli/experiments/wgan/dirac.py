"""``wgf wgan task=dirac | twopoint | vanishing``: the closed-form GAN dynamics.

``task=dirac`` integrates the Dirac-GAN flows and writes the phase portrait and the
comparison with the closed forms (``dirac.npz``, ``summary.json``).  ``task=twopoint``
integrates the two-point GAN and compares its first integral, limit orbit and time to reach
it with the closed forms (``twopoint.npz``, ``plots/twopoint.png``).  ``task=vanishing`` puts
the closed-form JS divergence and W1 distance between two segments at distance theta next to
trained discriminators / WGAN-GP critics (``vanishing.csv``, ``plots/vanishing.png``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
def validate_twopoint(cfg: DictConfig) -> None:
    """``twopoint.*``: p in (0, 1), clip, flow step, time and starts inside the clip."""
    p = C.number(cfg, "twopoint.p", positive=True)
    if p >= 1:
        raise ConfigError(f"twopoint.p must be in (0, 1), got {p}")
    c = C.number(cfg, "twopoint.clip", positive=True)
    C.number(cfg, "twopoint.flow_h", positive=True, maximum=0.05)
    C.number(cfg, "twopoint.time", positive=True)
    starts = C.get(cfg, "twopoint.starts")
    if not isinstance(starts, ListConfig) or not starts or not all(
            isinstance(s, ListConfig) and len(s) == 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in s) for s in starts):
        raise ConfigError("twopoint.starts must be a non-empty list of [theta0, omega0] pairs")
    for th, om in starts:
        if abs(om) > c:
            raise ConfigError(f"twopoint: start (theta0={th}, omega0={om}) has |omega0| > twopoint.clip={c}")
        if abs(th) > 6:
            raise ConfigError(f"twopoint: start theta0={th} is outside [-6, 6] (the weight saturates; "
                              f"the slide to the limit orbit takes ~e^|theta0|/clip)")


def validate_vanishing(cfg: DictConfig) -> None:
    """``vanishing.*``: the thetas, steps, batch, width, learning rate, penalty."""
    thetas = C.get(cfg, "vanishing.thetas")
    if not isinstance(thetas, ListConfig | list) or not thetas or not all(
            isinstance(t, int | float) and not isinstance(t, bool) for t in thetas) or all(t == 0 for t in thetas):
        raise ConfigError("vanishing.thetas must be a non-empty list of numbers with at least one != 0")
    C.integer(cfg, "vanishing.steps", minimum=1)
    C.integer(cfg, "vanishing.batch", minimum=2)
    C.integer(cfg, "vanishing.hidden", minimum=1)
    C.number(cfg, "vanishing.lr", positive=True)
    C.number(cfg, "vanishing.gp_lambda", positive=True)


def validate_dirac(cfg: DictConfig) -> None:
    """``dirac.*``: clip, steps, flow step, time and starts inside the clip."""
    c = C.number(cfg, "dirac.clip", positive=True)
    C.number(cfg, "dirac.h", positive=True)
    C.integer(cfg, "dirac.steps", minimum=1)
    C.number(cfg, "dirac.flow_h", positive=True, maximum=0.1)
    C.number(cfg, "dirac.time", positive=True)
    for key in ("dirac.theta0", "dirac.psi0"):
        C.number(cfg, key)
    starts = C.get(cfg, "dirac.starts")
    if not isinstance(starts, ListConfig) or not all(
            isinstance(s, ListConfig) and len(s) == 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in s) for s in starts):
        raise ConfigError("dirac.starts must be a list of [theta0, psi0] pairs")
    for th, ps in [(cfg.dirac.theta0, cfg.dirac.psi0), *[tuple(s) for s in starts]]:
        if abs(ps) > c:
            raise ConfigError(f"dirac: start (theta0={th}, psi0={ps}) has |psi0| > dirac.clip={c}")


# ----------------------------------------------------------------------------------------
# Dirac-GAN
# ----------------------------------------------------------------------------------------
def run_dirac(cfg: DictConfig, run) -> dict[str, Any]:
    """The Dirac-GAN flows against their closed forms (:func:`wgf_cli.gan.dirac.compare`)."""
    from wgf_cli.experiments.wgan import plots as wgan_plots
    from wgf_cli.gan import dirac as Dg

    t_start = time.perf_counter()
    d = cfg.dirac
    c, h, N = float(d.clip), float(d.h), int(d.steps)
    starts = [(float(d.theta0), float(d.psi0))] + [(float(a), float(b)) for a, b in d.starts]
    res = Dg.compare(starts, c, h, N, float(d.flow_h), float(d.time))
    with run.progress(len(starts), "dirac") as bar:
        for j, row in enumerate(res.rows()):
            run.log_metrics(j, **row)
            bar.advance(1)
    summary = {"task": "dirac", "clip": c, "h": h, "steps": N, "flow_h": float(d.flow_h), "starts": len(starts),
               **res.errors(), "wall_s": round(time.perf_counter() - t_start, 3)}
    free, clipped, sim, alt = res.free, res.clipped, res.simultaneous, res.alternating
    every = max(1, len(free.t) // 4000)
    run.save_arrays("dirac", t=free.t[::every], flow_theta=free.theta[::every], flow_psi=free.psi[::every],
                    clip_theta=clipped.theta[::every], clip_psi=clipped.psi[::every],
                    sim_theta=sim.theta, sim_psi=sim.psi, alt_theta=alt.theta, alt_psi=alt.psi,
                    clip_time=res.measured, clip_time_closed_form=res.cycle_time)
    wgan_plots.phase_portrait(run, c, h, free, clipped, sim, alt, res.measured, every)
    run.save_summary(summary)
    return summary


# ----------------------------------------------------------------------------------------
# the two-point GAN
# ----------------------------------------------------------------------------------------
def run_twopoint(cfg: DictConfig, run) -> dict[str, Any]:
    """The two-point GAN against its closed forms (:func:`wgf_cli.gan.twopoint.compare`)."""
    from wgf_cli.experiments.wgan import plots as wgan_plots
    from wgf_cli.gan import twopoint as Tp

    t_start = time.perf_counter()
    d = cfg.twopoint
    p, c, h = float(d.p), float(d.clip), float(d.flow_h)
    starts = [(float(a), float(b)) for a, b in d.starts]
    with run.progress(len(starts), "twopoint closed forms") as bar:
        res = Tp.compare(starts, p, c, h, float(d.time), on_start=lambda: bar.advance(1))
    for j, row in enumerate(res.rows()):
        run.log_metrics(j, **row)
    summary = {"task": "twopoint", "p": p, "clip": c, "flow_h": h, "starts": len(starts),
               **res.errors(), "wall_s": round(time.perf_counter() - t_start, 3)}
    free, clipped = res.free, res.clipped
    orbit_th, orbit_om = Tp.limit_orbit(c, p)
    every = max(1, len(free.t) // 4000)
    run.save_arrays("twopoint", t=free.t[::every], flow_theta=free.theta[::every], flow_omega=free.psi[::every],
                    clip_theta=clipped.theta[::every], clip_omega=clipped.psi[::every],
                    limit_theta=orbit_th, limit_omega=orbit_om, time=res.measured, time_closed_form=res.closed_time,
                    H0=res.H0, level=np.array(res.level))
    wgan_plots.twopoint_portrait(run, p, c, clipped, res.dirac, orbit_th, orbit_om, res.outside, every)
    run.save_summary(summary)
    return summary


# ----------------------------------------------------------------------------------------
# the vanishing gradient: JS vs W1 on parallel lines
# ----------------------------------------------------------------------------------------
def run_vanishing(cfg: DictConfig, run) -> dict[str, Any]:
    """Trained critics between parallel lines against JS and W1 (:mod:`wgf_cli.gan.parallel_lines`)."""
    import pandas as pd
    import torch

    from wgf_cli.experiments.wgan import plots as wgan_plots
    from wgf_cli.gan import parallel_lines as Pl
    from wgf_cli.run import atomic_write

    t_start = time.perf_counter()
    if int(cfg.threads) > 0:
        torch.set_num_threads(int(cfg.threads))
    v = cfg.vanishing
    lam = float(v.gp_lambda)
    thetas = [float(t) for t in v.thetas]
    with run.progress(2 * len(thetas), "vanishing: critics") as bar:
        rows = Pl.vanishing_study(thetas, lam, steps=int(v.steps), batch=int(v.batch), hidden=int(v.hidden),
                                  lr=float(v.lr), seed=int(cfg.seed), on_critic=lambda: bar.advance(1))
    for k, row in enumerate(rows):
        run.log_metrics(k, **row)
    df = pd.DataFrame(rows)
    atomic_write(run.dir / "vanishing.csv", df.to_csv(index=False))
    summary = {"task": "vanishing", "thetas": thetas, "gp_lambda": lam, "steps": int(v.steps),
               "js_closed_form": Pl.LOG2, **Pl.vanishing_errors(rows),
               "wall_s": round(time.perf_counter() - t_start, 3)}
    wgan_plots.vanishing_plot(run, df, lam)
    run.save_summary(summary)
    return summary
