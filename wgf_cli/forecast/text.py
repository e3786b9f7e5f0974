"""Forecast text: next-day event sets and a country's partners, in words.

Forecast text: sampled next-day event sets projected on the basis of standard events, and the
partners a country's events actually involve.

A forecast cloud is K atoms ``x_k`` on the embedding sphere with weights ``w_k`` plus a
total-count distribution (negative binomial: a Gamma-Poisson mixture with mean ``mu`` and
dispersion ``alpha``; Poisson when ``alpha`` is None).  One possible next-day event set is
drawn as: a day rate ``lam ~ Gamma(1/alpha, alpha mu)`` (``lam = mu`` for Poisson), then
``n_k ~ Poisson(lam w_k)`` events at atom ``k`` -- exactly a negative-binomial total split
multinomially over the atoms.  Each atom is projected once on the basis: its standard event
is the nearest event-code phrase vector (cosine).  The probability of a standard event is the
fraction of the sampled sets that contain it.

Partners are never guessed from the vectors: they are counted from the events themselves
(the build's ``partners`` / ``partner_counts``: the actor locations of each (country, day)'s
events, an actor in the country itself counted as *domestic*).  A test day's text names that
day's partners; a forecast names the partners of the country's recent events
(:func:`partner_shares`).  Phrases read "<country> — <event> — <partner>".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wgf_cli.forecast.data import StandardEvents

DOMESTIC = "domestic"


@dataclass
class Projection:
    """Atoms projected on the basis: the standard event of each atom."""

    event: torch.Tensor  # [B, K] indices into the standard events


def project_atoms(x: torch.Tensor, basis: StandardEvents) -> Projection:
    """The nearest standard event (largest cosine) of each atom ``x`` [B, K, E]."""
    ev_vec = torch.as_tensor(basis.vectors, dtype=x.dtype, device=x.device)
    return Projection((x @ ev_vec.T).argmax(-1))


def partner_shares(partners: np.ndarray, counts: np.ndarray, focal: str, basis: StandardEvents,
                   top: int = 3) -> list[tuple[str, str, float]]:
    """The ``top`` partners of a country over some days, with their share of the partnered events.

    ``partners`` [..., 3] FIPS codes ('' for none; the focal code itself means domestic) and ``counts``
    [..., 3] events per partner, summed over the leading axes. Returns (code, label, share) with the
    label ``domestic`` for the focal country.
    """
    tally: dict[str, float] = {}
    for code, n in zip(partners.reshape(-1).tolist(), counts.reshape(-1).tolist(), strict=True):
        if code and n > 0:
            tally[code] = tally.get(code, 0.0) + float(n)
    total = sum(tally.values())
    order = sorted(tally, key=lambda k: (-tally[k], k))[:top]
    return [(k, DOMESTIC if k == focal else basis.country_name(k), tally[k] / total) for k in order]


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
    """One forecast line: the country, the event and, when known, the partner."""
    return f"{country} — {event} — {partner}" if partner else f"{country} — {event}"


def forecast_phrases(probs: np.ndarray, country: str, basis: StandardEvents, top: int,
                     partner: str | None) -> list[str]:
    """The ``top`` most probable standard events of a forecast, as phrases.

    The ``top`` most probable standard events (``probs`` [P]), each with ``partner`` (the country's main
    recent partner, or None).
    """
    order = np.argsort(-probs, kind="stable")
    return [phrase(country, str(basis.phrases[e]), partner) for e in order[:top] if probs[e] > 0]


def actual_phrases(proj_event: np.ndarray, weights: np.ndarray, country: str, basis: StandardEvents,
                   top: int, partner: str | None) -> list[str]:
    """The actual day's cloud as text.

    Its distinct standard events by total weight, each with the day's main partner (``partner``: from
    that day's events; None when no event of the day had a located actor).
    """
    mass: dict[int, float] = {}
    for e, w in zip(proj_event.tolist(), weights.tolist(), strict=True):
        if w > 0:
            mass[e] = mass.get(e, 0.0) + w
    return [phrase(country, str(basis.phrases[e]), partner) for e in sorted(mass, key=lambda e: -mass[e])[:top]]
