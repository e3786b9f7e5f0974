"""The vanishing gradient of the original GAN: two distributions on parallel lines.

``P_0`` is uniform on the segment ``{0} × [0, 1]`` and the generator's ``P_θ`` uniform on
``{θ} × [0, 1]`` (Arjovsky, Chintala & Bottou 2017, Example 1).  In closed form

- ``JS(P_0, P_θ) = log 2`` for every ``θ ≠ 0`` (0 at ``θ = 0``): the supports are disjoint, so
  the Jensen-Shannon divergence is constant and its gradient in ``θ`` is **zero**;
- ``W1(P_0, P_θ) = |θ|``: its gradient ``sign θ`` points the generator home from any distance.

The *trained* versions: a discriminator ``D = σ(f)`` trained on the GAN loss reaches the value
``max_D E_P log D + E_Q log(1 − D) = 2 JS − log 4``, so ``(value + log 4) / 2`` estimates JS; the
minimax generator's gradient ``∂_θ E_Q log(1 − D(θ, y))`` vanishes as ``D`` saturates.  A
WGAN-GP critic (two-sided penalty weight ``λ``, interpolates uniform between the lines)
reaches ``E_P f − E_Q f = k|θ|`` with the slope ``k = 1 + |θ| / (2λ)`` that maximises
``k|θ| − λ (k − 1)²`` (:func:`w1_gp_value`; ``→ |θ|`` as ``λ → ∞``), and its generator gradient
``−∂_θ E_Q f(θ, y)`` is about ``sign(θ) k``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

LOG2 = math.log(2.0)


def js_divergence(theta):
    """Closed form ``JS(P_0, P_θ)``: ``log 2`` for ``θ ≠ 0``, 0 at ``θ = 0``."""
    th = np.asarray(theta, dtype=np.float64)
    return np.where(th == 0, 0.0, LOG2)


def w1_distance(theta):
    """Closed form ``W1(P_0, P_θ) = |θ|``."""
    return np.abs(np.asarray(theta, dtype=np.float64))


def w1_gp_value(theta, lam: float):
    """The WGAN-GP critic's value at the penalised optimum, without the penalty.

    ``E_P f − E_Q f = k |θ|`` with ``k = 1 + |θ| / (2λ)``, i.e. ``|θ| + θ² / (2λ)``.
    """
    th = np.abs(np.asarray(theta, dtype=np.float64))
    return th + th * th / (2.0 * lam)


def w1_gp_slope(theta, lam: float):
    """The slope ``k = 1 + |θ| / (2λ)`` of that critic between the lines (its generator gradient)."""
    return 1.0 + np.abs(np.asarray(theta, dtype=np.float64)) / (2.0 * lam)


def sample_line(theta: float, n: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """``n`` points of ``P_θ``: ``(θ, U[0, 1])``."""
    y = torch.rand(n, 1, generator=generator, dtype=torch.float64)
    return torch.cat([torch.full_like(y, theta), y], 1).to(dtype)


def critic_mlp(hidden: int = 64, depth: int = 2) -> nn.Sequential:
    """A ReLU MLP from the plane to one output (``depth`` hidden layers of width ``hidden``)."""
    layers: list[nn.Module] = []
    d = 2
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    layers.append(nn.Linear(d, 1))
    return nn.Sequential(*layers)


@dataclass
class TrainedCritic:
    """A critic trained at one ``θ`` and what it measures on fresh samples."""
    theta: float
    kind: str  # "gan" | "wgan_gp"
    estimate: float  # JS estimate (gan) or E_P f - E_Q f (wgan_gp), on fresh samples
    generator_grad: float  # d/dθ of the divergence estimate the generator descends
    value: float  # gan: E_P log D + E_Q log(1 - D); wgan_gp: the estimate


def train_critic(theta: float, kind: str, steps: int = 500, batch: int = 256, hidden: int = 64,
                 lr: float = 1e-3, lam: float = 10.0, seed: int = 0, eval_samples: int = 4096) -> TrainedCritic:
    """Train a GAN discriminator or a WGAN-GP critic between two parallel lines and measure it.

    Train a GAN discriminator (``kind="gan"``, logits ``f``, ``D = σ(f)``) or a WGAN-GP critic
    (``kind="wgan_gp"``) to separate ``P_0`` from ``P_θ`` with Adam, then measure on fresh samples the
    divergence estimate and its gradient in ``θ`` (autograd through the generated points ``(θ, y)``).
    """
    if kind not in ("gan", "wgan_gp"):
        raise ValueError(f"kind must be gan or wgan_gp, got {kind!r}")
    torch.manual_seed(seed)
    f = critic_mlp(hidden)
    opt = torch.optim.Adam(f.parameters(), lr=lr, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        real, fake = sample_line(0.0, batch, g), sample_line(theta, batch, g)
        fr, ff = f(real), f(fake)
        if kind == "gan":  # -(E_P log σ(f) + E_Q log(1 - σ(f)))
            loss = nn.functional.softplus(-fr).mean() + nn.functional.softplus(ff).mean()
        else:
            eps = torch.rand(batch, 1, generator=g)
            x = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad = torch.autograd.grad(f(x).sum(), x, create_graph=True)[0]
            loss = ff.mean() - fr.mean() + lam * ((grad.norm(dim=1) - 1) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    g_eval = torch.Generator().manual_seed(10_000 + seed)
    real = sample_line(0.0, eval_samples, g_eval)
    y = torch.rand(eval_samples, 1, generator=g_eval, dtype=torch.float64).float()
    th = torch.tensor(float(theta), requires_grad=True)
    fake = torch.cat([th.expand(eval_samples, 1), y], 1)
    for q in f.parameters():
        q.requires_grad_(False)
    fr, ff = f(real), f(fake)
    if kind == "gan":
        value = -nn.functional.softplus(-fr).mean() - nn.functional.softplus(ff).mean()
        objective = value  # the minimax generator descends E_Q log(1 - D) (and so the value)
        estimate = (float(value.detach()) + math.log(4.0)) / 2.0
    else:
        value = fr.mean() - ff.mean()
        objective = value
        estimate = float(value.detach())
    (grad,) = torch.autograd.grad(objective, th)
    return TrainedCritic(float(theta), kind, estimate, float(grad), float(value.detach()))
