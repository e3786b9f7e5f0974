"""The two-point GAN: a generator that only chooses weights, next to the Dirac-GAN.

Data ``p δ₋₁ + (1 − p) δ₊₁``; generator ``w(θ) δ₋₁ + (1 − w(θ)) δ₊₁`` with the logistic weight
``w(θ) = 1 / (1 + e^{−θ})``; critic ``D(x) = ω x`` (on two points every critic is affine, and
the constant cancels).  The WGAN objective is

    L(θ, ω) = E_data D − E_gen D = ω [(1 − 2p) − (1 − 2w(θ))] = 2 ω (w(θ) − p),

maximised by the critic and minimised by the generator, so the gradient flow is

    θ' = −∂_θ L = −2 ω w'(θ),      ω' = ∂_ω L = 2 (w(θ) − p).

**First integral.**  Along an orbit ``dω/dθ = (w − p) / (−ω w')``, so
``ω dω = −V'(θ) dθ`` with ``V'(θ) = (w(θ) − p) / w'(θ) = (1 − 2p) + (1 − p) e^θ − p e^{−θ}``:

    H(θ, ω) = ω² / 2 + V(θ),      V(θ) = (1 − 2p) θ + (1 − p) e^θ + p e^{−θ}

is constant along every orbit (``V = cosh θ`` for ``p = 1/2``).  The flow is the Hamiltonian
flow of ``H`` run at the speed ``2 w'(θ)`` (``θ' = −2w' ∂_ω H``, ``ω' = 2w' ∂_θ H``); ``V`` is
convex with its minimum at ``θ* = log(p / (1 − p))`` (``w(θ*) = p``) and grows exponentially on
both sides, so every orbit is a closed curve around the equilibrium ``(θ*, 0)`` -- as the
Dirac-GAN's circles ``θ² + ψ² = const`` are, but stretched: where the weight saturates
(``w' → 0``) the generator barely moves.

**Clipped critic.**  With ``ω ∈ [−c, c]`` the flow is projected.  The level set

    H(θ, ω) = H_c = c² / 2 + V(θ*)

touches the box only at ``(θ*, ±c)``: it is the *limit orbit*.  An orbit with ``H0 > H_c``
(outside it) crosses ``θ = θ*`` at ``|ω| > c``, so it reaches the face ``ω = +c`` (at ``θ > θ*``,
where ``ω' > 0``) or ``ω = −c`` (at ``θ < θ*``), slides along it with ``θ' = ∓2c w'(θ)`` until
``θ = θ*`` and from there follows the limit orbit: reached in finite time.  The slide takes
``|F(θ₁) − F(θ*)| / (2c)``, ``F(θ) = ∫ dθ / w'(θ) = 2θ + 2 sinh θ``, where ``V(θ₁) = H0 − c²/2``
(closed form); on the free arc before it ``ω`` is monotone, and its duration is the quadrature
``∫ dω / (2 (w(θ(ω)) − p))`` along the level set (:func:`time_to_limit`).  Orbits with
``H0 ≤ H_c`` never feel the clipping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from wgf_cli.gan import dirac as _dirac
from wgf_cli.gan.dirac import Trajectory, projected_rk4


def weight(theta):
    """The generator's weight on ``δ₋₁``: ``w(θ) = 1 / (1 + e^{−θ})``."""
    return 1.0 / (1.0 + np.exp(-np.asarray(theta, dtype=np.float64)))


def weight_prime(theta):
    """``w'(θ) = w (1 − w)``."""
    w = weight(theta)
    return w * (1.0 - w)


def theta_star(p: float) -> float:
    """The equilibrium generator parameter ``θ* = log(p / (1 − p))`` (``w(θ*) = p``)."""
    _check_p(p)
    return math.log(p / (1.0 - p))


def potential(theta, p: float = 0.5):
    """``V(θ) = (1 − 2p) θ + (1 − p) e^θ + p e^{−θ}`` (``cosh θ`` for ``p = 1/2``)."""
    th = np.asarray(theta, dtype=np.float64)
    return (1.0 - 2.0 * p) * th + (1.0 - p) * np.exp(th) + p * np.exp(-th)


def first_integral(theta, omega, p: float = 0.5):
    """``H(θ, ω) = ω² / 2 + V(θ)``, constant along the (unclipped) flow."""
    return 0.5 * np.asarray(omega, dtype=np.float64) ** 2 + potential(theta, p)


def limit_level(c: float, p: float = 0.5) -> float:
    """``H_c = c² / 2 + V(θ*)``: the level of the clipped limit orbit."""
    _check_clip(c, p)
    return 0.5 * c * c + float(potential(theta_star(p), p))


def level_set_theta(level: float, omega, p: float = 0.5, side: int = 1):
    """The ``θ`` with ``H(θ, ω) = level`` on the side ``sign(θ − θ*) = side`` (vectorised)."""
    from scipy.optimize import brentq

    ts = theta_star(p)
    target = level - 0.5 * np.asarray(omega, dtype=np.float64) ** 2
    out = np.empty(target.shape)
    for i, v in np.ndenumerate(target):
        gap = v - float(potential(ts, p))
        if gap < -1e-15:
            raise ValueError(f"no point of level {level} at omega={np.asarray(omega).flat[0]}")
        if gap <= 0:
            out[i] = ts
            continue
        # V grows at least like min(p, 1-p) e^{|θ-θ*|}/... : bracket by doubling
        step = 1.0
        while float(potential(ts + side * step, p)) < v:
            step *= 2
        out[i] = brentq(lambda x, v=v: float(potential(x, p)) - v, *sorted((ts, ts + side * step)),
                        xtol=1e-15, rtol=1e-15, maxiter=500)
    return out


def vector_field(theta, omega, p: float = 0.5):
    """``(θ', ω') = (−2ω w'(θ), 2(w(θ) − p))``."""
    return -2.0 * omega * weight_prime(theta), 2.0 * (weight(theta) - p)


def flow(theta0, omega0, T: float, h: float, p: float = 0.5, clip: float | None = None) -> Trajectory:
    """RK4 integration of the flow up to time ``T`` (step ``h``).

    With ``clip`` the critic is projected onto ``[−clip, clip]`` after every step and the field uses the
    clipped ``ω`` (``on_boundary`` records where the step pushed ``ω`` out of the box).
    """
    _check_p(p)
    return projected_rk4(lambda a, b: vector_field(a, b, p), theta0, omega0, T, h, clip)


def limit_orbit(c: float, p: float = 0.5, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(θ, ω)`` of the clipped limit orbit ``H = H_c``, a closed curve."""
    level = limit_level(c, p)
    om = c * np.sin(np.linspace(-math.pi / 2, math.pi / 2, n))
    right = level_set_theta(level, om, p, 1)
    left = level_set_theta(level, om[::-1], p, -1)
    return np.concatenate([right, left, right[:1]]), np.concatenate([om, om[::-1], om[:1]])


def _slide_primitive(theta: float) -> float:
    """``F(θ) = ∫ dθ / w'(θ) = e^θ − e^{−θ} + 2θ``."""
    return 2.0 * math.sinh(theta) + 2.0 * theta


def time_to_limit(theta0: float, omega0: float, c: float, p: float = 0.5) -> tuple[float, float]:
    """(level ``H`` of the orbit the clipped flow ends on, time to reach it).

    ``H0 ≤ H_c``: the orbit keeps ``H0`` and takes no time.  ``H0 > H_c``: the free arc up to
    ``|ω| = c`` (``ω`` is monotone on it: quadrature of ``dω / ω'`` along the level set) plus
    the slide along the face, ``|F(θ₁) − F(θ*)| / (2c)`` in closed form; it ends on ``H_c``.
    """
    from scipy.integrate import quad

    level_c = limit_level(c, p)
    if abs(omega0) > c:
        raise ValueError(f"|omega0| = {abs(omega0)} is outside the clipping range [-{c}, {c}]")
    H0 = float(first_integral(theta0, omega0, p))
    if H0 <= level_c:
        return H0, 0.0
    ts = theta_star(p)
    side = 1 if theta0 > ts else -1  # θ0 = θ* with |ω0| <= c lies inside the limit orbit
    target = side * c  # ω rises to +c right of θ*, falls to −c left of it

    def dt_domega(om: float) -> float:
        th = float(level_set_theta(H0, np.array([om]), p, side)[0])
        return 1.0 / (2.0 * (float(weight(th)) - p))

    t_free = abs(quad(dt_domega, omega0, target, epsabs=1e-13, epsrel=1e-12, limit=200)[0])
    theta1 = float(level_set_theta(H0, np.array([target]), p, side)[0])
    t_slide = abs(_slide_primitive(theta1) - _slide_primitive(ts)) / (2.0 * c)
    return level_c, t_free + t_slide


def measured_time_to_limit(traj: Trajectory, p: float = 0.5) -> np.ndarray:
    """Time at which a clipped :func:`flow` reaches the limit orbit.

    The end of its first slide along a face, where ``θ`` crosses ``θ*`` (linear interpolation inside the
    step). 0 for an orbit that never touched the face; NaN when the slide has not ended.
    """
    assert traj.on_boundary is not None, "measured_time_to_limit needs a clipped flow()"
    ts = theta_star(p)
    out = np.zeros(traj.theta.shape[1])
    dt = traj.t[1] - traj.t[0]
    for j in range(traj.theta.shape[1]):
        hit = np.flatnonzero(traj.on_boundary[:, j])
        if hit.size == 0:
            continue
        d = traj.theta[hit[0] - 1:, j] - ts
        cross = np.flatnonzero((d[:-1] != 0) & (np.sign(d[1:]) != np.sign(d[:-1])))
        if cross.size == 0:
            out[j] = np.nan
            continue
        k = cross[0]
        out[j] = traj.t[hit[0] - 1 + k] + dt * d[k] / (d[k] - d[k + 1])
    return out


@dataclass
class TwoPointComparison:
    """The two-point GAN from several starts next to its closed forms (:func:`compare`).

    Attributes:
        p: data weight on ``δ₋₁``.
        clip: the critic's clipping bound ``c``.
        flow_h: RK4 step of the flows.
        theta0: the starts' ``θ0`` ``(m,)``.
        omega0: the starts' ``ω0`` ``(m,)``.
        closed: :func:`time_to_limit` of every start: (final level of ``H``, time to reach it).
        free: the unclipped flow (conserves ``H``).
        clipped: the flow with ``ω ∈ [−c, c]``.
        measured: :func:`measured_time_to_limit` of the clipped flow ``(m,)``.
        dirac: the Dirac-GAN beside it: same clip, the starts shifted to ``(θ0 − θ*, ω0)``.
    """

    p: float
    clip: float
    flow_h: float
    theta0: np.ndarray
    omega0: np.ndarray
    closed: list[tuple[float, float]]
    free: Trajectory
    clipped: Trajectory
    measured: np.ndarray
    dirac: Trajectory

    @property
    def H0(self) -> np.ndarray:
        """First integral of every start ``(m,)``."""
        return first_integral(self.theta0, self.omega0, self.p)

    @property
    def level(self) -> float:
        """``H`` on the limit orbit (:func:`limit_level`)."""
        return limit_level(self.clip, self.p)

    @property
    def outside(self) -> np.ndarray:
        """Whether each start lies outside the limit orbit (``H0 > H_c``) ``(m,)``."""
        return self.H0 > self.level

    @property
    def closed_time(self) -> np.ndarray:
        """Closed-form time to reach the limit orbit of every start ``(m,)``."""
        return np.array([t for _, t in self.closed])

    def rows(self) -> list[dict]:
        """One row per start: the measured level and time next to their closed forms."""
        H0, outside, t_closed = self.H0, self.outside, self.closed_time
        Hc = first_integral(self.clipped.theta, self.clipped.psi, self.p)
        return [{"start": j, "theta0": self.theta0[j], "omega0": self.omega0[j], "H0": H0[j],
                 "outside": bool(outside[j]), "H_final": Hc[-1, j], "H_closed_form": self.closed[j][0],
                 "time": self.measured[j], "time_closed_form": t_closed[j]}
                for j in range(len(self.theta0))]

    def errors(self) -> dict:
        """The scalar checks against the closed forms.

        ``twopoint_integral_drift``: max relative drift of ``H`` along the free flow;
        ``twopoint_limit_error``: max ``|H − H_c|`` of the clipped orbits that started outside,
        from ten steps after their closed-form time on; ``twopoint_time_error``: max error of the
        time to reach the limit orbit; ``twopoint_inside_drift``: max drift of ``H`` of the starts
        inside (None where no start qualifies); the ``*_time_*`` keys are those of the first start.
        """
        p, h = self.p, self.flow_h
        H0, level_c, outside, t_closed = self.H0, self.level, self.outside, self.closed_time
        Hf = first_integral(self.free.theta, self.free.psi, p)
        Hc = first_integral(self.clipped.theta, self.clipped.psi, p)
        after = self.clipped.t[:, None] >= t_closed[None, :] + 10 * h
        measured = self.measured
        lim_err = float(np.max(np.abs(Hc - level_c)[after & outside[None, :]])) if outside.any() else None
        time_err = float(np.max(np.abs(measured[outside] - t_closed[outside]))) if outside.any() else None
        inside_drift = float(np.max(np.abs(Hc[:, ~outside] - H0[~outside]))) if (~outside).any() else None
        orbit_th, _ = limit_orbit(self.clip, p)
        return {
            "starts_outside": int(outside.sum()), "theta_star": theta_star(p),
            "twopoint_integral_drift": float(np.max(np.abs(Hf / Hf[0] - 1))),
            "twopoint_limit_level": level_c,
            "twopoint_limit_error": lim_err,
            "twopoint_time_error": time_err,
            "twopoint_inside_drift": inside_drift,
            "twopoint_time_to_limit": float(measured[0]),
            "twopoint_time_closed_form": float(t_closed[0]),
            "twopoint_limit_theta_range": [float(orbit_th.min()), float(orbit_th.max())],
        }


def compare(starts: Iterable[tuple[float, float]], p: float, clip: float, flow_h: float, extra_time: float,
            on_start: Callable[[], None] | None = None) -> TwoPointComparison:
    """Integrate the two-point GAN from every start, free and clipped, beside the Dirac-GAN.

    Args:
        starts: ``(θ0, ω0)`` pairs.
        p: data weight on ``δ₋₁``, in (0, 1).
        clip: the critic's clipping bound ``c > 0``.
        flow_h: RK4 step of the flows (the Dirac-GAN's is ``max(flow_h, 1e-3)``).
        extra_time: how long the flows run past the latest closed-form time to the limit orbit.
        on_start: called after each start's closed form (a progress hook).

    Returns:
        The trajectories and the closed forms, side by side.
    """
    starts = [(float(a), float(b)) for a, b in starts]
    th0 = np.array([s[0] for s in starts])
    om0 = np.array([s[1] for s in starts])
    closed = []
    for a, b in starts:
        closed.append(time_to_limit(a, b, clip, p))
        if on_start is not None:
            on_start()
    T = extra_time + float(np.array([t for _, t in closed]).max())
    free = flow(th0, om0, T=T, h=flow_h, p=p)
    clipped = flow(th0, om0, T=T, h=flow_h, p=p, clip=clip)
    measured = measured_time_to_limit(clipped, p)
    dirac = _dirac.flow(th0 - theta_star(p), om0, T=T, h=max(flow_h, 1e-3), clip=clip)
    return TwoPointComparison(p, clip, flow_h, th0, om0, closed, free, clipped, measured, dirac)


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")


def _check_clip(c: float, p: float) -> None:
    _check_p(p)
    if not c > 0:
        raise ValueError(f"clip must be > 0, got {c}")
