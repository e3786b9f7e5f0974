"""`wgf renyi-mi` end to end: tiny runs write the run-folder contract; bad input exits 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app

runner = CliRunner()
TINY = ["train.epochs=1", "info.every=7", "info.eval_size=60", "network.widths=[12,6]",
        "train.batch_size=128"]


def wgf(*args: str):
    return runner.invoke(app, ["renyi-mi", *args], catch_exceptions=False)


def test_help_lists_renyi_mi():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "renyi-mi" in res.output


def test_infoplane_run_folder_contract(tmp_path):
    run_dir = tmp_path / "run"
    res = wgf(*TINY, f"hydra.run.dir={run_dir}")
    assert res.exit_code == 0, res.output
    for name in ["config.yaml", "run.json", "status.json", "metrics.jsonl", "metrics.csv",
                 "summary.json", "infoplane.npz", "neurons.npz", "renyi-mi.log",
                 "plots/infoplane.png", "plots/mi_epochs.png", "plots/dpi.png", "plots/neurons.png"]:
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    df = pd.read_csv(run_dir / "metrics.csv")
    assert df.columns[0] == "step"
    for col in ["epoch", "layer", "I_XT", "I_TY", "H_T", "sigma"]:
        assert col in df.columns, col
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ["alpha", "layers", "final_accuracy", "dpi_violations", "wall_s", "H_X", "H_Y"]:
        assert key in summary, key
    assert summary["layers"] == 3 and sorted(df["layer"].unique()) == [1, 2, 3]
    # every checkpoint measures every layer; MI is bounded by the entropies
    assert len(df) == 3 * summary["checkpoints"]
    assert (df["I_XT"] >= -1e-9).all() and (df["I_TY"] >= -1e-9).all()
    assert (df["I_XT"] <= np.minimum(df["H_X"], df["H_T"]) + 1e-9).all()
    assert (df["I_TY"] <= np.minimum(df["H_Y"], df["H_T"]) + 1e-9).all()
    assert (df["sigma"] > 0).all()
    # H(Y) is the Rényi entropy of the label histogram of the evaluation batch (alpha = 1.01)
    assert 0 < summary["H_Y"] <= np.log2(10) + 1e-9


def test_same_seed_same_metrics(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert wgf(*TINY, f"hydra.run.dir={a}", "-q").exit_code == 0
    assert wgf(*TINY, f"hydra.run.dir={b}", "-q").exit_code == 0
    da, db = pd.read_csv(a / "metrics.csv"), pd.read_csv(b / "metrics.csv")
    pd.testing.assert_frame_equal(da, db)


def test_ntk_and_scaling_tasks(tmp_path):
    res = wgf("--task", "ntk", *TINY, "ntk.size=30", f"hydra.run.dir={tmp_path / 'ntk'}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "ntk" / "summary.json").read_text())
    assert 0 <= s["ntk_entropy_final"] <= np.log2(30) + 1e-9
    assert (tmp_path / "ntk" / "plots" / "ntk.png").exists()
    res = wgf("--task", "scaling", "scaling.sizes=[200,400]", "entropy.fast.block=16",
              "entropy.fast.blocks=4", "kernel.width=silverman", f"hydra.run.dir={tmp_path / 'sc'}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "sc" / "summary.json").read_text())
    for key in ["n_max", "max_rel_error", "speedup_at_n_max"]:
        assert key in s
    assert s["n_max"] == 400 and s["max_rel_error"] < 1e-2


@pytest.mark.parametrize(("args", "key"), [
    (["alpha=0"], "alpha"),
    (["--alpha", "-1"], "alpha"),
    (["alpha=1", "entropy.method=frobenius"], "entropy.method"),
    (["kernel.width=fixed:0"], "kernel.width"),
    (["kernel.width=fixed:-2"], "kernel.width"),
    (["kernel.scale=0"], "kernel.scale"),
    (["kernel.width=knn:0"], "kernel.width"),
    (["--task", "scaling", "scaling.sizes=[5]"], "scaling.sizes"),
    (["network.activation=gelu"], "network.activation"),
])
def test_bad_input_exits_2_with_one_line(args, key, tmp_path):
    res = wgf(*args, f"hydra.run.dir={tmp_path / 'x'}")
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and key in lines[0], res.output
    assert not (tmp_path / "x" / "metrics.jsonl").exists()  # rejected before any work


@pytest.mark.parametrize(("args", "message"), [
    (["ntk.output=10"], "ntk.output must be sum or < 10, got 10"),
    (["dataset=blobs", "dataset.classes=3", "ntk.output=3"], "ntk.output must be sum or < 3, got 3"),
])
def test_ntk_output_beyond_the_classes_is_rejected_before_any_work(args, message, tmp_path):
    res = wgf("--task", "ntk", *TINY, *args, f"hydra.run.dir={tmp_path / 'x'}")
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert lines == [message] or (len(lines) == 1 and message in lines[0]), res.output
    assert not (tmp_path / "x").exists()  # no run folder: nothing was loaded or built


def test_mismatched_sample_counts_is_a_value_error():
    import torch

    from wgf_cli import info

    with pytest.raises(ValueError, match="mismatched sample counts"):
        info.joint_entropy(torch.eye(4) / 4, torch.eye(5) / 5)


def _np_renyi(A, alpha):
    w = np.linalg.eigvalsh(A / np.trace(A))
    w[w <= len(w) * np.finfo(float).eps * w.max()] = 0.0
    w = w / w.sum()
    return float(np.log2((w**alpha).sum()) / (1 - alpha))


def test_estimate_task_against_numpy(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 3))
    y = x[:, :1] + 0.3 * rng.normal(size=(70, 1))
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", y, delimiter=",")
    res = wgf("--task", "estimate", f"input.x={tmp_path / 'x.npy'}", f"input.y={tmp_path / 'y.csv'}",
              "kernel.width=fixed:0.8", "alpha=1.5", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())

    def g(v):
        d2 = ((v[:, None] - v[None]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * 0.8**2)) / len(v)

    Ax, Ay = g(x), g(y)
    hx, hy, hxy = _np_renyi(Ax, 1.5), _np_renyi(Ay, 1.5), _np_renyi(Ax * Ay, 1.5)
    np.testing.assert_allclose([s["H_X"], s["H_Y"], s["H_XY"], s["I_XY"]], [hx, hy, hxy, hx + hy - hxy],
                               rtol=1e-9, atol=1e-10)
    assert (tmp_path / "r" / "plots" / "spectra.png").exists()


def test_estimate_mismatched_sample_counts_exit_2(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 2)) + np.arange(10)[:, None])
    np.save(tmp_path / "y.npy", np.arange(9.0))
    res = wgf("--task", "estimate", f"input.x={tmp_path / 'x.npy'}", f"input.y={tmp_path / 'y.npy'}",
              f"hydra.run.dir={tmp_path / 'r'}")
    assert res.exit_code == 2
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "mismatched sample counts" in lines[0]
    res = wgf("--task", "estimate", f"input.x={tmp_path / 'nope.npy'}", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.exit_code == 2 and "input.x" in res.output


@pytest.mark.slow
def test_infoplane_preset_reaches_95_percent_on_digits_and_plots_every_layer(tmp_path):
    res = wgf("experiment=infoplane", f"hydra.run.dir={tmp_path}", "-q")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["dataset"] == "digits" and s["final_accuracy"] >= 0.95
    assert s["layers"] == 4 and len(s["I_XT_final"]) == 4
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert sorted(df["layer"].unique()) == [1, 2, 3, 4]
    arrays = np.load(tmp_path / "infoplane.npz")
    assert arrays["I_XT"].shape == (s["checkpoints"], 4)  # the plotted trajectories, one per layer
    assert (tmp_path / "plots" / "infoplane.png").stat().st_size > 10_000


@pytest.mark.gpu
def test_infoplane_on_cuda(tmp_path):
    res = wgf(*TINY, "--device", "cuda", f"hydra.run.dir={tmp_path}")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "summary.json").read_text())["device"].startswith("cuda")


def test_every_renyi_group_option_composes_and_validates():
    from pathlib import Path

    from wgf_cli.commands import COMMANDS
    from wgf_cli.experiments import renyi_mi
    from wgf_cli.launch import compose

    conf = Path(__file__).parents[1] / "conf"
    for group in ["dataset", "kernel", "network"]:
        options = sorted(p.stem for p in (conf / group).glob("*.yaml"))
        assert options
        for option in options:
            cfg = compose(COMMANDS["renyi-mi"], [f"{group}={option}"])
            assert cfg[group].name == option
            renyi_mi.validate(cfg)
