"""The debiased Sinkhorn divergence used as the cloud loss: >= 0, zero on identical clouds,
value against a float64 NumPy log-domain Sinkhorn written here and against GeomLoss, gradient
against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from wgf_cli.ot.pointcloud import sinkhorn_divergence


def _clouds(seed, b=3, n=5, m=4, d=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=g, dtype=dtype)
    y = torch.randn(b, m, d, generator=g, dtype=dtype)
    x, y = x / x.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True)
    a = torch.softmax(torch.randn(b, n, generator=g, dtype=dtype), -1)
    bw = torch.softmax(torch.randn(b, m, generator=g, dtype=dtype), -1)
    return a, x, bw, y


def _ot_eps(a, x, b, y, eps, iters=500):
    """Entropic OT dual value with cost |x-y|^2/2 (symmetric log-domain Sinkhorn, float64)."""
    c = 0.5 * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    f, g = np.zeros(len(a)), np.zeros(len(b))
    la, lb = np.log(a), np.log(b)
    for _ in range(iters):
        f = -eps * logsumexp(lb[None, :] + (g[None, :] - c) / eps, axis=1)
        g = -eps * logsumexp(la[:, None] + (f[:, None] - c) / eps, axis=0)
    return float(a @ f + b @ g)


def _divergence_np(a, x, b, y, eps):
    return (_ot_eps(a, x, b, y, eps) - 0.5 * _ot_eps(a, x, a, x, eps)
            - 0.5 * _ot_eps(b, y, b, y, eps))


def test_nonnegative_and_zero_on_identical_clouds():
    for seed in range(5):
        a, x, b, y = _clouds(seed)
        s = sinkhorn_divergence(a, x, b, y, blur=0.1)
        assert (s >= -1e-9).all()
        torch.testing.assert_close(sinkhorn_divergence(a, x, a, x, blur=0.1),
                                   torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)


def test_value_against_numpy_log_domain_sinkhorn():
    a, x, b, y = _clouds(7)
    blur = 0.5  # eps = 0.25: the reference converges fast; GeomLoss anneals to the same eps
    s = sinkhorn_divergence(a, x, b, y, blur=blur, iters=300).numpy()
    ref = [_divergence_np(a[i].numpy(), x[i].numpy(), b[i].numpy(), y[i].numpy(), blur**2)
           for i in range(3)]
    np.testing.assert_allclose(s, ref, rtol=1e-6, atol=1e-9)


def test_agrees_with_geomloss():
    from geomloss import SamplesLoss

    a, x, b, y = _clouds(11, b=4)
    ref = SamplesLoss("sinkhorn", p=2, blur=0.3, scaling=0.99, debias=True,
                      backend="tensorized")(a, x, b, y)
    # GeomLoss anneals eps in 0.99 steps and stops at the target: agreement to ~1e-2
    torch.testing.assert_close(sinkhorn_divergence(a, x, b, y, blur=0.3, iters=200), ref,
                               rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("wrt", ["points", "weights"])
def test_gradient_matches_finite_differences(wrt):
    a, x, b, y = _clouds(3, b=1)
    blur, h = 0.3, 1e-5
    if wrt == "points":
        x = x.clone().requires_grad_(True)
        sinkhorn_divergence(a, x, b, y, blur=blur, iters=300).sum().backward()
        grad, base = x.grad, x.detach()
    else:
        a = a.clone().requires_grad_(True)
        sinkhorn_divergence(a, x, b, y, blur=blur, iters=300).sum().backward()
        grad, base = a.grad, a.detach()
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        v = torch.randn(base.shape, generator=g, dtype=base.dtype)
        if wrt == "weights":
            v = v - v.mean(-1, keepdim=True)  # stay on the simplex
        def f(t, v=v):
            z = base + t * v
            args = (a, z, b, y) if wrt == "points" else (z, x.detach(), b, y)
            return float(sinkhorn_divergence(*args, blur=blur, iters=300).sum())
        fd = (f(h) - f(-h)) / (2 * h)
        # weights: GeomLoss's gradient is defined up to a constant per cloud (the dual
        # potential), which a zero-sum direction removes
        np.testing.assert_allclose(float((grad * v).sum()), fd, rtol=1e-4, atol=1e-8)
