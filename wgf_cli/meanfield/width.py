"""Log-log slope fits of a finite-width error against the width ``m``, with confidence intervals.

``err(m) ~ C m^slope``: the slope is the least-squares fit of ``log mean_seeds err`` against
``log m``.  Two intervals are given: a percentile bootstrap over seeds (resampling, for every
width independently, the seeds with replacement and refitting) and the Student-t interval of
the regression slope over all ``(m, seed)`` points of ``log err``.  :func:`run_width` is the
study itself: gd at several widths and seeds against a wide reference, and the fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wgf_cli.meanfield.data import Dataset
from wgf_cli.meanfield.particles import ParticleResult
from wgf_cli.meanfield.protocol import ParticleConfig


@dataclass
class SlopeFit:
    """A log-log fit ``err ~ exp(intercept) m^slope`` with its intervals at ``level``."""

    slope: float
    intercept: float
    ci_low: float  # bootstrap percentile interval
    ci_high: float
    reg_ci_low: float  # regression t-interval on the per-seed points
    reg_ci_high: float
    level: float


def _fit(logm: np.ndarray, logy: np.ndarray) -> tuple[float, float]:
    A = np.stack([logm, np.ones_like(logm)], axis=1)
    coef, *_ = np.linalg.lstsq(A, logy, rcond=None)
    return float(coef[0]), float(coef[1])


def fit_slope(widths: np.ndarray, errors: np.ndarray, *, level: float = 0.95, boot: int = 2000,
              seed: int = 0) -> SlopeFit:
    """Fit ``errors[i, s]`` (width ``widths[i]``, seed ``s``; all > 0) as ``C m^slope``."""
    from scipy import stats

    widths = np.asarray(widths, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if errors.ndim != 2 or errors.shape[0] != widths.size or widths.size < 2:
        raise ValueError("errors must be (widths, seeds) with at least two widths")
    if not (errors > 0).all():
        raise ValueError("errors must be positive for a log-log fit")
    logm = np.log(widths)
    slope, icpt = _fit(logm, np.log(errors.mean(axis=1)))
    rng = np.random.default_rng(seed)
    k = errors.shape[1]
    boots = np.empty(boot)
    for b in range(boot):
        idx = rng.integers(0, k, size=errors.shape)
        boots[b] = _fit(logm, np.log(np.take_along_axis(errors, idx, axis=1).mean(axis=1)))[0]
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [q, 1.0 - q])
    # regression interval on all points
    xs = np.repeat(logm, k)
    ys = np.log(errors).reshape(-1)
    s_, i_ = _fit(xs, ys)
    resid = ys - (s_ * xs + i_)
    dof = max(xs.size - 2, 1)
    se = np.sqrt((resid @ resid) / dof / ((xs - xs.mean()) @ (xs - xs.mean())))
    t = stats.t.ppf(1.0 - q, dof)
    return SlopeFit(slope, icpt, float(lo), float(hi), float(s_ - t * se), float(s_ + t * se), level)


@dataclass
class WidthConfig:
    """The width study: gd at several widths and seeds against one wide reference.

    Attributes:
        widths: the widths ``m`` (sorted, distinct).
        seeds: seeds per width.
        reference: the reference width (larger than every width).
        time: the horizon ``T`` (a multiple of ``particles.dt``).
        times: the measurement times (multiples of ``particles.dt``, ``<= T``).
        init_std: the initial neurons' std.
        particles: the gd hyper-parameters (``particles.seed``: the study's seed).
        projections: projections of the sliced W2.
        emd_max_pairs: exact W2 up to this many pairs of neurons (else NaN).
        level: the confidence level of the slope intervals.
        bootstrap: bootstrap resamples of the slope.
    """

    widths: list[int]
    seeds: int
    reference: int
    time: float
    times: list[float]
    init_std: float
    particles: ParticleConfig
    projections: int = 64
    emd_max_pairs: int = 50_000_000
    level: float = 0.95
    bootstrap: int = 2000


@dataclass
class WidthResult:
    """The width study's runs and fits.

    Attributes:
        reference: the reference run.
        errors: ``output_l2 | sliced_w2 | w2`` -> array (times, widths, seeds) of the distance
            to the reference at the measurement times (NaN where not computed).
        final_loss: (widths, seeds) final training losses.
        fits: ``(key, t)`` -> the log-log :class:`SlopeFit` of ``errors[key]`` at time ``t``
            (keys ``l2 | sw2 | w2``), where at least two widths have positive errors.
    """

    reference: ParticleResult
    errors: dict[str, np.ndarray]
    final_loss: np.ndarray
    fits: dict[tuple[str, float], SlopeFit]


def run_width(data: Dataset, cfg: WidthConfig, *, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float64,
              callback: Callable[[str, dict[str, Any]], None] | None = None) -> WidthResult:
    """Run the width study.

    The reference has seed ``base + 999_983`` and width ``m_i`` at seed ``s`` has seed ``base +
    1000 s + i + 1`` (``base = particles.seed * 1_000_003``), for both the initial neurons and
    the trainer.  For every run and measurement time: the RMS difference of the network
    outputs on the test inputs, the sliced W2 and (within ``emd_max_pairs``) the exact W2 of
    the neuron measures to the reference's.

    Args:
        data: the data set.
        cfg: the study.
        device: where the neurons live.
        dtype: their dtype.
        callback: ``callback(event, info)``: ``begin`` (``phase="width"``, ``total``), one
            ``advance`` per run (``m``, and ``seed`` for the finite widths), ``end``, and one
            ``record`` row (``method, m, seed, t, output_l2, sliced_w2, w2,
            dist_to_reference``) per run and measurement time.

    Returns:
        The :class:`WidthResult`.
    """
    from wgf_cli.meanfield import distances as Dm
    from wgf_cli.meanfield.network import predict
    from wgf_cli.meanfield.protocol import init_neurons, make_trainer

    def emit(event: str, info: dict[str, Any]) -> None:
        if callback is not None:
            callback(event, info)

    widths, seeds, M = list(cfg.widths), int(cfg.seeds), int(cfg.reference)
    dt = float(cfg.particles.dt)
    steps = round(float(cfg.time) / dt)
    times = sorted(float(t) for t in cfg.times)
    tsteps = [round(t / dt) for t in times]
    seed = int(cfg.particles.seed)
    base = seed * 1_000_003
    x_test = data.x_test

    def gd(m: int, s: int) -> ParticleResult:
        trainer = make_trainer(data, "gd", cfg.particles, s)
        W, a = init_neurons(m, data.dim, cfg.init_std, s, device=device, dtype=dtype)
        return trainer.run(W, a, steps, record_every=steps, snapshot_steps=set(tsteps))

    emit("begin", {"phase": "width", "total": 1 + len(widths) * seeds})
    ref = gd(M, base + 999_983)
    emit("advance", {"phase": "width", "m": M})
    refsnap = {round(t / dt): (W, a) for t, W, a in ref.snapshots}
    err = {key: np.full((len(tsteps), len(widths), seeds), np.nan) for key in ("l2", "sw2", "w2")}
    final = np.full((len(widths), seeds), np.nan)
    for s in range(seeds):
        for i, m in enumerate(widths):
            res = gd(m, base + 1000 * s + i + 1)
            final[i, s] = res.loss[-1]
            for j, (t, W, a) in enumerate(sorted(res.snapshots, key=lambda z: z[0])):
                Wr, ar = refsnap[round(t / dt)]
                diff = predict(W, a, x_test) - predict(Wr, ar, x_test)
                l2 = float(torch.sqrt((diff * diff).mean()))
                wa, wb = Dm.uniform(W), Dm.uniform(Wr)
                sw2 = Dm.sliced_w2(W, wa, a, Wr, wb, ar, n_projections=cfg.projections, seed=seed)
                w2 = Dm.w2(W, wa, a, Wr, wb, ar, max_pairs=cfg.emd_max_pairs)
                err["l2"][j, i, s], err["sw2"][j, i, s], err["w2"][j, i, s] = l2, sw2, w2
                emit("record", {"method": "gd", "m": m, "seed": s, "t": t, "output_l2": l2, "sliced_w2": sw2,
                                "w2": w2, "dist_to_reference": l2})
            emit("advance", {"phase": "width", "m": m, "seed": s})
    emit("end", {"phase": "width"})
    fits = {}
    for key in ("l2", "sw2", "w2"):
        for j, t in enumerate(times):
            e = err[key][j]
            rows = ~np.isnan(e).any(axis=1)
            if rows.sum() >= 2 and (e[rows] > 0).all():
                fits[(key, t)] = fit_slope(np.array(widths)[rows], e[rows], level=cfg.level, boot=cfg.bootstrap,
                                           seed=seed)
    return WidthResult(ref, err, final, fits)
