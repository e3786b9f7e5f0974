"""`wgf meanfield` end to end: run-folder contract on tiny runs, bad input -> one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app

runner = CliRunner()
TINY = ["data.size=24", "data.test_size=32", "time=0.1", "dt=0.05", "model.width=16"]


def wgf(*args: str):
    return runner.invoke(app, ["meanfield", *args], catch_exceptions=False)


def test_train_gd_run_folder_contract(tmp_path):
    res = wgf(*TINY, f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    for name in ["config.yaml", "run.json", "status.json", "metrics.jsonl", "metrics.csv", "summary.json",
                 "particles.npz", "meanfield.log", ".hydra/config.yaml", "plots/loss.png",
                 "plots/trajectories.png", "plots/outputs.png"]:
        assert (tmp_path / name).exists(), name
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert df.columns[0] == "step"
    for col in ["method", "t", "loss", "test_loss", "grad_norm"]:
        assert col in df.columns, col
    np.testing.assert_allclose(df["t"].to_numpy(), [0.0, 0.05, 0.1], rtol=0, atol=1e-15)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ["method", "m", "final_loss", "final_test_loss", "wall_s"]:
        assert key in summary, key
    assert summary["method"] == "gd" and summary["m"] == 16
    assert summary["final_loss"] == pytest.approx(df["loss"].iloc[-1], rel=0, abs=0)
    arrays = np.load(tmp_path / "particles.npz")
    assert arrays["W"].shape[1:] == (16, 2)


def test_same_seed_same_metrics(tmp_path):
    a = wgf(*TINY, "method=sgd", "sgd.batch_size=8", f"hydra.run.dir={tmp_path / 'a'}", "-q")
    b = wgf(*TINY, "method=sgd", "sgd.batch_size=8", f"hydra.run.dir={tmp_path / 'b'}", "-q")
    assert a.exit_code == 0 and b.exit_code == 0
    da, db = (pd.read_csv(tmp_path / k / "metrics.csv") for k in "ab")
    pd.testing.assert_frame_equal(da, db)


def test_jko_grid_run(tmp_path):
    res = wgf(*TINY, "method=jko_grid", "jko.grid_size=24", "jko.box=3.0", "jko.h=0.05",
              f"hydra.run.dir={tmp_path}", "-q")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["method"] == "jko_grid" and summary["blur_diffusion"] > 0
    g = np.load(tmp_path / "grid.npz")
    assert g["r"].shape[1:] == (2, 24, 24)
    np.testing.assert_allclose(g["r"].sum(axis=(1, 2, 3)), 1.0, rtol=0, atol=1e-9)
    assert (tmp_path / "plots" / "grid_snapshots.png").exists()
    df = pd.read_csv(tmp_path / "metrics.csv")
    for col in ["method", "t", "loss", "test_loss", "grad_norm", "inner_iters", "marginal_error"]:
        assert col in df.columns, col
    assert (df["loss"].diff().dropna() < 0).all()  # small h: the grid flow decreases the loss


def test_compare_and_width_modes(tmp_path):
    res = wgf(*TINY, "mode=compare", "jko.grid_size=24", "jko.box=3.0", "jko.h=0.05", "wprox.tau=0.05",
              "wprox.inner_iters=2", "compare.distances_at=2", f"hydra.run.dir={tmp_path / 'c'}", "-q")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "c" / "summary.json").read_text())
    for key in ["max_w2_gd_vs_wgf", "loss_gap_max", "loss_gap_tolerance", "loss_gap_wprox_max"]:
        assert key in s, key
    df = pd.read_csv(tmp_path / "c" / "metrics.csv")
    assert set(df["method"]) == {"gd", "jko_grid", "wprox", "gd_blur", "gd_h"}
    assert df.loc[df.method == "gd", "dist_to_reference"].notna().sum() == 2
    res = wgf(*TINY, "mode=width", "width_study.widths=[4,8]", "width_study.seeds=2",
              "width_study.reference=32", "width_study.times=[0.1]", "width_study.bootstrap=20",
              f"hydra.run.dir={tmp_path / 'w'}", "-q")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    for key in ["slope", "slope_ci_low", "slope_ci_high", "method", "m", "final_loss", "wall_s"]:
        assert key in s, key
    assert s["slope_ci_low"] <= s["slope"] <= s["slope_ci_high"]
    assert (tmp_path / "w" / "plots" / "width.png").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["model.width=0"], "model.width must be >= 1"),
    (["method=jko_grid", "data.dim=3"], "jko_grid needs data.dim=2"),
    (["method=jko_grid", "jko.grid_size=16"], "jko.grid_size=16 too coarse for the data scale"),
    (["method=adam"], "method must be one of"),
    (["time=0.105", "dt=0.01"], "time must be a multiple of dt"),
    (["data.target=csv", "data.path=/nonexistent.csv"], "data.path"),
    (["mode=width", "width_study.reference=8", "width_study.widths=[4,16]"], "width_study.reference"),
    (["method=jko_grid", "model.train_alpha=true"], "model.train_alpha=false"),
])
def test_bad_input_one_line_exit_2(args, needle, tmp_path):
    res = runner.invoke(app, ["meanfield", *args, f"hydra.run.dir={tmp_path / 'r'}"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.output
    assert not (tmp_path / "r").exists()
