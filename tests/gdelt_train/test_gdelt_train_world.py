"""The panel's daily state (``world``): values against an independent NumPy computation, and
no leakage of the target day (or any later day) into the model input or output."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from wgf_cli.forecast.data import SequenceData, load_build, world_features
from wgf_cli.forecast.model import Forecaster, ModelConfig

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt_train_build"


def test_world_features_match_an_independent_computation():
    build = load_build(FIXTURE)
    world = world_features(build)
    n_c, n_d = build.total.shape
    assert world.shape == (n_d, n_c, 5) and world.dtype == np.float32
    rng = np.random.default_rng(0)
    for _ in range(40):
        c, d = int(rng.integers(n_c)), int(rng.integers(n_d))
        quad = [int(build.counts[c, d, :, q].sum()) for q in range(4)]
        tot = sum(quad)
        want = [q / tot if tot else 0.0 for q in quad] + [np.log(1.0 + build.total[c, d])]
        if not build.observed[c, d]:
            want = [0.0] * 5
        np.testing.assert_allclose(world[d, c], want, rtol=1e-6, atol=1e-7)
    # a day without events: zero shares (not NaN)
    b2 = copy.copy(build)
    b2.counts = build.counts.copy()
    b2.total = build.total.copy()
    b2.counts[1, 7] = 0
    b2.total[1, 7] = 0
    np.testing.assert_array_equal(world_features(b2)[7, 1], np.zeros(5, np.float32))


def test_batch_world_is_the_context_days_of_the_whole_panel():
    build = load_build(FIXTURE)
    world = world_features(build)
    data = SequenceData(build, "test", 50)
    batch = data.batch([0, 5])
    assert batch["world"].shape == (2, 50, build.n_countries, 5)
    for i, r in enumerate([0, 5]):
        start = int(data.table.start[r])
        np.testing.assert_array_equal(batch["world"][i].numpy(), world[start: start + 50])


def _model(build) -> Forecaster:
    torch.manual_seed(0)
    model = Forecaster(ModelConfig(build.n_countries, build.dim, build.k, 50, d_model=16, ff=32,
                                   layers=1, dropout=0.0, world_heads=2))
    with torch.no_grad():  # untrained: rows are the panel mean, the cell head is zero
        model.world.graph.normal_()
        model.cells.weight.normal_(0.0, 0.3)
    return model.eval()


def _perturbed(build, days, countries):
    """A copy of ``build`` with other descriptors on ``days`` x ``countries``."""
    b = copy.copy(build)
    b.counts = build.counts.copy()
    b.total = build.total.copy()
    rng = np.random.default_rng(1)
    for c in countries:
        for d in days:
            b.counts[c, d] = rng.integers(0, 50, b.counts.shape[2:])
            b.total[c, d] = b.counts[c, d].sum()
    return b


def test_the_target_day_of_other_countries_never_leaks():
    build = load_build(FIXTURE)
    data = SequenceData(build, "test", 50)
    row = 0
    c, t = int(data.country[row]), int(data.target_day[row])
    others = [j for j in range(build.n_countries) if j != c]
    assert others
    model = _model(build)
    with torch.no_grad():
        base = model(data.batch([row]))
        # the target day and every later day of all other countries: input and output unchanged
        later = _perturbed(build, range(t, build.total.shape[1]), others)
        b_later = SequenceData(later, "test", 50).batch([row])
        torch.testing.assert_close(b_later["world"], data.batch([row])["world"], rtol=0, atol=0)
        torch.testing.assert_close(model(b_later).cell_logits, base.cell_logits, rtol=0, atol=0)
        # the last context day of the other countries does reach the forecast (the test can fail)
        before = _perturbed(build, [t - 1], others)
        out = model(SequenceData(before, "test", 50).batch([row]))
        assert (out.cell_logits[:, -1] - base.cell_logits[:, -1]).abs().max() > 1e-4
        # ... and only from its own position on (causal over the context)
        torch.testing.assert_close(out.cell_logits[:, :-1], base.cell_logits[:, :-1],
                                   rtol=0, atol=1e-5)
