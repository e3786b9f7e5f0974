"""The test-side generator's oracle is the exact forward filter: compared with brute-force
enumeration of all regime paths on a short chain."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
import gdelt_train_synth as G  # noqa: E402


def test_forward_filter_matches_enumeration():
    rng = np.random.default_rng(0)
    days = 5
    mu = rng.uniform(0.5, 3.0, size=(days, 3, 20))
    counts = rng.poisson(mu[:, 1])
    observed = np.array([True, True, False, True, True])
    q = G.forward_filter(counts, mu, observed)
    evals, evecs = np.linalg.eig(G.TRANSITION.T)
    stat = np.real(evecs[:, np.argmin(np.abs(evals - 1))])
    stat /= stat.sum()
    for d in range(days):
        post = np.zeros(3)
        for path in itertools.product(range(3), repeat=d + 1):
            w = stat[path[0]]
            for t in range(1, d + 1):
                w *= G.TRANSITION[path[t - 1], path[t]]
            for t in range(d):  # evidence of the days before d
                if observed[t]:
                    w *= np.prod(stats.poisson.pmf(counts[t], mu[t, path[t]]))
            post[path[d]] += w
        np.testing.assert_allclose(q[d], post / post.sum(), rtol=1e-9)


def test_generated_build_follows_the_contract(tmp_path):
    out = G.generate(tmp_path / "b", countries=3, days=120, k=4, dim=8, sequences=100, seed=3)
    d = np.load(out / "descriptors" / "descriptors.npz")
    o = np.load(out / "oracle.npz")
    assert d["counts"].shape == (3, 120, 20, 4) and d["points"].dtype == np.float16
    np.testing.assert_array_equal(d["total"], d["counts"].sum((2, 3)))
    w = d["weights"]
    np.testing.assert_allclose(w.sum(-1)[d["total"] > 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(o["root_probs"].sum(-1), 1.0, rtol=1e-12)
