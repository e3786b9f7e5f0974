"""Closed forms of optimal transport between Gaussians (the references of ``wgf ot``).

For ``N(m0, S0)`` and ``N(m1, S1)``:

* ``W2^2 = |m1 - m0|^2 + B^2(S0, S1)``, with the Bures distance
  ``B^2 = tr S0 + tr S1 - 2 tr (S0^{1/2} S1 S0^{1/2})^{1/2}``;
* the Brenier map is affine, ``T(x) = m1 + A (x - m0)`` with the symmetric positive matrix
  ``A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2}``;
* the geodesic (displacement interpolation) is Gaussian: ``m_t = (1-t) m0 + t m1``,
  ``S_t = ((1-t) I + t A) S0 ((1-t) I + t A)``.

Plain PyTorch, float64 throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Tensor = torch.Tensor


def _t(x) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def sqrtm_psd(s: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (eigendecomposition)."""
    s = _t(s)
    w, v = torch.linalg.eigh(0.5 * (s + s.T))
    return (v * torch.sqrt(torch.clamp(w, min=0.0))) @ v.T


def bures2(s0, s1) -> float:
    """Squared Bures distance between covariance matrices."""
    s0, s1 = _t(s0), _t(s1)
    r0 = sqrtm_psd(s0)
    return float(torch.trace(s0) + torch.trace(s1) - 2.0 * torch.trace(sqrtm_psd(r0 @ s1 @ r0)))


def w2sq(m0, s0, m1, s1) -> float:
    """W2^2 between ``N(m0, s0)`` and ``N(m1, s1)``: ``|m1 - m0|^2 + bures2(s0, s1)``."""
    return float(((_t(m1) - _t(m0)) ** 2).sum()) + bures2(s0, s1)


def affine_map(s0, s1) -> Tensor:
    """The matrix ``A`` of the Brenier map ``x -> m1 + A (x - m0)`` from ``N(., s0)`` to ``N(., s1)``."""
    s0, s1 = _t(s0), _t(s1)
    r0 = sqrtm_psd(s0)
    r0i = torch.linalg.inv(r0)
    return r0i @ sqrtm_psd(r0 @ s1 @ r0) @ r0i


def geodesic_moments(m0, s0, m1, s1, t: float) -> tuple[Tensor, Tensor]:
    """Mean and covariance at time ``t`` of the W2 geodesic between two Gaussians."""
    m0, s0, m1, s1 = _t(m0), _t(s0), _t(m1), _t(s1)
    a = affine_map(s0, s1)
    b = (1.0 - t) * torch.eye(s0.shape[0], dtype=torch.float64) + t * a
    return (1.0 - t) * m0 + t * m1, b @ s0 @ b.T


def covariance(std: float | Sequence[float], angle_deg: float, dim: int) -> Tensor:
    """``R diag(std^2) R^T``: a scalar or per-axis ``std``; in 2-D ``R`` rotates by ``angle_deg``."""
    std_t = _t([float(std)] * dim if isinstance(std, int | float) else [float(s) for s in std])
    s = torch.diag(std_t**2)
    if dim == 2 and angle_deg:
        a = math.radians(float(angle_deg))
        r = _t([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        s = r @ s @ r.T
    return s


def moments(points: Tensor, masses: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the measure ``sum_i masses_i delta_{points_i}`` (``points``: ``(n, d)``)."""
    p = _t(points)
    w = _t(masses)
    w = w / w.sum()
    mean = (w[:, None] * p).sum(0)
    c = p - mean
    return mean, (w[:, None, None] * c[:, :, None] * c[:, None, :]).sum(0)
