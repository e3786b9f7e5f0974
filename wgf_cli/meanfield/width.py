"""Log-log slope fits of a finite-width error against the width ``m``, with confidence intervals.

``err(m) ~ C m^slope``: the slope is the least-squares fit of ``log mean_seeds err`` against
``log m``.  Two intervals are given: a percentile bootstrap over seeds (resampling, for every
width independently, the seeds with replacement and refitting) and the Student-t interval of
the regression slope over all ``(m, seed)`` points of ``log err``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SlopeFit:
    """A log-log slope fit over seeds, with bootstrap and regression confidence intervals."""
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
