"""The cell head variants: a mixture of learned event mixes (and its initial components from
the training days) and the low-rank head, against independent NumPy computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wgf_cli.forecast.baselines import event_mixes
from wgf_cli.forecast.data import SequenceData, load_build
from wgf_cli.forecast.model import Forecaster, ModelConfig

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt_train_build"


def test_event_mixes_group_the_training_days_by_conflict_share():
    build = load_build(FIXTURE)
    last = 60
    cells = build.counts[:, : last + 1].reshape(-1, 80).astype(np.float64)
    keep = build.observed[:, : last + 1].reshape(-1) & (cells.sum(1) > 0)
    cells = cells[keep]
    # one group: the pooled frequencies (with 0.5 pseudo-events spread over the cells)
    one = event_mixes(build, last, 1)
    np.testing.assert_allclose(one[0], (cells.sum(0) + 0.5 / 80) / (cells.sum() + 0.5), rtol=1e-10)
    # two groups: split at half of the events, in the order of the QuadClass-4 share
    share = cells.reshape(-1, 20, 4)[..., 3].sum(1) / cells.sum(1)
    order = np.argsort(share, kind="stable")
    cum = np.cumsum(cells.sum(1)[order]) / cells.sum()
    low, high = order[cum < 0.5], order[cum >= 0.5]
    two = event_mixes(build, last, 2)
    for g, rows in enumerate((low, high)):
        want = cells[rows].sum(0) + 0.5 / 80
        np.testing.assert_allclose(two[g], want / want.sum(), rtol=1e-10)
    assert two[0].reshape(20, 4)[:, 3].sum() < two[1].reshape(20, 4)[:, 3].sum()


def _model(build, **kw) -> Forecaster:
    torch.manual_seed(0)
    return Forecaster(ModelConfig(build.n_countries, build.dim, build.k, 50, d_model=16, ff=32,
                                  layers=1, dropout=0.0, **kw)).eval()


def test_mixture_head_is_the_weighted_mixture_of_its_components():
    build = load_build(FIXTURE)
    batch = SequenceData(build, "test", 50).batch([0, 1])
    mixes = torch.as_tensor(event_mixes(build, 60, 3), dtype=torch.float32)
    model = _model(build, mixture=3)
    model.init_biases(mixes.mean(0), 20.0, mixes=mixes)
    with torch.no_grad():
        out = model(batch)  # the weight head starts at zero: equal weights
        np.testing.assert_allclose(out.cell_logits.exp().numpy(),
                                   np.broadcast_to(mixes.mean(0).numpy(), (2, 50, 80)), rtol=1e-5)
        model.cells.weight.normal_(0.0, 0.5)
        out = model(batch)
        h = model.trunk(model.encode(batch) + model.next_dow(batch["next_dow"]))
        w = torch.softmax(model.cells(h), -1).numpy()  # [2, 50, 3]
        comp = torch.softmax(model.components, -1).detach().numpy()
        np.testing.assert_allclose(out.cell_logits.exp().numpy(), w @ comp, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out.root_log_probs().exp().sum(-1).numpy(), 1.0, rtol=1e-5)


def test_low_rank_head_logits_span_r_dimensions():
    build = load_build(FIXTURE)
    batch = SequenceData(build, "test", 50).batch(list(range(8)))
    model = _model(build, cell_rank=2)
    with torch.no_grad():
        model.cells.weight.normal_()
        logits = model(batch).cell_logits.reshape(-1, 80)
    centred = (logits - model.cells.bias).detach().numpy()
    s = np.linalg.svd(centred, compute_uv=False)
    assert s[1] > 1e-3 * s[0] and s[2] < 1e-5 * s[0]


def test_recency_bias_is_alibi_and_stays_causal():
    build = load_build(FIXTURE)
    model = _model(build, recency_bias=True, heads=4)
    bias = model.recency(5, "cpu")
    slopes = 2.0 ** (-8.0 * np.arange(1, 5) / 4)
    dist = np.maximum(np.arange(5)[:, None] - np.arange(5)[None, :], 0)
    np.testing.assert_allclose(bias.numpy(), -slopes[:, None, None] * dist, rtol=1e-6)
    with torch.no_grad():
        model.cells.weight.normal_()
        batch = SequenceData(build, "test", 50).batch([0, 1])
        base = model(batch).cell_logits
        moved = dict(batch, feats=batch["feats"].clone())
        moved["feats"][:, 30] += 1.0
        out = model(moved).cell_logits
    torch.testing.assert_close(out[:, :30], base[:, :30], rtol=0, atol=1e-5)
    assert (out[:, 30] - base[:, 30]).abs().max() > 1e-3


def test_ema_mixer_is_the_moving_average_recursion_and_stays_causal():
    build = load_build(FIXTURE)
    model = _model(build, ema_mixer=True).double()
    ema = model.ema
    with torch.no_grad():
        ema.logit.copy_(torch.linspace(-2.0, 3.0, 16, dtype=torch.float64))
        ema.out.weight.copy_(torch.eye(16, dtype=torch.float64))
        x = torch.randn(3, 7, 16, dtype=torch.float64)
        # float64 NumPy recursion e_t = lam e_{t-1} + (1 - lam) x_t, e_{-1} = 0
        lam = 1.0 / (1.0 + np.exp(-ema.logit.numpy()))
        e, want = np.zeros((3, 16)), []
        for t in range(7):
            e = lam * e + (1 - lam) * x[:, t].numpy()
            want.append(e)
        np.testing.assert_allclose(ema(x).numpy(), x.numpy() + np.stack(want, 1), rtol=1e-12,
                                   atol=1e-12)
        # time constants start spread over 1-30 days
        tau = -1.0 / np.log(1.0 / (1.0 + np.exp(-_model(build, ema_mixer=True).ema.logit.numpy())))
        np.testing.assert_allclose([tau.min(), tau.max()], [1.0, 30.0], rtol=1e-4)
        model.cells.weight.normal_()
        batch = {k: (v.double() if v.is_floating_point() else v)
                 for k, v in SequenceData(build, "test", 50).batch([0, 1]).items()}
        base = model(batch).cell_logits
        moved = dict(batch, feats=batch["feats"].clone())
        moved["feats"][:, 30] += 1.0
        out = model(moved).cell_logits
    torch.testing.assert_close(out[:, :30], base[:, :30], rtol=0, atol=1e-10)
    assert (out[:, 30:] - base[:, 30:]).abs().max() > 1e-3


def test_mix_evidence_is_each_days_log_likelihood_under_the_mixes():
    build = load_build(FIXTURE)
    mixes = torch.as_tensor(event_mixes(build, 60, 3), dtype=torch.float32)
    model = _model(build, mixture=3, mix_evidence=True)
    model.init_biases(mixes.mean(0), 20.0, mixes=mixes)
    batch = SequenceData(build, "test", 50).batch([0, 1])
    c = batch["country"].numpy()
    days = SequenceData(build, "test", 50).target_day[[0, 1]].numpy()[:, None] + np.arange(-50, 0)
    n = build.counts.reshape(build.n_countries, -1, 80)[c[:, None], days].astype(np.float64)
    ll = n @ np.log(mixes.numpy().astype(np.float64)).T  # [2, 50, 3]
    want = (ll - ll.mean(-1, keepdims=True)) / 10.0
    np.testing.assert_allclose(model.mix_loglik(batch["feats"]).numpy(), want, rtol=1e-4, atol=1e-4)
    assert n.sum() > 0 and np.abs(want).max() > 0.05


def test_regime_filter_with_the_generators_parameters_is_the_exact_hmm_filter():
    """States (regime, shock): A[(z, s), (z', s')] = T[z, z'] P(s'), emissions the generator's
    root mixes and Poisson volumes; without contagion the recursion must reproduce
    ``synthetic.forward_filter``'s predictive regime law and mean total (float64 NumPy)."""
    from wgf_cli.forecast.model import RegimeFilter
    from wgf_cli.gdelt import synthetic as S

    cfg = S.SyntheticConfig(countries=6, days=40, events_per_day=200.0, contagion=0.0, shock_prob=0.05)
    m = S.build_model(cfg)
    truth = S.simulate(m, np.random.Generator(np.random.PCG64(3)))
    oracle = S.forward_filter(m, truth.roots)
    p_s = np.array([1 - m.shock_prob, m.shock_prob])
    filt = RegimeFilter(6, len(m.countries)).double()
    with torch.no_grad():
        trans = np.repeat(np.einsum("ij,t->ijt", m.transition, p_s).reshape(3, 6), 2, axis=0)
        filt.trans.copy_(torch.as_tensor(np.log(trans)))
        filt.init.copy_(torch.as_tensor(np.log(np.outer(m.init, p_s).reshape(6))))
        filt.volume.copy_(torch.as_tensor(np.log(np.outer(m.volume, [1.0, m.shock_volume]).reshape(6))))
        filt.base.copy_(torch.as_tensor(np.log(m.base)))
        filt.weekly.copy_(torch.as_tensor(np.log(m.weekly)))
    # mixes over the 80 root x QuadClass cells (QuadClass follows the root)
    quad = np.array([S.schema.ROOT_QUAD[r] for r in S.schema.ROOTS]) - 1
    mixes = np.full((6, 20, 4), 1e-300)
    mixes[:, np.arange(20), quad] = m.mixes().reshape(6, 20)
    counts = torch.as_tensor(truth.counts.reshape(6, 40, 80), dtype=torch.float64)
    dow = torch.as_tensor(m.weekday[None].repeat(6, 0))
    log_mixes = torch.as_tensor(np.log(mixes.reshape(6, 80)))
    with torch.no_grad():
        prior, log_mu = filt(counts[:, :-1], log_mixes, torch.arange(6), dow[:, :-1], dow[:, 1:])
    regime = prior.exp().double().numpy().reshape(6, 39, 3, 2).sum(-1)
    np.testing.assert_allclose(regime, oracle.regime_probs[:, 1:], rtol=0, atol=1e-4)
    np.testing.assert_allclose(log_mu.double().exp().numpy(), oracle.total_mean[:, 1:], rtol=1e-4)
    assert regime.max(-1).min() < 0.9  # the law is uncertain on some days (not a trivial match)
    # a tempered likelihood (temperature < 1) is less sure than the exact filter
    with torch.no_grad():
        filt.log_temp.fill_(np.log(0.5))
        soft = filt(counts[:, :-1], log_mixes, torch.arange(6), dow[:, :-1], dow[:, 1:])[0]
    soft = soft.exp().numpy().reshape(6, 39, 3, 2).sum(-1)
    assert soft.max(-1).mean() < regime.max(-1).mean()


def test_regime_filter_starts_the_heads_at_its_law_and_stays_causal():
    build = load_build(FIXTURE)
    data = SequenceData(build, "test", 50)
    batch = data.batch([0, 1, 2])
    mixes = torch.as_tensor(event_mixes(build, 60, 3), dtype=torch.float32)
    model = _model(build, mixture=3, regime_filter=True)
    totals = torch.linspace(5.0, 40.0, build.n_countries)
    model.init_biases(mixes.mean(0), 20.0, mixes=mixes, country_totals=totals)
    np.testing.assert_allclose(model.filter.base.detach().numpy(), np.log(totals.numpy()), rtol=1e-6)
    with torch.no_grad():
        out = model(batch)
        prior, log_mu = model.filter(model.counts(batch["feats"]), torch.log(mixes), batch["country"],
                                     batch["dow"], batch["next_dow"])
        # zero-initialised readouts: the cells are the filter's mixture of the mixes, the total
        # its predictive mean (times exp(0))
        np.testing.assert_allclose(out.cell_logits.exp().numpy(), prior.exp().numpy() @ mixes.numpy(),
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out.log_mu.numpy(), log_mu.numpy(), rtol=0, atol=1e-4)
        p = prior.exp().numpy()
        assert p.max(-1).mean() > 0.6 and np.allclose(p.sum(-1), 1.0, atol=1e-5)  # the law has moved
        model.cells.weight.normal_()
        model.filter.volume.copy_(torch.tensor([-0.5, 0.0, 0.5]))  # the states' volumes differ
        out = model(batch)
        moved = dict(batch, feats=batch["feats"].clone())
        moved["feats"][:, 30, :80] += 1.0  # more events of every cell on day 30
        shifted = model(moved)
    torch.testing.assert_close(shifted.cell_logits[:, :30], out.cell_logits[:, :30], rtol=0, atol=1e-5)
    torch.testing.assert_close(shifted.log_mu[:, :30], out.log_mu[:, :30], rtol=0, atol=1e-5)
    assert (shifted.log_mu[:, 30:] - out.log_mu[:, 30:]).abs().max() > 1e-3
    assert (shifted.cell_logits[:, 30:] - out.cell_logits[:, 30:]).abs().max() > 1e-3


def test_last_only_heads_are_the_full_forwards_last_position_exactly():
    build = load_build(FIXTURE)
    data = SequenceData(build, "test", 50)
    mixes = torch.as_tensor(event_mixes(build, 60, 3), dtype=torch.float32)
    for kw in ({"mixture": 3, "regime_filter": True, "mix_evidence": True}, {"mixture": 3, "mixture_tilt": 2},
               {}):
        model = _model(build, **kw)
        model.init_biases(mixes.mean(0), 20.0, mixes=mixes if kw else None)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
            for rows in ([0], [0, 1, 2], list(range(len(data)))):
                batch = data.batch(rows)
                full, last = model(batch), model(batch, last_only=True)
                for k in ("cell_logits", "log_mu", "log_alpha"):
                    assert getattr(last, k).shape[1] == 1
                    assert torch.equal(getattr(full, k)[:, -1:], getattr(last, k)), (kw, k)
                assert torch.equal(full.cloud_x, last.cloud_x) and torch.equal(full.cloud_logw, last.cloud_logw)
