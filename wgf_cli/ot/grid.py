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

import copy
import math
from dataclasses import dataclass
from functools import cached_property

import torch

Tensor = torch.Tensor

#: Largest number of elements a log-domain contraction materialises at once.
_LSE_CHUNK = 1 << 24

#: The plain product applies a truncated axis by shifted slices only while its ``2w+1`` taps are
#: at most ``n / _DENSE_TAPS_RATIO``; wider bands go through one dense (band-masked) ``n x n``
#: matrix product per axis, which BLAS runs faster (crossover measured on one CPU core at
#: n = 128 ... 1024: ``n / taps`` between 11 and 23).
_DENSE_TAPS_RATIO = 16

#: Between the two, a band with at least ``_BLOCK_MIN`` blocks of ``w`` or more cells on an axis of
#: at least ``_BLOCK_MIN_N`` cells is applied block-tridiagonally (:class:`_BlockBand`): three
#: ``B x B`` products per block instead of a dense row, ``3 B`` instead of ``n`` multiply-adds per
#: output (1.3x faster than the dense product at n = 256, 1.5x at 512, 1.7x at 1024 on one core).
_BLOCK_MIN = 4
_BLOCK_MIN_N = 256

#: Default truncation of the banded kernel: 1-D kernel entries below this fraction of the
#: diagonal, ``exp(-(k dx)^2 / gamma) < 1e-30``, are dropped (``w = ceil(sqrt(gamma ln 1e30) / dx)``,
#: 9 cells at ``gamma = dx^2``).  Far below float64 resolution next to the diagonal entry, and
#: above float32's smallest normal (1.2e-38), so that the max-shifted banded log-sum-exp never
#: underflows.
DEFAULT_TRUNCATION = 1e-30


def _log_tap_min(dtype: torch.dtype) -> float:
    """``-log`` of the smallest tap a banded kernel keeps in ``dtype``.

    80 % of the way to the smallest normal number (70 in float32, 566 in float64).
    """
    return 0.8 * -math.log(torch.finfo(dtype).tiny)


@dataclass(frozen=True)
class Grid:
    """Cell-centred regular grid over the box ``[lo_k, hi_k]`` in each axis.

    Attributes:
        shape: Number of cells per axis (1 to 3 axes, at least 2 cells each).
        lo: Lower box corner, one float per axis.
        hi: Upper box corner, one float per axis (``hi > lo`` in every axis).
        dtype: Dtype of every tensor the grid produces.
        device: Device of every tensor the grid produces.

    Raises:
        ValueError: If the dimension is not 1-3, the per-axis tuples differ in length, an
            axis has fewer than 2 cells, or ``hi <= lo`` in some axis.
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
        """``size`` cells per axis over the cube ``[lo, hi]^dim``.

        Args:
            size: Number of cells per axis.
            dim: Number of axes (1 to 3).
            lo: Lower end of every axis.
            hi: Upper end of every axis.
            dtype: Dtype of the grid's tensors.
            device: Device of the grid's tensors.

        Returns:
            The grid.
        """
        return cls((size,) * dim, (float(lo),) * dim, (float(hi),) * dim, dtype, device)

    @property
    def dim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Total number of cells."""
        return math.prod(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Cell width ``(hi_k - lo_k) / shape_k`` per axis."""
        return tuple((h - lo) / s for lo, h, s in zip(self.lo, self.hi, self.shape, strict=True))

    @property
    def cell_volume(self) -> float:
        """Volume (length, area) of one cell: the product of the spacings."""
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
        """The same grid producing tensors of another dtype and/or device.

        Args:
            dtype: New dtype; ``None`` keeps the current one.
            device: New device; ``None`` keeps the current one.

        Returns:
            A new :class:`Grid` with the same cells.
        """
        return Grid(self.shape, self.lo, self.hi, dtype or self.dtype, device or self.device)


class GridGeometry:
    """A grid with the squared Euclidean cost and the Gibbs kernel ``exp(-|x-y|^2/gamma)``.

    The kernel is stored as one ``n_k x n_k`` matrix per axis and applied separably.
    ``apply_kernel`` works with scalings (fast: one matrix product per axis);
    ``apply_lse_kernel`` works with log-scalings and never overflows or underflows.

    Args:
        grid: The grid the measures live on.
        gamma: Entropic regularisation, in squared length units (``> 0``): the kernel is
            ``exp(-|x - y|^2 / gamma)``.
        truncation: Relative size below which 1-D kernel entries are dropped, so that each
            axis applies a band of ``2w + 1`` taps (see :data:`DEFAULT_TRUNCATION`); ``None``
            keeps the full kernel (the band is still capped where its taps would leave the
            float range).

    Raises:
        ValueError: If ``gamma <= 0`` or ``truncation`` is not in ``(0, 1)``.
    """

    def __init__(self, grid: Grid, gamma: float, truncation: float | None = DEFAULT_TRUNCATION) -> None:
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if truncation is not None and not 0.0 < truncation < 1.0:
            raise ValueError(f"truncation must be in (0, 1) or None, got {truncation}")
        self.grid = grid
        self.gamma = float(gamma)
        self.truncation = truncation
        self.cost_1d = [(x[:, None] - x[None, :]) ** 2 for x in grid.axes]
        self.log_kernel_1d = [-c / self.gamma for c in self.cost_1d]
        self.kernel_1d = [torch.exp(lk) for lk in self.log_kernel_1d]
        # the widest band whose smallest tap exp(-(w dx)^2 / gamma) stays >= exp(-_LOG_TAP_MIN)
        # (a normal number with room to spare, so that the max-shifted log-sum-exp is exact)
        self._band_max = [math.floor(math.sqrt(self.gamma * _log_tap_min(grid.dtype)) / dx)
                          for dx in grid.spacing]
        if truncation is None:
            self.band = [n - 1 for n in grid.shape]
        else:
            # dropped offsets k > w have exp(-(k dx)^2 / gamma) < truncation
            reach = math.sqrt(self.gamma * math.log(1.0 / truncation))
            self.band = [min(n - 1, math.floor(reach / dx), wm)
                         for n, dx, wm in zip(grid.shape, grid.spacing, self._band_max, strict=True)]
        self._set_taps()

    def _set_taps(self) -> None:
        """Set the per-axis tap weights of the banded path for offsets ``-w..w``, and which axes use it.

        The kernel is Toeplitz on a regular grid: ``K_k = exp(-(k dx)^2 / gamma)``.
        """
        self.banded = [2 * w + 1 < n and w <= wm
                       for w, n, wm in zip(self.band, self.grid.shape, self._band_max, strict=True)]
        # the plain product's operator per axis: ``None`` (shifted slices over the taps) or a
        # dense matrix, masked to the band on a banded axis (the same operator either way)
        self.taps, self.log_taps, self.cost_taps = [], [], []
        for w, dx in zip(self.band, self.grid.spacing, strict=True):
            offs = torch.arange(-w, w + 1, dtype=torch.float64) * dx
            c = offs**2
            self.cost_taps.append([float(v) for v in c])
            self.log_taps.append([float(v) for v in -c / self.gamma])
            self.taps.append([math.exp(v) for v in self.log_taps[-1]])
        self.plain_matrix: list[Tensor | _BlockBand | None] = []
        for k, (w, n, b) in enumerate(zip(self.band, self.grid.shape, self.banded, strict=True)):
            if b and (2 * w + 1) * _DENSE_TAPS_RATIO <= n:
                self.plain_matrix.append(None)
                continue
            kern = self.kernel_1d[k]
            if b and n >= _BLOCK_MIN_N and n // w >= _BLOCK_MIN:
                self.plain_matrix.append(_BlockBand(self.taps[k], n, kern.dtype, kern.device))
                continue
            if b:
                idx = torch.arange(n, device=kern.device)
                kern = torch.where((idx[:, None] - idx[None, :]).abs() <= w, kern, torch.zeros_like(kern))
            self.plain_matrix.append(kern)
        # transport_cost's cost-weighted block-tridiagonal operators and taps, built on first use
        # for this band (the dense cost-weighted matrices are not kept: n x n each)
        self._cost_ops: dict[int, tuple[list[Tensor | _BlockBand | None], list[list[float]]]] = {}

    @property
    def is_banded(self) -> bool:
        """Whether some axis applies a truncated (banded) kernel."""
        return any(self.banded)

    def widened(self) -> GridGeometry | None:
        """A copy with a wider band on every banded axis.

        The band grows by half (at least one cell); an axis takes the full kernel once the band
        covers it or its outer taps would leave the float range.

        Returns:
            The widened geometry, or ``None`` if nothing is truncated.
        """
        if not self.is_banded:
            return None
        other = copy.copy(self)
        other.band = [min(n - 1, max(w + 1, (3 * w) // 2)) if b else n - 1
                      for w, n, b in zip(self.band, self.grid.shape, self.banded, strict=True)]
        other._set_taps()
        return other

    def truncation_error(self) -> float:
        """Largest kernel entry the band drops, relative to the diagonal (0 if none)."""
        out = 0.0
        for w, dx, b in zip(self.band, self.grid.spacing, self.banded, strict=True):
            if b:
                out = max(out, math.exp(-((w + 1) * dx) ** 2 / self.gamma))
        return out

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the grid and the kernels."""
        return self.grid.dtype

    @property
    def device(self) -> torch.device:
        """Device the kernels live on."""
        return self.kernel_1d[0].device

    # -- plain domain ---------------------------------------------------------------
    def apply_kernel(self, b: Tensor) -> Tensor:
        """``(K b)_i = sum_j exp(-|x_i - x_j|^2 / gamma) b_j`` for ``b`` of shape ``(..., *grid.shape)``.

        The kernel is symmetric, so this is also ``K^T b``.

        Args:
            b: Scalings on the grid, shape ``(..., *grid.shape)`` (leading batch axes allowed).

        Returns:
            ``K b``, same shape as ``b``.
        """
        return self._plain(b, self.plain_matrix, self.taps)

    def _plain(self, b: Tensor, mats: list[Tensor | _BlockBand | None], taps: list[list[float]]) -> Tensor:
        """Apply the per-axis operators to ``b``.

        Axis ``k`` uses ``mats[k]`` (dense and symmetric, or block-tridiagonal) or, where it is
        ``None``, the banded ``taps[k]`` by shifted slices.
        """
        d = self.grid.dim
        out = b
        for k, mat in enumerate(mats):
            axis = out.ndim - d + k
            if mat is None:
                out = _band_apply(taps[k], out, axis)
                continue
            if isinstance(mat, _BlockBand):
                out = mat.apply(out, axis)
                continue
            # a view (pre, n, post) of the contiguous tensor: one (batched) product, no copies
            shape = out.shape
            pre, n = math.prod(shape[:axis]), shape[axis]
            x = out.contiguous().reshape(pre, n, -1)
            if x.shape[2] == 1:
                out = torch.matmul(x[..., 0], mat)  # symmetric: (mat @ x^T)^T = x @ mat
            else:
                out = torch.matmul(mat, x)
            out = out.reshape(shape)
        return out

    # -- log domain -----------------------------------------------------------------
    def apply_lse_kernel(self, g: Tensor) -> Tensor:
        """``log(K exp(g))`` computed by a log-sum-exp per axis (no overflow, no underflow).

        ``g`` may contain ``-inf`` (zero scalings); the result is ``-inf`` only where every
        term is.

        Args:
            g: Log-scalings, shape ``(..., *grid.shape)``.

        Returns:
            ``log(K exp(g))``, same shape as ``g``.
        """
        d = self.grid.dim
        out = g
        for k, logk in enumerate(self.log_kernel_1d):
            axis = out.ndim - d + k
            if self.banded[k]:
                out = _band_lse(self.log_taps[k], out, axis)
            else:
                out = _lse_contract(logk, out, axis)
        return out

    @property
    def fully_banded(self) -> bool:
        """Whether every axis applies a banded kernel (what :meth:`absorb` needs)."""
        return all(self.banded)

    def absorb(self, g_ref: Tensor, bound: float | None = None) -> AbsorbedKernel:
        """The log-kernel stabilised at ``g_ref`` (absorption).

        The result applies ``log K exp(g)`` for ``g`` near ``g_ref`` at about the cost of the
        plain banded product.  Needs :attr:`fully_banded`.

        Args:
            g_ref: Reference log-scalings, shape ``grid.shape``.
            bound: Largest ``|g - g_ref|`` the absorbed kernel accepts; ``None`` for 40 % of
                the log of the dtype's largest number.

        Returns:
            The :class:`AbsorbedKernel`.
        """
        return AbsorbedKernel(self, g_ref, bound)

    def band_edge_mass(self, f: Tensor, g: Tensor) -> float:
        """Mass of the plan ``diag(exp f) K diag(exp g)`` on the outermost kept offsets ``+-w``.

        Summed over the banded axes (0 when no axis is banded), this is an a-posteriori check
        of the truncation: where it is negligible the mass beyond the band, which the truncated
        kernel drops, is smaller still.

        Args:
            f: Log-scaling of the first marginal, shape ``grid.shape``.
            g: Log-scaling of the second marginal, shape ``grid.shape``.

        Returns:
            The edge mass, in the plan's mass units.
        """
        d = self.grid.dim
        total = 0.0
        a, b = torch.exp(f), torch.exp(g)
        if bool(torch.isfinite(a).all() and torch.isfinite(b).all()):  # plain products
            for k in range(d):
                if self.banded[k]:
                    edge = [0.0] * len(self.taps[k])
                    edge[0] = edge[-1] = self.taps[k][0]
                    mats = [None if j == k else m for j, m in enumerate(self.plain_matrix)]
                    taps = [edge if j == k else t for j, t in enumerate(self.taps)]
                    total += float((a * self._plain(b, mats, taps)).sum())
            return total
        for k in range(d):
            if not self.banded[k]:
                continue
            out = g
            for j in range(d):
                axis = out.ndim - d + j
                if j == k:
                    w = self.band[k]
                    edge = [-math.inf] * (2 * w + 1)
                    edge[0] = edge[-1] = self.log_taps[k][0]
                    out = _band_lse(edge, out, axis)
                elif self.banded[j]:
                    out = _band_lse(self.log_taps[j], out, axis)
                else:
                    out = _lse_contract(self.log_kernel_1d[j], out, axis)
            total += float(torch.exp(f + out).sum())
        return total

    def transport_cost(self, f: Tensor, g: Tensor) -> float:
        """``<C, pi>`` for ``pi = diag(exp f) K diag(exp g)``, computed separably.

        ``|x - y|^2 = sum_k (x_k - y_k)^2``, so the cost is a sum of ``d`` kernel
        applications in which axis ``k`` uses ``C_k * K_k``.

        Args:
            f: Log-scaling of the first marginal, shape ``grid.shape``.
            g: Log-scaling of the second marginal, shape ``grid.shape``.

        Returns:
            The transport cost (mass times squared length).
        """
        a, b = torch.exp(f), torch.exp(g)
        plain = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
        d = self.grid.dim
        total = 0.0
        for k in range(d):
            if plain:
                mats, taps = self._cost_operators(k)
                mats = [m * self.cost_1d[j] if (j == k and isinstance(m, Tensor)) else m
                        for j, m in enumerate(mats)]
                total += float((a * self._plain(b, mats, taps)).sum())
                continue
            out = g
            for j in range(d):
                axis = out.ndim - d + j
                if self.banded[j]:
                    taps = self.log_taps[j]
                    if j == k:
                        taps = [t + math.log(c) if c > 0 else -math.inf
                                for t, c in zip(taps, self.cost_taps[j], strict=True)]
                    out = _band_lse(taps, out, axis)
                else:
                    logm = self.log_kernel_1d[j]
                    if j == k:
                        logm = logm + torch.log(self.cost_1d[j])
                    out = _lse_contract(logm, out, axis)
            total += float(torch.exp(f + out).sum())
        return total

    def _cost_operators(self, k: int) -> tuple[list[Tensor | _BlockBand | None], list[list[float]]]:
        """The plain operators of :meth:`transport_cost`'s axis-``k`` term.

        Axis ``k`` is weighted by its cost (``C_k * K_k``), the other axes are ``K_j``.  Cached
        for the current band (:meth:`_set_taps` starts a new cache).  A dense axis ``k`` is
        returned unweighted (its ``n x n`` product with ``cost_1d[k]`` is not kept): the caller
        multiplies it.
        """
        ops = self._cost_ops.get(k)
        if ops is None:
            taps = [t if j != k else [x * c for x, c in zip(t, self.cost_taps[j], strict=True)]
                    for j, t in enumerate(self.taps)]
            mats = [_BlockBand(taps[j], m.n, m.diag.dtype, m.diag.device)
                    if (j == k and isinstance(m, _BlockBand)) else m for j, m in enumerate(self.plain_matrix)]
            ops = self._cost_ops[k] = (mats, taps)
        return ops

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


class _BlockBand:
    """A symmetric banded Toeplitz operator on an axis of ``n`` cells, applied block-tridiagonally.

    The axis is cut into ``nb = n // w`` blocks of ``B = ceil(n / nb) >= w`` cells (zero-padded
    to ``nb B``), so that an output block reads only its own block and its two neighbours:
    ``out_i = D x_i + L x_{i-1} + U x_{i+1}`` with the ``B x B`` Toeplitz blocks ``D``, ``L``,
    ``U = L^T`` of the taps (offsets ``-w..w``).  The same operator as the band-masked dense
    matrix, in ``3 B`` instead of ``n`` multiply-adds per output.

    Args:
        taps: ``2w + 1`` symmetric tap weights for offsets ``-w..w``.
        n: length of the axis.
        dtype, device: of the blocks.
    """

    def __init__(self, taps: list[float], n: int, dtype: torch.dtype, device: torch.device) -> None:
        w = (len(taps) - 1) // 2
        self.n = n
        self.nb = max(1, n // max(w, 1))
        self.B = -(-n // self.nb)
        t = torch.tensor(taps, dtype=dtype, device=device)
        i = torch.arange(self.B, device=device)
        off = i[:, None] - i[None, :]

        def block(shift: int) -> Tensor:
            o = off + shift
            inside = o.abs() <= w
            return torch.where(inside, t[(o + w).clamp(0, 2 * w)], torch.zeros((), dtype=dtype, device=device))

        self.diag, self.lower = block(0), block(self.B)  # lower: input block i-1 -> output block i
        self.upper = self.lower.T.contiguous()

    def apply(self, x: Tensor, axis: int) -> Tensor:
        """The operator along ``axis`` of ``x`` (a new tensor)."""
        shape, n, nb, B = x.shape, self.n, self.nb, self.B
        pre = math.prod(shape[:axis])
        xx = x.contiguous().reshape(pre, n, -1)
        post = xx.shape[2]
        if nb * B != n:
            xx = torch.nn.functional.pad(xx, (0, 0, 0, nb * B - n))
        if post == 1:  # rows: x_i @ D^T = x_i @ D, x_{i-1} @ L^T = x_{i-1} @ U
            y = xx.reshape(pre, nb, B)
            out = y @ self.diag
            out[:, 1:] += y[:, :-1] @ self.upper
            out[:, :-1] += y[:, 1:] @ self.lower
        else:
            y = xx.reshape(pre, nb, B, post)
            out = torch.matmul(self.diag, y)
            out[:, 1:] += torch.matmul(self.lower, y[:, :-1])
            out[:, :-1] += torch.matmul(self.upper, y[:, 1:])
        out = out.reshape(pre, nb * B, post)
        if nb * B != n:
            out = out[:, :n]
        return out.reshape(shape)


def _band_apply(taps: list[float], x: Tensor, axis: int) -> Tensor:
    """``out_i = sum_{|k| <= w} taps[w + k] x_{i+k}`` along ``axis`` (zero outside the grid).

    A banded Toeplitz product by shifted slices, O(n w) per fibre.  ``taps`` symmetric.
    """
    w = (len(taps) - 1) // 2
    n = x.shape[axis]
    out = x * taps[w]
    for k in range(1, min(w, n - 1) + 1):
        c = taps[w + k]
        if c == 0.0:
            continue
        out.narrow(axis, k, n - k).add_(x.narrow(axis, 0, n - k), alpha=taps[w - k])
        out.narrow(axis, 0, n - k).add_(x.narrow(axis, k, n - k), alpha=c)
    return out


def _band_lse(log_taps: list[float], g: Tensor, axis: int) -> Tensor:
    """``out_i = log sum_{|k| <= w} exp(log_taps[w + k] + g_{i+k})`` along ``axis``.

    Shifted by the window maximum ``m_i = max_{|k| <= w} g_{i+k}`` (one max-pool): every term
    ``exp(g_{i+k} - m_i)`` is <= 1, and the largest weighted term is >= ``min exp(log_taps)``
    (>= the truncation, 1e-30), so nothing overflows and the sum never underflows to zero
    unless every ``g`` in the window is ``-inf`` (then the result is ``-inf``).
    """
    w = (len(log_taps) - 1) // 2
    n = g.shape[axis]
    gl = torch.movedim(g, axis, -1)
    lead = gl.shape[:-1]
    m = torch.nn.functional.max_pool1d(gl.reshape(-1, 1, n), 2 * w + 1, stride=1, padding=w)
    m = torch.movedim(m.reshape(*lead, n), -1, axis)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    acc = torch.exp(g - m)
    if log_taps[w] != 0.0:
        acc = acc * math.exp(log_taps[w])
    for k in range(1, min(w, n - 1) + 1):
        for lo_out, lo_in, lt in ((k, 0, log_taps[w - k]), (0, k, log_taps[w + k])):
            if lt == -math.inf:
                continue
            t = torch.exp(g.narrow(axis, lo_in, n - k) - m.narrow(axis, lo_out, n - k))
            acc.narrow(axis, lo_out, n - k).add_(t, alpha=math.exp(lt))
    return torch.log(acc) + m


class AbsorbedKernel:
    """``g -> log K exp(g)`` stabilised at a reference ``g_ref`` (Schmitzer's absorption).

    The absorption is done axis by axis so that the kernel stays separable and banded.

    With ``u_0 = g_ref`` and ``u_k = log K_k exp(u_{k-1})`` (the exact banded log-sum-exp along
    axis ``k``, computed once), the weights ``W_k[i, t] = K_k[t] exp(u_{k-1}[i+t] - u_k[i])``
    are row-stochastic, and for any ``g`` with the support of ``g_ref``

        log K exp(g) = u_d + log(W_d ... W_1 exp(g - g_ref)),

    an identity (by induction over the axes).  Applying it costs ``2w+1`` multiply-adds per
    cell and axis plus one ``exp`` and one ``log`` per cell -- no overflow while
    ``|g - g_ref| <= bound`` (every intermediate is a convex combination of ``exp(g - g_ref)``).
    :meth:`apply` returns ``None`` when ``g`` has left that range or changed its support:
    absorb again (at the current ``g``).

    Args:
        geom: A :attr:`GridGeometry.fully_banded` geometry.
        g_ref: Reference log-scalings, shape ``grid.shape`` (``-inf`` outside the support).
        bound: Largest ``|g - g_ref|`` :meth:`apply` accepts; ``None`` for 40 % of the log of
            the dtype's largest number.

    Raises:
        ValueError: If some axis of ``geom`` is not banded.
    """

    def __init__(self, geom: GridGeometry, g_ref: Tensor, bound: float | None = None) -> None:
        if not geom.fully_banded:
            raise ValueError("absorption needs a banded kernel on every axis")
        self.bound = bound if bound is not None else 0.4 * math.log(torch.finfo(g_ref.dtype).max)
        self.supp = torch.isfinite(g_ref)
        self.n_supp = int(self.supp.sum())
        self.ref = torch.where(self.supp, g_ref, torch.zeros_like(g_ref))
        d = geom.grid.dim
        self.weights: list[list[Tensor]] = []
        u = g_ref
        for k in range(d):
            axis = u.ndim - d + k
            lt = geom.log_taps[k]
            w = (len(lt) - 1) // 2
            n = u.shape[axis]
            nxt = _band_lse(lt, u, axis)
            ws = []
            for t in range(2 * w + 1):
                o = t - w
                wt = torch.zeros_like(u)
                if abs(o) < n:
                    dst = wt.narrow(axis, max(0, -o), n - abs(o))
                    src = u.narrow(axis, max(0, o), n - abs(o))
                    val = torch.exp(lt[t] + src - nxt.narrow(axis, max(0, -o), n - abs(o)))
                    dst.copy_(torch.nan_to_num(val, nan=0.0))
                ws.append(wt)
            self.weights.append(ws)
            u = nxt
        self.out = u
        self.axes = [u.ndim - d + k for k in range(d)]

    def apply(self, g: Tensor) -> Tensor | None:
        """``log K exp(g)`` through the absorbed weights.

        Args:
            g: Log-scalings, shape ``grid.shape``.

        Returns:
            ``log K exp(g)``, or ``None`` if ``g`` drifted beyond ``bound`` from the reference
                or its support (finite entries) differs.
        """
        diff = torch.where(self.supp, g - self.ref, torch.zeros_like(g))
        lo, hi = torch.aminmax(diff)
        if not (float(lo) >= -self.bound and float(hi) <= self.bound):
            return None
        if int(torch.isfinite(g).sum()) != self.n_supp:
            return None
        v = torch.where(self.supp, torch.exp(diff), torch.zeros_like(g))
        for axis, ws in zip(self.axes, self.weights, strict=True):
            w = (len(ws) - 1) // 2
            n = v.shape[axis]
            out = ws[w] * v
            for t, wt in enumerate(ws):
                o = t - w
                if o == 0 or abs(o) >= n:
                    continue
                m = n - abs(o)
                out.narrow(axis, max(0, -o), m).addcmul_(wt.narrow(axis, max(0, -o), m),
                                                         v.narrow(axis, max(0, o), m))
            v = out
        return self.out + torch.log(v)
