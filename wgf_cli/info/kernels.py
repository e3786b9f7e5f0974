"""Gram matrices, their normalization, and kernel-width rules.

Conventions (stated once, used everywhere in :mod:`wgf_cli.info`):

* Gaussian kernel ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))`` (the ``2 sigma^2`` form;
  some public code uses ``exp(-d^2/sigma)`` or ``exp(-d^2/sigma^2)``: convert with
  ``sigma_ours = sqrt(s/2)`` resp. ``s/sqrt(2)``).
* The normalized Gram matrix of Sanchez Giraldo, Rao & Principe (2015):
  ``A_ij = K_ij / (n sqrt(K_ii K_jj))``, positive semi-definite with trace 1.
* Every width rule returns the ``sigma`` it used (:class:`Width`), so it can be logged.

Width rules (:func:`kernel_width`, a spec string):

``silverman``      ``sigma = scale * s * (4/(d+2))^(1/(d+4)) * n^(-1/(4+d))`` where ``s`` is the
                   root-mean-square per-feature standard deviation (Silverman's rule after
                   standardizing the features to a common scale).
``dimnorm``        ``sigma = scale * sqrt(d) * n^(-1/(4+d))`` (``scale`` is the ``gamma`` of
                   Yu et al.; the ``sqrt(d)`` keeps the kernel from saturating in high d).
``knn:K``          ``sigma = scale * mean_i ||x_i - x_(K-th neighbour of i)||``.
``align``          ``sigma`` maximizing the kernel alignment with a label kernel
                   (a golden-section search over ``log sigma``), times ``scale``.
``fixed:V``        ``sigma = scale * V``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

WIDTH_RULES = ("silverman", "dimnorm", "knn", "align", "fixed")


@dataclass(frozen=True)
class Width:
    """A kernel width and how it was chosen."""

    sigma: float
    rule: str

    def __post_init__(self) -> None:
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"kernel width sigma must be finite and > 0, got {self.sigma}")


def _as_2d(x: torch.Tensor) -> torch.Tensor:
    """``(n,)`` -> ``(n, 1)``; ``(n, ...)`` -> ``(n, prod ...)``."""
    if x.dim() == 1:
        return x[:, None]
    return x.reshape(x.shape[0], -1)


def sq_distances(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances ``||x_i - y_j||^2`` (clamped at 0), ``(n, m)``.

    Computed through the Gram expansion, with the diagonal set exactly to 0 when ``y`` is
    ``x``.
    """
    x = _as_2d(x)
    same = y is None
    y = x if same else _as_2d(y)
    xx = (x * x).sum(1)
    yy = xx if same else (y * y).sum(1)
    d2 = (xx[:, None] + yy[None, :] - 2.0 * (x @ y.T)).clamp_min_(0.0)
    if same:
        d2.fill_diagonal_(0.0)
    return d2


def gaussian_kernel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))`` (unnormalized), ``(n, n)``."""
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be finite and > 0, got {sigma}")
    return torch.exp(-sq_distances(x) / (2.0 * float(sigma) ** 2))


def normalize_gram(K: torch.Tensor) -> torch.Tensor:
    """``A_ij = K_ij / (n sqrt(K_ii K_jj))`` for a (batch of) PSD kernel matrix ``(..., n, n)``.

    The result has unit trace.  A zero diagonal entry (a zero feature vector under a linear
    or NTK kernel) is an error.
    """
    n = K.shape[-1]
    d = torch.diagonal(K, dim1=-2, dim2=-1)
    if bool((d <= 0).any()):
        raise ValueError("normalize_gram: the kernel has a non-positive diagonal entry")
    s = d.sqrt()
    return K / (s[..., :, None] * s[..., None, :]) / n


def label_gram(labels: torch.Tensor, num_classes: int | None = None, *,
               sigma: float = 0.1, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The normalized Gram matrix of integer labels (one-hot vectors, narrow Gaussian kernel).

    The Gaussian kernel of width ``sigma`` on the one-hot vectors is narrow: ``exp(-1/sigma^2)``
    between different classes, 4e-44 at the default 0.1, so ``A`` is the block matrix of the label
    partition and its Rényi entropy is that of the label histogram.
    """
    labels = labels.long().reshape(-1)
    k = int(num_classes if num_classes is not None else int(labels.max()) + 1)
    y = torch.nn.functional.one_hot(labels, k).to(dtype or torch.get_default_dtype())
    return gram(y, sigma=sigma).A


def alignment(K: torch.Tensor, L: torch.Tensor, centered: bool = False) -> torch.Tensor:
    """Kernel alignment ``<K, L>_F / (||K||_F ||L||_F)`` (Cristianini et al. 2002), in ``[0, 1]`` for PSD inputs.

    ``centered=True``: of ``HKH`` and ``HLH`` with ``H = I - 11^T/n`` (Cortes, Mohri & Rostamizadeh
    2012), which discounts the constant part of the kernels.
    """
    if centered:
        K = K - K.mean(-1, keepdim=True) - K.mean(-2, keepdim=True) + K.mean((-2, -1), keepdim=True)
        L = L - L.mean(-1, keepdim=True) - L.mean(-2, keepdim=True) + L.mean((-2, -1), keepdim=True)
    num = (K * L).sum((-2, -1))
    return num / (torch.linalg.matrix_norm(K) * torch.linalg.matrix_norm(L))


def parse_width(spec: str | float) -> tuple[str, float | None]:
    """``"knn:10"`` -> ``("knn", 10.0)``.

    ``"silverman"`` -> ``("silverman", None)``; a number ``v`` -> ``("fixed", v)``. Raises
    :class:`ValueError` with the allowed forms.
    """
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return "fixed", float(spec)
    s = str(spec).strip()
    name, _, arg = s.partition(":")
    if name not in WIDTH_RULES:
        raise ValueError(f"unknown kernel width rule {s!r}; allowed: silverman, dimnorm, knn:K, "
                         "align, fixed:V")
    if name in ("knn", "fixed"):
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(f"kernel width {s!r}: write {name}:<number>") from None
        if name == "knn" and (value != int(value) or value < 1):
            raise ValueError(f"kernel width {s!r}: K must be an integer >= 1")
        if name == "fixed" and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"kernel width {s!r}: sigma must be > 0")
        return name, value
    if arg:
        raise ValueError(f"kernel width {s!r}: {name} takes no argument")
    return name, None


def kernel_width(x: torch.Tensor, rule: str | float = "silverman", *, scale: float = 1.0,
                 labels: torch.Tensor | None = None, label_kernel: torch.Tensor | None = None,
                 bounds: tuple[float, float] = (1e-2, 1e2)) -> Width:
    """The kernel width of ``x`` ``(n, d...)`` by ``rule`` (see the module doc), times ``scale``.

    ``align`` needs ``labels`` (integers) or a ``label_kernel`` (``(n, n)``); it searches
    ``sigma`` in ``bounds`` times the median pairwise distance.
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"kernel width scale must be > 0, got {scale}")
    name, arg = parse_width(rule)
    x = _as_2d(x)
    n, d = x.shape
    if name == "fixed":
        return Width(scale * float(arg), rule if isinstance(rule, str) else f"fixed:{arg}")
    if name == "silverman":
        s = float(x.double().var(0, unbiased=n > 1).mean().sqrt())
        sigma = s * (4.0 / (d + 2)) ** (1.0 / (d + 4)) * n ** (-1.0 / (4 + d))
        return Width(scale * max(sigma, 1e-12), "silverman")
    if name == "dimnorm":
        return Width(scale * math.sqrt(d) * n ** (-1.0 / (4 + d)), "dimnorm")
    d2 = sq_distances(x.double())
    if name == "knn":
        kk = min(int(arg), n - 1)
        kth = d2.topk(kk + 1, dim=1, largest=False).values[:, kk]  # column 0: the point itself
        sigma = float(kth.clamp_min(0).sqrt().mean())
        return Width(scale * max(sigma, 1e-12), str(rule))
    # align
    if label_kernel is None:
        if labels is None:
            raise ValueError("kernel width 'align' needs labels or a label kernel")
        label_kernel = label_gram(labels, dtype=torch.float64).to(x.device)
    L = label_kernel.to(device=x.device, dtype=torch.float64)
    off = d2[~torch.eye(n, dtype=torch.bool, device=x.device)]
    med = float(off.median().sqrt()) if off.numel() else 1.0
    med = med if med > 0 else 1.0

    def score(log_s: float) -> float:
        s = math.exp(log_s)
        return float(alignment(torch.exp(-d2 / (2 * s * s)), L))

    lo, hi = math.log(bounds[0] * med), math.log(bounds[1] * med)
    # coarse grid, then golden section around the best grid point
    grid = [lo + (hi - lo) * i / 24 for i in range(25)]
    vals = [score(g) for g in grid]
    i = max(range(len(grid)), key=vals.__getitem__)
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    phi = (math.sqrt(5) - 1) / 2
    c, e = b - phi * (b - a), a + phi * (b - a)
    fc, fe = score(c), score(e)
    for _ in range(30):
        if fc > fe:
            b, e, fe = e, c, fc
            c = b - phi * (b - a)
            fc = score(c)
        else:
            a, c, fc = c, e, fe
            e = a + phi * (b - a)
            fe = score(e)
    best = max([(vals[i], grid[i]), (fc, c), (fe, e)])[1]
    return Width(scale * math.exp(best), "align")


@dataclass
class Gram:
    """A normalized Gram matrix ``A`` (trace 1) and the kernel width it was built with."""

    A: torch.Tensor
    sigma: float | None
    rule: str


def gram(x: torch.Tensor, kernel: str = "gaussian", sigma: float | str | Width = "silverman", *,
         scale: float = 1.0, labels: torch.Tensor | None = None) -> Gram:
    """The normalized Gram matrix ``A`` of samples ``x`` ``(n, d...)``.

    ``kernel``: ``gaussian`` (``exp(-d^2/(2 sigma^2))``), ``linear`` (``<x_i, x_j>``, no
    width) or ``precomputed`` (``x`` is already an ``(n, n)`` PSD kernel matrix).
    ``sigma``: a number, a :class:`Width`, or a rule of :func:`kernel_width`.  The result
    carries the ``sigma`` used.  Device and dtype follow ``x``.
    """
    if kernel == "precomputed":
        if x.dim() != 2 or x.shape[0] != x.shape[1]:
            raise ValueError(f"precomputed kernel must be square (n, n), got {tuple(x.shape)}")
        return Gram(normalize_gram(x), None, "precomputed")
    x2 = _as_2d(x)
    if kernel == "linear":
        return Gram(normalize_gram(x2 @ x2.T), None, "linear")
    if kernel != "gaussian":
        raise ValueError(f"unknown kernel {kernel!r}; allowed: gaussian, linear, precomputed")
    if isinstance(sigma, Width):
        w = Width(sigma.sigma * scale, sigma.rule)
    elif isinstance(sigma, int | float) and not isinstance(sigma, bool):
        w = Width(float(sigma) * scale, "fixed")
    else:
        w = kernel_width(x2, sigma, scale=scale, labels=labels)
    K = gaussian_kernel(x2, w.sigma)
    return Gram(K / x2.shape[0], w.sigma, w.rule)
