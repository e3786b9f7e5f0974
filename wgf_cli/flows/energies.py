"""Free energies on a grid: value, first variation and KL-proximal map.

Measures are *masses per cell* ``p`` (``p.sum()`` is the total mass) on a
:class:`~wgf_cli.ot.grid.Grid` with cell volume ``v``; the density is ``p / v``.  Every
energy is the grid discretisation of an integral functional of the density:

=================  ==========================================================================
``heat``           ``D int rho log rho``                      -> ``D sum p log(p/v)``
``fokker_planck``  ``D int rho log rho + int V rho``
``porous_medium``  ``int rho^m / (m-1)``                      -> ``sum v (p/v)^m / (m-1)``
``crowd``          ``int V rho + i(rho <= kappa)`` (+ optional ``D int rho log rho``)
``aggregation``    ``1/2 int int W(x-y) drho drho + D int rho log rho`` (interaction by FFT)
``keller_segel``   ``D int rho log rho + chi M / (4 pi) int int log|x-y| drho drho`` (2-D, per unit mass)
=================  ==========================================================================

The KL-proximal map ``prox^KL_{sigma F}(p) = argmin_r sigma F(r) + KL(r | p)`` is what the
entropic JKO iterations need.  It is given in log form (``log p -> log r``, so that it works
unchanged in the log domain, with ``log p = -inf`` where ``p = 0``): closed form for the
entropy, potential and congestion terms, a monotone Newton iteration for the porous medium.
The interaction term is handled semi-implicitly: :meth:`Energy.begin_step` linearises it at
the current iterate ``rho_k``, and the step uses the potential ``W * rho_k``.

``prox_diffusion`` is the diffusion coefficient used inside the proximal map; it equals
``diffusion`` unless the JKO solver lowers it to compensate the entropic blur (on its own
copy of the energy: :class:`~wgf_cli.flows.jko.EntropicJKO` does not modify the one it is
given).

:func:`build_energy` makes an energy from its name and parameters (the ``energy`` config
group of ``wgf jko``; :data:`ENERGIES` lists the names).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import torch

from wgf_cli.flows import potentials as P
from wgf_cli.flows.potentials import Potential, RadialKernel
from wgf_cli.flows.references import grid_point
from wgf_cli.ot.grid import Grid

Tensor = torch.Tensor


def _xlogx_over_v(p: Tensor, v: float) -> Tensor:
    """``p log(p/v)`` with ``0 log 0 = 0``."""
    safe = torch.where(p > 0, p, torch.ones_like(p))
    return torch.where(p > 0, p * torch.log(safe / v), torch.zeros_like(p))


class Energy(ABC):
    """Base class.

    Subclasses set ``name`` and ``diffusion`` and implement the abstract methods; an energy with a
    particle (Langevin) form sets ``supports_particles = True`` and defines ``particle_drift(x)``: the
    drift ``-grad(delta F_nonentropic / delta rho)`` at particles ``x`` of shape (N, d).
    """

    name = "energy"
    #: coefficient D of a linear-diffusion part ``D int rho log rho`` (0 when absent)
    diffusion = 0.0

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.v = grid.cell_volume
        self.prox_diffusion = self.diffusion

    # values ---------------------------------------------------------------------
    @abstractmethod
    def parts(self, p: Tensor) -> dict[str, float]:
        """The named terms of the energy at ``p`` (their sum is :meth:`value`)."""

    def value(self, p: Tensor) -> float:
        """The energy at ``p`` (masses per cell): the sum of :meth:`parts`."""
        return float(sum(self.parts(p).values()))

    @abstractmethod
    def first_variation(self, p: Tensor) -> Tensor:
        """``delta F / delta rho`` at the cell centres."""

    # proximal map ---------------------------------------------------------------
    def begin_step(self, p: Tensor) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """Called with ``rho_k`` before each JKO step (linearisation hook)."""

    @abstractmethod
    def prox_log(self, log_p: Tensor, sigma: float) -> Tensor:
        """``log prox^KL_{sigma F}(exp(log_p))`` elementwise."""

    # particles (Langevin cross-check) --------------------------------------------
    supports_particles = False  # True: the energy defines particle_drift (see the class docstring)

    def _entropy(self, p: Tensor) -> float:
        """``D sum p log(p/v)``."""
        return self.diffusion * float(_xlogx_over_v(p, self.v).sum())

    def _entropy_variation(self, p: Tensor) -> Tensor:
        """``D (log(p/v) + 1)`` (empty cells clamped to the smallest positive number)."""
        safe = torch.clamp_min(p, torch.finfo(p.dtype).tiny)
        return self.diffusion * (torch.log(safe / self.v) + 1.0)

    def _entropy_prox(self, log_p: Tensor, sigma: float, potential: Tensor | float) -> Tensor:
        """Prox of ``D sum p log(p/v) + sum V p`` with ``D = prox_diffusion`` (closed form).

        ``(1 + sigma D) log r = log p + sigma D (log v - 1) - sigma V``.
        """
        sd = sigma * self.prox_diffusion
        return (log_p + sd * (math.log(self.v) - 1.0) - sigma * potential) / (1.0 + sd)


class Heat(Energy):
    """``F = D int rho log rho``: the heat equation ``d rho/dt = D Laplacian rho``."""

    name = "heat"
    supports_particles = True

    def __init__(self, grid: Grid, diffusion: float = 0.1) -> None:
        self.diffusion = float(diffusion)
        super().__init__(grid)

    def parts(self, p):
        """The entropy term ``D sum p log(p/v)``."""
        return {"entropy": self._entropy(p)}

    def first_variation(self, p):
        """``D (log(rho) + 1)`` at the cell centres."""
        return self._entropy_variation(p)

    def prox_log(self, log_p, sigma):
        """The closed-form KL prox of the entropy, in the log domain."""
        return self._entropy_prox(log_p, sigma, 0.0)

    def particle_drift(self, x):
        """Zero: the heat flow is pure diffusion."""
        return torch.zeros_like(x)


class FokkerPlanck(Energy):
    """``F = D int rho log rho + int V rho``: ``d rho/dt = div(rho grad V) + D Laplacian rho``."""

    name = "fokker_planck"
    supports_particles = True

    def __init__(self, grid: Grid, potential: Potential, diffusion: float = 0.1) -> None:
        self.diffusion = float(diffusion)
        super().__init__(grid)
        self.potential = potential
        self.V = potential(grid.mesh())

    def parts(self, p):
        """The entropy and potential terms."""
        return {
            "entropy": self._entropy(p),
            "potential": float((self.V * p).sum()),
        }

    def first_variation(self, p):
        """``D (log(rho) + 1) + V`` at the cell centres."""
        return self._entropy_variation(p) + self.V

    def prox_log(self, log_p, sigma):
        """The closed-form KL prox of entropy plus potential, in the log domain."""
        return self._entropy_prox(log_p, sigma, self.V)

    def particle_drift(self, x):
        """``-grad V`` at the particles ``x`` (N, d)."""
        return -self.potential.grad(x)


class PorousMedium(Energy):
    """``F = int rho^m / (m - 1)``, ``m > 1``: ``d rho/dt = Laplacian(rho^m)``."""

    name = "porous_medium"

    def __init__(self, grid: Grid, m: float = 2.0, newton_iters: int = 60) -> None:
        if not m > 1:
            raise ValueError(f"porous medium exponent m must be > 1, got {m}")
        super().__init__(grid)
        self.m = float(m)
        self.newton_iters = newton_iters
        self._y_prev: tuple[float, Tensor] | None = None

    def parts(self, p):
        """The internal energy ``int rho^m / (m - 1)``."""
        rho = p / self.v
        return {"internal": float((self.v * rho**self.m).sum()) / (self.m - 1.0)}

    def first_variation(self, p):
        """``m / (m - 1) rho^(m-1)`` at the cell centres."""
        return self.m / (self.m - 1.0) * (p / self.v) ** (self.m - 1.0)

    def prox_log(self, log_p, sigma):
        """The KL prox of the internal energy, cell by cell by a monotone Newton iteration."""
        # r minimises sigma v (r/v)^m/(m-1) + r log(r/p) - r.  With c = sigma m / ((m-1) v^(m-1))
        # and y = log(c r^(m-1)) the optimality condition reads
        #     psi(y) = e^y + y/(m-1) - R = 0,   R = log p + log(c)/(m-1),
        # psi increasing and convex: Newton from any y0 with psi(y0) >= 0 decreases
        # monotonically to the root.  y0 = (m-1) R always qualifies, and so does log R for
        # R >= 1; the smaller is the closer.
        m1 = self.m - 1.0
        log_c = math.log(sigma * self.m / m1) - m1 * math.log(self.v)
        finite = torch.isfinite(log_p)
        R = torch.where(finite, log_p, torch.zeros_like(log_p)) + log_c / m1
        y = m1 * R
        big = R >= 1.0
        y = torch.where(big, torch.minimum(y, torch.log(torch.where(big, R, torch.ones_like(R)))), y)
        # warm start from the previous call's root (the Sinkhorn iterates change little
        # between calls) where it is close, |psi(y_prev)| < 1/2: from the left of the root a
        # Newton step lands to its right at a distance <= (m-1)|psi| (psi' >= 1/(m-1)) and
        # the monotone convergence resumes from there
        prev = self._y_prev
        if prev is not None and prev[0] == sigma and prev[1].shape == y.shape:
            yp = prev[1]
            close = (torch.exp(torch.clamp_max(yp, 700.0)) + yp / m1 - R).abs() < 0.5
            y = torch.where(close, yp, y)
        for _ in range(self.newton_iters):
            ey = torch.exp(y)
            step = (ey + y / m1 - R) / (ey + 1.0 / m1)
            y = y - step
            if float(step.abs().max()) <= 1e-13 * (1.0 + float(y.abs().max())):
                break
        self._y_prev = (sigma, y)
        s = (y - log_c) / m1
        return torch.where(finite, s, log_p)


class Crowd(Energy):
    """``F = int V rho + i(rho <= kappa)`` (+ ``D int rho log rho``).

    Crowd motion with congestion (Maury, Roudneff-Chupin & Santambrogio), ``V`` the distance to an exit.
    """

    name = "crowd"

    def __init__(self, grid: Grid, potential: Tensor, kappa: float, diffusion: float = 0.0):
        if not kappa > 0:
            raise ValueError(f"congestion bound kappa must be > 0, got {kappa}")
        self.diffusion = float(diffusion)
        super().__init__(grid)
        self.V = potential
        self.kappa = float(kappa)

    def parts(self, p):
        """The potential term, and the entropy term when there is diffusion."""
        out = {"potential": float((self.V * p).sum())}
        if self.diffusion:
            out["entropy"] = self._entropy(p)
        return out

    def first_variation(self, p):
        """``V`` (plus the entropy's variation when there is diffusion) at the cell centres."""
        fv = self.V.clone()
        if self.diffusion:
            fv = fv + self._entropy_variation(p)
        return fv

    def prox_log(self, log_p, sigma):
        """The KL prox of potential and entropy, capped at the congestion density ``kappa``."""
        # a 1-D convex problem per cell: the prox of f + i(r <= cap) is min(prox f, cap)
        cap = math.log(self.kappa * self.v)
        return torch.clamp_max(self._entropy_prox(log_p, sigma, self.V), cap)


def exit_distance(grid: Grid, exit_lo, exit_hi) -> Tensor:
    """Euclidean distance from each cell centre to the box ``[exit_lo, exit_hi]``."""
    sq = torch.zeros(grid.shape, dtype=grid.dtype, device=grid.device)
    for x, lo, hi in zip(grid.mesh(), exit_lo, exit_hi, strict=True):
        gap = torch.clamp_min(lo - x, 0.0) + torch.clamp_min(x - hi, 0.0)
        sq = sq + gap**2
    return torch.sqrt(sq)


class Aggregation(Energy):
    """``F = 1/2 int int W(x - y) drho(x) drho(y) + D int rho log rho``.

    ``W * rho`` is evaluated on the grid by a zero-padded FFT convolution (exact discrete
    linear convolution).  Each JKO step linearises the interaction at ``rho_k``.
    """

    name = "aggregation"
    supports_particles = True

    def __init__(self, grid: Grid, kernel: RadialKernel, diffusion: float = 0.0) -> None:
        self.diffusion = float(diffusion)
        super().__init__(grid)
        self.kernel = kernel
        # W sampled on the (2n) difference grid in wrap-around order: offsets 0..n-1, -n..-1
        offs = []
        for n, dx in zip(grid.shape, grid.spacing, strict=True):
            idx = torch.arange(2 * n, dtype=grid.dtype, device=grid.device)
            idx = torch.where(idx < n, idx, idx - 2 * n)
            offs.append(idx * dx)
        w = kernel(list(torch.meshgrid(*offs, indexing="ij")))
        self._pad = tuple(2 * n for n in grid.shape)
        self._w_hat = torch.fft.rfftn(w, s=self._pad)
        self._phi = torch.zeros(grid.shape, dtype=grid.dtype, device=grid.device)

    def convolve(self, p: Tensor) -> Tensor:
        """``(W * p)_i = sum_j W(x_i - x_j) p_j``."""
        dims = tuple(range(-self.grid.dim, 0))
        full = torch.fft.irfftn(torch.fft.rfftn(p, s=self._pad) * self._w_hat, s=self._pad, dim=dims)
        return full[tuple(slice(0, n) for n in self.grid.shape)]

    def parts(self, p):
        """The interaction term ``1/2 int (W * rho) rho``, and the entropy term when there is diffusion."""
        out = {"interaction": 0.5 * float((p * self.convolve(p)).sum())}
        if self.diffusion:
            out["entropy"] = self._entropy(p)
        return out

    def first_variation(self, p):
        """``W * rho`` (plus the entropy's variation when there is diffusion) at the cell centres."""
        fv = self.convolve(p)
        if self.diffusion:
            fv = fv + self._entropy_variation(p)
        return fv

    def begin_step(self, p):
        """Freeze the interaction potential ``W * rho_k`` for the coming step (semi-implicit)."""
        self._phi = self.convolve(p)

    def prox_log(self, log_p, sigma):
        """The closed-form KL prox with the frozen interaction potential, in the log domain."""
        return self._entropy_prox(log_p, sigma, self._phi)

    def particle_drift(self, x, pair_chunk: int = 1 << 22):
        """``-(1/N) sum_j grad W(x_i - x_j)``, by row blocks of at most ``pair_chunk`` pairs."""
        rows = max(1, pair_chunk // x.shape[0])
        return torch.cat([-self.kernel.grad(x[s : s + rows, None, :] - x[None, :, :]).mean(dim=1)
                          for s in range(0, x.shape[0], rows)], dim=0)


class LogKernel:
    """The 2-D Newtonian (logarithmic) interaction kernel, cell-averaged at the origin.

    The 2-D Newtonian (logarithmic) kernel ``W(x) = strength * log|x|``, with the singular value at the
    origin replaced by its average over the grid cell centred there (so that ``W * rho`` on the grid is
    the cell-averaged potential of a cell-uniform density at that point).
    """

    kind = "log"

    def __init__(self, strength: float, spacing: tuple[float, ...], sub: int = 200) -> None:
        if len(spacing) != 2:
            raise ValueError("the logarithmic (Newtonian) kernel is 2-D")
        self.strength = float(strength)
        # cell average of log|x| over [-h1/2, h1/2] x [-h2/2, h2/2] (midpoint rule, an even
        # number of sub-cells so that no node sits at the origin)
        u = (torch.arange(sub, dtype=torch.float64) + 0.5) / sub - 0.5
        gx, gy = torch.meshgrid(u * spacing[0], u * spacing[1], indexing="ij")
        self.log_origin = float(0.5 * torch.log(gx**2 + gy**2).mean())

    def radial(self, r: Tensor) -> Tensor:
        """``strength * log r``, with the cell-averaged value at ``r = 0``."""
        safe = torch.where(r > 0, r, torch.ones_like(r))
        return self.strength * torch.where(r > 0, torch.log(safe), torch.full_like(r, self.log_origin))

    def __call__(self, diff) -> Tensor:
        """The kernel at the displacement components ``diff``."""
        return self.radial(torch.sqrt(sum(d**2 for d in diff)))

    def grad(self, diff: Tensor) -> Tensor:
        """``strength * x / |x|^2``; 0 at the origin."""
        r2 = (diff**2).sum(-1, keepdim=True)
        return torch.where(r2 > 0, self.strength * diff / torch.where(r2 > 0, r2, torch.ones_like(r2)),
                           torch.zeros_like(diff))


class KellerSegel(Aggregation):
    """Parabolic-elliptic Keller-Segel in 2-D as a Wasserstein gradient flow.

    ``d_t rho = D Laplacian rho - chi div(rho grad c)``, ``-Laplacian c = rho``, whose free energy for a
    density of mass ``M`` is ``D int rho log rho + chi/(4 pi) int int log|x-y| rho(x) rho(y)``. The grid
    measures have mass 1 (``rho = M p``); the flow of the mass-M density is the flow of ``F(p) = D int p
    log p + chi M / (4 pi) int int log|x-y| dp dp`` (the energy divided by M, constants dropped), an
    :class:`Aggregation` with the kernel ``W = chi M / (2 pi) log|x|`` (:class:`LogKernel`).

    Critical mass ``8 pi D / chi``: below it the density spreads, above it concentrates
    (blows up in finite time).  In the whole plane the second moment per unit mass
    ``M2(t) = int |x - x_c|^2 dp`` is affine in time, ``dM2/dt = 4 D (1 - M / M_crit)``
    (:meth:`virial_rate`).
    """

    name = "keller_segel"
    supports_particles = False

    def __init__(self, grid: Grid, mass: float, diffusion: float = 1.0, chi: float = 1.0) -> None:
        if grid.dim != 2:
            raise ValueError(f"keller_segel is 2-D, got a {grid.dim}-D grid")
        if not mass > 0 or not diffusion > 0 or not chi > 0:
            raise ValueError("keller_segel needs mass, diffusion and chi > 0")
        self.mass, self.chi = float(mass), float(chi)
        super().__init__(grid, LogKernel(self.chi * self.mass / (2 * math.pi), grid.spacing), diffusion)

    @property
    def critical_mass(self) -> float:
        """The critical mass ``8 pi D / chi`` above which the solution blows up."""
        return 8 * math.pi * self.diffusion / self.chi

    def virial_rate(self) -> float:
        """``dM2/dt = 4 D (1 - M / M_crit)`` in the whole plane (per unit mass)."""
        return 4 * self.diffusion * (1 - self.mass / self.critical_mass)

    def second_moment(self, p: Tensor) -> float:
        """``int |x - x_c|^2 dp / int dp`` (centre of mass ``x_c``)."""
        mesh = self.grid.mesh()
        total = p.sum()
        centre = [float((p * m).sum() / total) for m in mesh]
        return float(sum((p * (m - c) ** 2).sum() for m, c in zip(mesh, centre, strict=True)) / total)


def _potential(grid: Grid, p: Mapping[str, Any]) -> Potential:
    if p["name"] == "quadratic":
        return P.QuadraticPotential(grid_point(grid, p.get("mean")), p["matrix"], grid.dim)
    if p["name"] == "double_well":
        return P.DoubleWellPotential(grid_point(grid, p.get("center")), p["width"], p["depth"],
                                     p["stiffness"])
    return P.ExprPotential(str(p["expr"]), grid.dim)


def _aggregation(grid: Grid, e: Mapping[str, Any]) -> Aggregation:
    k = e["kernel"]
    kernel = RadialKernel(str(k["kind"]), float(k["attract_power"]), float(k["repel_power"]),
                          float(k["strength"]), None if k["expr"] is None else str(k["expr"]),
                          float(k.get("length", 1.0)))
    return Aggregation(grid, kernel, float(e["diffusion"]))


#: energies by name: ``builder(grid, spec)``
ENERGIES: dict[str, Callable[[Grid, Mapping[str, Any]], Energy]] = {
    "heat": lambda grid, e: Heat(grid, float(e["diffusion"])),
    "fokker_planck": lambda grid, e: FokkerPlanck(grid, _potential(grid, e["potential"]),
                                                  float(e["diffusion"])),
    "porous_medium": lambda grid, e: PorousMedium(grid, float(e["m"])),
    "crowd": lambda grid, e: Crowd(grid, exit_distance(grid, list(e["exit_lo"]), list(e["exit_hi"])),
                                   float(e["kappa"]), float(e["diffusion"])),
    "aggregation": _aggregation,
    "keller_segel": lambda grid, e: KellerSegel(grid, float(e["mass"]), float(e["diffusion"]),
                                                float(e["chi"])),
}


def build_energy(spec: Mapping[str, Any], grid: Grid) -> Energy:
    """The energy named ``spec["name"]`` with the parameters in ``spec``, on ``grid``.

    Args:
        spec: ``name`` (a key of :data:`ENERGIES`) and its parameters, as in the ``energy``
            config group: ``diffusion``; ``potential`` (``name`` quadratic / double_well /
            expr and theirs; a ``None`` mean or center is the centre of the box) for
            ``fokker_planck``; ``m`` for ``porous_medium``; ``kappa``, ``exit_lo``,
            ``exit_hi`` for ``crowd``; ``kernel`` (:class:`RadialKernel`'s parameters) for
            ``aggregation``; ``mass``, ``chi`` for ``keller_segel``.  Nested lists and
            numbers, as plain containers.
        grid: the grid the energy is bound to.

    Returns:
        The energy.

    Raises:
        KeyError: unknown name; ValueError: parameters the energy rejects.
    """
    return ENERGIES[spec["name"]](grid, spec)
