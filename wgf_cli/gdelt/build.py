"""The build: raw inputs -> clean events (Parquet) -> daily descriptors -> sequences.

Layout of a build folder (the dataset contract of ``GDELT_SPEC.md`` in bold)::

    manifest.json                       inputs (name, size, md5, layouts, rows, outputs), **dataset**
    events/year=YYYY/month=MM/<input>.parquet   the clean events of one input in one month
    rejects/<input>.rejects.tsv         reason + fields of every rejected row of one input
    **descriptors/descriptors.npz**, **descriptors/standard_events.npz**
    **sequences/index.parquet**, sequences/sequences.npz
    **oracle.npz**                      (synthetic source)
    cache/                              embedded vocabulary

Idempotence and resumption: every file is written atomically (temporary name, then
``os.replace``) and an input enters ``manifest.json`` only after all its partition files
and its rejects file are in place; the descriptor stage reads exactly the files the
manifest lists, so partition files of an interrupted input are never read.  A re-run skips
an input whose name and md5 are in the manifest with all its outputs present (``force``
rebuilds everything) and recomputes the (deterministic) descriptors and sequences.

Robustness: an input that cannot be read (corrupt or truncated zip, unknown layout, any
error) is reported in the manifest with its error and skipped; ``strict=True`` stops the
build at the first such input instead.  Inputs are processed in parallel by local processes
(``workers``), or by a Dask cluster (``engine="dask"``).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wgf_cli.gdelt import descriptors as desc_mod
from wgf_cli.gdelt import reader, sequences
from wgf_cli.gdelt_contract import DATASET_VERSION

EVENT_SUFFIXES = (".zip", ".csv", ".tsv", ".txt")


class BuildError(RuntimeError):
    """The build cannot go on (``strict`` and a bad input, or nothing to build)."""


# -- atomic files --------------------------------------------------------------------
def atomic_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_json(path: Path, obj) -> Path:
    return atomic_bytes(path, (json.dumps(obj, indent=1, default=_json_default) + "\n").encode())


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def atomic_npz(path: Path, **arrays) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_bytes(path, buf.getvalue())


def atomic_parquet(path: Path, table: pa.Table) -> Path:
    buf = io.BytesIO()
    # no Arrow schema stored: dictionary-encoded strings (the codes) are read back as strings
    pq.write_table(table, buf, compression="zstd", store_schema=False)
    return atomic_bytes(path, buf.getvalue())


# -- one input -------------------------------------------------------------------------
def publication_days(table: pa.Table) -> list[int]:
    """Days the input published events: DATEADDED's day for daily-era rows, SQLDATE for
    backfile rows (whose DATEADDED is the 2013 bulk load)."""
    added = table.column("DATEADDED").to_numpy()
    day = np.where(added >= 10**10, added // 1_000_000, added)
    sql = table.column("SQLDATE").to_numpy().astype(np.int64)
    return sorted(int(x) for x in np.unique(np.where(day >= desc_mod.DAILY_ERA, day, sql)))


def process_input(path: str, name: str, out_dir: str) -> dict:
    """Read, clean and write one input; returns its manifest entry (never raises)."""
    out = Path(out_dir)
    t0 = time.perf_counter()
    try:
        table, rejected, report = reader.read_file(path, name)
    except Exception as exc:  # noqa: BLE001 - every failure of one input is reported, not raised
        entry = reader.InputReport(name=name)
        try:
            entry.size = os.path.getsize(path)
            entry.md5 = reader.file_md5(path)
        except OSError:
            pass
        entry.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, reader.InputError) else str(exc)
        return {**entry.as_dict(), "status": "failed", "outputs": [], "pub_days": [], "wall_s": 0.0}
    outputs = []
    sql = table.column("SQLDATE").to_numpy().astype(np.int64)
    ym = sql // 100
    for value in np.unique(ym):
        sel = np.flatnonzero(ym == value)
        rel = f"events/year={value // 100}/month={value % 100:02d}/{name}.parquet"
        atomic_parquet(out / rel, table.take(pa.array(sel)))
        outputs.append(rel)
    rej_rel = f"rejects/{name}.rejects.tsv"
    text = "reason\tfields\n" + "".join(f"{why}\t{fields}\n" for why, fields in rejected)
    atomic_bytes(out / rej_rel, text.encode("utf-8", "replace"))
    return {**report.as_dict(), "status": "ok", "outputs": outputs, "rejects_file": rej_rel,
            "pub_days": publication_days(table), "wall_s": round(time.perf_counter() - t0, 3)}


def list_inputs(folder: str | Path) -> list[Path]:
    """GDELT event files in ``folder`` (zipped or not), sorted by name; hidden files skipped."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name.lower().endswith(EVENT_SUFFIXES))


# -- the build ---------------------------------------------------------------------------
@dataclass
class BuildOptions:
    out_dir: Path
    source: str = "dir"
    workers: int = 1
    engine: str = "local"            # local | dask
    cluster_address: str | None = None
    strict: bool = False
    force: bool = False
    day_key: str = "sqldate"
    max_lag: int = 30
    k: int = 8
    kmeans_iters: int = 10
    device: str = "cpu"
    countries: list[str] | None = None
    min_country_events: int = 1
    context: int = 50
    sequences: int = 10_000
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    oracle: dict[str, np.ndarray] | None = None   # synthetic: arrays [C, D, ...] in ``countries`` order
    extra_manifest: dict = field(default_factory=dict)


@dataclass
class BuildResult:
    summary: dict
    manifest: dict
    descriptors: desc_mod.Descriptors | None
    sequences: sequences.Sequences | None


def _load_manifest(path: Path) -> dict:
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return {}
    return {}


def _reusable(entry: dict | None, md5: str, out: Path) -> bool:
    return bool(entry and entry.get("status") == "ok" and entry.get("md5") == md5
                and all((out / o).exists() for o in entry.get("outputs", []))
                and (out / entry.get("rejects_file", "missing")).exists())


def _run_inputs(todo: list[tuple[str, str]], opts: BuildOptions, done: Callable[[dict], None]) -> None:
    out = str(opts.out_dir)
    if opts.engine == "dask":
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None if opts.cluster_address else LocalCluster(n_workers=max(opts.workers, 1),
                                                                 threads_per_worker=1, processes=True,
                                                                 dashboard_address=None)
        with Client(opts.cluster_address or cluster) as client:
            futures = [client.submit(process_input, p, n, out, pure=False) for p, n in todo]
            for fut in as_completed(futures):
                done(fut.result())
        if cluster is not None:
            cluster.close()
    elif opts.workers <= 1 or len(todo) <= 1:
        for p, n in todo:
            done(process_input(p, n, out))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=opts.workers) as pool:
            futures = [pool.submit(process_input, p, n, out) for p, n in todo]
            try:
                for fut in as_completed(futures):
                    done(fut.result())
            except BaseException:
                for f in futures:
                    f.cancel()
                raise


EVENT_COLUMNS = ["SQLDATE", "DATEADDED", "EventCode", "EventRootCode", "QuadClass", "GoldsteinScale",
                 "Actor1Geo_CountryCode", "Actor2Geo_CountryCode", "Multi_Country_Flag"]


def month_windows(days: np.ndarray, busy: set[int] | None = None) -> list[tuple[int, int]]:
    """[start, end) index ranges of ``days`` (YYYYMMDD) by calendar month; with ``busy`` (the
    YYYYMM months that may hold events), a month outside it joins the window before it (or
    the first window), so a long axis with few busy months costs few windows."""
    month = days // 100
    cuts = np.flatnonzero(np.diff(month)) + 1
    if busy is not None:
        cuts = np.array([c for c in cuts.tolist() if int(month[c]) in busy], np.int64)
    bounds = [0, *cuts.tolist(), len(days)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def busy_months(files: list[str], day_key: str) -> set[int] | None:
    """YYYYMM months the events of ``files`` can fall in, from the Parquet statistics of the
    day-key column (SQLDATE, or DATEADDED's day): no data is read.  ``None`` (every month)
    when a row group has no statistics."""
    col = "SQLDATE" if day_key == "sqldate" else "DATEADDED"
    months: set[int] = set()
    for f in files:
        meta = pq.ParquetFile(f).metadata
        j = meta.schema.names.index(col)
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(j).statistics
            if st is None or not st.has_min_max:
                return None
            lo, hi = (max(int(v) if v < 10**10 else int(v) // 1_000_000, 19790101) // 100
                      for v in (st.min, st.max))
            while lo <= hi:                                    # YYYYMM, month by month
                months.add(lo)
                lo = lo + 1 if lo % 100 < 12 else (lo // 100 + 1) * 100 + 1
    return months


def _window_events(dataset, day_key: str, first: int | None, last: int | None, columns: list[str]):
    """The events whose day key (SQLDATE, or the day of DATEADDED: 1.0 YYYYMMDD, 2.0
    YYYYMMDDHHMMSS) lies in [first, last] (YYYYMMDD; ``None``: open), as pandas.  Parquet
    statistics skip the row groups of other months."""
    import pyarrow.dataset as pads

    def within(col, scale: int = 1, extra: int = 0):
        terms = ([col >= first * scale] if first is not None else []) + \
                ([col <= last * scale + extra] if last is not None else [])
        return terms[0] & terms[1] if len(terms) == 2 else terms[0] if terms else None

    if day_key == "sqldate":
        flt = within(pads.field("SQLDATE"))
    else:
        added = pads.field("DATEADDED")
        short, long = within(added), within(added, 1_000_000, 235959)
        flt = None if short is None else ((added < 10**10) & short) | ((added >= 10**10) & long)
    return dataset.to_table(columns=columns, filter=flt).to_pandas()


def describe(files: list[str], vocab, days: np.ndarray, observed_days: np.ndarray, opts: BuildOptions,
             progress: Callable[[int, int], None] | None = None) -> desc_mod.Descriptors:
    """Descriptors of the events in the Parquet ``files`` on the day axis ``days``, computed
    one calendar month at a time: memory is bounded by one month of events (plus the output
    arrays), whatever the size of the archive.  Without a country list, a first pass over the
    months counts the countries (reading the date and country columns only).  Equal to
    :func:`~wgf_cli.gdelt.descriptors.compute` on all events at once."""
    import pyarrow.dataset as pads

    dataset = pads.dataset(files, format="parquet")
    windows = month_windows(days, busy_months(files, opts.day_key))
    # the first and last windows are open-ended, so every event is selected by exactly one
    # window and the lag / outside-the-axis rules count it as compute() would
    bounds = [(None if i == 0 else int(days[a]), None if i == len(windows) - 1 else int(days[b - 1]))
              for i, (a, b) in enumerate(windows)]
    countries = opts.countries
    if countries is None:
        counts = None
        geo = ["SQLDATE", "DATEADDED", "Actor1Geo_CountryCode", "Actor2Geo_CountryCode"]
        for (a, b), (lo, hi) in zip(windows, bounds, strict=True):
            ev = _window_events(dataset, opts.day_key, lo, hi, geo)     # dates and countries only
            _, keep, _ = desc_mod.day_and_keep(ev, days[a:b], opts.day_key, opts.max_lag)
            c = desc_mod.country_counts(ev[keep])
            counts = c if counts is None else counts.add(c, fill_value=0)
        countries = desc_mod.seen_countries(counts, opts.min_country_events) if counts is not None else []
    parts = []
    for i, ((a, b), (lo, hi)) in enumerate(zip(windows, bounds, strict=True)):
        ev = _window_events(dataset, opts.day_key, lo, hi, EVENT_COLUMNS)
        parts.append(desc_mod.compute(ev, vocab, days=days[a:b], observed_days=observed_days, countries=countries,
                                      k=opts.k, day_key=opts.day_key, max_lag=opts.max_lag,
                                      kmeans_iters=opts.kmeans_iters, device=opts.device))
        del ev
        if progress is not None:
            progress(i + 1, len(windows))
    return desc_mod.concat(parts)


def build(inputs: list[Path], opts: BuildOptions, progress: Callable[[str, int, int], None] | None = None,
          vocab=None, log: Callable[[str], None] | None = None) -> BuildResult:
    """Build the events, descriptors, sequences (and oracle) from ``inputs`` into ``opts.out_dir``."""
    t0 = time.perf_counter()
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _m: None)
    mpath = out / "manifest.json"
    manifest = _load_manifest(mpath)
    entries: dict[str, dict] = {} if opts.force else dict(manifest.get("inputs", {}))
    names = [p.name for p in inputs]
    if len(set(names)) != len(names):
        raise BuildError("two inputs share a file name")
    todo, skipped = [], 0
    for p in inputs:
        md5 = reader.file_md5(p)
        if _reusable(entries.get(p.name), md5, out):
            skipped += 1
        else:
            old = entries.pop(p.name, None)
            for rel in (old or {}).get("outputs", []):  # stale partitions of an older version
                (out / rel).unlink(missing_ok=True)
            todo.append((str(p), p.name))
    say(f"{len(inputs)} inputs: {skipped} already built, {len(todo)} to read")
    manifest.update(version=DATASET_VERSION, inputs=entries)
    manifest.update(opts.extra_manifest)
    n_done = [0]

    def done(entry: dict) -> None:
        entries[entry["name"]] = entry
        n_done[0] += 1
        atomic_json(mpath, {**manifest, "inputs": dict(sorted(entries.items()))})
        if entry["status"] != "ok":
            say(f"input {entry['name']} skipped: {entry['error']}")
            if opts.strict:
                raise BuildError(f"strict: input {entry['name']} failed: {entry['error']}")
        if progress:
            progress("inputs", n_done[0], len(todo))

    _run_inputs(todo, opts, done)
    entries = {k: v for k, v in entries.items() if k in set(names)}
    manifest["inputs"] = dict(sorted(entries.items()))
    ok = [e for e in entries.values() if e["status"] == "ok"]
    read_s = time.perf_counter() - t0
    summary = {
        "files": len(inputs), "files_built": len(todo), "files_skipped_cached": skipped,
        "files_failed": sum(e["status"] != "ok" for e in entries.values()),
        "rows_read": sum(e["rows_read"] for e in entries.values()),
        "rows_kept": sum(e["rows_kept"] for e in entries.values()),
        "rows_repaired": sum(e["rows_repaired"] for e in entries.values()),
        "rows_rejected": sum(e["rows_rejected"] for e in entries.values()),
    }
    rejects: dict[str, int] = {}
    for e in entries.values():
        for k, v in e["rejects"].items():
            rejects[k] = rejects.get(k, 0) + v
    summary["rejects_marker_row"] = rejects.get("marker_row", 0)
    if not ok:
        atomic_json(mpath, manifest)
        raise BuildError("no input could be read: nothing to build")

    # descriptors, one calendar month of days at a time
    files = [str(out / rel) for e in sorted(ok, key=lambda e: e["name"]) for rel in e["outputs"]]
    pub = sorted({d for e in ok for d in e["pub_days"]})
    kept_rows = sum(e["rows_kept"] for e in ok)
    if not files or kept_rows == 0 or not pub:
        raise BuildError("the inputs hold no valid event: nothing to describe")
    days = desc_mod.day_range(pub[0], pub[-1])
    say(f"descriptors of {kept_rows} events over {len(days)} days")
    d = describe(files, vocab, days, np.array(pub), opts,
                 progress=(lambda i, n: progress("descriptors", i, n)) if progress else None)
    atomic_npz(out / "descriptors" / "descriptors.npz", **d.arrays())
    atomic_npz(out / "descriptors" / "standard_events.npz", **desc_mod.standard_events(vocab))

    seqs = sequences.sample(d.observed, d.countries, d.days, count=opts.sequences, context=opts.context,
                            fractions=opts.fractions, seed=opts.seed)
    atomic_parquet(out / "sequences" / "index.parquet", pa.Table.from_pandas(seqs.index, preserve_index=False))
    atomic_npz(out / "sequences" / "sequences.npz",
               country_idx=seqs.index["country_idx"].to_numpy(), start=seqs.index["start"].to_numpy(),
               split=np.array([sequences.SPLITS.index(s) for s in seqs.index["split"]], np.int8),
               context=np.int32(opts.context))

    has_oracle = opts.oracle is not None
    if has_oracle:
        atomic_npz(out / "oracle.npz", **opts.oracle)
    wall = time.perf_counter() - t0
    manifest["dataset"] = {
        "version": DATASET_VERSION, "source": opts.source, "embedding": vocab.name, "embedding_dim": vocab.dim,
        "k": opts.k, "context": opts.context, "n_countries": len(d.countries), "n_days": len(d.days),
        "splits": seqs.splits, "oracle": has_oracle,
    }
    manifest["outputs"] = {
        "events": "events/", "rejects": "rejects/", "descriptors": "descriptors/descriptors.npz",
        "standard_events": "descriptors/standard_events.npz", "sequences": "sequences/index.parquet",
        **({"oracle": "oracle.npz"} if has_oracle else {}),
    }
    manifest["descriptors"] = {"day_key": opts.day_key, "max_lag": opts.max_lag, **d.diagnostics,
                               "sequences_available": seqs.available}
    atomic_json(mpath, manifest)
    summary.update({
        "countries": len(d.countries), "days": len(d.days), "observed_days": int(d.observed[0].sum()),
        "sequences": len(seqs.index),
        **{f"sequences_{s}": int((seqs.index["split"] == s).sum()) for s in sequences.SPLITS},
        "events_described": int(d.diagnostics["memberships"]), "events_too_old": d.diagnostics["too_old"],
        "events_outside_days": d.diagnostics["outside_days"],
        "read_s": round(read_s, 3), "wall_s": round(wall, 3),
        "rows_per_s": round(summary["rows_read"] / read_s, 1) if todo and read_s > 0 else None,
    })
    return BuildResult(summary, manifest, d, seqs)


def oracle_log_loss(counts: np.ndarray, root_probs: np.ndarray, index, context: int, split: str = "test") -> float:
    """Mean per-event root-code cross entropy of ``root_probs`` on the targets of ``split``
    (the contract's LL; target days with no event are left out)."""
    sel = index[index["split"] == split]
    c = sel["country_idx"].to_numpy()
    t = sel["start"].to_numpy() + context
    roots = counts[c, t].sum(-1).astype(np.float64)       # [S, 20]
    tot = roots.sum(1)
    m = tot > 0
    if not m.any():
        return float("nan")
    ll = -(roots[m] * np.log(np.maximum(root_probs[c[m], t[m]], 1e-300))).sum(1) / tot[m]
    return float(ll.mean())

