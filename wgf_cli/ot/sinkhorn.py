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

The API separates the problem from the solver::

    problem = ProxProblem(geom, q, prox_log)
    solver = ProxSinkhorn(tol=1e-9, inner_max=2000, log_domain="auto")
    result = solver.solve(problem, init=None)      # -> ProxSinkhornResult

(:func:`prox_sinkhorn` is the same call in one function.)  One iteration loop serves both
numerical paths, which give the same iterates: the *plain* path multiplies scalings (fast),
the *log* path adds log-scalings with log-sum-exp (never overflows); what differs (how the
kernel is applied, how a scaling is updated and relaxed, what is checked) lives in a small
strategy object per path.  ``log_domain="auto"`` runs the plain path and restarts the problem
in the log domain as soon as a scaling stops being finite.

Host synchronisation: the iterations stay on the device; every ``check_every`` iterations
the marginal error (and, on the plain path, the largest scalings) is read back once, because
the decision to stop (``tol``, stall, overflow, the automatic over-relaxation) is made on the
host.  That one read per check is what early stopping costs; ``check_every`` sets its
frequency.  A solve that reaches ``inner_max`` before ``tol`` warns
(:class:`SinkhornNotConverged`); its result says ``converged=False``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

Tensor = torch.Tensor
LogDomain = Literal["auto", True, False]
Overrelax = float | Literal["auto"]

#: cap on the automatic over-relaxation (the iterations diverge at omega = 2)
OMEGA_MAX = 1.95


class SinkhornNotConverged(UserWarning):
    """A KL-proximal Sinkhorn solve reached ``inner_max`` before its tolerance."""


class Geometry(Protocol):
    """What the iterations need of a geometry: its Gibbs kernel, plain and in log form."""

    def apply_kernel(self, b: Tensor) -> Tensor:
        """``K b`` for scalings ``b`` on the geometry's points (``K`` is symmetric)."""
        ...

    def apply_lse_kernel(self, g: Tensor) -> Tensor:
        """``log K exp(g)`` for log-scalings ``g``, without overflow."""
        ...


class DenseGeometry:
    """Explicit cost matrix ``C`` (N x N, symmetric) and dense Gibbs kernel ``exp(-C/gamma)``.

    Measures are flat tensors of length N.  This is the straightforward implementation
    (what ``ot.sinkhorn`` does with a cost matrix); it is the reference the separable grid
    geometry is tested and benchmarked against.

    Args:
        cost: The symmetric cost matrix ``C``, shape ``(N, N)``.
        gamma: Entropic parameter (``> 0``), in the units of ``C``: the kernel is
            ``exp(-C / gamma)``.
    """

    def __init__(self, cost: Tensor, gamma: float) -> None:
        self.cost = cost
        self.gamma = float(gamma)
        self.log_kernel = -cost / self.gamma
        self.kernel = torch.exp(self.log_kernel)

    def apply_kernel(self, b: Tensor) -> Tensor:
        """``K b``.

        Args:
            b: Scalings, shape ``(N,)``.

        Returns:
            ``K b``, shape ``(N,)``.
        """
        return self.kernel @ b

    def apply_lse_kernel(self, g: Tensor) -> Tensor:
        """``log K exp(g)`` by log-sum-exp.

        Args:
            g: Log-scalings, shape ``(N,)`` (``-inf`` allowed).

        Returns:
            ``log K exp(g)``, shape ``(N,)``.
        """
        return torch.logsumexp(self.log_kernel + g[None, :], dim=-1)

    def transport_cost(self, f: Tensor, g: Tensor) -> float:
        """``<C, pi>`` of the plan ``pi = diag(e^f) K diag(e^g)``.

        Args:
            f: Log-scaling of the first marginal, shape ``(N,)``.
            g: Log-scaling of the second marginal, shape ``(N,)``.

        Returns:
            The transport cost.
        """
        logpi = f[:, None] + self.log_kernel + g[None, :]
        return float((torch.exp(logpi) * self.cost).sum())


@dataclass
class ProxSinkhornResult:
    """Outcome of one KL-proximal Sinkhorn solve.

    Attributes:
        rho: first marginal ``pi 1`` (mass per point) after the last iteration.
        f: log-scaling ``log a`` of the first marginal (``-inf`` where ``a`` is zero); pass
            ``(f, g)`` back as ``init`` to warm-start the next solve.
        g: log-scaling ``log b`` of the second marginal (``-inf`` where ``b`` is zero).
        n_iters: iterations run.
        error: L1 error of the second marginal relative to ``sum(q)`` at the last check.
        converged: ``error <= tol``.
        log_domain: whether the log-domain path produced the result.
        errors: the error at every check, in order.
        omega: the over-relaxation in use at the end (adapted when ``overrelax="auto"``).
        widened: how many times a banded geometry's band was widened after the band-edge check.
        geom: the geometry that produced the result (``geom`` itself, or a widened copy:
            pass it to the next solve to keep the wider band).
        stalled: the last iterations stopped because the error stalled (the rounding floor
            of the dtype), not at ``tol`` or ``inner_max``.
        at_band_edge: the iterations stopped early because the plan reached the edge of a
            banded geometry's band (:meth:`ProxSinkhorn.solve` then widens the band and goes
            on; never set on a result it returns).
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
    stalled: bool = False
    at_band_edge: bool = False


def _safe_log(x: Tensor) -> Tensor:
    return torch.log(torch.clamp_min(x, 0.0))


@dataclass(frozen=True, eq=False)
class ProxProblem:
    """One KL-proximal transport problem: ``min KL(pi | K) + sigma F(pi 1)``, ``pi^T 1 = q``.

    Attributes:
        geom: geometry providing the kernel ``K`` (:class:`Geometry`).
        q: second marginal (non-negative, any shape the geometry accepts); never modified.
        prox_log: log-form KL-proximal map of ``sigma F`` (``sigma`` already folded in).
        log_q: ``log q`` (``-inf`` where ``q = 0``), derived.
        mass: ``sum(q)`` as a float, derived (the errors are relative to it).
    """

    geom: Geometry
    q: Tensor
    prox_log: Callable[[Tensor], Tensor]
    log_q: Tensor = dataclasses.field(init=False, repr=False)
    mass: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "log_q", _safe_log(self.q))
        object.__setattr__(self, "mass", float(self.q.sum()))

    def on(self, geom: Geometry) -> ProxProblem:
        """The same problem on another geometry (e.g. a widened band).

        Args:
            geom: The geometry to use instead of ``self.geom``.

        Returns:
            A new :class:`ProxProblem` with the same ``q`` and ``prox_log``.
        """
        return dataclasses.replace(self, geom=geom)


@dataclass(frozen=True)
class ProxSinkhorn:
    """The KL-proximal scaling iterations, configured once and applied with :meth:`solve`.

    Attributes:
        tol: stop when ``sum |b * K^T a - q| <= tol * sum q``, or (``converged=False``) when
            the error has stalled for :data:`STALL_CHECKS` checks (the rounding floor).
        inner_max: cap on the number of iterations; reaching it before ``tol`` warns
            (:class:`SinkhornNotConverged`).
        check_every: iterations between error / finiteness checks (one host read each).
        log_domain: ``True`` (log path), ``False`` (plain path; raises on overflow) or
            ``"auto"`` (plain path, restarted in the log domain on overflow).
        overrelax: ``omega`` in ``[1, 2)``; each update becomes ``f <- (1 - omega) f + omega
            f_new`` (over-relaxed scaling iterations, Thibault et al. 2017); ``1`` is the plain
            scheme.  The fixed point is the same; a last exact ``b``-update keeps the second
            marginal, hence the mass, exact.  ``"auto"``: run unrelaxed until the error
            decays at a steady linear rate ``lam`` (see :class:`_Omega`), then switch to the
            SOR optimum ``omega = 2 / (1 + sqrt(1 - lam))`` (capped at :data:`OMEGA_MAX`;
            backed off when the error clearly grows).  Iterations then grow like
            ``1/sqrt(1 - lam)`` instead of ``1/(1 - lam)``.
        omega_init: with ``overrelax="auto"``, an omega > 1 (e.g. the previous solve's) is
            used from the start instead of being estimated again.
        edge_tol: with a banded geometry (``geom.is_banded``), the plan mass on the band's
            outermost offsets must be ``<= edge_tol * sum(q)`` at the end, and is checked
            once before, when the error first reaches :data:`BAND_CHECK_ERROR`; otherwise the
            band widens (in a copy, ``result.geom``) and the solve continues from there
            (``widened`` counts it).
        warn: warn (:class:`SinkhornNotConverged`) when ``inner_max`` is reached before ``tol``.

    Raises:
        ValueError: ``overrelax`` outside ``[1, 2)`` and not ``"auto"``.
    """

    tol: float = 1e-9
    inner_max: int = 2000
    check_every: int = 5
    log_domain: LogDomain = "auto"
    overrelax: Overrelax = 1.0
    omega_init: float = 1.0
    edge_tol: float = 1e-11
    warn: bool = True

    def __post_init__(self) -> None:
        if self.overrelax != "auto" and not 1.0 <= float(self.overrelax) < 2.0:
            raise ValueError(f"overrelax must be in [1, 2) or 'auto', got {self.overrelax}")

    def solve(self, problem: ProxProblem, init: tuple[Tensor, Tensor] | None = None
              ) -> ProxSinkhornResult:
        """Run the iterations until the second marginal is within ``tol`` (or a stop).

        Args:
            problem: the problem (its tensors are not modified).
            init: warm start ``(f, g)`` log-scalings; zeros (``a = b = 1``) by default.

        Returns:
            The result; ``result.geom`` is the geometry used last (widened or not).

        Raises:
            FloatingPointError: ``log_domain=False`` and a scaling overflowed.
        """
        auto = self.overrelax == "auto"
        if auto:
            omega0 = min(max(float(self.omega_init), 1.0), OMEGA_MAX)
        else:
            omega0 = float(self.overrelax)
        if init is None:
            f0, g0 = torch.zeros_like(problem.q), torch.zeros_like(problem.q)
        else:
            f0, g0 = init
        res = self._attempt(problem, f0, g0, omega0, plain=self.log_domain is not True)
        geom = problem.geom
        res.geom = geom
        while getattr(geom, "is_banded", False) and (
                res.at_band_edge or geom.band_edge_mass(res.f, res.g) > self.edge_tol * problem.mass):
            geom = geom.widened()
            problem = problem.on(geom)
            more = self._attempt(problem, res.f, res.g, res.omega, plain=not res.log_domain,
                                 widened=True)
            more.n_iters += res.n_iters
            more.errors = res.errors + more.errors
            more.widened, more.geom = res.widened + 1, geom
            res = more
        if self.warn and not res.converged and not res.stalled:
            warnings.warn(
                f"KL-proximal Sinkhorn reached inner_max={self.inner_max} before tol={self.tol:g} "
                "(result.converged is False; result.error has the marginal error)",
                SinkhornNotConverged, stacklevel=2)
        return res

    def _attempt(self, problem: ProxProblem, f0: Tensor, g0: Tensor, omega: float, *,
                 plain: bool, widened: bool = False) -> ProxSinkhornResult:
        """One solve from ``(f0, g0)``: the plain path when ``plain``, else the log path.

        The plain path falls back to the log domain on overflow unless ``log_domain=False``;
        each try starts a fresh over-relaxation state.  After a band widening (``widened``) the
        new kernel entries meet scalings not adapted to them and an over-relaxed start can
        diverge (measured: porous medium at 512^2, omega 1.92, errors 6e24 -> inf), so an
        automatic omega is estimated again, unrelaxed first.
        """
        auto = self.overrelax == "auto"
        if widened and auto:
            omega = 1.0
        if plain:
            try:
                return self._iterate(_PlainDomain(problem, f0, g0), problem,
                                     _Omega(omega, auto))
            except FloatingPointError:
                if self.log_domain is False:
                    raise
        return self._iterate(_LogDomain(problem, f0, g0), problem, _Omega(omega, auto))

    def _iterate(self, dom: _PlainDomain | _LogDomain, problem: ProxProblem, om: _Omega
                 ) -> ProxSinkhornResult:
        """The one iteration loop; ``dom`` holds the scalings and does the domain-specific work."""
        tol, inner_max, check_every, mass = self.tol, self.inner_max, self.check_every, problem.mass
        omega = om.omega
        relaxed = stalled = at_edge = False
        # a banded geometry's edge is checked once early, so that a band too narrow is widened
        # before the iterations converge on it (the widening restarts the slow modes)
        edge_check = bool(getattr(problem.geom, "is_banded", False))
        errors: list[float] = []
        since = 0  # where the stall window starts
        err = float("inf")
        it = 0
        while it < inner_max:
            it += 1
            dom.update_first(omega)
            k_first = dom.kernel_first()
            check = it % check_every == 0 or it == inner_max
            residual = dom.residual(k_first) if check else None
            dom.update_second(k_first, omega)
            if check:
                err = dom.read_check(residual) / mass  # the one host read of a check
                errors.append(err)
                if err <= tol:
                    break
                if _stalled(errors[since:]):
                    stalled = True
                    break
                if edge_check and err <= BAND_CHECK_ERROR:
                    edge_check = False
                    if problem.geom.band_edge_mass(*dom.log_scalings()) > self.edge_tol * mass:
                        at_edge = True
                        break
                om.observe(err, check_every)
                relaxed = relaxed or omega != 1.0
                if om.omega != omega:  # a new omega starts a new stall window (its transient
                    since = len(errors)  # may raise the error above the best before it)
                omega = om.omega
        rho, f, g = dom.finish(exact_second=relaxed or omega != 1.0)
        return ProxSinkhornResult(rho, f, g, it, err, err <= tol, dom.log_domain, errors, omega,
                                  stalled=stalled, at_band_edge=at_edge)


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
    """``ProxSinkhorn(...).solve(ProxProblem(geom, q, prox_log), init)`` in one call.

    The keyword settings are those of :class:`ProxSinkhorn`, which describes them in full.

    Args:
        geom: geometry providing the kernel.
        q: second marginal (non-negative, any shape the geometry accepts).
        prox_log: log-form KL-proximal map of ``sigma F`` (``sigma`` already folded in).
        tol: relative L1 tolerance on the second marginal.
        inner_max: cap on the number of iterations (reaching it warns).
        check_every: iterations between error checks (one host read each).
        log_domain: ``True``, ``False`` or ``"auto"`` (plain path, log domain on overflow).
        init: warm start ``(f, g)`` log-scalings; zeros (``a = b = 1``) by default.
        overrelax: over-relaxation ``omega`` in ``[1, 2)``, or ``"auto"``.
        omega_init: with ``overrelax="auto"``, a starting omega > 1 to use as it is.
        edge_tol: largest relative plan mass on a banded geometry's outermost offsets
            before the band is widened.

    Returns:
        The :class:`ProxSinkhornResult`.
    """
    solver = ProxSinkhorn(tol=tol, inner_max=inner_max, check_every=check_every,
                          log_domain=log_domain, overrelax=overrelax, omega_init=omega_init,
                          edge_tol=edge_tol)
    return solver.solve(ProxProblem(geom, q, prox_log), init)


#: relative marginal error at which a banded solve checks the plan mass on the band's edge
BAND_CHECK_ERROR = 1e-4

#: checks in a row whose unrelaxed rates must agree before ``overrelax="auto"`` estimates omega
STEADY_CHECKS = 4


class _Omega:
    """The over-relaxation parameter, fixed or (``auto``) estimated.

    In ``auto`` mode it is estimated once from the decay of the unrelaxed iterations, as soon
    as that decay is steady: :data:`STEADY_CHECKS` checks in a row below a relative error of 1
    whose rates ``lam`` agree to a tenth of ``1 - lam`` (the slow mode dominates; waiting for
    the error to come near ``tol`` instead costs ``~1/(1 - lam)`` iterations, thousands on
    fine grids).  It is then held, backed off when the error clearly grows: at one check once
    the relative error is below 1, at two checks in a row above it (a cold start's first
    errors can jump by many orders of magnitude once before they fall, which says nothing
    about omega).
    """

    def __init__(self, omega: float, auto: bool) -> None:
        self.omega, self.auto = omega, auto
        self.estimated = omega > 1.0  # a carried-over omega is used as it is
        self.rates: list[float] = []  # per-iteration rates of the unrelaxed checks in a steady run
        self.prev: float | None = None
        self.grew = False  # the error grew clearly at the previous check

    def observe(self, err: float, iters: int) -> None:
        if not self.auto:
            return
        prev, self.prev = self.prev, err
        if prev is None or not (prev > 0 and err > 0) or err != err:
            return
        rho = (err / prev) ** (1.0 / iters)
        w = self.omega
        grew = err > 2.0 * prev
        grew_before, self.grew = self.grew, grew
        if w > 1.0 and grew and (prev < 1.0 or grew_before):
            self.omega = 1.0 + 0.8 * (w - 1.0)  # clearly growing: back off towards the plain scheme
            return
        if self.estimated or w != 1.0:
            return
        # the unrelaxed rate lam, once the decay is steady (the fast modes have died out and
        # the slowest one sets the rate)
        if not (err < 1.0 and rho < 1.0 and err < prev):
            self.rates.clear()
            return
        self.rates.append(rho)
        last = self.rates[-STEADY_CHECKS:]
        if len(last) == STEADY_CHECKS and max(last) - min(last) <= 0.1 * (1.0 - max(last)):
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
    """``(1 - omega) old + omega new`` for log-scalings.

    ``-inf`` in ``new`` stays ``-inf``; where ``old`` is ``-inf`` the new value is taken as it is.
    """
    both = torch.isfinite(old) & torch.isfinite(new)
    return torch.where(both, (1.0 - omega) * old + omega * new, new)


def _relax_finite_new(old: Tensor, new: Tensor, omega: float) -> Tensor:
    """:func:`_relax` where ``old`` is never ``+inf``.

    That holds for plain-domain scalings, bounded by the overflow check: ``old + omega (new -
    old)`` is then ``-inf`` exactly where ``new`` is, and only ``old = -inf`` needs ``new``
    taken as it is.
    """
    return torch.where(old == -math.inf, new, torch.lerp(old, new, omega))


class _PlainDomain:
    """The plain path's state and steps: scalings ``a = e^f``, ``b = e^g`` and ``K``.

    Raises :class:`FloatingPointError` when a scaling leaves the float range (beyond
    ``max^0.9``: e^638 in float64, e^80 in float32), at the start or at a check.
    """

    log_domain = False

    def __init__(self, problem: ProxProblem, f0: Tensor, g0: Tensor) -> None:
        self.geom, self.q, self.prox_log = problem.geom, problem.q, problem.prox_log
        self.a = torch.exp(f0)
        self.b = torch.exp(g0)
        # the log-scalings of the last over-relaxed update (``None``: take ``log a``/``log b``)
        self.log_a: Tensor | None = None
        self.log_b: Tensor | None = None
        self.q_pos = self.q > 0
        self.log_q = _safe_log(self.q)
        # scalings beyond max^0.9 count as overflow: their products with the kernel are about
        # to leave the float range
        self.big = torch.finfo(self.q.dtype).max ** 0.9
        if not (float(self.a.max()) <= self.big and float(self.b.max()) <= self.big):
            raise FloatingPointError("warm-start scalings overflow")

    def update_first(self, omega: float) -> None:
        """``a <- prox(K b) / (K b)`` (over-relaxed in log form when ``omega != 1``)."""
        kb = self.geom.apply_kernel(self.b)
        log_p = _safe_log(kb)
        log_r = self.prox_log(log_p)
        if omega == 1.0:
            self.a, self.log_a = torch.where(kb > 0, torch.exp(log_r - log_p), 0.0), None
            return
        old = _safe_log(self.a) if self.log_a is None else self.log_a
        self.log_a = _relax_finite_new(old, torch.where(kb > 0, log_r - log_p, -math.inf), omega)
        self.a = torch.exp(self.log_a)

    def kernel_first(self) -> Tensor:
        """``K^T a``."""
        return self.geom.apply_kernel(self.a)

    def residual(self, ka: Tensor) -> Tensor:
        """``sum |b K^T a - q|`` (before the ``b``-update; read by :meth:`read_check`)."""
        return (self.b * ka - self.q).abs().sum()

    def update_second(self, ka: Tensor, omega: float) -> None:
        """``b <- q / K^T a`` (over-relaxed in log form when ``omega != 1``)."""
        if omega == 1.0:
            self.b, self.log_b = torch.where(self.q_pos, self.q / ka, 0.0), None
            return
        old = _safe_log(self.b) if self.log_b is None else self.log_b
        self.log_b = _relax_finite_new(old, torch.where(self.q_pos, self.log_q - torch.log(ka), -math.inf), omega)
        self.b = torch.exp(self.log_b)

    def log_scalings(self) -> tuple[Tensor, Tensor]:
        """The current ``(log a, log b)``."""
        return (_safe_log(self.a) if self.log_a is None else self.log_a,
                _safe_log(self.b) if self.log_b is None else self.log_b)

    def read_check(self, residual: Tensor) -> float:
        """The residual and the largest scalings in one host read; raises on overflow."""
        err, amax, bmax = torch.stack([residual, self.a.max(), self.b.max()]).tolist()
        if not (amax <= self.big and bmax <= self.big and err == err):
            raise FloatingPointError("scalings overflowed in the plain domain")
        return err

    def finish(self, exact_second: bool) -> tuple[Tensor, Tensor, Tensor]:
        """``(rho, f, g)``; an exact last ``b``-update first after over-relaxed updates."""
        geom, q, a, b = self.geom, self.q, self.a, self.b
        if exact_second:  # exact second marginal (mass) after over-relaxed updates
            b = torch.where(q > 0, q / geom.apply_kernel(a), torch.zeros_like(q))
        rho = a * geom.apply_kernel(b)
        if not torch.isfinite(rho).all():
            raise FloatingPointError("first marginal is not finite")
        return rho, _safe_log(a), _safe_log(b)


class _Stabilized:
    """``g -> log K exp(g)``, through an absorbed kernel where the geometry offers one.

    Banded grids offer one (:meth:`GridGeometry.absorb`; re-absorbed when ``g`` drifts);
    other geometries use the exact log-sum-exp.
    """

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


class _LogDomain:
    """The log path's state and steps: log-scalings ``f``, ``g`` and ``log K exp(.)``.

    The kernel goes through absorbed kernels where the geometry has them.
    """

    log_domain = True

    def __init__(self, problem: ProxProblem, f0: Tensor, g0: Tensor) -> None:
        self.geom, self.q, self.prox_log = problem.geom, problem.q, problem.prox_log
        self.log_q = problem.log_q
        self.f, self.g = f0, g0
        self.kern_g, self.kern_f = _Stabilized(self.geom), _Stabilized(self.geom)
        self.neg_inf = torch.tensor(float("-inf"), dtype=self.q.dtype, device=self.q.device)

    def update_first(self, omega: float) -> None:
        """``f <- log prox(K e^g) - log K e^g`` (over-relaxed when ``omega != 1``)."""
        log_p = self.kern_g(self.g)
        log_r = self.prox_log(log_p)
        f_new = torch.where(torch.isfinite(log_p), log_r - log_p, self.neg_inf)
        self.f = f_new if omega == 1.0 else _relax(self.f, f_new, omega)

    def kernel_first(self) -> Tensor:
        """``log K^T e^f``."""
        return self.kern_f(self.f)

    def residual(self, log_ka: Tensor) -> Tensor:
        """``sum |e^(g + log K^T e^f) - q|`` (before the ``g``-update)."""
        return (torch.exp(self.g + log_ka) - self.q).abs().sum()

    def update_second(self, log_ka: Tensor, omega: float) -> None:
        """``g <- log q - log K^T e^f`` (over-relaxed when ``omega != 1``)."""
        g_new = torch.where(self.q > 0, self.log_q - log_ka, self.neg_inf)
        self.g = g_new if omega == 1.0 else _relax(self.g, g_new, omega)

    def log_scalings(self) -> tuple[Tensor, Tensor]:
        """The current ``(f, g)``."""
        return self.f, self.g

    def read_check(self, residual: Tensor) -> float:
        """The residual, read once."""
        return residual.item()

    def finish(self, exact_second: bool) -> tuple[Tensor, Tensor, Tensor]:
        """``(rho, f, g)``.

        An exact last ``g``-update comes first after over-relaxed updates or absorbed kernels.
        """
        geom, q, f, g = self.geom, self.q, self.f, self.g
        if exact_second or self.kern_f.on:
            # exact second marginal (mass): the last g-update with the exact log-sum-exp, the
            # transpose of the one that gives rho below
            g = torch.where(q > 0, self.log_q - geom.apply_lse_kernel(f), self.neg_inf)
        rho = torch.exp(f + geom.apply_lse_kernel(g))
        return rho, f, g
