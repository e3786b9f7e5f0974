"""The build: raw inputs -> clean events (Parquet) -> daily descriptors -> sequences.

Layout of a build folder (the dataset contract, :mod:`wgf_cli.gdelt_contract`, in bold)::

    manifest.json                       inputs (name, size, md5, layouts, rows, outputs), **dataset**,
                                        window, panel, sequences (windows requested / made / why not)
    inputs/<archive>/                   the event files of a .tar.xz / .tar.gz input, extracted once
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
(``workers``), or by a Dask cluster (``engine="dask"``).  Every failed input is named with
its cause through the ``warn`` callback.

Dates and memory: the day axis is a date window (:func:`day_window`), never stretched by a
sparse tail of old dates; descriptors are computed one month of the axis at a time and the
events outside it counted file by file from their date columns, so memory is bounded by one
month of events plus the output arrays.
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
#: archives whose members are read as inputs (extracted into ``<build>/inputs/<archive>/``)
ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")


class BuildError(RuntimeError):
    """The build cannot go on (``strict`` and a bad input, or nothing to build)."""


# -- atomic files --------------------------------------------------------------------
def atomic_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
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
    """Write ``obj`` as JSON to ``path`` atomically (NumPy scalars and arrays allowed)."""
    return atomic_bytes(path, (json.dumps(obj, indent=1, default=_json_default) + "\n").encode())


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def atomic_npz(path: Path, **arrays) -> Path:
    """Write ``arrays`` as an ``.npz`` file to ``path`` atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_bytes(path, buf.getvalue())


def atomic_parquet(path: Path, table: pa.Table) -> Path:
    """Write ``table`` as a zstd Parquet file to ``path`` atomically."""
    buf = io.BytesIO()
    # no Arrow schema stored: dictionary-encoded strings (the codes) are read back as strings
    pq.write_table(table, buf, compression="zstd", store_schema=False)
    return atomic_bytes(path, buf.getvalue())


# -- one input -------------------------------------------------------------------------
def publication_days(table: pa.Table) -> list[int]:
    """Days the input published events.

    DATEADDED's day for daily-era rows, SQLDATE for backfile rows (whose DATEADDED is the 2013 bulk
    load).
    """
    return publication_counts(table)[0]


def publication_counts(table: pa.Table) -> tuple[list[int], list[int]]:
    """(publication days, rows published on each) of :func:`publication_days`."""
    added = table.column("DATEADDED").to_numpy()
    day = np.where(added >= 10**10, added // 1_000_000, added)
    sql = table.column("SQLDATE").to_numpy().astype(np.int64)
    days, rows = np.unique(np.where(day >= desc_mod.DAILY_ERA, day, sql), return_counts=True)
    return [int(x) for x in days], [int(x) for x in rows]


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
        return {**entry.as_dict(), "status": "failed", "outputs": [], "pub_days": [], "pub_rows": [],
                "wall_s": 0.0}
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
    pub_days, pub_rows = publication_counts(table)
    entry = {**report.as_dict(), "status": "ok", "outputs": outputs, "rejects_file": rej_rel,
             "pub_days": pub_days, "pub_rows": pub_rows, "wall_s": round(time.perf_counter() - t0, 3)}
    if report.layouts.get("csv") and len(sql):
        # an export with a header row (BigQuery): no "published that day" notion -- every day
        # of its SQLDATE range counts as observed
        entry["export_range"] = [int(sql.min()), int(sql.max())]
    return entry


def is_archive(path: Path) -> bool:
    """Whether ``path`` names a tar archive of event files."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def list_inputs(folder: str | Path) -> list[Path]:
    """GDELT event files in ``folder`` (zipped or not, or archives of them), sorted by name; hidden files skipped.

    A single file (an event file or an archive) is its own list.
    """
    folder = Path(folder)
    if folder.is_file():
        return [folder] if folder.name.lower().endswith(EVENT_SUFFIXES + ARCHIVE_SUFFIXES) else []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name.lower().endswith(EVENT_SUFFIXES + ARCHIVE_SUFFIXES))


def archive_members(path: Path) -> list[str]:
    """The event files of a tar archive (regular files with an event suffix, not hidden)."""
    import tarfile

    with tarfile.open(path) as tf:
        return sorted(m.name for m in tf.getmembers() if m.isfile() and not Path(m.name).name.startswith(".")
                      and m.name.lower().endswith(EVENT_SUFFIXES))


def expand_archives(inputs: list[Path], out: Path, say: Callable[[str], None] = lambda _m: None) -> list[Path]:
    """Replace each tar archive among ``inputs`` by its event files, extracted once.

    ``inputs`` with each tar archive replaced by its event files, extracted once into
    ``out/inputs/<archive name>/`` (a marker with the archive's md5 makes a re-run reuse them).  Members
    are named ``<archive stem>__<file name>`` (``<archive stem>__<member path with / as _>`` when two
    members share a file name), so names stay distinct across archives.
    """
    import tarfile

    result: list[Path] = []
    for p in inputs:
        if not is_archive(p):
            result.append(p)
            continue
        dest = out / "inputs" / p.name
        marker = dest / ".archive.md5"
        md5 = reader.file_md5(p)
        stem = p.name[: -len(next(s for s in ARCHIVE_SUFFIXES if p.name.lower().endswith(s)))]
        if not (marker.exists() and marker.read_text().strip() == md5):
            say(f"extracting {p.name} into {dest}")
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(p) as tf:
                members = [m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(EVENT_SUFFIXES)
                           and not Path(m.name).name.startswith(".")]
                base = [Path(m.name).name for m in members]
                flat = len(set(base)) == len(base)          # file names alone when they are distinct
                for m, b in zip(members, base, strict=True):
                    fh = tf.extractfile(m)
                    if fh is not None:
                        atomic_bytes(dest / f"{stem}__{b if flat else m.name.replace('/', '_')}", fh.read())
            atomic_bytes(marker, md5.encode())
        result += sorted(q for q in dest.iterdir() if q.is_file() and not q.name.startswith("."))
    return result


def sniff(path: Path) -> str | None:
    """The layout of an input from its first bytes, without reading it.

    ``"57"``, ``"58"``, ``"61"``, ``"csv"`` (a header row), ``"archive"``; ``None`` when none is
    recognised (or the file cannot be opened). Cheap: the validation step calls it on every input.
    """
    import zipfile

    if is_archive(path):
        try:
            return "archive" if archive_members(path) else None
        except Exception:  # noqa: BLE001 - a corrupt archive is no known layout
            return None
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if not members:
                    return None
                with zf.open(members[0]) as fh:
                    head = fh.read(1 << 16)
        else:
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
    except Exception:  # noqa: BLE001
        return None
    if reader.is_header(head):
        return "csv"
    lines = head.split(b"\n")
    for line in lines[:-1] if len(lines) > 1 else lines:
        cols = line.count(b"\t") + 1
        if cols in reader.schema.LAYOUTS:
            return str(cols)
    return None


# -- the build ---------------------------------------------------------------------------
@dataclass
class BuildOptions:
    """The settings of one build: output folder, workers and engine, and the build's parameters."""
    out_dir: Path
    source: str = "dir"
    workers: int = 1
    engine: str = "local"            # local | dask
    cluster_address: str | None = None
    strict: bool = False
    force: bool = False
    day_key: str = "sqldate"
    max_lag: int = 30
    country_by: str = "action"       # action | actor | any (see descriptors)
    start: int | None = None         # YYYYMMDD: first day of the axis (None: automatic)
    end: int | None = None           # YYYYMMDD: last day of the axis (None: automatic)
    split_gap: int = 90              # automatic window: a pause of more days splits the publication days
    tail_fraction: float = 0.005     # automatic window: end months below this share of the busiest are trimmed
    min_median_events: float = 1.0   # countries None: median events per observed day a country needs
    top_countries: int | None = None  # countries None: keep at most this many (by events)
    max_gap: int = 7                 # sequences: longest run of unobserved context days
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
    """What a build produced: its summary, its manifest, the descriptors and the sequences."""
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
    return bool(entry and entry.get("status") == "ok" and entry.get("md5") == md5 and "pub_rows" in entry
                and all((out / o).exists() for o in entry.get("outputs", []))
                and (out / entry.get("rejects_file", "missing")).exists())


def day_window(pub_days: list[int], pub_rows: list[int], start: int | None = None, end: int | None = None,
               split_gap: int = 90, tail_fraction: float = 0.005) -> tuple[int, int, dict]:
    """The day axis ``[first, last]`` (YYYYMMDD) of a build from its publication days and the rows published on each.

    Publication days outside ``[start, end]`` are left out.  With both bounds given the axis
    runs from the first to the last remaining publication day.  Otherwise (automatic) the
    remaining days are split into clusters wherever more than ``split_gap`` days pass without
    a publication, and the cluster holding the most rows (the later one on a tie) is kept;
    then its sparse ends are trimmed: the axis runs from the first to the last calendar month
    of the cluster holding at least ``tail_fraction`` of the rows of its busiest month.  So a
    sparse tail -- a few rows dated 1982 inside a 2020 daily file, backfile rows spread one a
    month over 1979-2019 beside a month of daily files -- never stretches the day axis.
    Returns the axis and a report (rows and days left out, the clusters).
    """
    days = np.asarray(pub_days, np.int64)
    rows = np.asarray(pub_rows, np.int64)
    order = np.argsort(days, kind="stable")
    days, rows = days[order], rows[order]
    inside = np.ones(len(days), bool)
    if start is not None:
        inside &= days >= start
    if end is not None:
        inside &= days <= end
    info: dict = {"start": start, "end": end, "automatic": start is None or end is None, "split_gap": split_gap}
    if not inside.any():
        raise BuildError(f"no publication day inside the date window {start}..{end} "
                         f"(the inputs publish {int(days.min())}..{int(days.max())})" if len(days) else
                         "the inputs hold no valid event: nothing to describe")
    d, r = days[inside], rows[inside]
    if info["automatic"] and len(d) > 1:
        offs = desc_mod.day_index(d, int(d[0]))
        cuts = np.flatnonzero(np.diff(offs) > split_gap) + 1
        bounds = [0, *cuts.tolist(), len(d)]
        clusters = [(int(d[a]), int(d[b - 1]), int(r[a:b].sum()), b - a)
                    for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        best = max(range(len(clusters)), key=lambda i: (clusters[i][2], i))
        first, last = clusters[best][0], clusters[best][1]
        sel = (d >= first) & (d <= last)
        month = d[sel] // 100
        vol: dict[int, int] = {}
        for mth, n in zip(month.tolist(), r[sel].tolist(), strict=True):
            vol[mth] = vol.get(mth, 0) + n
        busiest = max(vol.values())
        dense = sorted(mth for mth, n in vol.items() if n >= tail_fraction * busiest)
        first = int(d[sel][month == dense[0]].min())
        last = int(d[sel][month == dense[-1]].max())
        info["tail_fraction"] = tail_fraction
        info["clusters"] = [{"first": a, "last": b, "rows": n, "pub_days": k} for a, b, n, k in clusters[:50]]
        info["n_clusters"] = len(clusters)
    else:
        first, last = int(d[0]), int(d[-1])
    kept = (days >= first) & (days <= last)
    info.update(first=first, last=last, pub_rows_outside=int(rows[~kept].sum()),
                pub_days_outside=int((~kept).sum()))
    return first, last, info


def select_panel(counts: dict[str, np.ndarray], observed: np.ndarray, min_country_events: int = 1,
                 min_median_events: float = 1.0, top_countries: int | None = None
                 ) -> tuple[list[str], dict]:
    """The countries of a build by volume: ``counts[c]`` is country ``c``'s events per day of the axis.

    A country is kept when it has at least ``min_country_events`` events and a median of at least
    ``min_median_events`` events per observed day; of those at most ``top_countries`` (the most events
    first, ties by code).  Returns the sorted panel and a report (each kept country's events and median,
    the left-out countries' events).
    """
    stats = []
    for c, v in counts.items():
        total = int(v.sum())
        med = float(np.median(v[observed])) if observed.any() else 0.0
        stats.append((c, total, med))
    stats.sort(key=lambda x: (-x[1], x[0]))
    eligible = [x for x in stats if x[1] >= min_country_events and x[2] >= min_median_events]
    chosen = eligible[:top_countries] if top_countries is not None else eligible
    keep = {x[0] for x in chosen}
    report = {"min_country_events": min_country_events, "min_median_events": min_median_events,
              "top_countries": top_countries,
              "countries": {c: {"events": n, "median_per_observed_day": m} for c, n, m in stats if c in keep},
              "left_out": {c: n for c, n, _ in stats if c not in keep},
              "left_out_events": int(sum(n for c, n, _ in stats if c not in keep))}
    if not keep:
        top = ", ".join(f"{c} {n} events, median {m:g}/day" for c, n, m in stats[:3]) or "no country at all"
        raise BuildError(f"no country passes the panel rule (min_country_events={min_country_events}, "
                         f"min_median_events={min_median_events}); the largest: {top}; lower "
                         f"descriptors.min_median_events or give descriptors.countries")
    return sorted(keep), report


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
                 "Actor1Geo_CountryCode", "Actor2Geo_CountryCode", "ActionGeo_CountryCode", "Multi_Country_Flag"]


def month_windows(days: np.ndarray, busy: set[int] | None = None) -> list[tuple[int, int]]:
    """[start, end) index ranges of ``days`` (YYYYMMDD) by calendar month.

    With ``busy`` (the YYYYMM months that may hold events), a month outside it joins the window before
    it (or the first window), so a long axis with few busy months costs few windows.
    """
    month = days // 100
    cuts = np.flatnonzero(np.diff(month)) + 1
    if busy is not None:
        cuts = np.array([c for c in cuts.tolist() if int(month[c]) in busy], np.int64)
    bounds = [0, *cuts.tolist(), len(days)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def busy_months(files: list[str], day_key: str) -> set[int] | None:
    """The YYYYMM months the events of ``files`` can fall in, from Parquet statistics alone.

    YYYYMM months the events of ``files`` can fall in, from the Parquet statistics of the day-key column
    (SQLDATE, or DATEADDED's day): no data is read.  ``None`` (every month) when a row group has no
    statistics.
    """
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
    """The events whose day key lies in ``[first, last]``, as pandas.

    The events whose day key (SQLDATE, or the day of DATEADDED: 1.0 YYYYMMDD, 2.0 YYYYMMDDHHMMSS) lies
    in [first, last] (YYYYMMDD; ``None``: open), as pandas.  Parquet statistics skip the row groups of
    other months.
    """
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


def _outside_events(files: list[str], days: np.ndarray, opts: BuildOptions) -> dict[str, int]:
    """Diagnostics of the events whose day key lies outside the axis ``days``.

    The diagnostics (``events_in``, ``too_old``, ``outside_days``, ``backfile_on_load_day``) of the
    events whose day key lies outside the axis ``days``, counted one Parquet file (one input's month) at
    a time from the date columns alone: memory stays bounded however far the dates spread.
    """
    import pyarrow.dataset as pads

    first, last = int(days[0]), int(days[-1])
    if opts.day_key == "sqldate":
        col = pads.field("SQLDATE")
        flt = (col < first) | (col > last)
    else:
        added = pads.field("DATEADDED")
        flt = (((added < 10**10) & ((added < first) | (added > last)))
               | ((added >= 10**10) & ((added < first * 1_000_000) | (added > last * 1_000_000 + 235959))))
    diag = {"events_in": 0, "too_old": 0, "outside_days": 0, "backfile_on_load_day": 0}
    for f in files:
        ev = pads.dataset(f, format="parquet").to_table(columns=["SQLDATE", "DATEADDED"], filter=flt).to_pandas()
        if len(ev):
            _, _, d = desc_mod.day_and_keep(ev, days, opts.day_key, opts.max_lag)
            for k in diag:
                diag[k] += d[k]
    return diag


def describe(files: list[str], vocab, days: np.ndarray, observed_days: np.ndarray, opts: BuildOptions,
             progress: Callable[[int, int], None] | None = None) -> desc_mod.Descriptors:
    """Descriptors of the events in the Parquet ``files``, one calendar month at a time.

    Descriptors of the events in the Parquet ``files`` on the day axis ``days``, computed one calendar
    month at a time: memory is bounded by one month of events (plus the output arrays), whatever the
    size of the archive or the spread of its dates (the events outside the axis are only counted, file
    by file, from their date columns).  Without a country list, a first pass over the months counts each
    country's events per day (dates and country columns only) and :func:`select_panel` picks the panel.
    Equal to :func:`~wgf_cli.gdelt.descriptors.compute` on all events at once with the same countries.
    The panel report is in the result's ``panel`` attribute (``None`` with a given list).
    """
    import pyarrow.dataset as pads

    dataset = pads.dataset(files, format="parquet")
    windows = month_windows(days, busy_months(files, opts.day_key))
    bounds = [(int(days[a]), int(days[b - 1])) for a, b in windows]
    countries = opts.countries
    panel = None
    if countries is None:
        per_day: dict[str, np.ndarray] = {}
        geo = ["SQLDATE", "DATEADDED", "Actor1Geo_CountryCode", "Actor2Geo_CountryCode", "ActionGeo_CountryCode"]
        for lo, hi in bounds:
            ev = _window_events(dataset, opts.day_key, lo, hi, geo)     # dates and countries only
            d, keep, _ = desc_mod.day_and_keep(ev, days, opts.day_key, opts.max_lag)
            cd = desc_mod.country_day_counts(ev[keep], d[keep], opts.country_by)
            for (c, day), n in cd.items():
                if c not in per_day:
                    per_day[c] = np.zeros(len(days), np.int64)
                per_day[c][day] += n
            del ev
        obs = np.zeros(len(days), bool)
        oi = desc_mod.day_index(np.asarray(observed_days, np.int64), int(days[0]))
        obs[oi[(oi >= 0) & (oi < len(days))]] = True
        countries, panel = select_panel(per_day, obs, opts.min_country_events, opts.min_median_events,
                                        opts.top_countries)
    parts = []
    for i, ((a, b), (lo, hi)) in enumerate(zip(windows, bounds, strict=True)):
        ev = _window_events(dataset, opts.day_key, lo, hi, EVENT_COLUMNS)
        parts.append(desc_mod.compute(ev, vocab, days=days[a:b], observed_days=observed_days, countries=countries,
                                      k=opts.k, day_key=opts.day_key, max_lag=opts.max_lag,
                                      kmeans_iters=opts.kmeans_iters, device=opts.device,
                                      country_by=opts.country_by))
        del ev
        if progress is not None:
            progress(i + 1, len(windows))
    out = desc_mod.concat(parts)
    for k, v in _outside_events(files, days, opts).items():
        out.diagnostics[k] = out.diagnostics.get(k, 0) + v
    out.panel = panel
    return out


def _observed_days(ok: list[dict], first: int, last: int) -> np.ndarray:
    """The days on which the inputs published events, inside ``[first, last]``.

    Publication days of the inputs inside [first, last], plus every day of the date range of the
    header-row exports (a filtered export has no "file published that day" notion).
    """
    pub = {d for e in ok for d in e["pub_days"] if first <= d <= last}
    ranges = [e["export_range"] for e in ok if e.get("export_range")]
    if ranges:
        lo, hi = max(min(r[0] for r in ranges), first), min(max(r[1] for r in ranges), last)
        if lo <= hi:
            pub |= {int(x) for x in desc_mod.day_range(lo, hi)}
    return np.array(sorted(pub), np.int64)


def build(inputs: list[Path], opts: BuildOptions, progress: Callable[[str, int, int], None] | None = None,
          vocab=None, log: Callable[[str], None] | None = None,
          warn: Callable[[str], None] | None = None) -> BuildResult:
    """Build the events, descriptors, sequences (and oracle) from ``inputs`` into ``opts.out_dir``.

    ``log`` receives progress lines, ``warn`` (default: ``log``) every failed or skipped input
    with its cause and every rule that bent the data (dates outside the window, backfile rows
    piled onto their load day).  Raises :class:`BuildError` (one line) when nothing can be
    built: no readable input, no event in the window, no country in the panel.  A build with
    no sequence returns (its descriptors are useful); :func:`no_sequence_reason` says why.
    """
    t0 = time.perf_counter()
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _m: None)
    shout = warn or say
    inputs = expand_archives(list(inputs), out, say)
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
            shout(f"input {entry['name']} failed and is skipped: {entry['error']}")
            if opts.strict:
                raise BuildError(f"strict: input {entry['name']} failed: {entry['error']}")
        elif entry["rows_read"] and not entry["rows_kept"]:
            shout(f"input {entry['name']}: none of its {entry['rows_read']} rows is valid "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(entry['rejects'].items()))})")
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
        failed = sorted(entries.values(), key=lambda e: e["name"])
        why = "; ".join(f"{e['name']}: {e['error']}" for e in failed[:3]) + (" ..." if len(failed) > 3 else "")
        raise BuildError(f"no input could be read: nothing to build ({why})")

    # the day axis: the date window (given, or automatic), then one calendar month at a time
    files = [str(out / rel) for e in sorted(ok, key=lambda e: e["name"]) for rel in e["outputs"]]
    kept_rows = sum(e["rows_kept"] for e in ok)
    pub_days = [d for e in ok for d in e["pub_days"]]
    pub_rows = [r for e in ok for r in e["pub_rows"]]
    for e in ok:                              # the export ranges count as publication days too
        if e.get("export_range"):
            pub_days += list(e["export_range"])
            pub_rows += [0, 0]
    if not files or kept_rows == 0 or not pub_days:
        atomic_json(mpath, manifest)
        raise BuildError("the inputs hold no valid event: nothing to describe")
    first, last, window = day_window(pub_days, pub_rows, opts.start, opts.end, opts.split_gap, opts.tail_fraction)
    manifest["window"] = window
    if window["pub_rows_outside"]:
        shout(f"date window {first}..{last}: {window['pub_rows_outside']} rows published on "
              f"{window['pub_days_outside']} days outside it are left out of the descriptors"
              + (" (automatic window: the largest cluster of publication days; set descriptors.start/end "
                 "to choose)" if window["automatic"] else ""))
    days = desc_mod.day_range(first, last)
    observed = _observed_days(ok, first, last)
    say(f"descriptors of {kept_rows} events over {len(days)} days ({first}..{last})")
    d = describe(files, vocab, days, observed, opts,
                 progress=(lambda i, n: progress("descriptors", i, n)) if progress else None)
    if d.panel is not None:
        manifest["panel"] = d.panel
        if d.panel["left_out"]:
            say(f"panel: {len(d.countries)} countries; {len(d.panel['left_out'])} left out "
                f"({d.panel['left_out_events']} events; see manifest.json panel.left_out)")
    collapsed = d.diagnostics.get("backfile_on_load_day", 0)
    if opts.day_key == "dateadded" and collapsed:
        shout(f"day_key=dateadded: {collapsed} backfile rows ({collapsed / max(d.diagnostics['events_in'], 1):.0%} "
              f"of the events) are keyed by their load day (DATEADDED of the 2013 bulk load), not the day they "
              f"happened: they pile onto that day or fall off the axis; use descriptors.day_key=sqldate")
    atomic_npz(out / "descriptors" / "descriptors.npz", **d.arrays())
    atomic_npz(out / "descriptors" / "standard_events.npz", **desc_mod.standard_events(vocab))

    seqs = sequences.sample(d.observed, d.countries, d.days, count=opts.sequences, context=opts.context,
                            fractions=opts.fractions, seed=opts.seed,
                            max_gap=min(opts.max_gap, max(opts.context - 1, 0)))   # >= 1 observed context day
    manifest["sequences"] = seqs.report
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
        "splits": seqs.splits, "oracle": has_oracle, "country_by": opts.country_by, "max_gap": opts.max_gap,
    }
    manifest["outputs"] = {
        "events": "events/", "rejects": "rejects/", "descriptors": "descriptors/descriptors.npz",
        "standard_events": "descriptors/standard_events.npz", "sequences": "sequences/index.parquet",
        **({"oracle": "oracle.npz"} if has_oracle else {}),
    }
    manifest["descriptors"] = {"day_key": opts.day_key, "max_lag": opts.max_lag, "country_by": opts.country_by,
                               **d.diagnostics, "sequences_available": seqs.available}
    atomic_json(mpath, manifest)
    summary.update({
        "countries": len(d.countries), "days": len(d.days), "observed_days": int(d.observed[0].sum()),
        "first_day": int(d.days[0]), "last_day": int(d.days[-1]),
        "sequences": len(seqs.index),
        **{f"sequences_{s}": int((seqs.index["split"] == s).sum()) for s in sequences.SPLITS},
        "sequences_possible": seqs.report["possible"], "sequences_valid": seqs.report["valid"],
        "sequences_masked": seqs.report["windows_with_unobserved_days"],
        "events_described": int(d.diagnostics["memberships"]), "events_too_old": d.diagnostics["too_old"],
        "events_outside_days": d.diagnostics["outside_days"],
        "rows_outside_window": window["pub_rows_outside"],
        "countries_left_out": len(d.panel["left_out"]) if d.panel is not None else 0,
        "read_s": round(read_s, 3), "wall_s": round(wall, 3),
        "rows_per_s": round(summary["rows_read"] / read_s, 1) if todo and read_s > 0 else None,
    })
    return BuildResult(summary, manifest, d, seqs)


def no_sequence_reason(res: BuildResult) -> str | None:
    """Why a build made no sequence (one line), or ``None`` when it made some."""
    seqs, d = res.sequences, res.descriptors
    if seqs is None or len(seqs.index):
        return None
    r = seqs.report
    D, C = len(d.days), len(d.countries)
    why = (f"the day axis ({D} days) is not longer than sequences.context ({r['context']})" if D <= r["context"]
           else f"of its {r['possible']} windows {r['target_unobserved']} have an unobserved target day and "
                f"{r['gap_too_long']} a run of more than {r['max_gap']} unobserved days (sequences.max_gap)")
    return (f"no usable sequence: {C} countries x {D} days ({int(d.days[0])}..{int(d.days[-1])}), "
            f"context {r['context']}: {why}; the descriptors are written (manifest.json: window, sequences)")


def oracle_log_loss(counts: np.ndarray, root_probs: np.ndarray, index, context: int, split: str = "test") -> float:
    """Mean per-event root-code cross entropy of ``root_probs`` on the targets of ``split``.

    Mean per-event root-code cross entropy of ``root_probs`` on the targets of ``split`` (the contract's
    LL; target days with no event are left out).
    """
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

