"""GDELT event file layouts and the CAMEO / FIPS lookups shipped in ``lookups/``.

GDELT event files are headerless, tab-separated and use **no quoting**.  Three layouts
exist, told apart by their column count:

========  ========================================================  =======================
columns   files                                                     geo columns
========  ========================================================  =======================
57        1.0 backfile (``1979.zip`` .. ``2005.zip``, ``200601.zip``  ``Actor2Geo_CountryCode``
          .. ``201303.zip``)                                        at 44, DATEADDED at 56
58        1.0 daily (``YYYYMMDD.export.CSV.zip``), SOURCEURL last   as 57
61        2.0 15-minute exports, ``*_ADM2Code`` after each ADM1     ``Actor2Geo_CountryCode``
                                                                    at 45, DATEADDED at 59
========  ========================================================  =======================

The kept columns GLOBALEVENTID..FractionDate (0-4) and IsRootEvent..GoldsteinScale (25-30)
and ``Actor1Geo_CountryCode`` (37) sit at the same index in all three.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from wgf_cli.gdelt_contract import ROOT_QUAD, ROOTS  # noqa: F401  (re-exported)

LOOKUPS = Path(__file__).resolve().parent / "lookups"

# -- column names -------------------------------------------------------------------
_ACTOR = ["Code", "Name", "CountryCode", "KnownGroupCode", "EthnicCode", "Religion1Code",
          "Religion2Code", "Type1Code", "Type2Code", "Type3Code"]
_EVENT = ["IsRootEvent", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass", "GoldsteinScale",
          "NumMentions", "NumSources", "NumArticles", "AvgTone"]


def _geo(prefix: str, adm2: bool) -> list[str]:
    cols = ["Type", "FullName", "CountryCode", "ADM1Code"] + (["ADM2Code"] if adm2 else [])
    return [f"{prefix}Geo_{c}" for c in cols + ["Lat", "Long", "FeatureID"]]


def _columns(adm2: bool, url: bool) -> list[str]:
    cols = ["GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate"]
    cols += [f"Actor1{c}" for c in _ACTOR] + [f"Actor2{c}" for c in _ACTOR] + _EVENT
    cols += _geo("Actor1", adm2) + _geo("Actor2", adm2) + _geo("Action", adm2) + ["DATEADDED"]
    return cols + (["SOURCEURL"] if url else [])


#: column names of each layout, by column count
COLUMNS: dict[int, list[str]] = {57: _columns(False, False), 58: _columns(False, True),
                                 61: _columns(True, True)}
LAYOUTS = (57, 58, 61)

#: columns of the clean event table (``events/``), in order, with their Arrow type names
#: the first 14 are required (a row without them is no event); the last 6 (where the action
#: took place, the actors' CAMEO country codes, NumMentions, AvgTone, SOURCEURL) are kept
#: where the layout has them (SOURCEURL: not in the 57-column backfile) and may be null
KEPT = ["GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate", "IsRootEvent", "EventCode",
        "EventBaseCode", "EventRootCode", "QuadClass", "GoldsteinScale", "Actor1Geo_CountryCode",
        "Actor2Geo_CountryCode", "DATEADDED",
        "ActionGeo_CountryCode", "Actor1CountryCode", "Actor2CountryCode", "NumMentions", "AvgTone", "SOURCEURL"]
REQUIRED = KEPT[:14]
OPTIONAL = KEPT[14:]
KEPT_TYPES = {"GLOBALEVENTID": "int64", "SQLDATE": "int32", "MonthYear": "int32", "Year": "int32",
              "FractionDate": "float64", "IsRootEvent": "int8", "EventCode": "string",
              "EventBaseCode": "string", "EventRootCode": "string", "QuadClass": "int8",
              "GoldsteinScale": "float32", "Actor1Geo_CountryCode": "string",
              "Actor2Geo_CountryCode": "string", "DATEADDED": "int64",
              "ActionGeo_CountryCode": "string", "Actor1CountryCode": "string", "Actor2CountryCode": "string",
              "NumMentions": "int32", "AvgTone": "float32", "SOURCEURL": "string"}
#: the ``layout`` code of a file with a header row (BigQuery / CSV exports; columns by name)
CSV_LAYOUT = 1


def kept_indices(layout: int) -> dict[str, int]:
    """Column index of each kept column in ``layout`` (57, 58 or 61) that the layout has."""
    cols = COLUMNS[layout]
    return {name: cols.index(name) for name in KEPT if name in cols}




# -- lookups --------------------------------------------------------------------------
@dataclass(frozen=True)
class Cameo:
    """The CAMEO event codebook: code -> description and Goldstein score."""

    codes: tuple[str, ...]          # all 311 codes, in file order (roots, 3- and 4-digit)
    description: dict[str, str]
    goldstein: dict[str, float]

    @property
    def event_codes(self) -> list[str]:
        """Codes an event can carry (3 and 4 digits)."""
        return [c for c in self.codes if len(c) >= 3]


def _read_table(name: str) -> list[list[str]]:
    text = (LOOKUPS / name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines()[1:] if line.strip()]


def _clean_description(text: str) -> str:
    """GDELT's descriptions, readable: ``MAKE PUBLIC STATEMENT`` -> ``Make public statement``.

    The mis-encoded quotes of code 044 (``Meet at a "third" location``) repaired.
    """
    text = text.strip().replace("\u00d2hird\u00d3", "third ")  # GDELT ships code 044 so
    text = text.replace("\u201c", "").replace("\u201d", "").replace('"', "")
    if text.isupper():
        text = text.capitalize()
    return " ".join(text.split())


@functools.lru_cache(maxsize=1)
def cameo() -> Cameo:
    """The CAMEO event codes with their descriptions and Goldstein scores (cached)."""
    rows = _read_table("CAMEO.eventcodes.txt")
    desc = {code.strip(): _clean_description(d) for code, d in rows}
    gold = {code.strip(): float(g) for code, g in _read_table("CAMEO.goldsteinscale.txt")}
    return Cameo(tuple(desc), desc, gold)


@dataclass(frozen=True)
class Countries:
    """FIPS 10-4 country codes (GDELT's ``*Geo_CountryCode``) with names and ISO codes."""

    codes: tuple[str, ...]          # sorted FIPS codes
    name: dict[str, str]
    iso3: dict[str, str]
    neighbours: dict[str, tuple[str, ...]]  # land neighbours (FIPS), from GeoNames

    def label(self, code: str) -> str:
        """The readable name of a FIPS code (the code itself when unknown)."""
        return self.name.get(code, code)


@functools.lru_cache(maxsize=1)
def countries() -> Countries:
    """The FIPS country table: names, ISO codes and neighbours (cached)."""
    name: dict[str, str] = {}
    iso3: dict[str, str] = {}
    iso2_to_fips: dict[str, str] = {}
    raw_neigh: dict[str, list[str]] = {}
    text = (LOOKUPS / "countryInfo_fips_iso.txt").read_text(encoding="utf-8")
    for line in text.splitlines()[1:]:
        f = line.split("\t")
        if len(f) < 18 or not f[3].strip():
            continue
        fips = f[3].strip()
        name[fips], iso3[fips] = f[4].strip(), f[1].strip()
        iso2_to_fips[f[0].strip()] = fips
        raw_neigh[fips] = [x for x in f[17].split(",") if x]
    for fips, label in (r[:2] for r in _read_table("fips_country_names.tsv")):  # GDELT's own names
        name.setdefault(fips.strip(), label.strip())
    neighbours = {k: tuple(sorted(iso2_to_fips[x] for x in v if x in iso2_to_fips))
                  for k, v in raw_neigh.items()}
    return Countries(tuple(sorted(name)), name, iso3, neighbours)
