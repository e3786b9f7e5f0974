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
    from wgf_cli.experiments.wgan import plots as wgan_plots
    from wgf_cli.gan import dirac as Dg

    t_start = time.perf_counter()
    d = cfg.dirac
    c, h, N = float(d.clip), float(d.h), int(d.steps)
    starts = [(float(d.theta0), float(d.psi0))] + [(float(a), float(b)) for a, b in d.starts]
    th0 = np.array([s[0] for s in starts])
    ps0 = np.array([s[1] for s in starts])
    r0 = np.hypot(th0, ps0)
    closed = [Dg.clipped_cycle(a, b, c) for a, b in starts]
    T = float(d.time) + max(t for _, t in closed)
    free = Dg.flow(th0, ps0, T=T, h=float(d.flow_h))
    clipped = Dg.flow(th0, ps0, T=T, h=float(d.flow_h), clip=c)
    sim = Dg.simultaneous(th0, ps0, h, N)
    alt = Dg.alternating(th0, ps0, h, N)
    measured = Dg.time_to_cycle(clipped)
    outside = r0 > c
    r2 = free.theta**2 + free.psi**2
    inv = Dg.alternating_invariant(alt.theta, alt.psi, h)
    sim_ratio = sim.radius[-1] / np.array([Dg.simultaneous_radius(r, h, N) for r in r0])
    with run.progress(len(starts), "dirac") as bar:
        for j in range(len(starts)):
            row = {"start": j, "theta0": th0[j], "psi0": ps0[j], "r0": r0[j],
                   "flow_radius_final": free.radius[-1, j],
                   "simultaneous_radius": sim.radius[-1, j],
                   "simultaneous_closed_form": Dg.simultaneous_radius(r0[j], h, N),
                   "alternating_radius_max": alt.radius[:, j].max(),
                   "clip_radius_final": clipped.radius[-1, j], "clip_radius_closed_form": closed[j][0],
                   "clip_time": measured[j], "clip_time_closed_form": closed[j][1]}
            run.log_metrics(j, **row)
            bar.advance(1)
    if outside.any():
        rad_err = float(np.max(np.abs(clipped.radius[-1, outside] - c) / c))
        time_err = float(np.max(np.abs(measured[outside] - np.array([t for _, t in closed])[outside])))
    else:
        rad_err, time_err = None, None
    summary = {
        "task": "dirac", "clip": c, "h": h, "steps": N, "flow_h": float(d.flow_h), "starts": len(starts),
        "conserved_drift": float(np.max(np.abs(r2 / r2[0] - 1))),
        "simultaneous_radius": float(sim.radius[-1, 0]),
        "simultaneous_closed_form": Dg.simultaneous_radius(float(r0[0]), h, N),
        "simultaneous_rel_error": float(np.max(np.abs(sim_ratio - 1))),
        "alternating_invariant_drift": float(np.max(np.abs(inv / inv[0] - 1))),
        "alternating_radius_max": float(alt.radius[:, 0].max()),
        "clip_final_radius": float(clipped.radius[-1, 0]),
        "clip_time_to_cycle": float(measured[0]),
        "clip_time_closed_form": float(closed[0][1]),
        "clip_radius_error": rad_err,
        "clip_time_error": time_err,
        "wall_s": round(time.perf_counter() - t_start, 3),
    }
    every = max(1, len(free.t) // 4000)
    run.save_arrays("dirac", t=free.t[::every], flow_theta=free.theta[::every], flow_psi=free.psi[::every],
                    clip_theta=clipped.theta[::every], clip_psi=clipped.psi[::every],
                    sim_theta=sim.theta, sim_psi=sim.psi, alt_theta=alt.theta, alt_psi=alt.psi,
                    clip_time=measured, clip_time_closed_form=np.array([t for _, t in closed]))
    wgan_plots.phase_portrait(run, c, h, free, clipped, sim, alt, measured, every)
    run.save_summary(summary)
    return summary


# ----------------------------------------------------------------------------------------
# the two-point GAN
# ----------------------------------------------------------------------------------------
def run_twopoint(cfg: DictConfig, run) -> dict[str, Any]:
    from wgf_cli.experiments.wgan import plots as wgan_plots
    from wgf_cli.gan import dirac as Dg
    from wgf_cli.gan import twopoint as Tp

    t_start = time.perf_counter()
    d = cfg.twopoint
    p, c, h = float(d.p), float(d.clip), float(d.flow_h)
    starts = [(float(a), float(b)) for a, b in d.starts]
    th0 = np.array([s[0] for s in starts])
    om0 = np.array([s[1] for s in starts])
    H0 = Tp.first_integral(th0, om0, p)
    level_c = Tp.limit_level(c, p)
    outside = H0 > level_c
    closed = []
    with run.progress(len(starts), "twopoint closed forms") as bar:
        for a, b in starts:
            closed.append(Tp.time_to_limit(a, b, c, p))
            bar.advance(1)
    t_closed = np.array([t for _, t in closed])
    T = float(d.time) + float(t_closed.max())
    free = Tp.flow(th0, om0, T=T, h=h, p=p)
    clipped = Tp.flow(th0, om0, T=T, h=h, p=p, clip=c)
    measured = Tp.measured_time_to_limit(clipped, p)
    Hf = Tp.first_integral(free.theta, free.psi, p)
    Hc = Tp.first_integral(clipped.theta, clipped.psi, p)
    for j in range(len(starts)):
        run.log_metrics(j, start=j, theta0=th0[j], omega0=om0[j], H0=H0[j], outside=bool(outside[j]),
                        H_final=Hc[-1, j], H_closed_form=closed[j][0], time=measured[j],
                        time_closed_form=t_closed[j])
    after = clipped.t[:, None] >= t_closed[None, :] + 10 * h
    lim_err = float(np.max(np.abs(Hc - level_c)[after & outside[None, :]])) if outside.any() else None
    time_err = float(np.max(np.abs(measured[outside] - t_closed[outside]))) if outside.any() else None
    inside_drift = float(np.max(np.abs(Hc[:, ~outside] - H0[~outside]))) if (~outside).any() else None
    orbit_th, orbit_om = Tp.limit_orbit(c, p)
    # the Dirac-GAN beside it: same clip, the same starts' (θ0, ω0) as (θ0 - θ*, ψ0)
    ts = Tp.theta_star(p)
    dirac = Dg.flow(th0 - ts, om0, T=T, h=max(h, 1e-3), clip=c)
    summary = {
        "task": "twopoint", "p": p, "clip": c, "flow_h": h, "starts": len(starts),
        "starts_outside": int(outside.sum()), "theta_star": ts,
        "twopoint_integral_drift": float(np.max(np.abs(Hf / Hf[0] - 1))),
        "twopoint_limit_level": level_c,
        "twopoint_limit_error": lim_err,
        "twopoint_time_error": time_err,
        "twopoint_inside_drift": inside_drift,
        "twopoint_time_to_limit": float(measured[0]),
        "twopoint_time_closed_form": float(t_closed[0]),
        "twopoint_limit_theta_range": [float(orbit_th.min()), float(orbit_th.max())],
        "wall_s": round(time.perf_counter() - t_start, 3),
    }
    every = max(1, len(free.t) // 4000)
    run.save_arrays("twopoint", t=free.t[::every], flow_theta=free.theta[::every], flow_omega=free.psi[::every],
                    clip_theta=clipped.theta[::every], clip_omega=clipped.psi[::every],
                    limit_theta=orbit_th, limit_omega=orbit_om, time=measured, time_closed_form=t_closed,
                    H0=H0, level=np.array(level_c))
    wgan_plots.twopoint_portrait(run, p, c, clipped, dirac, orbit_th, orbit_om, outside, every)
    run.save_summary(summary)
    return summary


# ----------------------------------------------------------------------------------------
# the vanishing gradient: JS vs W1 on parallel lines
# ----------------------------------------------------------------------------------------
def run_vanishing(cfg: DictConfig, run) -> dict[str, Any]:
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
    rows = []
    with run.progress(2 * len(thetas), "vanishing: critics") as bar:
        for k, th in enumerate(thetas):
            row: dict[str, Any] = {"theta": th, "js": float(Pl.js_divergence(th)), "w1": float(Pl.w1_distance(th)),
                                   "w1_gp_value": float(Pl.w1_gp_value(th, lam)),
                                   "w1_gp_slope": float(np.sign(th) * Pl.w1_gp_slope(th, lam))}
            for kind in ("gan", "wgan_gp"):
                r = Pl.train_critic(th, kind, steps=int(v.steps), batch=int(v.batch), hidden=int(v.hidden),
                                    lr=float(v.lr), lam=lam, seed=int(cfg.seed) + k)
                row[f"{kind}_estimate"], row[f"{kind}_grad"] = r.estimate, r.generator_grad
                bar.advance(1)
            rows.append(row)
            run.log_metrics(k, **row)
    df = pd.DataFrame(rows)
    atomic_write(run.dir / "vanishing.csv", df.to_csv(index=False))
    nz = df[df.theta != 0]
    zero = df[df.theta == 0]
    summary = {
        "task": "vanishing", "thetas": thetas, "gp_lambda": lam, "steps": int(v.steps),
        "js_closed_form": Pl.LOG2,
        "js_trained_max_error": float((nz.gan_estimate - Pl.LOG2).abs().max()),
        "js_trained_at_zero": float(zero.gan_estimate.iloc[0]) if len(zero) else None,
        "gan_grad_max": float(nz.gan_grad.abs().max()),
        "w1_trained_max_rel_error": float(((nz.wgan_gp_estimate - nz.w1_gp_value) / nz.w1_gp_value).abs().max()),
        "wgan_grad_max_rel_error": float(((nz.wgan_gp_grad - nz.w1_gp_slope) / nz.w1_gp_slope).abs().max()),
        "wgan_grad_min": float(nz.wgan_gp_grad.abs().min()),
        "wall_s": round(time.perf_counter() - t_start, 3),
    }
    wgan_plots.vanishing_plot(run, df, lam)
    run.save_summary(summary)
    return summary
