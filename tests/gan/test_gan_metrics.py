"""Metrics against independent float64 references: exact OT by assignment (SciPy), sorted
1-D couplings, NumPy mode statistics, synthetic oscillations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from wgf_cli.gan import metrics as M
from wgf_cli.gan.data import DATASETS, make_dataset


@pytest.mark.parametrize("p", [1, 2])
def test_wasserstein_2d_equals_the_optimal_assignment(p):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 2)), rng.normal(size=(120, 2)) + [0.5, 0.0]
    C = np.linalg.norm(x[:, None] - y[None], axis=-1) ** p
    r, c = linear_sum_assignment(C)
    ref = C[r, c].mean() ** (1 / p)
    np.testing.assert_allclose(M.wasserstein(torch.tensor(x), torch.tensor(y), p), ref, rtol=1e-9)


@pytest.mark.parametrize("p", [1, 2])
def test_wasserstein_1d_equals_the_sorted_coupling(p):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=300), rng.normal(size=300) * 2 + 1
    ref = (np.abs(np.sort(x) - np.sort(y)) ** p).mean() ** (1 / p)
    np.testing.assert_allclose(M.wasserstein(x, y, p), ref, rtol=1e-9)


def test_wasserstein_of_a_translate_is_the_shift():
    x = np.random.default_rng(2).normal(size=(200, 2))
    np.testing.assert_allclose(M.wasserstein(x, x + [0.3, 0.4], 2), 0.5, rtol=1e-9)
    np.testing.assert_allclose(M.wasserstein(x, x + [0.3, 0.4], 1), 0.5, rtol=1e-9)


def test_mode_metrics_against_a_numpy_count():
    data = make_dataset("ring8_pacgan")
    c = data.centres.numpy()
    rng = np.random.default_rng(3)
    # 3 modes, 100 samples each within 1 std, 50 off-mode points at the origin
    x = np.concatenate([c[k] + 0.01 * rng.normal(size=(100, 2)).clip(-1, 1) for k in (0, 2, 5)]
                       + [np.zeros((50, 2))])
    m = M.mode_metrics(x, c, 0.01)
    assert m.modes_covered == 3
    np.testing.assert_allclose(m.hq_fraction, 300 / 350, rtol=1e-12)
    np.testing.assert_array_equal(m.counts, [100, 0, 100, 0, 0, 100, 0, 0])
    np.testing.assert_allclose(m.reverse_kl, math.log(8 / 3), rtol=1e-12)  # KL(unif on 3 ‖ unif on 8)
    assert M.mode_collapse(m)
    full = M.mode_metrics(data.sample(4000, torch.Generator().manual_seed(0)), c, 0.01)
    assert full.modes_covered == 8 and full.hq_fraction > 0.98 and full.reverse_kl < 0.01
    assert not M.mode_collapse(full)


def test_mode_metrics_standardize_by_the_std():
    m = M.mode_metrics(np.array([[0.29, 0.0], [0.31, 0.0]]), np.zeros((1, 2)), 0.1)
    np.testing.assert_array_equal(m.high_quality, [True, False])


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_have_the_published_geometry(name):
    data = make_dataset(name)
    x = data.sample(20000, torch.Generator().manual_seed(4), dtype=torch.float64)
    assert x.shape == (20000, data.dim)
    if name == "swissroll":
        assert 0.3 < float(x.norm(dim=1).mean()) < 1.6
        return
    nearest = torch.cdist(x, data.centres).argmin(1)
    resid = x - data.centres[nearest]
    np.testing.assert_allclose(float(resid.std()), data.std, rtol=0.03)
    counts = torch.bincount(nearest, minlength=data.n_modes).double() / len(x)
    np.testing.assert_allclose(counts.numpy(), 1 / data.n_modes, atol=0.02)
    radius = {"ring8": 2 / 1.414, "ring8_pacgan": 1.0}
    if name in radius:
        np.testing.assert_allclose(data.centres.norm(dim=1).numpy(), radius[name], rtol=1e-12)
    if name == "grid25":
        np.testing.assert_allclose(data.centres.abs().max().item(), 4 / 2.828, rtol=1e-12)
    if name == "grid25_pacgan":
        assert data.centres.abs().max().item() == 4.0 and data.std == 0.05


def test_clip_statistics_count_boundary_parameters_and_corners():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    c = 0.01
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[c, -c], [c, 0.0], [0.005, 0.002]]))
        net[0].bias.copy_(torch.tensor([-c, c, 0.0]))
        net[2].weight.copy_(torch.tensor([[c, c, -c]]))
        net[2].bias.fill_(0.0)
    s = M.clip_statistics(net, c)
    assert s.n_parameters == 13 and s.n_neurons == 4
    np.testing.assert_allclose(s.boundary_fraction, 8 / 13, rtol=1e-12)
    np.testing.assert_allclose(s.corner_fraction, 1 / 4, rtol=1e-12)  # neuron 0 only
    np.testing.assert_allclose(s.face_fraction, 3 / 4, rtol=1e-12)


def test_oscillation_detects_the_period_of_a_cycle():
    t = np.arange(0, 4000, 10.0)
    x = np.stack([0.8 * np.sin(2 * np.pi * t / 250), 0.8 * np.cos(2 * np.pi * t / 250)], 1)
    x += np.random.default_rng(5).normal(scale=0.02, size=x.shape)
    osc = M.detect_oscillation(t, x)
    assert osc.periodic
    np.testing.assert_allclose(osc.period, 250, rtol=0.05)
    np.testing.assert_allclose(osc.amplitude, 0.8, rtol=0.05)


def test_oscillation_is_not_reported_for_convergence_or_noise():
    t = np.arange(0, 4000, 10.0)
    converging = np.exp(-t / 500) * np.sin(2 * np.pi * t / 250)
    assert not M.detect_oscillation(t, converging).periodic
    noise = np.random.default_rng(6).normal(scale=0.01, size=len(t))
    assert not M.detect_oscillation(t, noise).periodic
    assert not M.detect_oscillation(t, 1.0 - t / 4000).periodic  # a drift is not a cycle
