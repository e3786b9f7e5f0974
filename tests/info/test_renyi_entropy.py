"""Matrix-based Rényi entropy: closed forms, bounds, the alpha -> 1 limit, the alpha = 2
shortcut, properties of joint entropy / MI / total correlation, and an independent float64
NumPy implementation written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wgf_cli import info

ALPHAS = [0.5, 1.0, 1.01, 2.0, 3.0]


# -- an independent float64 NumPy implementation (no code shared with wgf_cli.info) ------
def np_gram(x: np.ndarray, sigma: float) -> np.ndarray:
    x = x.reshape(len(x), -1)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    K = np.exp(-d2 / (2 * sigma**2))
    return K / len(x)  # K_ii = 1


def np_renyi(A: np.ndarray, alpha: float) -> float:
    w = np.linalg.eigh(A / np.trace(A))[0]
    w[w <= len(w) * np.finfo(float).eps * w.max()] = 0.0  # round-off level (the stated convention)
    w = w / w.sum()
    if alpha == 1:
        w = w[w > 0]
        return float(-(w * np.log2(w)).sum())
    return float(np.log2((w**alpha).sum()) / (1 - alpha))


def np_joint(*As: np.ndarray, alpha: float) -> float:
    H = np.ones_like(As[0])
    for A in As:
        H = H * A
    return np_renyi(H / np.trace(H), alpha)


def random_gram(n: int, d: int, seed: int, sigma: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return info.gram(x, sigma=sigma).A


# -- closed forms and bounds --------------------------------------------------------------
@pytest.mark.parametrize("alpha", ALPHAS)
def test_identity_has_log2_n_and_rank_one_has_zero(alpha):
    n = 37
    ident = torch.eye(n, dtype=torch.float64) / n
    ones = torch.ones(n, n, dtype=torch.float64) / n
    torch.testing.assert_close(info.entropy(ident, alpha), torch.tensor(math.log2(n), dtype=torch.float64),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(info.entropy(ones, alpha), torch.tensor(0.0, dtype=torch.float64),
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("seed", range(5))
def test_bounds_zero_to_log2_n(alpha, seed):
    for sigma in (0.05, 1.0, 30.0):  # from near-identity to near-rank-one
        A = random_gram(40, 3, seed, sigma)
        s = float(info.entropy(A, alpha))
        assert -1e-10 <= s <= math.log2(40) + 1e-10


def test_frobenius_equals_eigenvalues_at_alpha_2():
    for seed in range(5):
        A = random_gram(60, 4, seed, sigma=0.8)
        fro = info.entropy(A, 2.0, method="frobenius")
        eig = info.entropy(A, 2.0, method="eig")
        torch.testing.assert_close(fro, eig, rtol=0, atol=1e-12)


def test_alpha_one_limit_is_continuous():
    A = random_gram(50, 3, 0, sigma=0.7)
    s1 = float(info.entropy(A, 1.0))
    for eps in (1e-3, 1e-6, 1e-9, 1e-12):
        for a in (1 - eps, 1 + eps):
            # S_alpha is smooth in alpha: |S_a - S_1| = O(|a - 1|) (the derivative is bounded here)
            assert abs(float(info.entropy(A, a)) - s1) <= 10 * eps + 1e-12


def test_entropy_decreases_in_alpha():
    A = random_gram(50, 3, 1, sigma=0.7)
    vals = [float(info.entropy(A, a)) for a in (0.3, 0.5, 1.0, 1.5, 2.0, 4.0)]
    assert all(b <= a + 1e-12 for a, b in zip(vals, vals[1:], strict=False))


def test_negative_round_off_is_clipped_and_renormalized():
    lam = torch.tensor([0.5, 0.5, -1e-17, 0.0], dtype=torch.float64)
    torch.testing.assert_close(info.renyi_from_spectrum(lam, 1.01),
                               torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-14)
    # a matrix with tiny negative eigenvalues from round-off gives a finite value
    A = torch.ones(30, 30, dtype=torch.float64) / 30 + 1e-17 * torch.randn(30, 30, dtype=torch.float64)
    A = (A + A.T) / 2
    assert math.isfinite(float(info.entropy(A, 0.5)))


# -- agreement with the NumPy implementation ---------------------------------------------
@pytest.mark.parametrize("alpha", ALPHAS)
def test_against_numpy_reference(alpha):
    rng = np.random.default_rng(3)
    x, z = rng.normal(size=(45, 3)), rng.normal(size=(45, 2))
    Ax, Az = np_gram(x, 1.3), np_gram(z, 0.9)
    tx = torch.as_tensor(x)
    tz = torch.as_tensor(z)
    A = info.gram(tx, sigma=1.3).A
    B = info.gram(tz, sigma=0.9).A
    np.testing.assert_allclose(A.numpy(), Ax, rtol=1e-12, atol=1e-15)
    sA, sB, sAB = np_renyi(Ax, alpha), np_renyi(Az, alpha), np_joint(Ax, Az, alpha=alpha)
    tol = {"rtol": 1e-9, "atol": 1e-9}
    np.testing.assert_allclose(float(info.entropy(A, alpha)), sA, **tol)
    np.testing.assert_allclose(float(info.joint_entropy(A, B, alpha=alpha)), sAB, **tol)
    np.testing.assert_allclose(float(info.mutual_information(A, B, alpha)), sA + sB - sAB, **tol)
    np.testing.assert_allclose(float(info.conditional_entropy(A, B, alpha)), sAB - sB, **tol)
    # multivariate MI and total correlation with a third variable
    w = rng.normal(size=(45, 1))
    Aw = np_gram(w, 0.5)
    C = info.gram(torch.as_tensor(w), sigma=0.5).A
    ref_mmi = np_renyi(Aw, alpha) + np_joint(Ax, Az, alpha=alpha) - np_joint(Ax, Az, Aw, alpha=alpha)
    np.testing.assert_allclose(float(info.multivariate_mi(C, [A, B], alpha)), ref_mmi, **tol)
    ref_tc = sA + sB + np_renyi(Aw, alpha) - np_joint(Ax, Az, Aw, alpha=alpha)
    np.testing.assert_allclose(float(info.total_correlation([A, B, C], alpha)), ref_tc, **tol)


def test_batched_equals_loop():
    As = torch.stack([random_gram(30, 2, s, 0.6) for s in range(4)])
    Bs = torch.stack([random_gram(30, 2, 10 + s, 0.6) for s in range(4)])
    batched = info.mutual_information(As, Bs, 1.01)
    loop = torch.stack([info.mutual_information(a, b, 1.01) for a, b in zip(As, Bs, strict=True)])
    torch.testing.assert_close(batched, loop, rtol=0, atol=1e-12)


# -- properties of the joint entropy (random data) ---------------------------------------
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("seed", range(8))
def test_joint_entropy_bounds_and_nonnegative_mi(alpha, seed):
    g = torch.Generator().manual_seed(100 + seed)
    n = int(torch.randint(10, 60, (1,), generator=g))
    sig = [float(torch.exp(torch.randn(1, generator=g))) for _ in range(3)]
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    # dependent variables: y depends on x
    y = x[:, :2] + 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    z = torch.randn(n, 1, generator=g, dtype=torch.float64)
    A, B, C = (info.gram(v, sigma=s).A for v, s in zip((x, y, z), sig, strict=True))
    sA, sB = float(info.entropy(A, alpha)), float(info.entropy(B, alpha))
    sAB = float(info.joint_entropy(A, B, alpha=alpha))
    tol = 1e-9
    assert max(sA, sB) - tol <= sAB <= sA + sB + tol
    assert float(info.mutual_information(A, B, alpha)) >= -tol
    assert float(info.total_correlation([A, B, C], alpha)) >= -tol
    assert float(info.conditional_entropy(A, B, alpha)) >= -tol
    assert float(info.multivariate_mi(C, [A, B], alpha)) >= -tol


def test_mi_of_a_variable_with_itself_and_with_independent_noise():
    A = random_gram(80, 2, 0, sigma=0.5)
    # I(X;X) = 2 S(A) - S(A o A): at most S(A) (strictly less: a property of the estimator)
    mi_self = float(info.mutual_information(A, A, 1.01))
    assert 0 < mi_self <= float(info.entropy(A, 1.01)) + 1e-12
    B = random_gram(80, 2, 1, sigma=0.5)
    assert 0 <= float(info.mutual_information(A, B, 1.01)) < mi_self


# -- labels --------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", ALPHAS)
def test_label_kernel_entropy_is_the_histogram_entropy(alpha):
    labels = torch.tensor([0] * 7 + [1] * 3 + [2] * 12 + [3] * 1)
    p = np.bincount(labels.numpy()) / len(labels)
    ref = -(p * np.log2(p)).sum() if alpha == 1 else np.log2((p**alpha).sum()) / (1 - alpha)
    L = info.label_gram(labels, dtype=torch.float64)
    np.testing.assert_allclose(float(info.entropy(L, alpha)), ref, rtol=0, atol=1e-10)


# -- gradients through the Frobenius form ---------------------------------------------------
def test_alpha_2_gradient_is_finite_at_repeated_eigenvalues():
    x = torch.zeros(10, 2, dtype=torch.float64, requires_grad=True)  # A = 11^T/n: repeated zeros
    s = info.entropy(info.gram(x, sigma=1.0).A, 2.0)
    s.backward()
    assert torch.isfinite(x.grad).all()


# -- bad input ------------------------------------------------------------------------------
def test_bad_input_raises_value_error():
    A = random_gram(10, 2, 0)
    with pytest.raises(ValueError, match="alpha"):
        info.entropy(A, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        info.entropy(A, -1.0)
    with pytest.raises(ValueError, match="alpha=2 shortcut"):
        info.entropy(A, 1.0, method="frobenius")
    with pytest.raises(ValueError, match="mismatched sample counts"):
        info.mutual_information(A, random_gram(11, 2, 0))
    with pytest.raises(ValueError, match="sigma"):
        info.gram(torch.randn(5, 2), sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        info.gram(torch.randn(5, 2), sigma=-1.0)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    A = random_gram(64, 3, 0)
    B = random_gram(64, 3, 1)
    for alpha in (1.01, 2.0):
        torch.testing.assert_close(info.mutual_information(A.cuda(), B.cuda(), alpha).cpu(),
                                   info.mutual_information(A, B, alpha), rtol=0, atol=1e-10)
