"""Matrix-based Rényi alpha-entropy and (multivariate) mutual information from Gram matrices.

Everything is in **bits** (log2).  The Gaussian kernel is ``exp(-||x-y||^2 / (2 sigma^2))``
and every width rule reports the ``sigma`` it used.  Quick use::

    import torch
    from wgf_cli import info

    x, t = torch.randn(500, 8), torch.randn(500, 4)
    A = info.gram(x, sigma="silverman").A          # A_ij = K_ij / (n sqrt(K_ii K_jj)), tr A = 1
    B = info.gram(t, sigma="knn:10").A
    info.entropy(A, alpha=1.01)                     # exact, eigvalsh in float64
    info.entropy(A, alpha=2)                        # Frobenius norm, no eigendecomposition
    info.mutual_information(A, B, alpha=1.01)       # S(A) + S(B) - S(A, B)
    info.entropy_fast(A, 1.01).error_estimate       # large n: deflation + Lanczos quadrature

Modules: :mod:`~wgf_cli.info.kernels` (Gram matrices, width rules, label kernel, alignment),
:mod:`~wgf_cli.info.entropy` (entropy, joint, MI, multivariate MI, total correlation,
conditional entropy), :mod:`~wgf_cli.info.fast` (the fast path and its error estimate),
:mod:`~wgf_cli.info.ntk` (empirical neural tangent kernel), :mod:`~wgf_cli.info.models`
(MLP with layer outputs, datasets available offline).
"""

from wgf_cli.info.entropy import (
    check_alpha,
    conditional_entropy,
    entropy,
    hadamard,
    joint_entropy,
    multivariate_mi,
    mutual_information,
    renyi_from_spectrum,
    spectrum,
    total_correlation,
)
from wgf_cli.info.fast import FastEntropyResult, entropy_fast
from wgf_cli.info.kernels import (
    Gram,
    Width,
    alignment,
    gaussian_kernel,
    gram,
    kernel_width,
    label_gram,
    normalize_gram,
    parse_width,
    sq_distances,
)

__all__ = [
    "FastEntropyResult", "Gram", "Width", "alignment", "check_alpha", "conditional_entropy",
    "entropy", "entropy_fast", "gaussian_kernel", "gram", "hadamard", "joint_entropy",
    "kernel_width", "label_gram", "multivariate_mi", "mutual_information", "normalize_gram",
    "parse_width", "renyi_from_spectrum", "spectrum", "sq_distances", "total_correlation",
]
