"""Descriptors (counts, Goldstein moments, membership, partners, lag rule, points on the
sphere), the embeddings and the sequence sampler, against hand computations and a float64
NumPy reference of the weighted spherical k-means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from wgf_cli.gdelt import descriptors as Dm
from wgf_cli.gdelt import embed, sequences


def _events(rows):
    cols = ["SQLDATE", "DATEADDED", "EventCode", "EventRootCode", "QuadClass", "GoldsteinScale",
            "Actor1Geo_CountryCode", "Actor2Geo_CountryCode"]
    df = pd.DataFrame(rows, columns=cols)
    a1, a2 = df["Actor1Geo_CountryCode"], df["Actor2Geo_CountryCode"]
    flag = [None if (pd.isna(x) or pd.isna(y)) else int(x != y) for x, y in zip(a1, a2, strict=True)]
    df["Multi_Country_Flag"] = pd.array(flag, dtype="Int8")
    return df


VOCAB = Dm.vocabulary(embed.HashEmbedder(32))


def test_counts_moments_membership_partners():
    ev = _events([
        (20200101, 20200101, "043", "04", 1, 2.8, "US", "RS"),
        (20200101, 20200101, "190", "19", 4, -10.0, "US", "US"),    # counted once for US
        (20200101, 20200102, "0874", "08", 2, 10.0, None, "US"),
        (20200102, 20200102, "043", "04", 1, 2.8, "RS", None),
        (20200102, 20200102, "112", "11", 3, -2.0, "UP", "RS"),
        (20191120, 20200102, "043", "04", 1, 2.8, "US", None),     # 43 days late: too old
        (20200103, 20200103, "010", "01", 1, 0.0, None, None),      # no country
        (20200102, 20200102, "042", "04", 1, 1.9, "US", "RS"),
        (20200102, 20200102, "042", "04", 1, 1.9, "US", "UP"),
        (20200102, 20200102, "042", "04", 1, 1.9, "US", "UP"),
    ])
    days = Dm.day_range(20200101, 20200103)
    d = Dm.compute(ev, VOCAB, days=days, observed_days=np.array([20200101, 20200102]), k=3, max_lag=30,
                   country_by="actor")
    assert list(d.countries) == ["RS", "UP", "US"]
    us, rs, up = 2, 0, 1
    assert d.diagnostics["too_old"] == 1
    assert d.total[us].tolist() == [3, 3, 0] and d.total[rs].tolist() == [1, 3, 0] and d.total[up].tolist() == [0, 3, 0]
    assert d.counts[us, 0, 3, 0] == 1 and d.counts[us, 0, 18, 3] == 1 and d.counts[us, 0, 7, 1] == 1
    np.testing.assert_array_equal(d.total, d.counts.sum((2, 3)))
    g = np.array([2.8, -10.0, 10.0])
    np.testing.assert_allclose(d.goldstein_mean[us, 0], g.mean(), rtol=1e-6)
    np.testing.assert_allclose(d.goldstein_std[us, 0], g.std(ddof=1), rtol=1e-6)
    assert d.goldstein_std[rs, 0] == 0 and d.goldstein_mean[us, 2] == 0
    np.testing.assert_allclose(d.multi_frac[us, 0], 1 / 3, rtol=1e-6)     # US-RS yes, US-US no, None-US null
    # partners: the actor geo countries of the day's events, the focal country itself (domestic)
    # included: US on day 1 has (US, RS), (US, UP) x 2 -> US 3, UP 2, RS 1
    assert list(d.partners[us, 1]) == ["US", "UP", "RS"] and d.partner_counts[us, 1].tolist() == [3, 2, 1]
    assert list(d.partners[rs, 1]) == ["RS", "UP", "US"] and d.partner_counts[rs, 1].tolist() == [3, 1, 1]
    assert list(d.partners[us, 0]) == ["US", "RS", ""] and d.partner_counts[us, 0].tolist() == [3, 1, 0]
    assert d.observed[:, :2].all() and not d.observed[:, 2].any()
    # points: unit vectors, weights summing to 1 on days with events, zero elsewhere
    w = d.weights
    np.testing.assert_allclose(w[d.total > 0].sum(-1), 1.0, rtol=1e-6)
    assert (w[d.total == 0] == 0).all() and (d.points[d.total == 0] == 0).all()
    norms = np.linalg.norm(d.points.astype(np.float32), axis=-1)
    np.testing.assert_allclose(norms[w > 0], 1.0, atol=2e-3)
    # a day with <= k distinct events keeps them exactly, weighted by their counts
    up_day = ev.iloc[[4, 8, 9]]
    vec = VOCAB.event_vectors(up_day["EventCode"].tolist(), up_day["Actor1Geo_CountryCode"].tolist(),
                              up_day["Actor2Geo_CountryCode"].tolist())
    np.testing.assert_allclose(sorted(w[up, 1][w[up, 1] > 0]), [1 / 3, 2 / 3], rtol=1e-6)
    top = d.points[up, 1, 0].astype(np.float32)
    np.testing.assert_allclose(top, vec[1], atol=2e-3)
    assert d.nearest[up, 1, 0] in {"042", "04", "040", "043"}


def test_dateadded_day_key():
    ev = _events([(20191120, 20200102, "043", "04", 1, 2.8, "US", None),
                  (20200101, 20200101, "043", "04", 1, 2.8, "US", None)])
    d = Dm.compute(ev, VOCAB, days=Dm.day_range(20200101, 20200102), observed_days=np.array([20200101]), k=3,
                   day_key="dateadded", country_by="actor")
    assert d.total[0].tolist() == [1, 1] and d.diagnostics["too_old"] == 0


def numpy_spherical_kmeans(x, w, k, iters):
    """float64 reference of the documented algorithm, one problem at a time."""
    n = len(x)
    chosen = []
    best = np.full(n, -2.0)
    score = w.copy()
    for _ in range(k):
        i = int(np.argmax(score))
        chosen.append(i)
        best = np.maximum(best, x @ x[i])
        score = w * np.clip(1 - best, 0, None)
        score[chosen] = -1
    c = x[chosen].copy()
    for _ in range(iters + 1):
        a = np.argmax(x @ c.T, axis=1)
        mass = np.bincount(a, w, minlength=k)
        s = np.zeros_like(c)
        np.add.at(s, a, x * w[:, None])
        nrm = np.linalg.norm(s, axis=1, keepdims=True)
        c = np.where(nrm > 1e-12, s / np.maximum(nrm, 1e-12), c)
    return c, mass


def test_spherical_kmeans_matches_numpy_reference():
    rng = np.random.default_rng(0)
    B, n, E, k = 4, 40, 8, 5
    x = rng.normal(size=(B, n, E))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    w = rng.integers(1, 6, size=(B, n)).astype(float)
    w[1, 30:] = 0                       # padding rows
    x[1, 30:] = 0
    c, m = Dm.spherical_kmeans(torch.from_numpy(x), torch.from_numpy(w), k, 6)
    for b in range(B):
        keep = w[b] > 0
        rc, rm = numpy_spherical_kmeans(x[b][keep], w[b][keep], k, 6)
        np.testing.assert_allclose(c[b].numpy(), rc, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m[b].numpy(), rm, rtol=1e-12)
        np.testing.assert_allclose(m[b].sum().item(), w[b].sum(), rtol=1e-12)


def test_hash_embedding_deterministic_unit_and_similar():
    e = embed.HashEmbedder(64)
    v = e.encode(["Make an appeal or request", "Make an appeal or request", "Use conventional military force"])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(v[0], v[1])
    np.testing.assert_array_equal(v[0], embed.HashEmbedder(64).encode(["Make an appeal or request"])[0])
    wide = embed.HashEmbedder(1024)   # few bucket collisions: shared words and 3-grams correlate
    x = wide.encode(["Make an appeal or request", "Use conventional military force", "Appeal for material aid"])
    assert x[0] @ x[2] > 0.2 and abs(x[1] @ x[2]) < 0.15


def test_event_vector_composition_and_phrase():
    ev = VOCAB.event_vectors(["043"], ["UP"], ["RS"])[0]
    i = VOCAB.codes.index("043")
    c1 = VOCAB.country_vectors[VOCAB.country_codes.index("UP")]
    c2 = VOCAB.country_vectors[VOCAB.country_codes.index("RS")]
    want = embed.W_CODE * VOCAB.code_vectors[i] + embed.W_ACTOR * (c1 + c2)
    np.testing.assert_allclose(ev, want / np.linalg.norm(want), rtol=1e-5)
    names = {"UP": "Ukraine", "RS": "Russia"}
    assert VOCAB.phrase("043", "UP", "RS", names) == "Ukraine \u2014 Host a visit \u2014 Russia"
    assert VOCAB.phrase("043", "UP", None, names) == "Ukraine \u2014 Host a visit"
    assert len(VOCAB.codes) == 311 and len(VOCAB.country_codes) > 240


def test_vocabulary_cache(tmp_path):
    a = Dm.vocabulary(embed.HashEmbedder(16), cache=tmp_path)
    files = list(tmp_path.glob("vocab_hash_16_*.npz"))
    assert len(files) == 1
    b = Dm.vocabulary(embed.HashEmbedder(16), cache=tmp_path)
    np.testing.assert_array_equal(a.code_vectors, b.code_vectors)


def test_sequences_never_cross_missing_days_and_split_by_time():
    C, D, ctx = 3, 120, 10
    observed = np.ones((C, D), bool)
    observed[:, 40] = False
    observed[1, 90] = False
    days = Dm.day_range(20200101, 20200429)
    s = sequences.sample(observed, np.array(["AA", "BB", "CC"]), days, count=200, context=ctx, seed=4)
    idx = s.index
    assert len(idx) == 200 and idx["seq_id"].tolist() == list(range(200))
    for c, st in zip(idx["country_idx"], idx["start"], strict=True):
        assert observed[c, st: st + ctx + 1].all()
    t = idx["start"] + ctx
    tr, va, te = (t[idx["split"] == x] for x in ("train", "validation", "test"))
    assert tr.max() < va.min() and va.max() < te.min()
    assert s.splits["test"][0] == int(days[te.min()]) and s.splits["train"][1] == int(days[tr.max()])
    # brute-force count of valid windows
    n_valid = sum(observed[c, st: st + ctx + 1].all() for c in range(C) for st in range(D - ctx))
    assert sum(s.available.values()) == n_valid
    s2 = sequences.sample(observed, np.array(["AA", "BB", "CC"]), days, count=200, context=ctx, seed=4)
    pd.testing.assert_frame_equal(idx, s2.index)
    big = sequences.sample(observed, np.array(["AA", "BB", "CC"]), days, count=10**6, context=ctx)
    assert len(big.index) == n_valid and not big.index.duplicated(["country_idx", "start"]).any()
