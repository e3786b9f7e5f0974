"""Scores of next-day forecasts (numpy in, floats out) and the Sinkhorn divergence.

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
- Sinkhorn divergence between forecast and actual clouds (:func:`sinkhorn_divergence`);
- on synthetic builds, ``KL(oracle || p)`` (:func:`mean_kl`): the expected excess log loss
  over the exact forecast, free of the sampling noise of the test days' events.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import torch

_EPS = 1e-12


# ---------------------------------------------------------------------------------------
# optimal transport
# ---------------------------------------------------------------------------------------
def _lse(t: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.logsumexp(t, dim=dim)


def _cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``|x - y|^2 / 2`` [B, N, M] (through one batched matrix product)."""
    return 0.5 * ((x * x).sum(-1)[:, :, None] + (y * y).sum(-1)[:, None, :]) - x @ y.transpose(-1, -2)


def _schedule(c: torch.Tensor, eps: float, scaling: float, iters: int) -> list[float]:
    e = max(float(c.max()), eps)
    out = []
    while e > eps:
        out.append(e)
        e *= scaling**2
    return out + [eps] * iters


def entropic_ot(a: torch.Tensor, x: torch.Tensor, b: torch.Tensor, y: torch.Tensor, eps: float,
                scaling: float = 0.5, iters: int = 30, symmetric: bool = False) -> torch.Tensor:
    """Entropic OT cost ``OT_eps(a, b)`` (dual value), cost ``|x - y|^2 / 2``, batched [B].

    The dual potentials are found without gradients by log-domain Sinkhorn iterations with
    epsilon-scaling (eps from the largest cost down to ``eps`` by factors ``scaling^2``, then
    ``iters`` iterations at ``eps``; for ``symmetric`` problems, ``a = b`` and ``x = y``, the
    averaged fixed-point update ``f <- (f + T(f)) / 2``, which converges in a few steps); the
    value is then the dual objective ``<a, f> + <b, g> - eps <a x b, exp((f + g - C)/eps) - 1>``
    evaluated with those fixed potentials, whose gradient is exact at convergence (envelope
    theorem): the plan for the cost, the potentials for the weights.
    """
    cost = _cost(x, y)
    la = torch.log(a.clamp_min(0)).to(cost.dtype)
    lb = torch.log(b.clamp_min(0)).to(cost.dtype)
    with torch.no_grad():
        c = cost.detach()
        f = torch.zeros_like(la)
        g = torch.zeros_like(lb)
        for e in _schedule(c, eps, scaling, iters):
            if symmetric:
                f = 0.5 * (f - e * _lse(la[:, None, :] + (f[:, None, :] - c) / e, -1))
                g = f
            else:
                f = -e * _lse(lb[:, None, :] + (g[:, None, :] - c) / e, -1)
                g = -e * _lse(la[:, :, None] + (f[:, :, None] - c) / e, -2)
    fa = torch.where(a > 0, a * f, torch.zeros_like(f))
    gb = torch.where(b > 0, b * g, torch.zeros_like(g))
    plan = torch.exp(la[:, :, None] + lb[:, None, :] + (f[:, :, None] + g[:, None, :] - cost) / eps)
    return fa.sum(-1) + gb.sum(-1) - eps * (plan.sum((-2, -1)) - 1.0)


def sinkhorn_divergence(a: torch.Tensor, x: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                        blur: float = 0.1, scaling: float = 0.5, iters: int = 30) -> torch.Tensor:
    """Debiased Sinkhorn divergence between weighted clouds, batched.

    ``a`` [B, N], ``x`` [B, N, D], ``b`` [B, M], ``y`` [B, M, D]; weights summing to 1 per
    cloud (zero weights allowed: those points are ignored).  Cost ``|x - y|^2 / 2``, entropic
    regularisation ``eps = blur^2``:  ``S = OT_eps(a, b) - OT_eps(a, a)/2 - OT_eps(b, b)/2``
    (:func:`entropic_ot`); ``S >= 0`` and ``S = 0`` iff the clouds are equal (Feydy et al.,
    2019).  The same quantity as GeomLoss's ``SamplesLoss("sinkhorn", p=2, blur, debias=True)``
    (tests compare both).  Written here because GeomLoss does one Sinkhorn step per eps level
    (epsilon-scaling), which on day clouds (K = 6-10 nearly equidistant points on the 384-d
    sphere, blur 0.3, scaling 0.5) left its gradient 70-80% and its value ~20% away from the
    converged ones, against 1.5-2% and < 1.5% here at 20 final iterations, for 1.1-1.5x its
    time (``benchmarks/bench_gdelt_train_sinkhorn.py``).  Returns [B].
    """
    eps = float(blur) ** 2
    return (entropic_ot(a, x, b, y, eps, scaling, iters)
            - 0.5 * entropic_ot(a, x, a, x, eps, scaling, iters, symmetric=True)
            - 0.5 * entropic_ot(b, y, b, y, eps, scaling, iters, symmetric=True))


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
