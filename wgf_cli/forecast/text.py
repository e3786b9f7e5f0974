"""Forecast text: sampled next-day event sets projected on the basis of standard events.

A forecast cloud is K atoms ``x_k`` on the embedding sphere with weights ``w_k`` plus a
total-count distribution (negative binomial: a Gamma-Poisson mixture with mean ``mu`` and
dispersion ``alpha``; Poisson when ``alpha`` is None).  One possible next-day event set is
drawn as: a day rate ``lam ~ Gamma(1/alpha, alpha mu)`` (``lam = mu`` for Poisson), then
``n_k ~ Poisson(lam w_k)`` events at atom ``k`` -- exactly a negative-binomial total split
multinomially over the atoms.  Each atom is projected once on the basis: its standard event
is the nearest event-code phrase vector (cosine), and its partner is the country whose vector
best explains what is left of the atom once the event vector and the focal country's vector
are removed (least squares), the focal country excluded.  The probability of a standard
event is the fraction of the sampled sets that contain it; the forecast text is the most
probable standard events, each with the partner of its heaviest atom, as phrases
"<country> — <event> — <partner>".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wgf_cli.forecast.data import StandardEvents


@dataclass
class Projection:
    """Atoms projected on the basis: standard event and partner index per atom."""

    event: torch.Tensor  # [B, K] indices into the standard events
    partner: torch.Tensor  # [B, K] indices into the country list


def project_atoms(x: torch.Tensor, basis: StandardEvents, focal: torch.Tensor) -> Projection:
    """Project atoms ``x`` [B, K, E] (focal country index into ``basis.country_codes`` per row,
    -1 if unknown) on the standard events and partner countries."""
    ev_vec = torch.as_tensor(basis.vectors, dtype=x.dtype, device=x.device)
    c_vec = torch.as_tensor(basis.country_vectors, dtype=x.dtype, device=x.device)
    event = (x @ ev_vec.T).argmax(-1)  # [B, K]
    f = c_vec[focal.clamp_min(0)] * (focal >= 0)[:, None].to(x.dtype)  # [B, E]
    span = torch.stack([ev_vec[event], f[:, None, :].expand_as(x)], dim=-1)  # [B, K, E, 2]
    gram = span.transpose(-1, -2) @ span + 1e-6 * torch.eye(2, dtype=x.dtype, device=x.device)
    coef = torch.linalg.solve(gram, span.transpose(-1, -2) @ x.unsqueeze(-1))  # normal equations
    resid = x - (span @ coef).squeeze(-1)
    score = resid @ c_vec.T  # [B, K, Q]
    score = score.masked_fill(torch.nn.functional.one_hot(focal.clamp_min(0), c_vec.shape[0])
                              .bool()[:, None, :] & (focal >= 0)[:, None, None], -torch.inf)
    return Projection(event, score.argmax(-1))


def event_probabilities(proj: Projection, weights: torch.Tensor, mu: torch.Tensor,
                        alpha: torch.Tensor | None, n_events: int, samples: int,
                        generator: torch.Generator) -> torch.Tensor:
    """P(standard event occurs next day) [B, P] from ``samples`` sampled event sets."""
    b, k = weights.shape
    if alpha is None:
        lam = mu[:, None].expand(b, samples)
    else:
        shape = (1.0 / alpha)[:, None].expand(b, samples)
        g = _gamma(shape.double(), generator)
        lam = g * (alpha * mu)[:, None].double()
    rate = lam[..., None].double() * weights[:, None, :].double()  # [B, S, K]
    n = torch.poisson(rate, generator=generator)
    present = (n > 0).float()  # [B, S, K]
    out = torch.zeros(b, samples, n_events, dtype=torch.float32, device=weights.device)
    out.scatter_reduce_(2, proj.event[:, None, :].expand(b, samples, k), present, "amax")
    return out.mean(1)


def _gamma(shape: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gamma(shape, 1) draws with an explicit generator (Marsaglia-Tsang, boosted for shape < 1)."""
    boost = shape < 1
    a = torch.where(boost, shape + 1, shape)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    for _ in range(64):
        z = torch.randn(a.shape, generator=generator, dtype=a.dtype, device=a.device)
        u = torch.rand(a.shape, generator=generator, dtype=a.dtype, device=a.device)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * z**2 + d - d * v
                        + d * torch.log(v.clamp_min(1e-300)))
        take = todo & ok
        out = torch.where(take, d * v, out)
        todo = todo & ~ok
        if not todo.any():
            break
    out = torch.where(todo, a, out)  # (never in practice) fall back to the mean
    u = torch.rand(a.shape, generator=generator, dtype=a.dtype, device=a.device)
    return torch.where(boost, out * u.clamp_min(1e-300) ** (1.0 / shape), out)


def phrase(country: str, event: str, partner: str | None) -> str:
    return f"{country} — {event} — {partner}" if partner else f"{country} — {event}"


def forecast_phrases(probs: np.ndarray, proj_event: np.ndarray, proj_partner: np.ndarray,
                     weights: np.ndarray, country: str, basis: StandardEvents,
                     top: int) -> list[str]:
    """The ``top`` most probable standard events with the partner of their heaviest atom."""
    order = np.argsort(-probs, kind="stable")
    out = []
    for e in order[:top]:
        if probs[e] <= 0:
            break
        atoms = np.flatnonzero(proj_event == e)
        partner = proj_partner[atoms[np.argmax(weights[atoms])]] if len(atoms) else -1
        out.append(phrase(country, str(basis.phrases[e]),
                          str(basis.country_names[partner]) if partner >= 0 else None))
    return out


def actual_phrases(proj_event: np.ndarray, proj_partner: np.ndarray, weights: np.ndarray,
                   country: str, basis: StandardEvents, top: int) -> list[str]:
    """The actual day's cloud as text: its distinct standard events by total weight."""
    mass: dict[int, float] = {}
    for e, w in zip(proj_event.tolist(), weights.tolist(), strict=True):
        if w > 0:
            mass[e] = mass.get(e, 0.0) + w
    out = []
    for e in sorted(mass, key=lambda e: -mass[e])[:top]:
        atoms = np.flatnonzero((proj_event == e) & (weights > 0))
        partner = proj_partner[atoms[np.argmax(weights[atoms])]]
        out.append(phrase(country, str(basis.phrases[e]), str(basis.country_names[partner])))
    return out
