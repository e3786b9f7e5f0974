"""The forecast engine pieces the experiment calls: rolling targets and rolling prediction
(:mod:`wgf_cli.forecast.rolling`), the network factory, the prior fit, the single-process
distributed set-up and the one EWMA kernel shared by the prior and the baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wgf_cli.forecast import baselines as B
from wgf_cli.forecast import prior as P
from wgf_cli.forecast.data import SequenceData, load_build
from wgf_cli.forecast.distributed import setup_distributed
from wgf_cli.forecast.factory import architecture, new_forecaster
from wgf_cli.forecast.rolling import Refit, predict_rolling, rolling_targets
from wgf_cli.forecast.train import TrainConfig, predict

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt_train_build"
CONTEXT = 20
ARCH = {"d_model": 16, "ff": 32, "layers": 1, "prior": False}


@pytest.fixture(scope="module")
def build():
    return load_build(FIXTURE, CONTEXT)


@pytest.fixture(scope="module")
def clim(build):
    train = SequenceData(build, "train", CONTEXT)
    return B.climatology_tables(build, int(train.target_day.max()), 2)


def test_rolling_targets_are_every_observed_day_in_range_in_day_order(build):
    n_d = len(build.days)
    c, d = rolling_targets(build, n_d - 30, CONTEXT, n_d - 5)
    want = {(int(i), int(t)) for t in range(n_d - 30, n_d - 4) for i in np.flatnonzero(build.observed[:, t])}
    assert set(zip(c.tolist(), d.tolist(), strict=True)) == want and len(c) == len(want)
    assert np.all(np.diff(d) >= 0) and c.dtype == d.dtype == np.int64
    c2, d2 = rolling_targets(build, 0, CONTEXT)
    assert d2.min() >= CONTEXT and d2.max() == n_d - 1


def test_factory_is_seeded_and_keeps_only_model_fields(build, clim):
    assert architecture({"d_model": 8, "not_a_field": 1}) == {"d_model": 8}
    a = new_forecaster(build, clim, CONTEXT, ARCH, seed=3)
    b = new_forecaster(build, clim, CONTEXT, ARCH, seed=3)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    assert a.cfg.context == CONTEXT and a.cfg.d_model == 16
    assert new_forecaster(build, clim, CONTEXT, ARCH, dtype=torch.float64).cfg.d_model == 16
    assert next(new_forecaster(build, clim, CONTEXT, ARCH, dtype=torch.float64).parameters()).dtype == torch.float64


def test_predict_rolling_without_refit_equals_predict(build, clim):
    c, d = rolling_targets(build, len(build.days) - 12, CONTEXT)
    test = SequenceData(build, "test", CONTEXT, targets=(c, d))
    net = new_forecaster(build, clim, CONTEXT, ARCH, seed=0)
    preds = predict_rolling({"model": net}, build, test, CONTEXT)
    ref = predict(net, test)
    np.testing.assert_array_equal(preds["model"].root_probs, ref["root_probs"])
    np.testing.assert_array_equal(preds["model"].total_mean, ref["total_mean"])
    assert preds["model"].name == "model"


def test_refit_changes_only_the_blocks_after_the_first(build, clim):
    c, d = rolling_targets(build, len(build.days) - 12, CONTEXT)
    test = SequenceData(build, "test", CONTEXT, targets=(c, d))
    plain = predict_rolling({"model": new_forecaster(build, clim, CONTEXT, ARCH, seed=0)}, build, test, CONTEXT)
    refit = Refit(every=4, window=10, steps=2, lr=1e-2, configs={"model": TrainConfig(batch_size=8)})
    tuned = predict_rolling({"model": new_forecaster(build, clim, CONTEXT, ARCH, seed=0)}, build, test, CONTEXT,
                            refit=refit)
    first = np.isin(d, np.unique(d)[:4])
    np.testing.assert_array_equal(tuned["model"].root_probs[first], plain["model"].root_probs[first])
    assert not np.array_equal(tuned["model"].root_probs[~first], plain["model"].root_probs[~first])


def test_fit_prior_is_tune_then_build_prior(build, clim):
    val = SequenceData(build, "validation", CONTEXT)
    days = np.unique(val.target_day.numpy())
    last = int(clim["last_train_day"])
    pr = P.fit_prior(build, clim["cells"], clim["total"], last, days)
    counts = build.counts.reshape(*build.total.shape, 80)
    week = build.weekday(extra=1)
    params = P.tune(counts, build.total, build.observed, week, clim["cells"], clim["total"], last, days)
    ref = P.build_prior(counts, build.total, build.observed, week, clim["cells"], clim["total"], params, last)
    assert pr.params == params
    np.testing.assert_array_equal(pr.cells, ref.cells)
    np.testing.assert_array_equal(pr.mu, ref.mu)


def test_single_process_distributed_setup(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert setup_distributed("cpu") == (0, 1, "cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert setup_distributed("cuda") == (0, 1, "cuda")


def test_ewma_sums_is_the_direct_sum_and_weighted_history_uses_it():
    rng = np.random.default_rng(1)
    x = rng.poisson(2.0, (3, 25, 4)).astype(float)
    y = P.ewma_sums(x, 4.0)
    r = 0.5 ** (1 / 4.0)
    assert y.shape == (3, 26, 4)
    for d in range(26):
        ref = sum((r ** (d - 1 - s) * x[:, s] for s in range(d)), np.zeros((3, 4)))
        np.testing.assert_allclose(y[:, d], ref, rtol=1e-12, atol=1e-12)
    # every day observed: the prior's history is the calendar EWMA, bit for bit
    s, w = P.weighted_history(x, np.ones((3, 25), bool), 4.0)
    np.testing.assert_array_equal(s, y)
    np.testing.assert_array_equal(w, P.ewma_sums(np.ones((3, 25)), 4.0))
    # a country never observed has an empty history
    obs = np.ones((3, 25), bool)
    obs[1] = False
    s, w = P.weighted_history(x, obs, 4.0)
    assert not s[1].any() and not w[1].any()
    np.testing.assert_array_equal(s[0], y[0])
