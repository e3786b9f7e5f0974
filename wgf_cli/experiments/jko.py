"""`wgf jko`: wire the config to the grid, the energy and the entropic JKO engine.

Per step it logs ``step, t, energy`` (and ``energy_<part>``), ``mass``, ``max_density``,
``transport_cost``, ``inner_iters``, ``marginal_error``, ``log_domain``, ``wall_s`` and, when
a closed form exists, ``l1_error`` / ``w2_error``; at the end ``densities.npz``, the plots and
``summary.json`` (keys documented in :data:`SUMMARY_KEYS`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C
from wgf_cli.presets import Claim, Preset

log = logging.getLogger(__name__)

ENERGIES = ["heat", "fokker_planck", "porous_medium", "crowd", "aggregation", "keller_segel"]
POTENTIALS = ["quadratic", "double_well", "expr"]
INITIALS = ["gaussian", "gaussian_mixture", "box", "barenblatt", "npy"]
SOLVERS = ["jko", "langevin"]

SUMMARY_KEYS = {
    "energy": "name of the energy",
    "steps": "JKO steps run",
    "grid_size": "cells per axis",
    "grid_dim": "dimension",
    "gamma": "entropic parameter of the Gibbs kernel",
    "h": "physical time step (solver.tau)",
    "final_time": "steps * h",
    "energy_initial": "F(rho_0)", "energy_final": "F(rho_N)",
    "mass_error_max": "max_k |mass_k - mass_0| / mass_0",
    "energy_monotone": "F non-increasing at every step (slack 1e-9 max|F|)",
    "energy_increase_max": "largest increase of F between two steps / max|F| (0 if monotone)",
    "diffusion_effective": "diffusion of the scheme: D + blur, minus what debias compensates "
                           "(max(D, blur) with debias)",
    "energy_effective_monotone": "F with D replaced by diffusion_effective non-increasing at every "
                                 "step: the energy the scheme decreases when the blur exceeds D",
    "l1_error_final": "relative L1 error against the closed form at the final time (if known)",
    "w2_error_final": "W2 (1-D) / sliced W2 (2-D, 3-D) to the closed form at the final time "
                      "(metrics.csv has w2_error at the snapshot steps)",
    "reference": "the closed form compared with (none if unknown)",
    "inner_iters_mean": "mean KL-proximal iterations per step",
    "converged_fraction": "fraction of steps that reached solver.tol",
    "log_domain_steps": "steps solved in the log domain",
    "blur_diffusion": "extra diffusion of the entropic blur, s^2/(2h) ~ gamma/(4h)",
    "debias": "whether the blur was compensated",
    "overrelax_final": "over-relaxation omega of the last step (adapted with solver.overrelax=auto)",
    "kernel_band": "half-width (cells) of the banded Gibbs kernel at the end (n-1: full kernel)",
    "threads": "torch CPU threads used (threads=auto: 1 below 2048^2 cells)",
    "wall_s": "wall time of the flow and its metrics (plots and arrays excluded)",
    "critical_mass": "keller_segel: 8 pi D / chi",
    "m2_initial": "keller_segel: second moment per unit mass at t = 0",
    "m2_final": "keller_segel: second moment per unit mass at the end",
    "m2_rate": "keller_segel: least-squares slope of the second moment in t",
    "m2_rate_virial": "keller_segel: whole-plane closed form dM2/dt = 4 D (1 - M / M_crit)",
    "m2_rate_error": "keller_segel: |m2_rate - m2_rate_virial| / (4 D)",
    "spreads": "keller_segel: the second moment grew (sub-critical) or shrank (super-critical)",
}


#: summary keys shown (first present) per job in the sweep table
HEADLINE = ["l1_error_final", "energy_final"]

_TOY = ["grid.size=16", "steps=2", "output.gif_frames=0"]


def convergence_summary(jobs: list[dict[str, Any]], folder) -> dict[str, Any]:
    """Sweep over solver.tau at fixed final time: least-squares order of the L1 error in h."""
    from pathlib import Path

    from wgf_cli.experiments import jko_plots
    from wgf_cli.run import save_figure

    jobs = sorted(jobs, key=lambda j: -j["h"])
    h = np.array([j["h"] for j in jobs])
    err = np.array([j["l1_error_final"] for j in jobs])
    iters = np.array([j["inner_iters_mean"] * j["steps"] for j in jobs])
    order = float(np.polyfit(np.log(h), np.log(err), 1)[0])
    save_figure(jko_plots.convergence(h, err, iters, order), Path(folder) / "plots" / "convergence.png")
    return {"order_h": order, "h_max": float(h[0]), "h_min": float(h[-1]),
            "l1_error_h_max": float(err[0]), "l1_error_h_min": float(err[-1]),
            "inner_iters_total_h_min": float(iters[-1]), "wall_s": float(sum(j["wall_s"] for j in jobs))}

#: ``conf/experiment/`` presets of ``wgf jko``, with the claims ``make reproduce`` checks.
PRESETS = [
    Preset("heat", "Heat flow of a Gaussian against the exact heat kernel.",
           ["l1_error_final", "w2_error_final", "mass_error_max", "energy_monotone", "inner_iters_mean"],
           [Claim("l1_error_final", "<=", 0.02, "heat flow, relative L1 error vs the exact heat kernel"),
            Claim("mass_error_max", "<=", 1e-9, "heat flow conserves mass"),
            Claim("energy_monotone", "==", True, "heat flow: entropy decreases at every step")], toy=_TOY),
    Preset("heat_512", "Heat flow at 512^2 against the exact heat kernel (the blur carries half "
           "the diffusion: ~10 inner iterations a step at any grid size).",
           ["l1_error_final", "w2_error_final", "mass_error_max", "inner_iters_mean",
            "log_domain_steps", "wall_s"],
           [Claim("l1_error_final", "<=", 0.005, "heat flow at 512^2, relative L1 error vs the exact heat kernel"),
            Claim("mass_error_max", "<=", 1e-9, "heat flow at 512^2 conserves mass"),
            Claim("energy_monotone", "==", True, "heat flow at 512^2: entropy decreases at every step"),
            Claim("inner_iters_mean", "<=", 12, "heat flow at 512^2: inner iterations per step do not "
                  "grow with the grid (10.5 measured, as at 128^2)")],
           toy=["grid.size=16", "steps=2"], full=["steps=50"]),
    Preset("heat_convergence", "Accuracy vs cost: heat flow to T=0.04 for h = 4e-3, 2e-3, 1e-3 "
           "(grid 128, gamma = 4 dx^2, debiased); least-squares order of the L1 error in h.",
           ["order_h", "l1_error_h_max", "l1_error_h_min", "inner_iters_total_h_min"],
           [Claim("order_h", ">=", 0.8, "debiased entropic JKO converges (at least) first order in h"),
            Claim("l1_error_h_min", "<=", 0.005, "heat flow, L1 error at h=1e-3 (gamma = 4 dx^2)")],
           toy=["grid.size=16", "final_time=8e-3"], sweep=["solver.tau=4e-3,2e-3,1e-3"],
           aggregate=convergence_summary, full=["grid.size=256"]),
    Preset("ornstein_uhlenbeck", "Fokker-Planck, quadratic potential: Ornstein-Uhlenbeck Gaussian.",
           ["l1_error_final", "w2_error_final", "gibbs_l1_final", "energy_monotone"],
           [Claim("l1_error_final", "<=", 0.02, "Ornstein-Uhlenbeck, relative L1 error vs the exact Gaussian"),
            Claim("energy_monotone", "==", True, "Fokker-Planck free energy decreases")], toy=_TOY),
    Preset("porous_medium", "Porous medium m=2 from a Barenblatt profile.",
           ["l1_error_final", "w2_error_final", "mass_error_max", "energy_monotone"],
           [Claim("l1_error_final", "<=", 0.03, "porous medium m=2, relative L1 error vs Barenblatt"),
            Claim("energy_monotone", "==", True, "porous-medium energy decreases")], toy=_TOY),
    Preset("crowd", "Crowd motion with congestion (density <= kappa) towards an exit.",
           ["kappa", "max_density_max", "congestion_ratio_max", "energy_monotone"],
           [Claim("congestion_ratio_max", "<=", 1.0 + 1e-6, "crowd motion: density never exceeds kappa")],
           toy=_TOY),
    Preset("aggregation", "Attractive-repulsive aggregation of three blobs.",
           ["energy_initial", "energy_final", "energy_monotone", "mass_error_max"],
           [Claim("mass_error_max", "<=", 1e-9, "aggregation conserves mass"),
            Claim("energy_monotone", "==", True, "aggregation energy decreases")], toy=_TOY),
    Preset("keller_segel", "Keller-Segel below the critical mass (M = 6 < 8): the density spreads; "
           "second moment against the virial identity dM2/dt = 4 D (1 - M / M_crit).",
           ["critical_mass", "m2_initial", "m2_final", "m2_rate", "m2_rate_virial", "energy_monotone"],
           [Claim("spreads", "==", True, "sub-critical Keller-Segel spreads"),
            Claim("m2_rate_error", "<=", 0.02, "dM2/dt = 4 D (1 - M / (8 pi D / chi)), relative to 4 D"),
            Claim("mass_error_max", "<=", 1e-9, "Keller-Segel conserves mass"),
            Claim("energy_monotone", "==", True, "Keller-Segel free energy decreases")], toy=_TOY),
    Preset("keller_segel_supercritical", "Keller-Segel above the critical mass (M = 10 > 8): the "
           "density concentrates; second moment against the virial identity.",
           ["critical_mass", "m2_initial", "m2_final", "m2_rate", "m2_rate_virial", "energy_monotone"],
           [Claim("spreads", "==", False, "super-critical Keller-Segel concentrates"),
            Claim("m2_rate_error", "<=", 0.1, "dM2/dt = 4 D (1 - M / M_crit) until the grid scale, "
                  "relative to 4 D"),
            Claim("energy_monotone", "==", True, "Keller-Segel free energy decreases")], toy=_TOY),
    Preset("double_well_langevin", "Double-well Fokker-Planck vs 2000 Langevin particles.",
           ["langevin_distance", "langevin_sampling_q95", "langevin_agrees", "gibbs_l1_final"],
           [Claim("langevin_agrees", "==", True,
                  "JKO density and Langevin particles agree within the particles' sampling error")],
           toy=[*_TOY, "solver.particles=200"]),
]


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.resolve_dtype(cfg, "cpu")
    C.integer(cfg, "steps", minimum=1)
    if C.get(cfg, "final_time") is not None:
        C.number(cfg, "final_time", positive=True)
        if _steps(cfg) < 1:
            raise ConfigError(f"final_time={cfg.final_time} is shorter than one step solver.tau={cfg.solver.tau}")
    C.boolean(cfg, "resume")
    C.threads(cfg)
    C.integer(cfg, "grid.size", minimum=8)
    dim = C.integer(cfg, "grid.dim", minimum=1, maximum=3)
    lo, hi = C.number(cfg, "grid.lo"), C.number(cfg, "grid.hi")
    if not hi > lo:
        raise ConfigError(f"grid.hi must be > grid.lo, got lo={lo} hi={hi}")
    C.integer(cfg, "output.snapshots", minimum=2)
    C.integer(cfg, "output.gif_frames", minimum=0)
    C.integer(cfg, "output.checkpoint_every", minimum=0)

    solver = C.choice(cfg, "solver.name", SOLVERS)
    C.number(cfg, "solver.tau", positive=True)
    C.number(cfg, "solver.gamma_factor", positive=True)
    C.number(cfg, "solver.gamma", positive=True, allow_none=True)
    share = C.number(cfg, "solver.blur_share", minimum=0.0)
    if not share < 1.0:
        raise ConfigError(f"solver.blur_share must be in [0, 1), got {share}")
    C.number(cfg, "solver.tol", positive=True)
    C.integer(cfg, "solver.inner_max", minimum=1)
    C.integer(cfg, "solver.check_every", minimum=1)
    if C.get(cfg, "solver.overrelax") != "auto":
        omega = C.number(cfg, "solver.overrelax")
        if not 1.0 <= omega < 2.0:
            raise ConfigError(f"solver.overrelax must be in [1, 2) or auto, got {omega}")
    trunc = C.number(cfg, "solver.truncation", positive=True, allow_none=True)
    if trunc is not None and not trunc < 1.0:
        raise ConfigError(f"solver.truncation must be in (0, 1) or null, got {trunc}")
    C.choice(cfg, "solver.log_domain", ["auto", True, False])
    C.boolean(cfg, "solver.debias")

    name = C.choice(cfg, "energy.name", ENERGIES)
    if name in ("heat", "fokker_planck", "crowd", "aggregation"):
        C.number(cfg, "energy.diffusion", minimum=0.0)
    if name in ("heat", "fokker_planck"):
        C.number(cfg, "energy.diffusion", positive=True)
    if name == "fokker_planck":
        pot = C.choice(cfg, "energy.potential.name", POTENTIALS)
        if pot == "quadratic":
            C.vector(cfg, "energy.potential.mean", dim, allow_none=True)
        elif pot == "double_well":
            C.vector(cfg, "energy.potential.center", dim, allow_none=True)
            C.number(cfg, "energy.potential.width", positive=True)
            C.number(cfg, "energy.potential.depth", minimum=0.0)
            C.number(cfg, "energy.potential.stiffness", minimum=0.0)
    if name == "porous_medium":
        m = C.number(cfg, "energy.m")
        if not m > 1:
            raise ConfigError(f"energy.m must be > 1 for the porous medium, got {m}")
    if name == "crowd":
        C.number(cfg, "energy.kappa", positive=True)
        C.vector(cfg, "energy.exit_lo", dim)
        C.vector(cfg, "energy.exit_hi", dim)
    if name == "aggregation":
        C.choice(cfg, "energy.kernel.kind", ["power", "expr"])
    if name == "keller_segel":
        C.number(cfg, "energy.diffusion", positive=True)
        C.number(cfg, "energy.mass", positive=True)
        C.number(cfg, "energy.chi", positive=True)
        if dim != 2:
            raise ConfigError(f"energy=keller_segel is 2-D (the Newtonian kernel); got grid.dim={dim}")
    if solver == "langevin":
        if name not in ("heat", "fokker_planck", "aggregation"):
            raise ConfigError(f"solver=langevin needs energy heat, fokker_planck or aggregation "
                              f"(a particle SDE); got energy={name}")
        C.integer(cfg, "solver.particles", minimum=10)
        C.integer(cfg, "solver.substeps", minimum=1)
        C.integer(cfg, "solver.repeats", minimum=2)
        C.integer(cfg, "solver.projections", minimum=1)

    init = C.choice(cfg, "initial.name", INITIALS)
    if init == "gaussian":
        C.vector(cfg, "initial.mean", dim, allow_none=True)
        std = C.vector(cfg, "initial.std", dim, allow_scalar=True)
        if min(std if isinstance(std, list) else [std]) <= 0:
            raise ConfigError(f"initial.std must be > 0, got {std}")
    elif init == "barenblatt":
        mb = C.number(cfg, "initial.m")
        if not mb > 1:
            raise ConfigError(f"initial.m must be > 1, got {mb}")
        C.number(cfg, "initial.t0", positive=True)
        C.vector(cfg, "initial.center", dim, allow_none=True)
    elif init == "box":
        C.vector(cfg, "initial.lo", dim)
        C.vector(cfg, "initial.hi", dim)
    elif init == "npy":
        from pathlib import Path

        path = Path(str(C.get(cfg, "initial.path"))).expanduser()
        if not path.is_file():
            raise ConfigError(f"initial.path: file {path} not found")
    # build the pieces that can reject their parameters (cheap, small grid)
    try:
        _build_energy(cfg, _grid(cfg, "cpu", None, size=8))
    except ConfigError:
        raise
    except (ValueError, KeyError, SyntaxError, TypeError, NameError) as exc:
        raise ConfigError(f"energy: {exc}") from None


# ----------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------
def _steps(cfg: DictConfig) -> int:
    """``steps``, or ``round(final_time / solver.tau)`` when ``final_time`` is set."""
    if cfg.get("final_time") is None:
        return int(cfg.steps)
    return int(round(float(cfg.final_time) / float(cfg.solver.tau)))


def _grid(cfg: DictConfig, device: str, dtype, size: int | None = None):
    import torch

    from wgf_cli.ot.grid import Grid

    return Grid.regular(size or int(cfg.grid.size), int(cfg.grid.dim), float(cfg.grid.lo),
                        float(cfg.grid.hi), dtype or torch.float64, device)


def _spec(node) -> dict[str, Any]:
    """A config group (``cfg.energy``, ``cfg.initial``) as the plain mapping the engine takes."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)


def _build_energy(cfg: DictConfig, grid):
    from wgf_cli.flows.energies import build_energy

    return build_energy(_spec(cfg.energy), grid)


# ----------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------
def run(cfg: DictConfig, run) -> dict[str, Any]:
    import torch

    from wgf_cli.flows import references as R
    from wgf_cli.flows.initial import build_initial
    from wgf_cli.flows.jko import EntropicJKO, energy_decrease, entropic_gamma
    from wgf_cli.ot.metrics import grid_w2

    t_start = time.perf_counter()
    device = C.resolve_device(cfg)
    dtype = C.resolve_dtype(cfg, device)
    torch.manual_seed(int(cfg.seed))
    threads = C.resolve_threads(cfg, int(cfg.grid.size) ** int(cfg.grid.dim), device)
    grid = _grid(cfg, device, dtype)
    espec, ispec = _spec(cfg.energy), _spec(cfg.initial)
    energy = _build_energy(cfg, grid)
    rho0 = build_initial(ispec, grid)
    ref = R.closed_form(espec, ispec, grid, energy, rho0)
    s = cfg.solver
    dx = min(grid.spacing)
    gamma = float(s.gamma) if s.gamma is not None else entropic_gamma(
        dx, float(s.tau), energy.diffusion, factor=float(s.gamma_factor),
        blur_share=float(s.blur_share) if s.debias else 0.0)
    flow = EntropicJKO(energy, float(s.tau), gamma, tol=float(s.tol), inner_max=int(s.inner_max),
                       log_domain=s.log_domain, debias=bool(s.debias),
                       check_every=int(s.check_every),
                       overrelax="auto" if s.overrelax == "auto" else float(s.overrelax),
                       truncation=None if s.truncation is None else float(s.truncation))
    if flow.debias and energy.diffusion > 0 and not flow.debias_complete:
        log.warning("debias: blur diffusion %.3g exceeds D=%.3g; compensated only partly",
                    flow.blur_diffusion, energy.diffusion)
    log.info("grid %s on %s/%s, %d thread(s), gamma=%.3g, h=%.3g, sigma=%.3g, blur diffusion "
             "%.3g, kernel band %s", grid.shape, device, dtype, threads, gamma, flow.h, flow.sigma,
             flow.blur_diffusion, flow.geom.band)

    steps = _steps(cfg)
    mass0 = float(rho0.sum())
    e0 = energy.parts(rho0)
    snap_every = max(1, steps // (int(cfg.output.snapshots) - 1))
    gif_every = max(1, steps // max(1, int(cfg.output.gif_frames)))
    ckpt_every = int(cfg.output.checkpoint_every)

    state = {"rho": rho0, "step": 0, "energies": [sum(e0.values())], "mass_err": [0.0],
             "entropy": [e0.get("entropy", 0.0)],
             "frames": [(0.0, rho0.cpu())], "snaps": [(0.0, rho0.cpu())], "times": [0.0],
             "l1": [], "w2": [], "iters": [], "conv": [], "logd": [], "maxd": [],
             "w2_steps": {0, steps} | set(range(snap_every, steps + 1, snap_every))}
    if bool(cfg.resume) and (ck := run.load_checkpoint()) is not None:
        state.update({k: v for k, v in ck.items() if k in state})
        state["rho"] = ck["rho"].to(device=device, dtype=dtype)
        init = ck.get("init")  # the warm start; "flow": the rest of the flow's state
        flow.load_state_dict({**ck.get("flow", {}), "warm_start": None if init is None else
                              tuple(x.to(device=device, dtype=dtype) for x in init)})
        run.truncate_metrics(int(ck["step"]))
        log.info("resumed from step %d", ck["step"])
    elif not bool(cfg.resume):
        _log_step(run, 0, 0.0, e0, rho0, mass0, grid, ref, grid_w2, R, state, None, energy)

    with run.progress(steps - state["step"], f"jko {cfg.energy.name}") as bar:
        def on_step(st) -> None:
            k = st.step
            state["step"], state["rho"] = k, st.rho
            state["times"].append(st.t)
            parts = energy.parts(st.rho)
            state["energies"].append(sum(parts.values()))
            state["entropy"].append(parts.get("entropy", 0.0))
            _log_step(run, k, st.t, parts, st.rho, mass0, grid, ref, grid_w2, R, state, st, energy)
            if k % snap_every == 0 or k == steps:
                state["snaps"].append((st.t, st.rho.cpu()))
            if k % gif_every == 0 or k == steps:
                state["frames"].append((st.t, st.rho.cpu()))
            if ckpt_every and (k % ckpt_every == 0 or k == steps):
                fs = flow.state_dict()
                run.save_checkpoint({**state, "rho": st.rho.cpu(),
                                     "init": tuple(x.cpu() for x in fs.pop("warm_start")),
                                     "flow": fs})
            bar.advance(energy=state["energies"][-1], iters=st.inner_iters,
                        **({"l1": state["l1"][-1]} if state["l1"] else {}))

        flow.run(state["rho"], steps - state["step"], start_step=state["step"], keep_steps=False,
                 callback=on_step)

    # the Lagrangian cross-check
    extra: dict[str, Any] = {}
    if s.name == "langevin":
        extra = _langevin(cfg, grid, energy, rho0, state["rho"], steps * flow.h, flow.h, run)

    wall = time.perf_counter() - t_start
    energies = np.asarray(state["energies"])
    dec = energy_decrease(energies, np.asarray(state["entropy"]), energy.diffusion,
                          flow.effective_diffusion)
    summary: dict[str, Any] = {
        "energy": str(cfg.energy.name),
        "steps": steps,
        "grid_size": int(cfg.grid.size),
        "grid_dim": int(cfg.grid.dim),
        "gamma": gamma,
        "h": flow.h,
        "final_time": steps * flow.h,
        "energy_initial": float(energies[0]),
        "energy_final": float(energies[-1]),
        "mass_error_max": float(max(state["mass_err"])),
        "energy_monotone": dec.pop("energy_monotone"),
        "energy_increase_max": dec.pop("energy_increase_max"),
        "reference": ref.name if ref else "none",
        "inner_iters_mean": float(np.mean(state["iters"])) if state["iters"] else 0.0,
        "converged_fraction": float(np.mean(state["conv"])) if state["conv"] else 1.0,
        "log_domain_steps": int(sum(state["logd"])),
        "max_density_max": float(max(state["maxd"])) if state["maxd"] else None,
        "blur_diffusion": flow.blur_diffusion,
        "debias": flow.debias,
        "overrelax_final": flow.omega,
        "kernel_band": int(max(flow.geom.band)),
        "threads": threads,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
    }
    summary.update(dec)  # diffusion_effective, energy_effective_monotone
    if ref is not None:
        summary["l1_error_final"] = state["l1"][-1]
        summary["w2_error_final"] = state["w2"][-1][1]
    if cfg.energy.name == "crowd":
        summary["kappa"] = float(cfg.energy.kappa)
        summary["congestion_ratio_max"] = summary["max_density_max"] / float(cfg.energy.kappa)
    if cfg.energy.name == "keller_segel":
        summary.update(_keller_segel_summary(run, energy))
    if cfg.energy.name == "fokker_planck":
        summary["gibbs_l1_final"] = R.relative_l1(state["rho"], R.gibbs(energy.V, energy.diffusion))
    summary.update(extra)
    summary["wall_s"] = round(wall, 3)
    if state["conv"] and not all(state["conv"]):
        worst = max(r["marginal_error"] for r in run.read_metrics() if "marginal_error" in r)
        log.warning("%d of %d steps stopped before solver.tol=%g (largest marginal error %.2g): "
                    "raise solver.inner_max or solver.gamma_factor, or see docs/known-limits.md",
                    len(state["conv"]) - sum(state["conv"]), len(state["conv"]),
                    float(cfg.solver.tol), worst)

    from wgf_cli.experiments import jko_plots

    jko_plots.save_outputs(run, cfg, grid, state, ref, energies)
    run.save_summary(summary)
    return summary


def _keller_segel_summary(run, energy) -> dict[str, Any]:
    """The second moment's slope against the whole-plane virial identity."""
    rows = [r for r in run.read_metrics() if "m2" in r]
    t = np.array([r["t"] for r in rows])
    m2 = np.array([r["m2"] for r in rows])
    rate = float(np.polyfit(t, m2, 1)[0]) if len(t) > 1 else float("nan")
    virial = energy.virial_rate()
    return {"critical_mass": energy.critical_mass, "mass": energy.mass, "m2_initial": float(m2[0]),
            "m2_final": float(m2[-1]), "m2_rate": rate, "m2_rate_virial": virial,
            "m2_rate_error": abs(rate - virial) / (4 * energy.diffusion),
            "spreads": bool(m2[-1] > m2[0])}


def _log_step(run, k, t, parts, rho, mass0, grid, ref, grid_w2, R, state, st, energy=None) -> None:
    mass = float(rho.sum())
    state["mass_err"].append(abs(mass - mass0) / mass0)
    maxd = float(rho.max()) / grid.cell_volume
    row: dict[str, Any] = {"t": t, "energy": sum(parts.values())}
    row.update({f"energy_{k_}": v for k_, v in parts.items()})
    row.update(mass=mass, max_density=maxd)
    if hasattr(energy, "second_moment"):
        row.update(m2=energy.second_moment(rho))
    if st is not None:
        state["iters"].append(st.inner_iters)
        state["conv"].append(st.converged)
        state["logd"].append(st.log_domain)
        state["maxd"].append(maxd)
        row.update(transport_cost=st.transport_cost, inner_iters=st.inner_iters,
                   marginal_error=st.marginal_error, converged=st.converged,
                   log_domain=st.log_domain, wall_s=round(st.wall_s, 5))
    if ref is not None:
        exact = ref.at(t)
        l1 = R.relative_l1(rho, exact)
        state["l1"].append(l1)
        row.update(l1_error=l1)
        # the (sliced) W2 costs a few sorts of the grid: at snapshot steps and the last one
        if k in state["w2_steps"]:
            w2 = grid_w2(grid, rho, exact, n_projections=32)
            state["w2"].append((t, w2))
            row.update(w2_error=w2)
    run.log_metrics(k, **row)


def _langevin(cfg, grid, energy, rho0, rho_final, t_final, h, run) -> dict[str, Any]:
    """The Lagrangian cross-check (:func:`wgf_cli.flows.langevin.cross_check`) on a float64 CPU copy."""
    import torch

    from wgf_cli.flows import langevin as L

    s = cfg.solver
    energy_cpu = _build_energy(cfg, grid.to(dtype=torch.float64, device="cpu"))
    res = L.cross_check(energy_cpu, rho0, rho_final, t_final, h, particles=int(s.particles),
                        substeps=int(s.substeps), repeats=int(s.repeats), projections=int(s.projections),
                        seed=int(cfg.seed))
    run.save_arrays("particles", x=res.x.numpy(), x0=res.x0.numpy())
    err = res.error
    return {"langevin_particles": int(s.particles), "langevin_distance": res.distance,
            "langevin_sampling_mean": err.mean, "langevin_sampling_q95": err.q95,
            "langevin_sampling_threshold": err.threshold,
            "langevin_agrees": res.agrees}
