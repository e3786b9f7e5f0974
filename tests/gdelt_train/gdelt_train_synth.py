"""Test-side generator of a gdelt-build folder (contract: GDELT_SPEC.md, version 1) with a
known predictive distribution.  It is NOT the builder (``wgf gdelt-build``): it writes the
descriptors directly, so ``wgf gdelt-train`` can be developed and tested on its own.

Model: per country a 3-state Markov-modulated Poisson process (calm / tension / conflict).
Given the regime ``s`` of country ``c`` on day ``d`` (weekday ``w``), the events per root code
``r`` are independent ``Poisson(lam_c * m_s * season_w * pi_{c,s,r})`` and every event of root
``r`` has the QuadClass of its CAMEO root (01-05 verbal coop., 06-08 material coop., 09-13
verbal conflict, 14-20 material conflict).  The regime chain is sticky with a transition
matrix ``A``.  The oracle is the exact forward filter: with ``q_d = P(s_d | counts before d)``
the predictive per-event root distribution is ``sum_s q_d(s) mu_{s,r} / sum_s q_d(s) mu_s``
(``mu`` the Poisson means), i.e. E[N_r] / E[N], and ``total_mean = sum_s q_d(s) mu_s``.

Usage (a development build):
    python tests/gdelt_train/gdelt_train_synth.py --out /tmp/gdelt_dev --countries 20 --days 730
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOTS = {
    "01": "Make public statement", "02": "Appeal", "03": "Express intent to cooperate",
    "04": "Consult", "05": "Engage in diplomatic cooperation", "06": "Engage in material cooperation",
    "07": "Provide aid", "08": "Yield", "09": "Investigate", "10": "Demand", "11": "Disapprove",
    "12": "Reject", "13": "Threaten", "14": "Protest", "15": "Exhibit force posture",
    "16": "Reduce relations", "17": "Coerce", "18": "Assault", "19": "Fight",
    "20": "Use unconventional mass violence",
}
SUBCODES = {
    "010": "Make statement, not specified below", "020": "Make an appeal or request",
    "036": "Express intent to meet or negotiate", "040": "Consult, not specified below",
    "042": "Make a visit", "043": "Host a visit", "046": "Engage in negotiation",
    "057": "Sign formal agreement", "061": "Cooperate economically", "071": "Provide economic aid",
    "112": "Accuse", "120": "Reject, not specified below", "130": "Threaten, not specified below",
    "141": "Demonstrate or rally", "173": "Arrest, detain, or charge with legal action",
    "190": "Use conventional military force", "193": "Fight with small arms and light weapons",
    "195": "Employ aerial weapons",
}
COUNTRIES = {
    "AF": "Afghanistan", "AS": "Australia", "BR": "Brazil", "CA": "Canada", "CH": "China",
    "EG": "Egypt", "FR": "France", "GM": "Germany", "IN": "India", "IR": "Iran", "IS": "Israel",
    "IT": "Italy", "IZ": "Iraq", "JA": "Japan", "KN": "North Korea", "KS": "South Korea",
    "MX": "Mexico", "NI": "Nigeria", "PK": "Pakistan", "RS": "Russia", "SA": "Saudi Arabia",
    "SF": "South Africa", "SY": "Syria", "TU": "Turkey", "UK": "United Kingdom",
    "UP": "Ukraine", "US": "United States", "VE": "Venezuela", "YM": "Yemen", "GG": "Georgia",
}
QUAD_OF_ROOT = np.array([0] * 5 + [1] * 3 + [2] * 5 + [3] * 7)
GOLDSTEIN = np.array([0.0, 3.0, 4.0, 1.0, 3.5, 6.0, 7.0, 5.0, -2.0, -5.0, -2.0, -4.0, -6.0,
                      -6.5, -7.2, -4.0, -7.0, -9.0, -10.0, -10.0])
BASE_ROOT = np.array([10, 4, 5, 18, 6, 3, 2, 1, 1, 2, 6, 2, 1, 2, 1, 1, 3, 3, 2, 0.2])
TRANSITION = np.array([[0.95, 0.04, 0.01], [0.08, 0.87, 0.05], [0.03, 0.10, 0.87]])
REGIME_RATE = np.array([1.0, 1.6, 2.6])
SEASON = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.75, 0.7])  # Monday..Sunday


def hash_vector(text: str, dim: int) -> np.ndarray:
    """Deterministic unit vector of ``text`` (the ``embedding=hash`` idea)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return v / np.linalg.norm(v)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _regime_roots(rng: np.random.Generator, n_countries: int) -> np.ndarray:
    """pi[c, s, r]: per country and regime root-code distribution."""
    tilt = np.ones((3, 20))
    tilt[1, 8:13] *= 3.0
    tilt[1, 13:17] *= 2.0
    tilt[2, 13:] *= 6.0
    tilt[2, :5] *= 0.6
    out = np.empty((n_countries, 3, 20))
    for c in range(n_countries):
        own = rng.gamma(8.0, 1 / 8.0, size=20)
        for s in range(3):
            p = BASE_ROOT * tilt[s] * own
            out[c, s] = p / p.sum()
    return out


def forward_filter(counts_root: np.ndarray, mu: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Predictive regime probabilities q[d, s] = P(s_d | counts of days < d) for one country.

    ``counts_root`` [D, 20], ``mu`` [D, S, 20] Poisson means, ``observed`` [D] (an unobserved
    day propagates the chain without an update)."""
    n_days, n_states = counts_root.shape[0], mu.shape[1]
    evals, evecs = np.linalg.eig(TRANSITION.T)
    stat = np.real(evecs[:, np.argmin(np.abs(evals - 1))])
    alpha = stat / stat.sum()
    q = np.empty((n_days, n_states))
    for d in range(n_days):
        pred = alpha @ TRANSITION if d > 0 else alpha
        q[d] = pred
        if observed[d]:
            n = counts_root[d]
            loglik = (n[None, :] * np.log(np.maximum(mu[d], 1e-300)) - mu[d]).sum(-1)
            loglik -= loglik.max()
            post = pred * np.exp(loglik)
            alpha = post / post.sum()
        else:
            alpha = pred
    return q


def generate(out: str | Path, *, countries: int = 8, days: int = 240, k: int = 6, dim: int = 32,
             sequences: int = 2000, context: int = 50, rate: float = 30.0, seed: int = 0,
             embedding: str = "hash", gap: bool = True) -> Path:
    """Write a build folder at ``out`` and return its path."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "descriptors").mkdir(parents=True, exist_ok=True)
    (out / "sequences").mkdir(parents=True, exist_ok=True)
    codes = sorted(COUNTRIES)[:countries]
    n_c = len(codes)
    start = date(2015, 1, 1)
    day_dates = [start + timedelta(days=i) for i in range(days)]
    day_ints = np.array([int(d.strftime("%Y%m%d")) for d in day_dates], dtype=np.int32)
    dow = np.array([d.weekday() for d in day_dates])

    pi = _regime_roots(rng, n_c)
    lam = rate * np.exp(rng.normal(0, 0.4, size=n_c))
    observed = np.ones((n_c, days), dtype=bool)
    if gap and days > 3 * context:
        observed[0, days // 3: days // 3 + 3] = False  # three missing days in one country

    counts = np.zeros((n_c, days, 20, 4), dtype=np.int32)
    root_probs = np.zeros((n_c, days, 20))
    quad_probs = np.zeros((n_c, days, 4))
    total_mean = np.zeros((n_c, days))
    regimes = np.zeros((n_c, days), dtype=np.int64)
    quad_onehot = np.eye(4)[QUAD_OF_ROOT]  # [20, 4]
    for c in range(n_c):
        s = rng.choice(3, p=[0.7, 0.2, 0.1])
        mu = lam[c] * REGIME_RATE[None, :, None] * SEASON[dow][:, None, None] * pi[c][None]  # [D,S,20]
        for d in range(days):
            if d > 0:
                s = rng.choice(3, p=TRANSITION[s])
            regimes[c, d] = s
            if observed[c, d]:
                n = rng.poisson(mu[d, s])
                counts[c, d, np.arange(20), QUAD_OF_ROOT] = n
        q = forward_filter(counts[c].sum(-1), mu, observed[c])
        expected = np.einsum("ds,dsr->dr", q, mu)  # E[N_r]
        total_mean[c] = expected.sum(-1)
        root_probs[c] = expected / total_mean[c][:, None]
        quad_probs[c] = root_probs[c] @ quad_onehot

    total = counts.sum((2, 3)).astype(np.int32)
    root_counts = counts.sum(-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        gmean = np.where(total > 0, (root_counts * GOLDSTEIN).sum(-1) / np.maximum(total, 1), 0.0)
        gvar = (root_counts * (GOLDSTEIN - gmean[..., None]) ** 2).sum(-1) / np.maximum(total, 1)
    gstd = np.where(total >= 2, np.sqrt(gvar), 0.0)
    conflict_share = root_counts[..., 13:].sum(-1) / np.maximum(total, 1)
    multi = rng.binomial(total, np.clip(0.3 + 0.4 * conflict_share, 0, 1))
    multi_frac = np.where(total > 0, multi / np.maximum(total, 1), 0.0)

    # partners: each country has 3 neighbours (ring + one random)
    neighbours = [[(c + 1) % n_c, (c - 1) % n_c, int(rng.integers(n_c))] for c in range(n_c)]
    neighbours = [[j if j != c else (c + 2) % n_c for j in nb] for c, nb in enumerate(neighbours)]
    partners = np.full((n_c, days, 3), "", dtype="<U3")
    top_partner = np.zeros((n_c, days), dtype=np.int64)
    for c in range(n_c):
        for d in range(days):
            if total[c, d] == 0:
                continue
            pc = rng.multinomial(max(int(multi[c, d]), 1), [0.6, 0.3, 0.1])
            order = [neighbours[c][i] for i in np.argsort(-pc, kind="stable") if pc[i] > 0]
            uniq = list(dict.fromkeys(order))[:3]
            partners[c, d, : len(uniq)] = [codes[j] for j in uniq]
            top_partner[c, d] = uniq[0]

    # embeddings and the day clouds: top-k root codes, each an event vector with the top partner
    root_vec = np.stack([hash_vector(ROOTS[r], dim) for r in ROOTS])
    country_vec = np.stack([hash_vector(COUNTRIES[c], dim) for c in codes])
    points = np.zeros((n_c, days, k, dim), dtype=np.float16)
    weights = np.zeros((n_c, days, k), dtype=np.float32)
    for c in range(n_c):
        for d in range(days):
            n = root_counts[c, d]
            if n.sum() == 0:
                continue
            top = np.argsort(-n, kind="stable")[:k]
            top = top[n[top] > 0]
            w = n[top] / n[top].sum()
            v = _normalize(0.6 * root_vec[top] + 0.25 * country_vec[c]
                           + 0.15 * country_vec[top_partner[c, d]])
            points[c, d, : len(top)] = v.astype(np.float16)
            weights[c, d, : len(top)] = w
    np.savez_compressed(
        out / "descriptors" / "descriptors.npz", countries=np.array(codes, dtype="<U3"),
        days=day_ints, counts=counts, total=total, goldstein_mean=gmean.astype(np.float32),
        goldstein_std=gstd.astype(np.float32), multi_frac=multi_frac.astype(np.float32),
        observed=observed, points=points, weights=weights, partners=partners)

    std_codes = list(ROOTS) + list(SUBCODES)
    std_phr = list(ROOTS.values()) + list(SUBCODES.values())
    std_vec = [hash_vector(p, dim) if len(cd) == 2 else
               _normalize(root_vec[int(cd[:2]) - 1] + 0.5 * hash_vector(p, dim))
               for cd, p in zip(std_codes, std_phr, strict=True)]
    all_c = sorted(COUNTRIES)
    np.savez_compressed(
        out / "descriptors" / "standard_events.npz", codes=np.array(std_codes, dtype="<U4"),
        phrases=np.array(std_phr), vectors=np.stack(std_vec).astype(np.float32),
        country_codes=np.array(all_c, dtype="<U3"),
        country_names=np.array([COUNTRIES[c] for c in all_c]),
        country_vectors=np.stack([hash_vector(COUNTRIES[c], dim) for c in all_c]).astype(np.float32))

    # sequences: every start whose context + target days are observed; split by target day
    n_targets = days - context
    cut1, cut2 = context + int(0.7 * n_targets), context + int(0.85 * n_targets)
    rows = []
    for c in range(n_c):
        ok = observed[c]
        for s0 in range(days - context):
            if ok[s0: s0 + context + 1].all():
                t = s0 + context
                rows.append((c, s0, "train" if t < cut1 else "validation" if t < cut2 else "test"))
    pick = rng.permutation(len(rows))[: min(sequences, len(rows))]
    rows = sorted((rows[i] for i in pick), key=lambda r: (r[1], r[0]))
    index = pd.DataFrame({
        "seq_id": np.arange(len(rows), dtype=np.int64),
        "country": [codes[r[0]] for r in rows],
        "country_idx": np.array([r[0] for r in rows], dtype=np.int32),
        "start": np.array([r[1] for r in rows], dtype=np.int32),
        "split": [r[2] for r in rows]})
    index.to_parquet(out / "sequences" / "index.parquet", index=False)

    np.savez_compressed(out / "oracle.npz", root_probs=root_probs, quad_probs=quad_probs,
                        total_mean=total_mean)
    splits = {}
    for name in ("train", "validation", "test"):
        t = index.loc[index.split == name, "start"].to_numpy() + context
        splits[name] = [int(day_ints[t.min()]), int(day_ints[t.max()])] if len(t) else []
    manifest = {"generator": "tests/gdelt_train/gdelt_train_synth.py", "seed": seed,
                "dataset": {"version": 1, "source": "synthetic", "embedding": embedding,
                            "embedding_dim": dim, "k": k, "context": context,
                            "n_countries": n_c, "n_days": days, "splits": splits,
                            "oracle": True}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    np.save(out / "regimes.npy", regimes)  # hidden states (for tests; not part of the contract)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--countries", type=int, default=20)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--sequences", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    generate(a.out, countries=a.countries, days=a.days, k=a.k, dim=a.dim, sequences=a.sequences,
             rate=a.rate, seed=a.seed)


if __name__ == "__main__":
    main()
