"""Issue 19, build side: the new event columns (both reader routes), the BigQuery CSV layout,
attribution by ``country_by`` against a hand count on real rows, and partners from the events."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from wgf_cli.gdelt import build as B
from wgf_cli.gdelt import descriptors as Dm
from wgf_cli.gdelt import embed, reader, schema

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt"
V1 = FIX / "v1_mixed_57_58_100rows.tsv"
V2 = FIX / "v2_61cols_100rows.tsv"
BQ = FIX / "bigquery_westafrica_1985_400rows.csv"     # real rows of the shipped West Africa export
VOCAB = Dm.vocabulary(embed.HashEmbedder(16))

# reference positions written out from GDELT's codebooks, independently of schema.py
ACTION = {57: 51, 58: 51, 61: 53}
URL = {58: 57, 61: 60}


def _plain(table: pa.Table) -> pa.Table:
    return table.cast(pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                 for f in table.schema]))


def _both(path: Path, monkeypatch) -> tuple[pa.Table, pa.Table]:
    fast = reader.read_file(path)[0]
    with monkeypatch.context() as m:
        m.setattr(reader, "_fastread", None)
        general = reader.read_file(path)[0]
    return _plain(fast), _plain(general)


@pytest.mark.parametrize("path", [V1, V2])
def test_new_columns_from_both_routes_equal_the_raw_fields(path, monkeypatch):
    if reader._fastread is None:
        pytest.fail("the C extension wgf_cli.gdelt._fastread is not built")
    assert reader.parse_fast(path.read_bytes())[1] == b""          # the C pass took every real row
    fast, general = _both(path, monkeypatch)
    assert fast.equals(general)
    ref = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        f = line.split("\t")
        n = len(f)
        ref[int(f[0])] = {"ActionGeo_CountryCode": f[ACTION[n]] or None, "Actor1CountryCode": f[7] or None,
                          "Actor2CountryCode": f[17] or None, "NumMentions": int(f[31]), "AvgTone": float(f[34]),
                          "SOURCEURL": (f[URL[n]] or None) if n in URL else None}
    for row in fast.to_pylist():
        want = ref[row["GLOBALEVENTID"]]
        for key in ("ActionGeo_CountryCode", "Actor1CountryCode", "Actor2CountryCode", "NumMentions", "SOURCEURL"):
            assert row[key] == want[key], (row["GLOBALEVENTID"], key)
        assert row["AvgTone"] == np.float32(want["AvgTone"])
    assert fast.column("SOURCEURL").null_count == (40 if path == V1 else 0)     # the 57-column rows have none


def test_new_columns_dirty_values_agree_between_routes(tmp_path, monkeypatch):
    """Padded or odd actor country codes, a non-ASCII URL, empty NumMentions / AvgTone: the C
    pass declines these rows and the general route keeps them, trimmed or null, never rejected."""
    lines = V1.read_text().splitlines()[40:50]          # 58-column rows

    def mutate(line: str, **fields) -> str:
        f = line.split("\t")
        for i, v in fields.items():
            f[int(i[1:])] = v
        return "\t".join(f)

    dirty = [mutate(lines[0], i7=" NGA"), mutate(lines[1], i17="xx1"), mutate(lines[2], i57="http://é.example/ü"),
             mutate(lines[3], i31="", i34=""), mutate(lines[4], i31="12a", i34="1e3"), mutate(lines[5], i51=" NI"),
             *lines[6:]]
    path = tmp_path / "dirty.tsv"
    path.write_text("\n".join(dirty) + "\n")
    fast, general = _both(path, monkeypatch)
    assert fast.equals(general)
    rows = {r["GLOBALEVENTID"]: r for r in fast.to_pylist()}
    ids = [int(x.split("\t")[0]) for x in dirty]
    assert len(rows) == 10                                           # nothing rejected
    assert rows[ids[0]]["Actor1CountryCode"] == "NGA" and rows[ids[1]]["Actor2CountryCode"] == "xx1"
    assert rows[ids[2]]["SOURCEURL"] == "http://é.example/ü"
    assert rows[ids[3]]["NumMentions"] is None and rows[ids[3]]["AvgTone"] is None
    assert rows[ids[4]]["NumMentions"] is None and rows[ids[4]]["AvgTone"] == 1000.0
    assert rows[ids[5]]["ActionGeo_CountryCode"] == "NI"


def test_bigquery_csv_layout_on_real_rows(monkeypatch):
    """The real export: header row, comma separated, NA for empty, quoted strings with commas,
    a trailing row_id; every row kept with its fields as csv.DictReader reads them."""
    table, rejected, rep = reader.read_file(BQ)
    assert rep.layouts == {"csv": 400} and rep.rows_kept == 400 and rejected == []
    with monkeypatch.context() as m:                                 # no C pass involved
        m.setattr(reader, "_fastread", None)
        assert _plain(reader.read_file(BQ)[0]).equals(_plain(table))
    got = {r["GLOBALEVENTID"]: r for r in _plain(table).to_pylist()}
    with open(BQ, newline="") as fh:
        ref = list(csv.DictReader(fh))
    assert len(ref) == 400 and any("," in r["ActionGeo_FullName"] for r in ref)    # quoted strings exist

    def na(v):
        return None if v == "NA" else v

    for r in ref:
        g = got[int(r["GLOBALEVENTID"])]
        assert g["SQLDATE"] == int(r["SQLDATE"]) and g["EventCode"] == r["EventCode"]
        assert g["QuadClass"] == int(r["QuadClass"]) and g["DATEADDED"] == int(r["DATEADDED"])
        for key in ("Actor1Geo_CountryCode", "Actor2Geo_CountryCode", "ActionGeo_CountryCode",
                    "Actor1CountryCode", "Actor2CountryCode", "SOURCEURL"):
            assert g[key] == na(r[key]), key
        assert g["NumMentions"] == int(r["NumMentions"]) and g["AvgTone"] == np.float32(float(r["AvgTone"]))


def test_csv_header_variants(tmp_path):
    """Columns are matched by name: another order, a 2.0 column set (ADM2 codes), tabs,
    quoted header names; a header without a required column is an unknown layout."""
    with open(BQ, newline="") as fh:
        rows = list(csv.DictReader(fh))[:20]
    cols = list(rows[0])
    v2 = schema.COLUMNS[61]
    for i, (order, delim, quote) in enumerate([(cols[::-1], ",", False), (v2, "\t", False), (cols, ",", True)]):
        path = tmp_path / f"v{i}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, delimiter=delim, quoting=csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL,
                           lineterminator="\n")
            w.writerow(order)
            for r in rows:
                w.writerow([r.get(c, "NA") if quote is False or r.get(c, "NA") != "NA" else "NA" for c in order])
        table, rejected, rep = reader.read_file(path)
        assert rep.layouts == {"csv": 20} and rep.rows_kept == 20, (i, rep.as_dict())
        assert _plain(table).column("SQLDATE").to_pylist() == [int(r["SQLDATE"]) for r in rows]
    bad = tmp_path / "bad.csv"
    bad.write_text("GLOBALEVENTID,SQLDATE,EventCode\n1,20200101,190\n")
    with pytest.raises(reader.InputError, match="unknown layout: a header row without"):
        reader.read_file(bad)


def _hand_counts(path: Path, rule: str) -> Counter:
    """(country, SQLDATE) -> events, by reading the CSV with the standard library."""
    out: Counter = Counter()
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            a = [r["ActionGeo_CountryCode"]] if rule in ("action", "any") else []
            b = [r["Actor1Geo_CountryCode"], r["Actor2Geo_CountryCode"]] if rule in ("actor", "any") else []
            for c in {x for x in a + b if x != "NA"}:
                out[(c, int(r["SQLDATE"]))] += 1
    return out


@pytest.mark.parametrize("rule", ["action", "actor", "any"])
def test_attribution_equals_a_hand_count_on_real_rows(tmp_path, rule):
    res = B.build([BQ], B.BuildOptions(out_dir=tmp_path, country_by=rule, min_median_events=0, k=3, kmeans_iters=1,
                                       context=5, sequences=10), vocab=VOCAB)
    d = res.descriptors
    want = _hand_counts(BQ, rule)
    got = Counter()
    for ci, c in enumerate(d.countries):
        for di in np.flatnonzero(d.total[ci]):
            got[(str(c), int(d.days[di]))] = int(d.total[ci, di])
    assert got == want
    assert set(d.countries) == {c for c, _ in want}
    if rule == "action":    # 220 of the 400 events took place in Libya
        assert d.total[list(d.countries).index("LY")].sum() == 220 and d.total.sum() == 400
    assert res.manifest["descriptors"]["country_by"] == rule


def test_action_and_actor_attribution_differ_as_the_issue_observed():
    """An action in Nigeria by actors located in the US and Russia counts for NI (action),
    for US and RS (actor), for all three (any)."""
    ev = pd.DataFrame({"SQLDATE": [20200101], "DATEADDED": [20200101], "EventCode": ["190"], "EventRootCode": ["19"],
                       "QuadClass": [4], "GoldsteinScale": [-10.0], "Actor1Geo_CountryCode": ["US"],
                       "Actor2Geo_CountryCode": ["RS"], "ActionGeo_CountryCode": ["NI"],
                       "Multi_Country_Flag": pd.array([1], dtype="Int8")})
    days = Dm.day_range(20200101, 20200101)
    for rule, want in (("action", ["NI"]), ("actor", ["RS", "US"]), ("any", ["NI", "RS", "US"])):
        d = Dm.compute(ev, VOCAB, days=days, observed_days=days, k=3, country_by=rule)
        assert list(d.countries) == want and d.total.sum() == len(want)


def test_partners_domestic_and_counts_on_hand_built_rows():
    """Partners: the non-empty actor geo countries of the (country, day)'s events, the focal
    country's own code for an actor located there (domestic), ranked by events, ties by code."""
    rows = [  # action NI unless said: (a1 geo, a2 geo)
        ("NI", "NI"), ("NI", None), ("NI", "CM"), ("CM", "NI"), ("US", "RS"), ("US", None), ("US", "US"),
        (None, None), ("CM", "CM"),
    ]
    ev = pd.DataFrame({"SQLDATE": 20200101, "DATEADDED": 20200101, "EventCode": "190", "EventRootCode": "19",
                       "QuadClass": 4, "GoldsteinScale": -10.0,
                       "Actor1Geo_CountryCode": [a for a, _ in rows], "Actor2Geo_CountryCode": [b for _, b in rows],
                       "ActionGeo_CountryCode": ["NI"] * 8 + ["CM"]})
    ev["Multi_Country_Flag"] = pd.array([None] * len(ev), dtype="Int8")
    days = Dm.day_range(20200101, 20200101)
    d = Dm.compute(ev, VOCAB, days=days, observed_days=days, k=3, country_by="action")
    ni, cm = list(d.countries).index("NI"), list(d.countries).index("CM")
    # NI's 8 events: NI (domestic) in 4, US in 3, CM in 2, RS in 1; the event with no actor geo in none
    assert list(d.partners[ni, 0]) == ["NI", "US", "CM"] and d.partner_counts[ni, 0].tolist() == [4, 3, 2]
    assert list(d.partners[cm, 0]) == ["CM", "", ""] and d.partner_counts[cm, 0].tolist() == [1, 0, 0]
    assert d.partner_counts.dtype == np.int32 and d.partners.shape == d.partner_counts.shape == (2, 1, 3)
    # the (country, day) of a day without partners: empty codes, zero counts
    d2 = Dm.compute(ev.iloc[[7]].assign(ActionGeo_CountryCode="NI"), VOCAB, days=days, observed_days=days, k=3)
    assert list(d2.partners[0, 0]) == ["", "", ""] and d2.partner_counts[0, 0].tolist() == [0, 0, 0]
