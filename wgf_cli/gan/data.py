"""Toy target distributions with known modes.

Every dataset samples on the CPU from an explicit :class:`torch.Generator` in float64 (so a
seed gives the same points on every device) and moves the batch to the requested
device/dtype.  Mixtures of Gaussians expose their ``centres`` (K x d) and the common
per-coordinate ``std`` of a mode *in the final coordinates*, which the PacGAN mode metrics use.

- ``gauss2_1d``: ½ N(-1, s²) + ½ N(+1, s²) on the line.
- ``ring8``, ``grid25``, ``swissroll``: the WGAN-GP toy sets (Gulrajani et al. 2017): 8
  Gaussians of std 0.02 on the circle of radius 2, divided by 1.414; 25 Gaussians of std 0.05
  at 2·{-2..2}², divided by 2.828; a swiss roll (noise 0.25, coordinates x and z) divided by 7.5.
- ``ring8_pacgan``, ``grid25_pacgan``: the PacGAN / VEEGAN protocol: 8 modes on the unit
  circle with std 0.01; 25 modes at {-4,-2,0,2,4}² with std 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DATASETS = ["gauss2_1d", "ring8", "grid25", "swissroll", "ring8_pacgan", "grid25_pacgan"]


@dataclass(frozen=True)
class ToyData:
    """A toy distribution: ``sample(count, generator)``; ``centres``/``std`` for mixtures."""

    name: str
    dim: int
    centres: torch.Tensor | None  # (K, dim) float64, final coordinates; None: not a mixture
    std: float | None  # per-coordinate std of each mode, final coordinates
    scale: float = 1.0  # coordinates are divided by this after sampling
    noise: float = 0.0  # swiss roll noise

    @property
    def n_modes(self) -> int:
        """Number of mixture modes (0 for the continuous datasets)."""
        return 0 if self.centres is None else int(self.centres.shape[0])

    def sample(self, count: int, generator: torch.Generator, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``count`` i.i.d. points, drawn on the CPU in float64 with ``generator``."""
        if self.name == "swissroll":
            x = _swissroll(count, self.noise, generator) / self.scale
        else:
            assert self.centres is not None and self.std is not None
            idx = torch.randint(self.n_modes, (count,), generator=generator)
            eps = torch.randn(count, self.dim, generator=generator, dtype=torch.float64)
            x = self.centres[idx] + self.std * eps
        return x.to(device=device, dtype=dtype)


def _swissroll(count: int, noise: float, generator: torch.Generator) -> torch.Tensor:
    """scikit-learn's ``make_swiss_roll`` (t ∈ 1.5π[1, 3], (t cos t, t sin t)), coordinates x, z."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(count, generator=generator, dtype=torch.float64))
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
    return x + noise * torch.randn(count, 2, generator=generator, dtype=torch.float64)


def make_dataset(name: str, *, std: float | None = None) -> ToyData:
    """The dataset ``name`` (one of :data:`DATASETS`).

    ``std`` overrides the mode std of ``gauss2_1d`` (default 0.1) and, for the others, the std *before*
    the rescaling.
    """
    f64 = torch.float64
    if name == "gauss2_1d":
        return ToyData(name, 1, torch.tensor([[-1.0], [1.0]], dtype=f64), 0.1 if std is None else std)
    if name == "ring8":
        ang = torch.arange(8, dtype=f64) * math.pi / 4
        c = 2.0 * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
        s = 0.02 if std is None else std
        return ToyData(name, 2, c / 1.414, s / 1.414, scale=1.414)
    if name == "grid25":
        g = torch.arange(-2, 3, dtype=f64) * 2.0
        c = torch.cartesian_prod(g, g)
        s = 0.05 if std is None else std
        return ToyData(name, 2, c / 2.828, s / 2.828, scale=2.828)
    if name == "swissroll":
        return ToyData(name, 2, None, None, scale=7.5, noise=0.25 if std is None else std)
    if name == "ring8_pacgan":
        ang = torch.arange(8, dtype=f64) * 2 * math.pi / 8
        return ToyData(name, 2, torch.stack([torch.cos(ang), torch.sin(ang)], 1),
                       0.01 if std is None else std)
    if name == "grid25_pacgan":
        g = torch.arange(-4, 5, 2, dtype=f64)
        return ToyData(name, 2, torch.cartesian_prod(g, g), 0.05 if std is None else std)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
