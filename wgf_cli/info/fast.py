"""A fast approximate matrix-based Rényi entropy for large Gram matrices.

The exact entropy needs every eigenvalue (``eigvalsh``: O(n^3)).  Gram matrices of smooth
kernels have a few large eigenvalues and a long tail of small ones, so we split the
spectrum (Hutch++-style deflation, Meyer, Musco, Musco & Woodruff 2021; stochastic Lanczos
quadrature, Ubaru, Chen & Saad 2017):

1. **Top eigenspace.**  A randomized block Krylov space (``blocks`` products with an
   ``n x block`` block, block Lanczos with full re-orthogonalization; Musco & Musco 2015)
   and Rayleigh-Ritz on all of it give the top Ritz pairs ``(theta_i, q_i)``; those that
   converged (residual ``<= ritz_tol * theta_i``) are deflated and contribute
   ``sum_i f(theta_i)``; the error of this split is second order in the residuals.
2. **Tail.**  On the complement ``P = I - Q Q^T`` the deflated operator ``B = P A P`` is
   handled by stochastic Lanczos quadrature: ``probes`` Rademacher vectors ``z`` projected
   by ``P``, ``steps`` Lanczos steps each (all probes in one block product per step, full
   re-orthogonalization), Gauss quadrature ``z^T f(B) z ~ ||z||^2 sum_j tau_j^2 f(t_j)``.
3. **Variance reduction.**  Since ``tr A = 1``, ``sum lambda^alpha = 1 + tr g(A)`` with
   ``g(x) = x^alpha - x`` (``x ln x`` at ``alpha = 1``): the constant part of the power sum
   is exact and only ``g`` is estimated.  The tail moments ``tr B`` and ``||B||_F^2`` are
   known exactly (from ``tr A``, ``||A||_F^2`` and the Ritz pairs), so ``x`` and ``x^2`` serve
   as control variates: the probes estimate ``tr r(B)`` with ``r = g - c_1 x - c_2 x^2``
   (``c`` fitted on the quadrature nodes) and ``c_1 tr B + c_2 ||B||_F^2`` is added exactly.

The error estimate (bits) combines the standard error of the probe mean (1 sigma) and a
quadrature proxy (the change of the estimate between ``steps/2`` and ``steps`` Lanczos
steps, which catches the systematic error of Gauss quadrature for ``alpha < 1``, where
``x^alpha`` is not smooth at 0 and the many tiny eigenvalues matter).
Cost: ``blocks`` products with ``block`` columns and ``steps`` products
with ``probes`` columns, plus O(n (rank + probes steps)^2)), against the O(n^3) of
``eigvalsh``.  ``matmul_dtype=float32`` halves the cost of the products on the CPU (the
Lanczos bookkeeping stays in float64).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from wgf_cli.info.entropy import LN2, check_alpha, renyi_from_spectrum, spectrum


@dataclass
class FastEntropyResult:
    """The estimate and its diagnostics."""

    entropy: float  # bits
    error_estimate: float  # bits: 1-sigma standard error of the probes (+) quadrature proxy
    alpha: float
    rank: int  # deflated eigenpairs
    probes: int
    steps: int
    exact: bool  # True when n was small enough to do it exactly
    top_mass: float  # sum of the deflated eigenvalues (of A / tr A)
    tail_trace: float  # tr of the deflated operator (1 - top_mass)
    tail_fraction: float  # share of |tr g(A)| carried by the tail estimate
    ritz_residual: float  # ||A Q - Q Theta||_F / ||A||_F of the deflated pairs
    wall_s: float


def _g(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``x^alpha - x`` (``x ln x`` at ``alpha = 1``) for ``x >= 0`` (negatives clipped)."""
    x = x.clamp_min(0.0)
    pos = x > 0
    lx = torch.where(pos, x, torch.ones_like(x)).log()
    if alpha == 1.0:
        return torch.where(pos, x * lx, torch.zeros_like(x))
    return torch.where(pos, x * torch.expm1((alpha - 1.0) * lx), torch.zeros_like(x))


def _orth(Y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(Y, mode="reduced").Q


def entropy_fast(A: torch.Tensor, alpha: float, *, block: int = 64, blocks: int = 6,
                 rank: int | None = None, probes: int = 16, steps: int = 12,
                 ritz_tol: float = 1e-2, generator: torch.Generator | None = None,
                 matmul_dtype: torch.dtype | None = None) -> FastEntropyResult:
    """Approximate ``S_alpha(A / tr A)`` in bits for a symmetric PSD ``(n, n)`` matrix ``A``.

    ``block``, ``blocks``: columns and depth of the block Krylov space of the top eigenspace
    (``blocks`` products with ``A``); ``rank``: at most this many pairs deflated (default: all
    that converged); ``ritz_tol``: a Ritz pair is deflated when
    its residual ``||A q - theta q|| <= ritz_tol * theta`` (the others stay in the tail);
    ``probes``, ``steps``: stochastic Lanczos quadrature of the tail.  ``generator``: a CPU
    :class:`torch.Generator` (seeded for reproducible estimates).  ``matmul_dtype``: dtype of
    the products with ``A`` (default: float64).  When ``n`` is too small for the split to pay
    off, the exact value is returned (``exact=True``).
    """
    t0 = time.perf_counter()
    alpha = check_alpha(alpha)
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be (n, n), got {tuple(A.shape)}")
    rank = block * blocks if rank is None else rank
    for name, v, lo in (("block", block, 1), ("blocks", blocks, 1), ("rank", rank, 1),
                        ("probes", probes, 2), ("steps", steps, 2)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    n = A.shape[0]
    dev = A.device
    f64 = torch.float64
    if n <= 2 * block * blocks + steps:
        s = float(renyi_from_spectrum(spectrum(A), alpha))
        return FastEntropyResult(s, 0.0, alpha, n, 0, 0, True, 1.0, 0.0, 0.0, 0.0,
                                 time.perf_counter() - t0)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    Am = A.to(matmul_dtype or f64)
    tr = float(torch.diagonal(A).to(f64).sum())
    fro2 = float(torch.linalg.vector_norm(A, dtype=f64)) ** 2 / tr**2

    def mm(X: torch.Tensor) -> torch.Tensor:
        return (Am @ X.to(Am.dtype)).to(f64) / tr

    # 1. top eigenspace: randomized block Krylov (block Lanczos with full re-orthogonalization)
    #    + Rayleigh-Ritz on the whole Krylov basis; one product with A per block
    Qb = _orth(torch.randn(n, block, generator=gen, dtype=f64).to(dev))
    Qs: list[torch.Tensor] = []
    AQs: list[torch.Tensor] = []
    for j in range(blocks):
        W = mm(Qb)
        Qs.append(Qb)
        AQs.append(W)
        if j == blocks - 1:
            break
        Qc = torch.cat(Qs, 1)
        for _ in range(2):
            W = W - Qc @ (Qc.T @ W)
        Qb = _orth(W)
        Qb = _orth(Qb - Qc @ (Qc.T @ Qb))  # stays orthogonal even if W lost rank
    Q, Y = torch.cat(Qs, 1), torch.cat(AQs, 1)
    T = Q.T @ Y
    theta, V = torch.linalg.eigh((T + T.T) / 2)
    # residual norms ||A Q v - theta Q v||^2 = v^T (Y^T Y) v - theta^2 (Q orthonormal, T = Q^T Y
    # symmetric), so only the deflated Ritz vectors are formed
    res2 = ((V * ((Y.T @ Y) @ V)).sum(0) - theta * theta).clamp_min(0.0)
    order = torch.argsort(theta, descending=True)[:rank]
    # deflate only the converged pairs; the others stay in the stochastic part
    keep = order[res2[order].sqrt() <= ritz_tol * theta[order].abs().clamp_min(1e-300)]
    theta, Q = theta[keep], Q @ V[:, keep]
    r2 = float(res2[keep].sum())
    theta_c = theta.clamp_min(0.0)
    top_g = float(_g(theta_c, alpha).sum())
    m1 = max(1.0 - float(theta.sum()), 0.0)  # tr B
    m2 = max(fro2 - float((theta * theta).sum()) - 2.0 * r2, 0.0)  # ||B||_F^2

    # 2. stochastic Lanczos quadrature on B = P A P
    def proj(X: torch.Tensor) -> torch.Tensor:
        return X - Q @ (Q.T @ X)

    Z = (torch.randint(0, 2, (n, probes), generator=gen, dtype=f64) * 2 - 1).to(dev)
    Z = proj(Z)
    znorm2 = (Z * Z).sum(0)
    k_steps = min(steps, n - rank)
    Vbuf = torch.empty(k_steps, n, probes, dtype=f64, device=dev)  # Lanczos vectors per probe
    Vbuf[0] = Z / znorm2.sqrt()
    alphas, betas = [], []
    for j in range(k_steps):
        W = proj(mm(Vbuf[j]))
        a = (Vbuf[j] * W).sum(0)
        alphas.append(a)
        W = W - Vbuf[j] * a - (Vbuf[j - 1] * betas[-1] if j > 0 else 0.0)
        Vj = Vbuf[: j + 1]  # full re-orthogonalization against this probe's Lanczos vectors
        W = proj(W - torch.einsum("knm,km->nm", Vj, torch.einsum("knm,nm->km", Vj, W)))
        b = W.norm(dim=0)
        if j == k_steps - 1 or bool((b < 1e-13).all()):
            break
        betas.append(b)
        Vbuf[j + 1] = W / b.clamp_min(1e-300)
    kk = len(alphas)
    a_all = torch.stack(alphas, 1)
    b_all = torch.stack(betas[: kk - 1], 1) if kk > 1 else None

    def tail_estimate(k: int, coef: torch.Tensor | None = None):
        """Quadrature with the first ``k`` Lanczos steps; control variates x, x^2."""
        Tm = torch.zeros(probes, k, k, dtype=f64, device=dev)
        idx = torch.arange(k, device=dev)
        Tm[:, idx, idx] = a_all[:, :k]
        if k > 1:
            Tm[:, idx[:-1], idx[1:]] = b_all[:, : k - 1]
            Tm[:, idx[1:], idx[:-1]] = b_all[:, : k - 1]
        nodes, U = torch.linalg.eigh(Tm)  # (m, k), (m, k, k)
        w = U[:, 0, :] ** 2 * znorm2[:, None]  # quadrature weights per probe, sum ||z||^2
        nodes = nodes.clamp_min(0.0)
        gq = _g(nodes, alpha)
        basis = torch.stack([nodes, nodes * nodes], -1)  # (m, k, 2)
        if coef is None:  # weighted least squares of g on the pooled nodes
            sw = w.reshape(-1, 1).sqrt()
            coef = torch.linalg.lstsq(basis.reshape(-1, 2) * sw, gq.reshape(-1, 1) * sw).solution
            coef = coef.reshape(2)
        per_probe = (w * (gq - basis @ coef)).sum(1)  # estimates of tr r(B)
        return per_probe, coef

    # 3. control variates x and x^2 (their tail traces m1, m2 are exact)
    per_probe, c = tail_estimate(kk)
    tail = float(per_probe.mean()) + float(c[0]) * m1 + float(c[1]) * m2
    stderr = float(per_probe.std(unbiased=True)) / math.sqrt(probes)
    # quadrature (Lanczos) error proxy: the same probes with half the steps
    half, _ = tail_estimate(max(kk // 2, 1), c)
    quad = abs(float(half.mean()) - float(per_probe.mean()))
    stderr = math.sqrt(stderr**2 + quad**2)

    G = top_g + tail  # tr g(A / tr A)
    if alpha == 1.0:
        ent, err = -G / LN2, stderr / LN2
    else:
        p = max(1.0 + G, 1e-300)
        ent = math.log(p) / ((1.0 - alpha) * LN2)
        err = stderr / (p * abs(1.0 - alpha) * LN2)
    return FastEntropyResult(
        entropy=ent, error_estimate=err, alpha=alpha, rank=int(theta.numel()), probes=probes,
        steps=kk, exact=False, top_mass=float(theta.sum()), tail_trace=m1,
        tail_fraction=abs(tail) / max(abs(G), 1e-300),
        ritz_residual=math.sqrt(r2 / fro2) if fro2 > 0 else 0.0,
        wall_s=time.perf_counter() - t0)
