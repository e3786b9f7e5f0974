"""Forecast text: projection of atoms on the standard events, sampled event probabilities
against their closed form, the Gamma sampler."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from wgf_cli.forecast.data import load_build
from wgf_cli.forecast.text import _gamma, event_probabilities, forecast_phrases, project_atoms

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt_train_build"


def test_projection_recovers_event_and_partner_of_composed_vectors():
    basis = load_build(FIXTURE).standard
    ev, cv = torch.tensor(basis.vectors), torch.tensor(basis.country_vectors)
    focal, partner, events = 2, 7, [3, 10, 19]
    x = torch.stack([0.6 * ev[e] + 0.25 * cv[focal] + 0.15 * cv[partner] for e in events])
    x = x / x.norm(dim=-1, keepdim=True)
    proj = project_atoms(x[None], basis, torch.tensor([focal]))
    assert proj.event[0].tolist() == events
    assert proj.partner[0].tolist() == [partner] * 3


def test_gamma_sampler_moments():
    g = torch.Generator().manual_seed(0)
    for shape in (0.3, 2.0, 10.0):
        s = _gamma(torch.full((200_000,), shape, dtype=torch.float64), g)
        np.testing.assert_allclose(float(s.mean()), shape, rtol=0.02)
        np.testing.assert_allclose(float(s.var()), shape, rtol=0.05)


def test_event_probabilities_match_closed_form():
    """Atom k alone maps to event k: P(event k) = P(n_k > 0) = 1 - (1 + alpha mu w_k)^(-1/alpha)."""
    from wgf_cli.forecast.text import Projection

    w = torch.tensor([[0.6, 0.3, 0.1]])
    mu, alpha = torch.tensor([3.0]), torch.tensor([0.5])
    proj = Projection(torch.tensor([[0, 1, 2]]), torch.zeros(1, 3, dtype=torch.long))
    g = torch.Generator().manual_seed(1)
    p = event_probabilities(proj, w, mu.double(), alpha.double(), 4, 40_000, g)[0].numpy()
    ref = [1 - (1 + 0.5 * 3.0 * wk) ** (-1 / 0.5) for wk in (0.6, 0.3, 0.1)] + [0.0]
    np.testing.assert_allclose(p, ref, atol=0.01)  # 40k samples: std < 0.0025
    pois = event_probabilities(proj, w, mu.double(), None, 4, 40_000, g)[0].numpy()
    np.testing.assert_allclose(pois[:3], [1 - math.exp(-3.0 * wk) for wk in (0.6, 0.3, 0.1)],
                               atol=0.01)


def test_forecast_phrases_order_and_partner():
    basis = load_build(FIXTURE).standard
    probs = np.zeros(len(basis.codes))
    probs[[4, 9]] = [0.3, 0.8]
    out = forecast_phrases(probs, np.array([4, 9, 9]), np.array([1, 2, 5]),
                           np.array([0.2, 0.3, 0.5]), "Xland", basis, top=5)
    assert out == [f"Xland — {basis.phrases[9]} — {basis.country_names[5]}",
                   f"Xland — {basis.phrases[4]} — {basis.country_names[1]}"]
