"""Regular grids and their separable Gibbs kernels.

A :class:`Grid` is a cell-centred regular grid over a box in 1-3 dimensions.  Measures on
it are tensors of shape ``grid.shape`` holding the *mass* of each cell (they sum to the
total mass); densities are ``mass / grid.cell_volume``.

With the squared Euclidean cost ``c(x, y) = |x - y|^2`` the Gibbs kernel
``K = exp(-c / gamma)`` factorises over the axes, ``K = K_1 (x) K_2 (x) ... (x) K_d``,
so ``K b`` is computed by contracting one small ``n_k x n_k`` matrix per axis:
O(N * sum_k n_k) work and O(N + sum_k n_k^2) memory for N grid points, instead of the
O(N^2) of a dense kernel.  :class:`GridGeometry` does this in the plain domain
(:meth:`GridGeometry.apply_kernel`) and in the log domain
(:meth:`GridGeometry.apply_lse_kernel`, ``log K exp(g)`` by per-axis log-sum-exp), the
latter being safe for any ``gamma`` and for potentials of any size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

Tensor = torch.Tensor

#: Largest number of elements a log-domain contraction materialises at once.
_LSE_CHUNK = 1 << 24


@dataclass(frozen=True)
class Grid:
    """Cell-centred regular grid over the box ``[lo_k, hi_k]`` in each axis.

    Args:
        shape: number of cells per axis (1 to 3 axes).
        lo, hi: box corners, one float per axis.
        dtype, device: of every tensor the grid produces.
    """

    shape: tuple[int, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    dtype: torch.dtype = torch.float64
    device: torch.device | str = "cpu"

    def __post_init__(self) -> None:
        if not 1 <= len(self.shape) <= 3:
            raise ValueError(f"grid dimension must be 1, 2 or 3, got {len(self.shape)}")
        if not len(self.shape) == len(self.lo) == len(self.hi):
            raise ValueError("shape, lo and hi must have one entry per axis")
        if any(int(s) < 2 for s in self.shape):
            raise ValueError(f"every axis needs at least 2 cells, got {self.shape}")
        if any(h <= lo for lo, h in zip(self.lo, self.hi, strict=True)):
            raise ValueError(f"box must have hi > lo in every axis, got lo={self.lo} hi={self.hi}")

    @classmethod
    def regular(
        cls,
        size: int,
        dim: int = 2,
        lo: float = 0.0,
        hi: float = 1.0,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> Grid:
        """``size`` cells per axis over the cube ``[lo, hi]^dim``."""
        return cls((size,) * dim, (float(lo),) * dim, (float(hi),) * dim, dtype, device)

    @property
    def dim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """Total number of cells."""
        return math.prod(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple((h - lo) / s for lo, h, s in zip(self.lo, self.hi, self.shape, strict=True))

    @property
    def cell_volume(self) -> float:
        return math.prod(self.spacing)

    @cached_property
    def axes(self) -> list[Tensor]:
        """Cell-centre coordinates, one 1-D tensor per axis."""
        return [
            torch.linspace(lo + dx / 2, h - dx / 2, s, dtype=self.dtype, device=self.device)
            for lo, h, s, dx in zip(self.lo, self.hi, self.shape, self.spacing, strict=True)
        ]

    def mesh(self) -> list[Tensor]:
        """Coordinate arrays of shape ``grid.shape`` (``indexing='ij'``)."""
        return list(torch.meshgrid(*self.axes, indexing="ij"))

    def points(self) -> Tensor:
        """All cell centres as an ``(N, dim)`` tensor, in C order."""
        return torch.stack([m.reshape(-1) for m in self.mesh()], dim=-1)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Grid:
        return Grid(self.shape, self.lo, self.hi, dtype or self.dtype, device or self.device)


class GridGeometry:
    """A grid with the squared Euclidean cost and the Gibbs kernel ``exp(-|x-y|^2/gamma)``.

    The kernel is stored as one ``n_k x n_k`` matrix per axis and applied separably.
    ``apply_kernel`` works with scalings (fast: one matrix product per axis);
    ``apply_lse_kernel`` works with log-scalings and never overflows or underflows.
    """

    def __init__(self, grid: Grid, gamma: float) -> None:
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.grid = grid
        self.gamma = float(gamma)
        self.cost_1d = [(x[:, None] - x[None, :]) ** 2 for x in grid.axes]
        self.log_kernel_1d = [-c / self.gamma for c in self.cost_1d]
        self.kernel_1d = [torch.exp(lk) for lk in self.log_kernel_1d]

    @property
    def dtype(self) -> torch.dtype:
        return self.grid.dtype

    @property
    def device(self) -> torch.device:
        return self.kernel_1d[0].device

    # -- plain domain ---------------------------------------------------------------
    def apply_kernel(self, b: Tensor) -> Tensor:
        """``(K b)_i = sum_j exp(-|x_i - x_j|^2 / gamma) b_j`` for ``b`` of shape ``(..., *grid.shape)``.

        The kernel is symmetric, so this is also ``K^T b``.
        """
        d = self.grid.dim
        out = b
        for k, kern in enumerate(self.kernel_1d):
            axis = out.ndim - d + k
            out = torch.movedim(torch.tensordot(kern, out, dims=([1], [axis])), 0, axis)
        return out

    # -- log domain -----------------------------------------------------------------
    def apply_lse_kernel(self, g: Tensor) -> Tensor:
        """``log(K exp(g))`` computed by a log-sum-exp per axis (no overflow, no underflow).

        ``g`` may contain ``-inf`` (zero scalings); the result is ``-inf`` only where every
        term is.
        """
        d = self.grid.dim
        out = g
        for k, logk in enumerate(self.log_kernel_1d):
            axis = out.ndim - d + k
            out = _lse_contract(logk, out, axis)
        return out

    def transport_cost(self, f: Tensor, g: Tensor) -> float:
        """``<C, pi>`` for ``pi = diag(exp f) K diag(exp g)``, computed separably.

        ``|x - y|^2 = sum_k (x_k - y_k)^2``, so the cost is a sum of ``d`` kernel
        applications in which axis ``k`` uses ``C_k * K_k``.
        """
        a, b = torch.exp(f), torch.exp(g)
        plain = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
        d = self.grid.dim
        total = 0.0
        for k in range(d):
            out = b if plain else g
            for j in range(d):
                axis = out.ndim - d + j
                if plain:
                    mat = self.kernel_1d[j] * self.cost_1d[j] if j == k else self.kernel_1d[j]
                    out = torch.movedim(torch.tensordot(mat, out, dims=([1], [axis])), 0, axis)
                else:
                    logm = self.log_kernel_1d[j]
                    if j == k:
                        logm = logm + torch.log(self.cost_1d[j])
                    out = _lse_contract(logm, out, axis)
            total += float((a * out).sum()) if plain else float(torch.exp(f + out).sum())
        return total

    # -- diagnostics ----------------------------------------------------------------
    def dense_kernel(self) -> Tensor:
        """The full ``N x N`` kernel (for tests and benchmarks on small grids only)."""
        pts = self.grid.points()
        return torch.exp(-torch.cdist(pts, pts).pow(2) / self.gamma)

    def kernel_variance(self) -> tuple[float, ...]:
        """Variance, per axis, of one row of the interior 1-D kernel normalised to mass 1.

        For ``gamma`` well above the squared spacing this is ``gamma / 2`` (the variance of
        the continuous Gaussian); for sub-pixel kernels the discrete value differs, and it
        is the discrete value that sets the blur of an entropic step.
        """
        out = []
        for dx, n in zip(self.grid.spacing, self.grid.shape, strict=True):
            offs = torch.arange(-(n - 1), n, dtype=torch.float64) * dx
            w = torch.exp(-offs**2 / self.gamma)
            out.append(float((w * offs**2).sum() / w.sum()))
        return tuple(out)


def _lse_contract(logk: Tensor, g: Tensor, axis: int) -> Tensor:
    """``out[..., i, ...] = logsumexp_j(logk[i, j] + g[..., j, ...])`` along ``axis``."""
    gm = torch.movedim(g, axis, -1)
    lead = gm.shape[:-1]
    n = gm.shape[-1]
    flat = gm.reshape(-1, n)
    rows = max(1, _LSE_CHUNK // (n * logk.shape[0]))
    parts = [
        torch.logsumexp(flat[s : s + rows, None, :] + logk[None, :, :], dim=-1)
        for s in range(0, flat.shape[0], rows)
    ]
    out = torch.cat(parts, dim=0).reshape(*lead, logk.shape[0])
    return torch.movedim(out, -1, axis)
