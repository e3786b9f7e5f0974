"""Daily descriptors: per (country, day) counts, Goldstein moments, partners and event clouds.

Daily descriptors: per (country, day) counts, Goldstein moments, partners and the day's events
compressed to ``k`` weighted points on the embedding sphere.

Membership, partners and days
-----------------------------
Which country an event counts for is ``country_by``:

* ``action`` (default): the country where the action took place, ``ActionGeo_CountryCode``
  (GDELT's own country-linked tables and most analysts key events so);
* ``actor``: every country among its two actor geo countries (once if both are the same);
* ``any``: the union of the three (each distinct country once).

An event's *partners* are its non-empty actor geo countries (each distinct one once); an
actor located in the focal country is the **domestic** partner, stored as the focal
country's own code.  ``partners[c, d]`` holds the top 3 partners of the (country, day) by
the number of its events that involve them (ties by code), ``partner_counts[c, d]`` those
numbers ("" and 0 where fewer).  Its day is its SQLDATE (``day_key="sqldate"``) or the day of DATEADDED
(``"dateadded"``).  With the SQLDATE key, an event published more than ``max_lag`` days
after its SQLDATE (DATEADDED - SQLDATE; only daily-era rows, DATEADDED >= 2013-04-01, carry a
meaningful DATEADDED) is left out and counted (``too_old``), as are events whose day falls
outside the day axis (``outside_days``).  The day axis is every calendar day of the build's
date window (:func:`wgf_cli.gdelt.build.day_window`: given, or the densest stretch of
publication days); a day is ``observed`` when some input published events that day, or lies
inside the date range of a header-row export (which observes every day of its range).

Compression on the sphere
-------------------------
The day's events are grouped by distinct (code, actor-1 country, actor-2 country); each
distinct event is a unit vector (:mod:`wgf_cli.gdelt.embed`) weighted by its count.  With at
most ``k`` distinct events they are the points themselves; otherwise a weighted spherical
k-means (cosine assignment, centroid = normalised weighted mean) starts from a
deterministic weighted farthest-point seeding (first the heaviest point, then the point of
largest ``weight * (1 - max cosine)`` to the chosen ones) and runs ``kmeans_iters``
iterations.  Points are sorted by weight (descending); weights sum to 1.  Each point's
nearest standard event (largest cosine to a CAMEO code description) gives the day's "small
text".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from wgf_cli.gdelt import schema
from wgf_cli.gdelt.embed import Vocabulary
from wgf_cli.gdelt_contract import COUNTRY_BY as _CONTRACT_COUNTRY_BY
from wgf_cli.gdelt_contract import N_PARTNERS

DAILY_ERA = 20130401


def day_index(days_int: np.ndarray, first: int) -> np.ndarray:
    """YYYYMMDD ints -> day offsets from ``first`` (vectorised through datetime64)."""
    s = days_int.astype(np.int64)
    dates = (pd.to_datetime(pd.Series(s).astype(str), format="%Y%m%d", errors="coerce")).to_numpy()
    base = np.datetime64(pd.Timestamp(str(first)).date())
    return ((dates - base) // np.timedelta64(1, "D")).astype(np.int64)


def day_range(first: int, last: int) -> np.ndarray:
    """Every day from ``first`` to ``last`` (YYYYMMDD, both included) as int32."""
    r = pd.date_range(pd.Timestamp(str(first)), pd.Timestamp(str(last)), freq="D")
    return np.array([int(d.strftime("%Y%m%d")) for d in r], np.int32)


@dataclass
class Descriptors:
    """The daily descriptors of a panel: per (country, day) counts, moments, partners and clouds."""
    countries: np.ndarray
    days: np.ndarray
    counts: np.ndarray
    total: np.ndarray
    goldstein_mean: np.ndarray
    goldstein_std: np.ndarray
    multi_frac: np.ndarray
    observed: np.ndarray
    points: np.ndarray
    weights: np.ndarray
    partners: np.ndarray
    partner_counts: np.ndarray
    nearest: np.ndarray
    diagnostics: dict = field(default_factory=dict)
    panel: dict | None = None       # the build's panel report (countries chosen by volume)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to save (everything but the diagnostics and the panel)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("diagnostics", "panel")}


COUNTRY_BY = _CONTRACT_COUNTRY_BY


def _attribution(ev: pd.DataFrame, country_by: str) -> list[pd.Series]:
    """The columns whose (distinct, non-null) values are the countries of each event."""
    if country_by not in COUNTRY_BY:
        raise ValueError(f"country_by must be one of {COUNTRY_BY}, got {country_by!r}")
    action = [ev["ActionGeo_CountryCode"]] if country_by in ("action", "any") else []
    actors = [ev["Actor1Geo_CountryCode"], ev["Actor2Geo_CountryCode"]] if country_by in ("actor", "any") else []
    return action + actors


def _memberships(ev: pd.DataFrame, country_by: str) -> tuple[np.ndarray, np.ndarray]:
    """The (row position, country) pairs of each event and the countries it counts for.

    (row position in ``ev``, country) of each (event, country it counts for), each distinct country of
    an event once, in the order of the attribution columns.
    """
    cols = _attribution(ev, country_by)
    pos, cty = [], []
    seen: list[pd.Series] = []
    for col in cols:
        ok = col.notna().to_numpy().copy()
        for prev in seen:
            ok &= (col != prev).to_numpy() | prev.isna().to_numpy()
        seen.append(col)
        idx = np.flatnonzero(ok)
        pos.append(idx)
        cty.append(col.to_numpy()[idx])
    return np.concatenate(pos), np.concatenate(cty).astype(object)


def _membership(ev: pd.DataFrame, countries: np.ndarray, country_by: str = "action") -> pd.DataFrame:
    """One row per (event, panel country it counts for), with a column ``country``."""
    pos, cty = _memberships(ev, country_by)
    rows = ev.iloc[pos].reset_index(drop=True).assign(country=cty)
    return rows[rows["country"].isin(countries)].reset_index(drop=True)


def top_partners(rows: pd.DataFrame, cell: np.ndarray, n_cells: int, top: int = N_PARTNERS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(partners [n_cells, top] <U3, counts [n_cells, top] int32)`` of membership ``rows`` (each in cell ``cell``).

    The partners are the distinct non-empty actor geo countries of each event (the focal country itself
    when an actor is located there: domestic), ranked by the number of the cell's events that involve
    them, ties by code.
    """
    partners = np.full((n_cells, top), "", dtype="<U3")
    counts = np.zeros((n_cells, top), np.int32)
    a1, a2 = rows["Actor1Geo_CountryCode"], rows["Actor2Geo_CountryCode"]
    m1 = a1.notna().to_numpy()
    m2 = (a2.notna() & ((a2 != a1) | a1.isna())).to_numpy()
    p = pd.DataFrame({"cell": np.concatenate([cell[m1], cell[m2]]),
                      "partner": np.concatenate([a1.to_numpy()[m1], a2.to_numpy()[m2]]).astype(object)})
    if len(p):
        tab = (p.groupby(["cell", "partner"], observed=True).size().rename("m").reset_index()
               .sort_values(["cell", "m", "partner"], ascending=[True, False, True], kind="stable"))
        tab["rank"] = tab.groupby("cell").cumcount()
        tab = tab[tab["rank"] < top]
        at = (tab["cell"].to_numpy(), tab["rank"].to_numpy())
        partners[at] = tab["partner"].to_numpy().astype(str)
        counts[at] = tab["m"].to_numpy()
    return partners, counts


def spherical_kmeans(x: torch.Tensor, w: torch.Tensor, k: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched weighted k-means on the sphere.

    ``x`` [B, n, E] unit vectors (zero rows = padding), ``w`` [B, n] weights (0 = padding);
    returns centres [B, k, E] (unit, zero where empty) and their masses [B, k].
    """
    B, n, E = x.shape
    cos_best = torch.full((B, n), -2.0, dtype=x.dtype, device=x.device)
    chosen = torch.zeros((B, k), dtype=torch.long, device=x.device)
    score = w.clone()
    for j in range(k):  # weighted farthest-point seeding, deterministic
        idx = score.argmax(1)
        chosen[:, j] = idx
        c = x[torch.arange(B), idx]                                  # [B, E]
        cos_best = torch.maximum(cos_best, torch.einsum("bne,be->bn", x, c))
        score = w * (1 - cos_best).clamp_min(0)
        score[torch.arange(B), idx] = -1.0
    centres = x[torch.arange(B)[:, None], chosen]                    # [B, k, E]
    xw = x * w[..., None]
    for _ in range(iters + 1):
        assign = torch.bmm(x, centres.transpose(1, 2)).argmax(2)     # [B, n]
        sums = torch.zeros_like(centres).scatter_add_(1, assign[..., None].expand(B, n, E), xw)
        mass = torch.zeros((B, k), dtype=x.dtype, device=x.device).scatter_add_(1, assign, w)
        norm = sums.norm(dim=2, keepdim=True)
        centres = torch.where(norm > 1e-12, sums / norm.clamp_min(1e-12), centres)
    centres = torch.where(mass[..., None] > 0, centres, torch.zeros_like(centres))
    return centres, mass


def day_and_keep(events: pd.DataFrame, days: np.ndarray, day_key: str = "sqldate", max_lag: int = 30
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Each event's day index on the axis ``days``, whether it belongs to it, and the counts.

    Each event's day index on the axis ``days`` (from SQLDATE and DATEADDED only), whether it belongs to
    the axis, and the counts ``events_in``, ``too_old`` (the lag rule) and ``outside_days``.
    """
    diag: dict[str, int] = {"events_in": len(events)}
    sql = events["SQLDATE"].to_numpy().astype(np.int64)
    added = events["DATEADDED"].to_numpy().astype(np.int64)
    added_day = np.where(added >= 10**10, added // 1_000_000, added)
    first = int(days[0])
    if day_key == "sqldate":
        d = day_index(sql, first)
        lag = day_index(added_day, first) - d
        too_old = (added_day >= DAILY_ERA) & (lag > max_lag)
    else:
        d = day_index(added_day, first)
        too_old = np.zeros(len(events), bool)
    outside = ~too_old & ((d < 0) | (d >= len(days)))
    diag["too_old"], diag["outside_days"] = int(too_old.sum()), int(outside.sum())
    keep = ~too_old & ~outside
    # backfile rows (DATEADDED before the daily era is the 2013 bulk load day) keyed by
    # DATEADDED land on their load day instead of the day they happened (on the axis or not)
    diag["backfile_on_load_day"] = int(((added_day < DAILY_ERA) & (added_day != sql)).sum()) \
        if day_key == "dateadded" else 0
    return d, keep, diag


def select(events: pd.DataFrame, days: np.ndarray, day_key: str = "sqldate", max_lag: int = 30
           ) -> tuple[pd.DataFrame, dict[str, int]]:
    """The events that belong to the day axis ``days``, with their day index.

    The events that belong to the day axis ``days``, with their day index (column ``day``), and the
    counts of :func:`day_and_keep`.
    """
    d, keep, diag = day_and_keep(events, days, day_key, max_lag)
    cols = ["EventCode", "EventRootCode", "QuadClass", "GoldsteinScale", "Actor1Geo_CountryCode",
            "Actor2Geo_CountryCode", "ActionGeo_CountryCode", "Multi_Country_Flag"]
    ev = events.loc[keep, [c for c in cols if c in events.columns]].assign(day=d[keep])
    return ev, diag


def country_counts(ev: pd.DataFrame, country_by: str = "action") -> pd.Series:
    """Events per country (the ``country_by`` rule) of selected events."""
    _, cty = _memberships(ev, country_by)
    return pd.Series(cty, dtype=object).value_counts()


def country_day_counts(ev: pd.DataFrame, day: np.ndarray, country_by: str = "action") -> pd.Series:
    """Events per (country, day index) (the ``country_by`` rule): a Series on a MultiIndex."""
    pos, cty = _memberships(ev, country_by)
    return pd.DataFrame({"country": cty, "day": day[pos]}).value_counts(["country", "day"])


def seen_countries(counts: pd.Series, min_country_events: int = 1) -> list[str]:
    """The countries with at least ``min_country_events`` events, sorted."""
    return sorted(counts[counts >= min_country_events].index)


def concat(parts: list[Descriptors]) -> Descriptors:
    """Descriptors of consecutive day windows (same countries) joined along the day axis.

    Diagnostics summed (``cells_with_events`` and the rest are additive over disjoint days).
    """
    first = parts[0]
    joined = {name: np.concatenate([getattr(p, name) for p in parts], axis=0 if name == "days" else 1)
              for name in first.arrays() if name != "countries"}
    diag: dict[str, int] = {}
    for p in parts:
        for key, value in p.diagnostics.items():
            diag[key] = diag.get(key, 0) + value
    return Descriptors(first.countries, **joined, diagnostics=diag)


def compute(events: pd.DataFrame, vocab: Vocabulary, *, days: np.ndarray, observed_days: np.ndarray,
            countries: list[str] | None = None, k: int = 8, day_key: str = "sqldate", max_lag: int = 30,
            kmeans_iters: int = 10, min_country_events: int = 1, chunk: int = 512,
            device: str = "cpu", country_by: str = "action", progress=None) -> Descriptors:
    """Descriptors of ``events`` (columns of the clean table) on the day axis ``days``."""
    if "ActionGeo_CountryCode" not in events.columns:
        events = events.assign(ActionGeo_CountryCode=pd.Series([None] * len(events), index=events.index,
                                                                dtype=object))
    ev, diag = select(events, days, day_key, max_lag)
    first = int(days[0])
    if countries is None:
        countries = seen_countries(country_counts(ev, country_by), min_country_events)
    cs = np.array(sorted(countries), dtype="<U3")
    C, D = len(cs), len(days)
    rows = _membership(ev, cs, country_by)
    diag["memberships"] = len(rows)
    ci = pd.Categorical(rows["country"], categories=cs).codes.astype(np.int64)
    di = rows["day"].to_numpy().astype(np.int64)
    cell = ci * D + di
    root = rows["EventRootCode"].astype(int).to_numpy() - 1
    quad = rows["QuadClass"].to_numpy().astype(np.int64) - 1
    counts = np.bincount(cell * 80 + root * 4 + quad, minlength=C * D * 80).reshape(C, D, 20, 4).astype(np.int32)
    total = counts.sum((2, 3))
    g = rows["GoldsteinScale"].to_numpy().astype(np.float64)
    n = total.ravel().astype(np.float64)
    s1 = np.bincount(cell, g, minlength=C * D).astype(np.float64)      # (float even with no event)
    s2 = np.bincount(cell, g * g, minlength=C * D).astype(np.float64)
    mean = np.divide(s1, n, out=np.zeros_like(s1), where=n > 0)
    var = np.divide(s2 - n * mean * mean, n - 1, out=np.zeros_like(s1), where=n > 1)
    multi = np.bincount(cell, (rows["Multi_Country_Flag"].to_numpy(dtype=float, na_value=0) == 1).astype(float),
                        minlength=C * D).astype(np.float64)
    multi_frac = np.divide(multi, n, out=np.zeros_like(multi), where=n > 0)

    partners, partner_counts = top_partners(rows, cell, C * D)     # [C * D, N_PARTNERS]

    # distinct events per cell, embedded and compressed to k points
    a1 = rows["Actor1Geo_CountryCode"].fillna("")
    a2 = rows["Actor2Geo_CountryCode"].fillna("")
    kinds = pd.DataFrame({"cell": cell, "code": rows["EventCode"].to_numpy(), "a1": a1.to_numpy(),
                          "a2": a2.to_numpy()})
    distinct = kinds.groupby(["cell", "code", "a1", "a2"], observed=True).size().rename("m").reset_index()
    triples = distinct[["code", "a1", "a2"]].drop_duplicates().reset_index(drop=True)
    tvec = vocab.event_vectors(triples["code"].tolist(), triples["a1"].tolist(), triples["a2"].tolist())
    tid = pd.MultiIndex.from_frame(triples).get_indexer(pd.MultiIndex.from_frame(distinct[["code", "a1", "a2"]]))
    E = vocab.dim
    points = np.zeros((C * D, k, E), np.float16)
    weights = np.zeros((C * D, k), np.float32)
    cells = distinct["cell"].to_numpy()
    starts = np.searchsorted(cells, np.arange(C * D + 1))
    sizes = np.diff(starts)
    active = np.flatnonzero(sizes)
    order = active[np.argsort(sizes[active], kind="stable")]
    mvals = distinct["m"].to_numpy().astype(np.float64)
    pos = np.arange(len(distinct)) - starts[cells]
    tv = torch.from_numpy(tvec)
    done = 0
    for b in range(0, len(order), chunk):
        batch = order[b:b + chunk]
        nmax = int(sizes[batch].max())
        rows_b = np.concatenate([np.arange(starts[c], starts[c + 1]) for c in batch])
        local = np.repeat(np.arange(len(batch)), sizes[batch])
        X = torch.zeros((len(batch), nmax, E), dtype=torch.float32)
        W = torch.zeros((len(batch), nmax), dtype=torch.float32)
        X[local, pos[rows_b]] = tv[tid[rows_b]]
        W[local, pos[rows_b]] = torch.from_numpy(mvals[rows_b]).float()
        kk = min(k, nmax)
        centres, mass = spherical_kmeans(X.to(device), W.to(device), kk, kmeans_iters)
        centres, mass = centres.cpu(), mass.cpu()
        mass = mass / mass.sum(1, keepdim=True)
        srt = torch.argsort(-mass, dim=1, stable=True)
        centres = torch.gather(centres, 1, srt[..., None].expand_as(centres))
        mass = torch.gather(mass, 1, srt)
        points[batch, :kk] = centres.numpy().astype(np.float16)
        weights[batch, :kk] = mass.numpy()
        done += len(batch)
        if progress is not None:
            progress(done, len(order))
    code_vecs = torch.from_numpy(vocab.code_vectors)
    codes_arr = np.array(vocab.codes, dtype="<U4")
    nearest = np.full((C * D, k), "", dtype="<U4")
    for b in range(0, len(active), 8192):       # cells with events only
        rows_b = active[b:b + 8192]
        sims = torch.einsum("nke,pe->nkp", torch.from_numpy(points[rows_b].astype(np.float32)), code_vecs)
        nearest[rows_b] = np.where(weights[rows_b] > 0, codes_arr[sims.argmax(2).numpy()], "")
    obs_idx = day_index(np.asarray(observed_days), first)
    obs_day = np.zeros(D, bool)
    obs_day[obs_idx[(obs_idx >= 0) & (obs_idx < D)]] = True
    diag["cells_with_events"] = int((total > 0).sum())
    diag["distinct_events"] = len(distinct)
    std = np.sqrt(np.maximum(var, 0)).reshape(C, D).astype(np.float32)
    return Descriptors(cs, np.asarray(days, np.int32), counts, total.astype(np.int32),
                       mean.reshape(C, D).astype(np.float32), std,
                       multi_frac.reshape(C, D).astype(np.float32), np.broadcast_to(obs_day, (C, D)).copy(),
                       points.reshape(C, D, k, E), weights.reshape(C, D, k), partners.reshape(C, D, N_PARTNERS),
                       partner_counts.reshape(C, D, N_PARTNERS), nearest.reshape(C, D, k).astype("<U4"), diag)


def standard_events(vocab: Vocabulary) -> dict[str, np.ndarray]:
    """The basis of standard events (``standard_events.npz`` of the dataset contract)."""
    return {"codes": np.array(vocab.codes, dtype="<U4"), "phrases": np.array(vocab.phrases),
            "vectors": vocab.code_vectors.astype(np.float32),
            "country_codes": np.array(vocab.country_codes, dtype="<U3"),
            "country_names": np.array(vocab.country_names),
            "country_vectors": vocab.country_vectors.astype(np.float32)}


def vocabulary(embedder, cache=None) -> Vocabulary:
    """The embedded CAMEO phrases and country names of the lookups, through ``embedder``."""
    cam, cty = schema.cameo(), schema.countries()
    return Vocabulary(embedder, list(cam.codes), [cam.description[c] for c in cam.codes],
                      list(cty.codes), [cty.label(c) for c in cty.codes], cache)
