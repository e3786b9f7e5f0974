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


def test_twopoint_preset_matches_the_closed_forms(tmp_path):
    res = wgan("experiment=wgan_twopoint", "twopoint.flow_h=0.002", "-q", f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["twopoint_integral_drift"] < 1e-9
    np.testing.assert_allclose(s["twopoint_limit_level"], 0.5 * 0.3**2 + 1.0, rtol=1e-12)  # c²/2 + cosh 0
    assert s["twopoint_limit_error"] < 1e-6 and s["twopoint_time_error"] < 1e-3
    assert s["starts_outside"] == 4 and s["twopoint_inside_drift"] < 1e-9
    assert (tmp_path / "plots/twopoint.png").exists() and (tmp_path / "twopoint.npz").exists()


def test_vanishing_task_small(tmp_path):
    res = wgan("experiment=wgan_vanishing", "vanishing.steps=300", "vanishing.thetas=[0.0,1.0]", "-q",
               f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    df = pd.read_csv(tmp_path / "vanishing.csv")
    assert df["theta"].tolist() == [0.0, 1.0]
    np.testing.assert_allclose(df["js"], [0.0, np.log(2)])
    assert s["js_trained_max_error"] < 1e-3 and s["gan_grad_max"] < 1e-3
    assert s["wgan_grad_min"] > 0.8
    assert (tmp_path / "plots/vanishing.png").exists()


def test_ema_and_held_out_seeds_in_the_summary(tmp_path):
    res = wgan(*TINY, "seeds=[3,4]", "dev_seeds=[0,1,2]", "ema.decay=0.9", "ema.compare=[0.5]", "-q",
               f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    table = pd.read_csv(tmp_path / "seeds.csv")
    assert s["heldout"] is True and s["scored_seeds"] == [3, 4] and s["dev_seeds"] == [0, 1, 2]
    assert s["ema"] == 0.9
    for prefix in ("", "raw_", "ema0.5_"):
        np.testing.assert_allclose(s[f"{prefix}hq_fraction"], table[f"{prefix}hq_fraction"].mean(), rtol=1e-12)
        assert s[f"{prefix}hq_fraction_worst"] == table[f"{prefix}hq_fraction"].min()
        assert s[f"{prefix}final_w1_worst"] == table[f"{prefix}w1"].max()
    # a scored seed among the development seeds: not held out
    res = wgan(*TINY, "seeds=[1,4]", "dev_seeds=[0,1,2]", "-q", f"hydra.run.dir={tmp_path / 'b'}")
    assert json.loads((tmp_path / "b/summary.json").read_text())["heldout"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["ema.decay=1.0"], "ema.decay must be 0 (off) or in (0, 1)"),
    (["ema.compare=[0.9,1.5]"], "ema.compare must be a list of decays in (0, 1)"),
    (["dev_seeds=[-1]"], "dev_seeds must be null or a list of integers >= 0"),
    (["task=twopoint", "twopoint.clip=0"], "twopoint.clip must be > 0"),
    (["task=twopoint", "twopoint.starts=[[0.0,0.5]]"], "|omega0| > twopoint.clip"),
    (["task=twopoint", "twopoint.p=1.0"], "twopoint.p must be in (0, 1)"),
    (["task=twospecies", "twospecies.widths=[16,16]"], "at least two different widths"),
    (["task=twospecies", "twospecies.reference_width=256"], "reference_width must be >= 4 x the largest width (512)"),
    (["task=twospecies", "twospecies.speeds=[1.0,0.0]"], "twospecies.speeds must be > 0"),
    (["task=twospecies", "twospecies.widths=[a,b]"], "twospecies.widths must be a non-empty list of integers >= 2"),
    (["task=vanishing", "vanishing.thetas=[0.0]"], "at least one != 0"),
    (["task=vanishing", "vanishing.gp_lambda=-1"], "vanishing.gp_lambda must be > 0"),
])
def test_bad_new_input_one_line_exit_2(args, message, tmp_path):
    res = runner.invoke(app, ["wgan", *args, f"hydra.run.dir={tmp_path / 'r'}"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("wgf: error:") and message in lines[0], res.output
    assert not (tmp_path / "r").exists()


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
