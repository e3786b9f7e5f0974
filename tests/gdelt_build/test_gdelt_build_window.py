"""Issue 19, build side: the date window (automatic and given) and the memory bound, the
country panel by volume, sequences across gaps, loud failures, archives as inputs."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app
from wgf_cli.gdelt import build as B
from wgf_cli.gdelt import descriptors as Dm
from wgf_cli.gdelt import embed, sequences
from wgf_cli.gdelt import synthetic as S

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt"
V1 = FIX / "v1_mixed_57_58_100rows.tsv"
V2 = FIX / "v2_61cols_100rows.tsv"
BQ = FIX / "bigquery_westafrica_1985_400rows.csv"
VOCAB = Dm.vocabulary(embed.HashEmbedder(16))


def _spread_file(path: Path, daily_rows: int = 20) -> tuple[int, int]:
    """Real rows rewritten to span 1979-2020: one 57-column backfile row a month 1979-01 ..
    2019-12 (DATEADDED 20130203) beside 58-column daily rows for every day of March 2020
    (action in Nigeria).  Returns (backfile rows, daily rows)."""
    lines = V1.read_text().splitlines()
    back = [x.split("\t") for x in lines[:40] if x.count("\t") == 56]
    daily = [x.split("\t") for x in lines[40:] if x.count("\t") == 57]
    out, gid = [], 1
    for y in range(1979, 2020):
        for m in range(1, 13):
            f = list(back[(y * 12 + m) % len(back)])
            day = y * 10000 + m * 100 + 15
            f[0], f[1], f[2], f[3], f[4], f[56] = str(gid), str(day), str(day // 100), str(y), f"{y}.04", "20130203"
            out.append("\t".join(f))
            gid += 1
    for d in range(1, 32):
        day = 20200300 + d
        for j in range(daily_rows):
            f = list(daily[j % len(daily)])
            f[0], f[1], f[2], f[3], f[4], f[56] = str(gid), str(day), "202003", "2020", "2020.1699", str(day)
            f[51] = "NI"
            out.append("\t".join(f))
            gid += 1
    path.write_text("\n".join(out) + "\n")
    return 41 * 12, 31 * daily_rows


def test_day_window_rules():
    # a sparse tail in another decade is its own cluster; the largest cluster is the axis
    first, last, info = B.day_window([19820101, 20200301, 20200302], [5, 100, 100])
    assert (first, last) == (20200301, 20200302) and info["pub_rows_outside"] == 5 and info["n_clusters"] == 2
    # rows spread one a month over decades join the core cluster, and its sparse ends are trimmed
    days = [y * 10000 + m * 100 + 15 for y in range(1979, 2020) for m in range(1, 13)] + [20200301, 20200331]
    first, last, info = B.day_window(days, [1] * 492 + [300, 300])
    assert (first, last) == (20200301, 20200331) and info["pub_rows_outside"] == 492
    # a given window: the first to the last publication day inside it
    first, last, info = B.day_window([20200101, 20200105, 20200301], [1, 1, 1], start=20200102, end=20201231)
    assert (first, last) == (20200105, 20200301) and not info["automatic"] and info["pub_rows_outside"] == 1
    with pytest.raises(B.BuildError, match="no publication day inside the date window"):
        B.day_window([20200101], [1], start=20210101, end=20210201)
    # a steady archive keeps every day (the West Africa months: 20 .. 2,021 rows)
    months = [y * 10000 + m * 100 + 2 for y in range(1979, 1998) for m in range(1, 13)]
    first, last, _ = B.day_window(months, [20] + [2021] + [100] * (len(months) - 2))
    assert (first, last) == (19790102, 19971202)


def test_rows_spanning_1979_2020_build_on_a_bounded_axis(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    back, daily = _spread_file(tmp_path / "in" / "spread.tsv")
    seen_days = []
    real = Dm.compute

    def spy(events, vocab, **kw):
        seen_days.append(len(kw["days"]))
        assert events["SQLDATE"].between(20200301, 20200331).all()       # never a backfile month in memory
        return real(events, vocab, **kw)

    monkeypatch.setattr(Dm, "compute", spy)
    res = B.build([tmp_path / "in" / "spread.tsv"],
                  B.BuildOptions(out_dir=tmp_path / "b", k=3, kmeans_iters=1, context=5, sequences=50), vocab=VOCAB)
    d = res.descriptors
    assert len(d.days) == 31 and (int(d.days[0]), int(d.days[-1])) == (20200301, 20200331)
    assert seen_days == [31]
    assert d.points.shape[1] == d.counts.shape[1] == d.observed.shape[1] == 31
    assert res.summary["rows_outside_window"] == back and res.summary["events_outside_days"] == back
    assert list(d.countries) == ["NI"] and d.total.sum() == daily
    assert res.manifest["window"]["automatic"] and res.manifest["window"]["pub_rows_outside"] == back
    arrays = np.load(tmp_path / "b" / "descriptors" / "descriptors.npz")
    assert sum(a.nbytes for a in arrays.values()) < 200_000


def test_panel_by_volume():
    obs = np.ones(10, bool)
    counts = {"AA": np.full(10, 5), "BB": np.array([0] * 6 + [50] * 4), "CC": np.full(10, 1), "DD": np.zeros(10)}
    chosen, rep = B.select_panel(counts, obs, min_median_events=1)
    assert chosen == ["AA", "CC"] and rep["left_out"] == {"BB": 200, "DD": 0}     # BB: median 0
    assert rep["countries"]["AA"] == {"events": 50, "median_per_observed_day": 5.0}
    chosen, rep = B.select_panel(counts, obs, min_median_events=0, top_countries=2)
    assert chosen == ["AA", "BB"] and rep["left_out_events"] == 10
    # the median is over observed days only
    obs2 = np.array([False] * 6 + [True] * 4)
    assert B.select_panel(counts, obs2, min_median_events=10)[0] == ["BB"]
    with pytest.raises(B.BuildError, match="no country passes the panel rule.*AA 50 events"):
        B.select_panel(counts, obs, min_median_events=100)


def test_panel_in_the_build_and_manifest(tmp_path):
    res = B.build([BQ], B.BuildOptions(out_dir=tmp_path, k=3, kmeans_iters=1, context=5, sequences=10,
                                       min_median_events=0, top_countries=2), vocab=VOCAB)
    assert list(res.descriptors.countries) == ["LY", "NI"]
    panel = res.manifest["panel"]
    assert panel["countries"]["LY"]["events"] == 220 and panel["countries"]["NI"]["events"] == 79
    assert panel["left_out"]["MO"] == 32 and panel["left_out_events"] == 400 - 220 - 79
    assert res.summary["countries_left_out"] == len(panel["left_out"])


def test_sequences_across_gaps(tmp_path):
    """Missing daily files inside a window are masked days up to max_gap; longer gaps and
    unobserved targets are counted, by reason, in the manifest."""
    cfg = S.SyntheticConfig(countries=2, days=60, events_per_day=30, seed=2, start="2019-03-01")
    model, *_ = S.generate(cfg, tmp_path / "raw")
    inputs = B.list_inputs(tmp_path / "raw")
    drop = {20}
    drop |= set(range(35, 45))                     # one missing day, then ten
    kept = [p for i, p in enumerate(inputs) if i not in drop]
    ctx, gap = 8, 3
    res = B.build(kept, B.BuildOptions(out_dir=tmp_path / "b", countries=list(model.countries), k=3,
                                       kmeans_iters=1, context=ctx, sequences=10_000, max_gap=gap), vocab=VOCAB)
    obs = res.descriptors.observed
    assert not obs[:, 20].any() and not obs[:, 35:45].any() and obs[:, 21].all()
    rep = res.manifest["sequences"]
    # brute force over every window
    C, D = obs.shape
    want = {"target_unobserved": 0, "gap_too_long": 0, "valid": 0, "masked": 0}
    for c in range(C):
        for s in range(D - ctx):
            run = longest = 0
            for x in obs[c, s:s + ctx]:
                run = 0 if x else run + 1
                longest = max(longest, run)
            if not obs[c, s + ctx]:
                want["target_unobserved"] += 1
            elif longest > gap:
                want["gap_too_long"] += 1
            else:
                want["valid"] += 1
                want["masked"] += longest > 0
    assert rep["target_unobserved"] == want["target_unobserved"] and rep["gap_too_long"] == want["gap_too_long"]
    assert rep["valid"] == rep["made"] == want["valid"] and rep["possible"] == C * (D - ctx)
    assert rep["windows_with_unobserved_days"] == want["masked"] > 0        # windows across day 20 are kept
    starts = res.sequences.index["start"].to_numpy()
    assert ((starts <= 20) & (starts + ctx > 20)).any()
    assert list(res.sequences.index.columns) == ["seq_id", "country", "country_idx", "start", "split"]
    # max_gap=0 is the old rule: every day of a window observed
    strict = sequences.sample(obs, res.descriptors.countries, res.descriptors.days, count=10_000, context=ctx)
    assert strict.report["windows_with_unobserved_days"] == 0 and strict.report["made"] < rep["made"]


def test_warnings_name_failed_inputs_and_dateadded_collapse(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(BQ, folder / BQ.name)
    (folder / "20200101.export.CSV.zip").write_bytes(b"PK\x03\x04 truncated")
    (folder / "notes.txt").write_text("hello\nworld\n")
    warned: list[str] = []
    B.build(B.list_inputs(folder), B.BuildOptions(out_dir=tmp_path / "b", k=3, kmeans_iters=1, context=5,
                                                  sequences=5, min_median_events=0),
            vocab=VOCAB, warn=warned.append)
    assert any("20200101.export.CSV.zip" in w and "corrupt zip" in w for w in warned), warned
    assert any("notes.txt" in w and "unknown layout" in w for w in warned), warned
    warned.clear()
    B.build([BQ], B.BuildOptions(out_dir=tmp_path / "c", k=3, kmeans_iters=1, context=5, sequences=5,
                                 day_key="dateadded", countries=["LY"]), vocab=VOCAB, warn=warned.append)
    assert any("day_key=dateadded: 400 backfile rows" in w for w in warned), warned


def test_cli_failures_are_loud(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.txt").write_text("x\ty\n")
    (bad / "b.zip").write_bytes(b"not a zip")
    res = runner.invoke(app, ["gdelt-build", "source=dir", f"input={bad}", f"hydra.run.dir={tmp_path / 'r1'}"])
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "none of the 2 files" in lines[0], res.output
    assert not (tmp_path / "r1" / "manifest.json").exists()
    res = runner.invoke(app, ["gdelt-build", "source=dir", f"input={BQ}", "descriptors.start=2020-02-30",
                              f"hydra.run.dir={tmp_path / 'r2'}"])
    assert res.exit_code == 2 and "descriptors.start must be a date" in res.output
    # a mixed folder: the corrupt input named with its cause at WARNING; the build goes on
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(BQ, mixed / BQ.name)
    (mixed / "b.zip").write_bytes(b"not a zip")
    res = runner.invoke(app, ["gdelt-build", "source=dir", f"input={mixed}", "embedding=hash", "descriptors.k=3",
                              "sequences.context=5", "sequences.count=20", "descriptors.min_median_events=0",
                              f"hydra.run.dir={tmp_path / 'r3'}", "-q"])
    assert res.exit_code == 0, res.output
    warns = [x for x in res.output.splitlines() if "[WARNING]" in x]           # on the console, even with -q
    assert any("b.zip" in w and "corrupt zip" in w for w in warns), res.output
    log = (tmp_path / "r3" / "gdelt-build.log").read_text()
    assert "WARNING" in log and "b.zip" in log


def test_archive_inputs(tmp_path):
    """A .tar.gz of event files is read member by member, like the extracted files."""
    arc = tmp_path / "data" / "export.tar.gz"
    arc.parent.mkdir()
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(BQ, arcname=f"export/{BQ.name}")
        info = tarfile.TarInfo("export/.hidden.csv")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    assert B.sniff(arc) == "archive" and B.sniff(BQ) == "csv" and B.sniff(V1) == "57"
    opts = dict(k=3, kmeans_iters=1, context=5, sequences=10, min_median_events=0)
    a = B.build(B.list_inputs(arc), B.BuildOptions(out_dir=tmp_path / "a", **opts), vocab=VOCAB)
    b = B.build([BQ], B.BuildOptions(out_dir=tmp_path / "b", **opts), vocab=VOCAB)
    assert list(a.manifest["inputs"]) == [f"export__{BQ.name}"]
    for key, value in b.descriptors.arrays().items():
        np.testing.assert_array_equal(getattr(a.descriptors, key), value)
    again = B.build(B.list_inputs(arc), B.BuildOptions(out_dir=tmp_path / "a", **opts), vocab=VOCAB)
    assert again.summary["files_skipped_cached"] == 1
    # a zipped 2.0 file is sniffed from its first member
    z = tmp_path / "v2.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("v2.CSV", V2.read_text())
    assert B.sniff(z) == "61"
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["inputs"][f"export__{BQ.name}"]["export_range"] == [19850101, 19850301]
