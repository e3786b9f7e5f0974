"""Dynamic optimal transport: the Benamou-Brenier problem on a staggered space-time grid.

W2^2(rho0, rho1) = min over (rho, m) of  int_0^1 int |m|^2 / rho dx dt
subject to the continuity equation d_t rho + div m = 0, rho(0) = rho0, rho(1) = rho1 and
no flux through the walls of the box.  Solved by Douglas-Rachford proximal splitting as in
Papadakis, Peyre and Oudet (2014), "Optimal transport with proximal splitting":

* the *staggered* variable ``U = (rho_s, m_s)``: ``rho_s`` at the time nodes ``k dt``
  (k = 0..P) and the space cell centres; ``m_s[j]`` at the faces along axis ``j`` (N_j + 1 of
  them, the two walls included) and the time centres ``(k + 1/2) dt``;
* the *centred* variable ``V = (rho, m)``: every component at the time centres and cell
  centres; the interpolation ``V = I(U)`` averages the two neighbours along the staggered axis;
* ``G1(U, V) = iota_C(U) + J(V)``: ``C`` = the discrete continuity equation with the boundary
  values, projected on by a Neumann Poisson solve in space-time (diagonal in the DCT-II basis,
  applied as small dense matrices along each axis, so exact to round-off on any device);
  ``J`` = the kinetic action, whose pointwise proximal map is the largest root of a cubic,
  solved in closed form (:func:`prox_kinetic`);
* ``G2(U, V) = iota_{V = I(U)}``: a projection solving ``(Id + I* I) U = U' + I* V'``, a
  small tridiagonal system per axis (precomputed inverse).

Plain PyTorch (any device and float dtype); no CLI, Hydra or experiment imports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Tensor = torch.Tensor


# ----------------------------------------------------------------------------------------
# the pointwise proximal map of the kinetic action
# ----------------------------------------------------------------------------------------
def prox_kinetic(rho: Tensor, m: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """Pointwise proximal map of the kinetic energy ``gamma * |m|^2 / (2 rho)``.

    Proximal map of ``gamma * f`` with ``f(rho, m) = |m|^2 / (2 rho)`` (``rho > 0``; 0 at ``(0, 0)``;
    +inf otherwise), pointwise.

    ``rho``: any shape ``S``; ``m``: shape ``(d, *S)`` (one row per component).  Returns the
    minimiser ``(rho*, m*)`` of ``1/2 (r - rho)^2 + 1/2 |q - m|^2 + gamma |q|^2 / (2 r)``.

    The optimality conditions give ``q = r m / (r + gamma)`` and, for ``s = r + gamma``,
    the cubic ``s^3 - a s^2 - c = 0`` with ``a = rho + gamma``, ``c = gamma |m|^2 / 2 >= 0``;
    its largest real root (Cardano, one Newton polish step) gives ``r``; when ``r <= 0`` the
    minimiser is ``(0, 0)``.
    """
    g = float(gamma)
    c = 0.5 * g * (m * m).sum(dim=0)
    a = rho + g
    # depressed cubic z^3 + p z + q = 0 for s = z + a/3
    p = -(a * a) / 3.0
    q = -2.0 * a**3 / 27.0 - c
    disc = c * (a**3 / 27.0 + c / 4.0)  # (q/2)^2 + (p/3)^3
    # one real root (disc >= 0): Cardano
    sq = torch.sqrt(torch.clamp(disc, min=0.0))
    u = -q / 2.0 + sq
    w = -q / 2.0 - sq
    z = torch.sign(u) * torch.abs(u) ** (1.0 / 3.0) + torch.sign(w) * torch.abs(w) ** (1.0 / 3.0)
    three = disc < 0  # three real roots (then p < 0; only where rho < -gamma): the largest,
    if bool(three.any()):  # trigonometric form, on those points only
        pn = torch.clamp(-p[three], min=torch.finfo(rho.dtype).tiny)
        arg = torch.clamp((3.0 * q[three] / (2.0 * -pn)) * torch.sqrt(3.0 / pn), -1.0, 1.0)
        z[three] = 2.0 * torch.sqrt(pn / 3.0) * torch.cos(torch.arccos(arg) / 3.0)
    s = z + a / 3.0
    # Newton polish on s^3 - a s^2 - c (the root is simple where it matters)
    f = s * s * (s - a) - c
    fp = s * (3.0 * s - 2.0 * a)
    safe = fp.abs() > 1e-30
    s = torch.where(safe, s - f / torch.where(safe, fp, torch.ones_like(fp)), s)
    r = s - g
    pos = r > 0
    r = torch.where(pos, r, torch.zeros_like(r))
    mq = torch.where(pos, r / (r + g), torch.zeros_like(r)) * m
    return r, mq


def kinetic_action(rho: Tensor, m: Tensor, weight: float = 1.0) -> float:
    """``weight * sum |m|^2 / rho`` over the cells with ``rho > 0`` (twice the action of :func:`prox_kinetic`'s ``f``).

    The Benamou-Brenier W2^2 estimate for ``weight = dt dx^d``.
    """
    pos = rho > 0
    e = torch.where(pos, (m * m).sum(dim=0) / torch.where(pos, rho, torch.ones_like(rho)),
                    torch.zeros_like(rho))
    return float(weight * e.sum())


# ----------------------------------------------------------------------------------------
# the staggered grid
# ----------------------------------------------------------------------------------------
def _along(x: Tensor, axis: int, mat: Tensor) -> Tensor:
    """``mat @ x`` along ``axis`` of ``x``."""
    return torch.movedim(torch.tensordot(mat, torch.movedim(x, axis, 0), dims=1), 0, axis)


def _interp(x: Tensor, axis: int) -> Tensor:
    n = x.shape[axis]
    return 0.5 * (x.narrow(axis, 0, n - 1) + x.narrow(axis, 1, n - 1))


def _interp_adjoint(y: Tensor, axis: int) -> Tensor:
    shape = list(y.shape)
    shape[axis] += 1
    out = torch.zeros(shape, dtype=y.dtype, device=y.device)
    n = y.shape[axis]
    out.narrow(axis, 0, n).add_(0.5 * y)
    out.narrow(axis, 1, n).add_(0.5 * y)
    return out


def _dct_matrix(n: int, dtype, device) -> Tensor:
    """Orthonormal DCT-II matrix: it diagonalises the Neumann second difference of size ``n``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * k * (i + 0.5) / n) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c.to(dtype=dtype, device=device)


@dataclass
class Staggered:
    """``U = (rho, m)`` on the staggered space-time grid.

    ``rho`` of shape ``(P+1, *N)``, ``m[j]`` of shape ``(P, N_1, .., N_j + 1, .., N_d)``.
    """

    rho: Tensor
    m: list[Tensor]

    def __add__(self, o: Staggered) -> Staggered:
        return Staggered(self.rho + o.rho, [a + b for a, b in zip(self.m, o.m, strict=True)])

    def __sub__(self, o: Staggered) -> Staggered:
        return Staggered(self.rho - o.rho, [a - b for a, b in zip(self.m, o.m, strict=True)])

    def scale(self, s: float) -> Staggered:
        """The variable times ``s``."""
        return Staggered(self.rho * s, [a * s for a in self.m])

    def sqnorm(self) -> float:
        """The squared Euclidean norm over all entries."""
        return float((self.rho**2).sum() + sum((a**2).sum() for a in self.m))


@dataclass
class Centred:
    """``V = (rho, m)`` at the time centres and cell centres: ``rho`` ``(P, *N)``, ``m`` ``(d, P, *N)``."""

    rho: Tensor
    m: Tensor

    def __add__(self, o: Centred) -> Centred:
        return Centred(self.rho + o.rho, self.m + o.m)

    def __sub__(self, o: Centred) -> Centred:
        return Centred(self.rho - o.rho, self.m - o.m)

    def scale(self, s: float) -> Centred:
        """The variable times ``s``."""
        return Centred(self.rho * s, self.m * s)

    def sqnorm(self) -> float:
        """The squared Euclidean norm over all entries."""
        return float((self.rho**2).sum() + (self.m**2).sum())


class SpaceTimeGrid:
    """The staggered space-time grid of a box with ``shape`` cells and ``time_steps`` steps.

    Args:
        shape: cells per space axis (1 to 3 axes).
        spacing: cell width per axis.
        time_steps: P, the number of time steps on [0, 1].
        dtype: dtype of every tensor.
        device: device of every tensor.
    """

    def __init__(self, shape: tuple[int, ...], spacing: tuple[float, ...], time_steps: int,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> None:
        if not 1 <= len(shape) <= 3 or len(shape) != len(spacing):
            raise ValueError("shape and spacing need one entry per axis (1 to 3 axes)")
        if time_steps < 2 or min(shape) < 2:
            raise ValueError("need at least 2 time steps and 2 cells per axis")
        self.shape, self.spacing, self.P = tuple(int(s) for s in shape), tuple(map(float, spacing)), int(time_steps)
        self.d = len(shape)
        self.dt = 1.0 / self.P
        self.dtype, self.device = dtype, device
        self.weight = self.dt * math.prod(self.spacing)  # cell volume in space-time
        # (Id + I* I)^{-1} for each staggered length, and the DCT bases of the Poisson solve
        self._inv = {n: self._interp_inverse(n + 1) for n in {self.P, *self.shape}}
        sizes = (self.P, *self.shape)
        steps = (self.dt, *self.spacing)
        self._dct = [_dct_matrix(n, dtype, device) for n in sizes]
        eig = torch.zeros(sizes, dtype=dtype, device=device)
        for ax, (n, h) in enumerate(zip(sizes, steps, strict=True)):
            lam = (2.0 - 2.0 * torch.cos(math.pi * torch.arange(n, dtype=torch.float64) / n)) / h**2
            view = [1] * len(sizes)
            view[ax] = n
            eig = eig + lam.to(dtype=dtype, device=device).reshape(view)
        eig.view(-1)[0] = 1.0  # the constant mode: zero right-hand side (equal masses)
        self._eig = eig

    def _interp_inverse(self, n1: int) -> Tensor:
        op = torch.zeros(n1 - 1, n1, dtype=torch.float64)
        idx = torch.arange(n1 - 1)
        op[idx, idx] = 0.5
        op[idx, idx + 1] = 0.5
        return torch.linalg.inv(torch.eye(n1, dtype=torch.float64) + op.T @ op).to(self.dtype).to(self.device)

    # -- operators -----------------------------------------------------------------------
    def interp(self, U: Staggered) -> Centred:
        """``I(U)``: the centred values (averages of the two staggered neighbours)."""
        return Centred(_interp(U.rho, 0), torch.stack([_interp(mj, j + 1) for j, mj in enumerate(U.m)]))

    def divergence(self, U: Staggered) -> Tensor:
        """Discrete ``d_t rho + div m`` at the time centres and cell centres, shape ``(P, *N)``."""
        div = (U.rho[1:] - U.rho[:-1]) / self.dt
        for j, mj in enumerate(U.m):
            n = mj.shape[j + 1]
            div = div + (mj.narrow(j + 1, 1, n - 1) - mj.narrow(j + 1, 0, n - 1)) / self.spacing[j]
        return div

    def poisson(self, r: Tensor) -> Tensor:
        """Solve the Neumann Laplacian ``-Delta lambda = r`` in space-time (constant mode 0)."""
        x = r
        for ax, c in enumerate(self._dct):
            x = _along(x, ax, c)
        x = (x / self._eig).contiguous()
        x.view(-1)[0] = 0.0
        for ax, c in enumerate(self._dct):
            x = _along(x, ax, c.T)
        return x

    def project_continuity(self, U: Staggered, rho0: Tensor, rho1: Tensor) -> Staggered:
        """Orthogonal projection of ``U`` on ``C``.

        ``divergence(U) = 0``, ``rho(0) = rho0``, ``rho(1) = rho1``, zero flux through the walls. ``rho0``
        and ``rho1`` (densities, shape ``N``) must have the same mass.
        """
        rho = U.rho.clone()
        rho[0], rho[-1] = rho0, rho1
        m = []
        for j, mj in enumerate(U.m):
            mj = mj.clone()
            mj.select(j + 1, 0).zero_()
            mj.select(j + 1, mj.shape[j + 1] - 1).zero_()
            m.append(mj)
        lam = self.poisson(self.divergence(Staggered(rho, m)))
        # U <- U - D_free^* lambda: the adjoint of the divergence on the free unknowns
        rho[1:-1] += (lam[1:] - lam[:-1]) / self.dt
        for j in range(self.d):
            n = lam.shape[j + 1]
            inner = m[j].narrow(j + 1, 1, n - 1)
            inner += (lam.narrow(j + 1, 1, n - 1) - lam.narrow(j + 1, 0, n - 1)) / self.spacing[j]
        return Staggered(rho, m)

    def project_interp(self, U: Staggered, V: Centred) -> tuple[Staggered, Centred]:
        """Orthogonal projection of ``(U, V)`` on the graph ``V = I(U)``."""
        rho = _along(U.rho + _interp_adjoint(V.rho, 0), 0, self._inv[self.P])
        m = [_along(mj + _interp_adjoint(V.m[j], j + 1), j + 1, self._inv[self.shape[j]])
             for j, mj in enumerate(U.m)]
        Un = Staggered(rho, m)
        return Un, self.interp(Un)

    def linear(self, rho0: Tensor, rho1: Tensor) -> Staggered:
        """The mixture ``(1 - t) rho0 + t rho1`` with zero momentum (the starting point)."""
        t = torch.linspace(0, 1, self.P + 1, dtype=self.dtype, device=self.device)
        t = t.reshape(-1, *([1] * self.d))
        rho = (1 - t) * rho0 + t * rho1
        m = []
        for j in range(self.d):
            shape = [self.P, *self.shape]
            shape[j + 1] += 1
            m.append(torch.zeros(shape, dtype=self.dtype, device=self.device))
        return Staggered(rho, m)


# ----------------------------------------------------------------------------------------
# the solver
# ----------------------------------------------------------------------------------------
@dataclass
class BenamouBrenierResult:
    """Output of :func:`benamou_brenier`.

    Attributes:
        rho: densities at the time nodes ``t_k = k / P``, shape ``(P+1, *N)`` (endpoints exact).
        momentum: ``m`` at the time centres, shape ``(d, P, *N)``.
        rho_centred: densities at the time centres, shape ``(P, *N)``.
        w2sq: the W2^2 estimate ``dt dx^d sum |m|^2 / rho``.
        converged: whether ``residual <= tol`` was reached.
        n_iters: Douglas-Rachford iterations run.
        errors: per iteration, ``{"w2sq", "residual", "divergence", "change", "iteration"}``: the cost, the
            relative mismatch ``|V - I(U)| / |V|`` of the two splitting variables (0 at a
            solution), the continuity-equation residual of the centred variable's staggered
            partner and the relative change of the iterate.
        wall_s: wall time.
    """

    rho: Tensor
    momentum: Tensor
    rho_centred: Tensor
    w2sq: float
    converged: bool
    n_iters: int
    errors: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    grid: SpaceTimeGrid | None = None


def benamou_brenier(rho0: Tensor, rho1: Tensor, spacing: tuple[float, ...], *, time_steps: int = 32,
                    gamma: float = 1.0, alpha: float = 1.0, iters: int = 2000, tol: float = 1e-5,
                    check_every: int = 10,
                    callback: Callable[[int, dict[str, float]], None] | None = None) -> BenamouBrenierResult:
    """The W2 geodesic between two grid densities by Douglas-Rachford splitting.

    The densities ``rho0`` and ``rho1`` have the same mass and live on a regular grid of cells of
    width ``spacing``, with walls that let no flux through.

    Args:
        rho0: source density (mass per unit volume) at the cell centres.
        rho1: target density, same shape and mass as ``rho0``.
        spacing: cell width per axis.
        time_steps: P, time steps on [0, 1].
        gamma: the proximal step (the scale of the densities is a good start).
        alpha: the Douglas-Rachford relaxation, in (0, 2).
        iters: most iterations.
        tol: stop when the splitting mismatch ``|V - I(U)| / |V|`` falls below it.
        check_every: iterations between two checks of the mismatch.
        callback: ``callback(iteration, errors)`` after every check.

    Returns:
        A :class:`BenamouBrenierResult`: the space-time density and momentum, ``w2sq`` and the
            convergence diagnostics.
    """
    if rho0.shape != rho1.shape:
        raise ValueError(f"rho0 and rho1 need the same shape, got {tuple(rho0.shape)} and {tuple(rho1.shape)}")
    if not 0 < alpha < 2:
        raise ValueError(f"alpha must be in (0, 2), got {alpha}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    vol = math.prod(spacing)
    m0, m1 = float(rho0.sum()) * vol, float(rho1.sum()) * vol
    if not math.isclose(m0, m1, rel_tol=1e-9):
        raise ValueError(f"rho0 and rho1 need the same mass, got {m0:.12g} and {m1:.12g}")
    if float(rho0.min()) < 0 or float(rho1.min()) < 0:
        raise ValueError("densities must be non-negative")
    t_start = time.perf_counter()
    st = SpaceTimeGrid(tuple(rho0.shape), tuple(spacing), time_steps, rho0.dtype, rho0.device)
    zU = st.linear(rho0, rho1)
    zV = st.interp(zU)
    errors: list[dict[str, float]] = []
    converged = False
    k = 0
    yU, yV = zU, zV
    for k in range(1, iters + 1):
        xU, xV = st.project_interp(zU, zV)
        rU, rV = xU.scale(2.0) - zU, xV.scale(2.0) - zV
        yU = st.project_continuity(rU, rho0, rho1)
        yr, ym = prox_kinetic(rV.rho, rV.m, gamma)
        yV = Centred(yr, ym)
        dU, dV = yU - xU, yV - xV
        zU, zV = zU + dU.scale(alpha), zV + dV.scale(alpha)
        if k % check_every == 0 or k == iters:
            mis = (yV - st.interp(yU)).sqnorm() ** 0.5 / max(yV.sqnorm() ** 0.5, 1e-300)
            step = (dU.sqnorm() + dV.sqnorm()) ** 0.5 / max((zU.sqnorm() + zV.sqnorm()) ** 0.5, 1e-300)
            div = float(st.divergence(yU).abs().max())
            row = {"w2sq": kinetic_action(yV.rho, yV.m, st.weight), "residual": mis,
                   "divergence": div, "change": step}
            row["iteration"] = k
            errors.append(row)
            if callback is not None:
                callback(k, row)
            if not math.isfinite(mis):
                break
            if mis <= tol:
                converged = True
                break
    return BenamouBrenierResult(rho=yU.rho, momentum=yV.m, rho_centred=yV.rho,
                                w2sq=kinetic_action(yV.rho, yV.m, st.weight), converged=converged,
                                n_iters=k, errors=errors, wall_s=time.perf_counter() - t_start, grid=st)
