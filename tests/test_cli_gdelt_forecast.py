"""`wgf gdelt-forecast` end to end: a tiny gdelt-train run on the fixture build, then the
forecast of the day after the build's last day."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from wgf_cli.cli import app

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "gdelt_train_build"
TOY = ["train.per_epoch=32", "train.batch_size=16", "model.d_model=16", "model.ff=32", "model.layers=1",
       "train.max_val=16", "data.max_eval=24", "eval.samples=10", "train.epochs=1", "threads=1",
       "baselines.gru.enabled=false"]


def test_forecast_of_the_day_after_the_build(tmp_path):
    runner = CliRunner()
    train_dir, fc_dir = tmp_path / "train", tmp_path / "fc"
    res = runner.invoke(app, ["gdelt-train", f"data.build_dir={FIXTURE}", *TOY, f"hydra.run.dir={train_dir}", "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["gdelt-forecast", f"run={train_dir}", f"hydra.run.dir={fc_dir}", "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads((fc_dir / "forecast.json").read_text())
    with np.load(FIXTURE / "descriptors" / "descriptors.npz") as z:
        last, countries, partners = int(z["days"][-1]), list(z["countries"]), z["partners"]
    expected = (pd.Timestamp(str(last)) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    assert doc["date"] == expected and doc["last_observed_day"] == last
    assert [f["country"] for f in doc["forecasts"]] == [str(c) for c in countries]
    for i, f in enumerate(doc["forecasts"]):
        assert f["expected_events"] > 0 and f["interval80"][0] <= f["expected_events"] <= f["interval80"][1] + 1
        assert all(0 <= r["share"] <= 1 and 0 <= r["p_occurs"] <= 1 for r in f["roots"])
        seen = {str(p) for p in partners[i, -28:].ravel() if p}   # partners only from the events
        assert {p["country"] for p in f["partners"]} <= seen
        assert abs(sum(p["share"] for p in f["partners"]) - 1) < 1e-3 or len(seen) > 3
    assert (fc_dir / "forecast.md").is_file() and (fc_dir / "plots" / "forecast.png").is_file()


def test_forecast_bad_input_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["gdelt-forecast", f"hydra.run.dir={tmp_path / 'x'}"])
    assert res.exit_code == 2 and "run is required" in res.output
    res = runner.invoke(app, ["gdelt-forecast", f"run={tmp_path}", f"hydra.run.dir={tmp_path / 'y'}"])
    assert res.exit_code == 2 and "has no config.yaml" in res.output
