"""Forecast text: projection of atoms on the standard events, sampled event probabilities
against their closed form, the Gamma sampler."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from wgf_cli.forecast.data import load_build
from wgf_cli.forecast.text import _gamma, event_probabilities, forecast_phrases, partner_shares, project_atoms

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt_train_build"


def test_projection_recovers_the_event_of_composed_vectors():
    basis = load_build(FIXTURE).standard
    ev, cv = torch.tensor(basis.vectors), torch.tensor(basis.country_vectors)
    events = [3, 10, 19]
    x = torch.stack([0.6 * ev[e] + 0.25 * cv[2] + 0.15 * cv[7] for e in events])
    x = x / x.norm(dim=-1, keepdim=True)
    assert project_atoms(x[None], basis).event[0].tolist() == events


def test_partner_shares_count_the_events_and_name_domestic():
    basis = load_build(FIXTURE).standard
    code = str(basis.country_codes[5])
    partners = np.array([[code, "NI", ""], ["NI", code, "US"]])
    counts = np.array([[6, 2, 0], [3, 1, 1]])
    out = partner_shares(partners, counts, code, basis, top=3)
    assert [(c, round(s, 6)) for c, _, s in out] == [(code, round(7 / 13, 6)), ("NI", round(5 / 13, 6)),
                                                      ("US", round(1 / 13, 6))]
    assert out[0][1] == "domestic" and out[1][1] == basis.country_name("NI")
    assert partner_shares(partners[:, 2:], counts[:, 2:] * 0, code, basis) == []


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
    proj = Projection(torch.tensor([[0, 1, 2]]))
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
    out = forecast_phrases(probs, "Xland", basis, top=5, partner="domestic")
    assert out == [f"Xland — {basis.phrases[9]} — domestic", f"Xland — {basis.phrases[4]} — domestic"]
    assert forecast_phrases(probs, "Xland", basis, top=1, partner=None) == [f"Xland — {basis.phrases[9]}"]
