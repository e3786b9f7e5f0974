"""Losses: per-sample gradient penalty on critics with known gradients, signs, clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wgf_cli.gan import losses as L


class Linear(nn.Module):
    """D(x) = a·x (flattened): gradient a everywhere."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a.clone())

    def forward(self, x):
        return (x.reshape(x.shape[0], -1) * self.a.reshape(1, -1)).sum(1, keepdim=True)


class HalfSquare(nn.Module):
    """D(x) = ½‖x‖²: gradient x, norm ‖x‖ per sample."""

    def forward(self, x):
        return 0.5 * (x.reshape(x.shape[0], -1) ** 2).sum(1, keepdim=True)


def test_penalty_of_a_linear_critic_is_lambda_times_norm_gap_squared():
    a = torch.tensor([3.0, 4.0], dtype=torch.float64)  # ‖a‖ = 5
    g = torch.Generator().manual_seed(0)
    real = torch.randn(64, 2, generator=g, dtype=torch.float64)
    fake = torch.randn(64, 2, generator=g, dtype=torch.float64)
    p = L.gradient_penalty(Linear(a), real, fake, lam=10.0, generator=g)
    torch.testing.assert_close(p.grad_norms, torch.full((64,), 5.0, dtype=torch.float64))
    torch.testing.assert_close(p.value, torch.tensor(10.0 * 16.0, dtype=torch.float64))


def test_penalty_is_per_sample_with_one_weight_per_sample():
    """Images (B, 2, 3, 3): ε per sample, gradient flattened per sample; compared with a float64
    NumPy evaluation that uses the same ε."""
    g = torch.Generator().manual_seed(1)
    real = torch.randn(16, 2, 3, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(16, 2, 3, 3, generator=g, dtype=torch.float64)
    p = L.gradient_penalty(HalfSquare(), real, fake, lam=10.0, generator=torch.Generator().manual_seed(7))
    eps = p.eps.numpy()
    # the weights are what interpolate() draws from that generator: one per sample
    _, eps2 = L.interpolate(real, fake, torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(eps, eps2.numpy())
    assert eps.shape == (16,)
    r, f = real.numpy().reshape(16, -1), fake.numpy().reshape(16, -1)
    xh = eps[:, None] * r + (1 - eps[:, None]) * f
    norms = np.sqrt((xh**2).sum(1))  # ∇½‖x‖² = x, flattened per sample
    np.testing.assert_allclose(p.grad_norms.numpy(), norms, rtol=1e-12)
    np.testing.assert_allclose(p.value.item(), 10.0 * np.mean((norms - 1) ** 2), rtol=1e-12)
    # an element-wise ε or a norm over the whole batch would give other numbers
    assert abs(p.value.item() - 10.0 * (np.sqrt((xh**2).sum()) - 1) ** 2) > 1.0


def test_interpolates_lie_on_the_segments():
    g = torch.Generator().manual_seed(2)
    real, fake = torch.ones(32, 5, dtype=torch.float64), torch.zeros(32, 5, dtype=torch.float64)
    xh, eps = L.interpolate(real, fake, g)
    torch.testing.assert_close(xh, eps[:, None].expand(32, 5))  # constant within each sample
    assert ((eps >= 0) & (eps <= 1)).all()


def test_one_sided_penalty_ignores_small_gradients():
    a = torch.tensor([0.3, 0.4], dtype=torch.float64)  # ‖a‖ = 0.5 < 1
    x = torch.zeros(8, 2, dtype=torch.float64)
    assert L.gradient_penalty(Linear(a), x, x, 10.0, one_sided=True).value.item() == 0.0
    torch.testing.assert_close(L.gradient_penalty(Linear(a), x, x, 10.0).value,
                               torch.tensor(2.5, dtype=torch.float64))


def test_penalty_is_differentiable_in_the_critic_parameters():
    a = torch.tensor([3.0, 4.0], dtype=torch.float64)
    D = Linear(a)
    x = torch.randn(10, 2, dtype=torch.float64)
    L.gradient_penalty(D, x, x + 1, 10.0).value.backward()
    # d/da 10 (‖a‖ - 1)² = 20 (‖a‖ - 1) a / ‖a‖
    torch.testing.assert_close(D.a.grad, 20 * 4 * a / 5)


def test_wasserstein_signs_generator_climbs_the_critic():
    """The critic scores data high; the generator's loss decreases when its samples move up
    the critic (the sign bug of some reimplementations would push them down)."""
    d_real, d_fake = torch.tensor([2.0, 2.0]), torch.tensor([0.0, 1.0])
    assert float(L.critic_loss("wgan_gp", d_real, d_fake)) == pytest.approx(0.5 - 2.0)
    assert float(L.generator_loss("wgan_clip", d_fake)) == pytest.approx(-0.5)
    x = torch.zeros(4, 2, requires_grad=True)
    D = Linear(torch.tensor([1.0, 0.0]))
    L.generator_loss("wgan_gp", D(x)).backward()
    assert (x.grad[:, 0] < 0).all()  # a gradient step x -= lr grad moves x up the critic


def test_gan_losses_closed_forms():
    t = torch.tensor([0.3, -1.2], dtype=torch.float64)
    sig = torch.sigmoid(t)
    torch.testing.assert_close(L.critic_loss("gan", t, t),
                               -torch.log(sig).mean() - torch.log(1 - sig).mean())
    torch.testing.assert_close(L.generator_loss("gan", t), torch.log(1 - sig).mean())
    torch.testing.assert_close(L.generator_loss("gan_ns", t), -torch.log(sig).mean())
    with pytest.raises(ValueError, match="no critic"):
        L.critic_loss("sinkhorn", t, t)


def test_clip_projects_weights_and_biases():
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(100)
    L.clip_(net, 0.01)
    for p in net.parameters():
        assert p.abs().max() <= 0.01
    assert (net[0].bias.abs() == 0.01).any()


def test_sinkhorn_divergence_vanishes_on_equal_clouds_and_is_positive_otherwise():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(100, 2, generator=g, dtype=torch.float64)
    loss = L.SinkhornLoss(p=2, blur=0.05)
    assert abs(float(loss(x, x))) < 1e-8
    # debiased S_eps between a cloud and its translate by v is about ½‖v‖² (p=2 cost ½|x-y|²)
    v = torch.tensor([1.0, 0.0], dtype=torch.float64)
    np.testing.assert_allclose(float(loss(x + v, x)), 0.5, rtol=0.05)
    # the debiased divergence of a translate is exactly ½‖v‖²: measured relative error 3.3e-12
    assert abs(float(loss(x + v, x)) / 0.5 - 1) <= 1e-10
