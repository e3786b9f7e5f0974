"""Distances between measures on a grid."""

from __future__ import annotations

import math

import numpy as np
import torch

from wgf_cli.ot.grid import Grid

Tensor = torch.Tensor

#: elements (projections x cells) one chunk of the sliced distance materialises at once
_SLICE_CHUNK = 1 << 20


def directions(dim: int, n: int, seed: int = 0) -> Tensor:
    """``n`` fixed random unit vectors of ``R^dim`` (rows), reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    d = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True)


def w2_squared_same_support(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared 2-Wasserstein distance between two measures on the same sorted points of a line.

    ``x`` (``..., N``) is sorted ascending along the last axis; ``a`` and ``b`` (same shape,
    non-negative) are the weights, normalised here.  The distance is
    ``int_0^1 |F_a^{-1}(t) - F_b^{-1}(t)|^2 dt`` between the quantile functions, computed
    exactly by merging the two sets of cumulative levels: one sort of ``2N`` levels per row.
    """
    ca = np.cumsum(a, axis=-1)
    cb = np.cumsum(b, axis=-1)
    ca /= ca[..., -1:]
    cb /= cb[..., -1:]
    n = x.shape[-1]
    both = np.concatenate([ca, cb], axis=-1)
    src = np.argsort(both, axis=-1)
    levels = np.take_along_axis(both, src, axis=-1)
    dt = np.diff(levels, axis=-1, prepend=0.0)
    # F^{-1}(t) = x[first i with F(x_i) >= t]; on the interval (levels[j-1], levels[j]] that
    # index is the number of that measure's levels merged before position j (read off the
    # sort's source positions; the order of tied levels does not change the sum)
    from_a = (src < n).astype(np.int64)
    ia = np.minimum(np.cumsum(from_a, axis=-1) - from_a, n - 1)
    ib = np.minimum(np.cumsum(1 - from_a, axis=-1) - (1 - from_a), n - 1)
    diff = np.take_along_axis(x, ia, axis=-1) - np.take_along_axis(x, ib, axis=-1)
    return (dt * diff**2).sum(axis=-1)


def sliced_w2(points: np.ndarray, a: np.ndarray, b: np.ndarray, *, n_projections: int = 64,
              seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between two weightings ``a``, ``b`` of the same points.

    ``sqrt(mean_theta W2^2(theta#a, theta#b))`` over ``n_projections`` fixed random directions
    (:func:`directions`), the definition of POT's ``ot.sliced_wasserstein_distance``.  Both
    measures live on the same points, so each direction needs one sort of the projections;
    directions are processed in chunks so that memory stays O(chunk).
    """
    dirs = directions(points.shape[1], n_projections, seed).numpy()
    rows = max(1, _SLICE_CHUNK // max(1, points.shape[0]))
    total = 0.0
    for s in range(0, n_projections, rows):
        proj = dirs[s : s + rows] @ points.T  # (chunk, N)
        order = np.argsort(proj, axis=-1)
        x = np.take_along_axis(proj, order, axis=-1)
        total += float(w2_squared_same_support(x, a[order], b[order]).sum())
    return math.sqrt(max(total / n_projections, 0.0))


def grid_w2(grid: Grid, p: torch.Tensor, q: torch.Tensor, *, n_projections: int = 64,
            seed: int = 0) -> float:
    """2-Wasserstein distance between two measures on ``grid`` (normalised to mass 1).

    Exact in 1-D (the quantile formula); in 2-D and 3-D the sliced W2 over ``n_projections``
    fixed random directions (:func:`sliced_w2`), a lower bound of W2 that metrises the same
    convergence.  Computed in float64 with NumPy.
    """
    pts = grid.points().detach().cpu().numpy().astype(np.float64)
    a = np.clip(p.detach().reshape(-1).cpu().numpy().astype(np.float64), 0, None)
    b = np.clip(q.detach().reshape(-1).cpu().numpy().astype(np.float64), 0, None)
    if grid.dim == 1:
        x = pts[:, 0]  # cell centres are sorted
        return math.sqrt(max(float(w2_squared_same_support(x, a, b)), 0.0))
    return sliced_w2(pts, a, b, n_projections=n_projections, seed=seed)
