"""Scores of next-day forecasts (numpy in, floats out).

Per test sequence with target-day root counts ``n_r`` (total ``N``), QuadClass counts ``m_q``
and a forecast with per-event root distribution ``p``, quad distribution ``q`` and root-code
occurrence probabilities ``o_r = P(n_r > 0)``:

- log loss: ``-(1/N) sum_r n_r log p_r`` (the contract's per-event cross entropy), averaged
  over days with ``N > 0``;
- Brier: ``sum_r (p_r - n_r/N)^2`` on the same days;
- quad KL: ``KL(m/N || q)``;
- occurrence (multi-label, all days): F1 micro and weighted and Hamming loss of the predicted
  set ``{r: o_r >= 0.5}`` against ``{r: n_r > 0}``; calibration of ``o`` (reliability
  diagram and the expected calibration error over equal-width bins);
- ROUGE-1/2/L F1 between forecast and actual phrase lists (:func:`rouge`);
- Sinkhorn divergence between forecast and actual clouds
  (:func:`wgf_cli.ot.pointcloud.sinkhorn_divergence`);
- on synthetic builds, ``KL(oracle || p)`` (:func:`mean_kl`): the expected excess log loss
  over the exact forecast, free of the sampling noise of the test days' events.

Counts (the day's total ``y`` against a negative-binomial ``NB(mu, alpha)``, variance
``mu + alpha mu^2``, or Poisson ``alpha = 0``/None predictive law), on every day:

- :func:`count_crps`: the exact ranked probability score ``sum_k (F(k) - 1{k >= y})^2``, the
  sum run until ``F`` is within 1e-10 of 1 (the tail left out is below 1e-10);
- :func:`count_nll`: ``-log P(y)``;
- :func:`count_quantiles` / :func:`interval_coverage`: central interval ``[Q(0.1), Q(0.9)]``
  from the predictive quantiles ``Q(p) = min{k: F(k) >= p}`` (discrete: nominal >= 80 %).

Uncertainty of a mean score over days that are not independent (consecutive days of one
country): :func:`country_week_blocks` labels (country, week) blocks;
:func:`block_bootstrap_ci` resamples them (percentile interval of the mean);
:func:`diebold_mariano` tests equal mean loss of two methods on the same days with a
cluster-robust (blocks) or Newey-West (lag) variance.

:func:`score_all` scores several methods (``Prediction``-like objects) at once and raises
:class:`ScoreError`, naming the method and the metric, instead of returning a NaN; event-mix
scores are computed on days with events only and ``days_scored`` says on how many.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_EPS = 1e-12


# ---------------------------------------------------------------------------------------
# distribution scores
# ---------------------------------------------------------------------------------------
def log_loss(root_counts: np.ndarray, root_probs: np.ndarray) -> np.ndarray:
    """Per-day per-event cross entropy (NaN on days without events)."""
    n = root_counts.astype(np.float64)
    tot = n.sum(-1)
    ll = -(n * np.log(np.clip(root_probs, _EPS, 1.0))).sum(-1) / np.maximum(tot, 1)
    return np.where(tot > 0, ll, np.nan)


def brier(root_counts: np.ndarray, root_probs: np.ndarray) -> np.ndarray:
    """Per-day ``sum_r (p_r - n_r/N)^2`` (NaN on days without events)."""
    n = root_counts.astype(np.float64)
    tot = n.sum(-1, keepdims=True)
    emp = n / np.maximum(tot, 1)
    return np.where(tot[..., 0] > 0, ((root_probs - emp) ** 2).sum(-1), np.nan)


def quad_kl(quad_counts: np.ndarray, quad_probs: np.ndarray) -> np.ndarray:
    """Per-day KL(actual quad distribution || forecast) (NaN on days without events)."""
    m = quad_counts.astype(np.float64)
    tot = m.sum(-1, keepdims=True)
    return np.where(tot[..., 0] > 0, _kl_rows(m / np.maximum(tot, 1), quad_probs), np.nan)


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``KL(p || q)`` of each row (0 log 0 = 0, ``q`` clipped to [1e-12, 1])."""
    p = p.astype(np.float64)
    return np.where(p > 0, p * (np.log(np.maximum(p, _EPS)) - np.log(np.clip(q, _EPS, 1.0))), 0.0).sum(-1)


def mean_kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of ``KL(p || q)`` for forecasts ``p``, ``q`` of shape ``[N, R]``.

    Mean over rows of ``KL(p || q)`` [N, R] (``p`` the oracle's forecast: the expected excess per-event
    log loss of ``q``, without the sampling noise of the actual events).
    """
    return float(_kl_rows(p, q).mean()) if len(p) else float("nan")


def multilabel_scores(occurred: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """F1 micro / weighted and Hamming loss of ``probs >= threshold`` vs ``occurred`` [N, 20]."""
    from sklearn.metrics import f1_score, hamming_loss

    pred = (probs >= threshold).astype(int)
    true = occurred.astype(int)
    return {"f1_micro": float(f1_score(true, pred, average="micro", zero_division=0)),
            "f1_weighted": float(f1_score(true, pred, average="weighted", zero_division=0)),
            "hamming": float(hamming_loss(true, pred))}


def reliability(occurred: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict:
    """Reliability diagram of binary forecasts.

    Per equal-width bin the mean forecast, the observed frequency and the count; ECE = sum_b (n_b / n)
    |freq_b - mean_b|.
    """
    p = probs.ravel().astype(np.float64)
    o = occurred.ravel().astype(np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    mean_p = np.bincount(idx, weights=p, minlength=bins) / np.maximum(count, 1)
    freq = np.bincount(idx, weights=o, minlength=bins) / np.maximum(count, 1)
    ece = float((count / max(len(p), 1) * np.abs(freq - mean_p)).sum())
    return {"mean": mean_p, "freq": freq, "count": count, "ece": ece}


# ---------------------------------------------------------------------------------------
# ROUGE
# ---------------------------------------------------------------------------------------
def tokens(phrases: list[str] | str) -> list[str]:
    """Lower-case word tokens of a phrase list (punctuation and dashes dropped)."""
    text = " ".join(phrases) if not isinstance(phrases, str) else phrases
    return re.findall(r"[a-z0-9]+", text.lower())


def _f1(overlap: float, n_cand: int, n_ref: int) -> float:
    if overlap == 0 or n_cand == 0 or n_ref == 0:
        return 0.0
    prec, rec = overlap / n_cand, overlap / n_ref
    return 2 * prec * rec / (prec + rec)


def rouge_n(candidate: list[str], reference: list[str], n: int) -> float:
    """ROUGE-N F1 on token lists: clipped n-gram overlap (Lin, 2004)."""
    cg = Counter(tuple(candidate[i: i + n]) for i in range(len(candidate) - n + 1))
    rg = Counter(tuple(reference[i: i + n]) for i in range(len(reference) - n + 1))
    overlap = sum(min(c, rg[g]) for g, c in cg.items())
    return _f1(overlap, sum(cg.values()), sum(rg.values()))


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence.

    Bit-parallel dynamic programming (Allison and Dix, 1986; Hyyro, 2004): one row of the
    classic table is the bits of one integer, updated by a few integer operations per token of
    ``a``, so the cost is ``len(a)`` big-integer steps instead of ``len(a) * len(b)`` Python
    steps.  The same length as the quadratic table.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for j, y in enumerate(b):
        masks[y] = masks.get(y, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for x in a:
        u = v & masks.get(x, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge(candidate: list[str] | str, reference: list[str] | str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 between two phrase lists (tokenised with :func:`tokens`)."""
    c, r = tokens(candidate), tokens(reference)
    return {"rouge1": rouge_n(c, r, 1), "rouge2": rouge_n(c, r, 2),
            "rougeL": _f1(lcs_length(c, r), len(c), len(r))}


# ---------------------------------------------------------------------------------------
# all scores of one method
# ---------------------------------------------------------------------------------------
def score(counts: np.ndarray, root_probs: np.ndarray, quad_probs: np.ndarray,
          occur_probs: np.ndarray, bins: int = 10) -> dict[str, float]:
    """The distribution / occurrence scores of one method.  ``counts`` [N, 20, 4]."""
    root_n, quad_n = counts.sum(-1), counts.sum(-2)
    occurred = root_n > 0
    out = {"log_loss": float(np.nanmean(log_loss(root_n, root_probs))),
           "brier": float(np.nanmean(brier(root_n, root_probs))),
           "quad_kl": float(np.nanmean(quad_kl(quad_n, quad_probs)))}
    out.update(multilabel_scores(occurred, occur_probs))
    out["ece"] = reliability(occurred, occur_probs, bins)["ece"]
    return out


# ---------------------------------------------------------------------------------------
# count scores (negative binomial / Poisson predictive laws)
# ---------------------------------------------------------------------------------------
_POISSON_ALPHA = 1e-10  # dispersions below this are Poisson


def _count_args(y, mu, alpha) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    mu = np.broadcast_to(np.asarray(mu, dtype=np.float64), y.shape).astype(np.float64)
    a = np.zeros_like(y) if alpha is None else np.broadcast_to(
        np.asarray(alpha, dtype=np.float64), y.shape).astype(np.float64)
    if not (np.isfinite(y).all() and (y >= 0).all() and (y == np.round(y)).all()):
        raise ValueError("counts must be finite non-negative integers")
    if not (np.isfinite(mu).all() and (mu >= 0).all()):
        raise ValueError("the predictive means mu must be finite and >= 0")
    if not (np.isfinite(a).all() and (a >= 0).all()):
        raise ValueError("the dispersions alpha must be finite and >= 0")
    a = np.where(a < _POISSON_ALPHA, 0.0, a)
    return y, np.maximum(mu, 1e-12), a


def count_nll(y, mu, alpha=None) -> np.ndarray:
    """Per-day negative log-likelihood of the counts under a negative binomial or Poisson law.

    Per-day ``-log P(Y = y)`` under ``NB(mu, alpha)`` (variance ``mu + alpha mu^2``) or Poisson(mu)
    where ``alpha`` is None or 0.
    """
    from scipy.special import gammaln

    y, mu, a = _count_args(y, mu, alpha)
    pois = mu - y * np.log(mu) + gammaln(y + 1)
    nb = a > 0
    r = 1.0 / np.where(nb, a, 1.0)
    lg = np.log1p(a * mu)  # log((r + mu) / r)
    nbl = -(gammaln(y + r) - gammaln(r) - gammaln(y + 1) - r * lg
            + y * (np.log(np.where(nb, a, 1.0) * mu) - lg))
    return np.where(nb, nbl, pois)


def _cdf_scan(y, mu, alpha, probs: Sequence[float] = (), tol: float = 1e-10,
              chunk: int = 2048, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One pass over ``k = 0, 1, ...`` of every day's predictive CDF: the CRPS and the quantiles ``probs``.

    The pmf is built in the log domain by the ratio ``p(k+1)/p(k) = mu/(k+1) * (1 + alpha (k - mu) / (1
    + alpha mu))``, vectorised over days (in chunks) and blocks of ``k``; a day stops once ``k >= y``
    and ``1 - F(k) <= tol``.
    """
    y, mu, a = _count_args(y, mu, alpha)
    n = len(y)
    crps = np.zeros(n)
    quant = np.full((n, len(probs)), -1.0)
    probs_arr = np.asarray(probs, dtype=np.float64)
    for s0 in range(0, n, chunk):
        sl = slice(s0, min(n, s0 + chunk))
        yy, mm, aa = y[sl], mu[sl], a[sl]
        m = len(yy)
        # log p(0): Poisson -mu; NB -(1/alpha) log(1 + alpha mu)
        lp = np.where(aa > 0, -np.log1p(aa * mm) / np.where(aa > 0, aa, 1.0), -mm)
        F = np.zeros(m)
        c = np.zeros(m)
        q = np.full((m, len(probs)), -1.0)
        active = np.arange(m)
        k0 = 0
        log_mu = np.log(mm)
        ratio_den = 1.0 + aa * mm
        while len(active):
            ks = k0 + np.arange(block, dtype=np.float64)
            ia = active
            inc = (log_mu[ia, None] - np.log1p(ks)[None, :]
                   + np.log1p(aa[ia, None] * (ks[None, :] - mm[ia, None]) / ratio_den[ia, None]))
            cum = np.cumsum(inc, axis=1)
            lpk = np.concatenate([lp[ia, None], lp[ia, None] + cum[:, :-1]], axis=1)
            Fk = F[ia, None] + np.cumsum(np.exp(lpk), axis=1)
            Fk = np.minimum(Fk, 1.0)
            ind = ks[None, :] >= yy[ia, None]
            c[ia] += ((Fk - ind) ** 2).sum(1)
            for j, p in enumerate(probs_arr):
                todo = q[ia, j] < 0
                hit = Fk >= p
                first = np.argmax(hit, axis=1)
                ok = todo & hit.any(1)
                q[ia[ok], j] = k0 + first[ok]
            F[ia] = Fk[:, -1]
            lp[ia] = lp[ia] + cum[:, -1]
            k_last = k0 + block - 1
            tail_gone = (1.0 - F[ia] <= tol) | ((k_last > mm[ia] + 10) & (lp[ia] < -80.0))
            done = (k_last >= yy[ia]) & tail_gone & (q[ia] >= 0).all(1)
            active = ia[~done]
            k0 += block
        crps[sl] = c
        quant[sl] = q
    return crps, quant


def count_crps(y, mu, alpha=None) -> np.ndarray:
    """Per-day ranked probability score of the count ``y`` under ``NB(mu, alpha)``.

    Per-day ranked probability score of the count ``y`` under ``NB(mu, alpha)`` (Poisson where ``alpha``
    is None or 0): ``sum_{k>=0} (F(k) - 1{k >= y})^2`` (in events; exact up to a tail below 1e-10).
    """
    return _cdf_scan(y, mu, alpha)[0]


def count_quantiles(mu, alpha=None, probs: Sequence[float] = (0.1, 0.9)) -> np.ndarray:
    """Predictive quantiles ``Q(p) = min{k: F(k) >= p}`` [N, len(probs)]."""
    mu = np.asarray(mu, dtype=np.float64).reshape(-1)
    return _cdf_scan(np.zeros_like(mu), mu, alpha, tuple(probs))[1]


def interval_coverage(y, mu, alpha=None, level: float = 0.8) -> np.ndarray:
    """Per day, whether ``y`` lies in the central ``level`` predictive interval.

    Per day: whether ``y`` lies in the central ``level`` predictive interval ``[Q((1-level)/2),
    Q((1+level)/2)]`` (bool [N]).
    """
    lo, hi = (1 - level) / 2, (1 + level) / 2
    q = _cdf_scan(y, mu, alpha, (lo, hi))[1]
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return (y >= q[:, 0]) & (y <= q[:, 1])


# ---------------------------------------------------------------------------------------
# uncertainty of mean scores
# ---------------------------------------------------------------------------------------
def country_week_blocks(country, target_day, week: int = 7) -> np.ndarray:
    """Block labels of (country, week) for block resampling.

    Days ``d`` of country ``c`` with the same ``d // week`` share a label (int64 [N]).
    """
    c = np.asarray(country, dtype=np.int64).reshape(-1)
    w = np.asarray(target_day, dtype=np.int64).reshape(-1) // int(week)
    return c * (int(w.max(initial=0)) + 1) + w


def block_bootstrap_ci(values, blocks, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` by the block bootstrap.

    The G blocks (labels ``blocks``) are drawn G times with replacement (``numpy`` generator ``seed``)
    and the mean is the pooled one, ``sum(values) / count`` over the drawn blocks. ``values`` must be
    finite (select the days first).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    b = np.asarray(blocks).reshape(-1)
    if len(v) != len(b):
        raise ValueError(f"{len(v)} values but {len(b)} block labels")
    if len(v) == 0 or not np.isfinite(v).all():
        raise ValueError("block_bootstrap_ci needs at least one value, all finite")
    _, inv = np.unique(b, return_inverse=True)
    sums = np.bincount(inv, weights=v)
    cnt = np.bincount(inv).astype(np.float64)
    g = len(sums)
    if g < 2:
        raise ValueError("block_bootstrap_ci needs at least two blocks (one block gives a "
                         "zero-width interval)")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 4_000_000 // g)
    for i in range(0, n_boot, step):
        idx = rng.integers(g, size=(min(step, n_boot - i), g))
        means[i: i + len(idx)] = sums[idx].sum(1) / cnt[idx].sum(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def newey_west_lag(n: int) -> int:
    """The usual automatic lag ``floor(4 (n / 100)^(2/9))``."""
    return int(math.floor(4 * (n / 100.0) ** (2.0 / 9.0)))


def diebold_mariano(loss_a, loss_b, blocks=None, lag: int | None = None) -> dict[str, float]:
    """Diebold-Mariano test of equal mean loss of methods ``a`` and ``b`` on the same days.

    ``d = loss_a - loss_b``; the variance of its mean is cluster-robust over ``blocks``
    (``G/(G-1) * sum_g (sum_{i in g} (d_i - dbar))^2 / n^2``, e.g. country-weeks, compared with a
    Student t with ``G - 1`` degrees of freedom), or without blocks the Newey-West
    (Bartlett) long-run variance with ``lag`` (default :func:`newey_west_lag`) of ``d`` in
    the given order (t with ``n - 1`` degrees of freedom, as Harvey-Leybourne-Newbold).
    Returns ``stat`` (``dbar / se``; negative: ``a`` has the lower loss), the two-sided
    ``pvalue``, ``mean_diff``, ``se``, ``n`` and ``df``.  Inputs must be finite.
    """
    from scipy import stats

    a = np.asarray(loss_a, dtype=np.float64).reshape(-1)
    b = np.asarray(loss_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"loss arrays differ in length ({len(a)} vs {len(b)})")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("diebold_mariano needs finite losses on the same days (select days "
                         "where both are defined)")
    n = len(a)
    if n < 2:
        raise ValueError("diebold_mariano needs at least two days")
    d = a - b
    dbar = float(d.mean())
    e = d - dbar
    if blocks is not None:
        blk = np.asarray(blocks).reshape(-1)
        if len(blk) != n:
            raise ValueError(f"{n} losses but {len(blk)} block labels")
        _, inv = np.unique(blk, return_inverse=True)
        s = np.bincount(inv, weights=e)
        g = len(s)
        if g < 2:
            raise ValueError("diebold_mariano with blocks needs at least two blocks")
        var = g / (g - 1) * float((s ** 2).sum()) / n ** 2
        df = g - 1
    else:
        lag = newey_west_lag(n) if lag is None else int(lag)
        lrv = float(e @ e) / n
        for k in range(1, min(lag, n - 1) + 1):
            lrv += 2 * (1 - k / (lag + 1)) * float(e[k:] @ e[:-k]) / n
        var = max(lrv, 0.0) / n
        df = n - 1
    se = math.sqrt(var)
    if se == 0.0:
        stat = 0.0 if dbar == 0.0 else math.copysign(math.inf, dbar)
        p = 1.0 if dbar == 0.0 else 0.0
    else:
        stat = dbar / se
        p = float(2 * stats.t.sf(abs(stat), df))
    return {"stat": float(stat), "pvalue": p, "mean_diff": dbar, "se": se, "n": n, "df": df}


# ---------------------------------------------------------------------------------------
# every score of several methods
# ---------------------------------------------------------------------------------------
class ScoreError(ValueError):
    """A requested score is undefined (NaN); the message names the method and the metric."""


EVENT_METRICS = ("log_loss", "brier", "quad_kl")  # days with events only
COUNT_METRICS = ("count_crps", "count_nll", "coverage80")  # every day
OCCUR_METRICS = ("ece", "f1_micro", "f1_weighted", "hamming")  # every day
DEFAULT_METRICS = ("log_loss", "brier", "ece", "quad_kl", "count_crps", "count_nll", "coverage80")


def per_day_scores(pred: Any, counts: np.ndarray, total: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-day scores of one method (``pred`` has ``root_probs``, ``quad_probs``, ``total_mean``, ``alpha``).

    ``log_loss``, ``brier``, ``quad_kl`` (NaN on days without events), ``count_crps``, ``count_nll``,
    ``coverage80`` (every day). ``counts`` [N, 20, 4], ``total`` [N] (default: the counts' sum).
    """
    counts = np.asarray(counts)
    root_n, quad_n = counts.sum(-1), counts.sum(-2)
    y = counts.sum((-1, -2)) if total is None else np.asarray(total)
    return {"log_loss": log_loss(root_n, pred.root_probs), "brier": brier(root_n, pred.root_probs),
            "quad_kl": quad_kl(quad_n, pred.quad_probs),
            "count_crps": count_crps(y, pred.total_mean, pred.alpha),
            "count_nll": count_nll(y, pred.total_mean, pred.alpha),
            "coverage80": interval_coverage(y, pred.total_mean, pred.alpha, 0.8).astype(np.float64)}


def score_all(preds: Mapping[str, Any], counts: np.ndarray, total: np.ndarray | None = None, *,
              metrics: Sequence[str] = DEFAULT_METRICS, blocks: np.ndarray | None = None,
              bins: int = 10, n_boot: int = 2000, level: float = 0.95,
              seed: int = 0) -> dict[str, dict[str, Any]]:
    """Scores of every method in ``preds`` on the same N target days.

    ``counts`` [N, 20, 4] the actual cells, ``total`` [N] the actual totals (default their
    sum).  Per method a dict with the requested ``metrics`` (any of :data:`EVENT_METRICS`,
    :data:`COUNT_METRICS`, :data:`OCCUR_METRICS`) as floats, ``days`` (N: count and
    occurrence scores) and ``days_scored`` (days with events: event-mix scores), and with
    ``blocks`` (labels, e.g. :func:`country_week_blocks`) ``log_loss_ci``: the
    ``level`` block-bootstrap interval of the mean log loss (at least two blocks with
    events needed).  Raises :class:`ScoreError`
    naming the method and metric when a requested score is undefined (e.g. no day with
    events) or NaN.
    """
    known = set(EVENT_METRICS) | set(COUNT_METRICS) | set(OCCUR_METRICS)
    bad = [m for m in metrics if m not in known]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; known: {sorted(known)}")
    counts = np.asarray(counts)
    n = len(counts)
    if n == 0:
        raise ScoreError("no target days to score")
    root_n = counts.sum(-1)
    has = root_n.sum(-1) > 0
    occurred = root_n > 0
    out: dict[str, dict[str, Any]] = {}
    for name, p in preds.items():
        for field in ("root_probs", "quad_probs", "occur_probs", "total_mean"):
            rows = len(getattr(p, field))
            if rows != n:
                raise ValueError(f"{name}: {field} has {rows} rows, {n} target days")
        day = per_day_scores(p, counts, total)
        s: dict[str, Any] = {"days": int(n), "days_scored": int(has.sum())}
        for m in metrics:
            if m in EVENT_METRICS:
                if not has.any():
                    raise ScoreError(f"{name}: {m} is undefined: none of the {n} target days has "
                                     "events")
                v = float(day[m][has].mean())
            elif m in COUNT_METRICS:
                v = float(day[m].mean())
            elif m == "ece":
                v = reliability(occurred, p.occur_probs, bins)["ece"]
            else:
                v = multilabel_scores(occurred, p.occur_probs)[m]
            if not math.isfinite(v):
                raise ScoreError(f"{name}: {m} is {v} on {n} days ({int(has.sum())} with events); "
                                 "check the method's forecasts for NaN/inf")
            s[m] = v
        if blocks is not None and "log_loss" in metrics:
            blk = np.asarray(blocks).reshape(-1)
            if len(np.unique(blk[has])) < 2:
                raise ScoreError(f"{name}: log_loss_ci is undefined: the {int(has.sum())} days "
                                 "with events fall in fewer than two blocks")
            s["log_loss_ci"] = block_bootstrap_ci(day["log_loss"][has], blk[has], n_boot, level, seed)
        out[name] = s
    return out


def compare(pred_a: Any, pred_b: Any, counts: np.ndarray, blocks: np.ndarray | None = None,
            metric: str = "log_loss", total: np.ndarray | None = None,
            lag: int | None = None) -> dict[str, float]:
    """Diebold-Mariano comparison of two methods on one per-day metric.

    :func:`diebold_mariano` of two methods' per-day ``metric`` on the days where it is defined (days
    with events for the event-mix scores).
    """
    da = per_day_scores(pred_a, counts, total)[metric]
    db = per_day_scores(pred_b, counts, total)[metric]
    ok = np.isfinite(da) & np.isfinite(db)
    if not ok.any():
        raise ScoreError(f"{metric}: no day where both methods' scores are defined")
    blk = None if blocks is None else np.asarray(blocks).reshape(-1)[ok]
    return diebold_mariano(da[ok], db[ok], blk, lag)
