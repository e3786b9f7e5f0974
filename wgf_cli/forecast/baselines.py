"""Reference forecasts scored with the same metrics as the model.

Every baseline forecasts a target day ``t`` of a country from the days ``< t`` only, and a
day with ``observed=False`` is missing (skipped), never a day without events.  Each returns
a :class:`Prediction` for a set of targets: a :class:`SequenceData` (its ``country`` and
``target_day``) or a :class:`Targets` (any ``(country, day)`` pairs of a build, the day may be
``n_days``: the day after the build, for a forecast of tomorrow).

Methods (``name``: what it forecasts; hyper-parameters, tuned on the validation targets):

- ``climatology``: the country's training base rates (observed days up to the last training
  target day, :func:`climatology_tables`): cell frequencies, mean total, the frequency of
  each root code occurring, a cloud pooled from ``cloud_days`` evenly spaced training days;
- ``persistence``: tomorrow = the last *observed* day: cells ``(n + s clim) / (N + s)`` (``s``
  pseudo-events of the country's climatology, so unseen codes keep a probability), total
  ``N``, that day's cloud; ``s`` by log loss;
- ``moving_average``: the same over the last ``window`` observed days (counts summed, total
  averaged, clouds pooled); ``window`` and ``s`` by log loss;
- ``ewma``: an exponentially weighted average of the past cell counts (weight
  ``0.5^(age / half_life)`` in calendar days, missing days skipped), shrunk by ``s``
  pseudo-events toward climatology (``half_life``, ``s`` by log loss); total: the level
  ``L`` = the EWMA of the observed totals (``level_half_life`` by NB NLL);
- ``same_weekday``: the cells and total of the same weekday last week (the latest observed of
  ``t-7, t-14, t-21, t-28``), shrunk by ``s``;
- ``dirichlet_eb``: Dirichlet-multinomial empirical Bayes: the day's cell distribution
  ``theta ~ Dir(kappa_c clim_c + h_t)`` with ``h_t`` the ``ewma`` weighted history; the
  per-country concentration ``kappa_c`` maximises the DM marginal likelihood of the training
  days (a 1-D grid, pooled over countries with a weight of 20 days for stability); mean
  ``(kappa_c clim_c + h_t) / (kappa_c + |h_t|)``, total ``L``;
- ``recurrency``: P(root r occurs) = the exponentially decayed frequency of its past
  occurrences, ``(sum_s w_s 1{n_rs > 0} + s clim_occ_r) / (sum_s w_s + s)`` (``half_life`` and
  ``s`` by the occurrence cross-entropy); the per-event mix follows the implied Poisson rates
  ``-log(1 - P_r)`` (cells split by the country's QuadClass given the root), total ``L``;
- ``nb_regression``: the total ~ NB(mu, alpha), ``log mu = log(L28 + 0.5) + a_c + b . x``:
  relative to the recent level ``L28`` (the mean of the observed days among the last 28, an
  offset), ``x`` = log of the last observed total and of the last 7 days' mean over that level,
  and weekday dummies; ``a_c`` per country; maximum likelihood (Newton, float64) on the
  training targets pooled over countries, ``alpha`` included; its event mix is ``ewma``'s.
  The level enters as an offset (coefficient 1) on purpose: a free coefficient, fitted on a
  training period of stable volume, is ~0 and pulls every forecast back to the training mean
  when the volume moves (inflated counts);
- ``oracle`` (synthetic builds): the generator's exact predictive distribution (oracle.npz).

Totals are negative binomial ``NB(mu, alpha)`` (variance ``mu + alpha mu^2``) with ``alpha``
fitted by maximum likelihood on the training targets for each method's ``mu`` (``mu`` is
floored at 0.1), and the occurrence probabilities follow from splitting it multinomially:
``P(n_r > 0) = 1 - (1 + alpha mu p_r)^(-1/alpha)`` (Poisson: ``1 - exp(-mu p_r)``) -- except
``climatology`` (the empirical frequency) and ``recurrency`` (its own).

API::

    clim = climatology_tables(build, last_train_day)
    fitted = fit_baselines(train, val, clim)   # FittedBaselines
    fitted.params            # {"ewma": {"half_life": 7.0, "smoothing": 20.0, ...}, ...}
    preds = fitted.predict(test)   # {name: Prediction}, names in BASELINES order
    fitted["ewma"](Targets(build, country, day))
    best_baseline(score_table)     # the baseline with the lowest log loss

The older single functions (:func:`moving_average`, :func:`climatology`,
:func:`tune_smoothing`, :func:`oracle`) keep their signatures.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from wgf_cli.forecast.data import N_CELLS, N_QUAD, N_ROOT, GdeltBuild, SequenceData
from wgf_cli.forecast.prior import ewma_sums
from wgf_cli.forecast.scores import count_nll, log_loss

BASELINES = ("climatology", "persistence", "moving_average", "ewma", "same_weekday",
             "dirichlet_eb", "recurrency", "nb_regression")
SMOOTHING_GRID = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
HALF_LIVES = (1, 2, 3, 5, 7, 14, 28, 56)
WINDOWS = (3, 7, 14, 28)
ALPHA_GRID = tuple(np.logspace(-4, 1.5, 56))
KAPPA_GRID = tuple(np.logspace(-1, 5, 37))
OCC_SMOOTHING_GRID = (0.5, 1, 2, 5, 10, 20, 50)
MU_FLOOR = 0.1
_EWMA_CACHE_BYTES = 256 * 2**20  # cached EWMA panels per build


@dataclass
class Prediction:
    """One method's forecasts of N target days."""

    name: str
    root_probs: np.ndarray  # [N, 20]
    quad_probs: np.ndarray  # [N, 4]
    occur_probs: np.ndarray  # [N, 20]
    total_mean: np.ndarray  # [N]
    alpha: np.ndarray | None = None  # negative-binomial dispersion [N] (None: Poisson)
    cloud_x: np.ndarray | None = None  # [N, K', E]
    cloud_w: np.ndarray | None = None  # [N, K']
    cell_probs: np.ndarray | None = None  # [N, 80] root code x QuadClass (root-major)


@dataclass
class Targets:
    """``(country, day)`` pairs of ``build`` to forecast.

    This is what the baselines read of a :class:`SequenceData`.

    Attributes:
        build: the GDELT build the indices refer to.
        country: ``[N]`` country indices (converted to int64, flattened).
        target_day: ``[N]`` day indices; may be ``n_days`` (the day after the build).

    Raises:
        ValueError: If ``country`` and ``target_day`` differ in length.
    """

    build: GdeltBuild
    country: np.ndarray
    target_day: np.ndarray

    def __post_init__(self) -> None:
        self.country = np.asarray(self.country, dtype=np.int64).reshape(-1)
        self.target_day = np.asarray(self.target_day, dtype=np.int64).reshape(-1)
        if len(self.country) != len(self.target_day):
            raise ValueError("country and target_day differ in length")

    def __len__(self) -> int:
        return len(self.country)


def _targets(data: SequenceData | Targets) -> tuple[GdeltBuild, np.ndarray, np.ndarray]:
    c, t = data.country, data.target_day
    c = c.numpy() if isinstance(c, torch.Tensor) else np.asarray(c)
    t = t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    b = data.build
    if len(t) and (t.min() < 0 or t.max() > len(b.days)):
        raise ValueError(f"target days must lie in [0, {len(b.days)}]")
    return b, c.astype(np.int64), t.astype(np.int64)


def _marginals(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = cells.reshape(*cells.shape[:-1], N_ROOT, N_QUAD)
    return c.sum(-1), c.sum(-2)


def _poisson_occ(root: np.ndarray, mu: np.ndarray) -> np.ndarray:
    return -np.expm1(-mu[:, None] * root)


def climatology_tables(build: GdeltBuild, last_train_day: int, cloud_days: int = 30) -> dict:
    """Per-country base rates from observed days ``<= last_train_day`` (a day index).

    Args:
        build: the GDELT build.
        last_train_day: index of the last training day included.
        cloud_days: number of evenly spaced training days pooled into each country's cloud.

    Returns:
        A dict with ``"cells"`` [C, 80] smoothed cell frequencies, ``"total"`` [C] mean
            totals, ``"occur"`` [C, 20] root-code occurrence frequencies, ``"cloud_x"``
            [C, cloud_days * K, E] and ``"cloud_w"`` [C, cloud_days * K] the pooled clouds, and
            ``"last_train_day"``.
    """
    n_c = build.n_countries
    cells = build.counts.reshape(n_c, -1, N_CELLS)[:, : last_train_day + 1].astype(np.float64)
    obs = build.observed[:, : last_train_day + 1]
    totals = build.total[:, : last_train_day + 1].astype(np.float64)
    freq = (cells * obs[..., None]).sum(1) + 0.5 / N_CELLS
    freq /= freq.sum(-1, keepdims=True)
    n_obs = np.maximum(obs.sum(1), 1)
    mean_total = (totals * obs).sum(1) / n_obs
    root_any = (cells.reshape(n_c, -1, N_ROOT, N_QUAD).sum(-1) > 0) & obs[..., None]
    occ = (root_any.sum(1) + 0.5) / (n_obs[:, None] + 1.0)
    k, e = build.k, build.dim
    cx = np.zeros((n_c, cloud_days * k, e), np.float32)
    cw = np.zeros((n_c, cloud_days * k), np.float32)
    for c in range(n_c):
        days = np.flatnonzero(obs[c] & (build.weights[c, : last_train_day + 1].sum(-1) > 0))
        if len(days) == 0:
            continue
        pick = days[np.linspace(0, len(days) - 1, min(cloud_days, len(days))).round().astype(int)]
        m = len(pick)
        cx[c, : m * k] = build.points[c, pick].reshape(m * k, e)
        cw[c, : m * k] = build.weights[c, pick].reshape(m * k) / m
    return {"cells": freq, "total": mean_total, "occur": occ, "cloud_x": cx, "cloud_w": cw,
            "last_train_day": int(last_train_day)}


def event_mixes(build: GdeltBuild, last_train_day: int, k: int) -> np.ndarray:
    """``k`` event mixes of the training days [k, 80] (frequencies).

    The observed (country, day)s up to ``last_train_day`` with events are sorted by their share
    of material conflict (QuadClass 4) and cut into ``k`` groups of about equal event count,
    pooled per group (the initial components of a mixture cell head).

    Args:
        build: the GDELT build.
        last_train_day: index of the last training day included.
        k: number of mixes.

    Returns:
        ``[k, 80]`` cell frequencies, one mix per row.
    """
    n_c = build.n_countries
    cells = build.counts.reshape(n_c, -1, N_CELLS)[:, : last_train_day + 1].reshape(-1, N_CELLS)
    keep = build.observed[:, : last_train_day + 1].reshape(-1) & (cells.sum(-1) > 0)
    cells = cells[keep].astype(np.float64)
    tot = cells.sum(-1)
    q4 = cells.reshape(-1, N_ROOT, N_QUAD)[..., 3].sum(-1) / np.maximum(tot, 1)
    order = np.argsort(q4, kind="stable")
    cum = np.cumsum(tot[order]) / max(tot.sum(), 1)
    group = np.minimum((cum * k).astype(int), k - 1)
    out = np.full((k, N_CELLS), 0.5 / N_CELLS)
    np.add.at(out, group, cells[order])
    return out / out.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------
class _Panel:
    """Per-build arrays the baselines read; unobserved days are missing (zero weight)."""

    def __init__(self, build: GdeltBuild) -> None:
        n_c, n_d = build.total.shape
        obs = np.asarray(build.observed, dtype=bool)
        self.obs = obs
        self.cells = build.counts.reshape(n_c, n_d, N_CELLS).astype(np.float64) * obs[..., None]
        self.total = build.total.astype(np.float64) * obs
        zero = np.zeros((n_c, 1))
        self.cs_obs = np.concatenate([zero, np.cumsum(obs, 1)], 1)  # [C, D+1]: days < d
        self.cs_tot = np.concatenate([zero, np.cumsum(self.total, 1)], 1)
        order = np.argsort(~obs, axis=1, kind="stable")  # observed days first, in order
        self.obs_list = np.where(np.take_along_axis(obs, order, 1), order, -1)
        wd = build.weekday()
        self.weekday = np.append(wd, (wd[-1] + 1) % 7 if len(wd) else 0)  # [D+1]
        occ = build.counts.sum(-1) > 0  # [C, D, 20]
        self.occ = (occ & obs[..., None]).astype(np.float64)
        self._ewma: dict = {}

    def last_observed(self, c: np.ndarray, t: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``k`` observed days before each ``t`` [N, k] (oldest first) and validity."""
        n_before = self.cs_obs[c, t].astype(np.int64)
        j = n_before[:, None] - k + np.arange(k)[None, :]
        valid = j >= 0
        days = self.obs_list[c[:, None], np.maximum(j, 0)]
        return np.where(valid, days, 0), valid

    def ewma(self, what: str, half_life: float, c: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``sum_{s < t, observed} 0.5^((t - 1 - s) / half_life) x_s``, cached per ``(what, half_life)``.

        Args:
            what: ``"cells"`` ([N, 80]), ``"occ"`` (occurrences, [N, 20]), ``"total"`` or
                ``"obs"`` (observed indicators, [N]).
            half_life: half-life of the weights, in calendar days.
            c: ``[N]`` country indices.
            t: ``[N]`` target days.

        Returns:
            The weighted sums, ``[N, ...]``.
        """
        key = (what, float(half_life))
        if key not in self._ewma:
            x = {"cells": self.cells, "occ": self.occ, "total": self.total,
                 "obs": self.obs.astype(np.float64)}[what]
            y = ewma_sums(x, half_life)  # [C, D+1]: days < d; missing days (zero) age the history
            while self._ewma and sum(v.nbytes for v in self._ewma.values()) + y.nbytes > _EWMA_CACHE_BYTES:
                self._ewma.pop(next(iter(self._ewma)))  # the oldest first
            self._ewma[key] = y
        return self._ewma[key][c, t]


_PANELS: dict[int, tuple[weakref.ref, _Panel]] = {}


def _panel(build: GdeltBuild) -> _Panel:
    hit = _PANELS.get(id(build))
    if hit is not None and hit[0]() is build:
        return hit[1]
    for k in [k for k, (r, _) in _PANELS.items() if r() is None]:
        del _PANELS[k]
    if len(_PANELS) >= 2:
        _PANELS.pop(next(iter(_PANELS)))
    p = _Panel(build)
    _PANELS[id(build)] = (weakref.ref(build), p)
    return p


def nb_occurrence(root: np.ndarray, mu: np.ndarray, alpha: np.ndarray | float | None) -> np.ndarray:
    """``P(n_r > 0)`` [N, 20] when the total ``NB(mu, alpha)`` is split multinomially with ``root``.

    ``1 - (1 + alpha mu p_r)^(-1/alpha)``; Poisson (``1 - exp(-mu p_r)``) where ``alpha`` is
    ``None`` or 0.

    Args:
        root: ``[N, 20]`` root-code probabilities ``p_r``.
        mu: ``[N]`` mean totals.
        alpha: NB dispersion, scalar or ``[N]``; ``None`` for Poisson.

    Returns:
        ``[N, 20]`` occurrence probabilities.
    """
    lam = np.asarray(mu, dtype=np.float64)[:, None] * root
    if alpha is None:
        return -np.expm1(-lam)
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), lam.shape[:1])[:, None]
    nb = a > 1e-10
    return np.where(nb, -np.expm1(-np.log1p(a * lam) / np.where(nb, a, 1.0)), -np.expm1(-lam))


def fit_dispersion(y: np.ndarray, mu: np.ndarray, grid: Sequence[float] = ALPHA_GRID) -> float:
    """The NB dispersion on ``grid`` with the lowest mean NLL of counts ``y`` at means ``mu``."""
    y = np.asarray(y, dtype=np.float64)
    mu = np.maximum(np.asarray(mu, dtype=np.float64), MU_FLOOR)
    nll = [float(count_nll(y, mu, a).mean()) for a in grid]
    return float(grid[int(np.argmin(nll))])


def _shrink(h: np.ndarray, s: float, prior: np.ndarray) -> np.ndarray:
    return (h + s * prior) / (h.sum(-1, keepdims=True) + s)


def _mean_log_loss(root_n: np.ndarray, root_probs: np.ndarray) -> float:
    ll = log_loss(root_n, root_probs)
    ok = np.isfinite(ll)
    return float(ll[ok].mean()) if ok.any() else math.inf


def _prediction(name: str, cells: np.ndarray, mu: np.ndarray, alpha: float | None,
                occ: np.ndarray | None = None, cloud_x: np.ndarray | None = None,
                cloud_w: np.ndarray | None = None) -> Prediction:
    root, quad = _marginals(cells)
    mu = np.maximum(np.asarray(mu, dtype=np.float64), MU_FLOOR)
    a = None if alpha is None else np.full(len(mu), float(alpha))
    if occ is None:
        occ = nb_occurrence(root, mu, a)
    return Prediction(name, root, quad, occ, mu, a, cloud_x, cloud_w, cells)


# ---------------------------------------------------------------------------------------
# the single baselines
# ---------------------------------------------------------------------------------------
def climatology(data: SequenceData | Targets, clim: dict, alpha: float | None = None) -> Prediction:
    """The country's training base rates (``alpha``: NB dispersion of the total, None Poisson)."""
    _, c, _ = _targets(data)
    cells = clim["cells"][c]
    root, quad = _marginals(cells)
    a = None if alpha is None else np.full(len(c), float(alpha))
    return Prediction("climatology", root, quad, clim["occur"][c], clim["total"][c],
                      a, clim["cloud_x"][c], clim["cloud_w"][c], cells)


def moving_average(data: SequenceData | Targets, clim: dict, window: int, smoothing: float,
                   name: str | None = None, alpha: float | None = None) -> Prediction:
    """Counts of the last ``window`` observed days (1: persistence), smoothed towards climatology.

    The total is their mean (climatology's without history).

    Args:
        data: the targets.
        clim: :func:`climatology_tables` of the training days.
        window: number of observed days pooled.
        smoothing: pseudo-events ``s`` of the country's climatology added to the counts.
        name: name of the prediction; by default ``"persistence"`` for ``window=1``, else
            ``"moving_average_<window>"``.
        alpha: NB dispersion of the total; ``None`` for Poisson.

    Returns:
        The :class:`Prediction`.
    """
    b, c, t = _targets(data)
    pan = _panel(b)
    days, valid = pan.last_observed(c, t, window)
    v = valid.astype(np.float64)
    cells = (pan.cells[c[:, None], days] * v[..., None]).sum(1)
    nval = v.sum(1)
    probs = _shrink(cells, smoothing, clim["cells"][c])
    mu = np.where(nval > 0, (pan.total[c[:, None], days] * v).sum(1) / np.maximum(nval, 1),
                  clim["total"][c])
    k, e = b.k, b.dim
    cx = b.points[c[:, None], days].reshape(len(c), window * k, e).astype(np.float32)
    cw = (b.weights[c[:, None], days] * (v / np.maximum(nval, 1)[:, None])[..., None]
          ).reshape(len(c), window * k).astype(np.float32)
    label = name or ("persistence" if window == 1 else f"moving_average_{window}")
    return _prediction(label, probs, mu, alpha, cloud_x=cx, cloud_w=cw)


def tune_smoothing(data: SequenceData | Targets, clim: dict, window: int,
                   grid: tuple[float, ...] = SMOOTHING_GRID) -> float:
    """The smoothing of :func:`moving_average` with the lowest log loss on ``data``."""
    b, c, t = _targets(data)
    y = b.counts[c, t].sum(-1)
    scores = [_mean_log_loss(y, moving_average(data, clim, window, s).root_probs) for s in grid]
    return float(grid[int(np.argmin(scores))])


def ewma(data: SequenceData | Targets, clim: dict, half_life: float, smoothing: float,
         level_half_life: float, alpha: float | None = None, name: str = "ewma") -> Prediction:
    """Exponentially weighted past cell counts shrunk toward climatology; total the EWMA level."""
    b, c, t = _targets(data)
    pan = _panel(b)
    h = pan.ewma("cells", half_life, c, t)
    return _prediction(name, _shrink(h, smoothing, clim["cells"][c]),
                       _level(pan, clim, level_half_life, c, t), alpha)


def _level(pan: _Panel, clim: dict, half_life: float, c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The recent level of the total: the EWMA of the observed totals.

    Climatology's mean where there is no history.
    """
    w = pan.ewma("obs", half_life, c, t)
    s = pan.ewma("total", half_life, c, t)
    return np.where(w > 1e-12, s / np.maximum(w, 1e-300), clim["total"][c])


def _same_weekday_day(pan: _Panel, c: np.ndarray, t: np.ndarray, weeks: int = 4) -> np.ndarray:
    """The latest observed day among ``t - 7, ..., t - 7 weeks`` (-1: none)."""
    day = np.full(len(c), -1)
    for w in range(weeks, 0, -1):  # the most recent observed one wins
        d = t - 7 * w
        ok = (d >= 0) & pan.obs[c, np.maximum(d, 0)]
        day = np.where(ok, d, day)
    return day


def same_weekday(data: SequenceData | Targets, clim: dict, smoothing: float,
                 alpha: float | None = None, weeks: int = 4) -> Prediction:
    """The cells and total of the latest observed same weekday of the last ``weeks`` weeks.

    The cells are shrunk toward climatology; climatology stands in where no such day exists.

    Args:
        data: the targets.
        clim: :func:`climatology_tables` of the training days.
        smoothing: pseudo-events ``s`` of the country's climatology.
        alpha: NB dispersion of the total; ``None`` for Poisson.
        weeks: how many weeks back to look.

    Returns:
        The :class:`Prediction`.
    """
    b, c, t = _targets(data)
    pan = _panel(b)
    day = _same_weekday_day(pan, c, t, weeks)
    has = day >= 0
    dd = np.maximum(day, 0)
    h = pan.cells[c, dd] * has[:, None]
    mu = np.where(has, pan.total[c, dd], clim["total"][c])
    k, e = b.k, b.dim
    cx = b.points[c, dd].astype(np.float32)
    cw = (b.weights[c, dd] * has[:, None]).astype(np.float32)
    return _prediction("same_weekday", _shrink(h, smoothing, clim["cells"][c]), mu, alpha,
                       cloud_x=cx.reshape(len(c), k, e), cloud_w=cw)


def _dm_loglik(n: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Dirichlet-multinomial log-likelihood of count rows ``n`` under parameters ``a``.

    The multinomial coefficient, which does not depend on ``a``, is left out.
    """
    from scipy.special import gammaln

    big_a = a.sum(-1)
    pos = n > 0
    term = np.where(pos, gammaln(a + n) - gammaln(np.where(pos, a, 1.0)), 0.0).sum(-1)
    return gammaln(big_a) - gammaln(big_a + n.sum(-1)) + term


def fit_concentration(n: np.ndarray, prior: np.ndarray, history: np.ndarray, country: np.ndarray,
                      n_countries: int, grid: Sequence[float] = KAPPA_GRID,
                      pool_days: float = 20.0) -> np.ndarray:
    """Per-country ``kappa_c`` [C] maximising the Dirichlet-multinomial marginal likelihood.

    The likelihood is that of the day counts ``n`` [N, 80] under ``Dir(kappa prior + history)``,
    maximised over ``grid``; each country's log-likelihood adds the pooled one with the weight
    of ``pool_days`` days.

    Args:
        n: ``[N, 80]`` cell counts of the fitting days.
        prior: ``[N, 80]`` prior cell frequencies (the countries' climatology).
        history: ``[N, 80]`` weighted history counts ``h_t``.
        country: ``[N]`` country of each row.
        n_countries: number of countries ``C``.
        grid: candidate concentrations.
        pool_days: weight, in days, of the pooled log-likelihood.

    Returns:
        ``[C]`` concentrations.
    """
    ll = np.zeros((len(grid), n_countries))
    days = np.bincount(country, minlength=n_countries).astype(np.float64)
    for i, kap in enumerate(grid):
        ll[i] = np.bincount(country, weights=_dm_loglik(n, kap * prior + history),
                            minlength=n_countries)
    pooled = ll.sum(1) / max(days.sum(), 1.0)  # per day
    return np.asarray(grid)[np.argmax(ll + pool_days * pooled[:, None], axis=0)]


def dirichlet_eb(data: SequenceData | Targets, clim: dict, kappa: np.ndarray, half_life: float,
                 level_half_life: float, alpha: float | None = None) -> Prediction:
    """Posterior mean ``(kappa_c clim_c + h_t) / (kappa_c + |h_t|)``; total the EWMA level.

    ``h_t`` is the exponentially weighted history of the cell counts.

    Args:
        data: the targets.
        clim: :func:`climatology_tables` of the training days.
        kappa: ``[C]`` concentrations (:func:`fit_concentration`).
        half_life: half-life of the history's weights, in days.
        level_half_life: half-life of the total's level, in days.
        alpha: NB dispersion of the total; ``None`` for Poisson.

    Returns:
        The :class:`Prediction`.
    """
    b, c, t = _targets(data)
    pan = _panel(b)
    h = pan.ewma("cells", half_life, c, t)
    k = np.asarray(kappa, dtype=np.float64)[c][:, None]
    cells = (h + k * clim["cells"][c]) / (h.sum(-1, keepdims=True) + k)
    return _prediction("dirichlet_eb", cells, _level(pan, clim, level_half_life, c, t), alpha)


def _recurrency_occ(pan: _Panel, clim: dict, half_life: float, smoothing: float,
                    c: np.ndarray, t: np.ndarray) -> np.ndarray:
    s_occ = pan.ewma("occ", half_life, c, t)
    w = pan.ewma("obs", half_life, c, t)
    return (s_occ + smoothing * clim["occur"][c]) / (w + smoothing)[:, None]


def recurrency(data: SequenceData | Targets, clim: dict, half_life: float, smoothing: float,
               level_half_life: float, alpha: float | None = None) -> Prediction:
    """Decayed frequency of each root code's past occurrences.

    The event mix follows the implied Poisson rates ``-log(1 - P_r)``, split over QuadClasses
    as the country's climatology; the total is the EWMA level.

    Args:
        data: the targets.
        clim: :func:`climatology_tables` of the training days.
        half_life: half-life of the occurrence weights, in days.
        smoothing: pseudo-days of the country's occurrence climatology.
        level_half_life: half-life of the total's level, in days.
        alpha: NB dispersion of the total; ``None`` for Poisson.

    Returns:
        The :class:`Prediction`.
    """
    b, c, t = _targets(data)
    pan = _panel(b)
    occ = np.clip(_recurrency_occ(pan, clim, half_life, smoothing, c, t), 1e-9, 1 - 1e-9)
    rate = -np.log1p(-occ)
    root = rate / rate.sum(-1, keepdims=True)
    cc = clim["cells"][c].reshape(len(c), N_ROOT, N_QUAD)
    quad_given_root = cc / cc.sum(-1, keepdims=True)
    cells = (root[..., None] * quad_given_root).reshape(len(c), N_CELLS)
    return _prediction("recurrency", cells, _level(pan, clim, level_half_life, c, t), alpha, occ=occ)


# ---------------------------------------------------------------------------------------
# negative-binomial regression of the total
# ---------------------------------------------------------------------------------------
NB_FEATURES = ("log_last_over_level", "log_mean7_over_level", "tue", "wed", "thu", "fri", "sat", "sun")


def count_features(build: GdeltBuild, country: np.ndarray, day: np.ndarray,
                   fallback: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The offset and lagged features of the NB regression of the total.

    The level ``L`` is the mean total of the observed days among the last 28 (falling back to
    the last 7, the last observed day, then ``fallback[country]`` or 0 without history); the
    offset is ``log(L + 0.5)`` and the features [N, 8] (:data:`NB_FEATURES`) are
    ``log((last + 0.5) / (L + 0.5))`` (the last observed total), ``log((mean7 + 0.5) / (L + 0.5))``
    and weekday dummies of the target day (Monday the reference).

    Args:
        build: the GDELT build.
        country: ``[N]`` country indices.
        day: ``[N]`` target days.
        fallback: ``[C]`` level used for a country without history (0 if ``None``).

    Returns:
        ``(offset [N], features [N, 8])``.
    """
    pan = _panel(build)
    c, t = np.asarray(country, dtype=np.int64), np.asarray(day, dtype=np.int64)
    days, valid = pan.last_observed(c, t, 1)
    fb = np.zeros(len(c)) if fallback is None else np.asarray(fallback, dtype=np.float64)[c]
    last = np.where(valid[:, 0], pan.total[c, days[:, 0]], fb)
    means = []
    prev = last
    for w in (7, 28):
        lo = np.maximum(t - w, 0)
        n = pan.cs_obs[c, t] - pan.cs_obs[c, lo]
        m = np.where(n > 0, (pan.cs_tot[c, t] - pan.cs_tot[c, lo]) / np.maximum(n, 1), prev)
        means.append(m)
        prev = m
    offset = np.log(means[1] + 0.5)
    wd = pan.weekday[t]
    x = np.column_stack([np.log(last + 0.5) - offset, np.log(means[0] + 0.5) - offset,
                         (wd[:, None] == np.arange(1, 7)[None, :]).astype(np.float64)])
    return offset, x


@dataclass
class NBRegression:
    """The fitted NB regression of the total (:func:`fit_nb_regression`).

    ``log mu = offset + intercept[c] + x @ coef`` (:func:`count_features`), variance
    ``mu + alpha mu^2``.

    Attributes:
        coef: ``[8]`` coefficients of the features.
        intercept: ``[C]`` per-country intercepts.
        alpha: NB dispersion.
        nll: mean training negative log-likelihood.
        n_iter: Newton iterations run.
        fallback: ``[C]`` level standing in for a missing history.
    """

    coef: np.ndarray  # [8]
    intercept: np.ndarray  # [C]
    alpha: float
    nll: float  # mean training NLL
    grad_norm: float  # at the end of the fit
    n_iter: int
    fallback: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def mean(self, build: GdeltBuild, country: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Predicted mean total ``mu`` [N] of the targets ``(country, day)`` of ``build``."""
        off, x = count_features(build, country, day, self.fallback)
        return np.exp(off + self.intercept[np.asarray(country)] + x @ self.coef)


def _nb_loglik(y: torch.Tensor, eta: torch.Tensor, log_a: torch.Tensor) -> torch.Tensor:
    """Elementwise NB log-likelihood with ``log mu = eta`` and ``log alpha``."""
    r = torch.exp(-log_a)
    lr_mu = torch.logaddexp(-log_a, eta)  # log(r + mu)
    return (torch.lgamma(y + r) - torch.lgamma(r) - torch.lgamma(y + 1)
            + r * (-log_a - lr_mu) + y * (eta - lr_mu))


def _nb_derivatives(y: torch.Tensor, eta: torch.Tensor, log_a: float) -> tuple[torch.Tensor, ...]:
    """Per observation: the log-likelihood and its first and second derivatives in ``(eta, log alpha)``.

    Autograd of the elementwise function: each term depends on its own ``eta_i`` only, so a few
    backward passes give every derivative.
    """
    e = eta.detach().clone().requires_grad_(True)
    la = torch.full_like(e, log_a).requires_grad_(True)
    ll = _nb_loglik(y, e, la)
    d_e, d_a = torch.autograd.grad(ll.sum(), (e, la), create_graph=True)
    d_ee, d_ea = torch.autograd.grad(d_e.sum(), (e, la), retain_graph=True)
    d_aa = torch.autograd.grad(d_a.sum(), la)[0]
    return ll.detach(), d_e.detach(), d_a.detach(), d_ee, d_ea, d_aa


def fit_nb_regression(build: GdeltBuild, country: np.ndarray, day: np.ndarray,
                      fallback: np.ndarray, max_iter: int = 100, ridge: float = 1e-6) -> NBRegression:
    """Maximum likelihood of the NB regression on the targets ``(country, day)`` (observed days).

    Pooled over countries with one intercept per country, the dispersion included
    (``log alpha`` kept in [-12, 5]): Newton steps with the exact Hessian (``J^T diag J`` of
    the per-day second derivatives, float64), Levenberg-damped where it is not positive
    definite, and a backtracking line search, until the gradient's largest entry is below
    1e-8.  ``fallback`` [C] (mean totals) stands in for a missing history; a country without
    training targets gets the mean intercept; ``ridge`` penalises the coefficients.

    Args:
        build: the GDELT build.
        country: ``[N]`` country of each training target.
        day: ``[N]`` day of each training target.
        fallback: ``[C]`` mean totals, standing in for a missing history.
        max_iter: cap on the Newton iterations.
        ridge: L2 penalty on the coefficients.

    Returns:
        The :class:`NBRegression`.
    """
    c = np.asarray(country, dtype=np.int64)
    t = np.asarray(day, dtype=np.int64)
    n_c = build.n_countries
    seen = np.flatnonzero(np.bincount(c, minlength=n_c) > 0)
    local = np.full(n_c, -1)
    local[seen] = np.arange(len(seen))
    off_np, feats = count_features(build, c, t, fallback)
    off = torch.as_tensor(off_np)
    n_f, n_s, n = feats.shape[1], len(seen), len(c)
    x = torch.zeros(n, n_f + n_s, dtype=torch.float64)  # features and country one-hots
    x[:, :n_f] = torch.as_tensor(feats)
    x[torch.arange(n), n_f + torch.as_tensor(local[c])] = 1.0
    y = torch.as_tensor(build.total[c, t], dtype=torch.float64)
    a0 = np.zeros(n_s)
    beta = torch.cat([torch.zeros(n_f, dtype=torch.float64), torch.as_tensor(a0)])
    log_a = math.log(0.1)
    pen = torch.cat([torch.full((n_f,), ridge, dtype=torch.float64),
                     torch.zeros(n_s, dtype=torch.float64)])

    def objective(b: torch.Tensor, la: float) -> float:
        with torch.no_grad():
            return float(-_nb_loglik(y, off + x @ b, torch.tensor(la, dtype=torch.float64)).mean()
                         + (pen * b ** 2).sum())

    f = objective(beta, log_a)
    n_iter, gmax = 0, math.inf
    for _ in range(max_iter):
        n_iter += 1
        _, d_e, d_a, d_ee, d_ea, d_aa = _nb_derivatives(y, off + x @ beta, log_a)
        g = torch.cat([-(x.T @ d_e) / n + 2 * pen * beta, -d_a.sum()[None] / n])
        at_bound = (log_a <= -12.0 and g[-1] > 0) or (log_a >= 5.0 and g[-1] < 0)
        gmax = float(g[:-1].abs().max()) if at_bound else float(g.abs().max())
        if gmax < 1e-8:
            break
        h = torch.empty(n_f + n_s + 1, n_f + n_s + 1, dtype=torch.float64)
        h[:-1, :-1] = -(x.T * d_ee) @ x / n + torch.diag(2 * pen)
        h[:-1, -1] = h[-1, :-1] = -(x.T @ d_ea) / n
        h[-1, -1] = -d_aa.sum() / n
        damp = 0.0
        while True:  # Levenberg damping until the Hessian is positive definite
            chol, info = torch.linalg.cholesky_ex(h + damp * torch.eye(len(h), dtype=h.dtype))
            if int(info) == 0:
                break
            damp = max(damp * 10.0, 1e-9)
        step = torch.cholesky_solve(-g[:, None], chol)[:, 0]
        lr, fc = 1.0, math.inf
        while lr > 1e-10:
            cb = beta + lr * step[:-1]
            ca = min(max(log_a + lr * float(step[-1]), -12.0), 5.0)
            fc = objective(cb, ca)
            if fc <= f + 1e-4 * lr * float(g @ step):
                break
            lr *= 0.5
        if fc >= f:
            break
        beta, log_a, f = cb, ca, fc
    coef = beta[:n_f].numpy().copy()
    ic = np.full(n_c, float(beta[n_f:].mean()) if n_s else 0.0)
    ic[seen] = beta[n_f:].numpy()
    return NBRegression(coef, ic, float(math.exp(log_a)), f, gmax, n_iter,
                        np.asarray(fallback, dtype=np.float64))


def nb_regression(data: SequenceData | Targets, clim: dict, reg: NBRegression, half_life: float,
                  smoothing: float) -> Prediction:
    """The NB regression's total with the ``ewma`` event mix (``half_life``, ``smoothing``)."""
    b, c, t = _targets(data)
    pan = _panel(b)
    cells = _shrink(pan.ewma("cells", half_life, c, t), smoothing, clim["cells"][c])
    return _prediction("nb_regression", cells, reg.mean(b, c, t), reg.alpha)


def oracle(data: SequenceData | Targets) -> Prediction | None:
    """The generator's exact forecast (None when the build has no oracle)."""
    o = data.build.oracle
    if o is None:
        return None
    _, c, t = _targets(data)
    root, quad, mu = o["root_probs"][c, t], o["quad_probs"][c, t], o["total_mean"][c, t]
    return Prediction("oracle", root, quad, _poisson_occ(root, mu), mu)


# ---------------------------------------------------------------------------------------
# all baselines, fitted on train and tuned on validation
# ---------------------------------------------------------------------------------------
def _observed_targets(data: SequenceData | Targets, max_targets: int = 0) -> Targets:
    """The distinct observed ``(country, day)`` targets of ``data``.

    Evenly thinned to ``max_targets`` when there are more (0: no limit).
    """
    b, c, t = _targets(data)
    inside = t < len(b.days)
    c, t = c[inside], t[inside]
    keep = b.observed[c, t]
    key = np.unique(c[keep] * (len(b.days) + 1) + t[keep])
    if max_targets and len(key) > max_targets:
        key = key[np.linspace(0, len(key) - 1, max_targets).round().astype(int)]
    return Targets(b, key // (len(b.days) + 1), key % (len(b.days) + 1))


def _binary_xent(occurred: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-(occurred * np.log(p) + (1 - occurred) * np.log1p(-p)).mean())


@dataclass
class FittedBaselines:
    """The baselines with their fitted / tuned parameters (:func:`fit_baselines`).

    ``fitted[name]`` is a callable ``(SequenceData | Targets) -> Prediction``;
    :meth:`predict` returns ``{name: Prediction}`` for several; ``params[name]`` holds the
    method's hyper-parameters (floats) and, for the record, its validation score.

    Attributes:
        clim: :func:`climatology_tables` of the training days.
        params: hyper-parameters per baseline name.
        kappa: ``[C]`` Dirichlet concentrations of ``dirichlet_eb`` (``None`` if not fitted).
        nb: the NB regression of ``nb_regression`` (``None`` if not fitted).
        names: the fitted baselines, in :data:`BASELINES` order.
    """

    clim: dict
    params: dict[str, dict[str, float]]
    kappa: np.ndarray | None = None
    nb: NBRegression | None = None
    names: tuple[str, ...] = BASELINES

    def __getitem__(self, name: str) -> Callable[[SequenceData | Targets], Prediction]:
        if name not in self.names:
            raise KeyError(f"no baseline {name!r}; fitted: {list(self.names)}")
        return lambda data: self._predict(name, data)

    def __iter__(self):
        return iter(self.names)

    def predict(self, data: SequenceData | Targets,
                names: Sequence[str] | None = None) -> dict[str, Prediction]:
        """Forecasts of several baselines.

        Args:
            data: the targets.
            names: the baselines to run; all fitted ones by default.

        Returns:
            ``{name: Prediction}``.
        """
        return {n: self[n](data) for n in (names or self.names)}

    def _predict(self, name: str, data: SequenceData | Targets) -> Prediction:
        p, clim = self.params[name], self.clim
        if name == "climatology":
            return climatology(data, clim, p["alpha"])
        if name == "persistence":
            return moving_average(data, clim, 1, p["smoothing"], "persistence", p["alpha"])
        if name == "moving_average":
            return moving_average(data, clim, int(p["window"]), p["smoothing"], "moving_average",
                                  p["alpha"])
        if name == "ewma":
            return ewma(data, clim, p["half_life"], p["smoothing"], p["level_half_life"], p["alpha"])
        if name == "same_weekday":
            return same_weekday(data, clim, p["smoothing"], p["alpha"])
        if name == "dirichlet_eb":
            return dirichlet_eb(data, clim, self.kappa, p["half_life"], p["level_half_life"],
                                p["alpha"])
        if name == "recurrency":
            return recurrency(data, clim, p["half_life"], p["smoothing"], p["level_half_life"],
                              p["alpha"])
        if name == "nb_regression":
            return nb_regression(data, clim, self.nb, p["half_life"], p["smoothing"])
        raise KeyError(name)


def fit_baselines(train: SequenceData | Targets, val: SequenceData | Targets, clim: dict, *,
                  names: Sequence[str] = BASELINES, windows: Sequence[int] = WINDOWS,
                  half_lives: Sequence[float] = HALF_LIVES,
                  smoothing_grid: Sequence[float] = SMOOTHING_GRID,
                  max_fit: int = 20000) -> FittedBaselines:
    """Fit every baseline in ``names`` on ``train`` and tune its hyper-parameters on ``val``.

    Fitted on the observed ``train`` targets: NB dispersions, the Dirichlet concentrations,
    the NB regression.  Tuned on the observed ``val`` targets: event-mix parameters by the mean
    per-event log loss, the level's half-life by the NB NLL of the total, the recurrency's by
    the occurrence cross-entropy.
    Grids: ``windows``, ``half_lives`` (days), ``smoothing_grid`` (pseudo-events).  At most
    ``max_fit`` train targets are used (evenly thinned).

    Args:
        train: the training targets.
        val: the validation targets.
        clim: :func:`climatology_tables` of the training days.
        names: the baselines to fit (a subset of :data:`BASELINES`).
        windows: candidate windows of ``moving_average``, in observed days.
        half_lives: candidate half-lives, in days.
        smoothing_grid: candidate smoothing strengths, in pseudo-events.
        max_fit: cap on the training targets used.

    Returns:
        The :class:`FittedBaselines`.

    Raises:
        ValueError: If ``names`` holds an unknown baseline, or ``train`` or ``val`` has no
            observed target.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {list(BASELINES)}")
    tr, va = _observed_targets(train, max_fit), _observed_targets(val)
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"fit_baselines needs observed train and validation targets "
                         f"({len(tr)} and {len(va)})")
    b = tr.build
    pan_tr, pan_va = _panel(b), _panel(va.build)
    ctr, ttr, cva, tva = tr.country, tr.target_day, va.country, va.target_day
    y_tr = b.total[ctr, ttr].astype(np.float64)
    y_va = va.build.total[cva, tva].astype(np.float64)
    root_va = va.build.counts[cva, tva].sum(-1)
    prior_va = clim["cells"][cva]
    params: dict[str, dict[str, float]] = {}

    def best_mix(h_va: np.ndarray) -> tuple[float, float]:
        lls = [_mean_log_loss(root_va, _marginals(_shrink(h_va, s, prior_va))[0]) for s in smoothing_grid]
        i = int(np.argmin(lls))
        return float(smoothing_grid[i]), lls[i]

    if "climatology" in names:
        params["climatology"] = {"alpha": fit_dispersion(y_tr, clim["total"][ctr])}

    def windowed(w: int) -> tuple[np.ndarray, np.ndarray]:
        days, valid = pan_va.last_observed(cva, tva, w)
        return (pan_va.cells[cva[:, None], days] * valid[..., None]).sum(1), valid

    if "persistence" in names:
        s, ll = best_mix(windowed(1)[0])
        mu = moving_average(tr, clim, 1, s).total_mean
        params["persistence"] = {"window": 1.0, "smoothing": s, "alpha": fit_dispersion(y_tr, mu),
                                 "val_log_loss": ll}
    if "moving_average" in names:
        best = min(((*best_mix(windowed(w)[0]), w) for w in windows), key=lambda r: r[1])
        s, ll, w = best
        mu = moving_average(tr, clim, w, s).total_mean
        params["moving_average"] = {"window": float(w), "smoothing": s,
                                    "alpha": fit_dispersion(y_tr, mu), "val_log_loss": ll}

    need_ewma = {"ewma", "dirichlet_eb", "recurrency", "nb_regression"} & set(names)
    if need_ewma:
        best = min(((*best_mix(pan_va.ewma("cells", hl, cva, tva)), float(hl)) for hl in half_lives),
                   key=lambda r: r[1])
        e_s, e_ll, e_hl = best
        lev = []
        for hl in half_lives:
            a = fit_dispersion(y_tr, _level(pan_tr, clim, hl, ctr, ttr))
            mu_va = np.maximum(_level(pan_va, clim, hl, cva, tva), MU_FLOOR)
            lev.append((float(count_nll(y_va, mu_va, a).mean()), float(hl), a))
        l_nll, l_hl, l_alpha = min(lev)
        params["ewma"] = {"half_life": e_hl, "smoothing": e_s, "level_half_life": l_hl,
                          "alpha": l_alpha, "val_log_loss": e_ll, "val_count_nll": l_nll}
    if "same_weekday" in names:
        day = _same_weekday_day(pan_va, cva, tva)
        h = pan_va.cells[cva, np.maximum(day, 0)] * (day >= 0)[:, None]
        s, ll = best_mix(h)
        mu = same_weekday(tr, clim, s).total_mean
        params["same_weekday"] = {"smoothing": s, "alpha": fit_dispersion(y_tr, mu), "val_log_loss": ll}
    kappa = None
    if "dirichlet_eb" in names:
        e = params["ewma"]
        n_tr = b.counts[ctr, ttr].reshape(len(ctr), N_CELLS).astype(np.float64)
        kappa = fit_concentration(n_tr, clim["cells"][ctr], pan_tr.ewma("cells", e["half_life"], ctr, ttr),
                                  ctr, b.n_countries)
        pred = dirichlet_eb(va, clim, kappa, e["half_life"], e["level_half_life"])
        params["dirichlet_eb"] = {"half_life": e["half_life"], "level_half_life": e["level_half_life"],
                                  "alpha": e["alpha"], "kappa_median": float(np.median(kappa)),
                                  "val_log_loss": _mean_log_loss(root_va, pred.root_probs)}
    if "recurrency" in names:
        occ_va = (root_va > 0).astype(np.float64)
        best = min((_binary_xent(occ_va, _recurrency_occ(pan_va, clim, hl, s, cva, tva)), float(hl),
                     float(s)) for hl in half_lives for s in OCC_SMOOTHING_GRID)
        e = params["ewma"]
        params["recurrency"] = {"half_life": best[1], "smoothing": best[2],
                                "level_half_life": e["level_half_life"], "alpha": e["alpha"],
                                "val_occurrence_xent": best[0]}
    nb = None
    if "nb_regression" in names:
        nb = fit_nb_regression(b, ctr, ttr, clim["total"])
        e = params["ewma"]
        mu_va = np.maximum(nb.mean(va.build, cva, tva), MU_FLOOR)
        params["nb_regression"] = {"half_life": e["half_life"], "smoothing": e["smoothing"],
                                   "alpha": nb.alpha, "train_nll": nb.nll, "grad_norm": nb.grad_norm,
                                   **{f"coef_{k}": float(v) for k, v in zip(NB_FEATURES, nb.coef, strict=True)},
                                   "val_count_nll": float(count_nll(y_va, mu_va, nb.alpha).mean())}
    if "ewma" not in names:
        params.pop("ewma", None)
    return FittedBaselines(clim, params, kappa, nb, tuple(n for n in BASELINES if n in names))


def best_baseline(scores: Mapping[str, Mapping[str, float]], metric: str = "log_loss",
                  exclude: Sequence[str] = ("model", "oracle")) -> str:
    """The method of ``scores`` with the lowest ``metric``; ties go to the first.

    Args:
        scores: ``{name: {metric: value}}``, e.g. from :func:`wgf_cli.forecast.scores.score_all`.
        metric: the metric to minimise.
        exclude: names left out (the model and the oracle).

    Returns:
        The name of the best method.

    Raises:
        ValueError: If no remaining method has a ``metric`` score.
    """
    cand = [(float(s[metric]), n) for n, s in scores.items() if n not in exclude and metric in s]
    if not cand:
        raise ValueError(f"no baseline with a {metric!r} score among {list(scores)}")
    return min(cand, key=lambda r: r[0])[1]
