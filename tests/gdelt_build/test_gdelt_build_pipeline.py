"""The build pipeline: idempotent re-runs, --force, resumption after an interruption, bad
inputs reported and skipped (or fatal with strict), parallel workers = serial."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from wgf_cli.gdelt import build as B
from wgf_cli.gdelt import descriptors as Dm
from wgf_cli.gdelt import embed
from wgf_cli.gdelt import synthetic as S

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt"
VOCAB = Dm.vocabulary(embed.HashEmbedder(16))


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    cfg = S.SyntheticConfig(countries=3, days=30, events_per_day=60, seed=2)
    model, truth, oracle, files = S.generate(cfg, out)
    return out, model, truth


def _opts(out: Path, model, **kw) -> B.BuildOptions:
    base = dict(out_dir=out, countries=list(model.countries), sequences=30, context=5, k=3, kmeans_iters=2)
    return B.BuildOptions(**{**base, **kw})


def _arrays(out: Path) -> dict:
    with np.load(out / "descriptors" / "descriptors.npz") as z:
        return {k: z[k] for k in z.files}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_rerun_skips_built_inputs_and_is_identical(tmp_path, raw):
    src, model, truth = raw
    inputs = B.list_inputs(src)
    r1 = B.build(inputs, _opts(tmp_path, model), vocab=VOCAB)
    a1 = _arrays(tmp_path)
    idx1 = pd.read_parquet(tmp_path / "sequences" / "index.parquet")
    r2 = B.build(inputs, _opts(tmp_path, model), vocab=VOCAB)
    assert r2.summary["files_skipped_cached"] == 30 and r2.summary["files_built"] == 0
    assert r2.summary["rows_kept"] == r1.summary["rows_kept"]
    _same(a1, _arrays(tmp_path))
    pd.testing.assert_frame_equal(idx1, pd.read_parquet(tmp_path / "sequences" / "index.parquet"))
    r3 = B.build(inputs, _opts(tmp_path, model, force=True), vocab=VOCAB)
    assert r3.summary["files_built"] == 30
    _same(a1, _arrays(tmp_path))
    order = np.argsort(model.countries)
    np.testing.assert_array_equal(a1["counts"], truth.counts[order])


def test_partitions_typed_and_listed(tmp_path, raw):
    src, model, _ = raw
    res = B.build(B.list_inputs(src), _opts(tmp_path, model), vocab=VOCAB)
    entry = res.manifest["inputs"]["20190601.export.CSV.zip"]
    assert entry["layouts"] == {"58": entry["rows_read"]} and entry["status"] == "ok"
    assert len(entry["md5"]) == 32 and entry["size"] == (src / "20190601.export.CSV.zip").stat().st_size
    assert entry["outputs"] == ["events/year=2019/month=06/20190601.export.CSV.zip.parquet"]
    t = pq.read_table(tmp_path / entry["outputs"][0])
    types = {f.name: str(f.type) for f in t.schema}
    assert types["GLOBALEVENTID"] == "int64" and types["SQLDATE"] == "int32" and types["EventCode"] == "string"
    assert types["GoldsteinScale"] == "float" and types["Multi_Country_Flag"] == "int8"
    assert t.num_rows == entry["rows_kept"]
    rej = (tmp_path / entry["rejects_file"]).read_text().splitlines()
    assert rej[0] == "reason\tfields" and len(rej) - 1 == entry["rows_rejected"]


def test_interrupted_build_resumes(tmp_path, raw):
    src, model, _ = raw
    inputs = B.list_inputs(src)
    full = tmp_path / "full"
    B.build(inputs, _opts(full, model), vocab=VOCAB)
    out = tmp_path / "out"
    # an interrupted first run: 10 inputs in the manifest, an 11th with its partition written
    # but never recorded, and a stray temporary file
    B.build(inputs[:10], _opts(out, model, sequences=1), vocab=VOCAB)
    B.process_input(str(inputs[10]), inputs[10].name, str(out))
    bogus = out / "events" / "year=2019" / "month=06" / ".x.parquet.123.tmp"
    bogus.write_bytes(b"partial")
    res = B.build(inputs, _opts(out, model), vocab=VOCAB)
    assert res.summary["files_skipped_cached"] == 10 and res.summary["files_built"] == 20
    _same(_arrays(full), _arrays(out))


def test_changed_input_is_rebuilt_and_stale_partitions_removed(tmp_path, raw):
    src, model, _ = raw
    local = tmp_path / "in"
    shutil.copytree(src, local)
    out = tmp_path / "out"
    inputs = B.list_inputs(local)
    B.build(inputs, _opts(out, model), vocab=VOCAB)
    lines = (FIX / "v1_mixed_57_58_100rows.tsv").read_text().splitlines()[60:70]   # 2013-04-01 rows
    with zipfile.ZipFile(local / "20190605.export.CSV.zip", "w") as zf:
        zf.writestr("20190605.export.CSV", "\n".join(lines) + "\n")
    res = B.build(inputs, _opts(out, model), vocab=VOCAB)
    assert res.summary["files_built"] == 1
    e = res.manifest["inputs"]["20190605.export.CSV.zip"]
    assert e["rows_read"] == 10
    assert not (out / "events/year=2019/month=06/20190605.export.CSV.zip.parquet").exists()


def test_bad_inputs_reported_and_skipped(tmp_path, raw):
    src, model, _ = raw
    local = tmp_path / "in"
    shutil.copytree(src, local)
    data = (local / "20190610.export.CSV.zip").read_bytes()
    (local / "20190610.export.CSV.zip").write_bytes(data[: len(data) // 3])        # truncated zip
    (local / "20190611.export.CSV.zip").write_bytes(b"not a zip at all")            # corrupt zip
    (local / "notes.txt").write_text("a,b,c\n1,2,3\n")                               # unknown layout
    opts = _opts(tmp_path / "out", model)
    opts.max_gap = 0                                                # the strict rule: no unobserved day
    res = B.build(B.list_inputs(local), opts, vocab=VOCAB)
    man = res.manifest["inputs"]
    assert res.summary["files_failed"] == 3 and res.summary["files"] == 31
    assert "corrupt zip" in man["20190610.export.CSV.zip"]["error"]
    assert "corrupt zip" in man["20190611.export.CSV.zip"]["error"]
    assert "unknown layout" in man["notes.txt"]["error"]
    assert man["20190611.export.CSV.zip"]["md5"] and man["20190612.export.CSV.zip"]["status"] == "ok"
    assert not res.descriptors.observed[0, 9] and not res.descriptors.observed[0, 10]
    assert res.descriptors.observed[0, 11]
    # the sequences never cross the two missing days
    starts = res.sequences.index["start"].to_numpy()
    assert not ((starts <= 10) & (starts + 5 >= 9)).any()
    with pytest.raises(B.BuildError, match="strict"):
        B.build(B.list_inputs(local), _opts(tmp_path / "strict", model, strict=True), vocab=VOCAB)


def test_parallel_workers_equal_serial(tmp_path, raw):
    src, model, _ = raw
    inputs = B.list_inputs(src)[:8]
    B.build(inputs, _opts(tmp_path / "a", model, workers=1, sequences=3), vocab=VOCAB)
    B.build(inputs, _opts(tmp_path / "b", model, workers=2, sequences=3), vocab=VOCAB)
    _same(_arrays(tmp_path / "a"), _arrays(tmp_path / "b"))
    ma = json.loads((tmp_path / "a" / "manifest.json").read_text())["inputs"]
    mb = json.loads((tmp_path / "b" / "manifest.json").read_text())["inputs"]
    assert {k: (v["md5"], v["rows_kept"]) for k, v in ma.items()} == {k: (v["md5"], v["rows_kept"])
                                                                       for k, v in mb.items()}


def test_real_samples_build(tmp_path):
    """The real 57/58/61 samples build into descriptors over every country seen."""
    res = B.build([FIX / "v1_mixed_57_58_100rows.tsv", FIX / "v2_61cols_100rows.tsv"],
                  B.BuildOptions(out_dir=tmp_path, sequences=5, context=3, k=3, kmeans_iters=2, start=20150218,
                                 end=20150608, min_median_events=0, country_by="actor"), vocab=VOCAB)
    assert res.summary["rows_read"] == 200 and res.summary["rows_kept"] == 200 and res.summary["rows_rejected"] == 0
    m = res.manifest["inputs"]
    assert m["v1_mixed_57_58_100rows.tsv"]["layouts"] == {"57": 40, "58": 60}
    assert m["v2_61cols_100rows.tsv"]["layouts"] == {"61": 100}
    assert "US" in res.descriptors.countries and "SF" in res.descriptors.countries


def test_dask_engine_equals_local(tmp_path, raw):
    """engine=dask on a local cluster of 2 worker processes builds what the local engine builds."""
    src, model, _ = raw
    inputs = B.list_inputs(src)[:6]
    B.build(inputs, _opts(tmp_path / "a", model, workers=1, sequences=3), vocab=VOCAB)
    B.build(inputs, _opts(tmp_path / "b", model, engine="dask", workers=2, sequences=3), vocab=VOCAB)
    _same(_arrays(tmp_path / "a"), _arrays(tmp_path / "b"))
    ma = json.loads((tmp_path / "a" / "manifest.json").read_text())["inputs"]
    mb = json.loads((tmp_path / "b" / "manifest.json").read_text())["inputs"]
    drop = ("wall_s",)
    assert {k: {f: x for f, x in v.items() if f not in drop} for k, v in ma.items()} == \
        {k: {f: x for f, x in v.items() if f not in drop} for k, v in mb.items()}


def test_dask_engine_on_a_running_scheduler(tmp_path, raw):
    """engine=dask with cluster.address: the inputs go to the scheduler at that address."""
    from dask.distributed import LocalCluster

    src, model, _ = raw
    inputs = B.list_inputs(src)[:4]
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        res = B.build(inputs, _opts(tmp_path / "d", model, engine="dask", cluster_address=cluster.scheduler_address,
                                    sequences=3), vocab=VOCAB)
        executed = sum(w.state.executed_count for w in cluster.workers.values())
    assert executed == 4 and res.summary["files_built"] == 4 and res.summary["files_failed"] == 0
    B.build(inputs, _opts(tmp_path / "l", model, sequences=3), vocab=VOCAB)
    _same(_arrays(tmp_path / "d"), _arrays(tmp_path / "l"))


@pytest.mark.parametrize(("day_key", "window"), [("sqldate", None), ("dateadded", None),
                                                ("sqldate", (20150705, 20150820)), ("dateadded", (20150705, 20150820))])
def test_month_by_month_descriptors_equal_all_at_once(tmp_path, day_key, window):
    """The build describes one calendar month at a time (memory bounded by a month of events)
    and counts the events outside its date window file by file; the result equals compute()
    on every event at once with the same countries, diagnostics included."""
    cfg = S.SyntheticConfig(countries=3, days=75, events_per_day=40, seed=4, start="2015-06-20")
    model, *_ = S.generate(cfg, tmp_path / "raw")
    opts = _opts(tmp_path / "b", model, sequences=3, day_key=day_key, max_lag=5)
    opts.countries = None
    opts.min_median_events = 0
    if window:
        opts.start, opts.end = window
    res = B.build(B.list_inputs(tmp_path / "raw"), opts, vocab=VOCAB)
    files = sorted(str(p) for p in (tmp_path / "b" / "events").rglob("*.parquet"))
    assert len(B.month_windows(res.descriptors.days)) == (4 if window is None else 2)   # Jun 20 - Sep 2
    events = pd.concat([pq.read_table(f, columns=B.EVENT_COLUMNS).to_pandas() for f in files], ignore_index=True)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    pub = sorted({d for e in manifest["inputs"].values() for d in e["pub_days"]})
    first, last = window or (pub[0], pub[-1])
    assert (int(res.descriptors.days[0]), int(res.descriptors.days[-1])) == (first, last)
    ref = Dm.compute(events, VOCAB, days=Dm.day_range(first, last), observed_days=np.array(pub), k=3,
                     day_key=day_key, max_lag=5, kmeans_iters=2, countries=list(res.descriptors.countries))
    _same(res.descriptors.arrays(), ref.arrays())
    assert res.descriptors.diagnostics == ref.diagnostics
    if day_key == "sqldate":
        assert ref.diagnostics["too_old"] > 0                          # the lag rule was exercised
    if window:
        assert ref.diagnostics["outside_days"] > 0 and res.summary["rows_outside_window"] > 0
