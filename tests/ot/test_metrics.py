"""Grid W2 (wgf_cli.ot.metrics, through wgf_cli.ot.pointcloud) against POT and closed forms.

Stated tolerances: the quantile formula is exact, so against POT's ``wasserstein_1d`` on the
same projections the sliced distance agrees to 1e-10 relative (float64 rounding of cumulative
sums); a translated measure on a periodic-free grid has W2 equal to the shift to 1e-12.
"""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from wgf_cli.flows import initial
from wgf_cli.ot.grid import Grid
from wgf_cli.ot.metrics import grid_w2
from wgf_cli.ot.pointcloud import directions, sliced_w2, w2_squared_same_support

DT = torch.float64


def test_1d_quantile_formula_matches_pot():
    gen = torch.Generator().manual_seed(1)
    x = torch.sort(torch.rand(300, generator=gen, dtype=DT)).values
    a = torch.rand(300, generator=gen, dtype=DT)
    b = torch.rand(300, generator=gen, dtype=DT) ** 4
    a[:40] = 0.0  # empty cells
    a, b = a / a.sum(), b / b.sum()
    ours = float(w2_squared_same_support(x.numpy(), a.numpy(), b.numpy()))
    ref = ot.wasserstein_1d(x.numpy(), x.numpy(), a.numpy(), b.numpy(), p=2)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_shift_on_a_grid_is_exact():
    grid = Grid.regular(200, 1)
    p = initial.gaussian(grid, [0.4], 0.05)
    q = torch.roll(p, 10)  # the same bump moved by 10 cells, far from the walls
    np.testing.assert_allclose(grid_w2(grid, p, q), 10 * grid.spacing[0], rtol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
def test_sliced_matches_pot_per_direction(dim):
    grid = Grid.regular(24 if dim == 2 else 10, dim)
    p = initial.gaussian(grid, [0.4] * dim, 0.1)
    q = initial.gaussian(grid, [0.55] * dim, 0.15)
    pts = grid.points()
    a, b = p.reshape(-1) / p.sum(), q.reshape(-1) / q.sum()
    ours = sliced_w2(pts.numpy(), None, a.numpy(), b.numpy(), n_projections=16, seed=3)
    dirs = directions(dim, 16, seed=3).numpy()
    proj = pts.numpy() @ dirs.T
    ref = np.sqrt(np.mean([ot.wasserstein_1d(proj[:, k], proj[:, k], a.numpy(), b.numpy(), p=2)
                           for k in range(16)]))
    np.testing.assert_allclose(ours, ref, rtol=1e-10)
    np.testing.assert_allclose(grid_w2(grid, p, p), 0.0, atol=1e-12)
