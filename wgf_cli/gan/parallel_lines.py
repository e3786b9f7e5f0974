"""The vanishing gradient of the original GAN: two distributions on parallel lines.

``P_0`` is uniform on the segment ``{0} × [0, 1]`` and the generator's ``P_θ`` uniform on
``{θ} × [0, 1]`` (Arjovsky, Chintala & Bottou 2017, Example 1).  In closed form

- ``JS(P_0, P_θ) = log 2`` for every ``θ ≠ 0`` (0 at ``θ = 0``): the supports are disjoint, so
  the Jensen-Shannon divergence is constant and its gradient in ``θ`` is **zero**;
- ``W1(P_0, P_θ) = |θ|``: its gradient ``sign θ`` points the generator home from any distance.

The *trained* versions: a discriminator ``D = σ(f)`` trained on the GAN loss reaches the value
``max_D E_P log D + E_Q log(1 − D) = 2 JS − log 4``, so ``(value + log 4) / 2`` estimates JS; the
minimax generator's gradient ``∂_θ E_Q log(1 − D(θ, y))`` vanishes as ``D`` saturates.  A
WGAN-GP critic (two-sided penalty weight ``λ``, interpolates uniform between the lines)
reaches ``E_P f − E_Q f = k|θ|`` with the slope ``k = 1 + |θ| / (2λ)`` that maximises
``k|θ| − λ (k − 1)²`` (:func:`w1_gp_value`; ``→ |θ|`` as ``λ → ∞``), and its generator gradient
``−∂_θ E_Q f(θ, y)`` is about ``sign(θ) k``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

LOG2 = math.log(2.0)


def js_divergence(theta):
    """Closed form ``JS(P_0, P_θ)``: ``log 2`` for ``θ ≠ 0``, 0 at ``θ = 0``."""
    th = np.asarray(theta, dtype=np.float64)
    return np.where(th == 0, 0.0, LOG2)


def w1_distance(theta):
    """Closed form ``W1(P_0, P_θ) = |θ|``."""
    return np.abs(np.asarray(theta, dtype=np.float64))


def w1_gp_value(theta, lam: float):
    """The WGAN-GP critic's value at the penalised optimum, without the penalty.

    ``E_P f − E_Q f = k |θ|`` with ``k = 1 + |θ| / (2λ)``, i.e. ``|θ| + θ² / (2λ)``.
    """
    th = np.abs(np.asarray(theta, dtype=np.float64))
    return th + th * th / (2.0 * lam)


def w1_gp_slope(theta, lam: float):
    """The slope ``k = 1 + |θ| / (2λ)`` of that critic between the lines (its generator gradient)."""
    return 1.0 + np.abs(np.asarray(theta, dtype=np.float64)) / (2.0 * lam)


def sample_line(theta: float, n: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """``n`` points of ``P_θ``: ``(θ, U[0, 1])``."""
    y = torch.rand(n, 1, generator=generator, dtype=torch.float64)
    return torch.cat([torch.full_like(y, theta), y], 1).to(dtype)


def critic_mlp(hidden: int = 64, depth: int = 2) -> nn.Sequential:
    """A ReLU MLP from the plane to one output (``depth`` hidden layers of width ``hidden``)."""
    layers: list[nn.Module] = []
    d = 2
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    layers.append(nn.Linear(d, 1))
    return nn.Sequential(*layers)


@dataclass
class TrainedCritic:
    """A critic trained at one ``θ`` and what it measures on fresh samples."""
    theta: float
    kind: str  # "gan" | "wgan_gp"
    estimate: float  # JS estimate (gan) or E_P f - E_Q f (wgan_gp), on fresh samples
    generator_grad: float  # d/dθ of the divergence estimate the generator descends
    value: float  # gan: E_P log D + E_Q log(1 - D); wgan_gp: the estimate


def train_critic(theta: float, kind: str, steps: int = 500, batch: int = 256, hidden: int = 64,
                 lr: float = 1e-3, lam: float = 10.0, seed: int = 0, eval_samples: int = 4096) -> TrainedCritic:
    """Train a GAN discriminator or a WGAN-GP critic between two parallel lines and measure it.

    Train a GAN discriminator (``kind="gan"``, logits ``f``, ``D = σ(f)``) or a WGAN-GP critic
    (``kind="wgan_gp"``) to separate ``P_0`` from ``P_θ`` with Adam, then measure on fresh samples the
    divergence estimate and its gradient in ``θ`` (autograd through the generated points ``(θ, y)``).
    """
    if kind not in ("gan", "wgan_gp"):
        raise ValueError(f"kind must be gan or wgan_gp, got {kind!r}")
    torch.manual_seed(seed)
    f = critic_mlp(hidden)
    opt = torch.optim.Adam(f.parameters(), lr=lr, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        real, fake = sample_line(0.0, batch, g), sample_line(theta, batch, g)
        fr, ff = f(real), f(fake)
        if kind == "gan":  # -(E_P log σ(f) + E_Q log(1 - σ(f)))
            loss = nn.functional.softplus(-fr).mean() + nn.functional.softplus(ff).mean()
        else:
            eps = torch.rand(batch, 1, generator=g)
            x = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad = torch.autograd.grad(f(x).sum(), x, create_graph=True)[0]
            loss = ff.mean() - fr.mean() + lam * ((grad.norm(dim=1) - 1) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    g_eval = torch.Generator().manual_seed(10_000 + seed)
    real = sample_line(0.0, eval_samples, g_eval)
    y = torch.rand(eval_samples, 1, generator=g_eval, dtype=torch.float64).float()
    th = torch.tensor(float(theta), requires_grad=True)
    fake = torch.cat([th.expand(eval_samples, 1), y], 1)
    for q in f.parameters():
        q.requires_grad_(False)
    fr, ff = f(real), f(fake)
    if kind == "gan":
        value = -nn.functional.softplus(-fr).mean() - nn.functional.softplus(ff).mean()
        objective = value  # the minimax generator descends E_Q log(1 - D) (and so the value)
        estimate = (float(value.detach()) + math.log(4.0)) / 2.0
    else:
        value = fr.mean() - ff.mean()
        objective = value
        estimate = float(value.detach())
    (grad,) = torch.autograd.grad(objective, th)
    return TrainedCritic(float(theta), kind, estimate, float(grad), float(value.detach()))


def vanishing_study(thetas: Iterable[float], lam: float = 10.0, steps: int = 500, batch: int = 256, hidden: int = 64,
                    lr: float = 1e-3, seed: int = 0,
                    on_critic: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Closed-form JS and W1 next to a trained GAN discriminator and WGAN-GP critic, per ``θ``.

    Args:
        thetas: distances between the lines.
        lam: WGAN-GP penalty weight.
        steps: Adam steps per critic (:func:`train_critic`).
        batch: samples per line and step.
        hidden: width of the critic's hidden layers.
        lr: Adam's learning rate.
        seed: the ``k``-th ``θ`` trains its two critics with seed ``seed + k``.
        on_critic: called after each trained critic (a progress hook).

    Returns:
        One row per ``θ``: ``theta, js, w1, w1_gp_value, w1_gp_slope`` (closed forms; the slope
        signed) and, for ``kind`` in ``gan``, ``wgan_gp``, ``<kind>_estimate`` and ``<kind>_grad``.
    """
    rows = []
    for k, th in enumerate(float(t) for t in thetas):
        row: dict[str, Any] = {"theta": th, "js": float(js_divergence(th)), "w1": float(w1_distance(th)),
                               "w1_gp_value": float(w1_gp_value(th, lam)),
                               "w1_gp_slope": float(np.sign(th) * w1_gp_slope(th, lam))}
        for kind in ("gan", "wgan_gp"):
            r = train_critic(th, kind, steps=steps, batch=batch, hidden=hidden, lr=lr, lam=lam, seed=seed + k)
            row[f"{kind}_estimate"], row[f"{kind}_grad"] = r.estimate, r.generator_grad
            if on_critic is not None:
                on_critic()
        rows.append(row)
    return rows


def vanishing_errors(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """The checks of :func:`vanishing_study`'s rows against the closed forms.

    ``js_trained_max_error``: max ``|JS estimate − log 2|`` over ``θ ≠ 0``; ``js_trained_at_zero``:
    the estimate at ``θ = 0`` (None without it); ``gan_grad_max``: the largest generator gradient of
    the GAN discriminators (``θ ≠ 0``); ``w1_trained_max_rel_error`` / ``wgan_grad_max_rel_error``:
    relative errors of the WGAN-GP value and gradient against :func:`w1_gp_value` / :func:`w1_gp_slope`;
    ``wgan_grad_min``: the smallest WGAN-GP generator gradient.

    Raises:
        ValueError: when no row has ``θ ≠ 0``.
    """
    nz = [r for r in rows if r["theta"] != 0]
    zero = [r for r in rows if r["theta"] == 0]
    if not nz:
        raise ValueError("vanishing_errors needs a row with theta != 0")

    def col(key: str) -> np.ndarray:
        return np.array([r[key] for r in nz], dtype=float)

    value, slope = col("w1_gp_value"), col("w1_gp_slope")
    # nanmax / nanmin: a diverged critic (NaN) does not hide the others
    return {
        "js_trained_max_error": float(np.nanmax(np.abs(col("gan_estimate") - LOG2))),
        "js_trained_at_zero": float(zero[0]["gan_estimate"]) if zero else None,
        "gan_grad_max": float(np.nanmax(np.abs(col("gan_grad")))),
        "w1_trained_max_rel_error": float(np.nanmax(np.abs((col("wgan_gp_estimate") - value) / value))),
        "wgan_grad_max_rel_error": float(np.nanmax(np.abs((col("wgan_gp_grad") - slope) / slope))),
        "wgan_grad_min": float(np.nanmin(np.abs(col("wgan_gp_grad")))),
    }
