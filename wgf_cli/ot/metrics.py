"""Distances between measures on a grid, through POT."""

from __future__ import annotations

import numpy as np
import torch

from wgf_cli.ot.grid import Grid


def grid_w2(grid: Grid, p: torch.Tensor, q: torch.Tensor, *, n_projections: int = 64,
            seed: int = 0) -> float:
    """2-Wasserstein distance between two measures on ``grid`` (normalised to mass 1).

    Exact in 1-D (``ot.wasserstein_1d``); in 2-D and 3-D the sliced W2 over
    ``n_projections`` fixed random directions (``ot.sliced_wasserstein_distance``), which is
    a lower bound of W2 that metrises the same convergence.
    """
    import ot

    pts = grid.points().detach().cpu().numpy().astype(np.float64)
    a = p.detach().reshape(-1).cpu().numpy().astype(np.float64)
    b = q.detach().reshape(-1).cpu().numpy().astype(np.float64)
    a, b = np.clip(a, 0, None), np.clip(b, 0, None)
    a, b = a / a.sum(), b / b.sum()
    if grid.dim == 1:
        return float(np.sqrt(max(ot.wasserstein_1d(pts[:, 0], pts[:, 0], a, b, p=2), 0.0)))
    keep_a, keep_b = a > 0, b > 0
    return float(ot.sliced_wasserstein_distance(pts[keep_a], pts[keep_b], a[keep_a], b[keep_b],
                                                n_projections=n_projections, seed=seed))
