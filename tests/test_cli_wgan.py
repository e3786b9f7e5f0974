"""`wgf wgan` end to end: the run-folder contract on tiny runs, the Dirac preset's numbers,
seeds inside one run, and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app

runner = CliRunner()
TINY = ["iterations=12", "eval.every=6", "eval.samples=120", "eval.track_every=2", "batch_size=32",
        "model.generator.hidden=8", "model.critic.hidden=8", "output.grid=16", "output.snapshots=2"]


def wgan(*args: str):
    return runner.invoke(app, ["wgan", *args], catch_exceptions=False)


def test_train_run_folder_contract(tmp_path):
    res = wgan(*TINY, "loss=wgan_clip", "loss.clip=0.05", f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    for name in ["config.yaml", "run.json", "status.json", "metrics.jsonl", "metrics.csv", "summary.json",
                 "samples.npz", "trajectory.npz", "seeds.csv", "checkpoints/last.pt", "wgan.log",
                 "plots/samples.png", "plots/metrics.png", "plots/weights.png", "plots/clouds.png",
                 "plots/oscillation.png"]:
        assert (tmp_path / name).exists(), name
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert df.columns[0] == "step"
    for col in ["iter", "w1", "w2", "critic_w1_estimate", "modes_covered", "hq_fraction", "reverse_kl",
                "clip_boundary_fraction", "gen_mean_0", "gen_mean_1"]:
        assert col in df.columns, col
    assert df["iter"].tolist() == [0, 6, 12]
    s = json.loads((tmp_path / "summary.json").read_text())
    for key in ["loss", "data", "final_w1", "modes_covered", "hq_fraction", "reverse_kl",
                "clip_boundary_fraction", "oscillation_period", "wall_s"]:
        assert key in s, key
    assert s["loss"] == "wgan_clip" and s["data"] == "ring8"
    np.testing.assert_allclose(s["final_w1"], df["w1"].iloc[-1], rtol=1e-12)
    assert 0.0 <= s["clip_boundary_fraction"] <= 1.0
    arr = np.load(tmp_path / "samples.npz")
    assert arr["samples"].shape == (1, 120, 2) and arr["centres"].shape == (8, 2)


def test_same_seed_same_metrics(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        assert wgan(*TINY, "-q", f"hydra.run.dir={d}").exit_code == 0
    cols = ["w1", "w2", "modes_covered", "hq_fraction", "gen_mean_0"]
    pd.testing.assert_frame_equal(pd.read_csv(a / "metrics.csv")[cols], pd.read_csv(b / "metrics.csv")[cols])


def test_seeds_in_one_run_give_mean_and_standard_error(tmp_path):
    res = wgan(*TINY, "data=gauss2_1d", "model.z_dim=1", "seeds=[0,1,2]", "-q", f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    table = pd.read_csv(tmp_path / "seeds.csv")
    assert s["seeds"] == 3 and table["seed"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(s["final_w1"], table["w1"].mean(), rtol=1e-12)
    np.testing.assert_allclose(s["final_w1_se"], table["w1"].std(ddof=1) / np.sqrt(3), rtol=1e-12)
    np.testing.assert_allclose(s["hq_fraction"], table["hq_fraction"].mean(), rtol=1e-12)


@pytest.mark.parametrize("loss", ["gan_ns", "sinkhorn"])  # gan: the vanilla presets (test_presets)
def test_other_losses_run(loss, tmp_path):
    res = wgan(*TINY, f"loss={loss}", "data=grid25", "-q", f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["loss"] == loss and s["critic_w1_estimate"] is None


def test_dirac_preset_matches_the_closed_forms(tmp_path):
    res = wgan("experiment=dirac", "-q", f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["conserved_drift"] < 1e-3
    assert s["simultaneous_rel_error"] < 1e-3
    np.testing.assert_allclose(s["simultaneous_radius"], 1.01 ** 50, rtol=1e-3)  # (1 + 0.1^2)^(100/2)
    np.testing.assert_allclose(s["clip_final_radius"], 0.5, rtol=1e-3)
    np.testing.assert_allclose(s["clip_time_to_cycle"], np.pi / 6 + np.sqrt(3), atol=1e-3)
    assert s["clip_time_error"] < 1e-3 and s["clip_radius_error"] < 1e-3
    assert (tmp_path / "plots/phase_portrait.png").exists() and (tmp_path / "dirac.npz").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["loss=lsgan"], "lsgan"),
    (["loss=wgan_clip", "loss.clip=0"], "loss.clip must be > 0"),
    (["loss=wgan_clip", "loss.clip=-0.01"], "loss.clip must be > 0"),
    (["loss.n_critic=0"], "loss.n_critic must be >= 1"),
    (["data=moons"], "moons"),
    (["iterations=0"], "iterations must be >= 1"),
    (["seeds=[0,0]"], "seeds must not repeat"),
    (["device=cuda"] if not __import__("torch").cuda.is_available() else ["device=tpu"], "device"),
    (["experiment=dirac", "dirac.psi0=2.0"], "dirac"),
    (["task=gan"], "task must be one of"),
])
def test_bad_input_one_line_exit_2(args, message, tmp_path):
    res = runner.invoke(app, ["wgan", *args, f"hydra.run.dir={tmp_path / 'r'}"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("wgf: error:") and message in lines[0], res.output
    assert not (tmp_path / "r").exists()
