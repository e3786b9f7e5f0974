"""The two-layer ReLU network in mean-field scaling.

Outputs, loss, explicit gradients, the potential ``dF/dmu`` and four measure representations of the
same network.

``W`` is ``(m, d)`` (input weights with the bias last, inputs augmented with a constant 1),
``alpha`` is ``(m,)``; ``f(x) = (1/m) sum_i alpha_i relu(<w_i, x>)``.  The loss is

    F(W, alpha) = (1/n) sum_j (f(x_j) - y_j)^2 + lam * (1/m) sum_i (|w_i|^2 + alpha_i^2),

where the weight decay is written as the integral ``lam int (|w|^2 + alpha^2) dmu`` of the
neuron measure, so that it has a mean-field limit.  With ``e_j = f(x_j) - y_j`` and the
convention ``relu'(0) = 0`` the explicit gradient is

    dF/dw_i     = (2 alpha_i / (n m)) sum_j e_j 1[<w_i, x_j> > 0] x_j + (2 lam / m) w_i,
    dF/dalpha_i = (2 / (n m)) sum_j e_j relu(<w_i, x_j>) + (2 lam / m) alpha_i

(the factor 2 comes from the square; it is easy to drop by mistake).  ``m`` times these is
the gradient of the potential ``V(w, alpha) = (2/n) sum_j e_j alpha relu(<w, x_j>) + lam
(|w|^2 + alpha^2)`` at the particle, i.e. the Wasserstein velocity of the mean-field flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


def predict(W: Tensor, alpha: Tensor, x: Tensor) -> Tensor:
    """``f(x_j) = (1/m) sum_i alpha_i relu(<w_i, x_j>)`` for augmented ``x`` (n, d)."""
    return torch.relu(x @ W.T) @ alpha / W.shape[0]


def loss(W: Tensor, alpha: Tensor, x: Tensor, y: Tensor, weight_decay: float = 0.0) -> Tensor:
    """The mean-field square loss ``F`` (a 0-d tensor, differentiable)."""
    e = predict(W, alpha, x) - y
    out = (e * e).mean()
    if weight_decay:
        out = out + weight_decay * ((W * W).sum() + (alpha * alpha).sum()) / W.shape[0]
    return out


@dataclass
class Gradient:
    """Explicit gradient of :func:`loss` and the loss itself (computed in the same pass)."""

    W: Tensor
    alpha: Tensor
    loss: float
    residual: Tensor  # e_j = f(x_j) - y_j


def gradient(W: Tensor, alpha: Tensor, x: Tensor, y: Tensor, weight_decay: float = 0.0, *,
             need_alpha: bool = True) -> Gradient:
    """``dF/dW`` and ``dF/dalpha`` in closed form (no autograd, no graph).

    Memory passes over the ``(n, m)`` pre-activations: one product, an in-place relu, the
    output product, one masked select and one product back; ``need_alpha=False`` skips the
    ``dF/dalpha`` product (fixed output weights) and returns zeros for it.
    """
    m, n = W.shape[0], x.shape[0]
    act = (x @ W.T).relu_()  # (n, m); relu'(0) = 0, so the gate is act > 0
    e = act @ alpha / m - y
    gate = torch.where(act > 0, e[:, None], torch.zeros((), dtype=W.dtype, device=W.device))
    gW = (2.0 / (n * m)) * alpha[:, None] * (gate.T @ x)
    ga = (2.0 / (n * m)) * (act.T @ e) if need_alpha else torch.zeros_like(alpha)
    value = float((e * e).mean())
    if weight_decay:
        gW = gW + (2.0 * weight_decay / m) * W
        if need_alpha:
            ga = ga + (2.0 * weight_decay / m) * alpha
        value += weight_decay * float((W * W).sum() + (alpha * alpha).sum()) / m
    return Gradient(gW, ga, value, e)


def potential(theta: Tensor, alpha: Tensor | float, x: Tensor, residual: Tensor,
              weight_decay: float = 0.0) -> Tensor:
    """The first variation ``V(theta, alpha)`` of the loss at the points ``theta``.

    First variation ``V(theta, alpha) = (2/n) sum_j e_j alpha relu(<theta, x_j>) (+ lam (|theta|^2 +
    alpha^2))`` at points ``theta`` (N, d) with output weights ``alpha`` (N,) or a scalar.
    """
    base = torch.relu(theta @ x.T) @ residual * (2.0 / x.shape[0])
    out = alpha * base
    if weight_decay:
        out = out + weight_decay * ((theta * theta).sum(-1) + torch.as_tensor(alpha) ** 2)
    return out


# ----------------------------------------------------------------------------------------
# four representations of one network as a measure
# ----------------------------------------------------------------------------------------
@dataclass
class NeuronMeasure:
    """``mu = sum_i weights_i delta_(w_i, alpha_i)`` on ``R^d x R`` (weights ``1/m``)."""

    W: Tensor
    alpha: Tensor
    weights: Tensor

    @classmethod
    def from_network(cls, W: Tensor, alpha: Tensor) -> NeuronMeasure:
        """The empirical measure of a network's neurons: uniform weights ``1/m``."""
        m = W.shape[0]
        return cls(W, alpha, torch.full((m,), 1.0 / m, dtype=W.dtype, device=W.device))

    def output(self, x: Tensor) -> Tensor:
        """``int alpha relu(<w, x>) dmu``."""
        return torch.relu(x @ self.W.T) @ (self.weights * self.alpha)


@dataclass
class SignedMeasure:
    """The network as one signed measure ``nu = sum_i c_i delta_(w_i)`` on ``R^d``.

    ``nu = sum_i c_i delta_(w_i)`` on ``R^d`` with signed masses ``c_i = alpha_i / m`` (atoms at the
    same ``w`` merged).
    """

    W: Tensor
    mass: Tensor

    @classmethod
    def from_measure(cls, mu: NeuronMeasure) -> SignedMeasure:
        """The signed measure of ``mu``, atoms at the same ``w`` merged."""
        uniq, inv = torch.unique(mu.W, dim=0, return_inverse=True)
        mass = torch.zeros(uniq.shape[0], dtype=mu.W.dtype, device=mu.W.device)
        mass.index_add_(0, inv, mu.weights * mu.alpha)
        return cls(uniq, mass)

    def output(self, x: Tensor) -> Tensor:
        """``int relu(<w, x>) dnu``."""
        return torch.relu(x @ self.W.T) @ self.mass


@dataclass
class MeasurePair:
    """The network as two non-negative measures ``(nu_+, nu_-)`` on ``R^d``.

    ``(nu_+, nu_-)``: the positive and negative parts of the output weights, two non-negative measures
    on ``R^d`` with ``f = int relu dnu_+ - int relu dnu_-``.
    """

    W_pos: Tensor
    mass_pos: Tensor
    W_neg: Tensor
    mass_neg: Tensor

    @classmethod
    def from_measure(cls, mu: NeuronMeasure) -> MeasurePair:
        """Split ``mu`` by the sign of its output weights."""
        c = mu.weights * mu.alpha
        pos, neg = c > 0, c < 0
        return cls(mu.W[pos], c[pos], mu.W[neg], -c[neg])

    def output(self, x: Tensor) -> Tensor:
        """``int relu(<w, x>) dnu_+ - int relu(<w, x>) dnu_-``."""
        return torch.relu(x @ self.W_pos.T) @ self.mass_pos - torch.relu(x @ self.W_neg.T) @ self.mass_neg


@dataclass
class SphereMeasure:
    """The network as a measure on ``S^(d-1) x R`` (directions and rescaled weights).

    Atoms ``(d_i, alpha~_i)`` on ``S^(d-1) x R`` with ``d_i = w_i/|w_i|`` and ``alpha~_i = |w_i|
    alpha_i`` (1-homogeneity of relu); a neuron with ``w_i = 0`` gets ``alpha~_i = 0`` and the direction
    ``e_1``.
    """

    direction: Tensor
    alpha_tilde: Tensor
    weights: Tensor

    @classmethod
    def from_measure(cls, mu: NeuronMeasure) -> SphereMeasure:
        """The sphere view of ``mu``."""
        r = mu.W.norm(dim=1)
        e1 = torch.zeros_like(mu.W)
        e1[:, 0] = 1.0
        safe = torch.where(r > 0, r, torch.ones_like(r))
        direction = torch.where((r > 0)[:, None], mu.W / safe[:, None], e1)
        return cls(direction, r * mu.alpha, mu.weights)

    def output(self, x: Tensor) -> Tensor:
        """``int alpha~ relu(<d, x>)`` over the atoms."""
        return torch.relu(x @ self.direction.T) @ (self.weights * self.alpha_tilde)

    def to_measure(self) -> NeuronMeasure:
        """Back to ``(w, alpha)`` with ``|alpha| = 1`` where ``alpha~ != 0``."""
        a = torch.sign(self.alpha_tilde)
        return NeuronMeasure(self.direction * self.alpha_tilde.abs()[:, None], a, self.weights)


def init_particles(m: int, dim: int, std: float, generator: torch.Generator, *,
                   dtype=torch.float64, device="cpu") -> tuple[Tensor, Tensor]:
    """Initial neurons: Gaussian input weights and output weights of alternating sign.

    ``m`` neurons ``w_i ~ N(0, std^2 I_d)`` with ``alpha = +1`` for the first ``ceil(m/2)`` and ``-1``
    for the rest (sampled on the CPU from ``generator``, so the same seed gives the same network on
    every device).
    """
    W = std * torch.randn(m, dim, generator=generator, dtype=torch.float64)
    k = math.ceil(m / 2)
    alpha = torch.cat([torch.ones(k, dtype=torch.float64), -torch.ones(m - k, dtype=torch.float64)])
    return W.to(dtype=dtype, device=device), alpha.to(dtype=dtype, device=device)
