"""The exponentially weighted prior against a direct float64 loop, its causality, and a
prior-based model that starts as its prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wgf_cli.forecast import prior as P
from wgf_cli.forecast.data import SequenceData, load_build
from wgf_cli.forecast.model import Forecaster, ModelConfig

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt_train_build"


def test_weighted_history_equals_a_direct_sum_and_skips_missing_days():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (2, 30, 3)).astype(float)
    obs = rng.random((2, 30)) > 0.2
    s, w = P.weighted_history(x, obs, half_life=3.0)
    r = 0.5 ** (1 / 3.0)
    for c in range(2):
        for d in range(31):
            past = [e for e in range(d) if obs[c, e]]
            age = {e: int(obs[c, e + 1: d].sum()) for e in past}   # observed days since e
            ref = sum(r ** age[e] * x[c, e] for e in past) if past else np.zeros(3)
            np.testing.assert_allclose(s[c, d], ref, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(w[c, d], sum(r ** age[e] for e in past), rtol=1e-12, atol=1e-12)


def test_prior_is_causal_and_a_model_with_prior_starts_as_it():
    build = load_build(FIXTURE)
    counts = build.counts.reshape(*build.total.shape, 80)
    clim = np.full((build.n_countries, 80), 1 / 80)
    week = build.weekday(extra=1)
    params = P.PriorParams(half_life=5.0, shrink=10.0, total_half_life=7.0, alpha=0.2)
    pr = P.build_prior(counts, build.total, build.observed, week, clim, build.total.mean(1), params, 100)
    t = 120
    later = counts.copy()
    later[:, t:] = 7
    pr2 = P.build_prior(later, later.sum(-1), build.observed, week, clim, build.total.mean(1), params, 100)
    np.testing.assert_array_equal(pr.cells[:, : t + 1], pr2.cells[:, : t + 1])
    np.testing.assert_allclose(pr.cells.sum(-1), 1.0, rtol=1e-5)
    torch.manual_seed(0)
    model = Forecaster(ModelConfig(build.n_countries, build.dim, build.k, 50, d_model=16, ff=32, layers=1,
                                   prior=True))
    model.init_biases(torch.full((80,), 1 / 80), 50.0, alpha=0.2)
    data = SequenceData(build, "test", 50, prior=pr)
    batch = data.batch([0, 1, 2])
    out = model(batch)
    c, day = data.country[:3].numpy(), data.target_day[:3].numpy()
    torch.testing.assert_close(torch.softmax(out.cell_logits[:, -1], -1), torch.as_tensor(pr.cells[c, day]),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.log_mu[:, -1].exp(), torch.as_tensor(pr.mu[c, day]), rtol=1e-5, atol=1e-5)
