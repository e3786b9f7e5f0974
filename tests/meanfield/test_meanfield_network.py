"""Network outputs, explicit gradients and the four measure representations (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from wgf_cli.meanfield import network as N
from wgf_cli.meanfield.data import augment, make_dataset

D64 = torch.float64


def _problem(m=37, n=23, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, d, generator=g, dtype=D64)
    alpha = torch.where(torch.rand(m, generator=g, dtype=D64) > 0.5, 1.0, -1.0).to(D64)
    x = augment(torch.randn(n, d - 1, generator=g, dtype=D64))
    y = torch.randn(n, generator=g, dtype=D64)
    return W, alpha, x, y


def _numpy_output(W, alpha, x):
    """Independent float64 NumPy network: (1/m) sum_i alpha_i max(0, <w_i, x>), loop over neurons."""
    W, alpha, x = (t.numpy() for t in (W, alpha, x))
    out = np.zeros(x.shape[0])
    for w, a in zip(W, alpha, strict=True):
        out += a * np.maximum(0.0, x @ w)
    return out / W.shape[0]


@pytest.mark.parametrize("weight_decay", [0.0, 0.03])
@pytest.mark.parametrize("train_alpha", [False, True])
def test_explicit_gradient_equals_autograd(weight_decay, train_alpha):
    W, alpha, x, y = _problem()
    W[0] = 0.0  # a dead neuron (pre-activation exactly 0: relu'(0) = 0 on both sides)
    Wr, ar = W.clone().requires_grad_(True), alpha.clone().requires_grad_(True)
    F = N.loss(Wr, ar, x, y, weight_decay)
    gW, ga = torch.autograd.grad(F, [Wr, ar])
    g = N.gradient(W, alpha, x, y, weight_decay)
    assert_close(g.W, gW, rtol=0, atol=1e-10)
    assert_close(g.alpha, ga, rtol=0, atol=1e-10)
    assert abs(g.loss - float(F.detach())) <= 1e-12


def test_gradient_formula_of_the_issue_up_to_the_factor_two():
    """dF/dw_i = (2 alpha_i/(n m)) sum_j e_j 1[<w_i,x_j> > 0] x_j, written out with loops."""
    W, alpha, x, y = _problem(m=5, n=7)
    g = N.gradient(W, alpha, x, y)
    e = _numpy_output(W, alpha, x) - y.numpy()
    m, n = W.shape[0], x.shape[0]
    for i in range(m):
        ref = sum(e[j] * float(x[j] @ W[i] > 0) * x[j].numpy() for j in range(n)) * 2 * float(alpha[i]) / (n * m)
        np.testing.assert_allclose(g.W[i].numpy(), ref, rtol=0, atol=1e-14)


def test_velocity_is_gradient_of_the_potential():
    """m dF/dw_i = grad_w V_mu(w_i): the particle flow is the Wasserstein flow of the measure."""
    W, alpha, x, y = _problem()
    g = N.gradient(W, alpha, x, y, 0.01)
    theta = W.clone().requires_grad_(True)
    V = N.potential(theta, alpha, x, g.residual, 0.01)
    (gV,) = torch.autograd.grad(V.sum(), [theta])
    assert_close(W.shape[0] * g.W, gV, rtol=0, atol=1e-12)


def test_four_representations_reproduce_the_network():
    W, alpha, x, _ = _problem(m=64, n=40)
    W[3] = W[5]  # two atoms at the same w (merged by the signed measure)
    W[7] = 0.0  # w = 0 on the sphere representation
    ref = _numpy_output(W, alpha, x)
    mu = N.NeuronMeasure.from_network(W, alpha)
    reps = [mu, N.SignedMeasure.from_measure(mu), N.MeasurePair.from_measure(mu),
            N.SphereMeasure.from_measure(mu)]
    for rep in reps:
        np.testing.assert_allclose(rep.output(x).numpy(), ref, rtol=0, atol=1e-12, err_msg=type(rep).__name__)
    np.testing.assert_allclose(N.predict(W, alpha, x).numpy(), ref, rtol=0, atol=1e-12)
    sph = reps[3]
    assert_close(sph.direction.norm(dim=1), torch.ones(64, dtype=D64), rtol=0, atol=1e-14)
    np.testing.assert_allclose(sph.to_measure().output(x).numpy(), ref, rtol=0, atol=1e-12)
    pair = reps[2]
    assert float(pair.mass_pos.sum() + pair.mass_neg.sum()) == pytest.approx(1.0, abs=1e-15)


def test_trainable_alpha_representations():
    W, _, x, _ = _problem(m=16)
    alpha = torch.linspace(-2, 2, 16, dtype=D64)  # includes no exact zero; general weights
    ref = _numpy_output(W, alpha, x)
    mu = N.NeuronMeasure.from_network(W, alpha)
    for rep in (N.SignedMeasure.from_measure(mu), N.MeasurePair.from_measure(mu), N.SphereMeasure.from_measure(mu)):
        np.testing.assert_allclose(rep.output(x).numpy(), ref, rtol=0, atol=1e-12)


def test_init_particles_signs_and_seed():
    W, a = N.init_particles(9, 2, 0.5, torch.Generator().manual_seed(3))
    W2, _ = N.init_particles(9, 2, 0.5, torch.Generator().manual_seed(3))
    assert int((a > 0).sum()) == 5 and int((a < 0).sum()) == 4
    assert torch.equal(W, W2)


def test_teacher_target_is_its_network():
    ds = make_dataset("teacher", 50, 20, 2, generator=torch.Generator().manual_seed(0))
    U, a = ds.teacher
    ref = _numpy_output(U, a, ds.x)
    np.testing.assert_allclose(ds.y.numpy(), ref, rtol=0, atol=1e-14)
    assert torch.equal(ds.x[:, -1], torch.ones(50, dtype=D64))


def test_targets_abs_sin_and_csv(tmp_path):
    g = torch.Generator().manual_seed(0)
    ds = make_dataset("abs", 30, 10, 2, generator=g)
    np.testing.assert_allclose(ds.y.numpy(), np.abs(ds.x[:, 0].numpy()), rtol=0, atol=0)
    ds = make_dataset("sin", 30, 10, 2, frequency=2.0, generator=g)
    np.testing.assert_allclose(ds.y.numpy(), np.sin(2 * ds.x[:, 0].numpy()), rtol=0, atol=1e-15)
    path = tmp_path / "d.csv"
    xs = np.linspace(-1, 1, 50)
    np.savetxt(path, np.stack([xs, xs**2], 1), delimiter=",", header="x,y", comments="")
    ds = make_dataset("csv", 0, 10, 2, path=path, generator=g)
    assert ds.x.shape[0] + ds.x_test.shape[0] == 50
    np.testing.assert_allclose(ds.y.numpy(), ds.x[:, 0].numpy() ** 2, rtol=0, atol=1e-15)
