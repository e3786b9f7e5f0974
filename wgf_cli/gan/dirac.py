"""The Dirac-GAN pendulum (Mescheder, Geiger & Nowozin 2018) with the WGAN loss.

Generator ``δ_θ``, data ``δ_0``, linear critic ``D(x) = ψ x``.  The WGAN objective
``L(θ, ψ) = E_data D − E_gen D = −ψθ`` is maximised by the critic and minimised by the
generator, so the gradient flow is the rotation

    θ' = −∂_θ L = ψ,      ψ' = ∂_ψ L = −θ,

which conserves ``θ² + ψ²``: every orbit is a circle around the equilibrium (0, 0).

- *Simultaneous* gradient steps ``(θ, ψ) ← (θ + hψ, ψ − hθ)`` multiply the radius by
  ``√(1 + h²)`` per step: after N steps ``r_N = r_0 (1 + h²)^(N/2)`` (spiral out).
- *Alternating* steps (``θ`` first, then ``ψ`` with the new ``θ``) form a symplectic map of
  determinant 1 that conserves ``θ² + ψ² + hθψ``: the orbits are bounded ellipses (h < 2).
- *Clipping* ``ψ ∈ [−c, c]`` turns the flow into a projected flow.  An orbit of radius
  ``r_0 > c`` rotates freely until ``|ψ|`` reaches ``c`` (after ``t_1``), slides along the
  face ``ψ = ±c`` at speed ``c`` until ``θ = 0`` (``√(r_0² − c²)/c`` later) and then stays on
  the circle of radius ``c``, which touches the box: a limit cycle reached in the finite
  time :func:`clipped_cycle` gives in closed form.  Orbits with ``r_0 ≤ c`` never feel the box.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class Trajectory:
    """Orbits of the Dirac-GAN flow: times and ``(θ, ψ)`` of ``m`` trajectories side by side."""
    t: np.ndarray  # (N+1,)
    theta: np.ndarray  # (N+1, m) -- m trajectories side by side
    psi: np.ndarray
    on_boundary: np.ndarray | None = None  # (N+1, m) bool: the step pushed ψ out of the box

    @property
    def radius(self) -> np.ndarray:
        """Distance ``sqrt(θ² + ψ²)`` to the equilibrium at every time."""
        return np.hypot(self.theta, self.psi)


def _as_batch(theta0, psi0) -> tuple[np.ndarray, np.ndarray]:
    th = np.atleast_1d(np.asarray(theta0, dtype=np.float64))
    ps = np.atleast_1d(np.asarray(psi0, dtype=np.float64))
    return np.broadcast_arrays(th, ps)


def exact_flow(theta0, psi0, t) -> tuple[np.ndarray, np.ndarray]:
    """The rotation ``θ(t) = θ0 cos t + ψ0 sin t``, ``ψ(t) = ψ0 cos t − θ0 sin t``."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    th, ps = _as_batch(theta0, psi0)
    return th * np.cos(t) + ps * np.sin(t), ps * np.cos(t) - th * np.sin(t)


def projected_rk4(field, theta0, psi0, T: float, h: float, clip: float | None = None) -> Trajectory:
    """RK4 integration of ``(θ', ψ') = field(θ, ψ)`` up to time ``T`` (step ``h``).

    With ``clip`` the second variable is projected onto ``[−clip, clip]`` before it enters the
    field and after every step (``on_boundary`` records where a step pushed it out).
    """
    th, ps = (a.copy() for a in _as_batch(theta0, psi0))
    steps = int(round(T / h))
    proj = (lambda p: np.clip(p, -clip, clip)) if clip is not None else (lambda p: p)

    def f(a, b):
        return field(a, proj(b))

    ps = proj(ps)
    out_t, out_p = [th.copy()], [ps.copy()]
    bnd = [np.zeros_like(th, dtype=bool)]
    for _ in range(steps):
        k1 = f(th, ps)
        k2 = f(th + 0.5 * h * k1[0], ps + 0.5 * h * k1[1])
        k3 = f(th + 0.5 * h * k2[0], ps + 0.5 * h * k2[1])
        k4 = f(th + h * k3[0], ps + h * k3[1])
        th = th + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        new = ps + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        ps = proj(new)
        # a tangential touch of the cycle overshoots by O(h^5); sliding by about h|θ|
        bnd.append(np.abs(new - ps) > 1e-13 * (clip or 1.0))
        out_t.append(th)
        out_p.append(ps)
    return Trajectory(np.arange(steps + 1) * h, np.stack(out_t), np.stack(out_p), np.stack(bnd))


def flow(theta0, psi0, T: float, h: float, clip: float | None = None) -> Trajectory:
    """The continuous flow integrated with RK4 (step ``h``, up to time ``T``).

    With ``clip`` the flow is projected: the vector field uses the clipped ``ψ`` and ``ψ`` is
    projected onto ``[−clip, clip]`` after every step (``on_boundary`` records where it was).
    """
    return projected_rk4(lambda a, b: (b, -a), theta0, psi0, T, h, clip)


def simultaneous(theta0, psi0, h: float, steps: int, clip: float | None = None) -> Trajectory:
    """Simultaneous gradient steps ``(θ, ψ) ← (θ + hψ, ψ − hθ)`` (ψ projected with ``clip``)."""
    th, ps = (a.copy() for a in _as_batch(theta0, psi0))
    out_t, out_p = [th.copy()], [ps.copy()]
    for _ in range(steps):
        th, ps = th + h * ps, ps - h * th
        if clip is not None:
            ps = np.clip(ps, -clip, clip)
        out_t.append(th)
        out_p.append(ps)
    return Trajectory(np.arange(steps + 1) * h, np.stack(out_t), np.stack(out_p))


def alternating(theta0, psi0, h: float, steps: int, clip: float | None = None) -> Trajectory:
    """Alternating steps: ``θ ← θ + hψ``, then ``ψ ← ψ − hθ`` with the new ``θ``."""
    th, ps = (a.copy() for a in _as_batch(theta0, psi0))
    out_t, out_p = [th.copy()], [ps.copy()]
    for _ in range(steps):
        th = th + h * ps
        ps = ps - h * th
        if clip is not None:
            ps = np.clip(ps, -clip, clip)
        out_t.append(th)
        out_p.append(ps)
    return Trajectory(np.arange(steps + 1) * h, np.stack(out_t), np.stack(out_p))


def simultaneous_radius(r0: float, h: float, steps: int) -> float:
    """Closed form of the simultaneous-step radius: ``r0 (1 + h²)^(N/2)``."""
    return r0 * (1 + h * h) ** (steps / 2)


def alternating_invariant(theta, psi, h: float):
    """``θ² + ψ² + hθψ``, conserved exactly by :func:`alternating` (without clipping)."""
    return theta * theta + psi * psi + h * theta * psi


def clipped_cycle(theta0: float, psi0: float, c: float) -> tuple[float, float]:
    """Closed form of the clipped flow: (radius of the limit cycle, time to reach it).

    With ``θ = r sin α``, ``ψ = r cos α`` the free flow is ``α' = 1``; ``|ψ|`` reaches ``c``
    moving outwards at ``α ≡ −arccos(c/r0) (mod π)``, then the orbit slides along the face
    for ``√(r0² − c²)/c``.  An orbit with ``r0 ≤ c`` keeps its radius and takes no time.
    """
    if abs(psi0) > c:
        raise ValueError(f"|psi0| = {abs(psi0)} is outside the clipping box [-{c}, {c}]")
    r0 = math.hypot(theta0, psi0)
    if r0 <= c:
        return r0, 0.0
    a = math.acos(c / r0)
    phi = math.atan2(theta0, psi0)
    t1 = (-a - phi) % math.pi
    if math.isclose(t1, math.pi, rel_tol=0, abs_tol=1e-15):
        t1 = 0.0
    return c, t1 + math.sqrt(r0 * r0 - c * c) / c


def time_to_cycle(traj: Trajectory) -> np.ndarray:
    """Measured time to reach the limit cycle.

    The orbit reaches the circle of radius ``c`` at the end of its first slide along a face, where ``θ``
    crosses 0 (linear interpolation inside the step: on the face ``θ' = ±c`` exactly). 0 for an orbit
    that never touched the box; NaN when the slide has not ended by the last step.
    """
    assert traj.on_boundary is not None, "time_to_cycle needs a clipped flow()"
    out = np.zeros(traj.theta.shape[1])
    for j in range(traj.theta.shape[1]):
        hit = np.flatnonzero(traj.on_boundary[:, j])
        if hit.size == 0:
            continue
        th = traj.theta[hit[0] - 1:, j]
        cross = np.flatnonzero((th[:-1] != 0) & (np.sign(th[1:]) != np.sign(th[:-1])))
        if cross.size == 0:
            out[j] = np.nan
            continue
        k = cross[0]
        dt = traj.t[1] - traj.t[0]
        out[j] = traj.t[hit[0] - 1 + k] + dt * th[k] / (th[k] - th[k + 1])
    return out


@dataclass
class DiracComparison:
    """The Dirac-GAN flows from several starts next to their closed forms (:func:`compare`).

    Attributes:
        clip: the critic's clipping bound ``c``.
        h: step of the discrete simultaneous / alternating updates.
        steps: number of discrete updates.
        theta0: the starts' ``θ0`` ``(m,)``.
        psi0: the starts' ``ψ0`` ``(m,)``.
        free: the unclipped flow (conserves the radius).
        clipped: the flow with ``ψ ∈ [−c, c]``.
        simultaneous: simultaneous gradient steps.
        alternating: alternating gradient steps.
        cycle: :func:`clipped_cycle` of every start: (limit radius, time to reach it).
        measured: :func:`time_to_cycle` of the clipped flow ``(m,)``.
    """

    clip: float
    h: float
    steps: int
    theta0: np.ndarray
    psi0: np.ndarray
    free: Trajectory
    clipped: Trajectory
    simultaneous: Trajectory
    alternating: Trajectory
    cycle: list[tuple[float, float]]
    measured: np.ndarray

    @property
    def r0(self) -> np.ndarray:
        """Initial radius ``sqrt(θ0² + ψ0²)`` of every start."""
        return np.hypot(self.theta0, self.psi0)

    @property
    def cycle_time(self) -> np.ndarray:
        """Closed-form time to reach the limit cycle of every start ``(m,)``."""
        return np.array([t for _, t in self.cycle])

    def rows(self) -> list[dict]:
        """One row per start: the measured radii and times next to their closed forms."""
        r0, sim, alt = self.r0, self.simultaneous, self.alternating
        return [{"start": j, "theta0": self.theta0[j], "psi0": self.psi0[j], "r0": r0[j],
                 "flow_radius_final": self.free.radius[-1, j],
                 "simultaneous_radius": sim.radius[-1, j],
                 "simultaneous_closed_form": simultaneous_radius(r0[j], self.h, self.steps),
                 "alternating_radius_max": alt.radius[:, j].max(),
                 "clip_radius_final": self.clipped.radius[-1, j], "clip_radius_closed_form": self.cycle[j][0],
                 "clip_time": self.measured[j], "clip_time_closed_form": self.cycle[j][1]}
                for j in range(len(self.theta0))]

    def errors(self) -> dict[str, float | None]:
        """The scalar checks: drifts of the conserved quantities, errors against the closed forms.

        ``conserved_drift``: max relative drift of ``θ² + ψ²`` along the free flow;
        ``simultaneous_rel_error``: of the simultaneous radius against ``r0 (1 + h²)^(N/2)``;
        ``alternating_invariant_drift``: of ``θ² + ψ² + hθψ`` along the alternating steps;
        ``clip_radius_error`` / ``clip_time_error``: of the limit cycle over the starts outside
        the box (None when every start is inside); the ``*_radius``/``*_time`` keys are those of
        the first start.
        """
        c, h, N = self.clip, self.h, self.steps
        r0, free, sim, alt, clipped = self.r0, self.free, self.simultaneous, self.alternating, self.clipped
        outside = r0 > c
        r2 = free.theta**2 + free.psi**2
        inv = alternating_invariant(alt.theta, alt.psi, h)
        sim_ratio = sim.radius[-1] / np.array([simultaneous_radius(r, h, N) for r in r0])
        if outside.any():
            rad_err = float(np.max(np.abs(clipped.radius[-1, outside] - c) / c))
            time_err = float(np.max(np.abs(self.measured[outside] - self.cycle_time[outside])))
        else:
            rad_err, time_err = None, None
        return {
            "conserved_drift": float(np.max(np.abs(r2 / r2[0] - 1))),
            "simultaneous_radius": float(sim.radius[-1, 0]),
            "simultaneous_closed_form": simultaneous_radius(float(r0[0]), h, N),
            "simultaneous_rel_error": float(np.max(np.abs(sim_ratio - 1))),
            "alternating_invariant_drift": float(np.max(np.abs(inv / inv[0] - 1))),
            "alternating_radius_max": float(alt.radius[:, 0].max()),
            "clip_final_radius": float(clipped.radius[-1, 0]),
            "clip_time_to_cycle": float(self.measured[0]),
            "clip_time_closed_form": float(self.cycle[0][1]),
            "clip_radius_error": rad_err,
            "clip_time_error": time_err,
        }


def compare(starts: Iterable[tuple[float, float]], clip: float, h: float, steps: int, flow_h: float,
            extra_time: float) -> DiracComparison:
    """Integrate the Dirac-GAN from every start: free, clipped, simultaneous and alternating.

    Args:
        starts: ``(θ0, ψ0)`` pairs with ``|ψ0| <= clip``.
        clip: the critic's clipping bound ``c > 0``.
        h: step of the discrete updates.
        steps: number of discrete updates.
        flow_h: RK4 step of the continuous flows.
        extra_time: how long the flows run past the latest closed-form time to reach the cycle.

    Returns:
        The trajectories and the closed forms, side by side.
    """
    starts = [(float(a), float(b)) for a, b in starts]
    th0 = np.array([s[0] for s in starts])
    ps0 = np.array([s[1] for s in starts])
    cycle = [clipped_cycle(a, b, clip) for a, b in starts]
    T = extra_time + max(t for _, t in cycle)
    free = flow(th0, ps0, T=T, h=flow_h)
    clipped = flow(th0, ps0, T=T, h=flow_h, clip=clip)
    sim = simultaneous(th0, ps0, h, steps)
    alt = alternating(th0, ps0, h, steps)
    return DiracComparison(clip, h, steps, th0, ps0, free, clipped, sim, alt, cycle, time_to_cycle(clipped))
