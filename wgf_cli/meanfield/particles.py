"""Particle methods on the neurons: gradient descent, minibatch SGD and Wasserstein proximal steps.

All methods run on the mean-field time axis: one step of size ``dt`` moves every neuron by
``-dt * m * dF/dtheta_i = -dt * grad V_mu(theta_i)`` (:mod:`.network`), so runs with different
widths ``m`` share one time axis and converge, as ``m -> infinity`` and ``dt -> 0``, to the
Wasserstein gradient flow of the neuron measure.

``wprox`` makes implicit steps ``mu^{k+1} = argmin_mu F(mu) + D(mu, mu^k) / (2 tau)`` on the
empirical measures, with ``D`` composed over the output signs when the output weights are
fixed (a neuron never changes sign, so couplings stay within a sign; coupling across signs would
let a positive and a negative neuron trade places at no cost), each part one of

* ``emd``: the exact squared 2-Wasserstein distance (:func:`wgf_cli.ot.pointcloud.w2`, POT's
  ``ot.emd2`` on its torch backend; differentiable in the positions through the cost matrix);
* ``entropic``: twice the debiased Sinkhorn divergence of GeomLoss
  (:func:`wgf_cli.ot.pointcloud.geomloss_sinkhorn` with ``p=2``, whose cost is
  ``|x - y|^2 / 2``) -- the *debiased* form is used because the plain
  entropic cost does not vanish, and has a non-zero gradient, at ``mu = mu^k``;
* ``sliced``: ``d`` times the squared sliced 2-Wasserstein distance over fixed projections
  (:func:`wgf_cli.ot.pointcloud.sliced_w2`); the factor ``d`` makes ``D`` match ``W2^2`` to first
  order (``E <u, v>^2 = |v|^2 / d`` for a uniform direction ``u``), so that small steps follow
  the same time axis.

Each proximal step is solved by inner gradient iterations on the positions, started from
the explicit (gd) step and keeping the best iterate of ``G = F + D/(2 tau)`` (``G(mu^k) =
F(mu^k)`` is a candidate, so ``F`` never increases).  For ``tau -> 0`` the optimal coupling is
the identity and the step is implicit Euler, ``theta_i = theta_i^k - tau m dF/dtheta_i``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from wgf_cli.meanfield import network as N
from wgf_cli.meanfield.data import Dataset
from wgf_cli.ot import pointcloud as pc

Tensor = torch.Tensor
METHODS = ("gd", "sgd", "wprox")
DISTANCES = ("emd", "entropic", "sliced")


@dataclass
class StepInfo:
    """Diagnostics of one particle step (values *before* the step, as in a training log)."""

    loss: float
    grad_norm: float  # ||grad V_mu||_{L2(mu)}: its square is -dF/dt along the flow
    inner_iters: int = 0
    prox_objective: float | None = None
    prox_distance: float | None = None


@dataclass
class ParticleResult:
    """A whole run: final neurons, per-record losses and snapshots."""

    W: Tensor
    alpha: Tensor
    times: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    snapshots: list[tuple[float, Tensor, Tensor]] = field(default_factory=list)
    wall_s: float = 0.0


class ParticleTrainer:
    """Steps the neurons ``(W, alpha)`` of one network.

    Args:
        data: the training (and test) set.
        method: ``gd`` | ``sgd`` | ``wprox``.
        dt: mean-field time per step (``tau`` of the proximal step for ``wprox``).
        weight_decay: ``lam`` of :func:`network.loss`.
        train_alpha: also move the output weights (else they stay at +-1).
        batch_size: minibatch size of ``sgd`` (without replacement within a step).
        noise: diffusion ``D`` of a Langevin term ``sqrt(2 D dt) Z`` added to ``gd`` steps
            (0: none; used to mimic the entropic blur of the grid flow).
        distance, inner_iters, inner_lr, blur, projections: the ``wprox`` solver (inner
            gradient steps of size ``inner_lr * tau`` on ``m G``).
        generator: for minibatches, noise and the sliced projections.
    """

    def __init__(self, data: Dataset, method: str = "gd", dt: float = 0.01, *,
                 weight_decay: float = 0.0, train_alpha: bool = False, batch_size: int = 32,
                 noise: float = 0.0, distance: str = "emd", inner_iters: int = 30,
                 inner_lr: float = 0.5, blur: float = 0.05, projections: int = 64,
                 generator: torch.Generator | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        if not dt > 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        self.data, self.method, self.dt = data, method, float(dt)
        self.weight_decay, self.train_alpha = float(weight_decay), bool(train_alpha)
        self.batch_size, self.noise = int(batch_size), float(noise)
        self.distance, self.inner_iters, self.inner_lr = distance, int(inner_iters), float(inner_lr)
        self.blur, self.projections = float(blur), int(projections)
        self.generator = generator or torch.Generator().manual_seed(0)
        self._proj: Tensor | None = None
        self._sinkhorn = None

    # -- one step -----------------------------------------------------------------------
    def step(self, W: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor, StepInfo]:
        """One step from ``(W, alpha)``; returns the new neurons and the diagnostics."""
        if self.method == "wprox":
            return self._wprox(W, alpha)
        x, y = self.data.x, self.data.y
        if self.method == "sgd":
            idx = torch.randperm(x.shape[0], generator=self.generator)[: self.batch_size]
            idx = idx.to(x.device)
            x, y = x[idx], y[idx]
        g = N.gradient(W, alpha, x, y, self.weight_decay, need_alpha=self.train_alpha)
        m = W.shape[0]
        info = StepInfo(g.loss, _grad_norm(g, m, self.train_alpha))
        if self.method == "sgd":  # report the full-batch loss, not the minibatch one
            info.loss = float(N.loss(W, alpha, self.data.x, self.data.y, self.weight_decay))
        W_new = W - self.dt * m * g.W
        if self.noise > 0:
            z = torch.randn(W.shape, generator=self.generator, dtype=torch.float64)
            W_new = W_new + math.sqrt(2.0 * self.noise * self.dt) * z.to(W)
        a_new = alpha - self.dt * m * g.alpha if self.train_alpha else alpha
        return W_new, a_new, info

    # -- wprox --------------------------------------------------------------------------
    def prox_distance(self, P: Tensor, P0: Tensor, groups: list[Tensor] | None = None) -> Tensor:
        """``D(P, P0)`` between the uniform empirical measures on the rows of ``P`` and ``P0``.

        The distance is differentiable in ``P``.  With ``groups`` (index sets, e.g. the neurons of each output
        sign) the measures are coupled only within a group: ``D = sum_g (|g|/m) D(P_g, P0_g)``
        -- neurons with fixed output weights never change sign, and a coupling across signs
        would let a positive and a negative neuron swap places at no cost.

        Args:
            P: ``(m, d)`` the current particles.
            P0: ``(m, d)`` the particles at the start of the proximal step.
            groups: index tensors of rows coupled among themselves only; ``None`` couples all.

        Returns:
            The squared distance of ``self.distance`` (0-d tensor): exact ``W2^2``, twice the
                debiased Sinkhorn divergence, or the squared sliced W2.
        """
        if groups is not None:
            m = P.shape[0]
            return sum(idx.numel() / m * self.prox_distance(P[idx], P0[idx]) for idx in groups
                       if idx.numel() > 0)
        if self.distance == "emd":
            return pc.w2(P, P0, squared=True, num_iter_max=100_000)
        if self.distance == "entropic":
            if self._sinkhorn is None:
                self._sinkhorn = pc.geomloss_sinkhorn(p=2, blur=self.blur, scaling=0.9)
            return 2.0 * self._sinkhorn(P, P0)
        if self._proj is None or self._proj.shape[0] != P.shape[1]:
            u = torch.randn(P.shape[1], self.projections, generator=self.generator, dtype=torch.float64)
            self._proj = (u / u.norm(dim=0, keepdim=True)).to(P)
        return P.shape[1] * sliced_w2_squared(P, P0, self._proj)

    def _points(self, W: Tensor, alpha: Tensor) -> Tensor:
        return torch.cat([W, alpha[:, None]], dim=1) if self.train_alpha else W

    def _wprox(self, W: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor, StepInfo]:
        tau, m, lam = self.dt, W.shape[0], self.weight_decay
        x, y = self.data.x, self.data.y
        g0 = N.gradient(W, alpha, x, y, lam)
        info = StepInfo(g0.loss, _grad_norm(g0, m, self.train_alpha))
        P0 = self._points(W, alpha).detach()
        # fixed output weights: couple neurons of the same sign only
        groups = None if self.train_alpha else [torch.nonzero(alpha == v).reshape(-1)
                                                 for v in torch.unique(alpha)]
        best = (g0.loss, W, alpha, 0.0)  # G(mu^k) = F(mu^k)
        Wv = (W - tau * m * g0.W).detach()
        av = (alpha - tau * m * g0.alpha).detach() if self.train_alpha else alpha
        it = 0
        for it in range(1, self.inner_iters + 1):  # noqa: B007 - the count is reported
            Wv.requires_grad_(True)
            if self.train_alpha:
                av.requires_grad_(True)
            F = N.loss(Wv, av, x, y, lam)
            D = self.prox_distance(self._points(Wv, av), P0, groups)
            G = F + D / (2.0 * tau)
            Gv = float(G.detach())
            if Gv < best[0]:
                best = (Gv, Wv.detach(), av.detach(), float(D.detach()))
            grads = torch.autograd.grad(G, [Wv, av] if self.train_alpha else [Wv])
            Wv = (Wv - self.inner_lr * tau * m * grads[0]).detach()
            if self.train_alpha:
                av = (av - self.inner_lr * tau * m * grads[1]).detach()
        info.inner_iters, info.prox_objective, info.prox_distance = it, best[0], best[3]
        return best[1], best[2], info

    # -- a run --------------------------------------------------------------------------
    def run(self, W: Tensor, alpha: Tensor, steps: int, *, record_every: int = 1,
            snapshot_steps: set[int] | None = None,
            callback: Callable[[int, float, StepInfo, Tensor, Tensor], None] | None = None
            ) -> ParticleResult:
        """``steps`` steps from ``(W, alpha)``.

        Args:
            W: ``(m, d)`` initial input weights (bias included) of the neurons.
            alpha: ``(m,)`` initial output weights.
            steps: number of steps.
            record_every: steps between recorded losses (the last step is always recorded).
            snapshot_steps: step indices (0 included) at which to keep a copy of the neurons.
            callback: called after every step ``k`` (0 to ``steps``) as
                ``callback(k, time, info, W, alpha)``.

        Returns:
            The :class:`ParticleResult`.
        """
        t0 = time.perf_counter()
        snaps = snapshot_steps or set()
        res = ParticleResult(W, alpha)
        for k in range(steps + 1):
            if k in snaps:
                res.snapshots.append((k * self.dt, W.detach().clone(), alpha.detach().clone()))
            if k == steps:
                g = N.gradient(W, alpha, self.data.x, self.data.y, self.weight_decay)
                info = StepInfo(g.loss, _grad_norm(g, W.shape[0], self.train_alpha))
            else:
                W_new, a_new, info = self.step(W, alpha)
            if k % record_every == 0 or k == steps:
                res.times.append(k * self.dt)
                res.loss.append(info.loss)
                res.test_loss.append(float(N.loss(W, alpha, self.data.x_test, self.data.y_test)))
                res.grad_norm.append(info.grad_norm)
            if callback is not None:
                callback(k, k * self.dt, info, W, alpha)
            if k < steps:
                W, alpha = W_new, a_new
        res.W, res.alpha, res.wall_s = W, alpha, time.perf_counter() - t0
        return res


def sliced_w2_squared(P: Tensor, P0: Tensor, projections: Tensor) -> Tensor:
    """Squared sliced 2-Wasserstein distance between two uniform point clouds of the same size.

    The mean runs over the given unit directions (columns of ``projections``).

    :func:`wgf_cli.ot.pointcloud.sliced_w2` (``squared=True``): in 1-D the optimal coupling of
    equal uniform weights is the sorted matching, differentiable in ``P`` and about 3x faster
    than ``ot.sliced_wasserstein_distance``, which matters inside the prox loop.

    Args:
        P: ``(m, d)`` the first cloud.
        P0: ``(m, d)`` the second cloud.
        projections: ``(d, k)`` unit directions, one per column.

    Returns:
        The squared sliced distance, a 0-d tensor (differentiable in ``P``).
    """
    return pc.sliced_w2(P, P0, projections=projections, squared=True)


def _grad_norm(g: N.Gradient, m: int, train_alpha: bool) -> float:
    """``sqrt((1/m) sum_i |m dF/dtheta_i|^2)``, the L2(mu) norm of the Wasserstein velocity."""
    sq = float((g.W * g.W).sum())
    if train_alpha:
        sq += float((g.alpha * g.alpha).sum())
    return math.sqrt(m * sq)
