"""A fast, adaptive approximation of the matrix-based Rényi entropy of large Gram matrices.

The exact entropy needs every eigenvalue (``eigvalsh``: O(n^3)).  Here ``A`` (normalized to
unit trace) is touched only through products ``A X`` with thin blocks, its trace and its
squared Frobenius norm (both exact), so it also runs matrix-free
(:class:`wgf_cli.info.operators.GaussianGram`).  With ``g(x) = x^alpha - x`` (``x ln x`` at
``alpha = 1``), ``sum_i lambda_i^alpha = 1 + tr g(A)``, and ``tr g(A)`` is split in three:

1. **Top eigenspace (deflation).**  A randomized block Krylov space (block Lanczos with full
   re-orthogonalization, one product with ``block`` columns per step; Musco & Musco 2015)
   and Rayleigh-Ritz give the top Ritz pairs ``(theta_i, q_i)``; those that converged
   (residual ``<= ritz_tol * theta_i``) are counted exactly, ``sum_i g(theta_i)``.  The depth
   is chosen from the spectrum seen so far: it grows while each step still converges a
   worthwhile number of new pairs (``>= block / 8`` from the fourth block on) and the remaining spectrum is not flat
   (largest unconverged Ritz value ``> FLAT_RATIO`` = 20 times the mean remaining eigenvalue).  Flat spectra
   (narrow kernels, high dimension) stop after two steps; steep ones (wide kernels) go deep.
2. **Expansion around the tail's mean.**  On ``B = P A P`` (``P = I - Q Q^T``) the moments
   ``tr B`` and ``||B||_F^2`` are exact (from ``tr A``, ``||A||_F^2`` and the Ritz pairs), so
   the quadratic part ``c_1 x + c_2 x^2`` of ``g`` is summed exactly: for a near-flat
   spectrum (``A`` close to a multiple of the identity on the tail) this second-order
   expansion is nearly all of ``tr g(B)``.  ``c`` is fitted (least squares on the quadrature
   nodes) so that the remainder ``r = g - c_1 x - c_2 x^2`` is as small as possible.
3. **Remainder: stochastic Lanczos quadrature with Gauss-Radau brackets.**  Rademacher probes
   ``z`` projected by ``P``; per probe ``z^T r(B) z`` by Gauss quadrature on the Lanczos
   tridiagonal matrix and by Gauss-Radau quadrature with a node fixed at 0 (the lower end of
   the spectrum of ``B``).  The derivatives of ``r`` of order >= 3 alternate in sign (for every
   ``alpha`` but the polynomial orders 1, 2, 3, where the quadrature is exact) so the two rules
   bracket the probe's value (Golub & Meurant): their mean is the estimate, half their gap a
   bound of its quadrature error.  This is what keeps ``alpha < 1`` (``x^alpha`` not smooth at
   0, many tiny eigenvalues) as accurate as ``alpha > 1``: Lanczos steps are added until the
   bracket is narrow enough.  Probes are added (in batches) until the statistical error is.

**Adaptive settings.**  With the relative error target ``tol`` on the entropy (in bits) the
budget for ``tr g`` is ``tol |S| p |1 - alpha| ln 2`` (``p = sum lambda^alpha``; ``tol |S| ln 2`` at
``alpha = 1``), using the running estimate of ``S``; a quarter goes to the quadrature bracket,
three quarters to the probes.  Steps grow up to ``max_steps`` and probes up to
``max_probes``; any of ``block``, ``blocks``, ``probes``, ``steps`` given fixes that setting.

**Error estimate** (bits): ``t * (standard error of the probe mean)`` (``t``: the 98 % two-sided
Student quantile for the number of probes) ``+`` the mean quadrature half-gap ``+`` a
second-order estimate of the split error of the deflation (Ritz residuals squared over the
gap) ``+`` a first-order estimate of the rounding of the products (``4 eps`` of each
eigenvalue).  It is meant to cover the true error in about 98 % of runs; ``met`` says whether it is
below ``tol |S|``.

**Precision.**  Products run in float32 for ``alpha >= 1`` and ``n >= 4096`` (halves their cost; the rounding of
``A`` perturbs eigenvalues by ~1e-7 of the largest, which only ``alpha < 1`` notices, through
the many tiny eigenvalues) and in float64 for ``alpha < 1``; the Lanczos bookkeeping is
always float64.  Cost: ``blocks`` products with ``block`` columns and ``steps`` products with
``probes`` columns (on the CPU these are memory-bound up to some 32-64 columns, so wide blocks
are nearly free), against the O(n^3) of ``eigvalsh``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from wgf_cli.info.operators import DenseGram, GaussianGram
from wgf_cli.info.spectral import LN2, check_alpha, renyi_from_spectrum, spectrum

F64 = torch.float64
FLAT_RATIO = 20.0  # deflation stops once the largest unconverged Ritz value is below this
                   # multiple of the mean remaining eigenvalue (the expansion takes over)
QUAD_SHARE = 0.3  # share of the error budget for the quadrature bracket (the rest: probes)
F32_MIN_N = 4096  # default float32 products from this n on (for alpha >= 1)
PROBES0 = 32  # probes of the first batch when adaptive (the operator's cheap_columns)
RESTART_PROBES = 6  # deflate deeper (once) when the first batch asks for more than this x probes
OPERATORS = (DenseGram, GaussianGram)


@dataclass
class FastEntropyResult:
    """The estimate, its error estimate and the settings the adaptive choice arrived at."""

    entropy: float  # bits
    error_estimate: float  # bits: ~98 % bound (probes' t * stderr + quadrature bracket + split)
    alpha: float
    rank: int  # deflated eigenpairs
    probes: int
    steps: int  # Lanczos steps per probe
    exact: bool  # True when n was small enough to do it exactly
    top_mass: float  # sum of the deflated eigenvalues (of A / tr A)
    tail_trace: float  # tr of the deflated operator (1 - top_mass)
    tail_fraction: float  # share of |tr g(A)| carried by the tail estimate
    ritz_residual: float  # ||A Q - Q Theta||_F / ||A||_F of the deflated pairs
    wall_s: float
    block: int = 0  # columns of the block Krylov space
    blocks: int = 0  # its depth (products)
    tol: float = 0.0  # the relative error target
    met: bool = True  # std_error <= tol * |entropy|
    std_error: float = 0.0  # bits: the typical (1 sigma) error: hypot(stderr, quadrature) + split
    stat_error: float = 0.0  # bits: t * standard error of the probes
    quad_error: float = 0.0  # bits: mean Gauss / Gauss-Radau half-gap
    split_error: float = 0.0  # bits: deflation split estimate + rounding of the products
    passes: int = 0  # products with A
    columns: int = 0  # columns multiplied by A in all
    matmul_dtype: str = "float64"


def _g(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``x^alpha - x`` (``x ln x`` at ``alpha = 1``) for ``x >= 0`` (negatives clipped)."""
    x = x.clamp_min(0.0)
    pos = x > 0
    lx = torch.where(pos, x, torch.ones_like(x)).log()
    if alpha == 1.0:
        return torch.where(pos, x * lx, torch.zeros_like(x))
    return torch.where(pos, x * torch.expm1((alpha - 1.0) * lx), torch.zeros_like(x))


def _dg(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``g'(x)`` for ``x > 0``."""
    x = x.clamp_min(1e-300)
    if alpha == 1.0:
        return x.log() + 1.0
    return alpha * x ** (alpha - 1.0) - 1.0


def _orth(Y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(Y, mode="reduced").Q


def _tq(dof: int) -> float:
    """Two-sided 98 % Student quantile (Cornish-Fisher, accurate to ~1 % for dof >= 4)."""
    z = 2.3263478740408
    v = max(dof, 1)
    return z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v * v)


def _to_entropy(G: float, alpha: float) -> tuple[float, float]:
    """Entropy (bits) from ``G = tr g(A)`` and ``dS/dG``."""
    if alpha == 1.0:
        return -G / LN2, 1.0 / LN2
    p = max(1.0 + G, 1e-300)
    return math.log(p) / ((1.0 - alpha) * LN2), 1.0 / (p * abs(1.0 - alpha) * LN2)


def _default_block(n: int) -> int:
    return int(min(64, max(16, n // 64)))


def _deflate(op, n: int, b: int, q_fixed: int | None, q_max: int, rank: int | None,
             ritz_tol: float, gen: torch.Generator, alpha: float, tr: float):
    """Block Krylov + Rayleigh-Ritz; the depth is fixed or chosen from the Ritz values."""
    dev = op.device

    def mm(X):
        return op.matmul(X) / tr

    Qb = _orth(torch.randn(n, b, generator=gen, dtype=F64).to(dev))
    Qs: list[torch.Tensor] = []
    Ys: list[torch.Tensor] = []
    T = torch.zeros(0, 0, dtype=F64, device=dev)  # Q^T Y, grown block by block
    YtY = torch.zeros(0, 0, dtype=F64, device=dev)
    prev_conv = 0
    depth = q_fixed or q_max
    j = 0
    for j in range(depth):
        W = mm(Qb)
        Qs.append(Qb)
        Ys.append(W)
        Q, Y = torch.cat(Qs, 1), torch.cat(Ys, 1)
        k0 = T.shape[0]
        Tn = torch.zeros(Q.shape[1], Q.shape[1], dtype=F64, device=dev)
        Gn = torch.zeros_like(Tn)
        Tn[:k0, :k0], Gn[:k0, :k0] = T, YtY
        Tn[:, k0:] = Q.T @ W
        Tn[k0:, :k0] = Tn[:k0, k0:].T
        Gn[:, k0:] = Y.T @ W
        Gn[k0:, :k0] = Gn[:k0, k0:].T
        T, YtY = Tn, Gn
        last = j == depth - 1
        if q_fixed is None and j >= 1 and not last:
            theta, V = torch.linalg.eigh((T + T.T) / 2)
            res2 = ((V * (YtY @ V)).sum(0) - theta * theta).clamp_min(0.0)
            conv = res2.sqrt() <= ritz_tol * theta.abs().clamp_min(1e-300)
            nconv = int(conv.sum())
            k_tail = n - nconv
            m1 = max(1.0 - float(theta[conv].sum()), 1e-300)
            unconv = theta[~conv]
            top_u = float(unconv.max()) if unconv.numel() else 0.0
            flat = top_u <= FLAT_RATIO * m1 / max(k_tail, 1)
            stalled = j >= 3 and nconv - prev_conv < b / 8
            prev_conv = nconv
            if flat or stalled or Q.shape[1] + b > n // 3:
                break
        if last:
            break
        for _ in range(2):
            W = W - Q @ (Q.T @ W)
        Qb = _orth(W)
        Qb = _orth(Qb - Q @ (Q.T @ Qb))
    theta, V = torch.linalg.eigh((T + T.T) / 2)
    res2 = ((V * (YtY @ V)).sum(0) - theta * theta).clamp_min(0.0)
    order = torch.argsort(theta, descending=True)
    if rank is not None:
        order = order[:rank]
    keep = order[res2[order].sqrt() <= ritz_tol * theta[order].abs().clamp_min(1e-300)]
    unconv = torch.ones_like(theta, dtype=torch.bool)
    unconv[keep] = False
    top_u = float(theta[unconv].max().clamp_min(0.0)) if bool(unconv.any()) else 0.0
    Qd = Q @ V[:, keep]
    return theta[keep], Qd, res2[keep], top_u, j + 1


def _lanczos(mm_tail, Z: torch.Tensor, s_max: int, check):
    """Lanczos (full re-orthogonalization per probe) on the columns of ``Z``.

    ``check(a, b, s)`` after steps 4, 6, 8, ... returns True to stop.  Returns ``a (m, s)``, ``b (m,
    s)`` (``b[:, j]``: the coupling after step ``j``, which the Gauss-Radau rule of ``s`` steps uses).
    """
    n, m = Z.shape
    znorm = Z.norm(dim=0).clamp_min(1e-300)
    # per probe, its Lanczos vectors as rows: (m, s_max, n), so re-orthogonalization is two
    # batched matrix-vector products
    Vbuf = torch.empty(m, s_max, n, dtype=F64, device=Z.device)
    Vbuf[:, 0] = (Z / znorm).T
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    for j in range(s_max):
        Vcur = Vbuf[:, j].T  # (n, m)
        W = mm_tail(Vcur)
        a = (Vcur * W).sum(0)
        alphas.append(a)
        W = W - Vcur * a - (Vbuf[:, j - 1].T * betas[-1] if j > 0 else 0.0)
        Vj = Vbuf[:, : j + 1]  # (m, j+1, n)
        Wt = W.T.contiguous()[:, :, None]  # (m, n, 1)
        Wt = Wt - torch.bmm(Vj.transpose(1, 2), torch.bmm(Vj, Wt))
        W = Wt[:, :, 0].T
        b = W.norm(dim=0)
        betas.append(b)
        s = j + 1
        done = bool((b < 1e-13 * a.abs().clamp_min(1e-300)).all())
        if s == s_max or done or (s >= 4 and s % 2 == 0 and check(torch.stack(alphas, 1),
                                                                     torch.stack(betas, 1), s)):
            break
        Vbuf[:, j + 1] = (W / b.clamp_min(1e-300)).T
    return torch.stack(alphas, 1), torch.stack(betas, 1)


def _quadrature(a: torch.Tensor, b: torch.Tensor, znorm2: torch.Tensor, alpha: float,
                coef: torch.Tensor | None):
    """Per-probe Gauss and Gauss-Radau (node at 0) values of ``z^T r(B) z``, ``r = g - c.x``."""
    m, s = a.shape
    dev = a.device
    idx = torch.arange(s, device=dev)
    Tm = torch.zeros(m, s + 1, s + 1, dtype=F64, device=dev)
    Tm[:, idx, idx] = a
    if s > 1:
        Tm[:, idx[:-1], idx[1:]] = b[:, : s - 1]
        Tm[:, idx[1:], idx[:-1]] = b[:, : s - 1]
    Ts = Tm[:, :s, :s]
    nodes, U = torch.linalg.eigh(Ts)
    w = U[:, 0, :] ** 2 * znorm2[:, None]
    nodes = nodes.clamp_min(0.0)
    # Gauss-Radau: the last diagonal entry that puts a node at 0: delta_s of T_s delta = b_s^2 e_s
    bs = b[:, s - 1]
    rhs = torch.zeros(m, s, 1, dtype=F64, device=dev)
    rhs[:, -1, 0] = bs * bs
    scale = a.abs().max(1).values.clamp_min(1e-300)
    eye = torch.eye(s, dtype=F64, device=dev)
    delta = torch.linalg.solve(Ts + 1e-14 * scale[:, None, None] * eye, rhs)[:, -1, 0]
    Tm[:, s, s] = delta
    Tm[:, s - 1, s] = bs
    Tm[:, s, s - 1] = bs
    ok = torch.isfinite(delta)
    Tm[~ok] = 0.0
    nodes_r, Ur = torch.linalg.eigh(Tm)
    wr = Ur[:, 0, :] ** 2 * znorm2[:, None]
    nodes_r = nodes_r.clamp_min(0.0)
    gq, gr = _g(nodes, alpha), _g(nodes_r, alpha)
    basis = torch.stack([nodes, nodes * nodes], -1)
    basis_r = torch.stack([nodes_r, nodes_r * nodes_r], -1)
    if coef is None:  # weighted least squares of g on the pooled Gauss nodes
        sw = w.reshape(-1, 1).sqrt()
        X = basis.reshape(-1, 2) * sw
        cs = X.abs().max(0).values.clamp_min(1e-300)
        coef = torch.linalg.lstsq(X / cs, gq.reshape(-1, 1) * sw).solution.reshape(2) / cs
    gauss = (w * (gq - basis @ coef)).sum(1)
    radau = (wr * (gr - basis_r @ coef)).sum(1)
    radau = torch.where(ok, radau, gauss)
    return gauss, radau, coef


class _Tail:
    """The deflated operator ``B = P A P`` and the exact part of ``tr g(A)``."""

    def __init__(self, op, Q: torch.Tensor, theta: torch.Tensor, res2: torch.Tensor, alpha: float,
                 tr: float, gen: torch.Generator) -> None:
        self.op, self.Q, self.alpha, self.tr, self.gen = op, Q, alpha, tr, gen
        self.n = op.n
        self.k = int(theta.numel())
        self.fro2 = op.fro2 / tr**2
        self.theta_c = theta.clamp_min(0.0)
        self.top_g = float(_g(self.theta_c, alpha).sum())
        self.m1 = max(1.0 - float(theta.sum()), 0.0)  # tr B
        # ||B||_F^2 = ||A||_F^2 - ||Theta||_F^2 - 2 ||R||_F^2 (R: the Ritz residuals)
        self.m2 = max(self.fro2 - float((theta * theta).sum()) - 2.0 * float(res2.sum()), 0.0)

    def proj(self, X: torch.Tensor) -> torch.Tensor:
        return X - self.Q @ (self.Q.T @ X) if self.k else X

    def mm(self, X: torch.Tensor) -> torch.Tensor:
        return self.proj(self.op.matmul(self.proj(X)) / self.tr)

    def combine(self, gauss: torch.Tensor, radau: torch.Tensor, coef: torch.Tensor):
        """``tr g(A)``, the mean quadrature half-gap and the per-probe midpoints."""
        mid = (gauss + radau) / 2
        G = self.top_g + float(mid.mean()) + float(coef[0]) * self.m1 + float(coef[1]) * self.m2
        return G, float(((radau - gauss).abs() / 2).mean()), mid

    def batch(self, m: int, s_max: int, stop=None):
        """Lanczos on ``m`` projected Rademacher probes; ``stop(quad, G)`` ends it early."""
        Z = (torch.randint(0, 2, (self.n, m), generator=self.gen, dtype=F64) * 2 - 1)
        Z = self.proj(Z.to(self.op.device))
        zn2 = (Z * Z).sum(0)

        def check(a, bb, s):
            G, quad, _ = self.combine(*_quadrature(a, bb, zn2, self.alpha, None))
            return stop(quad, G)

        a, bb = _lanczos(self.mm, Z, min(s_max, self.n - self.k),
                         check if stop is not None else (lambda *_: False))
        return a, bb, zn2


def entropy_fast(A, alpha: float, **kwargs) -> FastEntropyResult:
    """Approximate matrix-based Rényi entropy (bits) by deflation and stochastic Lanczos quadrature.

    Approximate ``S_alpha(A / tr A)`` in bits for a symmetric PSD ``(n, n)`` matrix ``A`` (a tensor, or
    an operator of :mod:`wgf_cli.info.operators` for matrix-free use).

    The keyword arguments are those of :func:`_entropy_fast` (documented there).  Subnormal
    floating-point numbers are flushed to zero while it runs (``torch.set_flush_denormal``):
    Gram matrices of Gaussian kernels hold many entries below the smallest normal float32,
    and CPU arithmetic on subnormals is an order of magnitude slower.  The flag is off again
    afterwards (PyTorch's default).
    """
    flushed = torch.set_flush_denormal(True)
    try:
        return _entropy_fast(A, alpha, **kwargs)
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def _entropy_fast(A, alpha: float, *, tol: float = 1e-4, block: int | None = None,
                 blocks: int | None = None, rank: int | None = None, probes: int | None = None,
                 steps: int | None = None, ritz_tol: float = 1e-2,
                 generator: torch.Generator | None = None,
                 matmul_dtype: torch.dtype | None = None, max_blocks: int = 10,
                 max_probes: int = 192, max_steps: int = 60, exact_n: int = 256
                 ) -> FastEntropyResult:
    """Approximate matrix-based Rényi entropy (bits): the implementation of :func:`entropy_fast`.

    Approximate ``S_alpha(A / tr A)`` in bits for a symmetric PSD ``(n, n)`` matrix ``A`` (a tensor, or
    an operator of :mod:`wgf_cli.info.operators` for matrix-free use).

    ``tol``: relative error target on the entropy; the settings are chosen to meet it (see
    the module doc) and the result reports them with the error estimate.  ``block``,
    ``blocks``: columns and depth of the block Krylov space of the top eigenspace (default:
    ``min(64, max(16, n/64))`` columns, depth chosen from the Ritz values, at most
    ``max_blocks``); ``rank``: at most this many pairs deflated; ``ritz_tol``: a Ritz pair is
    deflated when its residual ``||A q - theta q|| <= ritz_tol * theta``; ``probes``, ``steps``:
    Rademacher probes and Lanczos steps of the tail (default: adaptive, at most
    ``max_probes``, ``max_steps``).  ``generator``: a CPU :class:`torch.Generator` (seeded for
    reproducible estimates).  ``matmul_dtype``: dtype of the products with ``A`` (default:
    float32 for ``alpha >= 1`` and ``n >= 4096``, else float64).  When ``n <= exact_n`` (or, with fixed
    settings, too small for the split to pay off) the exact value is returned
    (``exact=True``).
    """
    t0 = time.perf_counter()
    alpha = check_alpha(alpha)
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be finite and > 0, got {tol}")
    for name, v, lo in (("block", block, 1), ("blocks", blocks, 1), ("rank", rank, 1),
                        ("probes", probes, 2), ("steps", steps, 2), ("max_blocks", max_blocks, 1),
                        ("max_probes", max_probes, 2), ("max_steps", max_steps, 4)):
        if v is not None and (int(v) != v or v < lo):
            raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    if isinstance(A, OPERATORS):
        op = A
    else:
        if A.dim() != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be (n, n), got {tuple(A.shape)}")
        op = None
    n = A.n if op is not None else int(A.shape[0])
    mdt = matmul_dtype or (torch.float32 if alpha >= 1.0 and n >= F32_MIN_N else F64)
    b = block or _default_block(n)
    fixed = blocks is not None or steps is not None
    small = n <= exact_n or (fixed and n <= 2 * b * (blocks or 6) + (steps or 12))
    if small:
        dense = A if op is None else (op.dense if isinstance(op, DenseGram) else op.to_dense())
        s = float(renyi_from_spectrum(spectrum(dense), alpha))
        return FastEntropyResult(s, 0.0, alpha, n, 0, 0, True, 1.0, 0.0, 0.0, 0.0,
                                 time.perf_counter() - t0, tol=tol)
    if op is None:
        op = DenseGram(A, mdt)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    tr = op.trace

    def budget(G: float) -> float:
        """Absolute error budget for ``tr g(A)`` at the current estimate ``G``."""
        S, dSdG = _to_entropy(G, alpha)
        return tol * max(abs(S), 1e-12) / dSdG

    q_fixed = blocks
    for attempt in range(2):  # a second, deeper deflation when the probes say so
        # 1. deflation of the converged top Ritz pairs
        theta, Q, res2, top_u, depth = _deflate(op, n, b, q_fixed, max_blocks, rank, ritz_tol, gen,
                                                alpha, tr)
        tail = _Tail(op, Q, theta, res2, alpha, tr, gen)
        fro2, k, theta_c, m1, m2, top_g = tail.fro2, tail.k, tail.theta_c, tail.m1, tail.m2, tail.top_g
        r2 = float(res2.sum())
        # split error (second order): residual^2 times the divided difference of g' across the gap
        split_G = 0.0
        if k:
            lam_ref = max(top_u, m1 / max(n - k, 1))
            gap = (theta_c - lam_ref).clamp_min(ritz_tol * theta_c.clamp_min(1e-300))
            dd = (_dg(theta_c, alpha) - float(_dg(torch.tensor(max(lam_ref, 1e-300), dtype=F64),
                                                   alpha))).abs() / gap
            split_G = float((res2 * dd).sum())

        # 2./3. stochastic Lanczos quadrature of the remainder on B = P A P
        batch = tail.batch
        a, bb, zn2 = batch(probes or getattr(op, "cheap_columns", PROBES0), steps or max_steps,
                           (lambda q, G: q <= QUAD_SHARE * budget(G)) if steps is None else None)
        s_used = a.shape[1]
        gauss, radau, coef = _quadrature(a, bb, zn2, alpha, None)
        mids, gaps = [(gauss + radau) / 2], [(radau - gauss).abs() / 2]
        if attempt == 0 and blocks is None and probes is None and depth < max_blocks:
            G, _, mid = tail.combine(gauss, radau, coef)
            se = float(mid.std(unbiased=True)) / math.sqrt(mid.numel())
            if se > math.sqrt(RESTART_PROBES) * budget(G):
                # more than RESTART_PROBES x the first batch would be needed: deflating further
                # is cheaper (the top eigenvalues the flatness test let through dominate)
                q_fixed = min(max_blocks, depth + 3)
                continue
        break
    for _ in range(3):  # more probes while the standard error exceeds its share of the budget
        mid = torch.cat(mids)
        m = mid.numel()
        G = top_g + float(mid.mean()) + float(coef[0]) * m1 + float(coef[1]) * m2
        se = float(mid.std(unbiased=True)) / math.sqrt(m)
        quad = float(torch.cat(gaps).mean())
        share = math.sqrt(max(budget(G) ** 2 - quad**2, (0.5 * budget(G)) ** 2))
        if probes is not None or se <= share or m >= max_probes:
            break
        want = math.ceil(m * (se / share) ** 2 * 1.15) - m
        add = int(min(max(want, 8), max_probes - m))
        a2, bb2, zn22 = batch(add, s_used)
        g2, r2_, _ = _quadrature(a2, bb2, zn22, alpha, coef)
        mids.append((g2 + r2_) / 2)
        gaps.append((r2_ - g2).abs() / 2)
    mid, gap = torch.cat(mids), torch.cat(gaps)
    m = mid.numel()
    tail = float(mid.mean()) + float(coef[0]) * m1 + float(coef[1]) * m2
    G = top_g + tail
    se_G = float(mid.std(unbiased=True)) / math.sqrt(m)
    quad_G = float(gap.mean())
    ent, dSdG = _to_entropy(G, alpha)
    stat_e, quad_e, split_e = _tq(m - 1) * se_G * dSdG, quad_G * dSdG, split_G * dSdG
    # rounding of the products (float32: ~1e-7 of each eigenvalue), first order in g'; the
    # trace is exact, so only g' relative to its value at the mean eigenvalue counts
    u = 4.0 * torch.finfo(op.matmul_dtype).eps
    ref = _dg(torch.tensor(max(m1 / max(n - k, 1), 1e-300), dtype=F64), alpha)
    top_t = torch.tensor(max(top_u, 1e-300), dtype=F64)
    round_G = u * (float(((_dg(theta_c, alpha) - ref).abs() * theta_c).sum())
                   + float((_dg(top_t, alpha) - ref).abs()) * m1)
    split_e += round_G * dSdG
    err = stat_e + quad_e + split_e
    std_err = (math.hypot(se_G, quad_G) + split_G) * dSdG
    return FastEntropyResult(
        entropy=ent, error_estimate=err, alpha=alpha, rank=k, probes=m, steps=s_used,
        exact=False, top_mass=float(theta.sum()), tail_trace=m1,
        tail_fraction=abs(tail) / max(abs(G), 1e-300),
        ritz_residual=math.sqrt(r2 / fro2) if fro2 > 0 else 0.0,
        wall_s=time.perf_counter() - t0, block=b, blocks=depth, tol=tol,
        met=std_err <= tol * abs(ent), std_error=std_err, stat_error=stat_e, quad_error=quad_e, split_error=split_e,
        passes=op.passes, columns=op.columns,
        matmul_dtype=str(op.matmul_dtype).replace("torch.", ""))
