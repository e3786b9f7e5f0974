"""Matrix-based Rényi alpha-entropy and the information quantities built on it, in bits.

For a PSD matrix ``A`` with unit trace and eigenvalues ``lambda_i`` (Sanchez Giraldo, Rao &
Principe 2015):

    S_alpha(A) = 1/(1-alpha) log2 sum_i lambda_i^alpha          (alpha > 0, alpha != 1)
    S_1(A)     = -sum_i lambda_i log2 lambda_i                   (von Neumann, the limit)

Joint entropy through the normalized Hadamard product ``S(A_1 o ... o A_k / tr(...))``;
``I(A;B) = S(A) + S(B) - S(A,B)``; the multivariate ``I(B; {A_1..A_k}) = S(B) + S(A_1..A_k)
- S(A_1..A_k, B)`` (Yu et al., TPAMI 2020); total correlation ``sum_i S(A_i) - S(A_1..A_k)``;
conditional entropy ``S(A|B) = S(A,B) - S(B)``.

Methods of :func:`entropy`:

``eig``        ``torch.linalg.eigvalsh`` in float64; eigenvalues below the round-off level
               ``n eps lambda_max`` (negatives included) are clipped to 0 and the spectrum
               renormalized to sum 1; the power sum is evaluated as
               ``1 + sum lambda expm1((alpha-1) ln lambda)`` so that ``alpha -> 1`` is
               continuous and ``alpha = 1`` is the von Neumann limit.
``frobenius``  ``alpha = 2`` only: ``S_2 = -log2 ||A||_F^2`` with no eigendecomposition,
               differentiable (gradients through ``eigh`` are NaN at repeated eigenvalues).
``fast``       deflation of the top eigenspace + stochastic Lanczos quadrature, settings
               chosen from the spectrum for a tolerance ``tol``
               (:func:`wgf_cli.info.fast.entropy_fast`), for large ``n``; unbatched.
``auto``       ``frobenius`` at ``alpha = 2``, else ``eig``.

Everything accepts batches ``(..., n, n)`` (``fast`` excepted) and runs where its inputs are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from wgf_cli.info.fast import entropy_fast
from wgf_cli.info.spectral import LN2, _check_square, check_alpha, renyi_from_spectrum, spectrum  # noqa: F401  (LN2 re-exported)

METHODS = ("auto", "eig", "frobenius", "fast")


def _check_same_samples(mats: Sequence[torch.Tensor]) -> None:
    ns = {int(M.shape[-1]) for M in mats}
    if len(ns) > 1:
        raise ValueError(f"mismatched sample counts between Gram matrices: {sorted(ns)}")


def entropy(A: torch.Tensor, alpha: float = 1.01, method: str = "auto", **fast_kwargs) -> torch.Tensor:
    """Matrix-based Rényi ``alpha``-entropy of ``A`` (normalized to unit trace first), in bits.

    ``A``: ``(..., n, n)`` symmetric PSD.  ``method``: see the module doc.  Returns a tensor of
    shape ``A.shape[:-2]`` (float64 for ``eig``/``fast``; ``A``'s dtype for ``frobenius``, which
    is differentiable).  ``fast_kwargs`` go to :func:`wgf_cli.info.fast.entropy_fast`.
    """
    alpha = check_alpha(alpha)
    _check_square(A)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "frobenius" and alpha != 2.0:
        raise ValueError(f"method=frobenius is the alpha=2 shortcut; it cannot give alpha={alpha}")
    if method == "frobenius" or (method == "auto" and alpha == 2.0):
        tr = torch.diagonal(A, dim1=-2, dim2=-1).sum(-1)
        fro2 = (A * A).sum((-2, -1)) / (tr * tr)
        return -torch.log2(fro2)
    if method == "fast":
        if A.dim() != 2:
            raise ValueError("method=fast takes one (n, n) matrix, not a batch")
        res = entropy_fast(A, alpha, **fast_kwargs)
        return torch.tensor(res.entropy, dtype=torch.float64, device=A.device)
    return renyi_from_spectrum(spectrum(A), alpha)


def hadamard(*mats: torch.Tensor) -> torch.Tensor:
    """``A_1 o ... o A_k / tr(A_1 o ... o A_k)`` (the joint Gram matrix); broadcasts batches."""
    if not mats:
        raise ValueError("hadamard needs at least one matrix")
    for M in mats:
        _check_square(M)
    _check_same_samples(mats)
    H = mats[0]
    for M in mats[1:]:
        H = H * M
    tr = torch.diagonal(H, dim1=-2, dim2=-1).sum(-1)
    return H / tr[..., None, None]


def joint_entropy(*mats: torch.Tensor, alpha: float = 1.01, method: str = "auto") -> torch.Tensor:
    """``S_alpha(A_1, ..., A_k) = S_alpha(A_1 o ... o A_k / tr(...))`` in bits."""
    return entropy(hadamard(*mats), alpha, method)


def mutual_information(A: torch.Tensor, B: torch.Tensor, alpha: float = 1.01,
                       method: str = "auto") -> torch.Tensor:
    """``I_alpha(A; B) = S(A) + S(B) - S(A, B)`` in bits (>= 0 for this estimator)."""
    _check_same_samples([A, B])
    return entropy(A, alpha, method) + entropy(B, alpha, method) - joint_entropy(
        A, B, alpha=alpha, method=method)


def multivariate_mi(B: torch.Tensor, As: Sequence[torch.Tensor], alpha: float = 1.01,
                    method: str = "auto") -> torch.Tensor:
    """``I_alpha(B; {A_1..A_k}) = S(B) + S(A_1..A_k) - S(A_1..A_k, B)`` in bits (Yu et al. 2020)."""
    As = list(As)
    _check_same_samples([B, *As])
    return entropy(B, alpha, method) + joint_entropy(*As, alpha=alpha, method=method) \
        - joint_entropy(*As, B, alpha=alpha, method=method)


def total_correlation(As: Sequence[torch.Tensor], alpha: float = 1.01,
                      method: str = "auto") -> torch.Tensor:
    """``TC_alpha(A_1..A_k) = sum_i S(A_i) - S(A_1..A_k)`` in bits."""
    As = list(As)
    _check_same_samples(As)
    return sum(entropy(M, alpha, method) for M in As) - joint_entropy(*As, alpha=alpha, method=method)


def conditional_entropy(A: torch.Tensor, B: torch.Tensor, alpha: float = 1.01,
                        method: str = "auto") -> torch.Tensor:
    """``S_alpha(A | B) = S(A, B) - S(B)`` in bits."""
    _check_same_samples([A, B])
    return joint_entropy(A, B, alpha=alpha, method=method) - entropy(B, alpha, method)
