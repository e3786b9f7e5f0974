"""Distances between measures on a grid (the grid side of :mod:`wgf_cli.ot.pointcloud`)."""

from __future__ import annotations

import numpy as np
import torch

from wgf_cli.ot.grid import Grid
from wgf_cli.ot.pointcloud import sliced_w2, w2_1d


def grid_w2(grid: Grid, p: torch.Tensor, q: torch.Tensor, *, n_projections: int = 64,
            seed: int = 0) -> float:
    """2-Wasserstein distance between two measures on ``grid`` (normalised to mass 1).

    Both measures weight the same cell centres.  Exact in 1-D (the quantile formula,
    :func:`~wgf_cli.ot.pointcloud.w2_1d`); in 2-D and 3-D the sliced W2 over ``n_projections``
    fixed random directions (:func:`~wgf_cli.ot.pointcloud.sliced_w2` with
    :func:`~wgf_cli.ot.pointcloud.directions` from ``seed``), a lower bound of W2 that metrises
    the same convergence.  Computed in float64 with NumPy; negative masses are clipped to 0.

    Args:
        grid: the grid both measures live on.
        p: first measure, densities or masses of shape ``grid.shape`` (any scale).
        q: second measure, like ``p``.
        n_projections: directions of the sliced distance (2-D and 3-D).
        seed: seed of those directions.

    Returns:
        The distance, a float.
    """
    pts = grid.points().detach().cpu().numpy().astype(np.float64)
    a = np.clip(p.detach().reshape(-1).cpu().numpy().astype(np.float64), 0, None)
    b = np.clip(q.detach().reshape(-1).cpu().numpy().astype(np.float64), 0, None)
    if grid.dim == 1:
        return w2_1d(pts[:, 0], None, a, b)
    return sliced_w2(pts, None, a, b, n_projections=n_projections, seed=seed)
