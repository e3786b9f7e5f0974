"""The cell head variants: a mixture of learned event mixes (and its initial components from
the training days) and the low-rank head, against independent NumPy computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wgf_cli.gdelt.baselines import event_mixes
from wgf_cli.gdelt.data import SequenceData, load_build
from wgf_cli.gdelt.model import Forecaster, ModelConfig

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
