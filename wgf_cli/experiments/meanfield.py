"""`wgf meanfield`: two-layer ReLU networks in the mean-field limit.

``mode=train`` runs one method (``gd``, ``sgd``, ``jko_grid``, ``wprox``); ``mode=compare`` runs
gd, the grid Wasserstein gradient flow and wprox from the same initial neurons on one time
axis, with the blur-matched and step-matched particle runs that set the tolerance of the
gd-vs-grid comparison; ``mode=width`` measures how fast finite-width gd approaches a wide
reference.  ``metrics.csv`` has one row per record and method (``method, t, loss, test_loss,
grad_norm``, and ``dist_to_reference`` where a reference exists); ``summary.json`` the keys of
:data:`SUMMARY_KEYS`; snapshots go to ``particles.npz`` / ``grid.npz`` / ``width.npz``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C
from wgf_cli.presets import Claim, Preset

log = logging.getLogger(__name__)

MODES = ["train", "compare", "width"]
METHODS = ["gd", "sgd", "jko_grid", "wprox"]
TARGETS = ["teacher", "abs", "sin", "csv"]
DISTANCES = ["emd", "entropic", "sliced"]

SUMMARY_KEYS = {
    "mode": "train | compare | width",
    "method": "the method of a train run (compare: the methods joined by +; width: gd)",
    "m": "number of neurons (width: the reference width)",
    "final_loss": "training loss at T (compare: of gd)",
    "final_test_loss": "test loss at T (compare: of gd)",
    "wall_s": "wall time of the run (plots and arrays excluded)",
    "loss_monotone": "train: the loss never increased between records (slack 1e-12)",
    "blur_diffusion": "jko_grid: extra diffusion of the entropic blur, s^2/(2h) ~ gamma/(4h)",
    "inner_iters_mean": "jko_grid / wprox: mean inner iterations per step",
    "max_w2_gd_vs_wgf": "compare: max over the measurement times of W2(gd particles, grid measure)",
    "max_sliced_w2_gd_vs_wgf": "compare: the same with the sliced W2",
    "w2_initial": "compare: W2(gd particles, grid measure) at t=0 (quantisation on the grid)",
    "w2_blur_bound": "compare: sqrt(2) s with s^2 = 2 D_blur T, the W2 the entropic blur alone moves a "
                     "measure by at T",
    "max_w2_within_blur": "compare: max_w2_gd_vs_wgf <= w2_blur_bound + w2_initial",
    "loss_gap_max": "compare: max_t |F_gd(t) - F_grid(t)|",
    "loss_gap_blur": "compare: max_t |F_gd(t) - F_gd+blur(t)|, gd with Langevin noise of the blur diffusion",
    "loss_gap_step": "compare: max_t |F_gd(t) - F_gd,h(t)|, gd with the JKO time step h",
    "loss_gap_initial": "compare: |F_gd(0) - F_grid(0)| (quantisation of the initial neurons on the grid)",
    "loss_gap_tolerance": "compare: max_t (blur gap + step gap) + initial gap",
    "loss_gap_within_tolerance": "compare: loss_gap_max <= loss_gap_tolerance",
    "loss_gap_wprox_max": "compare: max_t |F_gd(t) - F_wprox(t)|",
    "slope": "width: fitted log-log slope of the output L2 distance at T vs m",
    "slope_ci_low": "width: bootstrap (over seeds) confidence interval of the slope, low end",
    "slope_ci_high": "width: high end",
    "slope_reg_ci_low": "width: regression t-interval of the slope, low end",
    "slope_reg_ci_high": "width: high end",
    "slope_sliced_w2": "width: slope of the sliced W2 of the neuron measures at T",
    "slope_w2": "width: slope of the exact W2 at T (widths within width_study.emd_max_pairs)",
}

#: summary keys shown (first present) per job in the sweep table
HEADLINE = ["slope", "loss_gap_max", "final_loss"]

PRESETS = [
    Preset("compare",
           "Particle gd vs the entropic-JKO Wasserstein gradient flow on a (w, b) grid vs wprox "
           "(exact EMD), same initial neurons (m=1024), teacher target.",
           ["loss_gap_max", "loss_gap_tolerance", "loss_gap_blur", "loss_gap_step",
            "max_w2_gd_vs_wgf", "w2_blur_bound", "max_sliced_w2_gd_vs_wgf", "loss_gap_wprox_max", "final_loss"],
           [Claim("loss_gap_within_tolerance", "==", True,
                  "gd and the grid Wasserstein flow: loss curves agree within blur + time step + "
                  "quantisation"),
            Claim("max_w2_within_blur", "==", True,
                  "W2(gd particles, grid measure) stays within the entropic blur + initial quantisation")],
           figures=["loss.png", "grid_snapshots.png", "trajectories.png", "distance.png"],
           toy=["model.width=128", "time=0.2", "jko.grid_size=32", "jko.box=3.0", "data.size=32",
                "data.test_size=64", "compare.distances_at=2", "wprox.inner_iters=3",
                "output.trajectories=20"],
           full=["dtype=float64", "model.width=4096", "jko.grid_size=256", "jko.h=0.02", "dt=0.002",
                 "wprox.distance=entropic", "wprox.blur=0.02", "wprox.tau=0.02", "compare.distances_at=11"]),
    Preset("width",
           "Finite-width rate: gd at m=16..1024 (8 seeds) vs a width-4096 reference; "
           "log-log slope of the output distance with a bootstrap CI.",
           ["slope", "slope_ci_low", "slope_ci_high", "slope_sliced_w2", "slope_w2"],
           [Claim("slope", "<=", -0.35, "width study: slope <= -0.35 (mean-field rate ~ m^(-1/2))"),
            Claim("slope", ">=", -0.75, "width study: slope >= -0.75")],
           figures=["width.png", "loss.png"],
           toy=["width_study.widths=[4,16]", "width_study.seeds=2", "width_study.reference=64",
                "width_study.times=[0.2]", "time=0.2", "data.size=32", "data.test_size=64",
                "width_study.bootstrap=50"],
           full=["dtype=float64", "width_study.widths=[16,64,256,1024,4096]", "width_study.seeds=8",
                 "width_study.reference=16384", "width_study.emd_max_pairs=67108864",
                 "time=4.0", "dt=0.01", "width_study.times=[1.0,2.0,4.0]"]),
]


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
def _int_list(cfg: DictConfig, key: str, minimum: int) -> list[int]:
    value = C.get(cfg, key)
    if not isinstance(value, ListConfig | list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value):
        raise ConfigError(f"{key} must be a non-empty list of integers >= {minimum}, got {value!r}")
    return [int(v) for v in value]


def _float_list(cfg: DictConfig, key: str) -> list[float]:
    value = C.get(cfg, key)
    if not isinstance(value, ListConfig | list) or not value or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value):
        raise ConfigError(f"{key} must be a non-empty list of positive numbers, got {value!r}")
    return [float(v) for v in value]


def _multiple(a: float, b: float) -> int | None:
    """``a / b`` when it is (numerically) a positive integer, else None."""
    k = round(a / b)
    return k if k >= 1 and math.isclose(k * b, a, rel_tol=1e-9, abs_tol=1e-12) else None


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.resolve_dtype(cfg, "cpu")
    C.threads(cfg)
    mode = C.choice(cfg, "mode", MODES)
    method = C.choice(cfg, "method", METHODS)
    T = C.number(cfg, "time", positive=True)
    dt = C.number(cfg, "dt", positive=True)
    if _multiple(T, dt) is None:
        raise ConfigError(f"time must be a multiple of dt, got time={T} dt={dt}")

    target = C.choice(cfg, "data.target", TARGETS)
    C.integer(cfg, "data.size", minimum=1)
    C.integer(cfg, "data.test_size", minimum=1)
    dim = C.integer(cfg, "data.dim", minimum=2)
    x_range = C.number(cfg, "data.x_range", positive=True)
    C.number(cfg, "data.noise", minimum=0.0)
    C.integer(cfg, "data.teacher_neurons", minimum=1)
    C.number(cfg, "data.frequency", positive=True)
    C.integer(cfg, "data.seed", minimum=0)
    if target == "csv":
        path = C.get(cfg, "data.path")
        if path is None or not Path(str(path)).expanduser().is_file():
            raise ConfigError(f"data.path: csv file {path} not found (needed by data.target=csv)")
        with open(Path(str(path)).expanduser(), encoding="utf-8") as fh:
            fh.readline()
            first = fh.readline()
        if len(first.split(",")) != dim:
            raise ConfigError(f"data.path: {path} has {len(first.split(','))} columns; data.dim={dim} "
                              f"needs {dim - 1} inputs and 1 label")

    C.integer(cfg, "model.width", minimum=1)
    std = C.number(cfg, "model.init_std", positive=True)
    train_alpha = C.boolean(cfg, "model.train_alpha")
    C.number(cfg, "model.weight_decay", minimum=0.0)
    C.integer(cfg, "sgd.batch_size", minimum=1)
    if method == "sgd" and mode == "train" and int(cfg.sgd.batch_size) > int(cfg.data.size):
        raise ConfigError(f"sgd.batch_size must be <= data.size={cfg.data.size}, got {cfg.sgd.batch_size}")

    C.choice(cfg, "wprox.distance", DISTANCES)
    tau = C.number(cfg, "wprox.tau", positive=True)
    C.integer(cfg, "wprox.inner_iters", minimum=1)
    C.number(cfg, "wprox.inner_lr", positive=True, maximum=1.0)
    C.number(cfg, "wprox.blur", positive=True)
    C.integer(cfg, "wprox.projections", minimum=1)
    C.integer(cfg, "output.snapshots", minimum=2)
    C.integer(cfg, "output.trajectories", minimum=0)

    uses = set(_methods(cfg)) if mode != "width" else {"gd"}
    if "wprox" in uses and _multiple(T, tau) is None:
        raise ConfigError(f"time must be a multiple of wprox.tau, got time={T} wprox.tau={tau}")
    if "jko_grid" in uses:
        if dim != 2:
            raise ConfigError(f"method jko_grid needs data.dim=2 (one input + bias: the (w, b) plane), "
                              f"got data.dim={dim}")
        if train_alpha:
            raise ConfigError("method jko_grid keeps the output weights at +-1: set model.train_alpha=false")
        size = C.integer(cfg, "jko.grid_size", minimum=8)
        box = C.number(cfg, "jko.box", positive=True)
        h = C.number(cfg, "jko.h", positive=True)
        C.number(cfg, "jko.gamma_factor", positive=True)
        C.choice(cfg, "jko.linearize", ["step", "inner"])
        relax = C.number(cfg, "jko.relax", positive=True)
        if relax > 1:
            raise ConfigError(f"jko.relax must be in (0, 1], got {relax}")
        C.number(cfg, "jko.tol", positive=True)
        C.integer(cfg, "jko.inner_max", minimum=1)
        C.choice(cfg, "jko.init", ["particles", "gaussian"])
        if _multiple(T, h) is None:
            raise ConfigError(f"time must be a multiple of jko.h, got time={T} jko.h={h}")
        if mode == "compare":
            if _multiple(h, dt) is None:
                raise ConfigError(f"jko.h must be a multiple of dt in mode=compare, got h={h} dt={dt}")
            if "wprox" in uses and _multiple(h, tau) is None:
                raise ConfigError(f"jko.h must be a multiple of wprox.tau in mode=compare, got h={h} "
                                  f"tau={tau}")
        if box < 3.0 * std:
            raise ConfigError(f"jko.box={box} does not hold the initial neurons: need >= 3 * "
                              f"model.init_std = {3 * std:g}")
        cell = 2.0 * box / size
        scale = min(std, x_range)
        if cell > scale / 4.0:
            need = math.ceil(8.0 * box / scale)
            raise ConfigError(f"jko.grid_size={size} too coarse for the data scale: cell {cell:.3g} > "
                              f"min(model.init_std, data.x_range)/4 = {scale / 4:.3g}; use "
                              f"jko.grid_size >= {need}")
    if mode == "compare":
        C.integer(cfg, "compare.distances_at", minimum=2)
        C.integer(cfg, "compare.emd_max_pairs", minimum=1)
    if mode == "width":
        widths = _int_list(cfg, "width_study.widths", 1)
        if len(set(widths)) < 2:
            raise ConfigError(f"width_study.widths needs at least two distinct widths, got {widths}")
        ref = C.integer(cfg, "width_study.reference", minimum=2)
        if ref <= max(widths):
            raise ConfigError(f"width_study.reference must exceed the widths (max {max(widths)}), got {ref}")
        C.integer(cfg, "width_study.seeds", minimum=2)
        for t in _float_list(cfg, "width_study.times"):
            if t > T * (1 + 1e-12) or _multiple(t, dt) is None:
                raise ConfigError(f"width_study.times must be multiples of dt={dt} and <= time={T}, got {t}")
        C.integer(cfg, "width_study.projections", minimum=1)
        C.integer(cfg, "width_study.emd_max_pairs", minimum=1)
        C.integer(cfg, "width_study.bootstrap", minimum=10)
        level = C.number(cfg, "width_study.level")
        if not 0 < level < 1:
            raise ConfigError(f"width_study.level must be in (0, 1), got {level}")


def _methods(cfg: DictConfig) -> list[str]:
    if str(cfg.mode) == "compare":
        value = C.get(cfg, "compare.methods")
        if not isinstance(value, ListConfig | list) or not value or not all(v in ("gd", "jko_grid", "wprox")
                                                                             for v in value):
            raise ConfigError(f"compare.methods must be a list of gd, jko_grid, wprox, got {value!r}")
        if "gd" not in value or "jko_grid" not in value:
            raise ConfigError(f"compare.methods must contain gd and jko_grid, got {list(value)}")
        return [str(v) for v in value]
    return [str(cfg.method)]


# ----------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------
def _setup(cfg: DictConfig):
    import torch

    from wgf_cli.meanfield.data import make_dataset

    device = C.resolve_device(cfg)
    dtype = C.resolve_dtype(cfg, device)
    # the largest per-op work: neurons x training points, or the jko_grid's cells
    C.resolve_threads(cfg, max(int(cfg.model.width) * int(cfg.data.size),
                               int(cfg.jko.grid_size) ** 2), device)
    torch.manual_seed(int(cfg.seed))
    d = cfg.data
    gen = torch.Generator().manual_seed(int(d.seed))
    data = make_dataset(str(d.target), int(d.size), int(d.test_size), int(d.dim),
                        x_range=float(d.x_range), noise=float(d.noise),
                        teacher_neurons=int(d.teacher_neurons), frequency=float(d.frequency),
                        path=None if d.path is None else str(d.path), generator=gen,
                        dtype=dtype, device=device)
    return device, dtype, data


def _trainer(cfg: DictConfig, data, method: str, seed_offset: int = 0, **kw):
    import torch

    from wgf_cli.meanfield.particles import ParticleTrainer

    w = cfg.wprox
    dt = float(cfg.wprox.tau) if method == "wprox" else float(kw.pop("dt", cfg.dt))
    return ParticleTrainer(
        data, "gd" if method == "gd" else method, dt,
        weight_decay=float(cfg.model.weight_decay), train_alpha=bool(cfg.model.train_alpha),
        batch_size=int(cfg.sgd.batch_size), distance=str(w.distance), inner_iters=int(w.inner_iters),
        inner_lr=float(w.inner_lr), blur=float(w.blur), projections=int(w.projections),
        generator=torch.Generator().manual_seed(int(cfg.seed) * 7919 + 17 + seed_offset), **kw)


def _init(cfg: DictConfig, m: int, seed: int, device, dtype):
    import torch

    from wgf_cli.meanfield.network import init_particles

    return init_particles(m, int(cfg.data.dim), float(cfg.model.init_std),
                          torch.Generator().manual_seed(seed), dtype=dtype, device=device)


def _grid_flow(cfg: DictConfig, data, device, dtype):
    from wgf_cli.meanfield.grid_flow import GridJKO, MeanFieldGrid
    from wgf_cli.ot.grid import Grid

    j = cfg.jko
    grid = Grid.regular(int(j.grid_size), 2, -float(j.box), float(j.box), dtype, device)
    problem = MeanFieldGrid(grid, data, float(cfg.model.weight_decay))
    gamma = float(j.gamma_factor) * grid.spacing[0] ** 2
    flow = GridJKO(problem, float(j.h), gamma, linearize=str(j.linearize), relax=float(j.relax),
                   tol=float(j.tol), inner_max=int(j.inner_max))
    return problem, flow


def _snap_steps(steps: int, count: int) -> list[int]:
    return sorted({round(i * steps / (count - 1)) for i in range(count)})


# ----------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------
def run(cfg: DictConfig, run) -> dict[str, Any]:
    t_start = time.perf_counter()
    device, dtype, data = _setup(cfg)
    log.info("data: %s, n=%d, d=%d on %s/%s", data.target, data.x.shape[0], data.dim, device, dtype)
    mode = str(cfg.mode)
    if mode == "width":
        summary = _run_width(cfg, run, data, device, dtype)
    elif mode == "compare":
        summary = _run_compare(cfg, run, data, device, dtype)
    else:
        summary = _run_train(cfg, run, data, device, dtype)
    summary["device"] = device
    summary["dtype"] = str(dtype).replace("torch.", "")
    summary["wall_s"] = round(time.perf_counter() - t_start - summary.pop("_plot_s", 0.0), 3)
    run.save_summary(summary)
    return summary


def _log_particles(run, method: str, res, offset: int, extra: dict | None = None) -> int:
    """Write a particle run's records to metrics; returns the next free step index."""
    for i, t in enumerate(res.times):
        row = {"method": method, "t": t, "loss": res.loss[i], "test_loss": res.test_loss[i],
               "grad_norm": res.grad_norm[i]}
        if extra and i in extra:
            row.update(extra[i])
        run.log_metrics(offset + i, **row)
    return offset + len(res.times)


def _run_particles(cfg, run, data, method, W, a, record_every, snap_steps, desc, **kw):
    trainer = _trainer(cfg, data, method, **kw)
    steps = round(float(cfg.time) / trainer.dt)
    inner = []
    with run.progress(steps + 1, desc) as bar:
        def cb(k, t, info, W_, a_):
            inner.append(info.inner_iters)
            bar.advance(loss=info.loss)

        res = trainer.run(W, a, steps, record_every=record_every, snapshot_steps=set(snap_steps),
                          callback=cb)
    return trainer, res, inner


def _run_train(cfg, run, data, device, dtype) -> dict[str, Any]:
    from wgf_cli.experiments import meanfield_plots as P

    method, m, T = str(cfg.method), int(cfg.model.width), float(cfg.time)
    W0, a0 = _init(cfg, m, int(cfg.seed), device, dtype)
    summary: dict[str, Any] = {"mode": "train", "method": method, "m": m}
    if method == "jko_grid":
        problem, flow = _grid_flow(cfg, data, device, dtype)
        r, state = _grid_run(cfg, run, problem, flow, W0, a0, 0, "jko_grid")
        summary.update(final_loss=state["loss"][-1], final_test_loss=state["test_loss"][-1],
                       blur_diffusion=flow.blur_diffusion,
                       inner_iters_mean=float(np.mean(state["iters"])),
                       converged_fraction=float(np.mean(state["conv"])),
                       loss_monotone=_monotone(state["loss"]))
        t0 = time.perf_counter()
        P.grid_snapshots(run, problem, state["snaps"])
        P.loss_curves(run, {"jko_grid": (state["times"], state["loss"], state["test_loss"])})
        P.output_snapshots(run, data, [(t, problem.predict(rr, data.x_test)) for t, rr in state["snaps"]])
        summary["_plot_s"] = time.perf_counter() - t0
        return summary
    dt = float(cfg.wprox.tau) if method == "wprox" else float(cfg.dt)
    steps = round(T / dt)
    snaps = _snap_steps(steps, int(cfg.output.snapshots))
    record = max(1, steps // 400)
    trainer, res, inner = _run_particles(cfg, run, data, method, W0, a0, record, snaps, method)
    _log_particles(run, method, res, 0)
    summary.update(final_loss=res.loss[-1], final_test_loss=res.test_loss[-1],
                   loss_monotone=_monotone(res.loss), steps=steps, dt=dt)
    if method == "wprox":
        summary["inner_iters_mean"] = float(np.mean(inner[:-1])) if len(inner) > 1 else 0.0
        summary["distance"] = str(cfg.wprox.distance)
    _save_particle_arrays(run, res)
    t0 = time.perf_counter()
    P.loss_curves(run, {method: (res.times, res.loss, res.test_loss)})
    P.trajectories(run, res.snapshots, int(cfg.output.trajectories))
    P.output_snapshots(run, data, [(t, _predict(W, a, data.x_test)) for t, W, a in res.snapshots])
    summary["_plot_s"] = time.perf_counter() - t0
    return summary


def _predict(W, a, x):
    from wgf_cli.meanfield.network import predict

    return predict(W, a, x)


def _monotone(losses) -> bool:
    v = np.asarray(losses, dtype=float)
    return bool((np.diff(v) <= 1e-12 * max(1.0, float(np.abs(v).max()))).all())


def _save_particle_arrays(run, res, name: str = "particles") -> None:
    run.save_arrays(name, t=np.array([s[0] for s in res.snapshots]),
                    W=np.stack([s[1].cpu().numpy() for s in res.snapshots]),
                    alpha=np.stack([s[2].cpu().numpy() for s in res.snapshots]),
                    times=np.array(res.times), loss=np.array(res.loss))


def _grid_run(cfg, run, problem, flow, W0, a0, offset: int, method: str,
              dist_fn=None, dist_steps: set[int] | None = None):
    """The grid flow from the initial neurons; logs one row per step."""
    T, h = float(cfg.time), flow.h
    steps = round(T / h)
    r = (problem.from_particles(W0, a0) if str(cfg.jko.init) == "particles"
         else problem.gaussian(float(cfg.model.init_std)))
    snaps = set(_snap_steps(steps, int(cfg.output.snapshots)))
    state = {"times": [], "loss": [], "test_loss": [], "iters": [], "conv": [], "snaps": [],
             "grid_snaps": {}}
    x_t, y_t = problem.data.x_test, problem.data.y_test

    def record(k, r, st):
        t = k * h
        row = {"method": method, "t": t, "loss": problem.loss(r), "test_loss": problem.loss(r, x_t, y_t),
               "grad_norm": problem.velocity_norm(r), "mass": float(r.sum())}
        if st is not None:
            row.update(inner_iters=st.inner_iters, marginal_error=st.marginal_error,
                       converged=st.converged, log_domain=st.log_domain, wall_s=round(st.wall_s, 5))
            state["iters"].append(st.inner_iters)
            state["conv"].append(st.converged)
        state["times"].append(t)
        state["loss"].append(row["loss"])
        state["test_loss"].append(row["test_loss"])
        if k in snaps:
            state["snaps"].append((t, r.clone()))
        if dist_steps is not None and k in dist_steps:
            state["grid_snaps"][k] = r.clone()
        run.log_metrics(offset + k, **row)

    record(0, r, None)
    with run.progress(steps, "jko_grid") as bar:
        for k in range(1, steps + 1):
            st = flow.step(r)
            r = st.r
            record(k, r, st)
            bar.advance(loss=st.loss, iters=st.inner_iters)
    axes = np.stack([a.cpu().numpy() for a in problem.grid.axes])
    run.save_arrays("grid", axes=axes, t=np.array([t for t, _ in state["snaps"]]),
                    r=np.stack([x.cpu().numpy() for _, x in state["snaps"]]),
                    alphas=problem.alphas.cpu().numpy())
    return r, state


def _run_compare(cfg, run, data, device, dtype) -> dict[str, Any]:
    import torch

    from wgf_cli.experiments import meanfield_plots as P
    from wgf_cli.meanfield import distances as Dm

    methods = _methods(cfg)
    m, T, dt, h = int(cfg.model.width), float(cfg.time), float(cfg.dt), float(cfg.jko.h)
    W0, a0 = _init(cfg, m, int(cfg.seed), device, dtype)
    problem, flow = _grid_flow(cfg, data, device, dtype)
    grid_steps = round(T / h)
    dist_grid = set(_snap_steps(grid_steps, int(cfg.compare.distances_at)))
    log.info("compare m=%d T=%g dt=%g h=%g gamma=%.3g blur diffusion %.3g", m, T, dt, h, flow.gamma,
             flow.blur_diffusion)

    # the grid flow first: its measures at the measurement times are the reference
    offset = 0
    r, gstate = _grid_run(cfg, run, problem, flow, W0, a0, offset, "jko_grid", dist_steps=dist_grid)
    offset += len(gstate["times"])
    n_proj = int(cfg.width_study.projections)
    max_pairs = int(cfg.compare.emd_max_pairs)
    pts = problem.points

    def distances_to_grid(res, exact: bool = True) -> dict[int, dict[str, float]]:
        """W2 (if ``exact``) / sliced W2 of the particle snapshots to the grid measure at the
        same time, keyed by the record index of the particle run."""
        out = {}
        times = np.asarray(res.times)
        for t, W, a in res.snapshots:
            gp, gw, gs = Dm.grid_support(pts, gstate["grid_snaps"][round(t / h)], problem.alphas,
                                         rel_threshold=1e-8)
            w = Dm.uniform(W)
            out[int(np.argmin(np.abs(times - t)))] = {
                "dist_to_reference": Dm.w2(W, w, a, gp, gw, gs, max_pairs=max_pairs if exact else 0),
                "sliced_w2_to_reference": Dm.sliced_w2(W, w, a, gp, gw, gs, n_projections=n_proj,
                                                       seed=int(cfg.seed))}
        return out

    def particle(method, seed_offset=0, **kw):
        trainer = _trainer(cfg, data, method, seed_offset, **kw)
        step_dt = trainer.dt
        steps = round(T / step_dt)
        every = round(h / step_dt)
        snap_steps = {k * every for k in dist_grid}
        with run.progress(steps + 1, method) as bar:
            res = trainer.run(W0, a0, steps, record_every=every, snapshot_steps=snap_steps,
                              callback=lambda *args: bar.advance())
        return res

    res_gd = particle("gd")
    d_gd = distances_to_grid(res_gd)
    offset = _log_particles(run, "gd", res_gd, offset, d_gd)
    res_blur = particle("gd", 1, noise=flow.blur_diffusion)
    offset = _log_particles(run, "gd_blur", res_blur, offset)
    res_h = particle("gd", dt=h)
    offset = _log_particles(run, "gd_h", res_h, offset)
    res_wp = None
    if "wprox" in methods:
        res_wp = particle("wprox", 2)
        d_wp = distances_to_grid(res_wp, exact=False)  # EMD for gd only (cost)
        offset = _log_particles(run, "wprox", res_wp, offset, d_wp)

    F_gd, F_grid = np.array(res_gd.loss), np.array(gstate["loss"])
    F_blur, F_h = np.array(res_blur.loss), np.array(res_h.loss)
    gap = np.abs(F_gd - F_grid)
    blur_gap, step_gap = np.abs(F_blur - F_gd), np.abs(F_h - F_gd)
    tolerance = float((blur_gap + step_gap).max() + gap[0])
    w2s = [d_gd[i]["dist_to_reference"] for i in sorted(d_gd)]
    # W2(mu, mu * N(0, s^2 I_2)) <= sqrt(2) s: the entropic blur alone, s^2 = 2 D_blur T
    w2_blur = math.sqrt(2.0 * 2.0 * flow.blur_diffusion * T)
    sw2s = [v["sliced_w2_to_reference"] for v in d_gd.values()]
    summary: dict[str, Any] = {
        "mode": "compare", "method": "+".join(methods), "m": m,
        "final_loss": float(F_gd[-1]), "final_test_loss": float(res_gd.test_loss[-1]),
        "final_loss_jko_grid": float(F_grid[-1]),
        "loss_gap_max": float(gap.max()), "loss_gap_blur": float(blur_gap.max()),
        "loss_gap_step": float(step_gap.max()), "loss_gap_initial": float(gap[0]),
        "loss_gap_tolerance": tolerance, "loss_gap_within_tolerance": bool(gap.max() <= tolerance),
        "max_w2_gd_vs_wgf": float(np.nanmax(w2s)) if not np.isnan(w2s).all() else float("nan"),
        "max_sliced_w2_gd_vs_wgf": float(max(sw2s)),
        "w2_initial": float(w2s[0]),
        "w2_blur_bound": w2_blur,
        "max_w2_within_blur": bool(np.nanmax(w2s) <= w2_blur + w2s[0]) if not np.isnan(w2s).all() else False,
        "blur_diffusion": flow.blur_diffusion, "gamma": flow.gamma, "h": h, "dt": dt,
        "grid_size": int(cfg.jko.grid_size),
        "inner_iters_mean": float(np.mean(gstate["iters"])),
        "converged_fraction": float(np.mean(gstate["conv"])),
    }
    if res_wp is not None:
        F_wp = np.array(res_wp.loss)
        summary["loss_gap_wprox_max"] = float(np.abs(F_wp - F_gd).max())
        summary["final_loss_wprox"] = float(F_wp[-1])
        summary["wprox_distance"] = str(cfg.wprox.distance)
        summary["max_sliced_w2_wprox_vs_wgf"] = float(max(v["sliced_w2_to_reference"] for v in d_wp.values()))
    _save_particle_arrays(run, res_gd)
    if res_wp is not None:
        _save_particle_arrays(run, res_wp, "particles_wprox")

    t0 = time.perf_counter()
    curves = {"gd": (res_gd.times, res_gd.loss, res_gd.test_loss),
              "jko_grid": (gstate["times"], gstate["loss"], gstate["test_loss"]),
              "gd + blur noise": (res_blur.times, res_blur.loss, None),
              "gd, dt = h": (res_h.times, res_h.loss, None)}
    if res_wp is not None:
        curves[f"wprox ({cfg.wprox.distance})"] = (res_wp.times, res_wp.loss, res_wp.test_loss)
    P.loss_curves(run, curves, tolerance=(res_gd.times, F_gd, blur_gap + step_gap + gap[0]))
    P.grid_snapshots(run, problem, gstate["snaps"], particles=res_gd.snapshots)
    P.trajectories(run, res_gd.snapshots, int(cfg.output.trajectories))
    P.distance_curves(run, {"gd": d_gd, **({"wprox": d_wp} if res_wp is not None else {})},
                      {"gd": res_gd.times, "wprox": res_wp.times if res_wp is not None else []})
    P.output_snapshots(run, data, [(t, _predict(W, a, data.x_test)) for t, W, a in res_gd.snapshots],
                       grid=[(t, problem.predict(rr, data.x_test)) for t, rr in gstate["snaps"]])
    summary["_plot_s"] = time.perf_counter() - t0
    del torch
    return summary


def _run_width(cfg, run, data, device, dtype) -> dict[str, Any]:
    import torch

    from wgf_cli.experiments import meanfield_plots as P
    from wgf_cli.meanfield import distances as Dm
    from wgf_cli.meanfield.width import fit_slope

    ws = cfg.width_study
    widths = sorted(set(int(v) for v in ws.widths))
    seeds, M = int(ws.seeds), int(ws.reference)
    T, dt = float(cfg.time), float(cfg.dt)
    steps = round(T / dt)
    times = sorted(float(t) for t in ws.times)
    tsteps = [round(t / dt) for t in times]
    n_proj, max_pairs = int(ws.projections), int(ws.emd_max_pairs)
    base = int(cfg.seed) * 1_000_003

    def gd(m, seed):
        trainer = _trainer(cfg, data, "gd", seed)
        return trainer.run(*_init(cfg, m, seed, device, dtype), steps, record_every=steps,
                           snapshot_steps=set(tsteps))

    with run.progress(1 + len(widths) * seeds, "width") as bar:
        ref = gd(M, base + 999_983)
        bar.advance(m=M)
        refsnap = {round(t / dt): (W, a) for t, W, a in ref.snapshots}
        err = {key: np.full((len(tsteps), len(widths), seeds), np.nan) for key in ("l2", "sw2", "w2")}
        final = np.full((len(widths), seeds), np.nan)
        k = 0
        for s in range(seeds):
            for i, m in enumerate(widths):
                res = gd(m, base + 1000 * s + i + 1)
                final[i, s] = res.loss[-1]
                for j, (t, W, a) in enumerate(sorted(res.snapshots, key=lambda z: z[0])):
                    Wr, ar = refsnap[round(t / dt)]
                    diff = _predict(W, a, data.x_test) - _predict(Wr, ar, data.x_test)
                    l2 = float(torch.sqrt((diff * diff).mean()))
                    wa, wb = Dm.uniform(W), Dm.uniform(Wr)
                    sw2 = Dm.sliced_w2(W, wa, a, Wr, wb, ar, n_projections=n_proj, seed=int(cfg.seed))
                    w2 = Dm.w2(W, wa, a, Wr, wb, ar, max_pairs=max_pairs)
                    err["l2"][j, i, s], err["sw2"][j, i, s], err["w2"][j, i, s] = l2, sw2, w2
                    run.log_metrics(k, method="gd", m=m, seed=s, t=t, output_l2=l2, sliced_w2=sw2, w2=w2,
                                    dist_to_reference=l2)
                    k += 1
                bar.advance(m=m, seed=s)
    level, nb = float(ws.level), int(ws.bootstrap)
    fits = {}
    for key in ("l2", "sw2", "w2"):
        for j, t in enumerate(times):
            e = err[key][j]
            rows = ~np.isnan(e).any(axis=1)
            if rows.sum() >= 2 and (e[rows] > 0).all():
                fits[(key, t)] = fit_slope(np.array(widths)[rows], e[rows], level=level, boot=nb,
                                           seed=int(cfg.seed))
    main = fits[("l2", times[-1])]
    summary: dict[str, Any] = {
        "mode": "width", "method": "gd", "m": M, "widths": widths, "seeds": seeds,
        "final_loss": float(ref.loss[-1]), "final_test_loss": float(ref.test_loss[-1]),
        "slope": main.slope, "slope_ci_low": main.ci_low, "slope_ci_high": main.ci_high,
        "slope_reg_ci_low": main.reg_ci_low, "slope_reg_ci_high": main.reg_ci_high,
        "slope_level": level,
        "slope_sliced_w2": fits[("sw2", times[-1])].slope if ("sw2", times[-1]) in fits else None,
        "slope_w2": fits[("w2", times[-1])].slope if ("w2", times[-1]) in fits else None,
    }
    for (key, t), f in fits.items():
        if key == "l2" and t != times[-1]:
            summary[f"slope_t{t:g}"] = f.slope
    run.save_arrays("width", widths=np.array(widths), times=np.array(times), output_l2=err["l2"],
                    sliced_w2=err["sw2"], w2=err["w2"], final_loss=final, reference=M)
    t0 = time.perf_counter()
    P.width_plot(run, widths, times, err, fits)
    P.loss_curves(run, {f"reference m={M}": (ref.times, ref.loss, ref.test_loss)})
    summary["_plot_s"] = time.perf_counter() - t0
    return summary
