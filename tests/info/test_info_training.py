"""The information-plane training engine (:mod:`wgf_cli.info.training`) and the scaling
helpers (:mod:`wgf_cli.info.scaling`), on tiny problems, against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wgf_cli.info import entropy, gram, hadamard, label_gram
from wgf_cli.info.models import MLP, load_dataset
from wgf_cli.info.scaling import ScalingConfig, entropy_scaling, mixture, timed
from wgf_cli.info.training import (
    Checkpoint,
    EntropyEstimator,
    MeasureConfig,
    TrainConfig,
    iterations,
    measure_layers,
    train_with_information,
)


def _setup(seed=0, **blobs):
    data = load_dataset("blobs", samples=120, features=5, classes=3, seed=seed, dtype=torch.float64,
                        **blobs)
    torch.manual_seed(seed)
    return data, MLP(data.dim, [6, 4], data.classes).double()


def test_checkpoints_history_and_callbacks():
    data, model = _setup()
    seen: list[Checkpoint] = []
    steps: list[int] = []
    train = TrainConfig(epochs=2, batch_size=32, lr=1e-2)
    measure = MeasureConfig(every=2, eval_size=40, kernel_width="silverman", per_neuron="final")
    hist = train_with_information(model, data, EntropyEstimator(alpha=1.01), train, measure,
                                  torch.Generator().manual_seed(0), on_checkpoint=seen.append,
                                  on_step=lambda s, loss: steps.append(s))
    per_epoch, total = iterations(data.x_train.shape[0], train)
    assert per_epoch == math.ceil(data.x_train.shape[0] / 32) and total == 2 * per_epoch
    assert steps == list(range(1, total + 1))
    want = [0, *[s for s in range(1, total + 1) if s % 2 == 0 or s == total]]
    assert hist.step == [p.step for p in seen] == want
    assert [p.final for p in seen] == [False] * (len(want) - 1) + [True]
    assert np.asarray(hist.I_XT).shape == (len(want), 3) and hist.layer_widths == [6, 4, 3]
    assert len(hist.neurons) == 1 and hist.neurons[0][0] == total  # per_neuron="final"
    assert [len(n["I_XT"]) for n in hist.neurons[0][1]] == [6, 4, 3]
    assert math.isnan(hist.train_loss[0]) and all(np.isfinite(hist.train_loss[1:]))
    assert hist.eval_size == 40 and all(p.H_X == hist.H_X for p in seen)


def test_last_checkpoint_equals_measure_layers_recomputed():
    data, model = _setup(1)
    measure = MeasureConfig(every=0, eval_size=30, kernel_width="knn:5", multivariate=True, per_neuron="never")
    ent = EntropyEstimator(alpha=2.0)
    gen = torch.Generator().manual_seed(3)
    hist = train_with_information(model, data, ent, TrainConfig(epochs=1, batch_size=50), measure, gen)
    # the evaluation batch is the first draw of a generator with the same seed
    idx = torch.randperm(data.x_train.shape[0], generator=torch.Generator().manual_seed(3))[:30]
    xe, ye = data.x_train[idx], data.y_train[idx]
    AX = gram(xe, sigma="knn:5", labels=ye).A
    AY = label_gram(ye, data.classes, sigma=0.1, dtype=torch.float64)
    HX, HY = float(entropy(AX, 2.0)), float(entropy(AY, 2.0))
    assert hist.H_X == HX and hist.H_Y == HY
    res = measure_layers(model, xe, ye, AX, AY, HX, HY, ent, measure, per_neuron=False)
    assert [r["I_XT"] for r in res["layers"]] == hist.I_XT[-1]
    assert res["I_Y_layers"] == hist.I_Y_layers[-1]
    # I(X;T) of the first layer by hand
    T = model.layers(xe)[0].detach()
    A = gram(T, sigma="knn:5", labels=ye).A
    ixt = HX + float(entropy(A, 2.0)) - float(entropy(hadamard(AX, A), 2.0))
    np.testing.assert_allclose(hist.I_XT[-1][0], ixt, rtol=1e-12)


def test_same_seed_same_history_and_sgd_differs_from_adam():
    def once(opt):
        data, model = _setup(2)
        return train_with_information(model, data, EntropyEstimator(1.01), TrainConfig(1, 40, 1e-2, opt),
                                      MeasureConfig(every=3, eval_size=25, per_neuron="never"),
                                      torch.Generator().manual_seed(0))

    a, b, c = once("adam"), once("adam"), once("sgd")
    assert a.I_XT == b.I_XT and a.train_loss[1:] == b.train_loss[1:]
    assert a.train_loss[1:] != c.train_loss[1:]
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs").optimizer_for(torch.nn.Linear(1, 1).parameters())


def test_ntk_measurement_and_bad_output_index():
    data, model = _setup(3)
    hist = train_with_information(model, data, EntropyEstimator(1.01), TrainConfig(1, 40),
                                  MeasureConfig(every=0, eval_size=30, ntk_size=20, ntk_output=1),
                                  torch.Generator().manual_seed(0))
    assert hist.ntk_size == 20 and len(hist.ntk_entropy) == len(hist.step) == 2
    assert all(0 < h <= math.log2(20) + 1e-9 for h in hist.ntk_entropy)
    assert all(-1 <= a <= 1 for a in hist.ntk_alignment) and not hist.I_XT
    with pytest.raises(ValueError, match="ntk.output must be sum or < 3, got 3"):
        train_with_information(model, data, EntropyEstimator(1.01), TrainConfig(1, 40),
                               MeasureConfig(eval_size=30, ntk_size=20, ntk_output=3),
                               torch.Generator().manual_seed(0))


def test_fast_estimator_is_deterministic_per_matrix_and_stacks():
    A = gram(mixture(200, 4, 3, 0), sigma="silverman").A
    est = EntropyEstimator(alpha=1.01, method="fast", fast={"tol": 1e-3}, seed=5)
    assert float(est(A)) == float(est(A))
    np.testing.assert_allclose(float(est(A)), float(entropy(A, 1.01)), rtol=5e-3)
    stack = est(torch.stack([A, A]))
    assert stack.shape == (2,) and float(stack[0]) == float(est(A))


def test_mixture_and_timed():
    x = mixture(50, 3, 2, 7)
    assert x.shape == (50, 3) and x.dtype == torch.float64
    torch.testing.assert_close(x, mixture(50, 3, 2, 7), rtol=0, atol=0)
    calls = []
    best, out = timed(lambda: calls.append(1) or len(calls), "cpu", 3)
    assert out == 3 and len(calls) == 3 and best >= 0


def test_entropy_scaling_rows_against_eigvalsh():
    rows_seen = []
    rows = entropy_scaling(ScalingConfig(sizes=[120, 60], exact_max=100, features=3, components=2,
                                         fast={"tol": 1e-3}), alpha=1.01, on_size=rows_seen.append)
    assert [r["size"] for r in rows] == [60, 120] and rows_seen == rows
    assert "exact_bits" in rows[0] and "exact_bits" not in rows[1]  # 120 > exact_max
    A = gram(mixture(60, 3, 2, 0), sigma="silverman").A
    np.testing.assert_allclose(rows[0]["exact_bits"], float(entropy(A, 1.01)), rtol=1e-12)
    assert rows[0]["rel_error"] == abs(rows[0]["fast_bits"] - rows[0]["exact_bits"]) / rows[0]["exact_bits"]
