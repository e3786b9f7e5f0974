"""The spectrum of a unit-trace PSD matrix and the Rényi entropy of a spectrum, in bits.

The shared base of :mod:`wgf_cli.info.entropy` (exact and Frobenius entropies) and
:mod:`wgf_cli.info.fast` (deflation + Lanczos quadrature): both import from here, and
``entropy`` calls ``fast``, never the other way round.
"""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float; :class:`ValueError` unless finite and > 0."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha) \
            or not alpha > 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    return float(alpha)


def _check_square(A: torch.Tensor, what: str = "A") -> None:
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{what} must be a (batch of) square matrix (..., n, n), got {tuple(A.shape)}")


def spectrum(A: torch.Tensor) -> torch.Tensor:
    """The eigenvalues of ``A / tr A`` in float64 (ascending), ``(..., n)``.

    Eigenvalues below the round-off level ``n * eps * lambda_max`` (negative ones included)
    are set to 0 -- they are indistinguishable from rounding errors of ``eigvalsh`` and, for
    ``alpha < 1``, ``lambda^alpha`` would otherwise turn them into a spurious entropy -- and the
    spectrum is renormalized to sum 1.
    """
    _check_square(A)
    lam = torch.linalg.eigvalsh(A.to(torch.float64))
    floor = A.shape[-1] * torch.finfo(torch.float64).eps * lam[..., -1:].abs()
    lam = torch.where(lam > floor, lam, torch.zeros_like(lam))
    return lam / lam.sum(-1, keepdim=True)


def renyi_from_spectrum(lam: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rényi entropy in bits of a (batch of) probability vector(s) ``lam`` ``(..., n)``.

    Stable near ``alpha = 1``: ``sum lam^alpha = 1 + sum lam expm1((alpha-1) ln lam)``.
    """
    alpha = check_alpha(alpha)
    lam = lam.clamp_min(0.0)
    lam = lam / lam.sum(-1, keepdim=True)
    pos = lam > 0
    loglam = torch.where(pos, lam, torch.ones_like(lam)).log()
    if alpha == 1.0:
        return -(lam * loglam).sum(-1) / LN2
    t = torch.where(pos, lam * torch.expm1((alpha - 1.0) * loglam), torch.zeros_like(lam)).sum(-1)
    return torch.log1p(t) / ((1.0 - alpha) * LN2)
