"""Synthetic GDELT 1.0 daily files from a documented hidden Markov model, with the exact oracle.

Synthetic GDELT 1.0 daily files driven by a documented hidden Markov model, with the exact
forward-filter predictive distribution (the "oracle") of every country and day.

The model
---------
A panel of ``C`` countries (FIPS codes) over ``D`` consecutive days.  Each country ``c`` has a
latent regime ``z[c, d]`` in {0 calm, 1 tension, 2 conflict} and each (country, day) a latent
shock ``s[c, d] ~ Bernoulli(shock_prob)``, independent of everything else.

* **Markov switching with contagion.**  ``z[c, 0] ~ init``; for ``d >= 1``
  ``z[c, d] | z[c, d-1] = i  ~  A(x[c, d-1])[i]`` where ``x[c, d-1]`` is the mean over the
  neighbours of ``c`` (a fixed graph) of their *observed* share of material-conflict events
  (QuadClass 4) on day ``d-1``, and ``A(x)`` is the base transition matrix with
  ``contagion * max(x - x_calm, 0)`` (``x_calm`` the QuadClass-4 share of the calm mix)
  moved from the diagonal to the next-worse regime (calm -> tension, tension -> conflict).
  Contagion acts through observed events, so given all events before day ``d`` the
  countries' filters decouple and the predictive law is exact and cheap.
* **Volume with weekly seasonality.**  ``N[c, d] ~ Poisson(mu)``, ``mu = base[c] *
  weekly[weekday(d)] * volume[z] * (shock_volume if s else 1)``.
* **Event mix.**  Each of the ``N`` events draws its root code from ``pi[z]`` (or
  ``(1 - shock_weight) pi[z] + shock_weight pi_shock`` on a shock day, ``pi_shock`` on roots
  18-20); the QuadClass follows the root (01-05: 1, 06-08: 2, 09-13: 3, 14-20: 4); the full
  code within the root, the Goldstein score (CAMEO table), the actors' geo countries, the
  publication lag and all other columns are drawn independently of the regime, so the
  per-day root counts are sufficient statistics of the latent path.

The oracle
----------
:func:`forward_filter` runs the exact forward recursion per country on the root counts:
``alpha[c, d] = P(z[c, d] | events before d)``, and writes

* ``root_probs[c, d, r] = sum_{z,s} w P(N>0|z,s) p_{z,s}(r) / sum_{z,s} w P(N>0|z,s)`` with
  ``w = alpha[c, d, z] P(s)``: the predictive probability that an event of day ``d`` has
  root ``r`` -- the minimiser of the expected per-event log loss on days with events;
* ``quad_probs``: the same summed over the roots of each QuadClass;
* ``total_mean[c, d] = sum_{z,s} w mu_{z,s}``.

The files
---------
Events of day ``d`` belong to country ``c`` (``Actor1Geo_CountryCode = c`` in 90 %, else
empty with ``Actor2Geo_CountryCode = c``; the actor-2 country is empty in 30 %, ``c`` itself
in 45 % and a partner country *outside the panel* in 25 % of the rest), so each event counts
for exactly one panel country.  5 % are published 1-3 days late (rows whose SQLDATE is
before the file's day), never after the last day.  Outside the model, each file also holds
noise rows with both geo countries empty (3 %), "anniversary" rows dated exactly one year
before the file (0.3 %, older than the build's default ``max_lag``) and marker rows
(``---`` / ``X``, 0.05 %).  Rows published between 2019-12-31 and 2020-01-05 about 2020 get
the real archive's 1920 date bug.  Files are genuine 1.0 daily exports: 58 tab-separated
columns, no quoting, ``YYYYMMDD.export.CSV.zip`` holding ``YYYYMMDD.export.CSV``.
"""

from __future__ import annotations

import datetime as dt
import functools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wgf_cli.gdelt import schema

REGIMES = ("calm", "tension", "conflict")
#: high-volume countries first (FIPS); the panel is the first ``C``, partners the next ones
PRIORITY = ["US", "UK", "RS", "CH", "IN", "FR", "GM", "IS", "IR", "SY", "IZ", "AF", "PK", "TU", "JA",
            "KS", "KN", "UP", "EG", "SA", "NI", "SF", "CA", "AS", "BR", "MX", "IT", "SP", "PL", "LY",
            "YM", "SO", "SU", "ET", "KE", "VM", "RP", "ID", "TH", "BM", "BG", "NP", "CE", "MY", "SN",
            "LE", "JO", "QA", "AE", "MU", "GR", "NL", "BE", "SW", "NO", "DA", "FI", "EZ", "HU", "RO"]
_ROOT_QUAD = np.array([schema.ROOT_QUAD[r] for r in schema.ROOTS]) - 1  # root index -> quad index

# root-code mixes of the regimes (01..20); calm matches the real QuadClass mix
# (about 60 % / 10 % / 17 % / 13 %) with 04 the largest root
_PI = np.array([
    [14, 9, 12, 22, 7, 3, 3, 3, 4, 2, 4, 4, 2, 1.5, 0.5, 1, 2.5, 2, 3, 0.5],
    [11, 7, 9, 17, 5, 2, 2, 2, 5, 4, 7, 6, 4, 4, 1, 2, 4, 3, 5, 1],
    [7, 4, 6, 11, 3, 1.5, 2, 1.5, 4, 3, 6, 5, 4, 5, 2, 3, 7, 6, 15, 4],
], float)
_PI /= _PI.sum(1, keepdims=True)
_PI_SHOCK = np.zeros(20)
_PI_SHOCK[[17, 18, 19]] = [0.3, 0.5, 0.2]


@dataclass
class SyntheticConfig:
    """Parameters of the synthetic panel and of its hidden Markov model."""
    countries: int = 40
    days: int = 330
    start: str = "2019-06-01"
    events_per_day: float = 1500.0        # mean HMM events per day over the whole panel (calm)
    transition: list[list[float]] = field(default_factory=lambda: [[0.97, 0.027, 0.003],
                                                                   [0.10, 0.86, 0.04],
                                                                   [0.03, 0.10, 0.87]])
    init: list[float] = field(default_factory=lambda: [0.7, 0.2, 0.1])
    contagion: float = 0.3
    volume: list[float] = field(default_factory=lambda: [1.0, 1.3, 1.8])
    weekly: list[float] = field(default_factory=lambda: [1.05, 1.1, 1.1, 1.05, 1.0, 0.8, 0.75])  # Mon..Sun
    shock_prob: float = 0.01
    shock_volume: float = 2.5
    shock_weight: float = 0.5
    partners: int = 15
    late_fraction: float = 0.05
    noise_fraction: float = 0.03
    anniversary_fraction: float = 0.003
    marker_fraction: float = 0.0005
    seed: int = 0


@dataclass
class Model:
    """The HMM's parameters, fixed by a :class:`SyntheticConfig`."""

    countries: list[str]
    partners: list[str]
    days: np.ndarray              # int32 YYYYMMDD [D]
    weekday: np.ndarray           # [D] 0 = Monday
    base: np.ndarray              # [C] calm events/day before seasonality
    weekly: np.ndarray            # [7]
    transition: np.ndarray        # [3, 3]
    init: np.ndarray              # [3]
    contagion: float
    volume: np.ndarray            # [3]
    pi: np.ndarray                # [3, 20]
    pi_shock: np.ndarray          # [20]
    shock_prob: float
    shock_volume: float
    shock_weight: float
    neighbours: np.ndarray        # [C, C] 0/1 symmetric, no self loops

    def transition_at(self, x: np.ndarray) -> np.ndarray:
        """A(x): [C, 3, 3] transition matrices for neighbour conflict shares ``x`` [C].

        The base matrix with ``contagion * max(x - calm_share, 0)`` moved one regime up.
        """
        a = np.broadcast_to(self.transition, (len(x), 3, 3)).copy()
        excess = np.maximum(x - self.calm_share, 0.0)
        for i in (0, 1):
            move = np.minimum(self.contagion * excess, a[:, i, i] - 1e-6)
            a[:, i, i] -= move
            a[:, i, i + 1] += move
        return a

    @property
    def calm_share(self) -> float:
        """The QuadClass-4 share of the calm mix (contagion acts on the excess over it)."""
        return float(self.pi[0][_ROOT_QUAD == 3].sum())

    def mixes(self) -> np.ndarray:
        """[3, 2, 20] root distribution per (regime, shock)."""
        shocked = (1 - self.shock_weight) * self.pi + self.shock_weight * self.pi_shock
        return np.stack([self.pi, shocked], axis=1)

    def rates(self, d: int) -> np.ndarray:
        """[C, 3, 2] Poisson means per (country, regime, shock) on day index ``d``."""
        s = np.array([1.0, self.shock_volume])
        return (self.base[:, None, None] * self.weekly[self.weekday[d]]
                * self.volume[None, :, None] * s[None, None, :])

    def neighbour_share(self, counts_quad4: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """x[c] = mean over neighbours of their QuadClass-4 share of the day (0 with no events)."""
        share = np.divide(counts_quad4, totals, out=np.zeros(len(totals)), where=totals > 0)
        deg = self.neighbours.sum(1)
        return np.divide(self.neighbours @ share, deg, out=np.zeros(len(deg)), where=deg > 0)


def build_model(cfg: SyntheticConfig) -> Model:
    """The hidden Markov model of a synthetic panel, from ``cfg``."""
    names = schema.countries()
    order = PRIORITY + [c for c in names.codes if c not in PRIORITY]
    if cfg.countries + cfg.partners > len(order):
        raise ValueError(f"at most {len(order) - cfg.partners} countries")
    panel = order[: cfg.countries]
    partners = order[cfg.countries: cfg.countries + cfg.partners]
    start = dt.date.fromisoformat(cfg.start)
    dates = [start + dt.timedelta(days=i) for i in range(cfg.days)]
    rank = np.arange(cfg.countries)
    share = 1.0 / (rank + 4.0)
    base = cfg.events_per_day * share / share.sum()
    idx = {c: i for i, c in enumerate(panel)}
    nb = np.zeros((cfg.countries, cfg.countries), np.int8)
    for i, c in enumerate(panel):  # real land borders within the panel, plus a ring
        for other in names.neighbours.get(c, ()):
            if other in idx:
                nb[i, idx[other]] = nb[idx[other], i] = 1
        if cfg.countries > 1:
            j = (i + 1) % cfg.countries
            if j != i:
                nb[i, j] = nb[j, i] = 1
    np.fill_diagonal(nb, 0)
    return Model(panel, partners, np.array([int(d.strftime("%Y%m%d")) for d in dates], np.int32),
                 np.array([d.weekday() for d in dates]), base, np.asarray(cfg.weekly, float),
                 np.asarray(cfg.transition, float), np.asarray(cfg.init, float), cfg.contagion,
                 np.asarray(cfg.volume, float), _PI.copy(), _PI_SHOCK.copy(), cfg.shock_prob,
                 cfg.shock_volume, cfg.shock_weight, nb)


@dataclass
class Truth:
    """The simulated latent path and the per (country, day) root counts of the HMM events."""

    regimes: np.ndarray    # int8 [C, D]
    shocks: np.ndarray     # bool [C, D]
    roots: np.ndarray      # int32 [C, D, 20]

    @property
    def counts(self) -> np.ndarray:
        """int32 [C, D, 20, 4]: root x QuadClass counts (QuadClass follows the root)."""
        out = np.zeros(self.roots.shape + (4,), np.int32)
        for r in range(20):
            out[:, :, r, _ROOT_QUAD[r]] = self.roots[:, :, r]
        return out


def simulate(model: Model, rng: np.random.Generator) -> Truth:
    """Draw the latent path and the daily root counts, day by day (vectorised over countries)."""
    C, D = len(model.countries), len(model.days)
    z = np.zeros((C, D), np.int8)
    s = rng.random((C, D)) < model.shock_prob
    roots = np.zeros((C, D, 20), np.int32)
    mixes = model.mixes()
    x = np.zeros(C)
    for d in range(D):
        if d == 0:
            z[:, 0] = (rng.random(C)[:, None] > np.cumsum(model.init)[None, :]).sum(1)
        else:
            a = model.transition_at(x)[np.arange(C), z[:, d - 1]]
            z[:, d] = np.minimum((rng.random(C)[:, None] > np.cumsum(a, 1)).sum(1), 2)
        mu = model.rates(d)[np.arange(C), z[:, d], s[:, d].astype(int)]
        total = rng.poisson(mu)
        p = mixes[z[:, d], s[:, d].astype(int)]
        roots[:, d] = rng.multinomial(total, p)
        q4 = roots[:, d, _ROOT_QUAD == 3].sum(1)
        x = model.neighbour_share(q4, total)
    return Truth(z, s, roots)


@dataclass
class Oracle:
    """The exact forward-filter predictive distribution of every country and day."""
    root_probs: np.ndarray   # float64 [C, D, 20]
    quad_probs: np.ndarray   # float64 [C, D, 4]
    total_mean: np.ndarray   # float64 [C, D]
    regime_probs: np.ndarray  # float64 [C, D, 3] predictive P(z[c, d] | events before d)


def forward_filter(model: Model, roots: np.ndarray) -> Oracle:
    """Exact predictive distributions from the forward recursion on observed root counts."""
    from scipy.special import gammaln, logsumexp

    C, D, _ = roots.shape
    mixes = model.mixes()                         # [3, 2, 20]
    log_mix = np.log(mixes)
    p_s = np.array([1 - model.shock_prob, model.shock_prob])
    root_probs = np.zeros((C, D, 20))
    total_mean = np.zeros((C, D))
    regime = np.zeros((C, D, 3))
    alpha = np.broadcast_to(model.init, (C, 3)).copy()
    for d in range(D):
        regime[:, d] = alpha
        mu = model.rates(d)                       # [C, 3, 2]
        w = alpha[:, :, None] * p_s[None, None, :]  # [C, 3, 2]
        nz = w * (1 - np.exp(-mu))
        root_probs[:, d] = np.einsum("czs,zsr->cr", nz, mixes) / nz.sum((1, 2))[:, None]
        total_mean[:, d] = (w * mu).sum((1, 2))
        n = roots[:, d].astype(float)             # [C, 20]
        total = n.sum(1)
        loglik = (total[:, None, None] * np.log(mu) - mu - gammaln(total + 1)[:, None, None]
                  + np.einsum("cr,zsr->czs", n, log_mix))
        post = logsumexp(loglik + np.log(p_s)[None, None, :], axis=2) + np.log(np.maximum(alpha, 1e-300))
        post = np.exp(post - post.max(1, keepdims=True))
        post /= post.sum(1, keepdims=True)
        x = model.neighbour_share(roots[:, d, _ROOT_QUAD == 3].sum(1), total)
        alpha = np.einsum("ci,cij->cj", post, model.transition_at(x))
    quad = np.zeros((C, D, 4))
    for r in range(20):
        quad[:, :, _ROOT_QUAD[r]] += root_probs[:, :, r]
    return Oracle(root_probs, quad, total_mean, regime)


# -- writing the files -------------------------------------------------------------
def _code_table() -> tuple[list[list[str]], list[np.ndarray]]:
    """Per root: its event codes and their probabilities.

    Four-digit codes take 9 % of the roots that have them (about half of all events), so about 4 % of
    all codes.
    """
    cam = schema.cameo()
    codes, probs = [], []
    for root in schema.ROOTS:
        three = [c for c in cam.codes if len(c) == 3 and c.startswith(root)]
        four = [c for c in cam.codes if len(c) == 4 and c.startswith(root)]
        w3 = np.array([3.0 if c.endswith("0") else 1.0 for c in three])
        w3 = w3 / w3.sum() * (0.91 if four else 1.0)
        w4 = np.full(len(four), 0.09 / len(four)) if four else np.zeros(0)
        codes.append(three + four)
        probs.append(np.concatenate([w3, w4]))
    return codes, probs


@functools.cache
def _fraction_date(date: int) -> str:
    d = dt.date(date // 10000, (date // 100) % 100, date % 100)
    return f"{d.year + d.timetuple().tm_yday / 365:.4f}"


def _geo_fields(code: str, lat: float, lon: float) -> list[str]:
    if not code:
        return ["0", "", "", "", "", "", ""]
    return ["1", schema.countries().label(code), code, code, f"{lat:.4f}", f"{lon:.4f}", code]


def _actor_fields(code: str) -> list[str]:
    if not code:
        return [""] * 10
    iso3 = schema.countries().iso3.get(code, "")
    return [iso3, schema.countries().label(code).upper(), iso3] + [""] * 7


@dataclass
class GeneratedFile:
    """A written daily file and its number of rows."""
    path: Path
    rows: int


def write_files(model: Model, truth: Truth, cfg: SyntheticConfig, out_dir: str | Path,
                rng: np.random.Generator, progress=None) -> list[GeneratedFile]:
    """Write one ``YYYYMMDD.export.CSV.zip`` per day of the panel (see the module doc)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    C, D = len(model.countries), len(model.days)
    codes, probs = _code_table()
    gold_s = {c: f"{g:.1f}" for c, g in schema.cameo().goldstein.items()}
    quad_of = schema.ROOT_QUAD
    places = {c: (rng.uniform(-50, 60), rng.uniform(-120, 140)) for c in model.countries + model.partners}
    pref = rng.dirichlet(np.full(len(model.partners), 0.5), size=C) if model.partners else None
    actor_cache: dict[tuple[str, str], str] = {}

    def middle(a1: str, a2: str) -> str:
        key = (a1, a2)
        if key not in actor_cache:
            actor_cache[key] = "\t".join(_actor_fields(a1) + _actor_fields(a2))
        return actor_cache[key]

    geo_cache: dict[tuple[str, str], str] = {}

    def geos(a1: str, a2: str) -> str:
        key = (a1, a2)
        if key not in geo_cache:
            g1 = _geo_fields(a1, *places.get(a1, (0, 0)))
            g2 = _geo_fields(a2, *places.get(a2, (0, 0)))
            geo_cache[key] = "\t".join(g1 + g2 + (g1 if a1 else g2))
        return geo_cache[key]

    # every HMM event at once: country, SQLDATE day, root, code, actors, publication lag
    c_idx, d_idx, r_idx = np.nonzero(truth.roots)
    k = truth.roots[c_idx, d_idx, r_idx]
    c_ev, d_ev, r_ev = np.repeat(c_idx, k), np.repeat(d_idx, k), np.repeat(r_idx, k)
    E = len(c_ev)
    code_ev = np.empty(E, object)
    for r in range(20):
        sel = np.flatnonzero(r_ev == r)
        code_ev[sel] = np.asarray(codes[r], object)[rng.choice(len(codes[r]), size=len(sel), p=probs[r])]
    u = rng.random((E, 4))
    lag = np.where(u[:, 0] < cfg.late_fraction, 1 + rng.integers(0, 3, E), 0)
    pub = d_ev + np.minimum(lag, D - 1 - d_ev)
    panel = np.asarray(model.countries, object)
    a1 = np.where(u[:, 1] < 0.1, "", panel[c_ev]).astype(object)
    a2 = np.where(u[:, 1] < 0.1, panel[c_ev], np.where(u[:, 2] < 0.30, "", panel[c_ev])).astype(object)
    if pref is not None:
        foreign = (u[:, 1] >= 0.1) & (u[:, 2] >= 0.75)
        cum = np.cumsum(pref, 1)
        pick = np.minimum((u[:, 3][:, None] > cum[c_ev]).sum(1), len(model.partners) - 1)
        a2[foreign] = np.asarray(model.partners, object)[pick[foreign]]
    sql_ev = model.days[d_ev]
    order = np.argsort(pub, kind="stable")
    bounds = np.searchsorted(pub[order], np.arange(D + 1))
    calm_codes = [(r, c) for r in range(20) for c in codes[r]]
    calm_p = np.concatenate([model.pi[0][r] * probs[r] for r in range(20)])
    files = []
    event_id = 800_000_000
    for f in range(D):
        day = int(model.days[f])
        sel = order[bounds[f]: bounds[f + 1]]
        rows = list(zip(sql_ev[sel].tolist(), a1[sel].tolist(), a2[sel].tolist(), code_ev[sel].tolist(),
                        strict=True))
        n = len(rows)
        year_ago = int((dt.date(day // 10000, (day // 100) % 100, day % 100)
                        - dt.timedelta(days=365)).strftime("%Y%m%d"))
        n_noise, n_anniv, n_mark = (int(x) for x in rng.poisson(
            np.array([cfg.noise_fraction, cfg.anniversary_fraction, cfg.marker_fraction]) * n))
        extra = rng.choice(len(calm_codes), size=n_noise + n_anniv, p=calm_p)
        who = rng.integers(0, C, n_anniv)
        rows += [(day, "", "", calm_codes[j][1]) for j in extra[:n_noise]]
        rows += [(year_ago, model.countries[w], "", calm_codes[j][1]) for j, w in zip(extra[n_noise:], who,
                                                                                      strict=True)]
        rows += [(day, "", "", "MARK")] * n_mark
        perm = rng.permutation(len(rows))
        m = len(rows)
        isroot = (rng.random(m) < 0.6).astype(int).tolist()
        ment = rng.integers(1, 11, (m, 2)).tolist()
        tone = rng.normal(-1.5, 3.0, m).tolist()
        xmark = (rng.random(m) < 0.5).tolist()
        lines = []
        bug = 20191231 <= day <= 20200105
        for j, i in enumerate(perm):
            sql, g1, g2, code = rows[i]
            sql_w, frac = sql, _fraction_date(sql)
            if bug and sql // 10000 == 2020:  # GDELT's 1920 bug
                sql_w, frac = sql - 1_000_000, f"{float(frac) - 100:.4f}"
            if code == "MARK":
                ev = "1\tX\tX\tX\tX\t" if xmark[j] else "1\t---\t---\t--\t1\t"
            else:
                ev = f"{isroot[j]}\t{code}\t{code[:3]}\t{code[:2]}\t{quad_of[code[:2]]}\t{gold_s[code]}"
            event_id += 1
            lines.append(f"{event_id}\t{sql_w}\t{sql_w // 100}\t{sql_w // 10000}\t{frac}\t{middle(g1, g2)}\t"
                         f"{ev}\t{ment[j][0]}\t1\t{ment[j][1]}\t{tone[j]:.6f}\t{geos(g1, g2)}\t{day}\t"
                         f"https://news.example.org/{event_id}")
        name = f"{day}.export.CSV"
        path = out_dir / f"{name}.zip"
        tmp = path.with_name(f".{path.name}.tmp")
        info = zipfile.ZipInfo(name, date_time=(day // 10000, (day // 100) % 100, day % 100, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(info, ("\n".join(lines) + "\n").encode("utf-8"), compresslevel=1)
        tmp.replace(path)
        files.append(GeneratedFile(path, len(lines)))
        if progress is not None:
            progress(f + 1, D)
    return files


def generate(cfg: SyntheticConfig, out_dir: str | Path, progress=None
             ) -> tuple[Model, Truth, Oracle, list[GeneratedFile]]:
    """Build the model, simulate, filter and write the files (deterministic in ``cfg.seed``)."""
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    model = build_model(cfg)
    truth = simulate(model, rng)
    oracle = forward_filter(model, truth.roots)
    files = write_files(model, truth, cfg, out_dir, rng, progress)
    return model, truth, oracle, files
