"""Count scores, block bootstrap, Diebold-Mariano and score_all against scipy, closed forms,
Monte Carlo estimates and hand computations (tolerances stated at each assertion)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import special, stats

from wgf_cli.forecast import scores as M


def _dist(mu: float, alpha: float):
    if alpha == 0:
        return stats.poisson(mu)
    r = 1 / alpha
    return stats.nbinom(r, r / (r + mu))


CASES = [(0, 0.3, 0.0), (2, 0.3, 0.0), (1, 4.0, 0.0), (9, 4.0, 0.0), (30, 25.0, 0.0),
         (0, 5.0, 0.5), (3, 5.0, 0.5), (40, 12.0, 1.5), (120, 100.0, 0.05), (0, 100.0, 0.05),
         (500, 300.0, 0.3)]


def test_count_crps_equals_the_sum_over_scipy_cdf():
    y, mu, a = (np.array(v, dtype=float) for v in zip(*CASES, strict=True))
    got = M.count_crps(y, mu, a)
    for i, (yy, m, al) in enumerate(CASES):
        k = np.arange(0, 200_000)
        want = ((_dist(m, al).cdf(k) - (k >= yy)) ** 2).sum()
        assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-11), (yy, m, al)


def test_poisson_crps_closed_form():
    # Wei & Held (2014): CRPS(Pois(mu), y) = (y - mu)(2F(y) - 1) + 2 mu f(y)
    #                                          - mu exp(-2 mu) (I0(2 mu) + I1(2 mu))
    mu = np.array([0.05, 0.3, 0.3, 1.0, 2.5, 2.5, 4.0])
    y = np.array([0, 0, 2, 1, 0, 6, 3])
    f, F = stats.poisson.pmf(y, mu), stats.poisson.cdf(y, mu)
    closed = (y - mu) * (2 * F - 1) + 2 * mu * f - mu * (special.i0e(2 * mu) + special.i1e(2 * mu))
    np.testing.assert_allclose(M.count_crps(y, mu, None), closed, rtol=1e-10)
    np.testing.assert_allclose(M.count_crps(y, mu, np.zeros(7)), closed, rtol=1e-10)


def test_nb_crps_against_monte_carlo():
    # CRPS = E|X - y| - E|X - X'| / 2; 400k draws: standard error well under 1 %
    rng = np.random.default_rng(0)
    for y, mu, a in [(3, 5.0, 0.5), (70, 50.0, 0.2)]:
        r = 1 / a
        x = rng.negative_binomial(r, r / (r + mu), size=(2, 400_000))
        mc = np.abs(x[0] - y).mean() - 0.5 * np.abs(x[0] - x[1]).mean()
        assert M.count_crps([y], [mu], [a])[0] == pytest.approx(mc, rel=0.02)


def test_count_nll_and_quantiles_against_scipy():
    y, mu, a = (np.array(v, dtype=float) for v in zip(*CASES, strict=True))
    want = [-_dist(m, al).logpmf(yy) for yy, m, al in CASES]
    np.testing.assert_allclose(M.count_nll(y, mu, a), want, rtol=1e-10)
    q = M.count_quantiles(mu, a, (0.1, 0.5, 0.9))
    want_q = np.array([_dist(m, al).ppf([0.1, 0.5, 0.9]) for _, m, al in CASES])
    np.testing.assert_array_equal(q, want_q)
    cov = M.interval_coverage(y, mu, a, 0.8)
    np.testing.assert_array_equal(cov, (y >= want_q[:, 0]) & (y <= want_q[:, 2]))
    # a calibrated NB: coverage of its own draws is at least 80 % (discrete), and near it
    rng = np.random.default_rng(1)
    draws = rng.negative_binomial(2.0, 2.0 / (2.0 + 30.0), size=20_000)
    c = M.interval_coverage(draws, np.full(20_000, 30.0), np.full(20_000, 0.5)).mean()
    assert 0.80 <= c <= 0.84


def test_count_scores_reject_bad_input():
    with pytest.raises(ValueError, match="mu"):
        M.count_crps([1], [math.nan], None)
    with pytest.raises(ValueError, match="integers"):
        M.count_nll([1.5], [2.0], None)


def test_block_bootstrap_hand_case_and_constant():
    assert M.block_bootstrap_ci(np.full(10, 2.5), np.arange(10) // 2) == (2.5, 2.5)
    with pytest.raises(ValueError, match="two blocks"):
        M.block_bootstrap_ci(np.arange(5.0), np.zeros(5))
    # two blocks of one value each, means 0 and 1: resampled means are 0, 0.5, 1 with
    # probabilities 1/4, 1/2, 1/4 -> the 2.5 % and 97.5 % quantiles are 0 and 1
    lo, hi = M.block_bootstrap_ci(np.array([0.0, 1.0]), np.array([0, 1]), n_boot=4000, seed=3)
    assert (lo, hi) == (0.0, 1.0)
    # the interval is deterministic given the seed
    v = np.random.default_rng(0).normal(size=50)
    assert M.block_bootstrap_ci(v, np.arange(50) // 5, seed=7) == M.block_bootstrap_ci(v, np.arange(50) // 5, seed=7)


def test_block_bootstrap_coverage_iid_and_clustered():
    # 250 repeats of 40 blocks x 7 days; true mean 0.  iid: ~95 % coverage (percentile
    # bootstrap with 40 blocks: 0.90-0.99 accepted).  Clustered (a block effect with the same
    # variance as the noise): blocks of country-weeks still cover; one-day blocks do not.
    rng = np.random.default_rng(0)
    reps, g, w = 250, 40, 7
    blocks = np.repeat(np.arange(g), w)
    hit_iid = hit_blk = hit_naive = 0
    for _ in range(reps):
        x = rng.normal(size=g * w)
        lo, hi = M.block_bootstrap_ci(x, blocks, n_boot=400, seed=int(rng.integers(1 << 30)))
        hit_iid += lo <= 0 <= hi
        z = x + np.repeat(rng.normal(size=g), w)
        lo, hi = M.block_bootstrap_ci(z, blocks, n_boot=400, seed=int(rng.integers(1 << 30)))
        hit_blk += lo <= 0 <= hi
        lo, hi = M.block_bootstrap_ci(z, np.arange(g * w), n_boot=400, seed=int(rng.integers(1 << 30)))
        hit_naive += lo <= 0 <= hi
    assert 0.90 <= hit_iid / reps <= 0.99
    assert 0.88 <= hit_blk / reps <= 0.99
    assert hit_naive / reps < 0.75  # ignoring the clustering gives far too narrow intervals


def test_country_week_blocks():
    b = M.country_week_blocks([0, 0, 0, 1, 1], [6, 7, 13, 6, 7])
    assert b[1] == b[2] and b[0] != b[1] and b[3] != b[0] and b[3] != b[4] and len(set(b)) == 4


def test_diebold_mariano_hand_computation():
    a = np.array([1.0, 2.0, 3.0, 4.0, 2.0, 2.0])
    b = np.array([1.5, 1.0, 2.0, 2.0, 2.5, 1.0])
    d = a - b  # -0.5 1 1 2 -0.5 1 ; mean 2/3
    blocks = np.array([0, 0, 1, 1, 2, 2])
    e = d - d.mean()
    s = np.array([e[0] + e[1], e[2] + e[3], e[4] + e[5]])
    var = 3 / 2 * (s ** 2).sum() / 36
    r = M.diebold_mariano(a, b, blocks)
    assert r["mean_diff"] == pytest.approx(2 / 3)
    assert r["se"] == pytest.approx(math.sqrt(var))
    assert r["df"] == 2
    assert r["pvalue"] == pytest.approx(2 * stats.t.sf(abs(d.mean() / math.sqrt(var)), 2))
    # Newey-West with lag 1: (g0 + 2 * (1/2) * g1) / n, g_k = sum e_t e_{t-k} / n
    g0, g1 = (e @ e) / 6, (e[1:] @ e[:-1]) / 6
    r = M.diebold_mariano(a, b, lag=1)
    assert r["se"] == pytest.approx(math.sqrt((g0 + g1) / 6))
    assert r["pvalue"] == pytest.approx(2 * stats.t.sf(abs(d.mean() / r["se"]), 5))
    same = M.diebold_mariano(a, a, blocks)
    assert same["pvalue"] == 1.0 and same["stat"] == 0.0
    with pytest.raises(ValueError, match="finite"):
        M.diebold_mariano([1.0, math.nan], [1.0, 2.0])


def test_diebold_mariano_is_uniform_under_the_null():
    # equal mean losses, errors correlated within country-weeks: rejections at 5 % near 5 %
    # (0.01-0.10 over 400 repeats) and a mean p-value near 1/2; the iid variance (no blocks,
    # lag 0) on the same data rejects far too often
    rng = np.random.default_rng(1)
    g, w, reps = 30, 7, 400
    blocks = np.repeat(np.arange(g), w)
    p_blk, p_nw, p_iid = [], [], []
    for _ in range(reps):
        shared = np.repeat(rng.normal(size=g), w)
        a = 2.0 + shared + rng.normal(size=g * w)
        b = 2.0 + 0.3 * shared + rng.normal(size=g * w)
        p_blk.append(M.diebold_mariano(a, b, blocks)["pvalue"])
        p_iid.append(M.diebold_mariano(a, b, lag=0)["pvalue"])
        ar = np.zeros(g * w)  # AR(1) loss differences for Newey-West
        eps = rng.normal(size=g * w)
        for t in range(1, g * w):
            ar[t] = 0.5 * ar[t - 1] + eps[t]
        p_nw.append(M.diebold_mariano(ar, np.zeros(g * w), lag=12)["pvalue"])
    p_blk, p_nw, p_iid = map(np.array, (p_blk, p_nw, p_iid))
    assert 0.01 <= (p_blk < 0.05).mean() <= 0.10
    assert 0.42 <= p_blk.mean() <= 0.58
    assert 0.01 <= (p_nw < 0.05).mean() <= 0.12
    assert (p_iid < 0.05).mean() > 0.12  # design effect ~2.2 here: ~0.19 expected
    # and it detects a real difference
    a = 2.0 + rng.normal(size=g * w)
    assert M.diebold_mariano(a, a + 0.5 + 0.1 * rng.normal(size=g * w), blocks)["pvalue"] < 1e-6


def _pred(root, quad, occ, mu, alpha=None):
    return SimpleNamespace(root_probs=root, quad_probs=quad, occur_probs=occ, total_mean=mu, alpha=alpha)


def test_score_all_values_days_and_nan_errors():
    rng = np.random.default_rng(0)
    n = 12
    counts = rng.poisson(0.4, size=(n, 20, 4))
    counts[:3] = 0  # three days without events
    root = rng.dirichlet(np.ones(20), size=n)
    quad = rng.dirichlet(np.ones(4), size=n)
    mu = np.full(n, 30.0)
    occ = 1 - np.exp(-mu[:, None] * root)
    preds = {"a": _pred(root, quad, occ, mu, np.full(n, 0.2)), "b": _pred(root, quad, occ, mu)}
    blocks = M.country_week_blocks(np.zeros(n, int), np.arange(n))
    s = M.score_all(preds, counts, blocks=blocks)
    root_n, y = counts.sum(-1), counts.sum((1, 2))
    has = y > 0
    a = s["a"]
    assert a["days"] == 12 and a["days_scored"] == 9
    assert a["log_loss"] == pytest.approx(M.log_loss(root_n, root)[has].mean(), rel=1e-12)
    assert a["brier"] == pytest.approx(M.brier(root_n, root)[has].mean(), rel=1e-12)
    assert a["quad_kl"] == pytest.approx(M.quad_kl(counts.sum(-2), quad)[has].mean(), rel=1e-12)
    assert a["count_crps"] == pytest.approx(M.count_crps(y, mu, 0.2).mean(), rel=1e-12)
    assert a["count_nll"] == pytest.approx(M.count_nll(y, mu, 0.2).mean(), rel=1e-12)
    assert a["coverage80"] == pytest.approx(M.interval_coverage(y, mu, 0.2).mean())
    assert a["ece"] == pytest.approx(M.reliability(root_n > 0, occ)["ece"])
    assert s["b"]["count_nll"] == pytest.approx(-stats.poisson.logpmf(y, 30.0).mean(), rel=1e-10)
    lo, hi = a["log_loss_ci"]
    assert lo < a["log_loss"] < hi
    with pytest.raises(M.ScoreError, match="log_loss_ci is undefined"):
        M.score_all(preds, counts, blocks=np.zeros(n, int))
    # a NaN forecast names the method and the metric
    bad = _pred(np.where(np.arange(20) == 0, np.nan, root), quad, occ, mu)
    with pytest.raises(M.ScoreError, match="bad: log_loss is nan"):
        M.score_all({"bad": bad}, counts)
    # no day with events: the event-mix scores are undefined, the count scores are not
    three = _pred(root[:3], quad[:3], occ[:3], mu[:3])
    with pytest.raises(M.ScoreError, match="log_loss is undefined: none of the 3 target days"):
        M.score_all({"a": three}, counts[:3])
    with pytest.raises(ValueError, match="a: root_probs has 12 rows, 3 target days"):
        M.score_all({"a": preds["a"]}, counts[:3])
    only = M.score_all({"a": three}, counts[:3], metrics=("count_crps", "ece"))
    assert only["a"]["days_scored"] == 0 and only["a"]["count_crps"] > 0
    with pytest.raises(ValueError, match="unknown metric"):
        M.score_all(preds, counts, metrics=("auc",))
    # compare: the DM test on the days both are defined, antisymmetric
    other = _pred(rng.dirichlet(np.ones(20), size=n), quad, occ, mu)
    ab = M.compare(preds["a"], other, counts, blocks)
    ba = M.compare(other, preds["a"], counts, blocks)
    assert ab["n"] == 9 and ab["stat"] == pytest.approx(-ba["stat"]) and ab["pvalue"] == pytest.approx(ba["pvalue"])
