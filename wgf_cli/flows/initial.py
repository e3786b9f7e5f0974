"""Initial measures on a grid (masses per cell, total mass 1).

:func:`build_initial` makes one from its name and parameters (the ``initial`` config group of
``wgf jko``; :data:`INITIALS` lists the names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wgf_cli.flows import references
from wgf_cli.ot.grid import Grid

Tensor = torch.Tensor


def _normalise(p: Tensor) -> Tensor:
    total = float(p.sum())
    if not total > 0:
        raise ValueError("initial density has no mass on the grid")
    return p / total


def _cov(std, dim: int) -> Tensor:
    if isinstance(std, int | float):
        return torch.eye(dim, dtype=torch.float64) * float(std) ** 2
    std = [float(s) for s in std]
    return torch.diag(torch.tensor(std, dtype=torch.float64) ** 2)


def gaussian(grid: Grid, mean: Sequence[float], std) -> Tensor:
    """N(mean, diag(std^2)) sampled at the cell centres and normalised to mass 1."""
    return _normalise(references.gaussian_density(grid, mean, _cov(std, grid.dim)) * grid.cell_volume)


def gaussian_mixture(grid: Grid, means: Sequence[Sequence[float]], stds, weights) -> Tensor:
    """Mixture ``sum_k w_k N(means_k, std_k^2 I)``, normalised to mass 1."""
    if not len(means) == len(stds) == len(weights):
        raise ValueError("gaussian_mixture needs as many means, stds and weights")
    out = torch.zeros(grid.shape, dtype=grid.dtype, device=grid.device)
    for m, s, w in zip(means, stds, weights, strict=True):
        out = out + float(w) * references.gaussian_density(grid, m, _cov(s, grid.dim))
    return _normalise(out * grid.cell_volume)


def box(grid: Grid, lo: Sequence[float], hi: Sequence[float]) -> Tensor:
    """Uniform on the cells whose centre lies in ``[lo, hi]``."""
    inside = torch.ones(grid.shape, dtype=torch.bool, device=grid.device)
    for x, a, b in zip(grid.mesh(), lo, hi, strict=True):
        inside &= (x >= a) & (x <= b)
    return _normalise(inside.to(grid.dtype))


def barenblatt(grid: Grid, m: float, t0: float, center: Sequence[float]) -> Tensor:
    """Barenblatt profile of the porous medium equation at time ``t0`` (mass 1)."""
    return _normalise(references.barenblatt(grid, m, t0, center))


def from_npy(grid: Grid, path: str | Path) -> Tensor:
    """A density read from a ``.npy`` file of shape ``grid.shape`` (non-negative)."""
    arr = np.load(Path(path))
    if tuple(arr.shape) != tuple(grid.shape):
        raise ValueError(f"initial density in {path} has shape {arr.shape}, grid is {grid.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"initial density in {path} must be finite and non-negative")
    return _normalise(torch.as_tensor(arr, dtype=grid.dtype, device=grid.device))


def _from_spec_gaussian(grid: Grid, c: Mapping[str, Any]) -> Tensor:
    std = c["std"] if isinstance(c["std"], int | float) else list(c["std"])
    return gaussian(grid, references.grid_point(grid, c.get("mean")), std)


#: initial measures by name: ``builder(grid, spec)``
INITIALS: dict[str, Callable[[Grid, Mapping[str, Any]], Tensor]] = {
    "gaussian": _from_spec_gaussian,
    "gaussian_mixture": lambda grid, c: gaussian_mixture(
        grid, [list(m) for m in c["means"]], list(c["stds"]), list(c["weights"])),
    "box": lambda grid, c: box(grid, list(c["lo"]), list(c["hi"])),
    "barenblatt": lambda grid, c: barenblatt(grid, float(c["m"]), float(c["t0"]),
                                             references.grid_point(grid, c.get("center"))),
    "npy": lambda grid, c: from_npy(grid, str(c["path"])),
}


def build_initial(spec: Mapping[str, Any], grid: Grid) -> Tensor:
    """The initial measure named ``spec["name"]`` with the parameters in ``spec``.

    Args:
        spec: ``name`` (a key of :data:`INITIALS`) and its parameters: ``mean`` (``None``:
            the centre of the box) and ``std`` (a number or one per axis) for ``gaussian``;
            ``means``, ``stds``, ``weights`` for ``gaussian_mixture``; ``lo``, ``hi`` for
            ``box``; ``m``, ``t0``, ``center`` for ``barenblatt``; ``path`` for ``npy``.
        grid: the grid.

    Returns:
        Masses per cell, total mass 1.

    Raises:
        KeyError: unknown name; ValueError: parameters the measure rejects.
    """
    return INITIALS[spec["name"]](grid, spec)
