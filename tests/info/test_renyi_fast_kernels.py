"""The fast entropy path against exact eigvalsh, the kernel width rules, the NTK Gram matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wgf_cli import info
from wgf_cli.info.ntk import empirical_ntk

SMALL = {"block": 16, "blocks": 4, "probes": 16, "steps": 24}


def mixture(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = 2.0 * torch.randn(6, d, generator=g, dtype=torch.float64)
    return c[torch.randint(0, 6, (n,), generator=g)] + torch.randn(n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("scale", [1.0, 4.0])  # flat spectrum (no deflation) / fast decay
@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.01, 3.0])
def test_fast_path_agrees_with_exact_within_its_error_estimate(alpha, scale):
    A = info.gram(mixture(1200, 6, 0), sigma="silverman", scale=scale).A
    exact = float(info.entropy(A, alpha, method="eig"))
    res = info.entropy_fast(A, alpha, generator=torch.Generator().manual_seed(0), **SMALL)
    assert not res.exact
    err = abs(res.entropy - exact)
    # the estimate is a 1-sigma standard error: 4 sigma, plus the deterministic split error
    assert err <= 4 * res.error_estimate + 1e-4 * exact, (err, res.error_estimate)
    if alpha >= 1:  # alpha < 1 weighs the many tiny eigenvalues: the estimate says how well
        assert err / exact <= 3e-3
        assert res.error_estimate / exact <= 3e-3
    else:  # an absolute bound against eigvalsh too (float64 CPU, seed 0): measured relative
        # errors 1.56e-4 (scale 1) and 2.70e-3 (scale 4, estimate 2.6e-2)
        assert err / exact <= {1.0: 3.2e-4, 4.0: 5.4e-3}[scale], err / exact


def test_fast_path_is_exact_at_alpha_2_without_deflation_error():
    # g(x) = x^2 - x lies in the span of the control variates: only the split error remains
    A = info.gram(mixture(1000, 6, 1), sigma="silverman").A
    res = info.entropy_fast(A, 2.0, **SMALL)
    exact = float(info.entropy(A, 2.0, method="frobenius"))
    np.testing.assert_allclose(res.entropy, exact, rtol=1e-4)
    assert abs(res.entropy / exact - 1) <= 1e-12  # regression bound: measured 9.1e-15 (float64 CPU)
    assert res.error_estimate < 1e-10


def test_fast_path_is_reproducible_and_small_n_is_exact():
    A = info.gram(mixture(900, 4, 2), sigma="silverman", scale=2.0).A
    a = info.entropy_fast(A, 1.01, generator=torch.Generator().manual_seed(5), **SMALL)
    b = info.entropy_fast(A, 1.01, generator=torch.Generator().manual_seed(5), **SMALL)
    assert a.entropy == b.entropy
    small = info.gram(mixture(80, 4, 2), sigma=1.0).A
    r = info.entropy_fast(small, 1.01, **SMALL)
    assert r.exact
    np.testing.assert_allclose(r.entropy, float(info.entropy(small, 1.01)), rtol=0, atol=1e-12)
    # through entropy(method="fast")
    np.testing.assert_allclose(float(info.entropy(small, 1.01, method="fast", **SMALL)), r.entropy,
                               rtol=0, atol=0)


# -- kernel width rules -----------------------------------------------------------------------
def test_gaussian_parameterisation_is_two_sigma_squared():
    x = torch.tensor([[0.0], [1.5]], dtype=torch.float64)
    K = info.gaussian_kernel(x, 0.7)
    np.testing.assert_allclose(float(K[0, 1]), math.exp(-1.5**2 / (2 * 0.7**2)), rtol=1e-14)
    A = info.gram(x, sigma=0.7).A
    np.testing.assert_allclose(A.numpy(), K.numpy() / 2, rtol=1e-14)
    assert info.gram(x, sigma=0.7).sigma == 0.7


def test_width_rules_closed_forms():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64) * 3.0
    n, d = x.shape
    s = float(x.var(0).mean().sqrt())
    np.testing.assert_allclose(info.kernel_width(x, "silverman").sigma,
                               s * (4 / (d + 2)) ** (1 / (d + 4)) * n ** (-1 / (4 + d)), rtol=1e-12)
    np.testing.assert_allclose(info.kernel_width(x, "dimnorm", scale=2.0).sigma,
                               2.0 * math.sqrt(d) * n ** (-1 / (4 + d)), rtol=1e-12)
    np.testing.assert_allclose(info.kernel_width(x, "fixed:0.3", scale=2.0).sigma, 0.6, rtol=1e-15)
    # knn: mean distance to the K-th neighbour, by brute force in NumPy
    xn = x.numpy()
    D = np.sqrt(((xn[:, None] - xn[None]) ** 2).sum(-1))
    ref = np.sort(D, axis=1)[:, 5].mean()
    np.testing.assert_allclose(info.kernel_width(x, "knn:5").sigma, ref, rtol=1e-10)


def test_align_maximizes_alignment_with_labels():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (150,), generator=g)
    x = 4.0 * torch.nn.functional.one_hot(labels, 3).double() + torch.randn(150, 3, generator=g,
                                                                          dtype=torch.float64)
    w = info.kernel_width(x, "align", labels=labels)
    L = info.label_gram(labels, dtype=torch.float64)
    best = float(info.alignment(info.gaussian_kernel(x, w.sigma), L))
    for f in (0.5, 0.8, 1.25, 2.0):
        assert best >= float(info.alignment(info.gaussian_kernel(x, w.sigma * f), L)) - 1e-9


@pytest.mark.parametrize("bad", ["silverman:3", "knn", "knn:0", "knn:2.5", "fixed:-1", "gauss"])
def test_bad_width_specs(bad):
    with pytest.raises(ValueError):
        info.parse_width(bad)


# -- NTK --------------------------------------------------------------------------------------
def test_empirical_ntk_matches_explicit_jacobian():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    x = torch.randn(7, 3, dtype=torch.float64)
    K = empirical_ntk(net, x, chunk=3)
    rows = []
    for i in range(7):
        net.zero_grad()
        net(x[i:i + 1]).sum().backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]))
    J = torch.stack(rows)
    torch.testing.assert_close(K, J @ J.T, rtol=1e-12, atol=1e-12)
    A = info.gram(K, kernel="precomputed").A
    np.testing.assert_allclose(float(torch.trace(A)), 1.0, rtol=1e-14)


@pytest.mark.gpu
def test_fast_path_on_cuda_matches_exact():
    A = info.gram(mixture(1200, 6, 0).cuda(), sigma="silverman").A
    exact = float(info.entropy(A, 1.01, method="eig"))
    res = info.entropy_fast(A, 1.01, generator=torch.Generator().manual_seed(0), **SMALL)
    assert abs(res.entropy - exact) <= 4 * res.error_estimate + 1e-4 * exact
