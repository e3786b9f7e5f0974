"""The reader on the real GDELT samples (tests/fixtures/gdelt, copied from GDELT's own files)
against a plain split-on-tab reference parser, and every cleaning rule on rows derived from them.

Every test runs on both routes of the reader: the C pass (with Arrow for the lines it
declines) and Arrow's reader alone; the two must agree exactly.  The tests of the C pass
itself, and the one that compares the two routes, run once (the C route)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from wgf_cli.gdelt import reader, schema

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt"
V1 = FIX / "v1_mixed_57_58_100rows.tsv"
V2 = FIX / "v2_61cols_100rows.tsv"



@pytest.fixture(autouse=True, params=["c", "arrow"])
def route(request, monkeypatch):
    if request.param == "c" and reader._fastread is None:
        pytest.fail("the C extension wgf_cli.gdelt._fastread is not built (pip install -e . builds it)")
    if request.param == "arrow":
        monkeypatch.setattr(reader, "_fastread", None)
    return request.param


# reference positions, written out independently of schema.py (GDELT codebooks)
A2GEO = {57: 44, 58: 44, 61: 45}
ADDED = {57: 56, 58: 56, 61: 59}


def reference_rows(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        f = line.split("\t")
        rows.append({"layout": len(f), "GLOBALEVENTID": int(f[0]), "SQLDATE": int(f[1]), "EventCode": f[26],
                     "EventBaseCode": f[27], "EventRootCode": f[28], "QuadClass": int(f[29]),
                     "GoldsteinScale": float(f[30]), "Actor1Geo_CountryCode": f[37] or None,
                     "Actor2Geo_CountryCode": f[A2GEO[len(f)]] or None, "DATEADDED": int(f[ADDED[len(f)]])})
    return rows


@pytest.mark.parametrize(("path", "layouts"), [(V1, {"57": 40, "58": 60}), (V2, {"61": 100})])
def test_real_samples_every_row_parsed_with_its_layout(path, layouts):
    table, rejected, rep = reader.read_file(path)
    assert rep.layouts == layouts
    assert (rep.rows_read, rep.rows_kept, rep.rows_rejected, rep.rows_repaired) == (100, 100, 0, 0)
    assert rejected == [] and rep.rejects == {}
    ref = {r["GLOBALEVENTID"]: r for r in reference_rows(path)}
    got = table.to_pylist()
    assert len(got) == 100
    for row in got:
        want = ref[row["GLOBALEVENTID"]]
        for key in ["SQLDATE", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass", "Actor1Geo_CountryCode",
                    "Actor2Geo_CountryCode", "DATEADDED"]:
            assert row[key] == want[key], (row["GLOBALEVENTID"], key)
        np.testing.assert_allclose(row["GoldsteinScale"], want["GoldsteinScale"], rtol=0, atol=1e-6)
        a1, a2 = row["Actor1Geo_CountryCode"], row["Actor2Geo_CountryCode"]
        assert row["Multi_Country_Flag"] == (None if a1 is None or a2 is None else int(a1 != a2))
        assert row["source_file"] == path.name


def test_codes_keep_leading_zeros_and_types():
    table, _, _ = reader.read_file(V1)
    codes = dict(zip(table.column("GLOBALEVENTID").to_pylist(), table.column("EventCode").to_pylist(), strict=True))
    assert codes[0] == "040" and codes[439472385] == "0353" and codes[439472386] == "0874"
    assert set(table.column("EventRootCode").to_pylist()) <= set(schema.ROOTS)
    assert str(table.schema.field("GLOBALEVENTID").type) == "int64"
    assert str(table.schema.field("SQLDATE").type) == "int32"
    assert str(table.schema.field("GoldsteinScale").type) == "float"
    assert str(table.schema.field("EventCode").type) == "dictionary<values=string, indices=int32, ordered=0>"


def test_v2_actor2_geo_from_column_45():
    table, _, _ = reader.read_file(V2)
    by_id = dict(zip(table.column("GLOBALEVENTID").to_pylist(), table.column("Actor2Geo_CountryCode").to_pylist(),
                     strict=True))
    # 410412347: actor-2 geo SF at index 45 (index 44 holds the full name "South Africa")
    assert by_id[410412347] == "SF"
    assert by_id[913095774] == "RS"
    line = V2.read_text().splitlines()[0].split("\t")
    assert line[44] != "SF" and line[45] == "SF"


def test_zipped_input_equals_plain(tmp_path):
    z = tmp_path / "20150608.export.CSV.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(V1, "20150608.export.CSV")
    a, _, ra = reader.read_file(V1)
    b, _, rb = reader.read_file(z)
    assert a.drop_columns(["source_file"]).equals(b.drop_columns(["source_file"]))
    assert ra.layouts == rb.layouts and rb.md5 == reader.file_md5(z)


def _mutate(line: str, **fields: str) -> str:
    f = line.split("\t")
    for k, v in fields.items():
        f[int(k[1:])] = v
    return "\t".join(f)


def _dirty_lines() -> tuple[list[str], list[str]]:
    lines = V1.read_text().splitlines()[40:]       # 58-column rows
    good = lines[:20]
    dirty = [
        _mutate(lines[20], c26="---", c27="---", c28="--", c30=""),                  # marker row
        _mutate(lines[21], c26="X", c27="X", c28="X", c29="X", c30=""),              # marker row
        _mutate(lines[22], c26="43", c27="43", c28="4"),                             # lost zeros -> 043/043/04
        _mutate(lines[23], c26="353", c27="35", c28="3"),                            # -> 0353/035/03
        _mutate(lines[24], c26="999", c27="999", c28="99"),                          # not a CAMEO code
        _mutate(lines[25], c1="20200102", c2="202001", c3="2020", c4="2020.0055"),   # (control: 2020 ok)
        _mutate(lines[26], c1="19200102", c2="192001", c3="1920", c4="1920.0055", c56="20200102"),  # 1920 bug
        _mutate(lines[27], c1="19200102", c56="20150608"),                           # 1920 outside window: bad
        _mutate(lines[28], c29="5"),                                                 # QuadClass out of range
        _mutate(lines[29], c30="-11.0"),                                             # Goldstein out of range
        _mutate(lines[30], c0="12x4"),                                               # bad type
        _mutate(lines[31], c1="20150231"),                                           # not a date
        _mutate(lines[32], c37=" US ", c26=" 043", c27="043", c28="04 "),             # padding: stripped
        "\t".join(lines[33].split("\t")[:40]),                                       # truncated row
        lines[34] + '\t"quoted',                                                     # 59 columns
        _mutate(lines[35], c3='"2015'),                                              # a quote is data: bad type
    ]
    return lines, good + dirty


def test_cleaning_rules_counted_exactly(tmp_path):
    lines, rows = _dirty_lines()
    good, dirty = rows[:20], rows[20:]
    path = tmp_path / "dirty.tsv"
    path.write_text("\n".join(good + dirty) + "\n\n")
    table, rejected, rep = reader.read_file(path)
    assert rep.rows_read == 36
    assert rep.rejects == {"marker_row": 2, "bad_event_code": 1, "bad_sqldate": 2, "bad_quadclass": 1,
                           "bad_goldstein": 1, "bad_type:GLOBALEVENTID": 1, "field_count_40": 1,
                           "field_count_59": 1, "bad_type:Year": 1}
    assert rep.rows_rejected == 11 and rep.rows_kept == 25
    assert rep.repairs == {"leading_zero": 2, "date_1920": 1, "whitespace": 1}
    assert rep.rows_repaired == 4
    assert len(rejected) == 11 and {r for r, _ in rejected} == set(rep.rejects)
    rows = {r["GLOBALEVENTID"]: r for r in table.to_pylist()}
    ids = [int(x.split("\t")[0]) for x in lines[20:40]]
    assert (rows[ids[2]]["EventCode"], rows[ids[2]]["EventBaseCode"], rows[ids[2]]["EventRootCode"]) == (
        "043", "043", "04")
    assert (rows[ids[3]]["EventCode"], rows[ids[3]]["EventBaseCode"], rows[ids[3]]["EventRootCode"]) == (
        "0353", "035", "03")
    r = rows[ids[6]]
    assert (r["SQLDATE"], r["MonthYear"], r["Year"]) == (20200102, 202001, 2020)
    np.testing.assert_allclose(r["FractionDate"], 2020.0055, rtol=0, atol=1e-9)
    assert rows[ids[12]]["Actor1Geo_CountryCode"] == "US" and rows[ids[12]]["EventCode"] == "043"


def test_unknown_layout_and_corrupt_zip(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("a\tb\tc\n1\t2\t3\n")
    with pytest.raises(reader.InputError, match="unknown layout"):
        reader.read_file(bad)
    z = tmp_path / "20150608.export.CSV.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(V1, "20150608.export.CSV")
    data = z.read_bytes()
    z.write_bytes(data[: len(data) // 2])          # truncated download
    with pytest.raises(reader.InputError, match="corrupt zip"):
        reader.read_file(z)


def test_first_line_of_another_layout(tmp_path):
    lines = V1.read_text().splitlines()
    path = tmp_path / "mixed.tsv"
    path.write_text("garbage line\n" + "\n".join(lines[40:] + lines[:40] + V2.read_text().splitlines()) + "\n")
    table, rejected, rep = reader.read_file(path)
    assert rep.layouts == {"57": 40, "58": 60, "61": 100, "other": 1}
    assert rep.rows_kept == 200 and rep.rejects == {"field_count_1": 1}


def _read_both(path: Path, monkeypatch):
    a = reader.read_file(path)
    with monkeypatch.context() as m:
        m.setattr(reader, "_fastread", None)
        b = reader.read_file(path)
    return a, b


def _plain(table):
    """Dictionary columns as plain strings (the two routes may order a dictionary differently)."""
    return table.cast(pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                 for f in table.schema]))


def _assert_same(a, b) -> None:
    (ta, ra, pa_), (tb, rb, pb) = a, b
    assert ta.schema == tb.schema
    assert _plain(ta).equals(_plain(tb))
    assert sorted(ra) == sorted(rb)
    assert pa_.as_dict() == pb.as_dict()


@pytest.mark.parametrize("route", ["c"], indirect=True)  # compares the two routes itself: the C route only
def test_routes_agree_exactly(tmp_path, monkeypatch, route):
    """Dirty rows, CRLF line ends, mixed layouts and a synthetic day with marker rows: the C
    pass + Arrow for its declined lines equals Arrow alone, row for row and count for count."""
    _, rows = _dirty_lines()
    dirty = tmp_path / "dirty.tsv"
    dirty.write_text("\n".join(rows) + "\n")
    crlf = tmp_path / "crlf.tsv"
    crlf.write_bytes(("\r\n".join(V1.read_text().splitlines()) + "\r\n").encode())
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("\n".join(V2.read_text().splitlines()[:50] + V1.read_text().splitlines()
                               + V2.read_text().splitlines()[50:]))            # no final newline
    from wgf_cli.gdelt import synthetic as S

    cfg = S.SyntheticConfig(countries=4, days=1, events_per_day=3000, seed=5)
    *_, files = S.generate(cfg, tmp_path / "syn")
    for path in (dirty, crlf, mixed, files[0].path, V1, V2):
        _assert_same(*_read_both(path, monkeypatch))


@pytest.mark.parametrize("route", ["c"], indirect=True)  # the C pass itself: the C route only
def test_c_pass_takes_plain_rows_and_declines_the_others(route):
    """The C pass types the plain rows (codes keep their zeros, lost zeros kept for the
    cleaning to repair) and declines exactly the rows with markers, padding, bad numbers or
    another field count."""
    _, rows = _dirty_lines()
    table, rest = reader.parse_fast(("\n".join(rows) + "\n").encode())
    declined = rest.decode().splitlines()
    assert table.num_rows == 36 - 7 and len(declined) == 7
    assert set(declined) == {rows[i] for i in (20, 21, 30, 32, 33, 34, 35)}
    codes = table.column("EventCode").to_pylist()
    assert "43" in codes and "353" in codes and "999" in codes
    ref = reference_rows(V1)
    t, rest = reader.parse_fast(V1.read_bytes())
    assert rest == b"" and t.num_rows == 100
    for name in ("GLOBALEVENTID", "SQLDATE", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass",
                 "GoldsteinScale", "DATEADDED", "layout"):
        got = t.column(name).to_pylist()
        assert got == [r[name] for r in ref], name
    assert t.column("Actor2Geo_CountryCode").to_pylist() == [r["Actor2Geo_CountryCode"] or "" for r in ref]


@pytest.mark.parametrize("route", ["c"], indirect=True)  # the C pass itself: the C route only
def test_c_pass_decimals_equal_python_float(route):
    """Decimals are parsed as m / 10^k of exact doubles: equal to Python's float() bit for
    bit; more than 15 significant digits or an exponent is declined."""
    rng = np.random.default_rng(0)
    line = V1.read_text().splitlines()[50]
    texts = [f"{v:.{d}f}" for v, d in zip(rng.uniform(-10, 10, 3000), rng.integers(0, 9, 3000), strict=True)]
    texts += ["0", "-0.0", "+2.5", "10.", ".5", "-9.99999999", "2015.4356", "007.250"]
    data = "".join(_mutate(line, c30=t, c4=t) + "\n" for t in texts).encode()
    table, rest = reader.parse_fast(data)
    assert rest == b""
    expected = [float(t) for t in texts]
    assert table.column("GoldsteinScale").to_pylist() == expected
    assert table.column("FractionDate").to_pylist() == expected
    odd = ["1e3", "1.2345678901234567", "", ".", "1.2.3", " 1.0", "nan"]
    table, rest = reader.parse_fast((line + "\n" + "".join(_mutate(line, c30=t) + "\n" for t in odd)).encode())
    assert table.num_rows == 1 and len(rest.decode().splitlines()) == len(odd)


def test_zip_crc_mismatch_is_a_corrupt_input(tmp_path):
    z = tmp_path / "20150608.export.CSV.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(V1, "20150608.export.CSV")
    info = zipfile.ZipFile(z).infolist()[0]
    data = bytearray(z.read_bytes())
    crc = info.CRC.to_bytes(4, "little")
    bad = ((info.CRC ^ 1) & 0xFFFFFFFF).to_bytes(4, "little")
    assert data.count(crc) == 2                    # local header and central directory
    z.write_bytes(bytes(data).replace(crc, bad))
    with pytest.raises(reader.InputError, match="corrupt zip"):
        reader.read_file(z)


def test_integers_beyond_their_column_type_are_rejected_not_wrapped(tmp_path):
    line = V1.read_text().splitlines()[50]
    path = tmp_path / "big.tsv"
    path.write_text("\n".join([line, _mutate(line, c3="99999999999"), _mutate(line, c2="-3000000000")]) + "\n")
    table, rejected, rep = reader.read_file(path)
    assert rep.rows_kept == 1 and rep.rejects == {"bad_type:Year": 1, "bad_type:MonthYear": 1}
    assert table.column("Year").to_pylist() == [int(line.split("\t")[3])]
