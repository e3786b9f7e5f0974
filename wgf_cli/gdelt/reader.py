"""Read one raw GDELT event file (zipped or not) into a clean, typed Arrow table.

Two routes give the same result:

* the **C pass** (:func:`parse_fast`, ``_fastread.c``, built at install): one tokenizing pass
  over the bytes, tab-separated with quoting off (a quote is data in GDELT), the layout (57,
  58 or 61 columns) taken from each row's own field count, the 20 columns of
  :data:`~wgf_cli.gdelt.schema.KEPT` (SOURCEURL: 58 and 61 columns) parsed straight into typed
  arrays.  It takes every row
  whose kept fields are in plain form and declines the others (markers, whitespace, empty or
  odd numbers, other field counts), which go the general way;
* the **general route** (:func:`parse_general`): Arrow's CSV reader on one thread, quoting,
  escaping and multi-line values off, the layout detected from the first lines; rows with
  another count are handed to a callback and re-parsed by their own count, so a file mixing
  layouts is read row by row correctly, and a row with an unknown count is rejected with the
  reason.  It reads whole inputs when the extension is not built;
* a file whose first line is a **header** naming GLOBALEVENTID, SQLDATE and EventCode (a
  BigQuery / CSV export: comma separated, ``NA`` for missing, double-quoted strings) is read
  by :func:`parse_header_csv`, its columns matched by name (layout ``csv``).

A zipped input is inflated with libdeflate (``deflate``, about 2.5x zlib) when installed.

:func:`clean` then applies the cleaning rules (each counted in the :class:`InputReport`):

* whitespace stripped from every kept field (``repairs["whitespace"]``);
* marker rows (EventCode ``---`` or ``X``, root ``--`` or ``X``) rejected as ``marker_row``;
* numeric fields parsed strictly; a bad value, or one outside its column's type (int32
  dates, int8 flags), rejects the row as ``bad_type:<column>``;
* CAMEO codes kept as strings; a code whose leading zeros were lost (``43`` for ``043``,
  root ``4``) is restored when the result is a valid code of ``CAMEO.eventcodes.txt`` that
  agrees with its root / base code (``repairs["leading_zero"]``), rejected otherwise
  (``bad_event_code``);
* the 1920 bug: SQLDATE in 1920 and DATEADDED between 2019-12-31 and 2020-01-05 -> +100
  years on SQLDATE, MonthYear, Year, FractionDate (``repairs["date_1920"]``);
* ``NumMentions`` / ``AvgTone`` that are absent or malformed become null (never a reject); an
  empty actor country code, ``ActionGeo_CountryCode`` or ``SOURCEURL`` is null;
* range checks: QuadClass in 1..4 (``bad_quadclass``), IsRootEvent in {0, 1}
  (``bad_isroot``), GoldsteinScale in [-10, 10] and present (``bad_goldstein``), SQLDATE a
  valid calendar date >= 19790101 (``bad_sqldate``), geo country codes (both actors' and the
  action's) two capital letters or empty (``bad_country_code``);
* a wrong field count: ``field_count_<n>``.

Rejected rows are returned with their reason for the per-input rejects file.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from wgf_cli.gdelt import schema

try:  # the C pass; optional: without it every input goes through Arrow's reader
    from wgf_cli.gdelt import _fastread
except ImportError:  # pragma: no cover - a build without a C compiler
    _fastread = None
try:  # libdeflate's one-shot inflate; optional: zipfile's zlib otherwise
    import deflate as _deflate
except ImportError:  # pragma: no cover
    _deflate = None
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError) + (
    (_deflate.DeflateError,) if _deflate is not None else ())

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
        """The report as a JSON-ready dict."""
        return dict(self.__dict__)


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """The md5 hex digest of the file at ``path``, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _member_bytes(zf: zipfile.ZipFile, fh, info: zipfile.ZipInfo) -> bytes:
    """One member's bytes.

    A deflated member is inflated in one call by libdeflate when it is installed (about 2.5x zlib), into
    exactly its recorded size, and its CRC-32 checked as :mod:`zipfile` does; anything else goes through
    :mod:`zipfile`.
    """
    if _deflate is None or info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 0x1:
        return zf.read(info)
    if info.file_size > 1032 * info.compress_size + 1024:        # beyond deflate's largest ratio
        raise zipfile.BadZipFile(f"{info.filename}: impossible size {info.file_size}")
    fh.seek(info.header_offset)
    head = fh.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header of {info.filename}")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    fh.seek(info.header_offset + 30 + name_len + extra_len)
    comp = fh.read(info.compress_size)
    if len(comp) != info.compress_size:
        raise EOFError(f"{info.filename}: truncated")
    data = _deflate.deflate_decompress(comp, info.file_size) if info.file_size else b""
    if len(data) != info.file_size or _deflate.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 or size of {info.filename}")
    return data


def read_bytes(path: str | Path) -> bytes:
    """The raw text of an input: the member(s) of a ``.zip``, or the file itself.

    Raises :class:`InputError` for a corrupt or truncated zip.
    """
    path = Path(path)
    if path.suffix.lower() != ".zip":
        return path.read_bytes()
    try:
        with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if not members:
                raise InputError(f"{path.name}: empty zip archive")
            parts = [_member_bytes(zf, fh, m) for m in members]
            return parts[0] if len(parts) == 1 else b"".join(parts)
    except _ZIP_ERRORS as exc:
        raise InputError(f"{path.name}: corrupt zip ({exc})") from None


def detect_layout(data: bytes, lines: int = 500) -> tuple[int, int]:
    """The layout and byte offset of the first line that has a GDELT column count.

    (layout, byte offset) of the first line, among the first ``lines``, whose column count is a GDELT
    layout (57, 58, 61); :class:`InputError` if there is none.
    """
    offset = 0
    counts = []
    for line in data[: 1 << 20].split(b"\n", lines)[:lines]:
        cols = line.count(b"\t") + 1
        if cols in schema.LAYOUTS:
            return cols, offset
        if line.strip():
            counts.append(cols)
        offset += len(line) + 1
    raise InputError(f"unknown layout: column counts {sorted(set(counts))} (GDELT has 57, 58 or 61)")


_DICT = pa.dictionary(pa.int32(), pa.string())
_GEO_COLS = ["Actor1Geo_CountryCode", "Actor2Geo_CountryCode", "ActionGeo_CountryCode"]
_CC3_COLS = ["Actor1CountryCode", "Actor2CountryCode"]
_STR_COLS = ["EventCode", "EventBaseCode", "EventRootCode", *_GEO_COLS, *_CC3_COLS]
#: numbers kept as null when absent or malformed (they reject no row)
_SOFT_COLS = {"NumMentions": True, "AvgTone": False}          # name -> integer


def _read(data, idx: dict[str, int], typed: bool, handler=None) -> pa.Table:
    """Arrow CSV read of the kept columns, quoting off, one thread.

    ``typed``: the event id as int64, every other column dictionary-encoded (few distinct values per
    file: dates, codes, scores), so that cleaning works on the distinct values only; raises on a row
    that does not fit.  Otherwise every column as a string.
    """
    if typed:
        types = {f"f{i}": (pa.int64() if n == "GLOBALEVENTID" else pa.string() if n == "SOURCEURL" else _DICT)
                 for n, i in idx.items()}
    else:
        types = {f"f{i}": pa.string() for i in idx.values()}
    parse_opts = dict(delimiter="\t", quote_char=False, double_quote=False, escape_char=False,
                      newlines_in_values=False, ignore_empty_lines=True)
    if handler is not None:
        parse_opts["invalid_row_handler"] = handler
    table = pacsv.read_csv(
        data,
        read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(**parse_opts),
        convert_options=pacsv.ConvertOptions(include_columns=[f"f{i}" for i in idx.values()], column_types=types,
                                             strings_can_be_null=False, check_utf8=False,
                                             null_values=[""], quoted_strings_can_be_null=False),
    )
    return _complete(table.rename_columns(list(idx)))


def _complete(table: pa.Table) -> pa.Table:
    """The kept columns a layout lacks (SOURCEURL of the 57-column backfile) as nulls."""
    for name in schema.KEPT:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def is_header(data) -> bool:
    """Whether the input starts with a header row (a BigQuery / CSV export).

    Its first line names GLOBALEVENTID, SQLDATE and EventCode, in any order.
    """
    first = bytes(data[: 1 << 16]).split(b"\n", 1)[0].upper()
    return b"GLOBALEVENTID" in first and b"SQLDATE" in first and b"EVENTCODE" in first


def parse_header_csv(data) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Parse an export with a header row (BigQuery's CSV) into the kept columns.

    An export with a header row (BigQuery's CSV: comma separated, ``NA`` or empty for a missing value,
    double-quoted strings; tab-separated headers too): the kept columns by name, as strings, with
    ``layout`` = :data:`schema.CSV_LAYOUT`.  Other columns (``row_id``, the 2.0 ``*_ADM2Code``) are
    ignored; a missing required column makes the input unreadable.
    """
    first = bytes(data[: 1 << 16]).split(b"\n", 1)[0]
    delim = "\t" if first.count(b"\t") > first.count(b",") else ","
    names = [x.strip().strip('"').strip().lstrip("\ufeff") for x in first.decode("utf-8", "replace").split(delim)]
    missing = [c for c in schema.REQUIRED if c not in names]
    if missing:
        raise InputError(f"unknown layout: a header row without {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''}")
    bad: list[tuple[str, str]] = []

    def handler(row) -> str:
        bad.append((f"field_count_{row.actual_columns}", row.text or ""))
        return "skip"

    want = [c for c in schema.KEPT if c in names]
    table = pacsv.read_csv(
        io.BytesIO(data) if not isinstance(data, io.IOBase) else data,
        read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter=delim, quote_char='"', double_quote=True, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=True,
                                         invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(include_columns=want, column_types={c: pa.string() for c in want},
                                             null_values=["NA", ""], strings_can_be_null=True,
                                             quoted_strings_can_be_null=False, check_utf8=False))
    table = pa.table({c: pc.fill_null(table.column(c), "") for c in want})
    table = _complete(table)
    return table.append_column("layout", pa.array(np.full(table.num_rows, schema.CSV_LAYOUT, np.int8))), bad


def parse_general(data: bytes) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Parse raw bytes into the kept columns and the field-count rejects with Arrow's CSV reader.

    Raw bytes -> (table of the kept columns + ``layout`` int8, field-count rejects as ``(reason, raw
    line)``) with Arrow's CSV reader alone.  Rows are in file order within each layout.

    A file whose rows all have the first row's layout and whose numbers all parse is read
    typed (numbers as numbers, codes dictionary-encoded).  Otherwise the file is re-read with
    every column as a string and rows of other counts collected by a callback (slower: Arrow's
    row callback costs about 2x) and parsed by their own layout.
    """
    if not data or data.isspace():
        return _empty_strings(), []
    layout, offset = detect_layout(data)  # Arrow takes the column count of the first row
    idx = schema.kept_indices(layout)
    if offset == 0:
        try:
            table = _read(io.BytesIO(data), idx, typed=True)
            return table.append_column("layout", pa.array(np.full(table.num_rows, layout, np.int8))), []
        except pa.ArrowInvalid:
            pass
    others: list[str] = data[:offset].decode("utf-8", "replace").split("\n") if offset else []

    def handler(row) -> str:
        others.append(row.text)
        return "skip"

    table = _read(io.BytesIO(memoryview(data)[offset:]), idx, typed=False, handler=handler)
    table = table.select(schema.KEPT).append_column("layout", pa.array(np.full(table.num_rows, layout, np.int8)))
    bad: list[tuple[str, str]] = []
    if others:
        rows: dict[int, list[list[str]]] = {}
        for text in others:
            fields = text.rstrip("\r").split("\t")
            if len(fields) in schema.LAYOUTS:
                rows.setdefault(len(fields), []).append(fields)
            elif text.strip():
                bad.append(_field_count_reject(text))
        parts = [table]
        for lay, group in sorted(rows.items()):
            li = schema.kept_indices(lay)
            cols = _complete(pa.table({name: pa.array([r[i] for r in group], pa.string()) for name, i in li.items()}))
            parts.append(cols.select(schema.KEPT).append_column("layout", pa.array(np.full(len(group), lay, np.int8))))
        table = pa.concat_tables(parts)
    return table, bad


#: most lines per input the C pass may decline before the whole input is read the general way
MAX_DECLINED = 1 << 14
#: size of each key segment of the C pass (> its largest key, 10000 * 4 + 9999)
_NKEY = 50_000
#: the dictionary columns of the C pass, in its order
_FAST_DICT = ["EventCode", "EventBaseCode", "EventRootCode", "Actor1Geo_CountryCode", "Actor2Geo_CountryCode",
              "ActionGeo_CountryCode", "Actor1CountryCode", "Actor2CountryCode"]


def _decode_codes(keys: np.ndarray) -> list[str]:
    """CAMEO codes from the C pass's keys (10000 * length + value)."""
    return [f"{k % 10000:0{k // 10000}d}" for k in keys.tolist()]


def _decode_countries(keys: np.ndarray) -> list[str]:
    """Two-letter codes from the C pass's keys (0: empty, else 1 + 26 * a + b)."""
    return ["" if k == 0 else chr(65 + (k - 1) // 26) + chr(65 + (k - 1) % 26) for k in keys.tolist()]


def _decode_cc3(keys: np.ndarray) -> list[str]:
    """Three-letter CAMEO country codes from the C pass's keys (0: empty, else 1 + 676 a + 26 b + c)."""
    return ["" if k == 0 else chr(65 + (k - 1) // 676) + chr(65 + (k - 1) // 26 % 26) + chr(65 + (k - 1) % 26)
            for k in keys.tolist()]


def parse_fast(data) -> tuple[pa.Table, bytes] | None:
    """The C pass (:mod:`wgf_cli.gdelt._fastread`).

    (typed table of the rows in plain form, the declined lines, each ended by a newline), or ``None``
    when the extension is not built or the input is not mostly plain rows (then :func:`parse_general`
    reads all of it).
    """
    if _fastread is None:
        return None
    cap = len(data) // 56 + 2           # a row has at least 56 tabs
    ints = [np.empty(cap, t) for t in (np.int64, np.int32, np.int32, np.int32, np.int8, np.int8, np.int64)]
    floats = [np.empty(cap, np.float64) for _ in range(2)]
    mentions, tone = np.empty(cap, np.int32), np.empty(cap, np.float64)
    index = [np.empty(cap, np.int32) for _ in _FAST_DICT]
    layout = np.empty(cap, np.int8)
    url_off, url = np.empty(cap + 1, np.int64), np.empty(max(len(data), 1), np.uint8)
    declined = np.empty(2 * MAX_DECLINED, np.int64)
    keys = np.empty(len(_FAST_DICT) * _NKEY, np.int32)
    rows, ndec, status, nkeys = _fastread.parse(data, *ints, *floats, mentions, tone, *index, layout, url_off, url,
                                                declined, keys)
    if status != 0 or rows == 0:
        return None
    cols = {}
    for j, (name, count) in enumerate(zip(_FAST_DICT, nkeys, strict=True)):
        decode = _decode_codes if j < 3 else _decode_cc3 if name in _CC3_COLS else _decode_countries
        values = pa.array(decode(keys[j * _NKEY: j * _NKEY + count]), pa.string())
        cols[name] = pa.DictionaryArray.from_arrays(pa.array(index[j][:rows]), values)
    i_id, i_sql, i_my, i_year, i_root, i_quad, i_added = (a[:rows] for a in ints)
    urls = pa.LargeStringArray.from_buffers(rows, pa.py_buffer(url_off[:rows + 1]),
                                            pa.py_buffer(url[:int(url_off[rows])])).cast(pa.string())
    cols = {
        "GLOBALEVENTID": i_id, "SQLDATE": i_sql, "MonthYear": i_my, "Year": i_year,
        "FractionDate": floats[0][:rows], "IsRootEvent": i_root,
        "EventCode": cols["EventCode"], "EventBaseCode": cols["EventBaseCode"], "EventRootCode": cols["EventRootCode"],
        "QuadClass": i_quad, "GoldsteinScale": floats[1][:rows],
        "Actor1Geo_CountryCode": cols["Actor1Geo_CountryCode"], "Actor2Geo_CountryCode": cols["Actor2Geo_CountryCode"],
        "DATEADDED": i_added, "ActionGeo_CountryCode": cols["ActionGeo_CountryCode"],
        "Actor1CountryCode": cols["Actor1CountryCode"], "Actor2CountryCode": cols["Actor2CountryCode"],
        "NumMentions": mentions[:rows], "AvgTone": tone[:rows], "SOURCEURL": urls, "layout": layout[:rows],
    }
    view = memoryview(data)
    rest = b"".join(bytes(view[a:b]) + b"\n" for a, b in declined[:2 * ndec].reshape(-1, 2).tolist())
    return pa.table(cols), rest


def parse(data) -> tuple[list[pa.Table], list[tuple[str, str]]]:
    """Raw bytes -> (raw tables of the kept columns + ``layout``, field-count rejects).

    The C pass takes every row in plain form (the vast majority); the lines it declines, or
    the whole input when the pass is unavailable, go through :func:`parse_general`.  Each
    table is then cleaned on its own (:func:`clean`) and :func:`read_file` puts the rows back
    in GLOBALEVENTID order, so both routes give the same result.
    """
    if is_header(data):
        table, bad = parse_header_csv(data)
        return [table], bad
    fast = parse_fast(data)
    if fast is None:
        table, bad = parse_general(data)
        return [table], bad
    table, rest = fast
    if not rest.strip():
        return [table], []
    try:
        other, bad = parse_general(rest)
    except InputError:                  # no declined line has a GDELT layout
        lines = rest.decode("utf-8", "replace").split("\n")
        return [table], [_field_count_reject(x) for x in lines if x.strip()]
    return [table, other], bad


def _field_count_reject(text: str) -> tuple[str, str]:
    """``(reason, line)`` of a line whose field count is no GDELT layout."""
    return f"field_count_{text.rstrip(chr(13)).count(chr(9)) + 1}", text


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


def _factorize(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of int keys and each row's index into them.

    Sorted distinct values of int keys and each row's index into them (``np.unique(...,
    return_inverse=True)``, by a presence table over the keys' span when it is small: O(n), no sort).
    """
    if len(key) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    low = int(key.min())
    span = int(key.max()) - low + 1
    if span > 4 * len(key) + 1_000_000:
        return np.unique(key, return_inverse=True)
    shifted = key - low if low else key
    present = np.zeros(span, bool)
    present[shifted] = True
    uniq = np.flatnonzero(present)
    lookup = np.cumsum(present, dtype=np.int32) - 1
    return uniq + low, lookup[shifted]


def _valid_dates(d: np.ndarray) -> np.ndarray:
    y, m, day = d // 10000, (d // 100) % 100, d % 100
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    dim = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(m, 0, 12)] + (leap & (m == 2))
    return (d >= 19790101) & (m >= 1) & (m <= 12) & (day >= 1) & (day <= dim)


def _numeric(col: pa.ChunkedArray, is_int: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | bool]:
    """(values, ok, padded) of a numeric column, typed (null = bad) or string (strict regex after trimming whitespace).

    ``ok`` is ``None`` when every value is good.
    """
    if pa.types.is_string(col.type):
        trimmed = pc.utf8_trim_whitespace(col)
        padded = pc.not_equal(pc.binary_length(col), pc.binary_length(trimmed)).to_numpy(zero_copy_only=False)
        ok = pc.match_substring_regex(trimmed, _INT_RE if is_int else _FLOAT_RE)
        safe = pc.if_else(ok, trimmed, pa.scalar("0"))
        values = pc.cast(safe, pa.int64() if is_int else pa.float64()).to_numpy()
        return values, ok.to_numpy(zero_copy_only=False), padded
    if pa.types.is_dictionary(col.type):
        values, ind = _dictionary(col)
        pattern = re.compile(_INT_RE if is_int else _FLOAT_RE)
        trimmed = [v.strip() for v in values]
        ok_v = np.array([bool(pattern.match(v)) for v in trimmed] + [False], bool)
        conv = int if is_int else float
        num = np.array([conv(v) if o else 0 for v, o in zip(trimmed, ok_v, strict=False)] + [0],
                       np.int64 if is_int else np.float64)
        pad = np.array([a != b for a, b in zip(values, trimmed, strict=True)] + [False], bool)
        return num[ind], ok_v[ind], pad[ind]
    if col.null_count == 0:
        return col.to_numpy(), None, False
    ok = pc.is_valid(col).to_numpy(zero_copy_only=False)
    return pc.fill_null(col, 0).to_numpy(), ok, False


def _soft_numeric(col: pa.ChunkedArray, is_int: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of a column kept as null where absent or malformed.

    Parsed as the strict columns are (whitespace trimmed), never rejecting a row.
    """
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        ok = pc.is_valid(col).to_numpy(zero_copy_only=False)
        return pc.fill_null(col, 0).to_numpy(zero_copy_only=False), ok
    if pa.types.is_dictionary(col.type) or pa.types.is_null(col.type):
        col = col.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(col)
    ok = pc.fill_null(pc.match_substring_regex(trimmed, _INT_RE if is_int else _FLOAT_RE), False)
    safe = pc.if_else(ok, trimmed, pa.scalar("0"))
    values = pc.cast(safe, pa.int64() if is_int else pa.float64()).to_numpy()
    ok = ok.to_numpy(zero_copy_only=False)
    if is_int:                                           # beyond int32: null, never wrapped
        ok &= (values >= -(2**31)) & (values < 2**31)
    return values, ok


def _dictionary(col: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """(distinct values, index of each row) of a string or dictionary column."""
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return arr.dictionary.to_pylist(), arr.indices.to_numpy(zero_copy_only=False)


def clean(raw: pa.Table, source_file: str, report: InputReport
          ) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Apply the cleaning rules to a table from :func:`parse` (typed or strings).

    String work (trimming, code repair, country checks) is done once per distinct value of
    each code column and mapped back through the row indices.  Returns the typed clean table
    (:data:`schema.KEPT` + ``Multi_Country_Flag`` + ``source_file``; the code and country
    columns dictionary-encoded strings, written to Parquet as plain strings) and the rejected
    rows as ``(reason, tab-joined kept fields)``; updates ``report``.
    """
    raw = raw.unify_dictionaries()
    n = raw.num_rows
    lay = raw.column("layout").to_numpy()
    for value, count in enumerate(np.bincount(lay, minlength=1) if n else []):
        if count:
            key = "csv" if value == schema.CSV_LAYOUT else str(value)
            report.layouts[key] = report.layouts.get(key, 0) + int(count)
    reason = np.zeros(n, np.int16)      # 0 = kept, else 1 + index in ``whys``
    whys: list[str] = []

    def reject(mask: np.ndarray | None, why: str) -> None:
        if mask is None or not mask.any():
            return
        if why not in whys:
            whys.append(why)
        reason[mask & (reason == 0)] = whys.index(why) + 1

    padded = np.zeros(n, bool)
    dicts: dict[str, tuple[list[str], np.ndarray]] = {}
    for name in _STR_COLS:
        values, ind = _dictionary(raw.column(name))
        trimmed = [v.strip() for v in values]
        changed = np.array([a != b for a, b in zip(values, trimmed, strict=True)] or [False], bool)
        if changed.any():
            padded |= changed[ind]
        dicts[name] = (trimmed, ind)

    def per_row(name: str, fn) -> np.ndarray | None:
        """Fn of each row's value of a string column; ``None`` when false for every row."""
        values, ind = dicts[name]
        table = np.array([fn(v) for v in values] or [False], bool)
        return table[ind] if table.any() else None

    for name in ("EventCode", "EventRootCode"):
        reject(per_row(name, lambda v: v in _MARKERS), "marker_row")
    values: dict[str, np.ndarray] = {}
    for name in _INT_COLS + _FLOAT_COLS:
        v, ok, pad = _numeric(raw.column(name), name in _INT_COLS)
        padded |= pad
        if ok is not None:
            reject(~ok, f"bad_type:{name}")
        if schema.KEPT_TYPES[name] in ("int32", "int8"):          # would wrap when stored
            info = np.iinfo(schema.KEPT_TYPES[name])
            if v.dtype.itemsize > info.bits // 8:
                reject((v < info.min) | (v > info.max), f"bad_type:{name}")
        values[name] = v

    # CAMEO codes: each distinct (root, base, code) triple repaired once
    (rv, ri), (bv, bi), (cv, ci) = dicts["EventRootCode"], dicts["EventBaseCode"], dicts["EventCode"]
    key = (ri.astype(np.int64) * max(len(bv), 1) + bi) * max(len(cv), 1) + ci
    uniq, inv = _factorize(key)
    valid = frozenset(schema.cameo().codes)
    fixed = []
    for k in uniq.tolist():
        r, rest = divmod(k, max(len(bv), 1) * max(len(cv), 1))
        b, c = divmod(rest, max(len(cv), 1))
        fixed.append(_repair_codes(rv[r], bv[b], cv[c], valid))
    ok_u = np.array([f is not None for f in fixed] or [False], bool)
    rep_u = np.array([f is not None and f[3] for f in fixed] or [False], bool)
    if not ok_u.all():
        reject(~ok_u[inv], "bad_event_code")
    code_rep = rep_u[inv] if rep_u.any() else np.zeros(n, bool)

    # the 1920 bug
    sql, added = values["SQLDATE"], values["DATEADDED"]
    bug = (sql >= 19200000) & (sql < 19210000)
    if bug.any():
        added_day = np.where(added >= 10**10, added // 1_000_000, added)
        bug &= (added_day >= 20191231) & (added_day <= 20200105)
        values["SQLDATE"] = sql + bug * 1_000_000
        values["MonthYear"] = values["MonthYear"] + bug * 10_000
        values["Year"] = values["Year"] + bug * 100
        values["FractionDate"] = values["FractionDate"] + bug * 100.0

    quad, gold = values["QuadClass"], values["GoldsteinScale"]
    reject((quad < 1) | (quad > 4), "bad_quadclass")
    reject((values["IsRootEvent"] < 0) | (values["IsRootEvent"] > 1), "bad_isroot")
    reject(~((gold >= -10) & (gold <= 10)), "bad_goldstein")
    dates, date_idx = _factorize(values["SQLDATE"])
    reject(~_valid_dates(dates)[date_idx], "bad_sqldate")
    for name in _GEO_COLS:
        reject(per_row(name, lambda v: not (v == "" or (len(v) == 2 and v.isascii() and v.isalpha() and v.isupper()))),
               "bad_country_code")

    keep = reason == 0
    report.rows_read += n
    report.rows_kept += int(keep.sum())
    for code, count in zip(*np.unique(reason[~keep], return_counts=True), strict=True):
        why = whys[int(code) - 1]
        report.rejects[why] = report.rejects.get(why, 0) + int(count)
    report.rows_rejected += int((~keep).sum())
    for rule, mask in (("whitespace", padded), ("leading_zero", code_rep), ("date_1920", bug)):
        if (c := int((mask & keep).sum())):
            report.repairs[rule] = report.repairs.get(rule, 0) + c
    report.rows_repaired += int(((padded | code_rep | bug) & keep).sum())

    rejected: list[tuple[str, str]] = []
    if (~keep).any():
        bad_idx = np.flatnonzero(~keep)
        sub = raw.take(pa.array(bad_idx)).select(schema.KEPT).to_pydict()
        rejected = [(whys[reason[i] - 1], "\t".join("" if sub[c][j] is None else str(sub[c][j]) for c in schema.KEPT))
                    for j, i in enumerate(bad_idx)]

    all_kept = bool(keep.all())
    kidx = np.flatnonzero(keep)

    def kept(a: np.ndarray) -> np.ndarray:
        return a if all_kept else a[kidx]

    out: dict[str, pa.Array] = {}
    soft_ok: dict[str, np.ndarray] = {}
    codes = {}
    for j, name in enumerate(["EventRootCode", "EventBaseCode", "EventCode"]):
        dic = pa.array([f[j] if f is not None else "" for f in fixed] or [""], pa.string())
        codes[name] = pa.DictionaryArray.from_arrays(pa.array(kept(inv).astype(np.int32, copy=False)), dic)
    geo, geo_id = {}, {}
    countries = sorted({v for name in _GEO_COLS + _CC3_COLS for v in dicts[name][0]})
    position = {v: i for i, v in enumerate(countries)}
    dictionary = pa.array(countries or [""], pa.string())     # distinct after trimming
    for name in _GEO_COLS + _CC3_COLS:
        vals, ind = dicts[name]
        ids = np.array([position[v] if v else -1 for v in vals] or [-1], np.int64)
        geo_id[name] = ids[kept(ind)] if n else np.zeros(0, np.int64)
        geo[name] = pa.DictionaryArray.from_arrays(
            pa.array(np.maximum(geo_id[name], 0).astype(np.int32), mask=geo_id[name] < 0),   # "" -> null
            dictionary)
    for name, is_int in _SOFT_COLS.items():
        v, ok = _soft_numeric(raw.column(name), is_int)
        values[name] = v
        soft_ok[name] = ok
    url = raw.column("SOURCEURL")
    url = url.combine_chunks() if isinstance(url, pa.ChunkedArray) else url
    if pa.types.is_dictionary(url.type):
        url = url.cast(pa.string())
    if len(url) and (pc.min(pc.binary_length(url)).as_py() or 0) == 0:     # "" -> null (cheap test first)
        url = pc.if_else(pc.equal(url, ""), pa.scalar(None, pa.string()), url)
    for name in schema.KEPT:
        if name in codes:
            out[name] = codes[name]
        elif name in geo:
            out[name] = geo[name]
        elif name == "SOURCEURL":
            out[name] = url if all_kept else url.take(pa.array(kidx))
        elif name in _SOFT_COLS:
            out[name] = pa.array(kept(values[name]).astype(schema.KEPT_TYPES[name], copy=False),
                                 mask=~kept(soft_ok[name]))
        else:
            out[name] = pa.array(kept(values[name]).astype(schema.KEPT_TYPES[name], copy=False))
    a1, a2 = geo_id["Actor1Geo_CountryCode"], geo_id["Actor2Geo_CountryCode"]
    out["Multi_Country_Flag"] = pa.array((a1 != a2).astype(np.int8), mask=(a1 < 0) | (a2 < 0))  # null: one missing
    out["source_file"] = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(kidx), np.int32)),
                                                        pa.array([source_file]))
    return pa.table(out), rejected


def _id_order(table: pa.Table) -> pa.Table:
    """The rows sorted by GLOBALEVENTID (stable); untouched when already in order, as GDELT writes its files."""
    ids = table.column("GLOBALEVENTID").to_numpy()
    if len(ids) < 2 or (ids[1:] >= ids[:-1]).all():
        return table
    return table.take(pa.array(np.argsort(ids, kind="stable")))


def read_file(path: str | Path, name: str | None = None, *, checksum: bool = True
              ) -> tuple[pa.Table, list[tuple[str, str]], InputReport]:
    """Parse and clean one input.

    (clean table in GLOBALEVENTID order, rejects, report with the file's md5 when ``checksum``). Raises
    :class:`InputError` when the input cannot be read at all.
    """
    path = Path(path)
    name = name or path.name
    report = InputReport(name=name, size=path.stat().st_size, md5=file_md5(path) if checksum else "")
    data = read_bytes(path)
    raws, bad = parse(data)
    del data
    tables, rejected = [], []
    for raw in raws:
        table, rej = clean(raw, name, report)
        tables.append(table)
        rejected += rej
    table = _id_order(tables[0] if len(tables) == 1 else pa.concat_tables(tables))
    for why, _ in bad:
        report.rejects[why] = report.rejects.get(why, 0) + 1
        report.layouts["other"] = report.layouts.get("other", 0) + 1
    report.rows_read += len(bad)
    report.rows_rejected += len(bad)
    return table, rejected + bad, report
