"""`wgf gdelt-train` through the CLI: the run-folder contract on a tiny build, exact resume
(2 epochs + 2 resumed = 4 straight), and bad input -> one line, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "gdelt_train_build"
TINY = [f"data.build_dir={FIXTURE}", "train.per_epoch=32", "train.batch_size=16",
        "model.d_model=16", "model.ff=32", "model.layers=1", "train.max_val=16",
        "data.max_eval=24", "eval.samples=10", "eval.examples=2", "threads=1", "train.patience=0"]


def _run(*args):
    return CliRunner().invoke(app, ["gdelt-train", "--quiet", *args])


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    res = _run(*TINY, "train.epochs=4", "baselines.gru.epochs=1", f"hydra.run.dir={out}")
    assert res.exit_code == 0, res.output
    return out


def test_run_folder_contract(straight):
    for name in ("config.yaml", "run.json", "status.json", "metrics.csv", "summary.json",
                 "forecasts.parquet", "checkpoints/last.pt", "plots/learning_curves.png",
                 "plots/reliability.png", "plots/metric_table.png", "plots/example_forecasts.png"):
        assert (straight / name).is_file(), name
    s = json.loads((straight / "summary.json").read_text())
    for key in ("test_log_loss", "test_brier", "test_f1_micro", "test_rouge1", "skill_vs_oracle",
                "persistence_log_loss", "climatology_log_loss", "moving_average_log_loss",
                "gru_log_loss", "oracle_log_loss", "epochs", "sequences_per_s", "device", "wall_s"):
        assert key in s, key
    assert s["epochs"] == 4 and s["device"] == "cpu"
    m = pd.read_csv(straight / "metrics.csv")
    assert list(m["step"]) == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "lr", "sequences_per_s"} <= set(m.columns)
    f = pd.read_parquet(straight / "forecasts.parquet")
    assert len(f) == 24 and {"root_probs", "forecast_phrases", "actual_phrases"} <= set(f.columns)
    assert all(len(x) > 0 for x in f["actual_phrases"])


def test_resume_equals_straight_run(straight, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    res = _run(*TINY, "train.epochs=4", "train.stop_after=2", "baselines.gru.epochs=1",
               f"hydra.run.dir={first}")
    assert res.exit_code == 0, res.output
    assert json.loads((first / "summary.json").read_text())["epochs"] == 2
    res = _run(*TINY, "train.epochs=4", "baselines.gru.epochs=1", f"resume={first}",
               f"hydra.run.dir={second}")
    assert res.exit_code == 0, res.output
    a, b = _rows(straight), _rows(second)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "val_loss", "val_log_loss", "lr"):
            assert ra[k] == rb[k], (k, ra[k], rb[k])
    sa = json.loads((straight / "summary.json").read_text())
    sb = json.loads((second / "summary.json").read_text())
    for k in ("test_log_loss", "test_brier", "test_f1_micro", "test_rouge1", "gru_log_loss"):
        assert sa[k] == sb[k], k


def _one_line_exit_2(res, *needles):
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1, res.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_build_folder(tmp_path):
    res = _run(f"data.build_dir={tmp_path / 'none'}", f"hydra.run.dir={tmp_path / 'r'}")
    _one_line_exit_2(res, "data.build_dir", "wgf gdelt-build experiment=gdelt_synthetic")
    assert not (tmp_path / "r").exists()


def test_sequences_shorter_than_context(tmp_path):
    res = _run(*TINY, "data.context=80", f"hydra.run.dir={tmp_path / 'r'}")
    _one_line_exit_2(res, "data.context=80")


def test_resume_on_a_build_with_another_embedding(straight, tmp_path):
    other = shutil.copytree(FIXTURE, tmp_path / "other")
    m = json.loads((other / "manifest.json").read_text())
    m["dataset"]["embedding"] = "minilm"
    (other / "manifest.json").write_text(json.dumps(m))
    res = _run(*TINY, f"data.build_dir={other}", f"resume={straight}",
               f"hydra.run.dir={tmp_path / 'r'}")
    _one_line_exit_2(res, "embedding", "minilm", "hash")


def test_resume_with_another_model_is_refused_before_any_work(straight, tmp_path):
    res = _run(*TINY, "model.d_model=32", "model.heads=4", f"resume={straight}",
               f"hydra.run.dir={tmp_path / 'r'}")
    _one_line_exit_2(res, "resume", "d_model=16", "d_model=32")
    assert not (tmp_path / "r").exists()


def test_bad_values(tmp_path):
    _one_line_exit_2(_run(*TINY, "model.heads=3"), "model.heads")
    _one_line_exit_2(_run(*TINY, f"resume={tmp_path}"), "resume")
    _one_line_exit_2(_run(*TINY, "model.regime_filter=true", "model.mixture=0"),
                     "model.regime_filter", "model.mixture")
    _one_line_exit_2(_run(*TINY, "train.monitor=sinkhorn"), "train.monitor", "log_loss")
