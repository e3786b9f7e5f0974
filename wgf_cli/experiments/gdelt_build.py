"""`wgf gdelt-build`: raw GDELT event files -> clean events, daily descriptors, sequences.

Sources (``source=``): ``synthetic`` (default: writes genuine GDELT 1.0 daily files from a
documented HMM into ``<build>/raw`` and the exact forward-filter oracle), ``dir``
(``input=PATH``, a folder of GDELT files) and ``download`` (a date range, verified against
GDELT's md5sums / filesizes indexes).  The build folder is the run folder, or
``output_dir=``; its layout is the dataset contract that ``wgf gdelt-train`` reads
(``manifest.json`` "dataset", ``descriptors/``, ``sequences/``, ``oracle.npz``).

Logged per input (``metrics.jsonl``): ``rows_read, rows_kept, rows_repaired, rows_rejected,
wall_s``; summary keys in :data:`SUMMARY_KEYS`; plot ``plots/overview.png``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C
from wgf_cli.presets import Claim, Preset

log = logging.getLogger(__name__)

SOURCES = ["synthetic", "dir", "download"]
EMBEDDINGS = ["hash", "minilm"]

SUMMARY_KEYS = {
    "source": "synthetic | dir | download",
    "files": "inputs of the build", "files_built": "inputs read this run",
    "files_skipped_cached": "inputs skipped: already built (same md5 in the manifest)",
    "files_failed": "inputs reported and skipped (corrupt zip, unknown layout, ...)",
    "rows_read": "raw rows read this build (all inputs)", "rows_kept": "rows in the clean event table",
    "rows_repaired": "kept rows with >= 1 repair (whitespace, leading zeros, 1920 date)",
    "rows_rejected": "rows rejected (reasons in manifest.json and rejects/)",
    "rejects_marker_row": "marker rows (---, X) among the rejected",
    "countries": "countries of the descriptors", "days": "days of the descriptors' axis",
    "observed_days": "days with a published input",
    "sequences": "training sequences written", "sequences_train": "train sequences",
    "sequences_validation": "validation sequences", "sequences_test": "test sequences",
    "events_described": "(event, country) memberships in the descriptors",
    "events_too_old": "events published more than descriptors.max_lag days after their SQLDATE",
    "events_outside_days": "events dated outside the day axis",
    "first_day": "first day of the axis (YYYYMMDD)", "last_day": "last day of the axis (YYYYMMDD)",
    "rows_outside_window": "rows published outside the date window (descriptors.start/end or automatic)",
    "countries_left_out": "countries seen but left out of the panel (manifest.json panel.left_out)",
    "sequences_possible": "windows of the axis (countries x (days - context))",
    "sequences_valid": "windows with an observed target and no gap longer than sequences.max_gap",
    "sequences_masked": "valid windows holding >= 1 unobserved (masked) context day",
    "embedding": "embedding name", "embedding_dim": "its dimension",
    "synthetic_counts_match": "synthetic: descriptor counts equal the generator's counts exactly",
    "oracle_test_ll": "synthetic: per-event root-code log loss of the HMM forward filter on test targets",
    "climatology_test_ll": "the same for the train-period root frequencies of each country",
    "uniform_test_ll": "the same for a uniform distribution over the 20 roots (log 20)",
    "download_unlisted": "download: planned files absent from the index (known gaps)",
    "download_missing": "download: listed files the server lacks (known gaps)",
    "download_corrupt": "download: files failing size/md5 after every retry",
    "read_s": "seconds reading and cleaning the inputs", "wall_s": "seconds of the whole build",
    "rows_per_s": "rows_read / read_s (all workers)",
}

#: summary keys shown (first present) per job in the sweep table
HEADLINE = ["oracle_test_ll", "rows_kept"]

_TOY = ["source.countries=3", "source.days=70", "source.events_per_day=60", "sequences.count=40", "workers=1"]

#: ``conf/experiment/`` presets of ``wgf gdelt-build``
PRESETS = [
    Preset("gdelt_synthetic",
           "The default synthetic build: 40 countries x 330 days of GDELT 1.0 daily files from the HMM, "
           "10,000 sequences of 50 days (what `wgf gdelt-train` consumes).",
           ["rows_read", "rows_kept", "rows_rejected", "rows_repaired", "countries", "days", "sequences",
            "synthetic_counts_match", "oracle_test_ll", "climatology_test_ll", "wall_s"],
           [Claim("synthetic_counts_match", "==", True,
                  "generate -> build recovers the generator's per (country, day, root, QuadClass) counts exactly"),
            Claim("sequences", ">=", 10_000, "10,000 sequences of 50 consecutive observed days"),
            Claim("files_failed", "==", 0, "every synthetic file is read"),
            Claim("oracle_test_ll", "<", 2.9, "the HMM forward filter beats the uniform root code "
                                             "distribution (log 20 = 3.00) on the test targets")],
           toy=_TOY, full=["source.events_per_day=200000", "workers=16"]),
    Preset("gdelt_westafrica",
           "Real GDELT: the West Africa conflict export shipped in data/gdelt/ (BigQuery CSV, 19 yearly files, "
           "83,659 events 1979-1997, root codes 17-20), read from its .tar.xz; events attributed where the action "
           "took place; the 10 countries with >= 1,000 events; every 50-day window of 6,939 days.",
           ["rows_read", "rows_kept", "rows_rejected", "countries", "countries_left_out", "days", "observed_days",
            "events_described", "sequences", "sequences_train", "sequences_test", "wall_s"],
           [Claim("rows_kept", "==", 83_659, "every one of the export's 83,659 rows is a valid event (none rejected)"),
            Claim("files_failed", "==", 0, "the 19 yearly CSVs of the archive are read"),
            Claim("days", "==", 6_939, "the day axis is 1979-01-02 .. 1997-12-31"),
            Claim("observed_days", "==", 6_939, "an export observes every day of its range"),
            Claim("countries", "==", 10, "LY AG NI LI CD SL MO GH SG IV: >= 1,000 events each (ActionGeo)"),
            Claim("events_described", "==", 75_850,
                  "83,659 events minus the 7,809 of the 10 smaller countries (CM NG TO GV ML MR GA BN UV PU)"),
            Claim("sequences", "==", 68_890, "every window: 10 countries x (6,939 - 50) target days")],
           toy=["descriptors.start=1990-01-01", "descriptors.end=1990-04-30", "sequences.context=20",
                "descriptors.min_country_events=50", "descriptors.kmeans_iters=2"]),
]


# -- validation -------------------------------------------------------------------------
#: the repository (or installed package's parent): a relative ``input`` not found from the
#: working directory is looked up here, so the shipped data builds from anywhere
ROOT = Path(__file__).resolve().parents[2]


def input_path(value) -> Path:
    p = Path(str(value)).expanduser()
    if not p.is_absolute() and not p.exists() and (ROOT / p).exists():
        return ROOT / p
    return p


def _yyyymmdd(value) -> int | None:
    return None if value is None else int(dt.date.fromisoformat(str(value)).strftime("%Y%m%d"))


def _date(cfg: DictConfig, key: str) -> dt.date:
    value = C.get(cfg, key)
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{key} must be a date YYYY-MM-DD, got {value!r}") from None


def _list(cfg: DictConfig, key: str, kind, length: int | None = None, allow_none: bool = False) -> list | None:
    value = C.get(cfg, key)
    if value is None and allow_none:
        return None
    if not isinstance(value, ListConfig | list) or (length is not None and len(value) != length) \
            or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        what = f"a list of {length} " if length else "a list of "
        raise ConfigError(f"{key} must be {what}{getattr(kind, '__name__', 'values')}, got "
                          f"{OmegaConf.to_container(value) if isinstance(value, ListConfig) else value!r}")
    return list(value)


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.integer(cfg, "threads", minimum=0)
    C.boolean(cfg, "force")
    C.boolean(cfg, "strict")
    workers = C.integer(cfg, "workers", minimum=1, maximum=256)
    del workers
    engine = C.choice(cfg, "engine", ["local", "dask"])
    if engine == "dask":
        if importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None:
            raise ConfigError("engine=dask needs the dask and distributed packages, which are not installed; "
                              "use engine=local (parallel local processes, workers=N)")
        addr = C.get(cfg, "cluster.address")
        if addr is not None and not str(addr).startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            raise ConfigError(f"cluster.address must be tcp://HOST:PORT (or null: a local cluster), got {addr!r}")
    out = C.get(cfg, "output_dir")
    if out is not None and not isinstance(out, str):
        raise ConfigError(f"output_dir must be a folder path or null, got {out!r}")

    src = C.choice(cfg, "source.name", SOURCES)
    if src == "synthetic":
        C.integer(cfg, "source.countries", minimum=1, maximum=200)
        C.integer(cfg, "source.days", minimum=2)
        _date(cfg, "source.start")
        C.number(cfg, "source.events_per_day", positive=True)
        C.number(cfg, "source.contagion", minimum=0.0)
        for key in ("source.shock_prob", "source.shock_weight", "source.late_fraction", "source.noise_fraction",
                    "source.anniversary_fraction", "source.marker_fraction"):
            C.number(cfg, key, minimum=0.0, maximum=1.0)
        C.number(cfg, "source.shock_volume", positive=True)
        C.integer(cfg, "source.partners", minimum=0, maximum=60)
        trans = C.get(cfg, "source.transition")
        rows = OmegaConf.to_container(trans) if isinstance(trans, ListConfig) else trans
        arr = np.asarray(rows, dtype=float) if isinstance(rows, list) else None
        if arr is None or arr.shape != (3, 3) or (arr < 0).any() or not np.allclose(arr.sum(1), 1, atol=1e-6):
            raise ConfigError(f"source.transition must be a 3x3 row-stochastic matrix, got {rows!r}")
        init = _list(cfg, "source.init", float, 3)
        if min(init) < 0 or abs(sum(init) - 1) > 1e-6:
            raise ConfigError(f"source.init must be 3 probabilities summing to 1, got {init}")
        vol = _list(cfg, "source.volume", float, 3)
        if min(vol) <= 0:
            raise ConfigError(f"source.volume must be 3 positive multipliers, got {vol}")
        weekly = _list(cfg, "source.weekly", float, 7)
        if min(weekly) <= 0:
            raise ConfigError(f"source.weekly must be 7 positive multipliers (Mon..Sun), got {weekly}")
    elif src == "dir":
        path = C.get(cfg, "input")
        if path is None:
            raise ConfigError("source=dir needs input=PATH (a folder of GDELT event files, a file, a .tar.xz)")
        folder = input_path(path)
        if not folder.exists():
            raise ConfigError(f"input: {folder} not found")
        from wgf_cli.gdelt.build import list_inputs, sniff

        inputs = list_inputs(folder)
        if not inputs:
            raise ConfigError(f"input: no GDELT event file (*.zip, *.CSV, *.tsv, *.txt, *.tar.xz, ...) in {folder}")
        if all(sniff(p) is None for p in inputs):
            raise ConfigError(f"input: none of the {len(inputs)} files in {folder} has a known GDELT layout "
                              f"(57, 58 or 61 tab-separated columns, or a header row with GLOBALEVENTID ...), "
                              f"e.g. {inputs[0].name}")
    else:
        start, end = _date(cfg, "source.start"), _date(cfg, "source.end")
        if end < start:
            raise ConfigError(f"source.end must be >= source.start, got {start} .. {end}")
        if start < dt.date(1979, 1, 1):
            raise ConfigError(f"source.start must be >= 1979-01-01 (GDELT's first day), got {start}")
        url = C.get(cfg, "source.url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"source.url must be an http(s) URL, got {url!r}")
        idx = C.get(cfg, "source.index_dir")
        if idx is not None and not Path(str(idx)).is_dir():
            raise ConfigError(f"source.index_dir: folder {idx} not found")
        C.integer(cfg, "source.parallel", minimum=1, maximum=64)
        C.integer(cfg, "source.retries", minimum=0, maximum=20)
        C.number(cfg, "source.timeout_s", positive=True)

    emb = C.choice(cfg, "embedding.name", EMBEDDINGS)
    C.integer(cfg, "embedding.dim", minimum=2, maximum=4096)
    if emb == "minilm":
        from wgf_cli.gdelt.embed import EmbeddingUnavailable, find_minilm

        try:
            find_minilm(C.get(cfg, "embedding.model_path"))
        except EmbeddingUnavailable as exc:
            raise ConfigError(f"embedding=minilm: {exc}") from None
        if all(importlib.util.find_spec(m) is None for m in ("sentence_transformers", "transformers")):
            raise ConfigError("embedding=minilm needs sentence-transformers or transformers installed; "
                              "use embedding=hash")

    C.choice(cfg, "descriptors.day_key", ["sqldate", "dateadded"])
    C.integer(cfg, "descriptors.max_lag", minimum=0)
    C.choice(cfg, "descriptors.country_by", ["action", "actor", "any"])
    start = _date(cfg, "descriptors.start") if C.get(cfg, "descriptors.start") is not None else None
    end = _date(cfg, "descriptors.end") if C.get(cfg, "descriptors.end") is not None else None
    if start is not None and end is not None and end < start:
        raise ConfigError(f"descriptors.end must be >= descriptors.start, got {start} .. {end}")
    C.integer(cfg, "descriptors.split_gap", minimum=1)
    C.number(cfg, "descriptors.tail_fraction", minimum=0.0, maximum=1.0)
    C.number(cfg, "descriptors.min_median_events", minimum=0.0)
    if C.get(cfg, "descriptors.top_countries") is not None:
        C.integer(cfg, "descriptors.top_countries", minimum=1)
    C.integer(cfg, "descriptors.k", minimum=3, maximum=10)
    C.integer(cfg, "descriptors.kmeans_iters", minimum=0, maximum=1000)
    C.integer(cfg, "descriptors.min_country_events", minimum=1)
    countries = _list(cfg, "descriptors.countries", str, allow_none=True)
    if countries is not None and not countries:
        raise ConfigError("descriptors.countries must be null or a non-empty list of FIPS codes")
    C.integer(cfg, "sequences.count", minimum=1)
    C.integer(cfg, "sequences.context", minimum=1)
    C.integer(cfg, "sequences.max_gap", minimum=0)
    frac = _list(cfg, "sequences.fractions", (int, float), 3)
    if min(frac) < 0 or sum(frac) <= 0:
        raise ConfigError(f"sequences.fractions must be 3 non-negative numbers (train, validation, test), got {frac}")
    if src == "synthetic" and C.get(cfg, "source.days") <= C.get(cfg, "sequences.context"):
        raise ConfigError(f"source.days must be > sequences.context ({C.get(cfg, 'sequences.context')}), "
                          f"got {C.get(cfg, 'source.days')}")


# -- the run -------------------------------------------------------------------------------
def _synthetic_config(cfg: DictConfig):
    from wgf_cli.gdelt.synthetic import SyntheticConfig

    s = OmegaConf.to_container(cfg.source, resolve=True)
    fields = SyntheticConfig.__dataclass_fields__
    return SyntheticConfig(**{k: v for k, v in s.items() if k in fields}, seed=int(cfg.seed))


def _prepare_synthetic(cfg: DictConfig, out: Path, say):
    """Generate the synthetic files (or reuse them: same config -> same bytes) and the oracle."""
    from wgf_cli.gdelt import synthetic as S

    scfg = _synthetic_config(cfg)
    key = hashlib.md5(json.dumps(scfg.__dict__, sort_keys=True).encode()).hexdigest()
    truth_path = out / "synthetic" / "truth.npz"
    raw = out / "raw"
    model = S.build_model(scfg)
    names = [f"{d}.export.CSV.zip" for d in model.days]
    if truth_path.exists() and all((raw / n).exists() for n in names):
        with np.load(truth_path) as z:
            if str(z["config_md5"]) == key:
                truth = S.Truth(z["regimes"], z["shocks"], z["roots"])
                say(f"synthetic: reusing {len(names)} files in {raw}")
                return model, truth, S.forward_filter(model, truth.roots), [raw / n for n in names]
    say(f"synthetic: writing {len(names)} daily files to {raw}")
    model, truth, oracle, files = S.generate(scfg, raw)
    from wgf_cli.gdelt.build import atomic_npz

    atomic_npz(truth_path, regimes=truth.regimes, shocks=truth.shocks, roots=truth.roots,
               countries=np.array(model.countries), days=model.days, config_md5=np.array(key))
    return model, truth, oracle, [f.path for f in files]


def run(cfg: DictConfig, run) -> dict[str, Any]:
    import torch

    from wgf_cli.gdelt import build as B
    from wgf_cli.gdelt import descriptors as Dm
    from wgf_cli.gdelt import embed

    if int(cfg.threads) > 0:
        torch.set_num_threads(int(cfg.threads))
    device = C.resolve_device(cfg)
    out = Path(cfg.output_dir).expanduser().resolve() if cfg.output_dir else run.dir
    out.mkdir(parents=True, exist_ok=True)
    say = log.info
    src = cfg.source.name
    extra: dict[str, Any] = {"source": src}
    countries = list(cfg.descriptors.countries) if cfg.descriptors.countries is not None else None
    oracle = truth = model = None
    summary_extra: dict[str, Any] = {"source": src}
    if src == "synthetic":
        model, truth, orc, inputs = _prepare_synthetic(cfg, out, say)
        order = np.argsort(model.countries)
        countries = [model.countries[i] for i in order]
        oracle = {"root_probs": orc.root_probs[order], "quad_probs": orc.quad_probs[order],
                  "total_mean": orc.total_mean[order], "regime_probs": orc.regime_probs[order]}
        extra["synthetic"] = {"config": _synthetic_config(cfg).__dict__, "countries": model.countries,
                              "partners": model.partners, "regimes": list(("calm", "tension", "conflict"))}
    elif src == "dir":
        inputs = B.list_inputs(input_path(cfg.input))
    else:
        from wgf_cli.gdelt import download as DL

        raw = out / "raw"
        with run.progress(1, "download") as bar:
            rep = DL.download(dt.date.fromisoformat(str(cfg.source.start)), dt.date.fromisoformat(str(cfg.source.end)),
                              raw, base_url=str(cfg.source.url), index_dir=cfg.source.index_dir,
                              workers=int(cfg.source.parallel), retries=int(cfg.source.retries),
                              timeout=float(cfg.source.timeout_s),
                              progress=lambda i, n: bar.advance(0, files=f"{i}/{n}"))
        extra["download"] = rep.as_dict()
        summary_extra.update(download_unlisted=len(rep.unlisted), download_missing=len(rep.missing),
                             download_corrupt=len(rep.corrupt), download_bytes=rep.bytes)
        for name in rep.unlisted + rep.missing:
            say(f"known gap: {name}")
        inputs = rep.files
        if not inputs:
            raise B.BuildError(f"download: no file of {cfg.source.start}..{cfg.source.end} could be fetched "
                               f"(unlisted {len(rep.unlisted)}, missing {len(rep.missing)}, "
                               f"corrupt {len(rep.corrupt)})")

    embedder = embed.make_embedder(cfg.embedding.name, int(cfg.embedding.dim), cfg.embedding.get("model_path"), device)
    vocab = Dm.vocabulary(embedder, cache=out / "cache")
    opts = B.BuildOptions(
        out_dir=out, source=src, workers=int(cfg.workers), engine=str(cfg.engine),
        cluster_address=cfg.cluster.address, strict=bool(cfg.strict), force=bool(cfg.force),
        day_key=str(cfg.descriptors.day_key), max_lag=int(cfg.descriptors.max_lag), k=int(cfg.descriptors.k),
        kmeans_iters=int(cfg.descriptors.kmeans_iters), device=device, countries=countries,
        min_country_events=int(cfg.descriptors.min_country_events), context=int(cfg.sequences.context),
        country_by=str(cfg.descriptors.country_by), start=_yyyymmdd(cfg.descriptors.start),
        end=_yyyymmdd(cfg.descriptors.end), split_gap=int(cfg.descriptors.split_gap),
        tail_fraction=float(cfg.descriptors.tail_fraction),
        min_median_events=float(cfg.descriptors.min_median_events),
        top_countries=None if cfg.descriptors.top_countries is None else int(cfg.descriptors.top_countries),
        max_gap=int(cfg.sequences.max_gap),
        sequences=int(cfg.sequences.count), fractions=tuple(float(x) for x in cfg.sequences.fractions),
        seed=int(cfg.seed), oracle=oracle, extra_manifest=extra)
    bars: dict[str, Any] = {}

    def progress(stage: str, i: int, n: int) -> None:
        if stage not in bars:
            for b in bars.values():
                b.__exit__(None, None, None)
            bars.clear()
            bars[stage] = run.progress(n, stage).__enter__()
        bars[stage].advance(1 if stage == "inputs" else 0)

    try:
        res = B.build(inputs, opts, progress=progress, vocab=vocab, log=say, warn=log.warning)
    finally:
        for b in bars.values():
            b.__exit__(None, None, None)
    for step, (name, e) in enumerate(sorted(res.manifest["inputs"].items())):
        run.log_metrics(step, input=name, status=e["status"], rows_read=e["rows_read"], rows_kept=e["rows_kept"],
                        rows_repaired=e["rows_repaired"], rows_rejected=e["rows_rejected"], wall_s=e.get("wall_s"))
    summary = {**summary_extra, **res.summary, "embedding": vocab.name, "embedding_dim": vocab.dim}
    d, seqs = res.descriptors, res.sequences
    if truth is not None:
        order = np.argsort(model.countries)
        summary["synthetic_counts_match"] = bool(np.array_equal(d.counts, truth.counts[order]))
        summary.update(_skill(d, seqs.index, oracle["root_probs"], int(cfg.sequences.context)))
    _plot(run, d, truth, model)
    run.save_summary(summary)
    why = B.no_sequence_reason(res)
    if why is not None:                   # the run fails, keeping what it wrote
        raise B.BuildError(why)
    return summary


def _skill(d, index, root_probs: np.ndarray, context: int) -> dict[str, float]:
    """Test-target log losses: oracle, per-country climatology of the train targets, uniform."""
    from wgf_cli.gdelt.build import oracle_log_loss

    roots = d.counts.sum(-1).astype(np.float64)                    # [C, D, 20]
    train = index[index["split"] == "train"]
    last_train = int(train["start"].max()) + context if len(train) else 0
    clim = roots[:, : last_train + 1].sum(1) + 0.5                # add-1/2 smoothing
    clim = np.broadcast_to((clim / clim.sum(1, keepdims=True))[:, None, :], roots.shape)
    uniform = np.full(roots.shape, 1 / 20)
    return {"oracle_test_ll": oracle_log_loss(d.counts, root_probs, index, context),
            "climatology_test_ll": oracle_log_loss(d.counts, clim, index, context),
            "uniform_test_ll": oracle_log_loss(d.counts, uniform, index, context)}


def _plot(run, d, truth, model) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    show = np.argsort(-d.total.sum(1))[:3]
    x = np.arange(len(d.days))
    colors = ["#ffffff", "#fde0a0", "#f4a0a0"]
    for j, c in enumerate(show):
        ax.plot(x, d.total[c], lw=0.9, label=str(d.countries[c]))
        if truth is not None and j == 0:
            order = np.argsort(model.countries)
            reg = truth.regimes[order][c]
            for r in (1, 2):
                ax.fill_between(x, 0, d.total[c].max() * 1.05, where=reg == r, color=colors[r], step="mid",
                                alpha=0.8, lw=0, label=f"{d.countries[c]} {('', 'tension', 'conflict')[r]}")
    ax.set(xlabel=f"day (from {d.days[0]})", ylabel="events", title="daily events of the 3 largest countries")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    mix = d.counts.sum((0, 1)).astype(float)
    mix /= mix.sum()
    bottom = np.zeros(20)
    for q, col in enumerate(["#4c9f70", "#9ad1a6", "#f0a35e", "#c8553d"]):
        ax.bar(np.arange(1, 21), mix[:, q], bottom=bottom, color=col, label=f"QuadClass {q + 1}")
        bottom += mix[:, q]
    ax.set(xlabel="EventRootCode", ylabel="share of events", title="root code x QuadClass mix", xticks=range(1, 21, 2))
    ax.legend(fontsize=7)
    ax = axes[2]
    w = d.weights[d.total > 0]
    if len(w):
        ax.plot(np.arange(1, w.shape[1] + 1), np.sort(w, axis=1)[:, ::-1].mean(0), "o-")
    ax.set(xlabel="representative point (by weight)", ylabel="mean weight",
           title=f"day on the sphere: k={d.weights.shape[-1]} weighted points")
    fig.tight_layout()
    run.save_plot(fig, "overview.png", dpi=90)
