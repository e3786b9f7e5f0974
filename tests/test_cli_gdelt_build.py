"""`wgf gdelt-build` end to end: the run-folder contract, the dataset contract of
GDELT_SPEC.md (what `wgf gdelt-train` reads), re-runs, and bad input -> exit 2 with one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app

runner = CliRunner()
TINY = ["embedding=hash", "source.countries=3", "source.days=64", "source.events_per_day=50", "sequences.count=30",
        "workers=1", "descriptors.k=4"]


def wgf(*args: str):
    return runner.invoke(app, ["gdelt-build", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gb") / "run"
    res = wgf(*TINY, f"hydra.run.dir={run_dir}")
    assert res.exit_code == 0, res.output
    return run_dir, res


def test_run_folder_contract(built):
    run_dir, res = built
    for name in ["config.yaml", "run.json", "status.json", "metrics.jsonl", "metrics.csv", "summary.json",
                 "gdelt-build.log", "plots/overview.png", "manifest.json", "descriptors/descriptors.npz",
                 "descriptors/standard_events.npz", "sequences/index.parquet", "oracle.npz", "raw"]:
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ["files", "rows_read", "rows_kept", "rows_rejected", "countries", "days", "sequences", "wall_s",
                "rows_per_s"]:
        assert key in summary, key
    assert summary["files"] == 64 and summary["countries"] == 3 and summary["days"] == 64
    assert summary["synthetic_counts_match"] is True and summary["sequences"] == 30
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 64 and sum(r["rows_read"] for r in rows) == summary["rows_read"]
    assert str(run_dir) in res.output


def test_dataset_contract(built):
    run_dir, _ = built
    ds = json.loads((run_dir / "manifest.json").read_text())["dataset"]
    assert ds["version"] == 1 and ds["source"] == "synthetic" and ds["embedding"] == "hash"
    assert ds["embedding_dim"] == 64 and ds["k"] == 4 and ds["context"] == 50
    assert ds["n_countries"] == 3 and ds["n_days"] == 64 and ds["oracle"] is True
    C, D, K, E = 3, 64, 4, 64
    with np.load(run_dir / "descriptors" / "descriptors.npz") as z:
        spec = {"countries": ("<U3", (C,)), "days": ("int32", (D,)), "counts": ("int32", (C, D, 20, 4)),
                "total": ("int32", (C, D)), "goldstein_mean": ("float32", (C, D)),
                "goldstein_std": ("float32", (C, D)), "multi_frac": ("float32", (C, D)),
                "observed": ("bool", (C, D)), "points": ("float16", (C, D, K, E)),
                "weights": ("float32", (C, D, K)), "partners": ("<U3", (C, D, 3))}
        for key, (dtype, shape) in spec.items():
            assert z[key].dtype == np.dtype(dtype) and z[key].shape == shape, key
        assert list(z["countries"]) == sorted(z["countries"])
        np.testing.assert_array_equal(z["total"], z["counts"].sum((2, 3)))
        days = pd.to_datetime(pd.Series(z["days"]).astype(str))
        assert (days.diff().dropna() == pd.Timedelta(days=1)).all()
        w = z["weights"]
        np.testing.assert_allclose(w.sum(-1)[z["total"] > 0], 1.0, rtol=1e-5)
        counts, observed, zdays = z["counts"], z["observed"], z["days"]
    with np.load(run_dir / "descriptors" / "standard_events.npz") as s:
        assert s["codes"].dtype == np.dtype("<U4") and len(s["codes"]) == 311 and s["vectors"].shape == (311, E)
        assert s["vectors"].dtype == np.float32 and s["country_vectors"].shape == (len(s["country_codes"]), E)
        np.testing.assert_allclose(np.linalg.norm(s["vectors"], axis=1), 1.0, rtol=1e-5)
        assert s["phrases"][list(s["codes"]).index("0233")] == "Appeal for humanitarian aid"
    idx = pd.read_parquet(run_dir / "sequences" / "index.parquet")
    assert list(idx.columns) == ["seq_id", "country", "country_idx", "start", "split"]
    assert str(idx["seq_id"].dtype) == "int64" and str(idx["country_idx"].dtype) == "int32"
    assert str(idx["start"].dtype) == "int32"
    for c, st in zip(idx["country_idx"], idx["start"], strict=True):
        assert observed[c, st: st + 51].all()
    t = idx["start"] + 50
    tr, va, te = (t[idx["split"] == x] for x in ("train", "validation", "test"))
    assert tr.max() < va.min() <= va.max() < te.min()
    assert ds["splits"]["test"] == [int(zdays[te.min()]), int(zdays[te.max()])]
    with np.load(run_dir / "oracle.npz") as o:
        assert o["root_probs"].shape == (C, D, 20) and o["root_probs"].dtype == np.float64
        assert o["quad_probs"].shape == (C, D, 4) and o["total_mean"].shape == (C, D)
        np.testing.assert_allclose(o["root_probs"].sum(-1), 1.0, rtol=1e-12)
        # the predictive mean tracks the realised totals
        assert abs(o["total_mean"].sum() / counts.sum() - 1) < 0.1


def test_rerun_in_same_folder_skips_inputs(built):
    run_dir, _ = built
    before = np.load(run_dir / "descriptors" / "descriptors.npz")["counts"]
    res = wgf(*TINY, f"hydra.run.dir={run_dir}", "-q")
    assert res.exit_code == 0, res.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["files_skipped_cached"] == 64 and summary["files_built"] == 0
    np.testing.assert_array_equal(np.load(run_dir / "descriptors" / "descriptors.npz")["counts"], before)
    res = wgf(*TINY, f"hydra.run.dir={run_dir}", "--force", "-q")
    assert json.loads((run_dir / "summary.json").read_text())["files_built"] == 64


@pytest.mark.parametrize(("args", "message"), [
    (["source=dir"], "source=dir needs input=PATH"),
    (["source=dir", "input=/nonexistent/gdelt"], "input: /nonexistent/gdelt not found"),
    (["engine=dask", "cluster.address=localhost:8786"], "cluster.address must be tcp://HOST:PORT"),
    (["embedding=minilm", "embedding.model_path=/nonexistent/minilm"],
     "embedding=minilm: all-MiniLM-L6-v2 weights not found in /nonexistent/minilm"),
    (["descriptors.k=2"], "descriptors.k must be >= 3"),
    (["descriptors.day_key=week"], "descriptors.day_key must be one of sqldate, dateadded"),
    (["source.days=40"], "source.days must be > sequences.context"),
    (["source=download", "source.start=2015-06-09", "source.end=2015-06-01"], "source.end must be >= source.start"),
    (["source.transition=[[1,0,0],[0,1,0],[0,0,0.5]]"], "source.transition must be a 3x3 row-stochastic"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    res = runner.invoke(app, ["gdelt-build", *args, f"hydra.run.dir={tmp_path / 'run'}"])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_dir_source_on_real_samples(tmp_path):
    import shutil
    from pathlib import Path

    fix = Path(__file__).resolve().parent / "fixtures" / "gdelt"
    src = tmp_path / "in"
    src.mkdir()
    for f in fix.glob("*_100rows.tsv"):
        shutil.copy(f, src / f.name)
    res = wgf("source=dir", f"input={src}", "embedding=hash", "sequences.count=3", "sequences.context=2",
              "descriptors.k=3", f"output_dir={tmp_path / 'build'}", f"hydra.run.dir={tmp_path / 'run'}", "-q")
    # the samples' rows spread over 1979..2020 (a few per day): the automatic window keeps the
    # largest cluster of publication days (one day), never a 15,000-day axis; no 3-day window
    # exists, and the run fails with one line saying why, after writing what it built
    assert res.exit_code == 1, res.output
    errors = [x for x in res.output.splitlines() if x.startswith("wgf: error")]
    assert len(errors) == 1 and "no usable sequence" in errors[0] and "sequences.context" in errors[0], res.output
    assert "WARNING" in res.output and "outside it" in res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["rows_read"] == 200 and summary["rows_kept"] == 200 and summary["files"] == 2
    assert summary["days"] == 1 and summary["sequences"] == 0 and summary["rows_outside_window"] == 150
    assert (tmp_path / "build" / "manifest.json").exists() and not (tmp_path / "build" / "oracle.npz").exists()
    manifest = json.loads((tmp_path / "build" / "manifest.json").read_text())
    ds = manifest["dataset"]
    assert ds["oracle"] is False and ds["source"] == "dir"
    assert manifest["window"]["first"] == manifest["window"]["last"] == 20200318
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"
