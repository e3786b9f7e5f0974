"""Entropic JKO flow of the neuron measure on a (w, b) grid (d = 2, output weights fixed at +-1).

The measure is a pair of non-negative measures ``r_s`` on one :class:`~wgf_cli.ot.grid.Grid`
over the (w, b) plane, one per output sign ``alpha_s`` in ``(+1, -1)``, stored as a tensor of
shape ``(2, n_w, n_b)`` of masses (total mass 1, the sign masses are conserved because the
neurons never change sign).  The mean-field loss is

    F(r) = (1/n) sum_j (f_r(x_j) - y_j)^2,   f_r(x) = sum_s alpha_s sum_c r_{s,c} relu(<theta_c, x>)

(+ the weight decay ``lam sum_s sum_c r_{s,c} (|theta_c|^2 + 1)``), and one step is

    r^{k+1} = argmin_r F(r) + (1/(2h)) sum_s W_gamma(r_s, r_s^k),

solved with the grid OT engine's KL-proximal scaling iterations
(:class:`wgf_cli.ot.sinkhorn.ProxSinkhorn` with the separable Gibbs kernel of
:class:`wgf_cli.ot.grid.GridGeometry`, applied to both signs at once through the batch axis),
exactly as :class:`wgf_cli.flows.jko.EntropicJKO` does for the free energies.  ``F`` is quadratic;
its KL-proximal map is taken with ``F`` *linearised*: ``prox_log(log p) = log p - sigma V``,
``sigma = 2h/gamma``, where ``V = dF/dr`` is the potential of :func:`network.potential`:

* ``linearize="inner"``: ``V`` is re-evaluated inside the iterations at the current
  iterate of the first marginal (``r = p exp(-sigma V)`` is exactly the first marginal after
  the update), rescaled per sign to the conserved sign mass (the iterates reach the right
  mass only at the fixed point), optionally damped by ``relax``.  At the fixed point ``V = V(r^{k+1})``: the
  optimality condition of the *implicit* step.
* ``linearize="step"`` (default): ``V = V(r^k)`` for the whole step (semi-implicit, like the
  aggregation energy of ``wgf jko``).

Entropic blur: every step also convolves with the Gibbs kernel, of variance ``s^2 ~ gamma/2``
per axis (:meth:`GridGeometry.kernel_variance`), i.e. an extra diffusion ``D_blur = s^2/(2h) ~
gamma/(4h)`` that particle gradient descent does not have.  The JKO solver's ``debias`` lowers a
linear diffusion already in the energy; the mean-field loss has none, so the blur cannot be
compensated here: it is *measured* instead (see ``blur_diffusion`` and the compare experiment,
which runs particles with exactly that Langevin diffusion to quantify its effect on the loss).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from wgf_cli.meanfield import network as N
from wgf_cli.meanfield.data import Dataset
from wgf_cli.ot.grid import Grid, GridGeometry
from wgf_cli.ot.sinkhorn import LogDomain, ProxProblem, ProxSinkhorn

Tensor = torch.Tensor


@dataclass
class GridStep:
    """Diagnostics of one grid JKO step."""

    r: Tensor
    loss: float
    inner_iters: int
    marginal_error: float
    converged: bool
    log_domain: bool
    potential_change: float  # max |V_last - V_previous| at the end of the iterations
    wall_s: float


class MeanFieldGrid:
    """The neuron measure of a d = 2 network on a (w, b) grid and its mean-field loss.

    Args:
        grid: 2-D grid over the (w, b) plane.
        data: training set (``data.dim == 2``).
        weight_decay: ``lam``.
        alphas: output weight of each measure (default ``(+1, -1)``).
    """

    def __init__(self, grid: Grid, data: Dataset, weight_decay: float = 0.0,
                 alphas: tuple[float, ...] = (1.0, -1.0)) -> None:
        if grid.dim != 2 or data.dim != 2:
            raise ValueError("the grid flow needs d = 2 (one input + the bias) and a 2-D grid")
        self.grid, self.data, self.weight_decay = grid, data, float(weight_decay)
        self.points = grid.points()  # (N, 2) cell centres (w, b)
        self.alphas = torch.tensor(alphas, dtype=grid.dtype, device=self.points.device)
        self.phi = torch.relu(self.points @ data.x.T)  # (N, n) features of every cell
        self.shape = (len(alphas), *grid.shape)

    def predict(self, r: Tensor, x: Tensor | None = None) -> Tensor:
        """Network output ``f_r`` at the training inputs (or at ``x``)."""
        c = (self.alphas[:, None] * r.reshape(r.shape[0], -1)).sum(0)  # signed mass per cell
        if x is None:
            return c @ self.phi
        return c @ torch.relu(self.points @ x.T)

    def loss(self, r: Tensor, x: Tensor | None = None, y: Tensor | None = None) -> float:
        """``F(r)`` on the training set (or on ``(x, y)``, without weight decay)."""
        if x is not None:
            e = self.predict(r, x) - y
            return float((e * e).mean())
        e = self.predict(r) - self.data.y
        out = float((e * e).mean())
        if self.weight_decay:
            out += self.weight_decay * float((r * self._decay()).sum())
        return out

    def _decay(self) -> Tensor:
        sq = (self.points * self.points).sum(-1)
        return torch.stack([sq + a * a for a in self.alphas]).reshape(self.shape)

    def potential(self, r: Tensor) -> Tensor:
        """``dF/dr`` on the grid, shape ``(2, n_w, n_b)``."""
        e = self.predict(r) - self.data.y
        base = self.phi @ e * (2.0 / self.data.x.shape[0])  # (N,)
        V = (self.alphas[:, None] * base[None, :]).reshape(self.shape)
        if self.weight_decay:
            V = V + self.weight_decay * self._decay()
        return V

    def velocity_norm(self, r: Tensor) -> float:
        """``||grad V_r||_{L2(r)}``, the grid counterpart of the particles' ``grad_norm``.

        ``grad V`` is taken by centred differences on the grid (one-sided at the walls).

        Args:
            r: ``(2, n_w, n_b)`` cell masses per sign.

        Returns:
            The norm, a float.
        """
        V = self.potential(r)
        gw, gb = torch.gradient(V, spacing=self.grid.spacing, dim=(1, 2))
        return float(((gw * gw + gb * gb) * r).sum() / r.sum()) ** 0.5

    def gaussian(self, std: float, sign_mass: tuple[float, ...] = (0.5, 0.5)) -> Tensor:
        """``N(0, std^2 I)`` in (w, b) for every sign, as cell masses.

        Args:
            std: standard deviation of the Gaussian in each of ``w`` and ``b``.
            sign_mass: total mass of each sign's measure.

        Returns:
            ``(2, n_w, n_b)`` masses: the density at the cell centres, normalised on the grid
                to ``sign_mass[s]`` for sign ``s``.
        """
        sq = (self.points * self.points).sum(-1)
        dens = torch.exp(-0.5 * sq / std**2)
        dens = dens / dens.sum()
        return torch.stack([mass * dens for mass in sign_mass]).reshape(self.shape)

    def from_particles(self, W: Tensor, alpha: Tensor) -> Tensor:
        """Nearest-cell histogram of neurons (mass 1/m each, by sign), clamped to the box."""
        m = W.shape[0]
        idx = []
        for k in range(2):
            lo, dx, n = self.grid.lo[k], self.grid.spacing[k], self.grid.shape[k]
            idx.append(torch.clamp(((W[:, k] - lo) / dx).floor().long(), 0, n - 1))
        flat = idx[0] * self.grid.shape[1] + idx[1]
        out = torch.zeros(self.shape[0], self.grid.size, dtype=self.grid.dtype, device=W.device)
        for s, a in enumerate(self.alphas):
            sel = alpha == a
            out[s].index_add_(0, flat[sel], torch.full((int(sel.sum()),), 1.0 / m, dtype=out.dtype,
                                                       device=W.device))
        return out.reshape(self.shape)


class GridJKO:
    """Entropic JKO steps of :class:`MeanFieldGrid` (module doc).

    Args:
        problem: the grid measure and its loss.
        h: mean-field time per step.
        gamma: entropic parameter of the Gibbs kernel.
        linearize: ``"inner"`` or ``"step"``.
        relax: damping ``beta`` of the inner update ``V <- (1-beta) V + beta V(r)`` (1: none).
        tol, inner_max, check_every, log_domain, overrelax: of :class:`ProxSinkhorn`.
    """

    def __init__(self, problem: MeanFieldGrid, h: float, gamma: float, *, linearize: str = "step",
                 relax: float = 0.05, tol: float = 1e-9, inner_max: int = 3000, check_every: int = 5,
                 log_domain: LogDomain = "auto", overrelax: float = 1.0) -> None:
        if not h > 0 or not gamma > 0:
            raise ValueError(f"h and gamma must be > 0, got h={h}, gamma={gamma}")
        if linearize not in ("inner", "step"):
            raise ValueError(f"linearize must be 'inner' or 'step', got {linearize!r}")
        if not 0 < relax <= 1:
            raise ValueError(f"relax must be in (0, 1], got {relax}")
        self.problem, self.h, self.gamma = problem, float(h), float(gamma)
        self.geom = GridGeometry(problem.grid, gamma)
        self.sigma = 2.0 * self.h / self.gamma
        self.linearize, self.relax = linearize, float(relax)
        self.tol, self.inner_max, self.check_every = tol, inner_max, check_every
        self.log_domain: LogDomain = log_domain
        self.overrelax = overrelax
        var = self.geom.kernel_variance()
        #: variance per axis the Gibbs kernel adds at every step
        self.blur_variance = sum(var) / len(var)
        #: extra diffusion of the scheme, ``s^2 / (2h)``
        self.blur_diffusion = self.blur_variance / (2.0 * self.h)
        self.warm_start: tuple[Tensor, Tensor] | None = None
        self._sticky_log = log_domain is True

    def step(self, r: Tensor) -> GridStep:
        """One JKO step from ``r`` (warm-started from the previous step's scalings)."""
        t0 = time.perf_counter()
        state = {"V": self.problem.potential(r), "change": 0.0}
        sigma = self.sigma
        sign_mass = r.reshape(r.shape[0], -1).sum(1)
        view = (-1,) + (1,) * (r.ndim - 1)
        # the sign masses are fixed by the constraint pi^T 1 = r_k, so a constant per sign in V
        # changes nothing but the scalings: centre V on its r_k-mean to keep exp(-sigma V)
        # inside the float range (the plain path; large |sigma V| would force the log domain)
        shift = ((state["V"] * r).reshape(r.shape[0], -1).sum(1) / sign_mass).reshape(view)

        def prox_log(log_p: Tensor) -> Tensor:
            log_r = log_p - sigma * (state["V"] - shift)
            if self.linearize == "inner":
                # the first marginal of the current iterate, rescaled to the conserved mass
                # of each sign (the iterates only reach it at the fixed point)
                r_now = torch.exp(log_r - torch.logsumexp(log_r.reshape(r.shape[0], -1), 1).reshape(view))
                r_now = r_now * sign_mass.reshape(view)
                if bool(torch.isfinite(r_now).all()):
                    V_new = self.problem.potential(r_now)
                    V_new = state["V"] + self.relax * (V_new - state["V"])
                    state["change"] = float((V_new - state["V"]).abs().max())
                    state["V"] = V_new
            return log_r

        solver = ProxSinkhorn(tol=self.tol, inner_max=self.inner_max, check_every=self.check_every,
                              log_domain=True if self._sticky_log else self.log_domain,
                              overrelax=self.overrelax)
        res = solver.solve(ProxProblem(self.geom, r, prox_log), init=self.warm_start)
        if res.log_domain:
            self._sticky_log = True
        self.warm_start = (res.f, res.g)
        return GridStep(res.rho, self.problem.loss(res.rho), res.n_iters, res.error, res.converged,
                        res.log_domain, state["change"], time.perf_counter() - t0)


def blurred_predict(W: Tensor, alpha: Tensor, x: Tensor, variance: float) -> Tensor:
    """Output of the network whose every neuron is spread by ``N(0, variance I)`` in ``w``.

    In closed form, ``E relu(u + s Z) = u Phi(u/s) + s phi(u/s)`` with ``u = <w, x>``,
    ``s = sqrt(variance) |x|``; ``variance = 0`` gives the network itself.

    Args:
        W: ``(m, d)`` input weights of the neurons.
        alpha: ``(m,)`` output weights.
        x: ``(n, d)`` inputs.
        variance: variance of the spread, per coordinate of ``w``.

    Returns:
        ``(n,)`` outputs, ``(1/m) sum_i alpha_i E relu(...)``.
    """
    u = x @ W.T  # (n, m)
    if variance <= 0:
        return torch.relu(u) @ alpha / W.shape[0]
    s = math.sqrt(variance) * x.norm(dim=1, keepdim=True)
    z = u / s
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return (u * cdf + s * pdf) @ alpha / W.shape[0]


def measure_output_check(problem: MeanFieldGrid, r: Tensor) -> tuple[Tensor, Tensor]:
    """The grid measure as a weighted :class:`network.NeuronMeasure` and its output (for tests)."""
    pts = problem.points
    W = torch.cat([pts, pts])
    alpha = torch.cat([torch.full((pts.shape[0],), float(a), dtype=pts.dtype) for a in problem.alphas])
    mu = N.NeuronMeasure(W, alpha, r.reshape(-1))
    return W, mu.output(problem.data.x)
