"""Static optimal transport between densities on a grid and between point clouds.

Exact plans (POT's network simplex), displacement interpolation, Brenier maps from the dual
potentials and by barycentric projection, the 1-D quantile formula, entropic plans (log-domain
Sinkhorn, dense in 1-D and separable on grids) and Kantorovich duality with c-transforms.

The cost is the squared Euclidean distance ``c(x, y) = |x - y|^2`` throughout, so that the
optimal cost is W2^2.  Plain PyTorch and POT (``ot.emd`` runs on the CPU in float64); no
CLI, Hydra or experiment imports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from wgf_cli.ot.pointcloud import w2_1d

Tensor = torch.Tensor


def sqdist(x: Tensor, y: Tensor) -> Tensor:
    """``|x_i - y_j|^2`` for ``x`` ``(n, d)`` and ``y`` ``(m, d)``."""
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


# ----------------------------------------------------------------------------------------
# exact plans (POT) and what they give
# ----------------------------------------------------------------------------------------
@dataclass
class ExactPlan:
    """An optimal plan between ``a`` on ``x`` and ``b`` on ``y`` (POT's ``ot.emd``).

    Attributes:
        x, y: support points ``(n, d)``, ``(m, d)``; a, b: their masses (sum 1).
        plan: ``(n, m)`` coupling; cost: ``<plan, C>`` = W2^2 of the discrete measures.
        u, v: dual potentials with ``u_i + v_j <= C_ij`` (equality on the plan's support).
        converged: POT's solver reached an optimal basis; n_iters: its simplex iterations
            (-1 if POT does not say).
    """

    x: Tensor
    y: Tensor
    a: Tensor
    b: Tensor
    plan: Tensor
    cost: float
    u: Tensor
    v: Tensor
    converged: bool = True
    n_iters: int = -1
    errors: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


def exact_plan(a: Tensor, x: Tensor, b: Tensor, y: Tensor, *, max_iter: int = 1_000_000) -> ExactPlan:
    """Exact OT between discrete measures by POT's network simplex.

    The masses ``a``, ``b`` are normalised to sum 1; the cost is squared Euclidean. The result carries
    the dual potentials and the marginal errors.
    """
    import ot

    t0 = time.perf_counter()
    dt, dev = x.dtype, x.device
    a64 = a.detach().to("cpu", torch.float64).numpy()
    b64 = b.detach().to("cpu", torch.float64).numpy()
    a64, b64 = a64 / a64.sum(), b64 / b64.sum()
    c = sqdist(x.detach().to("cpu", torch.float64), y.detach().to("cpu", torch.float64)).numpy()
    plan, log = ot.emd(a64, b64, c, numItermax=max_iter, log=True)
    cost = float((plan * c).sum())
    warning = log.get("warning")
    errors = {"marginal_a": float(np.abs(plan.sum(1) - a64).sum()),
              "marginal_b": float(np.abs(plan.sum(0) - b64).sum()),
              "dual_gap": abs(cost - float(a64 @ log["u"] + b64 @ log["v"]))}
    t = lambda z: torch.as_tensor(z, dtype=dt, device=dev)  # noqa: E731
    return ExactPlan(x, y, t(a64), t(b64), t(plan), cost, t(log["u"]), t(log["v"]),
                     converged=warning is None and log.get("result_code", 1) == 1,
                     n_iters=int(log.get("n_iter", -1)) if "n_iter" in log else -1,
                     errors=errors, wall_s=time.perf_counter() - t0)


def support(masses: Tensor, threshold: float = 0.0) -> Tensor:
    """Indices (flat) of the cells whose mass exceeds ``threshold * max``."""
    flat = masses.reshape(-1)
    return torch.nonzero(flat > threshold * float(flat.max())).reshape(-1)


def grid_exact_plan(points: Tensor, a: Tensor, b: Tensor, threshold: float = 1e-9) -> tuple[ExactPlan, Tensor, Tensor]:
    """Exact OT plan between two grid measures, on the cells that carry mass.

    :func:`exact_plan` between two grid measures (masses ``a``, ``b`` per cell, grid ``points`` ``(N,
    d)``), on the cells whose mass exceeds ``threshold`` times the largest (the tails of a Gaussian cost
    the simplex time and nothing else).  Returns the plan and the flat indices of the source and target
    cells it uses.
    """
    ia, ib = support(a, threshold), support(b, threshold)
    af, bf = a.reshape(-1)[ia], b.reshape(-1)[ib]
    return exact_plan(af, points[ia], bf, points[ib]), ia, ib


def deposit(points: Tensor, masses: Tensor, lo: Sequence[float], spacing: Sequence[float],
            shape: Sequence[int]) -> Tensor:
    """Cloud-in-cell deposit of point masses on a cell-centred grid.

    Each mass is shared (multi-linearly) between the ``2^d`` nearest cell centres; mass that falls
    outside the outer centres is clamped onto the border cells. Returns masses per cell, shape
    ``shape``.
    """
    d = len(shape)
    out = torch.zeros(math.prod(shape), dtype=masses.dtype, device=masses.device)
    pos = [(points[:, k] - lo[k]) / spacing[k] - 0.5 for k in range(d)]  # in cell-centre units
    base = [torch.clamp(torch.floor(p), 0, shape[k] - 2).long() for k, p in enumerate(pos)]
    frac = [torch.clamp(p - b, 0.0, 1.0) for p, b in zip(pos, base, strict=True)]
    strides = [math.prod(shape[k + 1:]) for k in range(d)]
    for corner in range(2**d):
        w = masses
        idx = torch.zeros_like(base[0])
        for k in range(d):
            bit = (corner >> k) & 1
            w = w * (frac[k] if bit else 1.0 - frac[k])
            idx = idx + (base[k] + bit) * strides[k]
        out.index_add_(0, idx, w)
    return out.reshape(tuple(shape))


def displacement_interpolation(plan: ExactPlan, t: float, lo, spacing, shape,
                               min_mass: float = 0.0) -> Tensor:
    """McCann's interpolant ``sum_ij P_ij delta_{(1-t) x_i + t y_j}`` deposited on the grid (:func:`deposit`).

    Masses per cell. Entries of the plan below ``min_mass`` are skipped.
    """
    p = plan.plan
    i, j = torch.nonzero(p > min_mass, as_tuple=True)
    pts = (1.0 - t) * plan.x[i] + t * plan.y[j]
    return deposit(pts, p[i, j], lo, spacing, shape)


def barycentric_map(plan: Tensor, y: Tensor) -> Tensor:
    """``T(x_i) = sum_j P_ij y_j / sum_j P_ij`` (rows with no mass map to 0)."""
    row = plan.sum(1, keepdim=True)
    return (plan @ y) / torch.where(row > 0, row, torch.ones_like(row))


def map_from_potential(u: Tensor, points: Tensor, spacing: Sequence[float]) -> Tensor:
    """The Brenier map ``T(x) = x - grad u(x) / 2`` from a dual potential on the grid.

    ``u`` is the dual potential of the cost ``|x - y|^2``, given on the whole grid (shape
    ``grid.shape``); its gradient is taken by central differences inside, one-sided at the walls.
    Returns ``(N, d)``.
    """
    grads = torch.gradient(u, spacing=[float(s) for s in spacing], edge_order=1)
    g = torch.stack([gr.reshape(-1) for gr in grads], dim=-1)
    return points - 0.5 * g


def push_forward(points: Tensor, masses: Tensor, target: Tensor, t: float, lo, spacing, shape) -> Tensor:
    """McCann's interpolant of a point measure towards its targets, deposited on the grid.

    ``((1 - t) id + t T)_# mu`` for ``mu = sum masses_i delta_{points_i}`` and ``T(points_i) =
    target_i``, deposited on the grid (masses per cell).
    """
    return deposit((1.0 - t) * points + t * target, masses, lo, spacing, shape)


# ----------------------------------------------------------------------------------------
# one dimension: the quantile formula
# ----------------------------------------------------------------------------------------
def quantile_w2sq(x: Tensor, a: Tensor, y: Tensor, b: Tensor) -> float:
    """Exact W2^2 between the discrete 1-D measures ``sum a_i delta_{x_i}`` and ``sum b_j delta_{y_j}``.

    ``int_0^1 |F^{-1}(s) - G^{-1}(s)|^2 ds`` with the quantile functions
    (:func:`wgf_cli.ot.pointcloud.w2_1d` in float64 on the CPU); the weights are normalised.

    Args:
        x: ``(n,)`` points of the first measure.
        a: ``(n,)`` non-negative weights of ``x`` (any positive total).
        y: ``(m,)`` points of the second measure.
        b: ``(m,)`` non-negative weights of ``y``.

    Returns:
        ``W2^2``, a float.
    """
    x, a, y, b = (t.detach().to("cpu", torch.float64) for t in (x, a, y, b))
    return float(w2_1d(x, y, a / a.sum(), b / b.sum(), squared=True))


# ----------------------------------------------------------------------------------------
# entropic plans
# ----------------------------------------------------------------------------------------
@dataclass
class EntropicPlan:
    """Output of :func:`entropic_plan` / :func:`grid_entropic`.

    The plan is ``P_ij = exp((f_i + g_j - C_ij) / eps) a_i b_j``; ``cost`` = ``<P, C>``;
    ``value`` = ``OT_eps = <P, C> + eps KL(P | a x b)`` (the dual objective ``<a, f> + <b, g>``
    at convergence); ``errors``: the L1 marginal error per check.
    """

    f: Tensor
    g: Tensor
    eps: float
    value: float
    cost: float
    converged: bool
    n_iters: int
    errors: list[float] = field(default_factory=list)
    plan: Tensor | None = None
    wall_s: float = 0.0


def _eps_schedule(scale: float, eps: float, factor: float = 0.5) -> list[float]:
    out, e = [], max(scale, eps)
    while e > eps:
        out.append(e)
        e *= factor
    return [*out, eps]


def entropic_plan(a: Tensor, x: Tensor, b: Tensor, y: Tensor, eps: float, *, tol: float = 1e-8,
                  iters: int = 5000, check_every: int = 10) -> EntropicPlan:
    """Entropic OT between small discrete measures by log-domain Sinkhorn with epsilon-scaling.

    The cost ``|x - y|^2`` is a dense matrix; epsilon goes from the largest cost down to ``eps`` by
    halves, then the iterations run at ``eps`` until the L1 error of the first marginal is below ``tol``.
    """
    t0 = time.perf_counter()
    c = sqdist(x, y)
    la, lb = torch.log(a / a.sum()), torch.log(b / b.sum())
    f, g = torch.zeros_like(la), torch.zeros_like(lb)
    errors: list[float] = []
    converged, k = False, 0
    for e in _eps_schedule(float(c.max()), eps)[:-1]:
        for _ in range(3):
            f = -e * torch.logsumexp(lb[None, :] + (g[None, :] - c) / e, 1)
            g = -e * torch.logsumexp(la[:, None] + (f[:, None] - c) / e, 0)
    for k in range(1, iters + 1):
        f = -eps * torch.logsumexp(lb[None, :] + (g[None, :] - c) / eps, 1)
        g = -eps * torch.logsumexp(la[:, None] + (f[:, None] - c) / eps, 0)
        if k % check_every == 0 or k == iters:
            logp = la[:, None] + lb[None, :] + (f[:, None] + g[None, :] - c) / eps
            err = float((torch.exp(torch.logsumexp(logp, 1)) - la.exp()).abs().sum())
            errors.append(err)
            if err <= tol:
                converged = True
                break
    logp = la[:, None] + lb[None, :] + (f[:, None] + g[None, :] - c) / eps
    plan = torch.exp(logp)
    cost = float((plan * c).sum())
    value = float((la.exp() * f).sum() + (lb.exp() * g).sum())
    return EntropicPlan(f, g, eps, value, cost, converged, k, errors, plan, time.perf_counter() - t0)


def sinkhorn_divergence(a: Tensor, x: Tensor, b: Tensor, y: Tensor, eps: float, **kw) -> float:
    """Debiased ``S_eps = OT_eps(a, b) - OT_eps(a, a) / 2 - OT_eps(b, b) / 2`` (cost ``|x - y|^2``).

    Non-negative, zero iff ``a = b``, and ``-> W2^2`` as ``eps -> 0``.
    """
    return (entropic_plan(a, x, b, y, eps, **kw).value - 0.5 * entropic_plan(a, x, a, x, eps, **kw).value
            - 0.5 * entropic_plan(b, y, b, y, eps, **kw).value)


def _lse_axis(logk: Tensor, h: Tensor, axis: int) -> Tensor:
    """``log sum_j exp(logk[i, j] + h[..., j, ...])`` along ``axis`` of ``h``."""
    hm = torch.movedim(h, axis, -1)  # (..., m)
    out = torch.logsumexp(hm.unsqueeze(-2) + logk, dim=-1)  # (..., n)
    return torch.movedim(out, -1, axis)


def _grid_lse(logks: list[Tensor], h: Tensor) -> Tensor:
    for axis, lk in enumerate(logks):
        h = _lse_axis(lk, h, axis)
    return h


def grid_entropic(a: Tensor, b: Tensor, axes: list[Tensor], eps: float, *, tol: float = 1e-8,
                  iters: int = 5000, check_every: int = 10) -> tuple[EntropicPlan, Tensor]:
    """Entropic OT between two measures on the same grid, with a separable log-kernel.

    Masses per cell ``a``, ``b``; cell centres ``axes``; cost ``|x - y|^2``. The ``N x N`` plan is
    never formed: the log-kernel is separable, so each log-sum-exp runs axis by axis on ``n x n``
    matrices.  Log-domain Sinkhorn with epsilon-scaling.
    Returns the result (``plan`` = None) and the barycentric map ``T(x_i) = sum_j P_ij y_j / a_i``,
    shape ``(*grid.shape, d)``.
    """
    t0 = time.perf_counter()
    d = len(axes)
    logks = [-((ax[:, None] - ax[None, :]) ** 2) for ax in axes]  # times 1/eps at use
    tiny = torch.finfo(a.dtype).tiny
    la, lb = torch.log(a / a.sum() + tiny), torch.log(b / b.sum() + tiny)
    la = torch.where(a > 0, la, torch.full_like(la, -math.inf))
    lb = torch.where(b > 0, lb, torch.full_like(lb, -math.inf))
    f, g = torch.zeros_like(la), torch.zeros_like(lb)
    span = sum(float(ax.max() - ax.min()) ** 2 for ax in axes)

    for e in _eps_schedule(span, eps)[:-1]:
        lke = [lk / e for lk in logks]
        for _ in range(3):
            f = -e * _grid_lse(lke, lb + g / e)
            g = -e * _grid_lse(lke, la + f / e)
    errors, converged, k = [], False, 0
    lke = [lk / eps for lk in logks]
    for k in range(1, iters + 1):
        f = -eps * _grid_lse(lke, lb + g / eps)
        g = -eps * _grid_lse(lke, la + f / eps)
        if k % check_every == 0 or k == iters:
            row = torch.exp(la + f / eps + _grid_lse(lke, lb + g / eps))
            err = float((row - a / a.sum()).abs().sum())
            errors.append(err)
            if err <= tol:
                converged = True
                break
    logks_e = [lk / eps for lk in logks]
    base = lb + g / eps
    denom = _grid_lse(logks_e, base)
    maps = []
    for k_ax, ax in enumerate(axes):
        # sum_j P_ij y_jk / a_i with y_jk shifted to be positive for the log
        shift = float(ax.min()) - 1.0
        view = [1] * d
        view[k_ax] = -1
        ly = torch.log(ax - shift).reshape(view)
        maps.append(torch.exp(_grid_lse(logks_e, base + ly) - denom) + shift)
    value = float((torch.exp(la) * f).nansum() + (torch.exp(lb) * g).nansum())
    # <P, C> through the same separable sums: sum_k sum_ij P_ij (x_ik - y_jk)^2
    cost = 0.0
    rowmass = torch.exp(la + f / eps + denom)  # the plan's first marginal
    for k_ax, ax in enumerate(axes):
        view = [1] * d
        view[k_ax] = -1
        xk = ax.reshape(view)
        shift = float(ax.min()) - 1.0
        ly = torch.log(ax - shift).reshape(view)
        m1 = maps[k_ax]  # E[y_k | x_i]
        m2 = torch.exp(_grid_lse(logks_e, base + 2 * ly) - denom)  # E[(y_k - shift)^2 | x_i]
        ey2 = m2 + 2 * shift * m1 - shift**2
        cost += float((rowmass * (xk**2 - 2 * xk * m1 + ey2)).nansum())
    res = EntropicPlan(f, g, eps, value, cost, converged, k, errors, None, time.perf_counter() - t0)
    return res, torch.stack(maps, dim=-1)


# ----------------------------------------------------------------------------------------
# Kantorovich duality
# ----------------------------------------------------------------------------------------
def c_transform(v: Tensor, c: Tensor) -> Tensor:
    """``v^c(x_i) = min_j C_ij - v_j``: the best ``u`` with ``u_i + v_j <= C_ij`` for this ``v``."""
    return (c - v[None, :]).min(dim=1).values


def c_transform_bar(u: Tensor, c: Tensor) -> Tensor:
    """``u^c(y_j) = min_i C_ij - u_i``."""
    return (c - u[:, None]).min(dim=0).values


def dual_value(a: Tensor, u: Tensor, b: Tensor, v: Tensor) -> float:
    """The Kantorovich dual objective ``<a, u> + <b, v>``."""
    return float((a * u).sum() + (b * v).sum())


def dual_ascent(a: Tensor, b: Tensor, c: Tensor, rounds: int, v0: Tensor | None = None) -> list[tuple[float, float]]:
    """Ascent on the Kantorovich dual by alternating c-transforms.

    Each round sets ``u = v^c`` (:func:`c_transform`), then ``v = u^c`` (:func:`c_transform_bar`);
    neither step lowers the dual value, and every pair is dual feasible, so the values stay
    below the optimal cost (weak duality).

    Args:
        a: source masses ``(n,)``.
        b: target masses ``(m,)``.
        c: cost matrix ``(n, m)``.
        rounds: number of rounds (>= 1).
        v0: the starting target potential (default: zeros in ``c``'s dtype and device).

    Returns:
        One ``(dual value after u, dual value after v)`` pair per round.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    v = torch.zeros(c.shape[1], dtype=c.dtype, device=c.device) if v0 is None else v0
    out = []
    for _ in range(rounds):
        u = c_transform(v, c)
        val_u = dual_value(a, u, b, v)
        v = c_transform_bar(u, c)
        out.append((val_u, dual_value(a, u, b, v)))
    return out
