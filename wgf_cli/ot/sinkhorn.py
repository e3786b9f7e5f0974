"""KL-proximal Sinkhorn iterations (generalised Sinkhorn / Dykstra) on any geometry.

Solves, for a fixed second marginal ``q`` and a function ``F`` of the first marginal,

    min_pi  KL(pi | K) + sigma * F(pi 1)    subject to  pi^T 1 = q,

with ``K = exp(-C / gamma)``, by the scaling iterations of Peyré (2015, Alg. 1)

    a <- prox^KL_{sigma F}(K b) / (K b),      b <- q / (K^T a),

and ``pi = diag(a) K diag(b)``.  ``F`` enters only through its KL-proximal map, given in
log form: ``prox_log(log p) = log argmin_r sigma F(r) + KL(r | p)``.

A geometry supplies ``apply_kernel(b) = K b`` and ``apply_lse_kernel(g) = log K exp(g)``
(the kernel is symmetric) and ``transport_cost_parts``: :class:`~wgf_cli.ot.grid.GridGeometry`
does it separably on grids, :class:`DenseGeometry` with an explicit matrix.

Two numerical paths give the same iterates: the *plain* path multiplies scalings
(fast), the *log* path adds log-scalings with log-sum-exp (never overflows).
``log_domain="auto"`` runs the plain path and restarts the problem in the log domain as
soon as a scaling stops being finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

Tensor = torch.Tensor
LogDomain = Literal["auto", True, False]
Overrelax = float | Literal["auto"]

#: cap on the automatic over-relaxation (the iterations diverge at omega = 2)
OMEGA_MAX = 1.95


class Geometry(Protocol):
    def apply_kernel(self, b: Tensor) -> Tensor: ...
    def apply_lse_kernel(self, g: Tensor) -> Tensor: ...


class DenseGeometry:
    """Explicit cost matrix ``C`` (N x N, symmetric) and dense Gibbs kernel ``exp(-C/gamma)``.

    Measures are flat tensors of length N.  This is the straightforward implementation
    (what ``ot.sinkhorn`` does with a cost matrix); it is the reference the separable grid
    geometry is tested and benchmarked against.
    """

    def __init__(self, cost: Tensor, gamma: float) -> None:
        self.cost = cost
        self.gamma = float(gamma)
        self.log_kernel = -cost / self.gamma
        self.kernel = torch.exp(self.log_kernel)

    def apply_kernel(self, b: Tensor) -> Tensor:
        return self.kernel @ b

    def apply_lse_kernel(self, g: Tensor) -> Tensor:
        return torch.logsumexp(self.log_kernel + g[None, :], dim=-1)

    def transport_cost(self, f: Tensor, g: Tensor) -> float:
        logpi = f[:, None] + self.log_kernel + g[None, :]
        return float((torch.exp(logpi) * self.cost).sum())


@dataclass
class ProxSinkhornResult:
    """Outcome of one KL-proximal Sinkhorn solve.

    Attributes:
        rho: first marginal ``pi 1`` (mass per point) after the last iteration.
        f, g: log-scalings ``log a``, ``log b`` (``-inf`` where a scaling is zero); pass
            them back as ``init`` to warm-start the next solve.
        n_iters: iterations run.
        error: L1 error of the second marginal relative to ``sum(q)`` at the last check.
        converged: ``error <= tol``.
        log_domain: whether the log-domain path produced the result.
        errors: the error at every check, in order.
        omega: the over-relaxation in use at the end (adapted when ``overrelax="auto"``).
        widened: how many times a banded geometry's band was doubled after the band-edge check.
        geom: the geometry that produced the result (``geom`` itself, or a widened copy:
            pass it to the next solve to keep the wider band).
    """

    rho: Tensor
    f: Tensor
    g: Tensor
    n_iters: int
    error: float
    converged: bool
    log_domain: bool
    errors: list[float]
    omega: float = 1.0
    widened: int = 0
    geom: object = None


def _safe_log(x: Tensor) -> Tensor:
    return torch.log(torch.clamp_min(x, 0.0))


def prox_sinkhorn(
    geom: Geometry,
    q: Tensor,
    prox_log: Callable[[Tensor], Tensor],
    *,
    tol: float = 1e-9,
    inner_max: int = 2000,
    check_every: int = 5,
    log_domain: LogDomain = "auto",
    init: tuple[Tensor, Tensor] | None = None,
    overrelax: Overrelax = 1.0,
    omega_init: float = 1.0,
    edge_tol: float = 1e-11,
) -> ProxSinkhornResult:
    """Run the KL-proximal scaling iterations until the second marginal is within ``tol``.

    Args:
        geom: geometry providing the kernel.
        q: second marginal (non-negative, any shape the geometry accepts).
        prox_log: log-form KL-proximal map of ``sigma F`` (``sigma`` already folded in).
        tol: stop when ``sum |b * K^T a - q| <= tol * sum q``, or (``converged=False``) when
            the error has stalled for :data:`STALL_CHECKS` checks (the rounding floor).
        inner_max: cap on the number of iterations.
        check_every: iterations between error / finiteness checks.
        log_domain: ``True`` (log path), ``False`` (plain path; raises on overflow) or
            ``"auto"`` (plain path, restarted in the log domain on overflow).
        init: warm start ``(f, g)`` log-scalings; zeros (``a = b = 1``) by default.
        overrelax: ``omega`` in ``[1, 2)``; each update becomes ``f <- (1 - omega) f + omega
            f_new`` (over-relaxed scaling iterations, Thibault et al. 2017); ``1`` is the plain
            scheme.  The fixed point is the same; a last exact ``b``-update keeps the second
            marginal, hence the mass, exact.  ``"auto"``: run unrelaxed until the error is
            below max(1e-5, 100 tol), read the linear rate ``lam`` off the error decay and switch to the
            SOR optimum ``omega = 2 / (1 + sqrt(1 - lam))`` (capped at :data:`OMEGA_MAX`;
            backed off when the error clearly grows).  Iterations then grow like
            ``1/sqrt(1 - lam)`` instead of ``1/(1 - lam)``.
        omega_init: with ``overrelax="auto"``, an omega > 1 (e.g. the previous solve's) is
            used from the start instead of being estimated again.
        edge_tol: with a banded geometry (``geom.is_banded``), the plan mass on the band's
            outermost offsets must be ``<= edge_tol * sum(q)`` at the end; otherwise the band
            doubles (in a copy, ``result.geom``) and the solve continues from the result
            (``widened`` counts it).
    """
    auto = overrelax == "auto"
    if auto:
        omega0 = min(max(float(omega_init), 1.0), OMEGA_MAX)
    else:
        omega0 = float(overrelax)
        if not 1.0 <= omega0 < 2.0:
            raise ValueError(f"overrelax must be in [1, 2) or 'auto', got {overrelax}")
    if init is None:
        f0 = torch.zeros_like(q)
        g0 = torch.zeros_like(q)
    else:
        f0, g0 = init
    log_q = _safe_log(q)
    mass = float(q.sum())
    args = (geom, q, log_q, mass, prox_log, tol, inner_max, check_every)
    res = None
    if log_domain is not True:
        try:
            res = _plain(*args, f0, g0, _Omega(omega0, auto, tol))
        except FloatingPointError:
            if log_domain is False:
                raise
    if res is None:
        res = _logd(*args, f0, g0, _Omega(omega0, auto, tol))
    res.geom = geom
    while getattr(geom, "is_banded", False) and geom.band_edge_mass(res.f, res.g) > edge_tol * mass:
        geom = geom.widened()
        more = None
        if not res.log_domain:
            try:
                more = _plain(geom, *args[1:], res.f, res.g, _Omega(res.omega, auto, tol))
            except FloatingPointError:
                if log_domain is False:
                    raise
        if more is None:
            more = _logd(geom, *args[1:], res.f, res.g, _Omega(res.omega, auto, tol))
        more.n_iters += res.n_iters
        more.errors = res.errors + more.errors
        more.widened, more.geom = res.widened + 1, geom
        res = more
    return res


class _Omega:
    """The over-relaxation parameter, fixed, or (``auto``) estimated once from the decay of
    the unrelaxed iterations and then held (backed off if the error clearly grows)."""

    def __init__(self, omega: float, auto: bool, tol: float = 1e-9) -> None:
        self.omega, self.auto = omega, auto
        self.near = max(1e-5, 100.0 * tol)
        self.estimated = omega > 1.0  # a carried-over omega is used as it is
        self.prev: float | None = None

    def observe(self, err: float, iters: int) -> None:
        if not self.auto:
            return
        prev, self.prev = self.prev, err
        if prev is None or not (prev > 0 and err > 0) or err != err:
            return
        rho = (err / prev) ** (1.0 / iters)
        w = self.omega
        if w > 1.0 and err > 2.0 * prev:  # clearly growing: back off towards the plain scheme
            self.omega = 1.0 + 0.8 * (w - 1.0)
            return
        # the unrelaxed rate lam, once near the fixed point (where the linear picture holds and
        # the fast modes have died out)
        if not self.estimated and w == 1.0 and err < self.near and prev < 10 * self.near and rho < 1.0:
            self.omega = min(2.0 / (1.0 + math.sqrt(1.0 - rho)), OMEGA_MAX)
            self.estimated = True


#: checks without a 10 % improvement of the best error after which a solve stops as stalled
#: (at the rounding floor of the dtype, e.g. float32 asked for tol=1e-9)
STALL_CHECKS = 20


def _stalled(errors: list[float]) -> bool:
    """The last :data:`STALL_CHECKS` errors improve the best one before them by < 10 %."""
    if len(errors) <= STALL_CHECKS:
        return False
    return min(errors[-STALL_CHECKS:]) > 0.9 * min(errors[:-STALL_CHECKS])


def _relax(old: Tensor, new: Tensor, omega: float) -> Tensor:
    """``(1 - omega) old + omega new`` for log-scalings (``-inf`` in ``new`` stays ``-inf``;
    where ``old`` is ``-inf`` the new value is taken as it is)."""
    both = torch.isfinite(old) & torch.isfinite(new)
    return torch.where(both, (1.0 - omega) * old + omega * new, new)


def _plain(geom, q, log_q, mass, prox_log, tol, inner_max, check_every, f0, g0, om):
    omega = om.omega
    a = torch.exp(f0)
    b = torch.exp(g0)
    # scalings beyond max^0.9 (e^638 in float64, e^80 in float32) count as overflow: their
    # products with the kernel are about to leave the float range
    big = torch.finfo(q.dtype).max ** 0.9
    if not (float(a.max()) <= big and float(b.max()) <= big):
        raise FloatingPointError("warm-start scalings overflow")
    errors: list[float] = []
    err = float("inf")
    it = 0
    relaxed = False
    while it < inner_max:
        it += 1
        kb = geom.apply_kernel(b)
        log_p = _safe_log(kb)
        log_r = prox_log(log_p)
        a_new = torch.where(kb > 0, torch.exp(log_r - log_p), torch.zeros_like(kb))
        a = a_new if omega == 1.0 else torch.exp(_relax(_safe_log(a), _safe_log(a_new), omega))
        ka = geom.apply_kernel(a)
        check = it % check_every == 0 or it == inner_max
        if check:
            err = float((b * ka - q).abs().sum()) / mass
            errors.append(err)
        b_new = torch.where(q > 0, q / ka, torch.zeros_like(q))
        b = b_new if omega == 1.0 else torch.exp(_relax(_safe_log(b), _safe_log(b_new), omega))
        if check:
            if not (float(a.max()) <= big and float(b.max()) <= big and err == err):
                raise FloatingPointError("scalings overflowed in the plain domain")
            if err <= tol or _stalled(errors):
                break
            om.observe(err, check_every)
            relaxed = relaxed or omega != 1.0
            omega = om.omega
    if relaxed or omega != 1.0:  # exact second marginal (mass) after over-relaxed updates
        b = torch.where(q > 0, q / geom.apply_kernel(a), torch.zeros_like(q))
    rho = a * geom.apply_kernel(b)
    if not torch.isfinite(rho).all():
        raise FloatingPointError("first marginal is not finite")
    return ProxSinkhornResult(
        rho, _safe_log(a), _safe_log(b), it, err, err <= tol, False, errors, omega
    )


class _Stabilized:
    """``g -> log K exp(g)`` through an absorbed kernel (re-absorbed when ``g`` drifts) where
    the geometry offers one (:meth:`GridGeometry.absorb`, banded grids), else the exact
    log-sum-exp."""

    def __init__(self, geom) -> None:
        self.geom = geom
        self.on = bool(getattr(geom, "fully_banded", False)) and hasattr(geom, "absorb")
        self.kernel = None
        self.absorptions = 0

    def __call__(self, g: Tensor) -> Tensor:
        if not self.on:
            return self.geom.apply_lse_kernel(g)
        out = None if self.kernel is None else self.kernel.apply(g)
        if out is None:
            self.kernel = self.geom.absorb(g)
            self.absorptions += 1
            out = self.kernel.out
        return out


def _logd(geom, q, log_q, mass, prox_log, tol, inner_max, check_every, f0, g0, om):
    omega = om.omega
    relaxed = False
    f, g = f0, g0
    kern_g, kern_f = _Stabilized(geom), _Stabilized(geom)
    errors: list[float] = []
    err = float("inf")
    it = 0
    neg_inf = torch.tensor(float("-inf"), dtype=q.dtype, device=q.device)
    while it < inner_max:
        it += 1
        log_p = kern_g(g)
        log_r = prox_log(log_p)
        f_new = torch.where(torch.isfinite(log_p), log_r - log_p, neg_inf)
        f = f_new if omega == 1.0 else _relax(f, f_new, omega)
        log_ka = kern_f(f)
        check = it % check_every == 0 or it == inner_max
        if check:
            err = float((torch.exp(g + log_ka) - q).abs().sum()) / mass
            errors.append(err)
        g_new = torch.where(q > 0, log_q - log_ka, neg_inf)
        g = g_new if omega == 1.0 else _relax(g, g_new, omega)
        if check:
            if err <= tol or _stalled(errors):
                break
            om.observe(err, check_every)
            relaxed = relaxed or omega != 1.0
            omega = om.omega
    if relaxed or omega != 1.0 or kern_f.on:
        # exact second marginal (mass): the last g-update with the exact log-sum-exp, the
        # transpose of the one that gives rho below
        g = torch.where(q > 0, log_q - geom.apply_lse_kernel(f), neg_inf)
    rho = torch.exp(f + geom.apply_lse_kernel(g))
    return ProxSinkhornResult(rho, f, g, it, err, err <= tol, True, errors, omega)
