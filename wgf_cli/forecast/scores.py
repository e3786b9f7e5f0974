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
  (:func:`wgf_cli.ot.clouds.sinkhorn_divergence`);
- on synthetic builds, ``KL(oracle || p)`` (:func:`mean_kl`): the expected excess log loss
  over the exact forecast, free of the sampling noise of the test days' events.
"""

from __future__ import annotations

import re
from collections import Counter

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
    """Mean over rows of ``KL(p || q)`` [N, R] (``p`` the oracle's forecast: the expected
    excess per-event log loss of ``q``, without the sampling noise of the actual events)."""
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
    """Reliability diagram of binary forecasts: per equal-width bin the mean forecast, the
    observed frequency and the count; ECE = sum_b (n_b / n) |freq_b - mean_b|."""
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
    """Length of the longest common subsequence (dynamic programming)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


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
