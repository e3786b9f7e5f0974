"""The synthetic source: file format and statistics, the HMM oracle against brute-force
enumeration of the latent paths, and the generate -> build round trip."""

from __future__ import annotations

import itertools
import zipfile

import numpy as np
import pytest
from scipy.stats import poisson

from wgf_cli.gdelt import build as B
from wgf_cli.gdelt import descriptors as Dm
from wgf_cli.gdelt import embed, reader, schema
from wgf_cli.gdelt import synthetic as S


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    cfg = S.SyntheticConfig(countries=4, days=60, start="2019-12-20", events_per_day=400, seed=3)
    model, truth, oracle, files = S.generate(cfg, out / "raw")
    return cfg, model, truth, oracle, files, out


def test_files_are_gdelt_daily_exports(small):
    cfg, model, truth, oracle, files, out = small
    assert [f.path.name for f in files] == [f"{d}.export.CSV.zip" for d in model.days]
    with zipfile.ZipFile(files[0].path) as zf:
        assert zf.namelist() == [f"{model.days[0]}.export.CSV"]
        lines = zf.read(zf.namelist()[0]).decode().splitlines()
    assert len(lines) == files[0].rows
    assert {len(line.split("\t")) for line in lines} == {58}
    assert not any('"' in line for line in lines)


def test_statistics_match_real_samples(small):
    cfg, model, truth, oracle, files, out = small
    tables = [reader.read_file(f.path)[0] for f in files]
    import pyarrow as pa

    t = pa.concat_tables(tables).to_pandas()
    quad = t["QuadClass"].value_counts(normalize=True).sort_index()
    assert quad.idxmax() == 1 and 0.4 < quad[1] < 0.75
    roots = t["EventRootCode"].value_counts()
    assert roots.idxmax() == "04"
    four = (t["EventCode"].str.len() == 4).mean()
    assert 0.02 < four < 0.06
    assert 0.2 < t["Actor2Geo_CountryCode"].isna().mean() < 0.4
    assert 0.05 < t["Actor1Geo_CountryCode"].isna().mean() < 0.2
    # Goldstein per code from the CAMEO table
    gold = schema.cameo().goldstein
    np.testing.assert_allclose(t["GoldsteinScale"].to_numpy(), [gold[c] for c in t["EventCode"]], atol=0.051)
    # back-dated rows: 90-97 % carry the file's day
    same = (t["SQLDATE"] == t["DATEADDED"]).mean()
    assert 0.9 < same < 0.97
    assert set(t["Actor1Geo_CountryCode"].dropna()) <= set(schema.countries().codes)


def brute_force_predictive(model: S.Model, roots: np.ndarray, c: int) -> np.ndarray:
    """P(z[c, d] | events before d) by summing the joint over every latent path (independent of
    forward_filter: no recursion, explicit products)."""
    C, D, _ = roots.shape
    mixes = model.mixes()
    p_s = np.array([1 - model.shock_prob, model.shock_prob])
    x = [model.neighbour_share(roots[:, d, 13:].sum(1), roots[:, d].sum(1)) for d in range(D)]
    out = np.zeros((D, 3))
    for d in range(D):
        acc = np.zeros(3)
        for path in itertools.product(range(3), repeat=d + 1):
            p = model.init[path[0]]
            for t in range(1, d + 1):
                p *= model.transition_at(x[t - 1][[c]])[0][path[t - 1], path[t]]
            for t in range(d):  # likelihood of the days before d
                n = roots[c, t]
                mu = model.rates(t)[c, path[t]]
                lik = sum(p_s[s] * poisson.pmf(n.sum(), mu[s]) * np.prod(mixes[path[t], s] ** n) for s in (0, 1))
                p *= lik
            acc[path[d]] += p
        out[d] = acc / acc.sum()
    return out


def test_forward_filter_equals_brute_force():
    cfg = S.SyntheticConfig(countries=3, days=5, events_per_day=30, shock_prob=0.2, contagion=2.0, seed=1)
    model = S.build_model(cfg)
    truth = S.simulate(model, np.random.default_rng(5))
    orc = S.forward_filter(model, truth.roots)
    for c in range(3):
        want = brute_force_predictive(model, truth.roots, c)
        np.testing.assert_allclose(orc.regime_probs[c], want, rtol=1e-9, atol=1e-12)
    # root_probs: the mixture over (regime, shock) weighted by P(N > 0), from the state law
    mixes = model.mixes()
    p_s = np.array([1 - model.shock_prob, model.shock_prob])
    for c, d in [(0, 0), (1, 3), (2, 4)]:
        mu = model.rates(d)[c]
        w = orc.regime_probs[c, d][:, None] * p_s[None, :] * (1 - np.exp(-mu))
        want = (w[..., None] * mixes).sum((0, 1)) / w.sum()
        np.testing.assert_allclose(orc.root_probs[c, d], want, rtol=1e-12)
        np.testing.assert_allclose(orc.total_mean[c, d], (orc.regime_probs[c, d][:, None] * p_s * mu).sum(),
                                   rtol=1e-12)
    np.testing.assert_allclose(orc.root_probs.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(orc.quad_probs.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(orc.quad_probs[..., 0], orc.root_probs[..., :5].sum(-1), rtol=1e-12)


def test_contagion_matrix_is_stochastic_and_monotone():
    model = S.build_model(S.SyntheticConfig(countries=5, days=3))
    x = np.array([0.0, model.calm_share, 0.5, 0.9, 1.0])
    a = model.transition_at(x)
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(a[0], model.transition, rtol=0, atol=0)   # no excess: base matrix
    np.testing.assert_allclose(a[1], model.transition, rtol=0, atol=0)
    assert (np.diff(a[:, 0, 1]) >= 0).all() and a[4, 0, 1] > a[0, 0, 1]
    assert (model.neighbours == model.neighbours.T).all() and model.neighbours.diagonal().sum() == 0


def test_round_trip_recovers_generator_counts(small):
    cfg, model, truth, oracle, files, out = small
    vocab = Dm.vocabulary(embed.HashEmbedder(16))
    res = B.build([f.path for f in files], B.BuildOptions(out_dir=out / "build", source="synthetic",
                                                          countries=list(model.countries), sequences=20,
                                                          context=10, k=4, kmeans_iters=3), vocab=vocab)
    order = np.argsort(model.countries)
    d = res.descriptors
    assert list(d.countries) == sorted(model.countries)
    np.testing.assert_array_equal(d.days, model.days)
    np.testing.assert_array_equal(d.counts, truth.counts[order])      # exact
    np.testing.assert_array_equal(d.total, truth.roots.sum(-1)[order])
    # the window crosses the 1920 bug: rows were repaired, none lost
    repaired = {n: e["repairs"].get("date_1920", 0) for n, e in res.manifest["inputs"].items()}
    assert repaired["20200101.export.CSV.zip"] > 0 and repaired["20200106.export.CSV.zip"] == 0
    assert res.summary["rows_rejected"] == res.summary["rejects_marker_row"]
    assert res.summary["events_too_old"] > 0   # the anniversary rows, outside the model
