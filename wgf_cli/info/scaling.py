"""Exact vs fast Rényi entropy of growing Gram matrices: accuracy and wall time.

:func:`entropy_scaling` builds, for each size ``n``, the Gaussian Gram matrix of ``n``
points of a Gaussian mixture (:func:`mixture`) and measures the fast path
(:func:`~wgf_cli.info.fast.entropy_fast`: deflation + stochastic Lanczos quadrature) against
the exact ``eigvalsh`` spectrum, each timed as the best of a few repeats (:func:`timed`)::

    from wgf_cli.info.scaling import ScalingConfig, entropy_scaling

    rows = entropy_scaling(ScalingConfig(sizes=[300, 600]), alpha=1.01)
    rows[-1]["rel_error"], rows[-1]["speedup"]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from wgf_cli.info.entropy import renyi_from_spectrum, spectrum
from wgf_cli.info.fast import entropy_fast
from wgf_cli.info.kernels import gram

log = logging.getLogger(__name__)

T = TypeVar("T")


def mixture(size: int, features: int, components: int, seed: int) -> torch.Tensor:
    """``size`` points of a mixture of ``components`` unit Gaussians (centres ~ N(0, 4 I)).

    Args:
        size: number of points.
        features: dimension.
        components: number of mixture components (uniform weights).
        seed: seed of the CPU generator that draws centres, labels and noise.

    Returns:
        float64 tensor [size, features] on the CPU.
    """
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(components, features, generator=g, dtype=torch.float64)
    return centres[torch.randint(0, components, (size,), generator=g)] + torch.randn(
        size, features, generator=g, dtype=torch.float64)


def timed(fn: Callable[[], T], device: str, repeats: int) -> tuple[float, T]:
    """Best wall time (seconds) of ``repeats`` calls of ``fn`` and its last result.

    On CUDA the device is synchronised around every call.
    """
    best, out = float("inf"), None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


@dataclass
class ScalingConfig:
    """The sizes and data of :func:`entropy_scaling`.

    Args:
        sizes: Gram matrix sizes ``n`` (measured in increasing order).
        exact_max: largest ``n`` with the exact ``eigvalsh`` reference.
        features: dimension of the mixture data.
        components: mixture components.
        repeats: timings are the best of this many calls.
        kernel_width: width rule of the Gaussian kernel.
        kernel_scale: factor on the width.
        seed: data seed (``seed + 1`` seeds the fast path's probes).
        fast: keyword arguments of :func:`~wgf_cli.info.fast.entropy_fast`.
    """

    sizes: list[int]
    exact_max: int = 20000
    features: int = 10
    components: int = 10
    repeats: int = 1
    kernel_width: str = "silverman"
    kernel_scale: float = 1.0
    seed: int = 0
    fast: dict[str, Any] = field(default_factory=dict)


def entropy_scaling(config: ScalingConfig, alpha: float, device: str = "cpu",
                    on_size: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Fast vs exact entropy (bits) for every size of ``config.sizes``.

    Args:
        config: sizes, data and fast-path settings.
        alpha: Rényi order.
        device: where the Gram matrices live.
        on_size: called with each size's row as soon as it is measured.

    Returns:
        One row per size (increasing): ``size``, ``sigma``, ``fast_bits``, ``fast_s``,
            ``error_estimate``, ``deflated``, ``top_mass``, ``fast_exact``, ``probes``, ``steps``,
            ``blocks``; with the exact reference also ``exact_bits``, ``eigvalsh_s``,
            ``rel_error``, ``speedup`` and ``within_3_sigma`` (``|fast - exact| <= 3`` error
            estimates).
    """
    rows = []
    for size in sorted(int(s) for s in config.sizes):
        x = mixture(size, int(config.features), int(config.components), int(config.seed)).to(device)
        g = gram(x, sigma=str(config.kernel_width), scale=float(config.kernel_scale))
        A = g.A
        row: dict[str, Any] = {"size": size, "sigma": g.sigma}
        gen_seed = int(config.seed) + 1
        t_fast, res = timed(lambda s=gen_seed, M=A: entropy_fast(
            M, alpha, generator=torch.Generator().manual_seed(s), **config.fast), device, int(config.repeats))
        row.update(fast_bits=res.entropy, fast_s=t_fast, error_estimate=res.error_estimate,
                   deflated=res.rank, top_mass=res.top_mass, fast_exact=res.exact,
                   probes=res.probes, steps=res.steps, blocks=res.blocks)
        if size <= int(config.exact_max):
            t_exact, H = timed(lambda M=A: float(renyi_from_spectrum(spectrum(M), alpha)), device,
                               int(config.repeats))
            err = abs(res.entropy - H)
            row.update(exact_bits=H, eigvalsh_s=t_exact, rel_error=err / abs(H),
                       speedup=t_exact / t_fast,
                       within_3_sigma=bool(err <= 3 * res.error_estimate + 1e-12))
        rows.append(row)
        log.info("n=%d sigma=%.4g fast %.6f bits (%.3fs) exact %s rel.err %s", size, g.sigma,
                 res.entropy, t_fast, row.get("exact_bits"), row.get("rel_error"))
        if on_size is not None:
            on_size(row)
        del A, g, x
    return rows
