"""Reference forecasts scored with the same metrics as the model.

All return a :class:`Prediction` for the target days of a :class:`SequenceData`:

- **persistence**: tomorrow = today.  Cell distribution ``(n_today + s * clim) / (N_today + s)``
  (``s`` pseudo-events of the country's climatology, so unseen codes keep a probability),
  total ``N_today``, today's cloud;
- **moving average**: the same over the last ``window`` days (counts summed, total averaged,
  the clouds pooled with weights / window);
- **climatology**: the country's training base rates (observed days up to the last training
  target day): cell frequencies, mean total, the frequency of each root code occurring, and
  a cloud pooled from ``cloud_days`` evenly spaced training days;
- **oracle** (synthetic builds): the generator's exact predictive distribution (oracle.npz).

Occurrence probabilities of the count baselines are Poisson: ``1 - exp(-mu p_r)``.
The smoothing ``s`` may be chosen on the validation split (:func:`tune_smoothing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wgf_cli.forecast.data import N_CELLS, N_QUAD, N_ROOT, GdeltBuild, SequenceData
from wgf_cli.forecast.scores import log_loss


@dataclass
class Prediction:
    """One method's forecasts of N target days."""

    name: str
    root_probs: np.ndarray  # [N, 20]
    quad_probs: np.ndarray  # [N, 4]
    occur_probs: np.ndarray  # [N, 20]
    total_mean: np.ndarray  # [N]
    alpha: np.ndarray | None = None  # negative-binomial dispersion (None: Poisson)
    cloud_x: np.ndarray | None = None  # [N, K', E]
    cloud_w: np.ndarray | None = None  # [N, K']


def _marginals(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = cells.reshape(*cells.shape[:-1], N_ROOT, N_QUAD)
    return c.sum(-1), c.sum(-2)


def _poisson_occ(root: np.ndarray, mu: np.ndarray) -> np.ndarray:
    return -np.expm1(-mu[:, None] * root)


def climatology_tables(build: GdeltBuild, last_train_day: int, cloud_days: int = 30) -> dict:
    """Per-country base rates from observed days ``<= last_train_day`` (a day index)."""
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
    """``k`` event mixes of the training days [k, 80] (frequencies): the observed (country,
    day)s up to ``last_train_day`` with events, sorted by their share of material conflict
    (QuadClass 4) and cut into ``k`` groups of about equal event count, pooled per group
    (the initial components of a mixture cell head)."""
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


def climatology(data: SequenceData, clim: dict) -> Prediction:
    c = data.country.numpy()
    root, quad = _marginals(clim["cells"][c])
    return Prediction("climatology", root, quad, clim["occur"][c], clim["total"][c],
                      None, clim["cloud_x"][c], clim["cloud_w"][c])


def moving_average(data: SequenceData, clim: dict, window: int, smoothing: float,
                   name: str | None = None) -> Prediction:
    """Counts of the last ``window`` days (1: persistence), smoothed towards climatology."""
    b = data.build
    c = data.country.numpy()
    t = data.target_day.numpy()
    days = t[:, None] + np.arange(-window, 0)[None, :]
    cells = b.counts.reshape(b.n_countries, -1, N_CELLS)[c[:, None], days].sum(1).astype(np.float64)
    tot = cells.sum(-1)
    probs = (cells + smoothing * clim["cells"][c]) / (tot + smoothing)[:, None]
    root, quad = _marginals(probs)
    mu = tot / window
    k, e = b.k, b.dim
    cx = b.points[c[:, None], days].reshape(len(c), window * k, e).astype(np.float32)
    cw = b.weights[c[:, None], days].reshape(len(c), window * k) / window
    label = name or ("persistence" if window == 1 else f"moving_average_{window}")
    return Prediction(label, root, quad, _poisson_occ(root, mu), mu, None, cx, cw)


def tune_smoothing(data: SequenceData, clim: dict, window: int,
                   grid: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)) -> float:
    """The smoothing of :func:`moving_average` with the lowest log loss on ``data``."""
    c, t = data.country.numpy(), data.target_day.numpy()
    y = data.build.counts[c, t].sum(-1)
    scores = [np.nanmean(log_loss(y, moving_average(data, clim, window, s).root_probs))
              for s in grid]
    return float(grid[int(np.nanargmin(scores))])


def oracle(data: SequenceData) -> Prediction | None:
    """The generator's exact forecast (None when the build has no oracle)."""
    o = data.build.oracle
    if o is None:
        return None
    c, t = data.country.numpy(), data.target_day.numpy()
    root, quad, mu = o["root_probs"][c, t], o["quad_probs"][c, t], o["total_mean"][c, t]
    return Prediction("oracle", root, quad, _poisson_occ(root, mu), mu)
