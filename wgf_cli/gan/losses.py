"""Losses of the five training schemes.

Conventions: the critic ``D`` outputs a real number per sample (a logit for the GAN losses).
``critic_loss`` is *minimised* by the critic and ``generator_loss`` by the generator.

========== ======================================== ===================================
loss        critic minimises                          generator minimises
========== ======================================== ===================================
gan         −E log σ(D(x)) − E log(1 − σ(D(G(z))))     E log(1 − σ(D(G(z))))   (minimax)
gan_ns      same                                      −E log σ(D(G(z)))       (non-saturating)
wgan_clip   E D(G(z)) − E D(x), then clip to [−c, c]  −E D(G(z))
wgan_gp     E D(G(z)) − E D(x) + λ E(‖∇D(x̂)‖ − 1)²    −E D(G(z))
sinkhorn    (no critic)                               S_ε(G(z), x)  debiased Sinkhorn divergence
========== ======================================== ===================================

The WGAN generator *minimises* ``−E D(G(z))``: the critic scores data high, so the generator
pushes its samples up the critic (the sign that several reimplementations get wrong).  The
gradient penalty draws **one** interpolation weight per sample and takes the norm of the
gradient **flattened per sample** (:func:`gradient_penalty`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wgf_cli.ot.pointcloud import geomloss_sinkhorn

LOSSES = ["gan", "gan_ns", "wgan_clip", "wgan_gp", "sinkhorn"]
WASSERSTEIN = ("wgan_clip", "wgan_gp")


def critic_loss(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The critic's loss (without the gradient penalty) from its outputs on data and samples."""
    if loss in ("gan", "gan_ns"):
        # -log σ(t) = softplus(-t);  -log(1 - σ(t)) = softplus(t)
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if loss in WASSERSTEIN:
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"loss {loss!r} has no critic")


def generator_loss(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss from the critic's outputs on its samples."""
    if loss == "gan":
        return -F.softplus(d_fake).mean()  # = E log(1 - σ(D)), minimised
    if loss == "gan_ns":
        return F.softplus(-d_fake).mean()  # = -E log σ(D)
    if loss in WASSERSTEIN:
        return -d_fake.mean()
    raise ValueError(f"loss {loss!r} has no critic")


@dataclass
class Penalty:
    """The gradient penalty, the per-sample gradient norms and the interpolation weights."""

    value: torch.Tensor
    grad_norms: torch.Tensor  # (B,)
    eps: torch.Tensor  # (B,) one weight per sample


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``x̂ = ε x + (1 − ε) G(z)`` with one ``ε ~ U[0, 1]`` per sample (broadcast over features)."""
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    eps = torch.rand(real.shape[0], generator=generator, device="cpu", dtype=torch.float64)
    eps = eps.to(device=real.device, dtype=real.dtype)
    shape = (-1,) + (1,) * (real.dim() - 1)
    return eps.view(shape) * real + (1 - eps.view(shape)) * fake, eps


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, lam: float = 10.0,
                     generator: torch.Generator | None = None, one_sided: bool = False) -> Penalty:
    """Two-sided (or one-sided) WGAN-GP penalty ``λ E (‖∇_x D(x̂)‖₂ − 1)²``.

    The gradient of ``Σ_b D(x̂_b)`` with respect to the batch is, row by row, the gradient of
    each sample's critic value (the samples do not interact); each row is flattened and its
    Euclidean norm taken, so the penalty sees one norm per sample.  ``create_graph=True``
    so the penalty is differentiable in the critic's parameters.
    """
    x_hat, eps = interpolate(real.detach(), fake.detach(), generator)
    x_hat.requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norms = grad.reshape(grad.shape[0], -1).norm(dim=1)
    gap = (norms - 1).clamp(min=0) if one_sided else norms - 1
    return Penalty(lam * (gap**2).mean(), norms.detach(), eps)


@torch.no_grad()
def clip_(critic: nn.Module, c: float) -> None:
    """Project every critic parameter (weights *and* biases) onto the box [−c, c]."""
    for p in critic.parameters():
        p.clamp_(-c, c)


class SinkhornLoss:
    """Debiased Sinkhorn divergence ``S_ε`` between generated and data samples.

    GeomLoss's ``SamplesLoss`` (tensorized backend) through
    :func:`wgf_cli.ot.pointcloud.geomloss_sinkhorn`: cost ``|x − y|^p / p``, ``blur`` is
    ε^(1/p) and ``scaling`` the ε-scaling ratio.
    """

    def __init__(self, p: int = 2, blur: float = 0.05, scaling: float = 0.8) -> None:
        self.fn = geomloss_sinkhorn(p=p, blur=blur, scaling=scaling)

    def __call__(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The debiased Sinkhorn divergence between the fake and real samples."""
        return self.fn(fake, real)
