"""Entropic JKO stepping (Peyré 2015, "Entropic approximation of Wasserstein gradient flows").

One step with physical time step ``h`` and entropic parameter ``gamma`` solves

    rho_{k+1} = argmin_rho  F(rho) + W_gamma(rho, rho_k) / (2 h),
    W_gamma(p, q) = min_{pi in Pi(p, q)} <C, pi> + gamma sum pi (log pi - 1),

with ``C_ij = |x_i - x_j|^2`` and Gibbs kernel ``K = exp(-C / gamma)``.  Multiplying by
``2h / gamma`` turns it into ``min KL(pi | K) + sigma F(pi 1)`` with ``sigma = 2h/gamma``,
solved by :class:`~wgf_cli.ot.sinkhorn.ProxSinkhorn`.

The engine owns its time loop: :meth:`EntropicJKO.run` runs a number of steps from any step
index (``start_step``), so a flow interrupted after step ``k`` continues with ``run(rho_k,
n, start_step=k)`` once its state (:meth:`EntropicJKO.state_dict`) is restored.  The energy
given to :class:`EntropicJKO` is not modified: the flow works on its own shallow copy
(:attr:`EntropicJKO.energy`), whose ``prox_diffusion`` it sets.

Mapping to the paper: Peyré writes a step as ``min W_gamma(rho, rho_k) + tau F(rho)``, so his
``tau`` is ``2h`` here and his ``gamma`` is ours; ``h`` is the time of the PDE, so the heat
energy ``D int rho log rho`` gives ``d rho/dt = D Laplacian rho`` in physical time.

Entropic blur: a step of the scheme also convolves with the kernel, whose variance per axis
is ``s^2 = gamma/2`` (for the sampled kernel: :meth:`GridGeometry.kernel_variance`); that is
an extra diffusion ``D_blur = s^2 / (2h) ~ gamma / (4h)`` on every flow.  With
``debias=True`` the proximal map of an energy with linear diffusion ``D`` uses
``max(D - D_blur, 0)`` instead of ``D`` (the value of the energy is unchanged).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wgf_cli.flows.energies import Energy
from wgf_cli.ot.grid import DEFAULT_TRUNCATION, GridGeometry
from wgf_cli.ot.sinkhorn import OMEGA_MAX, LogDomain, ProxProblem, ProxSinkhorn

Tensor = torch.Tensor


@dataclass
class JKOStep:
    """Diagnostics of one JKO step.

    Attributes:
        step: index ``k`` of the step (``rho`` is ``rho_k``); 0 until :meth:`EntropicJKO.run`
            numbers it.
        t: physical time of ``rho``.
        rho: the density after the step (masses per cell).
        inner_iters: KL-proximal iterations of the step.
        marginal_error: relative L1 error of the second marginal at the last check.
        converged: ``marginal_error <= tol``.
        log_domain: whether the step was solved in the log domain.
        transport_cost: ``<C, pi>`` of the step's plan.
        wall_s: wall time of the step.
    """

    step: int
    t: float
    rho: Tensor
    inner_iters: int
    marginal_error: float
    converged: bool
    log_domain: bool
    transport_cost: float
    wall_s: float


@dataclass
class JKOResult:
    """A whole flow: final density, snapshots and per-step diagnostics.

    Attributes:
        rho: the last density.
        t: its time.
        steps: the :class:`JKOStep` of every step run (empty with ``keep_steps=False``).
        snapshots: ``(t, rho)`` copies (see :meth:`EntropicJKO.run`).
    """

    rho: Tensor
    t: float
    steps: list[JKOStep] = field(default_factory=list)
    snapshots: list[tuple[float, Tensor]] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        """Every step reached its tolerance."""
        return all(s.converged for s in self.steps)

    @property
    def n_iters(self) -> list[int]:
        """Inner iterations per step."""
        return [s.inner_iters for s in self.steps]

    @property
    def errors(self) -> list[float]:
        """Marginal error per step."""
        return [s.marginal_error for s in self.steps]


def energy_decrease(energies: np.ndarray, entropy: np.ndarray, diffusion: float,
                    effective_diffusion: float, slack: float = 1e-9) -> dict[str, Any]:
    """Whether a flow decreased its energy, step by step.

    Increases are taken relative to ``max |F|`` over the flow (``F`` may cross zero).  When
    the scheme's diffusion differs from ``D`` (:attr:`EntropicJKO.effective_diffusion`, e.g.
    the blur exceeds ``D`` on a coarse grid), the energy it decreases is ``F`` with the
    entropy term rescaled to ``D_eff``; that one is checked too.

    Args:
        energies: ``F(rho_k)``, k = 0..N.
        entropy: the entropy term ``D int rho log rho`` at the same steps (any length if
            unknown: then the effective check is the plain one).
        diffusion: ``D`` of the energy.
        effective_diffusion: ``D_eff`` of the scheme.
        slack: relative increase tolerated (rounding).

    Returns:
        ``energy_monotone``, ``energy_increase_max`` (0 if monotone), ``diffusion_effective``
            and ``energy_effective_monotone``.
    """
    energies = np.asarray(energies)
    incr = np.diff(energies) / max(float(np.abs(energies).max()), 1e-300)
    out: dict[str, Any] = {
        "energy_monotone": bool((incr <= slack).all()),
        "energy_increase_max": float(max(0.0, incr.max())) if incr.size else 0.0,
        "diffusion_effective": effective_diffusion,
    }
    d_eff = effective_diffusion
    if (diffusion > 0 and abs(d_eff - diffusion) > 1e-12 * diffusion
            and len(entropy) == len(energies)):
        eff = energies + (d_eff / diffusion - 1.0) * np.asarray(entropy)
        incr_eff = np.diff(eff) / max(float(np.abs(eff).max()), 1e-300)
        out["energy_effective_monotone"] = bool((incr_eff <= slack).all())
    else:
        out["energy_effective_monotone"] = out["energy_monotone"]
    return out


def entropic_gamma(spacing: float, h: float, diffusion: float = 0.0, *, factor: float = 1.0,
                   blur_share: float = 0.0) -> float:
    """The entropic parameter of a step: ``max(factor * dx^2, blur_share * 4 h D)``.

    ``factor * dx^2`` is the resolution floor (a kernel a few cells wide).  With a linear
    diffusion ``D`` and the blur debiased (``EntropicJKO(debias=True)``), the blur of a step,
    a diffusion ``gamma / (4h)``, can carry the share ``blur_share`` of ``D`` instead of being
    subtracted as an error: the proximal map then handles ``(1 - blur_share) D``, so the
    scaling iterations contract at ``sigma D' / (1 + sigma D')`` with ``sigma D' = (1 -
    blur_share) / (2 blur_share)`` (1/3 at a share of 0.5) whatever the grid, instead of a rate
    that tends to 1 like ``1 - dx^2 / (2 h D)``.  The heat flow's error against the exact kernel
    shrinks with it (the blur is exact heat flow).  ``blur_share = 0`` (or ``D = 0``): the floor.

    Args:
        spacing: the grid spacing ``dx`` (the smallest, on an anisotropic grid).
        h: physical time step.
        diffusion: linear diffusion coefficient ``D`` of the energy (0 if none).
        factor: ``gamma`` in units of ``dx^2`` at least.
        blur_share: share of ``D`` carried by the blur, in ``[0, 1)``.
    """
    if not 0.0 <= blur_share < 1.0:
        raise ValueError(f"blur_share must be in [0, 1), got {blur_share}")
    gamma = float(factor) * float(spacing) ** 2
    if blur_share > 0 and diffusion > 0:
        gamma = max(gamma, blur_share * 4.0 * float(h) * float(diffusion))
    return gamma


class EntropicJKO:
    """Entropic JKO flow of ``energy`` on the grid of ``energy.grid``.

    The flow keeps its own shallow copy of ``energy`` (:attr:`energy`, with ``prox_diffusion``
    set: lowered by the blur with ``debias``); the energy passed in is left as it is.  The
    state carried from one step to the next (warm start, over-relaxation, kernel band, domain)
    is :meth:`state_dict`.

    Args:
        energy: the free energy (bound to its grid); not modified.
        h: physical time step.
        gamma: entropic parameter of the Gibbs kernel ``exp(-|x-y|^2/gamma)``.
        tol: per-step stopping tolerance on the relative L1 marginal error.
        inner_max: cap on the KL-proximal iterations of one step.
        log_domain: ``"auto"``, ``True`` or ``False`` (see :class:`ProxSinkhorn`); with
            ``"auto"`` every step chooses: the plain path when the warm start's scalings fit
            the float range with a margin (``|f|, |g| <= 0.45 log(max)``) or the previous
            step was plain, the log domain otherwise; a plain step that overflows restarts
            in the log domain.
        debias: compensate the entropic blur in the linear diffusion (see module doc).
        check_every: iterations between marginal-error checks.
        overrelax: over-relaxation ``omega`` of the scaling updates (1: none; ``"auto"``:
            adapted within each step and carried over to the next, see :class:`ProxSinkhorn`).
        truncation: drop the 1-D kernel entries below this fraction of the diagonal (banded
            kernel, :class:`GridGeometry`); ``None``: the full kernel.  Each step checks the
            plan mass on the band's edge and widens the band when it is not negligible.
    """

    def __init__(
        self,
        energy: Energy,
        h: float,
        gamma: float,
        *,
        tol: float = 1e-7,
        inner_max: int = 2000,
        log_domain: LogDomain = "auto",
        debias: bool = False,
        check_every: int = 5,
        overrelax: float | str = 1.0,
        truncation: float | None = DEFAULT_TRUNCATION,
    ) -> None:
        if not h > 0:
            raise ValueError(f"time step h must be > 0, got {h}")
        #: the flow's own copy of the energy (``prox_diffusion`` set; ``begin_step`` state)
        self.energy = copy.copy(energy)
        self.grid = energy.grid
        self.geom = GridGeometry(self.grid, gamma, truncation)
        self.h, self.gamma = float(h), float(gamma)
        self.sigma = 2.0 * self.h / self.gamma
        self.tol, self.inner_max, self.check_every = tol, inner_max, check_every
        self.overrelax = overrelax
        self.log_domain: LogDomain = log_domain
        self.debias = debias
        var = self.geom.kernel_variance()
        self.blur_diffusion = sum(var) / len(var) / (2.0 * self.h)
        #: diffusion coefficient inside the proximal map (``D - D_blur`` with ``debias``)
        self.prox_diffusion = (
            max(energy.diffusion - self.blur_diffusion, 0.0) if debias else energy.diffusion
        )
        self.energy.prox_diffusion = self.prox_diffusion
        #: log-scalings ``(f, g)`` the next step starts from (set by every step; may be set
        #: by hand, e.g. from a checkpoint, or ``None`` for a cold start)
        self.warm_start: tuple[Tensor, Tensor] | None = None
        #: over-relaxation the next step starts from (``overrelax="auto"``): with a linear
        #: diffusion D the proximal half-step contracts by ``kappa = sigma D / (1 + sigma D)``,
        #: the rate of the unrelaxed iterations, so the SOR optimum ``2 / (1 + sqrt(1 - kappa))``
        #: is the start (the error decay estimates it otherwise)
        self.omega = 1.0
        sd = self.sigma * self.prox_diffusion
        if overrelax == "auto" and sd > 0:
            self.omega = min(2.0 / (1.0 + math.sqrt(1.0 / (1.0 + sd))), OMEGA_MAX)
        self._last_log = log_domain is True

    @property
    def effective_diffusion(self) -> float:
        """The scheme's own diffusion: ``D + D_blur``, minus what ``debias`` compensates (up to ``D``).

        With the blur above ``D`` the flow is that of ``F`` with ``D`` replaced by
        ``max(D, D_blur)``.
        """
        d = self.energy.diffusion
        return d + self.blur_diffusion - (min(d, self.blur_diffusion) if self.debias else 0.0)

    @property
    def debias_complete(self) -> bool:
        """Whether the blur is fully compensated (``D >= D_blur``)."""
        return self.debias and self.energy.diffusion >= self.blur_diffusion

    def step(self, rho: Tensor) -> JKOStep:
        """One JKO step from ``rho`` (warm-started from the previous step).

        Args:
            rho: the current density ``rho_k`` (masses per cell); not modified.

        Returns:
            The step's diagnostics with ``rho_{k+1}`` (``step`` and ``t`` left at 0: the
                caller, e.g. :meth:`run`, numbers it).
        """
        t0 = time.perf_counter()
        self.energy.begin_step(rho)
        mode: LogDomain = self.log_domain
        if mode == "auto" and self._last_log and self.warm_start is not None:
            # the previous step needed the log domain: plain again only if the warm start
            # is comfortably inside the float range
            lim = 0.45 * math.log(torch.finfo(rho.dtype).max)
            fits = all(float(x.max()) <= lim for x in self.warm_start)
            mode = "auto" if fits else True
        energy, sigma = self.energy, self.sigma
        problem = ProxProblem(self.geom, rho, lambda lp: energy.prox_log(lp, sigma))
        solver = ProxSinkhorn(tol=self.tol, inner_max=self.inner_max, check_every=self.check_every,
                              log_domain=mode, overrelax=self.overrelax, omega_init=self.omega)
        res = solver.solve(problem, init=self.warm_start)
        self._last_log = res.log_domain
        self.omega = res.omega
        self.geom = res.geom  # a widened band stays for the next steps
        self.warm_start = (res.f, res.g)
        cost = self.geom.transport_cost(res.f, res.g)
        return JKOStep(
            step=0, t=0.0, rho=res.rho, inner_iters=res.n_iters, marginal_error=res.error,
            converged=res.converged, log_domain=res.log_domain, transport_cost=cost,
            wall_s=time.perf_counter() - t0,
        )

    def state_dict(self) -> dict[str, Any]:
        """What a step hands to the next, to checkpoint.

        Returns:
            A dict with the warm start ``(f, g)`` (tensors as they are; move them to the CPU to
                save), the over-relaxation ``omega``, whether the last step ran in the log domain,
                and the kernel band per axis.
        """
        return {"warm_start": self.warm_start, "omega": self.omega, "last_log": self._last_log,
                "band": list(self.geom.band)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next step then continues where the saved flow stopped.

        Args:
            state: A dict from :meth:`state_dict`; the band is restored by widening this
                flow's kernel to it.

        Raises:
            ValueError: If the saved band is not reachable by widening this flow's band.
        """
        ws = state.get("warm_start")
        self.warm_start = None if ws is None else tuple(ws)
        self.omega = float(state.get("omega", self.omega))
        self._last_log = bool(state.get("last_log", self._last_log))
        band = state.get("band")
        while band is not None and list(self.geom.band) != list(band):
            wider = self.geom.widened()
            if wider is None or any(w > b for w, b in zip(wider.band, band, strict=True)):
                raise ValueError(f"kernel band {band} is not a widening of {self.geom.band}")
            self.geom = wider

    def run(
        self,
        rho0: Tensor,
        steps: int,
        *,
        start_step: int = 0,
        t0: float | None = None,
        snapshot_every: int = 0,
        keep_steps: bool = True,
        callback: Callable[[JKOStep], None] | None = None,
    ) -> JKOResult:
        """Run ``steps`` steps from ``rho0``, the density at step ``start_step``.

        The steps are numbered ``start_step + 1, ..., start_step + steps``; step ``k`` has
        time ``k h`` (``t0 + (k - start_step) h`` when ``t0`` is given), so that a flow run
        in pieces (``run(rho_k, n, start_step=k)`` on the same flow, or on a new one after
        :meth:`load_state_dict`) gives exactly the numbers of one run.

        Args:
            rho0: the density at ``start_step`` (masses per cell); not modified.
            steps: how many steps to run (>= 0).
            start_step: index of ``rho0``.
            t0: time of ``rho0``; ``start_step * h`` by default.
            snapshot_every: keep ``(t, rho)`` copies at ``rho0``, at every step index that is
                a multiple of ``snapshot_every`` (0: none) and at the end.
            keep_steps: keep every :class:`JKOStep` (with its density) in the result; ``False``
                keeps memory flat on long runs (``callback`` still sees every step).
            callback: called with every step, in order, after it is numbered.

        Returns:
            The :class:`JKOResult` (``rho`` and ``t`` of the last step).
        """
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")

        def time_of(k: int) -> float:
            return k * self.h if t0 is None else t0 + (k - start_step) * self.h

        rho = rho0
        result = JKOResult(rho=rho0, t=time_of(start_step))
        result.snapshots.append((result.t, rho0.clone()))
        last = start_step + steps
        for k in range(start_step + 1, last + 1):
            st = self.step(rho)
            st.step, st.t = k, time_of(k)
            rho = st.rho
            if keep_steps:
                result.steps.append(st)
            if (snapshot_every and k % snapshot_every == 0) or k == last:
                result.snapshots.append((st.t, rho.clone()))
            if callback is not None:
                callback(st)
        result.rho, result.t = rho, time_of(last)
        return result
