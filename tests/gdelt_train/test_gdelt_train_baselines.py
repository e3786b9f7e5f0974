"""Baselines against hand computations and independent loops: the past only, missing days
skipped, the closed-form occurrence of a thinned negative binomial, Dirichlet-multinomial
concentration and NB-regression maximum likelihood recovered on simulated data, and the
fitted set on a synthetic build (tolerances stated at each assertion)."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from wgf_cli.forecast import baselines as B
from wgf_cli.forecast import scores as M
from wgf_cli.forecast.data import GdeltBuild, SequenceData, StandardEvents, load_build

sys.path.insert(0, str(Path(__file__).parent))
import gdelt_train_synth as G  # noqa: E402


def make_build(counts: np.ndarray, observed: np.ndarray | None = None, k: int = 2,
               dim: int = 3) -> GdeltBuild:
    """An in-memory build of cells ``counts`` [C, D, 20, 4] (points: a marker of the day)."""
    counts = np.asarray(counts, dtype=np.int32)
    n_c, n_d = counts.shape[:2]
    observed = np.ones((n_c, n_d), bool) if observed is None else observed
    days = np.array([int((date(2020, 1, 6) + timedelta(days=i)).strftime("%Y%m%d"))
                     for i in range(n_d)])  # 2020-01-06 is a Monday
    pts = np.zeros((n_c, n_d, k, dim), np.float16)
    pts[..., 0] = np.arange(n_d)[None, :, None] % 100  # the day, to check which clouds are used
    w = np.full((n_c, n_d, k), 1.0 / k, np.float32)
    z = np.zeros((n_c, n_d), np.float32)
    std = StandardEvents(*(np.zeros(1) for _ in range(6)))
    return GdeltBuild(Path("."), {"context": 5}, np.array([f"C{i}" for i in range(n_c)]), days,
                      counts, counts.sum((2, 3)), z, z, z, observed, pts, w,
                      np.full((n_c, n_d, 3), ""), std, pd.DataFrame(), None)


def random_build(n_c=3, n_d=60, rate=20.0, seed=0, observed=None) -> GdeltBuild:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(80, 0.5), size=(n_c, n_d))
    counts = rng.poisson(rate * p).reshape(n_c, n_d, 20, 4)
    return make_build(counts, observed)


def clim_of(b: GdeltBuild, last: int) -> dict:
    return B.climatology_tables(b, last, cloud_days=2)


def test_persistence_and_moving_average_skip_missing_days():
    b = random_build()
    obs = b.observed
    obs[0, 18] = obs[0, 16] = False  # day 19's last observed days are 17, 15, 14
    b.counts[0, 18] = 500  # never read: the day is missing, not a day with 500 events
    clim = clim_of(b, 10)
    cells = b.counts.reshape(3, -1, 80).astype(float)
    t = B.Targets(b, [0, 1], [19, 19])
    s = 7.0
    p = B.moving_average(t, clim, 1, s, "persistence")
    want = (cells[0, 17] + s * clim["cells"][0]) / (cells[0, 17].sum() + s)
    np.testing.assert_allclose(p.cell_probs[0], want, rtol=1e-12)
    assert p.total_mean[0] == pytest.approx(max(b.total[0, 17], 0.1))
    assert np.all(p.cloud_x[0, :, 0] == 17)
    m = B.moving_average(t, clim, 3, s)
    h = cells[0, [17, 15, 14]].sum(0)
    np.testing.assert_allclose(m.cell_probs[0], (h + s * clim["cells"][0]) / (h.sum() + s), rtol=1e-12)
    assert m.total_mean[0] == pytest.approx(b.total[0, [17, 15, 14]].mean())
    h1 = cells[1, 16:19].sum(0)  # the other country is fully observed
    np.testing.assert_allclose(m.cell_probs[1], (h1 + s * clim["cells"][1]) / (h1.sum() + s), rtol=1e-12)
    np.testing.assert_allclose(m.root_probs, m.cell_probs.reshape(2, 20, 4).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(m.quad_probs, m.cell_probs.reshape(2, 20, 4).sum(-2), rtol=1e-12)
    # no history at all: climatology
    p0 = B.moving_average(B.Targets(b, [2], [0]), clim, 3, s)
    np.testing.assert_allclose(p0.cell_probs[0], clim["cells"][2], rtol=1e-12)
    assert p0.total_mean[0] == pytest.approx(clim["total"][2])


def test_ewma_and_recurrency_equal_a_direct_loop():
    obs = np.ones((3, 60), bool)
    obs[1, 30:33] = False
    b = random_build(observed=obs)
    clim = clim_of(b, 25)
    cells = b.counts.reshape(3, -1, 80).astype(float)
    c, t = np.array([0, 1, 1, 2]), np.array([40, 33, 34, 1])
    hl, s, lhl = 3.0, 15.0, 5.0
    p = B.ewma(B.Targets(b, c, t), clim, hl, s, lhl)
    r = B.recurrency(B.Targets(b, c, t), clim, 2.0, 4.0, lhl)
    for i, (cc, tt) in enumerate(zip(c, t, strict=True)):
        days = [d for d in range(tt) if obs[cc, d]]
        w = np.array([0.5 ** ((tt - 1 - d) / hl) for d in days])
        h = (w[:, None] * cells[cc, days]).sum(0) if days else np.zeros(80)
        np.testing.assert_allclose(p.cell_probs[i], (h + s * clim["cells"][cc]) / (h.sum() + s), rtol=1e-10)
        wl = np.array([0.5 ** ((tt - 1 - d) / lhl) for d in days])
        lev = (wl * b.total[cc, days]).sum() / wl.sum()
        assert p.total_mean[i] == pytest.approx(max(lev, 0.1), rel=1e-10)
        wr = np.array([0.5 ** ((tt - 1 - d) / 2.0) for d in days])
        occ = (wr[:, None] * (b.counts[cc, days].sum(-1) > 0)).sum(0)
        want = (occ + 4.0 * clim["occur"][cc]) / (wr.sum() + 4.0)
        np.testing.assert_allclose(r.occur_probs[i], want, rtol=1e-10)
        rate = -np.log1p(-want)
        np.testing.assert_allclose(r.root_probs[i], rate / rate.sum(), rtol=1e-9)


def test_same_weekday_takes_the_latest_observed_same_weekday():
    obs = np.ones((1, 40), bool)
    obs[0, 23] = False  # target 30: day 23 missing -> day 16
    b = random_build(n_c=1, n_d=40, observed=obs)
    clim = clim_of(b, 20)
    p = B.same_weekday(B.Targets(b, [0, 0, 0], [30, 31, 3]), clim, 5.0)
    cells = b.counts.reshape(1, -1, 80).astype(float)
    for i, d in enumerate([16, 24]):
        np.testing.assert_allclose(p.cell_probs[i], (cells[0, d] + 5 * clim["cells"][0]) / (cells[0, d].sum() + 5))
        assert p.total_mean[i] == pytest.approx(b.total[0, d])
    np.testing.assert_allclose(p.cell_probs[2], clim["cells"][0])  # no week of history yet


def test_every_baseline_uses_the_past_only_and_forecasts_tomorrow():
    b = random_build(n_d=80, seed=3)
    train = B.Targets(b, np.repeat([0, 1, 2], 35), np.tile(np.arange(10, 45), 3))
    val = B.Targets(b, np.repeat([0, 1, 2], 15), np.tile(np.arange(45, 60), 3))
    clim = clim_of(b, 44)
    fit = B.fit_baselines(train, val, clim, half_lives=(2, 7), windows=(3, 7))
    assert set(fit.predict(B.Targets(b, [0], [70]))) == set(B.BASELINES)
    for cut in (46, 65):  # everything from day `cut` on changed, and partly missing
        b2 = random_build(n_d=80, seed=3)
        b2.counts[:, cut:] = np.random.default_rng(9).poisson(3.0, size=b2.counts[:, cut:].shape)
        b2.total[:] = b2.counts.sum((2, 3))
        b2.observed[:, cut + 3:] = False
        for name in B.BASELINES:
            x = fit[name](B.Targets(b, [0, 1, 2], [cut] * 3))
            y = fit[name](B.Targets(b2, [0, 1, 2], [cut] * 3))
            z = fit[name](B.Targets(b2, [0, 1, 2], [cut + 1] * 3))  # sees the changed day
            for f in ("root_probs", "quad_probs", "occur_probs", "total_mean", "cell_probs"):
                np.testing.assert_allclose(getattr(x, f), getattr(y, f), rtol=1e-12, err_msg=f"{name} {f}")
            if name != "climatology":
                assert not np.allclose(y.cell_probs, z.cell_probs), name
    # tomorrow (day 80) reads day 79 for persistence
    p = fit["persistence"](B.Targets(b, [2], [80]))
    assert np.all(p.cloud_x[0, :, 0] == 79)


def test_occurrence_of_a_thinned_negative_binomial():
    root = np.array([[0.5, 0.3, 0.2] + [0.0] * 17])
    mu, a = np.array([4.0]), np.array([0.5])
    got = B.nb_occurrence(root, mu, a)[0, :3]
    r = 1 / 0.5
    want = [1 - stats.nbinom.pmf(0, r, r / (r + 4.0 * p)) for p in (0.5, 0.3, 0.2)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(B.nb_occurrence(root, mu, None)[0, :3], 1 - np.exp(-4.0 * root[0, :3]))
    # Monte Carlo: an NB total split multinomially (400k draws, 4 standard errors)
    rng = np.random.default_rng(0)
    n = rng.negative_binomial(r, r / (r + 4.0), size=400_000)
    first = rng.binomial(n, 0.5)
    freq = (first > 0).mean()
    assert abs(freq - got[0]) < 4 * np.sqrt(got[0] * (1 - got[0]) / 400_000)


def test_dirichlet_multinomial_loglik_and_concentration():
    rng = np.random.default_rng(0)
    prior = rng.dirichlet(np.ones(80))
    a = 30.0 * prior + rng.uniform(0, 2, size=80)
    n = rng.multinomial(40, rng.dirichlet(a), size=5).astype(float)
    got = B._dm_loglik(n, np.tile(a, (5, 1)))
    coef = stats.multinomial.logpmf(n, 40, np.full(80, 1 / 80)) + 40 * np.log(80)  # log multinomial coefficient
    want = stats.dirichlet_multinomial.logpmf(n, a, 40) - coef
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # kappa recovered from simulated days (grid ratio 1.47): true 50 (country 0) and 1000 (1)
    m = rng.dirichlet(np.full(80, 2.0), size=2)
    rows, who = [], []
    for c, kap in ((0, 50.0), (1, 1000.0)):
        for _ in range(400):
            rows.append(rng.multinomial(60, rng.dirichlet(kap * m[c])))
            who.append(c)
    rows, who = np.array(rows, float), np.array(who)
    kappa = B.fit_concentration(rows, m[who], np.zeros_like(rows), who, 2)
    assert 50 / 1.6 <= kappa[0] <= 50 * 1.6
    assert 1000 / 1.6 <= kappa[1] <= 1000 * 1.6


def _simulate_nb_panel(seed=0, n_c=3, n_d=500):
    """Totals drawn from the NB regression itself, its features computed here directly from
    the past draws (every day observed; a history shorter than the windows uses what there
    is, none the fallback 20)."""
    rng = np.random.default_rng(seed)
    coef = np.array([0.3, 0.25, 0.1, -0.1, 0.0, 0.05, -0.4, -0.3])
    icpt = np.array([0.05, 0.0, -0.05])
    alpha = 0.15
    ys = np.zeros((n_c, n_d))
    feats = np.zeros((n_c, n_d, 9))  # offset, features
    for d in range(n_d):
        hist = ys[:, max(d - 28, 0): d]
        last = ys[:, d - 1] if d else np.full(n_c, 20.0)
        m7 = ys[:, max(d - 7, 0): d].mean(1) if d else last
        m28 = hist.mean(1) if d else m7
        lev = np.log(m28 + 0.5)
        wd = np.eye(7)[d % 7][1:]  # day 0 is a Monday
        feats[:, d] = np.column_stack([lev, np.log(last + 0.5) - lev, np.log(m7 + 0.5) - lev,
                                       np.tile(wd, (n_c, 1))])
        mu = np.exp(lev + icpt + feats[:, d, 1:] @ coef)
        ys[:, d] = rng.negative_binomial(1 / alpha, 1 / (1 + alpha * mu))
    counts = np.zeros((n_c, n_d, 20, 4), np.int32)
    counts[:, :, 0, 0] = ys
    return make_build(counts), feats, coef, icpt, alpha


def test_nb_regression_is_the_maximum_likelihood_and_recovers_the_truth():
    b, feats, coef, icpt, alpha = _simulate_nb_panel()
    fb = np.full(3, 20.0)
    c, t = np.repeat(np.arange(3), 500), np.tile(np.arange(500), 3)
    off, x = B.count_features(b, c, t, fb)
    np.testing.assert_allclose(np.column_stack([off, x]), feats[c, t], rtol=1e-12, atol=1e-12)
    c, t = np.repeat(np.arange(3), 470), np.tile(np.arange(30, 500), 3)
    fit = B.fit_nb_regression(b, c, t, fb, ridge=0.0)
    assert fit.grad_norm < 1e-7
    off, x = B.count_features(b, c, t, fb)
    y = b.total[c, t].astype(float)
    k = x.shape[1]

    def nll(v):  # an independent implementation (scipy) and optimizer (BFGS)
        mu = np.exp(off + v[k + c] + x @ v[:k])
        r = 1 / np.exp(v[-1])
        return -stats.nbinom.logpmf(y, r, r / (r + mu)).mean()

    v0 = np.concatenate([np.zeros(k + 3), [np.log(0.1)]])
    ref = optimize.minimize(nll, v0, method="BFGS", options={"gtol": 1e-8, "maxiter": 2000})
    mine = np.concatenate([fit.coef, fit.intercept, [np.log(fit.alpha)]])
    assert nll(mine) <= ref.fun + 1e-9
    np.testing.assert_allclose(mine, ref.x, atol=2e-3)
    # and near the truth (1410 days: about 3 standard errors)
    np.testing.assert_allclose(fit.coef, coef, atol=0.12)
    np.testing.assert_allclose(fit.intercept, icpt, atol=0.08)
    assert fit.alpha == pytest.approx(alpha, rel=0.35)


def test_level_relative_totals_follow_a_falling_volume():
    # 100 events a day for 120 days, then 20 a day: the count baselines forecast ~20, not 100
    rng = np.random.default_rng(0)
    n_d = 200
    rate = np.where(np.arange(n_d) < 120, 100.0, 20.0)
    p = rng.dirichlet(np.ones(80), size=2)
    counts = rng.poisson(rate[None, :, None] * p[:, None, :]).reshape(2, n_d, 20, 4)
    b = make_build(counts)
    train = B.Targets(b, np.repeat([0, 1], 90), np.tile(np.arange(30, 120), 2))
    val = B.Targets(b, np.repeat([0, 1], 40), np.tile(np.arange(120, 160), 2))
    clim = clim_of(b, 119)
    fit = B.fit_baselines(train, val, clim, half_lives=(3, 14), windows=(7,))
    test = B.Targets(b, np.repeat([0, 1], 40), np.tile(np.arange(160, 200), 2))
    preds = fit.predict(test)
    assert np.median(preds["climatology"].total_mean) > 90
    for name in ("persistence", "moving_average", "ewma", "same_weekday", "dirichlet_eb",
                 "recurrency", "nb_regression"):
        assert 15 < np.median(preds[name].total_mean) < 26, name
        # and the occurrence probabilities stay calibrated (ECE well under the climatology's)
    y = b.counts[test.country, test.target_day]
    sc = M.score_all(preds, y)
    assert sc["ewma"]["ece"] < sc["climatology"]["ece"]
    assert sc["nb_regression"]["count_crps"] < 0.5 * sc["climatology"]["count_crps"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = G.generate(tmp_path_factory.mktemp("b") / "build", countries=6, days=320, k=2, dim=8,
                      sequences=1800, context=20, seed=2)
    b = load_build(root, 20)
    return b, *(SequenceData(b, s, 20) for s in ("train", "validation", "test"))


def test_fit_baselines_on_a_synthetic_build(synth):
    b, train, val, test = synth
    clim = B.climatology_tables(b, int(train.target_day.max()))
    fit = B.fit_baselines(train, val, clim)
    assert fit.names == B.BASELINES
    assert fit.params["moving_average"]["window"] in B.WINDOWS
    assert fit.params["ewma"]["half_life"] in B.HALF_LIVES
    assert fit.params["ewma"]["smoothing"] in B.SMOOTHING_GRID
    assert fit.nb is not None and fit.nb.grad_norm < 1e-6
    preds = fit.predict(test)
    for name, p in preds.items():
        n = len(test)
        np.testing.assert_allclose(p.cell_probs.sum(-1), 1.0, rtol=1e-9)
        np.testing.assert_allclose(p.root_probs, p.cell_probs.reshape(n, 20, 4).sum(-1), rtol=1e-9)
        assert np.all((p.occur_probs >= 0) & (p.occur_probs <= 1)), name
        assert np.all(p.total_mean > 0) and p.alpha is not None and np.all(p.alpha > 0), name
        if name not in ("climatology", "recurrency"):  # the NB-thinned occurrence
            np.testing.assert_allclose(p.occur_probs, B.nb_occurrence(p.root_probs, p.total_mean, p.alpha),
                                       rtol=1e-12)
    preds["oracle"] = B.oracle(test)
    c, t = test.country.numpy(), test.target_day.numpy()
    sc = M.score_all(preds, b.counts[c, t], b.total[c, t],
                     blocks=M.country_week_blocks(c, t))
    ll = {n: s["log_loss"] for n, s in sc.items()}
    # the regime-switching world rewards recent history: the exact oracle is best, the
    # history-based mixes beat the climatology
    assert ll["oracle"] < min(v for n, v in ll.items() if n != "oracle")
    for name in ("ewma", "dirichlet_eb", "moving_average"):
        assert ll[name] < ll["climatology"], name
    assert B.best_baseline(sc) == min((v, n) for n, v in ll.items() if n != "oracle")[1]
    assert B.best_baseline({"model": {"log_loss": 1.0}, "a": {"log_loss": 2.0}, "b": {"log_loss": 1.5}}) == "b"
