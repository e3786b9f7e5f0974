"""`wgf ot`: optimal transport between two densities, each quantity against a closed form.

Tasks (``task=``):

* ``geodesic``: the W2 geodesic between ``source`` and ``target`` on the grid, by
  Benamou-Brenier (``solver=benamou_brenier``, :mod:`wgf_cli.ot.dynamic`) or from an entropic
  plan's barycentric map (``solver=entropic``); the second route is McCann's displacement
  interpolation of an exact plan (POT); the linear mixture ``(1-t) rho0 + t rho1`` is shown
  beside both.  Against the Gaussian closed forms when both densities are Gaussian (W2^2 =
  |m1 - m0|^2 + Bures^2, the midpoint's mean and covariance) and, in 1-D, the quantile formula.
* ``plans``: entropic plans between the two 1-D densities at each ``eps``: plan images, the
  entropic cost and the Sinkhorn divergence, against W2^2 by quantiles.
* ``map``: the Brenier map from the exact plan's dual potential and by barycentric projection,
  against the affine Gaussian map.
* ``duality``: Kantorovich primal = dual on point clouds sampled from the densities, and
  c-transforms.

Per iteration (``geodesic``, Benamou-Brenier) it logs ``w2sq, residual, divergence, step``;
at the end ``paths.npz`` (or ``plans.npz``, ``map.npz``, ``duality.npz``), the plots and
``summary.json`` (keys in :data:`SUMMARY_KEYS`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C
from wgf_cli.presets import Claim, Preset

log = logging.getLogger(__name__)

TASKS = ["geodesic", "plans", "map", "duality"]
DENSITIES = ["gaussian", "gaussian_mixture"]
SOLVERS = ["benamou_brenier", "entropic"]

SUMMARY_KEYS = {
    "task": "geodesic | plans | map | duality",
    "source": "name of the source density", "target": "name of the target density",
    "solver": "geodesic: benamou_brenier | entropic",
    "grid_size": "cells per axis", "grid_dim": "dimension",
    "w2sq": "the task's W2^2 estimate (geodesic: the solver's; map: int |T(x) - x|^2 drho0 of the "
            "potential map; plans: exact on the grid by quantiles; duality: the primal cost)",
    "w2sq_reference": "closed form: Gaussian |m1-m0|^2 + Bures^2, or 1-D quantiles (null if none)",
    "w2sq_rel_error": "|w2sq / w2sq_reference - 1|",
    "w2sq_exact_plan": "W2^2 of the grid measures from POT's exact plan (ot.emd)",
    "w2sq_exact_rel_error": "|w2sq_exact_plan / w2sq_reference - 1|",
    "solver_vs_exact_rel": "|w2sq / w2sq_exact_plan - 1|: the two routes agree",
    "converged": "the solver reached its tolerance", "n_iters": "solver iterations",
    "residual_final": "Benamou-Brenier: the last splitting mismatch |V - I(U)| / |V|",
    "divergence_max": "Benamou-Brenier: max |d_t rho + div m| of the path (discrete continuity)",
    "mass_error_max": "max_t |mass(rho_t) - 1|",
    "endpoint_l1_error": "relative L1 distance of the path's last frame to the target (0 for "
                         "Benamou-Brenier; entropic: T_# rho0 vs rho1, the plan's blur)",
    "min_density": "smallest density of the path (negative: undershoot of the scheme)",
    "midpoint_mean_error": "|mean(rho_1/2) - closed form| (Gaussians)",
    "midpoint_cov_error": "max |cov(rho_1/2) - closed form| (Gaussians)",
    "midpoint_l1_vs_exact": "relative L1 distance between the solver's and the exact plan's midpoint",
    "midpoint_l1_vs_mixture": "relative L1 distance between the geodesic's and the mixture's midpoint",
    "map_potential_error": "map: L2(rho0) error of x - grad u(x)/2 against the affine map",
    "map_barycentric_error": "map: L2(rho0) error of the barycentric projection against the affine map",
    "eps_min": "plans: the smallest eps", "sinkhorn_divergence_min_eps": "plans: S_eps at eps_min",
    "divergence_rel_error_min_eps": "plans: |S_eps / W2^2 - 1| at eps_min",
    "entropic_value_monotone": "plans: OT_eps = <P, C> + eps KL(P | a x b) increases with eps",
    "plan_cost_above_w2": "plans: <P_eps, C> >= W2^2 at every eps (every plan is feasible)",
    "primal": "duality: <P, C>", "dual": "duality: <a, u> + <b, v>", "duality_gap": "|primal - dual|",
    "c_transform_residual": "duality: max |u - v^c| on the support",
    "ascent_dual_final": "duality: dual value after the alternating c-transforms from v = 0",
    "weak_duality_holds": "duality: every c-transform pair's dual value <= primal",
    "wall_s": "wall time (plots and arrays excluded)",
}

#: summary keys shown (first present) per job in the sweep table
HEADLINE = ["w2sq_rel_error", "w2sq", "duality_gap"]

_TOY = ["grid.size=12", "solver.time_steps=6", "solver.iters=40", "output.snapshots=3"]

PRESETS = [
    Preset("ot_geodesic", "W2 geodesic between two Gaussians on 32^2 by Benamou-Brenier, "
           "against the closed form and an exact plan's displacement interpolation.",
           ["w2sq", "w2sq_reference", "w2sq_rel_error", "w2sq_exact_plan", "midpoint_cov_error",
            "midpoint_l1_vs_exact", "n_iters", "residual_final"],
           [Claim("w2sq_rel_error", "<=", 0.01, "Benamou-Brenier W2^2 vs |m1-m0|^2 + Bures^2"),
            Claim("w2sq_exact_rel_error", "<=", 0.01, "exact plan (POT) W2^2 vs the closed form"),
            Claim("midpoint_mean_error", "<=", 2e-3, "geodesic midpoint mean = (m0 + m1) / 2"),
            Claim("midpoint_cov_error", "<=", 6e-4, "geodesic midpoint covariance: "
                  "((I + A)/2) S0 ((I + A)/2)"),
            Claim("divergence_max", "<=", 1e-8, "the path solves the discrete continuity equation"),
            Claim("converged", "==", True, "Douglas-Rachford reached its tolerance")],
           toy=_TOY, full=["grid.size=128", "solver.time_steps=32"]),
    Preset("ot_plans", "Entropic plans between two 1-D densities as eps grows; Sinkhorn "
           "divergence against W2^2 by quantiles.",
           ["w2sq", "eps_min", "sinkhorn_divergence_min_eps", "divergence_rel_error_min_eps",
            "entropic_value_monotone"],
           [Claim("divergence_rel_error_min_eps", "<=", 0.01, "S_eps -> W2^2 (quantiles) as eps -> 0"),
            Claim("entropic_value_monotone", "==", True, "OT_eps grows with eps"),
            Claim("plan_cost_above_w2", "==", True, "<P_eps, C> >= W2^2: entropic plans are feasible"),
            Claim("converged", "==", True, "Sinkhorn reached its tolerance at every eps"),
            Claim("w2sq_exact_rel_error", "<=", 1e-10, "POT's exact 1-D cost = the quantile formula")],
           toy=["grid.size=20"]),
    Preset("ot_map", "Brenier map between two Gaussians from an exact plan's dual potential and "
           "by barycentric projection, against the affine closed form.",
           ["w2sq", "w2sq_reference", "w2sq_rel_error", "map_potential_error", "map_barycentric_error"],
           [Claim("map_potential_error", "<=", 0.015, "x - grad u / 2 vs the affine Gaussian map (L2(rho0))"),
            Claim("map_barycentric_error", "<=", 0.02, "barycentric projection vs the affine map (L2(rho0))"),
            Claim("w2sq_rel_error", "<=", 0.01, "int |T(x) - x|^2 drho0 vs |m1-m0|^2 + Bures^2")],
           toy=["grid.size=12"]),
    Preset("ot_duality", "Kantorovich primal = dual on point clouds; optimal potentials are "
           "c-transforms of each other.",
           ["primal", "dual", "duality_gap", "c_transform_residual", "ascent_dual_final"],
           [Claim("duality_gap", "<=", 1e-10, "Kantorovich duality: primal = dual"),
            Claim("c_transform_residual", "<=", 1e-10, "u = v^c for the optimal potentials"),
            Claim("weak_duality_holds", "==", True, "every c-transform pair has dual value <= primal")],
           toy=["duality.points_source=20", "duality.points_target=15"]),
]


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _numbers(v: Any) -> bool:
    return isinstance(v, ListConfig | list) and all(_number(x) for x in v)


def _check_density(cfg: DictConfig, role: str, dim: int) -> None:
    name = C.get(cfg, f"{role}.name")
    if name not in DENSITIES:
        raise ConfigError(f"{role}={name} is not a density of wgf ot ({role}: {', '.join(DENSITIES)})")
    if name == "gaussian":
        mean = C.get(cfg, f"{role}.mean")
        if not _numbers(mean) or len(mean) < dim:
            raise ConfigError(f"{role}.mean must be a list of {dim} numbers, got {C._show(mean)}")
        std = C.get(cfg, f"{role}.std")
        stds = [std] if _number(std) else std
        if not _numbers(stds) or not stds or min(stds) <= 0 or 1 < len(stds) < dim:
            raise ConfigError(f"{role}.std must be a number > 0 or {dim} numbers > 0, got {C._show(std)}")
        C.number(cfg, f"{role}.angle")
    else:
        means, stds, weights = (C.get(cfg, f"{role}.{k}") for k in ("means", "stds", "weights"))
        if not (_numbers(stds) and _numbers(weights) and isinstance(means, ListConfig | list)
                and all(_numbers(m) for m in means)):
            raise ConfigError(f"{role}.means must be a list of points, {role}.stds and {role}.weights "
                              "lists of numbers")
        if not (len(means) == len(stds) == len(weights)) or not len(means):
            raise ConfigError(f"{role}.means, {role}.stds and {role}.weights need the same number of entries")
        if any(len(m) < dim for m in means):
            raise ConfigError(f"{role}.means: each mean needs {dim} entries")
        if min(stds) <= 0 or min(weights) < 0 or not sum(weights) > 0:
            raise ConfigError(f"{role}: stds must be > 0 and weights >= 0 (not all 0)")


def check_choices(cfg: DictConfig) -> None:
    """The options of the shared group folders that ``wgf ot`` takes (before resolution)."""
    for role, allowed in (("source", DENSITIES), ("target", DENSITIES)):
        name = cfg.get(role, {}).get("name") if isinstance(cfg.get(role), DictConfig) else None
        if name not in allowed:
            raise ConfigError(f"{role}={name} is not a density of wgf ot ({role}: {', '.join(allowed)})")
    name = cfg.solver.get("name") if isinstance(cfg.get("solver"), DictConfig) else None
    if name not in SOLVERS:
        raise ConfigError(f"solver={name} is not a solver of wgf ot (solver: {', '.join(SOLVERS)})")


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    task = C.choice(cfg, "task", TASKS)
    check_choices(cfg)
    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.resolve_dtype(cfg, "cpu")
    C.threads(cfg)
    size = C.integer(cfg, "grid.size", minimum=8)
    dim = C.integer(cfg, "grid.dim", minimum=1, maximum=2)
    lo, hi = C.number(cfg, "grid.lo"), C.number(cfg, "grid.hi")
    if not hi > lo:
        raise ConfigError(f"grid.hi must be > grid.lo, got lo={lo} hi={hi}")
    del size
    C.integer(cfg, "output.snapshots", minimum=2)
    _check_density(cfg, "source", 1 if task == "plans" else dim)
    _check_density(cfg, "target", 1 if task == "plans" else dim)
    C.boolean(cfg, "exact.enabled")
    C.number(cfg, "exact.threshold", minimum=0.0, maximum=0.5)
    C.integer(cfg, "exact.max_points", minimum=16)
    solver = C.get(cfg, "solver.name")
    if solver not in SOLVERS:
        raise ConfigError(f"solver={solver} is not a solver of wgf ot (solver: {', '.join(SOLVERS)})")
    C.integer(cfg, "solver.time_steps", minimum=2)
    C.integer(cfg, "solver.iters", minimum=1)
    C.number(cfg, "solver.tol", positive=True)
    if solver == "benamou_brenier":
        if C.get(cfg, "solver.gamma") != "auto":
            C.number(cfg, "solver.gamma", positive=True)
        alpha = C.number(cfg, "solver.alpha")
        if not 0 < alpha < 2:
            raise ConfigError(f"solver.alpha must be in (0, 2), got {alpha}")
        C.integer(cfg, "solver.check_every", minimum=1)
    else:
        if C.get(cfg, "solver.eps") != "auto":
            C.number(cfg, "solver.eps", positive=True)
    if task == "plans":
        eps = C.get(cfg, "eps")
        values = [eps] if _number(eps) else eps
        if not (_numbers(values) and len(values) > 0 and min(values) > 0):
            raise ConfigError(f"eps must be a number > 0 or a list of them (e.g. eps='[0.1,1,10]'), got {eps}")
    if task == "duality":
        C.integer(cfg, "duality.points_source", minimum=2, maximum=5000)
        C.integer(cfg, "duality.points_target", minimum=2, maximum=5000)
        C.integer(cfg, "duality.rounds", minimum=1)


# ----------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------
def _grid(cfg: DictConfig, dtype, device, dim: int | None = None):
    from wgf_cli.ot.grid import Grid

    return Grid.regular(int(cfg.grid.size), int(dim or cfg.grid.dim), float(cfg.grid.lo),
                        float(cfg.grid.hi), dtype, device)


def _gaussian_params(c: DictConfig, dim: int):
    from wgf_cli.ot import gaussian as G

    std = c.std if isinstance(c.std, int | float) else list(c.std)[:dim]
    if isinstance(std, list) and len(std) == 1:
        std = std[0]
    return [float(v) for v in list(c.mean)[:dim]], G.covariance(std, float(c.angle) if dim == 2 else 0.0, dim)


def density(c: DictConfig, grid):
    """The density (mass per unit volume, integral 1 on the box) of a source/target config."""
    import torch

    from wgf_cli.flows import references as R

    if c.name == "gaussian":
        mean, cov = _gaussian_params(c, grid.dim)
        rho = R.gaussian_density(grid, mean, cov)
    else:
        rho = torch.zeros(grid.shape, dtype=grid.dtype, device=grid.device)
        for m, s, w in zip(c.means, c.stds, c.weights, strict=True):
            cov = torch.eye(grid.dim, dtype=torch.float64) * float(s) ** 2
            rho = rho + float(w) * R.gaussian_density(grid, [float(v) for v in list(m)[:grid.dim]], cov)
    total = float(rho.sum()) * grid.cell_volume
    if not total > 0:
        raise ValueError("density has no mass on the grid")
    return rho / total


def _reference(cfg: DictConfig, dim: int):
    """The Gaussian closed form ``(m0, S0, m1, S1)`` when both densities are Gaussian."""
    if cfg.source.name == "gaussian" and cfg.target.name == "gaussian":
        m0, s0 = _gaussian_params(cfg.source, dim)
        m1, s1 = _gaussian_params(cfg.target, dim)
        return m0, s0, m1, s1
    return None


def _coarsen(x, factor: int):
    """Sum-pool masses by ``factor`` per axis (the grid size must be divisible)."""
    if factor == 1:
        return x
    shape = []
    for n in x.shape:
        shape += [n // factor, factor]
    return x.reshape(shape).sum(dim=tuple(range(1, 2 * x.dim(), 2)))


def _exact_route(cfg: DictConfig, grid, a, b):
    """POT's exact plan between the grid measures (coarsened while a support is larger than
    ``exact.max_points``).  Returns ``(plan, coarse grid, factor)``."""
    from wgf_cli.ot import maps as M
    from wgf_cli.ot.grid import Grid

    thr, cap = float(cfg.exact.threshold), int(cfg.exact.max_points)
    factor = 1
    while True:
        ca, cb = _coarsen(a, factor), _coarsen(b, factor)
        na, nb = len(M.support(ca, thr)), len(M.support(cb, thr))
        n = grid.shape[0] // factor
        if max(na, nb) <= cap or n % 2 or n // 2 < 4:
            break
        factor *= 2
    cg = Grid((grid.shape[0] // factor,) * grid.dim, grid.lo, grid.hi, grid.dtype, grid.device)
    if factor > 1:
        log.info("exact plan on the %s grid (coarsened by %d; supports %d, %d cells)", cg.shape, factor, na, nb)
    plan, ia, ib = M.grid_exact_plan(cg.points(), ca, cb, thr)
    return plan, cg, factor, ia, ib


def _rel_l1(p, q) -> float:
    return float((p - q).abs().sum() / q.abs().sum())


# ----------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------
def run(cfg: DictConfig, run) -> dict[str, Any]:
    import torch

    t0 = time.perf_counter()
    device = C.resolve_device(cfg)
    dtype = C.resolve_dtype(cfg, device)
    torch.manual_seed(int(cfg.seed))
    C.resolve_threads(cfg, int(cfg.grid.size) ** int(cfg.grid.dim), device)
    task = str(cfg.task)
    summary: dict[str, Any] = {"task": task, "source": str(cfg.source.name), "target": str(cfg.target.name)}
    if task == "geodesic":
        summary.update(_geodesic(cfg, run, device, dtype))
    elif task == "plans":
        summary.update(_plans(cfg, run, device, dtype))
    elif task == "map":
        summary.update(_map(cfg, run, device, dtype))
    else:
        summary.update(_duality(cfg, run, device, dtype))
    summary["wall_s"] = round(time.perf_counter() - t0 - summary.pop("_plot_s", 0.0), 3)
    run.save_summary(summary)
    return summary


def _closed_form_summary(out: dict[str, Any], w2sq: float, ref: float | None) -> None:
    out["w2sq"] = w2sq
    out["w2sq_reference"] = ref
    out["w2sq_rel_error"] = abs(w2sq / ref - 1.0) if ref else None


def _geodesic(cfg: DictConfig, run, device, dtype) -> dict[str, Any]:
    import torch

    from wgf_cli.experiments import ot_plots
    from wgf_cli.ot import gaussian as G
    from wgf_cli.ot import maps as M
    from wgf_cli.ot.dynamic import benamou_brenier

    grid = _grid(cfg, dtype, device)
    vol = grid.cell_volume
    rho0, rho1 = density(cfg.source, grid), density(cfg.target, grid)
    s = cfg.solver
    P = int(s.time_steps)
    times = torch.linspace(0, 1, P + 1, dtype=torch.float64)
    out: dict[str, Any] = {"solver": str(s.name), "grid_size": int(cfg.grid.size), "grid_dim": grid.dim,
                           "time_steps": P}
    if s.name == "benamou_brenier":
        gamma = float(max(rho0.max(), rho1.max())) / 8 if s.gamma == "auto" else float(s.gamma)
        log.info("Benamou-Brenier on %s x %d, gamma=%.3g", grid.shape, P, gamma)
        with run.progress(int(s.iters), "ot geodesic (Benamou-Brenier)") as bar:
            last = [0]

            def cb(k, row):
                run.log_metrics(k, **{key: row[key] for key in ("w2sq", "residual", "divergence", "change")})
                bar.advance(k - last[0], w2sq=row["w2sq"], residual=row["residual"])
                last[0] = k

            res = benamou_brenier(rho0, rho1, grid.spacing, time_steps=P, gamma=gamma, alpha=float(s.alpha),
                                  iters=int(s.iters), tol=float(s.tol), check_every=int(s.check_every), callback=cb)
        path = res.rho  # (P+1, *N) densities at t_k
        w2sq = res.w2sq
        out.update(gamma=gamma, converged=bool(res.converged), n_iters=int(res.n_iters),
                   residual_final=res.errors[-1]["residual"] if res.errors else None,
                   divergence_max=res.errors[-1]["divergence"] if res.errors else None,
                   solver_wall_s=round(res.wall_s, 3))
        if not res.converged:
            log.warning("Benamou-Brenier stopped at %d iterations with mismatch %.3g > tol %.3g",
                        res.n_iters, out["residual_final"], float(s.tol))
        extra = {"momentum": res.momentum.cpu().numpy()}
    else:
        dx = min(grid.spacing)
        eps = 2 * dx**2 if s.eps == "auto" else float(s.eps)
        ent, T = M.grid_entropic(rho0 * vol, rho1 * vol, grid.axes, eps, tol=float(s.tol), iters=int(s.iters))
        pts, a = grid.points(), (rho0 * vol).reshape(-1)
        Tf = T.reshape(-1, grid.dim)
        frames = [M.push_forward(pts, a, Tf, float(t), grid.lo, grid.spacing, grid.shape) / vol for t in times]
        path = torch.stack(frames)
        w2sq = float((a * ((Tf - pts) ** 2).sum(1)).sum())
        for i, err in enumerate(ent.errors):
            run.log_metrics((i + 1) * 10, marginal_error=err)
        out.update(eps=eps, converged=bool(ent.converged), n_iters=int(ent.n_iters),
                   entropic_cost=ent.cost, entropic_value=ent.value, solver_wall_s=round(ent.wall_s, 3))
        extra = {"barycentric_map": T.cpu().numpy()}
    # the last frame is rho1 for Benamou-Brenier; for the entropic route it is T_# rho0, which
    # the plan's blur keeps away from rho1
    out["endpoint_l1_error"] = _rel_l1(path[-1], rho1)
    mass = path.sum(dim=tuple(range(1, grid.dim + 1))) * vol
    out["mass_error_max"] = float((mass - 1).abs().max())
    out["min_density"] = float(path.min())

    # closed forms
    gauss = _reference(cfg, grid.dim)
    ref = None
    if gauss is not None:
        ref = G.w2sq(*gauss)
    elif grid.dim == 1:
        x = grid.axes[0]
        ref = M.quantile_w2sq(x, rho0 * vol, x, rho1 * vol)
    _closed_form_summary(out, w2sq, ref)
    mid_k = P // 2
    t_mid = float(times[mid_k])
    mid = path[mid_k].clamp_min(0)
    pts = grid.points()
    if gauss is not None:
        mean, cov = G.moments(pts.cpu(), (mid * vol).reshape(-1).cpu())
        em, ec = G.geodesic_moments(*gauss, t_mid)
        out["midpoint_mean_error"] = float((mean - em).norm())
        out["midpoint_cov_error"] = float((cov - ec).abs().max())
    tt = times.to(dtype=dtype, device=rho0.device).reshape(-1, *[1] * grid.dim)
    mixture = (1 - tt) * rho0 + tt * rho1
    out["midpoint_l1_vs_mixture"] = _rel_l1(mid, mixture[mid_k])

    # the second route: an exact plan's displacement interpolation
    exact_path = None
    if bool(cfg.exact.enabled):
        plan, cg, factor, _, _ = _exact_route(cfg, grid, rho0 * vol, rho1 * vol)
        out["w2sq_exact_plan"] = plan.cost
        out["exact_grid_size"] = cg.shape[0]
        out["w2sq_exact_rel_error"] = abs(plan.cost / ref - 1) if ref else None
        out["solver_vs_exact_rel"] = abs(w2sq / plan.cost - 1)
        exact_path = torch.stack([M.displacement_interpolation(plan, float(t), cg.lo, cg.spacing, cg.shape)
                                  / cg.cell_volume for t in times])
        out["midpoint_l1_vs_exact"] = _rel_l1(_coarsen(mid, factor) / factor**grid.dim,
                                              exact_path[mid_k].to(mid.dtype))
        out["exact_wall_s"] = round(plan.wall_s, 3)

    # outputs
    t_plot = time.perf_counter()
    k = int(cfg.output.snapshots)
    idx = sorted({round(i * P / (k - 1)) for i in range(k)})
    arrays = {"axes": np.stack([a.cpu().numpy() for a in grid.axes]), "t": times.numpy()[idx],
              "rho": path[idx].cpu().numpy(), "mixture": mixture[idx].cpu().numpy(), **extra}
    if exact_path is not None:
        arrays["rho_exact"] = exact_path[idx].cpu().numpy()
    run.save_arrays("paths", **arrays)
    ot_plots.geodesic(run, grid, times.numpy(), idx, path.cpu(), mixture.cpu(),
                      None if exact_path is None else exact_path.cpu(), out, str(s.name))
    if s.name == "benamou_brenier":
        ot_plots.convergence(run, run.read_metrics(), ref)
    out["_plot_s"] = time.perf_counter() - t_plot
    return out


def _plans(cfg: DictConfig, run, device, dtype) -> dict[str, Any]:
    import ot

    from wgf_cli.experiments import ot_plots
    from wgf_cli.ot import maps as M

    grid = _grid(cfg, dtype, device, dim=1)
    vol = grid.cell_volume
    x = grid.axes[0]
    a, b = density(cfg.source, grid) * vol, density(cfg.target, grid) * vol
    eps_list = sorted(float(e) for e in (cfg.eps if not isinstance(cfg.eps, int | float) else [cfg.eps]))
    w2 = M.quantile_w2sq(x, a, x, b)
    x64 = x.cpu().double().numpy()
    w2_pot = float(ot.emd2_1d(x64, x64, a.cpu().double().numpy(), b.cpu().double().numpy()))
    X = x[:, None]
    exact = M.exact_plan(a, X, b, X)
    plans, rows = [], []
    for i, e in enumerate(eps_list):
        res = M.entropic_plan(a, X, b, X, e)
        div = M.sinkhorn_divergence(a, X, b, X, e)
        row = {"eps": e, "entropic_value": res.value, "transport_cost": res.cost, "sinkhorn_divergence": div,
               "marginal_error": res.errors[-1] if res.errors else None, "iters": res.n_iters,
               "converged": bool(res.converged)}
        run.log_metrics(i, **row)
        rows.append(row)
        plans.append(res.plan.cpu().numpy())
    divs = [r["sinkhorn_divergence"] for r in rows]
    values = [r["entropic_value"] for r in rows]
    out: dict[str, Any] = {"grid_size": int(cfg.grid.size), "grid_dim": 1, "w2sq": w2, "w2sq_reference": w2,
                           "w2sq_exact_plan": w2_pot, "w2sq_exact_rel_error": abs(w2_pot / w2 - 1),
                           "eps_min": eps_list[0], "sinkhorn_divergence_min_eps": divs[0],
                           "divergence_rel_error_min_eps": abs(divs[0] / w2 - 1),
                           "entropic_value_min_eps": rows[0]["entropic_value"],
                           "entropic_value_monotone": bool(all(v1 <= v2 + 1e-12 for v1, v2 in
                                                               zip(values, values[1:], strict=False))),
                           "plan_cost_above_w2": bool(all(r["transport_cost"] >= w2 - 1e-12 for r in rows)),
                           "converged": bool(all(r["converged"] for r in rows))}
    t_plot = time.perf_counter()
    run.save_arrays("plans", x=x.cpu().numpy(), a=a.cpu().numpy(), b=b.cpu().numpy(), eps=np.array(eps_list),
                    plans=np.stack(plans), exact=exact.plan.cpu().numpy())
    ot_plots.plans(run, x.cpu().numpy(), a.cpu().numpy() / vol, b.cpu().numpy() / vol, eps_list, plans,
                   exact.plan.cpu().numpy(), rows, w2)
    out["_plot_s"] = time.perf_counter() - t_plot
    return out


def _map(cfg: DictConfig, run, device, dtype) -> dict[str, Any]:
    import torch

    from wgf_cli.experiments import ot_plots
    from wgf_cli.ot import gaussian as G
    from wgf_cli.ot import maps as M

    grid = _grid(cfg, dtype, device)
    vol = grid.cell_volume
    rho0, rho1 = density(cfg.source, grid), density(cfg.target, grid)
    a, b = rho0 * vol, rho1 * vol
    plan, cg, factor, ia, _ = _exact_route(cfg, grid, a, b)
    pts = cg.points()
    ca = _coarsen(a, factor)
    # u = v^c: equal to the optimal dual potential on the support, and its extension to the grid
    c_all = M.sqdist(pts, plan.y)
    u_full = M.c_transform(plan.v, c_all)
    T_pot = M.map_from_potential(u_full.reshape(cg.shape), pts, cg.spacing)
    T_bar = torch.zeros_like(pts)
    T_bar[ia] = M.barycentric_map(plan.plan, plan.y)
    w = ca.reshape(-1)
    w2_pot = float((w * ((T_pot - pts) ** 2).sum(1)).sum())
    out: dict[str, Any] = {"grid_size": int(cfg.grid.size), "grid_dim": grid.dim, "exact_grid_size": cg.shape[0],
                           "w2sq_exact_plan": plan.cost, "converged": bool(plan.converged),
                           "dual_gap": plan.errors["dual_gap"]}
    gauss = _reference(cfg, grid.dim)
    ref = G.w2sq(*gauss) if gauss is not None else None
    _closed_form_summary(out, w2_pot, ref)
    out["w2sq_exact_rel_error"] = abs(plan.cost / ref - 1) if ref else None
    T_ref = None
    if gauss is not None:
        m0, s0, m1, s1 = gauss
        A = G.affine_map(s0, s1).to(dtype=pts.dtype, device=pts.device)
        m0_t, m1_t = (torch.tensor(m, dtype=pts.dtype, device=pts.device) for m in (m0, m1))
        T_ref = m1_t + (pts - m0_t) @ A.T
        out["map_potential_error"] = float((w * ((T_pot - T_ref) ** 2).sum(1)).sum()) ** 0.5
        out["map_barycentric_error"] = float((w * ((T_bar - T_ref) ** 2).sum(1)).sum()) ** 0.5
    # one row: the map has no iterations of its own (POT's simplex reports none)
    run.log_metrics(0, **{k: out[k] for k in ("w2sq", "w2sq_exact_plan", "dual_gap", "map_potential_error",
                                              "map_barycentric_error") if out.get(k) is not None})
    t_plot = time.perf_counter()
    run.save_arrays("map", points=pts.cpu().numpy(), mass=w.cpu().numpy(), potential=u_full.cpu().numpy(),
                    map_potential=T_pot.cpu().numpy(), map_barycentric=T_bar.cpu().numpy(),
                    **({"map_reference": T_ref.cpu().numpy(), "affine_matrix": A.cpu().numpy()}
                       if T_ref is not None else {}))
    ot_plots.maps(run, cg, ca.cpu(), _coarsen(b, factor).cpu(), pts.cpu(), T_pot.cpu(), T_bar.cpu(),
                  None if T_ref is None else T_ref.cpu(), u_full.cpu())
    out["_plot_s"] = time.perf_counter() - t_plot
    return out


def _sample(grid, rho, count: int, gen):
    """``count`` points from a grid density: a cell by its mass, then uniform in the cell."""
    import torch

    p = (rho.reshape(-1) / rho.sum()).cpu().double()
    idx = torch.multinomial(p, count, replacement=True, generator=gen)
    pts = grid.points().cpu().double()[idx]
    jitter = (torch.rand(count, grid.dim, generator=gen, dtype=torch.float64) - 0.5) * torch.tensor(grid.spacing)
    return pts + jitter


def _duality(cfg: DictConfig, run, device, dtype) -> dict[str, Any]:
    import torch

    from wgf_cli.experiments import ot_plots
    from wgf_cli.ot import maps as M

    grid = _grid(cfg, torch.float64, "cpu")
    gen = torch.Generator().manual_seed(int(cfg.seed))
    d = cfg.duality
    x = _sample(grid, density(cfg.source, grid), int(d.points_source), gen)
    y = _sample(grid, density(cfg.target, grid), int(d.points_target), gen)
    a = torch.rand(len(x), generator=gen, dtype=torch.float64) + 0.5
    b = torch.rand(len(y), generator=gen, dtype=torch.float64) + 0.5
    plan = M.exact_plan(a, x, b, y)
    a, b = plan.a, plan.b
    c = M.sqdist(x, y)
    dual = M.dual_value(a, plan.u, b, plan.v)
    ctr = float((M.c_transform(plan.v, c) - plan.u).abs().max())
    # dual ascent by alternating c-transforms from v = 0
    ascent = M.dual_ascent(a, b, c, int(d.rounds))
    for k, (val_u, val_v) in enumerate(ascent):
        run.log_metrics(k, dual_after_u=val_u, dual_after_v=val_v, primal=plan.cost)
    values = [val for pair in ascent for val in pair]
    weak = all(val <= plan.cost + 1e-12 for val in values)
    out = {"grid_dim": grid.dim, "points_source": len(x), "points_target": len(y), "primal": plan.cost,
           "dual": dual, "duality_gap": abs(plan.cost - dual), "w2sq": plan.cost,
           "c_transform_residual": ctr, "ascent_dual_final": values[-1],
           "ascent_gap_final": plan.cost - values[-1], "weak_duality_holds": bool(weak),
           "converged": bool(plan.converged), "marginal_error": plan.errors["marginal_a"] + plan.errors["marginal_b"]}
    t_plot = time.perf_counter()
    run.save_arrays("duality", x=x.numpy(), y=y.numpy(), a=a.numpy(), b=b.numpy(), plan=plan.plan.numpy(),
                    u=plan.u.numpy(), v=plan.v.numpy(), ascent=np.array(values))
    ot_plots.duality(run, x, y, a, b, plan, values)
    out["_plot_s"] = time.perf_counter() - t_plot
    return out
