"""Read one raw GDELT event file (zipped or not) into a clean, typed Arrow table.

The fast path parses the file with Arrow's CSV reader on one thread, tab-separated with
quoting, escaping and multi-line values all **off** (a quote is data in GDELT), keeping only
the 14 columns of :data:`~wgf_cli.gdelt.schema.KEPT` as strings.  The layout (57, 58 or 61
columns) is detected from the column count of the first lines; every row with another count
is handed to a callback and re-parsed by its own count, so a file mixing layouts is read
row by row correctly, and a row with an unknown count is rejected with the reason.

:func:`clean` then applies the cleaning rules (each counted in the :class:`InputReport`):

* whitespace stripped from every kept field (``repairs["whitespace"]``);
* marker rows (EventCode ``---`` or ``X``, root ``--`` or ``X``) rejected as ``marker_row``;
* numeric fields parsed strictly; a bad value rejects the row as ``bad_type:<column>``;
* CAMEO codes kept as strings; a code whose leading zeros were lost (``43`` for ``043``,
  root ``4``) is restored when the result is a valid code of ``CAMEO.eventcodes.txt`` that
  agrees with its root / base code (``repairs["leading_zero"]``), rejected otherwise
  (``bad_event_code``);
* the 1920 bug: SQLDATE in 1920 and DATEADDED between 2019-12-31 and 2020-01-05 -> +100
  years on SQLDATE, MonthYear, Year, FractionDate (``repairs["date_1920"]``);
* range checks: QuadClass in 1..4 (``bad_quadclass``), IsRootEvent in {0, 1}
  (``bad_isroot``), GoldsteinScale in [-10, 10] and present (``bad_goldstein``), SQLDATE a
  valid calendar date >= 19790101 (``bad_sqldate``), geo country codes two capital letters
  or empty (``bad_country_code``);
* a wrong field count: ``field_count_<n>``.

Rejected rows are returned with their reason for the per-input rejects file.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from wgf_cli.gdelt import schema

_INT_COLS = ["GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "IsRootEvent", "QuadClass", "DATEADDED"]
_FLOAT_COLS = ["FractionDate", "GoldsteinScale"]
_INT_RE = r"^[-+]?[0-9]+$"
_FLOAT_RE = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_MARKERS = ["---", "--", "X"]


class InputError(Exception):
    """An input that cannot be read at all (corrupt zip, unknown layout, I/O error)."""


@dataclass
class InputReport:
    """What happened to one input file."""

    name: str
    size: int = 0
    md5: str = ""
    layouts: dict[str, int] = field(default_factory=dict)   # column count -> rows
    rows_read: int = 0
    rows_kept: int = 0
    rows_repaired: int = 0                                   # kept rows with >= 1 repair
    repairs: dict[str, int] = field(default_factory=dict)    # rule -> rows
    rows_rejected: int = 0
    rejects: dict[str, int] = field(default_factory=dict)    # reason -> rows
    error: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_bytes(path: str | Path) -> bytes:
    """The raw text of an input: the (single) member of a ``.zip``, or the file itself.

    Raises :class:`InputError` for a corrupt or truncated zip.
    """
    path = Path(path)
    if path.suffix.lower() != ".zip":
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if not members:
                raise InputError(f"{path.name}: empty zip archive")
            return b"".join(zf.read(m) for m in members)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InputError(f"{path.name}: corrupt zip ({exc})") from None


def detect_layout(data: bytes, lines: int = 1000) -> tuple[int, int]:
    """(layout, byte offset) of the first line, among the first ``lines``, whose column count
    is a GDELT layout (57, 58, 61); :class:`InputError` if there is none."""
    offset = 0
    counts = []
    for line in data[: 1 << 22].split(b"\n")[:lines]:
        cols = line.count(b"\t") + 1
        if cols in schema.LAYOUTS:
            return cols, offset
        if line.strip():
            counts.append(cols)
        offset += len(line) + 1
    raise InputError(f"unknown layout: column counts {sorted(set(counts))} (GDELT has 57, 58 or 61)")


def parse(data: bytes) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Raw bytes -> (table of the kept columns as strings + ``layout`` int8, field-count
    rejects as ``(reason, raw line)``).  Rows are in file order within each layout."""
    if not data.strip():
        return _empty_strings(), []
    layout, offset = detect_layout(data)  # Arrow takes the column count of the first row
    idx = schema.kept_indices(layout)
    others: list[str] = data[:offset].decode("utf-8", "replace").split("\n") if offset else []

    def handler(row) -> str:
        others.append(row.text)
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(memoryview(data)[offset:]),
        read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False,
                                       block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False,
                                         escape_char=False, newlines_in_values=False,
                                         ignore_empty_lines=True, invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(
            include_columns=[f"f{i}" for i in idx.values()],
            column_types={f"f{i}": pa.string() for i in idx.values()},
            strings_can_be_null=False, check_utf8=False),
    )
    table = table.rename_columns(list(idx))
    table = table.append_column("layout", pa.array(np.full(table.num_rows, layout, np.int8)))
    bad: list[tuple[str, str]] = []
    if others:
        rows: dict[int, list[list[str]]] = {}
        for text in others:
            fields = text.rstrip("\r").split("\t")
            if len(fields) in schema.LAYOUTS:
                rows.setdefault(len(fields), []).append(fields)
            elif text.strip():
                bad.append((f"field_count_{len(fields)}", text))
        parts = [table]
        for lay, group in sorted(rows.items()):
            li = schema.kept_indices(lay)
            cols = {name: pa.array([r[i] for r in group], pa.string()) for name, i in li.items()}
            cols["layout"] = pa.array(np.full(len(group), lay, np.int8))
            parts.append(pa.table(cols))
        table = pa.concat_tables(parts)
    return table, bad


def _empty_strings() -> pa.Table:
    cols = {name: pa.array([], pa.string()) for name in schema.KEPT}
    cols["layout"] = pa.array([], pa.int8())
    return pa.table(cols)


# -- cleaning ---------------------------------------------------------------------
def _repair_codes(root: str, base: str, code: str, valid: frozenset[str]) -> tuple[str, str, str, bool] | None:
    """Restore lost leading zeros of one (root, base, code) triple; ``None`` if invalid."""
    repaired = False
    if root not in schema.ROOT_QUAD:
        if root.isdigit() and len(root) == 1 and "0" + root in schema.ROOT_QUAD:
            root, repaired = "0" + root, True
        else:
            return None
    if not (code in valid and len(code) >= 3 and code.startswith(root)):
        fixed = "0" + code
        if code.isdigit() and len(fixed) <= 4 and fixed in valid and fixed.startswith(root):
            code, repaired = fixed, True
        else:
            return None
    if base != code[:3]:
        if base.isdigit() and "0" + base == code[:3]:
            base, repaired = code[:3], True
        else:
            return None
    return root, base, code, repaired


def _valid_dates(d: np.ndarray) -> np.ndarray:
    y, m, day = d // 10000, (d // 100) % 100, d % 100
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    dim = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(m, 0, 12)] + (leap & (m == 2))
    return (d >= 19790101) & (m >= 1) & (m <= 12) & (day >= 1) & (day <= dim)


def clean(raw: pa.Table, source_file: str, report: InputReport
          ) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Apply the cleaning rules to a string table from :func:`parse`.

    Returns the typed clean table (:data:`schema.KEPT` + ``Multi_Country_Flag`` +
    ``source_file``) and the rejected rows as ``(reason, tab-joined kept fields)``;
    updates ``report`` (layouts, rows kept / repaired / rejected, repairs, rejects).
    """
    n = raw.num_rows
    lay = raw.column("layout").to_numpy()
    for value, count in zip(*np.unique(lay, return_counts=True), strict=True):
        report.layouts[str(int(value))] = report.layouts.get(str(int(value)), 0) + int(count)
    cols: dict[str, pa.ChunkedArray] = {}
    padded = np.zeros(n, bool)
    for name in schema.KEPT:
        col = raw.column(name)
        trimmed = pc.utf8_trim_whitespace(col)
        padded |= pc.not_equal(pc.binary_length(col), pc.binary_length(trimmed)).to_numpy(zero_copy_only=False)
        cols[name] = trimmed
    reason = np.full(n, "", dtype=object)

    def reject(mask: np.ndarray, why: str) -> None:
        new = mask & (reason == "")
        reason[new] = why

    ec, rc = cols["EventCode"], cols["EventRootCode"]
    marker = (pc.is_in(ec, pa.array(_MARKERS)).to_numpy(zero_copy_only=False)
              | pc.is_in(rc, pa.array(_MARKERS)).to_numpy(zero_copy_only=False))
    reject(marker, "marker_row")
    values: dict[str, np.ndarray] = {}
    for name in _INT_COLS + _FLOAT_COLS:
        ok = pc.match_substring_regex(cols[name], _INT_RE if name in _INT_COLS else _FLOAT_RE)
        ok_np = ok.to_numpy(zero_copy_only=False)
        reject(~ok_np, f"bad_type:{name}")
        safe = pc.if_else(ok, cols[name], pa.scalar("0"))
        dtype = pa.int64() if name in _INT_COLS else pa.float64()
        values[name] = pc.cast(safe, dtype).to_numpy()

    # CAMEO codes: unique (root, base, code) triples, repaired once each
    key = pc.binary_join_element_wise(rc, cols["EventBaseCode"], ec, "|")
    enc = pc.dictionary_encode(key).combine_chunks()
    valid = frozenset(schema.cameo().codes)
    uniq = enc.dictionary.to_pylist()
    fixed = [_repair_codes(*u.split("|"), valid) for u in uniq]
    ok_u = np.array([f is not None for f in fixed], bool)
    rep_u = np.array([f is not None and f[3] for f in fixed], bool)
    ind = enc.indices.to_numpy()
    code_ok, code_rep = ok_u[ind], rep_u[ind]
    reject(~code_ok, "bad_event_code")
    out_codes = {}
    for j, name in enumerate(["EventRootCode", "EventBaseCode", "EventCode"]):
        dic = np.array([f[j] if f is not None else "" for f in fixed] or [""], dtype=object)
        out_codes[name] = dic[ind] if n else np.array([], object)

    # the 1920 bug
    sql, added = values["SQLDATE"], values["DATEADDED"]
    added_day = np.where(added >= 10**10, added // 1_000_000, added)
    bug = (sql // 10000 == 1920) & (added_day >= 20191231) & (added_day <= 20200105)
    values["SQLDATE"] = sql + bug * 1_000_000
    values["MonthYear"] = values["MonthYear"] + bug * 10_000
    values["Year"] = values["Year"] + bug * 100
    values["FractionDate"] = values["FractionDate"] + bug * 100.0

    quad, gold = values["QuadClass"], values["GoldsteinScale"]
    reject((quad < 1) | (quad > 4), "bad_quadclass")
    reject((values["IsRootEvent"] < 0) | (values["IsRootEvent"] > 1), "bad_isroot")
    reject(~((gold >= -10) & (gold <= 10)), "bad_goldstein")
    reject(~_valid_dates(values["SQLDATE"]), "bad_sqldate")
    geo = {}
    for name in ["Actor1Geo_CountryCode", "Actor2Geo_CountryCode"]:
        s = cols[name]
        okc = pc.or_(pc.equal(pc.binary_length(s), 0), pc.match_substring_regex(s, r"^[A-Z]{2}$"))
        reject(~okc.to_numpy(zero_copy_only=False), "bad_country_code")
        geo[name] = s

    keep = reason == ""
    report.rows_read += n
    report.rows_kept += int(keep.sum())
    for why, count in Counter(reason[~keep]).items():
        report.rejects[why] = report.rejects.get(why, 0) + count
    report.rows_rejected += int((~keep).sum())
    for rule, mask in (("whitespace", padded), ("leading_zero", code_rep), ("date_1920", bug)):
        if (c := int((mask & keep).sum())):
            report.repairs[rule] = report.repairs.get(rule, 0) + c
    report.rows_repaired += int(((padded | code_rep | bug) & keep).sum())

    rejected: list[tuple[str, str]] = []
    if (~keep).any():
        bad_idx = np.flatnonzero(~keep)
        sub = raw.take(pa.array(bad_idx)).select(schema.KEPT).to_pydict()
        rejected = [(reason[i], "\t".join(sub[c][j] for c in schema.KEPT)) for j, i in enumerate(bad_idx)]

    kidx = np.flatnonzero(keep)
    a1 = geo["Actor1Geo_CountryCode"].take(pa.array(kidx))
    a2 = geo["Actor2Geo_CountryCode"].take(pa.array(kidx))
    both = pc.and_(pc.greater(pc.binary_length(a1), 0), pc.greater(pc.binary_length(a2), 0))
    multi = pc.if_else(both, pc.cast(pc.not_equal(a1, a2), pa.int8()), pa.scalar(None, pa.int8()))
    out = {}
    for name in schema.KEPT:
        typ = schema.KEPT_TYPES[name]
        if name in out_codes:
            out[name] = pa.array(out_codes[name][kidx], pa.string())
        elif name in geo:
            arr = a1 if name == "Actor1Geo_CountryCode" else a2
            out[name] = pc.if_else(pc.equal(pc.binary_length(arr), 0), pa.scalar(None, pa.string()), arr)
        else:
            out[name] = pa.array(values[name][kidx].astype(typ))
    out["Multi_Country_Flag"] = multi
    out["source_file"] = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(len(kidx), np.int32)), pa.array([source_file]))
    return pa.table(out), rejected


def read_file(path: str | Path, name: str | None = None) -> tuple[pa.Table, list[tuple[str, str]], InputReport]:
    """Parse and clean one input: (clean table, rejects, report).  Raises :class:`InputError`
    when the input cannot be read at all."""
    path = Path(path)
    name = name or path.name
    report = InputReport(name=name, size=path.stat().st_size, md5=file_md5(path))
    data = read_bytes(path)
    raw, bad = parse(data)
    del data
    table, rejected = clean(raw, name, report)
    for why, _ in bad:
        report.rejects[why] = report.rejects.get(why, 0) + 1
        report.layouts["other"] = report.layouts.get("other", 0) + 1
    report.rows_read += len(bad)
    report.rows_rejected += len(bad)
    return table, rejected + bad, report
