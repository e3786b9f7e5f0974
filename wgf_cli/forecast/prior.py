"""The forecaster's starting point: an exponentially weighted forecast of every (country, day).

For every country ``c`` and day ``d`` (``d = D`` is the day after the build's last day) the
prior forecasts day ``d`` from the observed days before it only:

- **event mix**: ``p_d = (S_d + s * clim_c) / (|S_d| + s)`` where ``S_d`` is the exponentially
  weighted sum of the past days' cell counts (weight ``2^(-age / h)`` for a day ``age`` days
  back, ``h`` the half-life), ``clim_c`` the country's training cell frequencies and ``s`` the
  pseudo-events of shrinkage.  ``h -> 0`` gives persistence, ``s -> inf`` climatology: the
  family holds both and everything between.
- **total**: the recent level ``L_d``, the exponentially weighted mean of the past observed
  days' totals (half-life ``h_total``), times the country's weekday factor of the target day
  (training mean of that weekday / training mean, shrunk toward 1), so a falling or rising
  volume moves the forecast with it; negative binomial with one dispersion ``alpha`` fitted
  on the training days by moments.

Days that were not observed (``observed = False``: no input covered them) add nothing and do
not age the history.  :func:`tune` picks ``h`` and ``s`` by the validation log loss and
``h_total`` by the validation count NLL, over grids.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from wgf_cli.gdelt_contract import N_CELLS

if TYPE_CHECKING:
    from wgf_cli.forecast.data import GdeltBuild

HALF_LIVES = (0.5, 1.0, 2.0, 4.0, 7.0, 14.0, 28.0, 56.0, 112.0, 365.0)
SHRINKS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, 1000.0, 1e4)


@dataclass
class PriorParams:
    """The tuned constants of the prior (saved with a run, reused by ``gdelt-forecast``).

    Attributes:
        half_life: half-life ``h`` of the event-mix history, in observed days.
        shrink: pseudo-events ``s`` of shrinkage toward the country's climatology.
        total_half_life: half-life ``h_total`` of the total's level, in observed days.
        alpha: negative-binomial dispersion of the total.
        weekday_shrink: pseudo-days shrinking the weekday factors toward 1.
    """

    half_life: float = 7.0
    shrink: float = 10.0
    total_half_life: float = 7.0
    alpha: float = 0.1
    weekday_shrink: float = 20.0

    def to_dict(self) -> dict:
        """The constants as a plain dict (field name to value)."""
        return asdict(self)


@dataclass
class Prior:
    """The prior's forecast of every (country, day); row ``d`` uses days ``< d`` only.

    Attributes:
        cells: ``[C, D + 1, 80]`` cell probabilities (float32).
        mu: ``[C, D + 1]`` mean totals (float32).
        alpha: the NB dispersion of the totals.
        params: the constants the prior was built with.
    """

    cells: np.ndarray
    mu: np.ndarray
    alpha: float
    params: PriorParams


def _decay(half_life: float) -> float:
    return 0.5 ** (1.0 / half_life)


def ewma_sums(x: np.ndarray, half_life: float) -> np.ndarray:
    """Exponentially weighted sums of the past along axis 1; every day ages the history.

    ``y[:, d] = sum_{s < d} r^(d - 1 - s) x[:, s]`` with ``r = 2^(-1/h)``.

    Args:
        x: [C, D, ...] values per day (zero where nothing was observed).
        half_life: ``h`` in days.

    Returns:
        float64 [C, D + 1, ...]: row ``d`` sums the days before ``d`` (row 0 is zero, row
            ``D`` includes the last day).
    """
    from scipy.signal import lfilter

    lam = _decay(float(half_life))
    x = np.asarray(x, dtype=np.float64)
    y = lfilter([1.0], [1.0, -lam], x, axis=1) if x.shape[1] else x  # y[d] = sum_{s <= d} lam^(d-s) x[s]
    return np.concatenate([np.zeros((x.shape[0], 1, *x.shape[2:])), y], 1)


def weighted_history(x: np.ndarray, observed: np.ndarray, half_life: float) -> tuple[np.ndarray, np.ndarray]:
    """Exponentially weighted sums of the observed past, and the matching sums of weights.

    ``S[:, d] = sum_{e < d, observed} r^(n(d) - n(e)) x[:, e]`` with ``n`` counting observed
    days (missing days do not age the history) and ``r = 2^(-1/h)``.

    This is :func:`ewma_sums` over each country's observed days only, held constant over
    the days it did not observe.

    Args:
        x: [C, D, ...] values per day.
        observed: [C, D] bool, the observed days.
        half_life: ``h`` in observed days.

    Returns:
        ``(S, W)``: float64 [C, D + 1, ...] sums and [C, D + 1] sums of weights, with one more
            day than ``x`` (the day after the last).
    """
    c, d = observed.shape
    tail = x.shape[2:]
    s = np.zeros((c, d + 1, *tail), np.float64)
    w = np.zeros((c, d + 1), np.float64)
    obs = observed.astype(bool)
    n_before = np.concatenate([np.zeros((c, 1), np.int64), np.cumsum(obs, 1)], 1)  # observed days < d
    for k in range(c):
        days = np.flatnonzero(obs[k])
        s[k] = ewma_sums(np.asarray(x[k, days], dtype=np.float64)[None], half_life)[0][n_before[k]]
        w[k] = ewma_sums(np.ones((1, len(days))), half_life)[0][n_before[k]]
    return s, w


def cell_forecast(hist: np.ndarray, clim: np.ndarray, shrink: float) -> np.ndarray:
    """``(S + s clim) / (|S| + s)`` for weighted cell sums ``hist`` [C, D, 80].

    Args:
        hist: [C, D, 80] weighted cell sums ``S``.
        clim: [C, 80] the countries' training cell frequencies.
        shrink: pseudo-events ``s``.

    Returns:
        [C, D, 80] cell probabilities.
    """
    tot = hist.sum(-1, keepdims=True)
    return (hist + shrink * clim[:, None, :]) / (tot + shrink)


def weekday_factors(total: np.ndarray, observed: np.ndarray, weekday: np.ndarray, last_train: int,
                    shrink: float = 20.0) -> np.ndarray:
    """[C, 7]: each country's training mean total on each weekday over its training mean.

    The factors are shrunk toward 1 by ``shrink`` pseudo-days; a country with no training
    volume gets 1.

    Args:
        total: [C, D] daily totals.
        observed: [C, D] bool, the observed days.
        weekday: [D (+ 1)] weekday of each day, Monday 0.
        last_train: index of the last training day.
        shrink: pseudo-days of shrinkage toward 1.

    Returns:
        [C, 7] weekday factors.
    """
    obs = observed[:, : last_train + 1]
    tot = total[:, : last_train + 1].astype(np.float64) * obs
    mean = tot.sum(1) / np.maximum(obs.sum(1), 1)
    out = np.ones((total.shape[0], 7))
    for k in range(7):
        sel = weekday[: last_train + 1] == k
        n = obs[:, sel].sum(1)
        m = tot[:, sel].sum(1)
        out[:, k] = (m + shrink * mean) / np.maximum((n + shrink) * mean, 1e-12)
    return np.where(mean[:, None] > 0, out, 1.0)


def _level(total: np.ndarray, observed: np.ndarray, half_life: float, fallback: np.ndarray) -> np.ndarray:
    s, w = weighted_history(total[..., None].astype(np.float64), observed, half_life)
    return np.where(w > 1e-9, s[..., 0] / np.maximum(w, 1e-12), fallback[:, None])


def nb_nll(y: np.ndarray, mu: np.ndarray, alpha: float) -> np.ndarray:
    """Negative-binomial NLL (mean ``mu``, variance ``mu + alpha mu^2``), elementwise.

    Args:
        y: observed counts.
        mu: predicted means (floored at 1e-9), broadcast against ``y``.
        alpha: dispersion (``> 0``).

    Returns:
        The NLL of each count, in nats.
    """
    from scipy.special import gammaln

    mu = np.maximum(mu, 1e-9)
    r = 1.0 / alpha
    return -(gammaln(y + r) - gammaln(r) - gammaln(y + 1) + r * np.log(r / (r + mu)) + y * np.log(mu / (r + mu)))


def _dispersion(y: np.ndarray, mu: np.ndarray) -> float:
    """Moment estimate of the NB dispersion: ``mean((y - mu)^2 - mu) / mean(mu^2)``, in [1e-3, 10]."""
    num = float(np.mean((y - mu) ** 2 - mu))
    den = float(np.mean(mu**2))
    return float(np.clip(num / den if den > 0 else 0.1, 1e-3, 10.0))


def build_prior(counts: np.ndarray, total: np.ndarray, observed: np.ndarray, weekday: np.ndarray,
                clim: np.ndarray, clim_total: np.ndarray, params: PriorParams, last_train: int) -> Prior:
    """The prior of every (country, day) with ``params``.

    Args:
        counts: [C, D, 80] cell counts.
        total: [C, D] daily totals.
        observed: [C, D] bool, the observed days.
        weekday: [D + 1] weekday of each day (Monday 0), including the day after the last.
        clim: [C, 80] training cell frequencies.
        clim_total: [C] training mean totals (the level without history).
        params: the prior's constants.
        last_train: index of the last training day (for the weekday factors).

    Returns:
        The :class:`Prior`.
    """
    hist, _ = weighted_history(counts.astype(np.float64), observed, params.half_life)
    cells = cell_forecast(hist, clim, params.shrink)
    fac = weekday_factors(total, observed, weekday, last_train, params.weekday_shrink)
    level = _level(total, observed, params.total_half_life, clim_total)
    mu = level * fac[:, weekday[: total.shape[1] + 1]]
    return Prior(cells.astype(np.float32), mu.astype(np.float32), params.alpha, params)


def tune(counts: np.ndarray, total: np.ndarray, observed: np.ndarray, weekday: np.ndarray,
         clim: np.ndarray, clim_total: np.ndarray, last_train: int, val_days: np.ndarray,
         half_lives=HALF_LIVES, shrinks=SHRINKS) -> PriorParams:
    """Tune the prior's constants over grids.

    Half-life and shrinkage by the validation log loss of the event mix (observed target
    days in ``val_days`` with events), the total's half-life by the validation NB NLL; the
    dispersion by moments on the training days.  ``weekday_shrink`` keeps its default.

    Args:
        counts: [C, D, 80] cell counts.
        total: [C, D] daily totals.
        observed: [C, D] bool, the observed days.
        weekday: [D + 1] weekday of each day (Monday 0).
        clim: [C, 80] training cell frequencies.
        clim_total: [C] training mean totals.
        last_train: index of the last training day.
        val_days: day indices of the validation targets.
        half_lives: candidate half-lives (both the event mix's and the total's).
        shrinks: candidate shrinkages.

    Returns:
        The tuned :class:`PriorParams`.
    """
    c, d = total.shape
    val = np.zeros((c, d), bool)
    val[:, val_days] = True
    val &= observed
    mix_mask = val & (total > 0)
    best = (math.inf, HALF_LIVES[0], SHRINKS[0])
    y = counts[mix_mask].astype(np.float64)
    n = y.sum(-1)
    for h in half_lives:
        hist, _ = weighted_history(counts.astype(np.float64), observed, h)
        hv = hist[:, :d][mix_mask]
        tot = hv.sum(-1, keepdims=True)
        cl = np.broadcast_to(clim[:, None, :], (c, d, N_CELLS))[mix_mask]
        for s in shrinks:
            p = (hv + s * cl) / (tot + s)
            ll = float(np.mean(-(y * np.log(np.maximum(p, 1e-300))).sum(-1) / n)) if len(n) else math.inf
            if ll < best[0]:
                best = (ll, h, s)
    fac = weekday_factors(total, observed, weekday, last_train)
    train = np.zeros((c, d), bool)
    train[:, : last_train + 1] = True
    train &= observed
    best_t = (math.inf, 7.0, 0.1)
    for h in half_lives:
        mu = (_level(total, observed, h, clim_total) * fac[:, weekday[: d + 1]])[:, :d]
        alpha = _dispersion(total[train], mu[train]) if train.any() else 0.1
        nll = float(nb_nll(total[val].astype(np.float64), mu[val], alpha).mean()) if val.any() else math.inf
        if nll < best_t[0]:
            best_t = (nll, h, alpha)
    return PriorParams(half_life=float(best[1]), shrink=float(best[2]), total_half_life=float(best_t[1]),
                       alpha=float(best_t[2]))


def fit_prior(build: GdeltBuild, clim_cells: np.ndarray, clim_total: np.ndarray, last_train: int,
              val_days: np.ndarray) -> Prior:
    """The prior of every (country, day) of ``build``, its constants tuned on the validation days.

    The constants come from :func:`tune`.

    Args:
        build: the build (cell counts, totals, observed days, weekdays).
        clim_cells: [C, 80] training cell frequencies per country.
        clim_total: [C] training mean totals.
        last_train: index of the last training day.
        val_days: day indices of the validation targets.

    Returns:
        The :class:`Prior` built with the tuned :class:`PriorParams`.
    """
    counts = build.counts.reshape(*build.total.shape, N_CELLS)
    week = build.weekday(extra=1)
    params = tune(counts, build.total, build.observed, week, clim_cells, clim_total, last_train, val_days)
    return build_prior(counts, build.total, build.observed, week, clim_cells, clim_total, params, last_train)
