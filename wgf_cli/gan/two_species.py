"""WGAN as two interacting particle populations: the mean-field limit in the widths.

The generator is a population of ``m`` particles ``x_i`` (the generated distribution
``mu = (1/m) sum_i delta_{x_i}``, a 1-D mixed strategy), the critic a mean-field two-layer
network of ``n`` neurons ``xi_j = (b_j, v_j, c_j)``::

    f(x) = (1/n) sum_j b_j tanh(v_j x + c_j).

The game is ``min_mu max_rho  E_nu f - E_mu f - (lam/2) int |xi|^2 d rho(xi)`` (weight decay
keeps the critic bounded, in place of the clipping or gradient penalty of a WGAN), ``nu`` the
data.  Gradient descent-ascent with the step sizes scaled with the widths (``lr_gen * m`` on
each generator particle, ``lr_critic * n`` on each neuron, the mean-field scaling) is, in
continuous time, the particle system

    x_i'  = f'(x_i),
    xi_j' = eta * grad_xi [ E_nu phi(.; xi_j) - E_mu phi(.; xi_j) - (lam/2) |xi_j|^2 ],
    phi(x; xi) = b tanh(v x + c),

whose empirical measures converge, as ``m, n -> infinity``, to the Wasserstein
descent-ascent flow of the two distributions (a pair of coupled continuity equations).  The
deviation of a finite-width run from the limit comes from sampling the initial particles, so
it shrinks like ``m^{-1/2}`` (with ``n`` proportional to ``m``): :func:`width_study` measures
it against a large-width reference and fits the rate with its interval.  ``eta`` is the
critic's speed (the learning-rate ratio): a slow critic lets the two populations chase each
other around the equilibrium, a fast one is close to its best response and the generator
follows a kernel-discrepancy gradient flow that converges (:func:`critic_speed_study`).

The data are an equal mixture of 1-D Gaussians, represented by a deterministic quadrature
(the union of each component's quantiles at ``(k + 1/2) / K``), so every run is a
deterministic function of its initial particles; the system is integrated by RK4 in
float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from wgf_cli.ot.pointcloud import w2_1d


@dataclass(frozen=True)
class TwoSpeciesConfig:
    """One two-species run.

    Attributes:
        gen_width: ``m``, generator particles.
        critic_width: ``n``, critic neurons.
        data_means: means of the equal-weight Gaussian mixture ``nu``.
        data_std: the components' standard deviation.
        data_points: quadrature points of ``nu`` (a multiple of the number of components).
        init_mean, init_std: generator particles start i.i.d. ``N(init_mean, init_std^2)``.
        critic_init_std: neurons start with ``b ~ N(0, s^2)``, ``v, c ~ N(0, 1)``.
        weight_decay: ``lam``.
        critic_speed: ``eta``, the critic's learning rate relative to the generator's.
        time: final time ``T``.
        dt: RK4 step.
        record_every: steps between two recorded observables.
        probes: points where the critic ``f`` is recorded.
        seed: seed of the initial particles.
    """

    gen_width: int = 64
    critic_width: int = 64
    data_means: tuple[float, ...] = (-1.0, 1.5)
    data_std: float = 0.35
    data_points: int = 512
    init_mean: float = 0.0
    init_std: float = 0.5
    critic_init_std: float = 1.0
    weight_decay: float = 1.0
    critic_speed: float = 4.0
    time: float = 10.0
    dt: float = 0.05
    record_every: int = 2
    probes: tuple[float, ...] = tuple(np.linspace(-2.5, 2.5, 11).round(6).tolist())
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(self.gen_width >= 1, "gen_width >= 1"), (self.critic_width >= 1, "critic_width >= 1"),
                  (len(self.data_means) >= 1, "at least one data mean"),
                  (self.data_std > 0, "data_std > 0"), (self.init_std > 0, "init_std > 0"),
                  (self.data_points >= len(self.data_means), "data_points >= number of components"),
                  (self.critic_init_std > 0, "critic_init_std > 0"),
                  (self.weight_decay >= 0, "weight_decay >= 0"), (self.critic_speed > 0, "critic_speed > 0"),
                  (self.time > 0 and self.dt > 0, "time > 0 and dt > 0"),
                  (self.record_every >= 1, "record_every >= 1")]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"TwoSpeciesConfig needs {what}")

    @property
    def steps(self) -> int:
        """Number of RK4 steps, ``round(time / dt)``."""
        return max(1, int(round(self.time / self.dt)))


@dataclass
class TwoSpeciesRun:
    """The recorded trajectory of one run.

    Attributes:
        times: recorded times, shape ``(R,)``.
        gen_mean, gen_std: mean and standard deviation of ``mu_t``.
        w2: ``W2(mu_t, nu)`` (exact 1-D, quantile formula against the quadrature).
        critic: ``f_t`` at the probes, shape ``(R, P)``.
        particles: final generator particles ``(m,)``.
        neurons: final critic neurons ``(n, 3)`` as ``(b, v, c)``.
    """

    times: np.ndarray
    gen_mean: np.ndarray
    gen_std: np.ndarray
    w2: np.ndarray
    critic: np.ndarray
    particles: np.ndarray
    neurons: np.ndarray

    def observables(self) -> np.ndarray:
        """``(R, 2 + P)``: generator mean, generator std and the critic at the probes."""
        return np.concatenate([self.gen_mean[:, None], self.gen_std[:, None], self.critic], axis=1)


def data_quadrature(cfg: TwoSpeciesConfig) -> np.ndarray:
    """Equal-weight points representing ``nu``: each component's quantiles at ``(k + 1/2)/K``."""
    from scipy.stats import norm

    per = cfg.data_points // len(cfg.data_means)
    q = norm.ppf((np.arange(per) + 0.5) / per)
    return np.sort(np.concatenate([mu + cfg.data_std * q for mu in cfg.data_means]))


def initial_state(cfg: TwoSpeciesConfig) -> tuple[Tensor, Tensor]:
    """Generator particles ``(m,)`` and neurons ``(n, 3)``, i.i.d. draws from the seed."""
    g = torch.Generator().manual_seed(2 * cfg.seed)
    h = torch.Generator().manual_seed(2 * cfg.seed + 1)
    x = cfg.init_mean + cfg.init_std * torch.randn(cfg.gen_width, generator=g, dtype=torch.float64)
    xi = torch.randn(cfg.critic_width, 3, generator=h, dtype=torch.float64)
    xi[:, 0] *= cfg.critic_init_std
    return x, xi


def velocity(x: Tensor, xi: Tensor, y: Tensor, lam: float, eta: float) -> tuple[Tensor, Tensor]:
    """The mean-field velocities ``(x', xi')`` of the particle system (module docstring)."""
    b, v, c = xi[:, 0:1], xi[:, 1:2], xi[:, 2:3]
    tx = torch.tanh(v * x[None, :] + c)  # (n, m)
    ty = torch.tanh(v * y[None, :] + c)  # (n, N)
    sx, sy = 1.0 - tx * tx, 1.0 - ty * ty  # sech^2
    dx = (b * v * sx).mean(0)  # f'(x_i)
    db = ty.mean(1) - tx.mean(1)
    dv = b[:, 0] * ((sy * y[None, :]).mean(1) - (sx * x[None, :]).mean(1))
    dc = b[:, 0] * (sy.mean(1) - sx.mean(1))
    dxi = eta * (torch.stack([db, dv, dc], 1) - lam * xi)
    return dx, dxi


def critic_values(xi: Tensor, z: Tensor) -> Tensor:
    """``f(z) = (1/n) sum_j b_j tanh(v_j z + c_j)``."""
    return (xi[:, 0:1] * torch.tanh(xi[:, 1:2] * z[None, :] + xi[:, 2:3])).mean(0)


def simulate(cfg: TwoSpeciesConfig, callback: Callable[[int, float, float], None] | None = None
             ) -> TwoSpeciesRun:
    """Integrate the particle system of ``cfg`` by RK4 and record its observables.

    Args:
        cfg: the run.
        callback: called as ``callback(step, t, w2)`` at every recorded step.

    Returns:
        The recorded trajectory.
    """
    y_np = data_quadrature(cfg)
    y = torch.from_numpy(y_np)
    z = torch.tensor(cfg.probes, dtype=torch.float64)
    x, xi = initial_state(cfg)
    lam, eta, h = cfg.weight_decay, cfg.critic_speed, cfg.dt
    rec: dict[str, list] = {"t": [], "mean": [], "std": [], "w2": [], "f": []}

    def record(k: int) -> None:
        t = k * h
        xn = x.numpy()
        w2 = w2_1d(xn, y_np)
        rec["t"].append(t)
        rec["mean"].append(float(xn.mean()))
        rec["std"].append(float(xn.std()))
        rec["w2"].append(w2)
        rec["f"].append(critic_values(xi, z).numpy().copy())
        if callback is not None:
            callback(k, t, w2)

    record(0)
    for k in range(1, cfg.steps + 1):
        k1 = velocity(x, xi, y, lam, eta)
        k2 = velocity(x + h / 2 * k1[0], xi + h / 2 * k1[1], y, lam, eta)
        k3 = velocity(x + h / 2 * k2[0], xi + h / 2 * k2[1], y, lam, eta)
        k4 = velocity(x + h * k3[0], xi + h * k3[1], y, lam, eta)
        x = x + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        xi = xi + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        if not (torch.isfinite(x).all() and torch.isfinite(xi).all()):
            raise FloatingPointError(f"two-species flow diverged at t={k * h:g}; lower dt")
        if k % cfg.record_every == 0 or k == cfg.steps:
            record(k)
    return TwoSpeciesRun(np.array(rec["t"]), np.array(rec["mean"]), np.array(rec["std"]),
                         np.array(rec["w2"]), np.stack(rec["f"]), x.numpy().copy(), xi.numpy().copy())


def curve_distance(run: TwoSpeciesRun, reference: TwoSpeciesRun) -> float:
    """Root mean square over recorded times and observables of ``run - reference``."""
    a, b = run.observables(), reference.observables()
    if a.shape != b.shape:
        raise ValueError("runs recorded at different times")
    return float(np.sqrt(np.mean((a - b) ** 2)))


@dataclass
class WidthStudy:
    """Distance of finite-width runs to the large-width reference.

    Attributes:
        widths: the generator widths ``m`` (critic width ``n = ratio * m``).
        seeds: the seeds run at each width.
        distances: ``(widths, seeds)`` curve distances to the reference.
        reference_width: the reference's ``m``.
        slope, slope_ci: fitted exponent of ``distance ~ C m^slope`` and its bootstrap interval.
        slope_reg_ci: the regression t-interval on the per-seed points.
        reference: the reference run.
        runs: one run per width (the first seed), for plotting.
    """

    widths: list[int]
    seeds: list[int]
    distances: np.ndarray
    reference_width: int
    slope: float
    slope_ci: tuple[float, float]
    slope_reg_ci: tuple[float, float]
    reference: TwoSpeciesRun
    runs: dict[int, TwoSpeciesRun] = field(default_factory=dict)


def width_study(base: TwoSpeciesConfig, widths: Sequence[int], seeds: Sequence[int],
                reference_width: int, *, critic_ratio: float = 1.0, reference_seed: int = 10_000,
                progress: Callable[[str], None] | None = None) -> WidthStudy:
    """Run every ``(width, seed)`` and the reference; fit the rate of the distance.

    Args:
        base: settings shared by every run (its widths and seed are replaced).
        widths: generator widths ``m``; the critic has ``round(critic_ratio * m)`` neurons.
        seeds: seeds per width.
        reference_width: the reference's ``m`` (much larger than ``max(widths)``).
        critic_ratio: ``n / m``.
        reference_seed: the reference's seed (disjoint from ``seeds``).
        progress: called with a short line after every run.

    Returns:
        The distances and the fitted exponent with its intervals (``meanfield.width.fit_slope``).
    """
    from wgf_cli.meanfield.width import fit_slope

    def cfg_for(m: int, seed: int) -> TwoSpeciesConfig:
        return replace(base, gen_width=int(m), critic_width=max(1, int(round(critic_ratio * m))), seed=seed)

    reference = simulate(cfg_for(reference_width, reference_seed))
    if progress:
        progress(f"reference m={reference_width}: W2(T) = {reference.w2[-1]:.4g}")
    dist = np.empty((len(widths), len(seeds)))
    runs: dict[int, TwoSpeciesRun] = {}
    for i, m in enumerate(widths):
        for j, s in enumerate(seeds):
            r = simulate(cfg_for(m, s))
            dist[i, j] = curve_distance(r, reference)
            if j == 0:
                runs[int(m)] = r
        if progress:
            progress(f"m={m}: distance {dist[i].mean():.4g} (mean of {len(seeds)} seeds)")
    fit = fit_slope(np.asarray(widths, float), dist)
    return WidthStudy(list(map(int, widths)), list(map(int, seeds)), dist, int(reference_width),
                      fit.slope, (fit.ci_low, fit.ci_high), (fit.reg_ci_low, fit.reg_ci_high),
                      reference, runs)


@dataclass
class SpeedResult:
    """One critic speed of :func:`critic_speed_study`.

    Attributes:
        critic_speed: ``eta``.
        w2_final: ``W2(mu_T, nu)``.
        w2_late_range: ``max - min`` of ``W2`` over the second half of the run.
        amplitude: oscillation amplitude of the generator's mean and std over the second half
            (detrended, ``gan.metrics.detect_oscillation``).
        oscillating: ``amplitude > amplitude_tol``.
        settle_time: first time after which ``W2`` stays within ``settle_rtol`` of ``w2_final``.
        run: the run.
    """

    critic_speed: float
    w2_final: float
    w2_late_range: float
    amplitude: float
    oscillating: bool
    settle_time: float
    run: TwoSpeciesRun


def settle_time(times: np.ndarray, series: np.ndarray, rtol: float = 0.01) -> float:
    """First time after which ``series`` stays within ``rtol`` (relative) of its last value."""
    far = np.abs(series - series[-1]) > rtol * abs(series[-1])
    return float(times[0]) if not far.any() else float(times[min(int(np.nonzero(far)[0][-1]) + 1, len(times) - 1)])


def critic_speed_study(base: TwoSpeciesConfig, speeds: Sequence[float], *, amplitude_tol: float = 0.05,
                       settle_rtol: float = 0.01) -> list[SpeedResult]:
    """Run ``base`` at each critic speed ``eta``: convergence against oscillation."""
    from wgf_cli.gan.metrics import detect_oscillation

    out = []
    for eta in speeds:
        r = simulate(replace(base, critic_speed=float(eta)))
        late = r.w2[len(r.w2) // 2:]
        osc = detect_oscillation(r.times, np.stack([r.gen_mean, r.gen_std], 1), window=0.5)
        out.append(SpeedResult(float(eta), float(r.w2[-1]), float(late.max() - late.min()),
                               float(osc.amplitude), bool(osc.amplitude > amplitude_tol),
                               settle_time(r.times, r.w2, settle_rtol), r))
    return out
