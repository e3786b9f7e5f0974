"""Normalized Gram matrices as linear operators, for the fast entropy path.

:func:`wgf_cli.info.fast.entropy_fast` needs only products ``A X`` with ``n x k`` blocks, the
trace and the squared Frobenius norm of ``A``.  Two operators provide them:

:class:`DenseGram`      an ``(n, n)`` tensor; the products run in ``matmul_dtype`` (float32
                        halves their cost on the CPU), trace and Frobenius norm in float64.
:class:`GaussianGram`   matrix-free: ``A = K / n`` with ``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``
                        is never formed; each product evaluates ``K`` in row blocks of ``chunk``
                        rows (float32 by default, products accumulated into a float64 result),
                        so memory is ``O(n (chunk + k))``.  The squared Frobenius norm is
                        accumulated during the first product (no extra pass over ``K``).

Both return products in float64 and count them (``passes``: products, ``columns``: columns
multiplied), which the fast path reports.
"""

from __future__ import annotations

import math

import torch

F64 = torch.float64


class DenseGram:
    """A symmetric PSD ``(n, n)`` tensor ``A`` (any trace) as an operator."""

    def __init__(self, A: torch.Tensor, matmul_dtype: torch.dtype | None = None) -> None:
        if A.dim() != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be (n, n), got {tuple(A.shape)}")
        self.n = int(A.shape[0])
        self.device = A.device
        self.dense = A
        self.trace = float(torch.diagonal(A).to(F64).sum())
        self._fro2: float | None = None
        dt = matmul_dtype or F64
        self._A = A if A.dtype == dt else A.to(dt)
        self.matmul_dtype = dt
        self.cheap_columns = 32  # CPU products are memory-bound up to about this many columns
        self.passes = 0
        self.columns = 0

    @property
    def fro2(self) -> float:
        """``||A||_F^2`` (float64 accumulation)."""
        if self._fro2 is None:
            self._fro2 = float(torch.linalg.vector_norm(self.dense, dtype=F64)) ** 2
        return self._fro2

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        """``A X`` in float64 for ``X`` ``(n, k)``."""
        self.passes += 1
        self.columns += int(X.shape[1])
        return (self._A @ X.to(self._A.dtype)).to(F64)


class GaussianGram:
    """The normalized Gaussian Gram matrix ``A = K / n`` of samples ``x``, matrix-free.

    The samples ``x`` have shape ``(n, d...)``; ``K`` is evaluated block by block in every product and
    never stored.
    """

    def __init__(self, x: torch.Tensor, sigma: float, *, dtype: torch.dtype = torch.float32,
                 chunk: int = 1024) -> None:
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma must be finite and > 0, got {sigma}")
        x = x.reshape(x.shape[0], -1) if x.dim() > 1 else x[:, None]
        x = x.to(F64)
        x = x - x.mean(0, keepdim=True)  # smaller norms: less cancellation in the distances
        self.n = int(x.shape[0])
        self.device = x.device
        self.x = x.to(dtype)
        self.gamma = 1.0 / (2.0 * float(sigma) ** 2)
        self.gsq = self.gamma * (self.x * self.x).sum(1)
        self.gsq_neg = -self.gsq
        self.x2g = 2.0 * self.gamma * self.x
        # exponents below this give subnormal numbers (slow arithmetic on the CPU): 0 instead
        self._floor = math.log(torch.finfo(dtype).tiny) + 1.0
        self.sigma = float(sigma)
        self.chunk = int(chunk)
        self.matmul_dtype = dtype
        self.cheap_columns = 96  # the kernel evaluation dominates a product: wide blocks are cheap
        self.trace = 1.0  # K_ii = 1
        self._fro2: float | None = None
        self.passes = 0
        self.columns = 0

    def rows(self, i0: int, i1: int) -> torch.Tensor:
        """Rows ``i0:i1`` of ``K`` (not divided by ``n``).

        ``exp(2g x_i.x_j - g|x_i|^2 - g|x_j|^2)``, one GEMM onto the broadcast ``-g|x_j|^2`` and in-place
        updates (the exponent clamped to ``[log tiny + 1, 0]``: no subnormal numbers, whose arithmetic is
        slow; the diagonal set to 1).
        """
        m = i1 - i0
        E = torch.addmm(self.gsq_neg[None, :].expand(m, self.n), self.x2g[i0:i1], self.x.T)
        E.sub_(self.gsq[i0:i1, None]).clamp_(self._floor, 0.0).exp_()
        idx = torch.arange(i0, i1, device=self.device)
        E[idx - i0, idx] = 1.0
        return E

    @property
    def fro2(self) -> float:
        """``||A||_F^2``, computed block by block once (or during the first product) and cached."""
        if self._fro2 is None:
            acc = 0.0
            for i0 in range(0, self.n, self.chunk):
                Kr = self.rows(i0, min(i0 + self.chunk, self.n))
                acc += float(torch.linalg.vector_norm(Kr, dtype=F64)) ** 2
            self._fro2 = acc / self.n**2
        return self._fro2

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        """The product ``A X`` for a block of columns ``X`` ``(n, b)``, in float64."""
        self.passes += 1
        self.columns += int(X.shape[1])
        Xd = X.to(self.matmul_dtype)
        out = torch.empty(self.n, X.shape[1], dtype=F64, device=self.device)
        acc = 0.0 if self._fro2 is None else None
        for i0 in range(0, self.n, self.chunk):
            i1 = min(i0 + self.chunk, self.n)
            Kr = self.rows(i0, i1)
            out[i0:i1] = (Kr @ Xd).to(F64)
            if acc is not None:
                acc += float(torch.linalg.vector_norm(Kr, dtype=F64)) ** 2
        if acc is not None:
            self._fro2 = acc / self.n**2
        return out / self.n

    def to_dense(self) -> torch.Tensor:
        """``A`` as a float64 tensor (small ``n`` only)."""
        x = self.x.to(F64)
        sq = (x * x).sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
        d2.fill_diagonal_(0.0)
        return torch.exp(-self.gamma * d2) / self.n
