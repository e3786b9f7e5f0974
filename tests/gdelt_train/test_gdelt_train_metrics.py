"""Scores against hand-computed values and independent formulas (scipy, sklearn by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from wgf_cli.forecast import scores as M
from wgf_cli.forecast.model import count_nll, occurrence_probs


def test_rouge_hand_computed():
    cand = ["Georgia — Appeal — Russia"]          # georgia appeal russia
    ref = ["Georgia — Consult — Russia", "Georgia — Appeal"]  # georgia consult russia georgia appeal
    r = M.rouge(cand, ref)
    # unigrams: overlap georgia(1) appeal(1) russia(1) = 3; P = 3/3, R = 3/5 -> F = 0.75
    assert r["rouge1"] == pytest.approx(0.75)
    # bigrams cand: (georgia appeal) (appeal russia); ref: (georgia consult) (consult russia)
    # (russia georgia) (georgia appeal): overlap 1; P = 1/2, R = 1/4 -> F = 1/3
    assert r["rouge2"] == pytest.approx(1 / 3)
    # LCS of [georgia appeal russia] and [georgia consult russia georgia appeal] = 2
    # P = 2/3, R = 2/5 -> F = 0.5
    assert r["rougeL"] == pytest.approx(0.5)
    assert M.rouge(ref, ref) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert M.rouge([], ref)["rouge1"] == 0.0


def test_rouge_clips_repeated_ngrams():
    # cand "a a a a" vs ref "a b": clipped overlap 1, P = 1/4, R = 1/2 -> F = 1/3
    assert M.rouge_n(["a"] * 4, ["a", "b"], 1) == pytest.approx(1 / 3)
    assert M.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # textbook example (CLRS)


def test_lcs_length_is_the_quadratic_tables():
    def table(a, b):
        prev = [0] * (len(b) + 1)
        for x in a:
            cur = [0]
            for j, y in enumerate(b):
                cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
            prev = cur
        return prev[-1]

    rng = np.random.default_rng(0)
    for _ in range(500):
        a = list(rng.choice(list("abcde"), rng.integers(0, 40)))
        b = list(rng.choice(list("abcdef"), rng.integers(0, 90)))
        assert M.lcs_length(a, b) == table(a, b)


def test_log_loss_brier_quad_kl_by_hand():
    n = np.zeros((2, 20))
    n[0, 3], n[0, 0] = 3, 1
    p = np.full((2, 20), 0.5 / 18)
    p[:, 3], p[:, 0] = 0.3, 0.2
    ll = M.log_loss(n, p)
    assert ll[0] == pytest.approx(-(3 * math.log(0.3) + math.log(0.2)) / 4)
    assert np.isnan(ll[1])
    emp = n[0] / 4
    assert M.brier(n, p)[0] == pytest.approx(((p[0] - emp) ** 2).sum())
    q = np.array([[0.4, 0.3, 0.2, 0.1]])
    m = np.array([[2, 2, 0, 0]])
    assert M.quad_kl(m, q)[0] == pytest.approx(0.5 * math.log(0.5 / 0.4) + 0.5 * math.log(0.5 / 0.3))


def test_multilabel_and_reliability():
    occ = np.array([[1, 0, 1], [0, 0, 1]])
    prob = np.array([[0.9, 0.6, 0.2], [0.1, 0.4, 0.7]])
    s = M.multilabel_scores(occ, prob)
    # predicted sets {0,1}, {2}; tp = 2 (0 in row 0, 2 in row 1), fp = 1, fn = 1 -> F1 = 2/3
    assert s["f1_micro"] == pytest.approx(2 / 3)
    assert s["hamming"] == pytest.approx(2 / 6)
    r = M.reliability(occ, prob, bins=2)
    # bin [0, .5): p = .2 .1 .4 (o = 1 0 0); bin [.5, 1]: p = .9 .6 .7 (o = 1 0 1)
    np.testing.assert_allclose(r["mean"], [0.7 / 3, 2.2 / 3])
    np.testing.assert_allclose(r["freq"], [1 / 3, 2 / 3])
    assert r["ece"] == pytest.approx(0.5 * abs(1 / 3 - 0.7 / 3) + 0.5 * abs(2 / 3 - 2.2 / 3))


def test_negative_binomial_nll_against_scipy():
    n = torch.tensor([0.0, 1, 5, 40, 200], dtype=torch.float64)
    mu, alpha = 30.0, 0.2
    got = count_nll(n, torch.full_like(n, math.log(mu)), torch.full_like(n, math.log(alpha)))
    r = 1 / alpha
    ref = -stats.nbinom.logpmf(n.numpy(), r, r / (r + mu))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)
    pois = count_nll(n, torch.full_like(n, math.log(mu)), torch.zeros_like(n), "poisson")
    np.testing.assert_allclose(pois.numpy(), -stats.poisson.logpmf(n.numpy(), mu), rtol=1e-10)


def test_occurrence_probability_of_thinned_negative_binomial():
    p = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    mu, alpha = torch.tensor([4.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    got = occurrence_probs(p, mu, alpha).numpy()[0]
    r = 1 / 0.5
    ref = [1 - stats.nbinom.pmf(0, r, r / (r + 4.0 * pi)) for pi in (0.5, 0.3, 0.2)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(occurrence_probs(p, mu, None, "poisson").numpy()[0],
                               1 - np.exp(-4.0 * p.numpy()[0]), rtol=1e-12)


def test_mean_kl_to_the_oracle_against_scipy():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(20), size=6)
    q = rng.dirichlet(np.ones(20), size=6)
    p[0, :3] = 0.0  # zero oracle probabilities contribute nothing
    p[0] /= p[0].sum()
    want = np.mean([stats.entropy(p[i], q[i]) for i in range(6)])
    assert M.mean_kl(p, q) == pytest.approx(want, rel=1e-12)
    assert M.mean_kl(p, p) == pytest.approx(0.0, abs=1e-15)
    assert M.mean_kl(p, q) > 0
