"""The CLI and the run-folder contract (DESIGN.md), end to end on tiny grids."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from wgf_cli.cli import app
from wgf_cli.launch import claim_run_dir

runner = CliRunner()
TINY = ["--grid", "16", "--steps", "4", "output.gif_frames=3", "output.checkpoint_every=2"]


def wgf(*args: str):
    return runner.invoke(app, ["jko", *args], catch_exceptions=False)


def test_help_lists_only_real_subcommands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    assert "jko" in res.output


def test_run_folder_contract(tmp_path):
    run_dir = tmp_path / "run"
    res = wgf(*TINY, f"hydra.run.dir={run_dir}")
    assert res.exit_code == 0, res.output
    for name in ["config.yaml", "run.json", "status.json", "metrics.jsonl", "metrics.csv",
                 "summary.json", "densities.npz", "jko.log", ".hydra/config.yaml",
                 ".hydra/overrides.yaml", "checkpoints/last.pt", "plots/snapshots.png",
                 "plots/energy.png", "plots/error.png", "plots/profile.png", "plots/flow.gif"]:
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    info = json.loads((run_dir / "run.json").read_text())
    for key in ["argv", "cwd", "start", "end", "git", "python", "torch", "cuda", "device", "host"]:
        assert key in info
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    df = pd.read_csv(run_dir / "metrics.csv")
    assert df.columns[0] == "step"
    for col in ["t", "energy", "mass", "max_density", "transport_cost", "inner_iters",
                "marginal_error", "wall_s", "l1_error", "w2_error"]:
        assert col in df.columns, col
    np.testing.assert_allclose(df["t"].to_numpy(), np.arange(5) * 1e-3, rtol=0, atol=1e-15)
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ["energy", "steps", "grid_size", "gamma", "h", "final_time", "mass_error_max",
                "energy_monotone", "l1_error_final", "inner_iters_mean", "wall_s"]:
        assert key in summary, key
    assert summary["steps"] == 4 and summary["grid_size"] == 16
    np.testing.assert_allclose(summary["gamma"], (1 / 16) ** 2, rtol=1e-12)
    assert summary["mass_error_max"] < 1e-9
    arrays = np.load(run_dir / "densities.npz")
    assert arrays["axes"].shape == (2, 16)
    assert arrays["rho"].shape == (len(arrays["t"]), 16, 16)
    # densities integrate to 1
    np.testing.assert_allclose(arrays["rho"].sum(axis=(1, 2)) / 16**2, 1.0, rtol=1e-12)
    assert str(run_dir) in res.output  # the CLI names the run folder


def test_default_dated_folders_are_distinct(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = wgf(*TINY, "-q")
    b = wgf(*TINY, "-q")
    assert a.exit_code == 0 and b.exit_code == 0
    dirs = sorted(p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir())
    assert len(dirs) == 2 and dirs[0] != dirs[1]
    assert all((d / "summary.json").exists() for d in dirs)


def test_claim_run_dir_same_second(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    dirs = [claim_run_dir(tmp_path, now) for _ in range(3)]
    assert [d.name for d in dirs] == ["03-04-05", "03-04-05-1", "03-04-05-2"]
    assert dirs[0].parent.name == "2026-01-02"


def test_multirun_two_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    res = wgf("--grid", "12", "--steps", "2", "output.gif_frames=0", "-m",
              "solver.tau=1e-3,2e-3", f"hydra.sweep.dir={sweep}")
    assert res.exit_code == 0, res.output
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 2 and set(summary["status"]) == {"completed"}
    np.testing.assert_allclose(sorted(summary["h"]), [1e-3, 2e-3])
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nonexistent_key=3"], "nonexistent_key"),
        (["grid.size=abc"], "grid.size"),
        (["--grid", "4"], "grid.size must be >= 8"),
        (["solver.tau=-1"], "solver.tau must be > 0"),
        (["solver.tau=0"], "solver.tau must be > 0"),
        (["solver.gamma=-0.1"], "solver.gamma must be > 0"),
        (["solver.gamma_factor=0"], "solver.gamma_factor must be > 0"),
        (["energy=nope"], "nope"),
        (["energy.name=nope"], "energy.name must be one of"),
        (["energy=porous_medium", "energy.m=1"], "energy.m must be > 1"),
        (["initial=npy", "initial.path=/no/such/file.npy"], "not found"),
        (["solver.tau=1e-3,2e-3"], "needs -m/--multirun"),
        (["energy=crowd", "solver=langevin"], "solver=langevin needs"),
        (["launcher=slurm"], "pip install"),
        (["device=tpu"], "device must be auto, cpu or cuda"),
        (["threads=-1"], "threads must be >= 0"),
        (["solver.overrelax=2"], "solver.overrelax must be in [1, 2)"),
        (["energy=fokker_planck", "energy/potential=expr", "energy.potential.expr='foo(x)'"],
         "unknown name"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["jko", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert needle in lines[0]
    assert "Traceback" not in res.output
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("status.json"))


@pytest.mark.parametrize("value, needle", [("many", "threads must be auto or an integer >= 0"),
                                            ("-2", "threads must be >= 0")])
def test_threads_validation(tmp_path, monkeypatch, value, needle):
    """threads is validated for a CPU run: device=auto picks the CPU (no CUDA, on any host)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = runner.invoke(app, ["jko", f"threads={value}"])
    assert res.exit_code == 2 and needle in res.output, res.output


def test_threads_auto_and_aggregation_energy_explained(tmp_path):
    """threads=auto is one thread on a small grid; with h = 0.02 on 64^2 the entropic blur
    (0.003) exceeds D = 0.002, F itself may rise, and the summary names the energy that the
    scheme decreases (F with D -> diffusion_effective); the default h = 0.04 keeps F monotone."""
    run_dir = tmp_path / "agg"
    res = wgf("--grid", "64", "energy=aggregation", "energy.tau=0.02", "steps=30",
              "output.gif_frames=0", f"hydra.run.dir={run_dir}")
    assert res.exit_code == 0, res.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["threads"] == 1
    np.testing.assert_allclose(summary["diffusion_effective"], summary["blur_diffusion"], rtol=1e-12)
    assert summary["blur_diffusion"] > 0.002 and summary["energy_effective_monotone"] is True
    run_dir = tmp_path / "agg_default"
    res = wgf("--grid", "64", "energy=aggregation", "steps=30", "output.gif_frames=0",
              f"hydra.run.dir={run_dir}")
    assert res.exit_code == 0, res.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["energy_monotone"] is True and summary["diffusion_effective"] == 0.002


def test_steps_that_stop_before_tol_are_said(tmp_path):
    """A run whose steps stop at inner_max says so in one warning line of its log (how many,
    the worst marginal error, what to raise); a converged run says nothing."""
    run_dir = tmp_path / "capped"
    res = wgf(*TINY, "energy=porous_medium", "solver.inner_max=10", f"hydra.run.dir={run_dir}")
    assert res.exit_code == 0, res.output
    said = [ln for ln in (run_dir / "jko.log").read_text().splitlines() if "stopped before" in ln]
    assert len(said) == 1 and "WARNING" in said[0] and "4 of 4 steps" in said[0]
    assert "solver.inner_max" in said[0]
    assert json.loads((run_dir / "summary.json").read_text())["converged_fraction"] == 0.0
    run_dir = tmp_path / "fine"
    res = wgf(*TINY, f"hydra.run.dir={run_dir}")
    assert res.exit_code == 0 and "stopped before" not in (run_dir / "jko.log").read_text()


def test_device_cuda_without_gpu(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["jko", "--device", "cuda"])
    assert res.exit_code == 2
    assert "no CUDA GPU" in res.output and len(res.output.strip().splitlines()) == 1


def test_show_config_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["jko", "--show-config", "energy=crowd"])
    assert res.exit_code == 0
    assert "name: crowd" in res.output and "kappa:" in res.output
    assert not (tmp_path / "outputs").exists()


def _boom_at(at: int, exc: BaseException, monkeypatch):
    from wgf_cli.flows.jko import EntropicJKO

    original = EntropicJKO.step
    calls = {"k": 0}

    def step(self, rho):
        calls["k"] += 1
        if calls["k"] == at:
            raise exc
        return original(self, rho)

    monkeypatch.setattr(EntropicJKO, "step", step)


def test_failed_run_keeps_metrics_and_says_why(tmp_path, monkeypatch):
    _boom_at(3, RuntimeError("solver exploded"), monkeypatch)
    run_dir = tmp_path / "run"
    res = runner.invoke(app, ["jko", *TINY, f"hydra.run.dir={run_dir}"])
    assert res.exit_code == 1
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "solver exploded" in status["error"]
    assert "Traceback" in status["traceback"]
    assert pd.read_csv(run_dir / "metrics.csv")["step"].tolist() == [0, 1, 2]


def test_interrupt_then_resume_matches_uninterrupted(tmp_path, monkeypatch):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    assert wgf(*TINY, f"hydra.run.dir={ref_dir}").exit_code == 0
    _boom_at(4, KeyboardInterrupt(), monkeypatch)  # checkpoints at steps 2 and 4
    res = runner.invoke(app, ["jko", *TINY, f"hydra.run.dir={run_dir}"])
    assert res.exit_code == 130
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    assert pd.read_csv(run_dir / "metrics.csv")["step"].tolist() == [0, 1, 2, 3]
    monkeypatch.undo()
    assert wgf(*TINY, f"hydra.run.dir={run_dir}", "resume=true").exit_code == 0
    got, want = pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(ref_dir / "metrics.csv")
    assert got["step"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(got["energy"], want["energy"], rtol=1e-12)
    np.testing.assert_allclose(np.load(run_dir / "densities.npz")["rho"],
                               np.load(ref_dir / "densities.npz")["rho"], rtol=0, atol=1e-10)


def test_every_preset_composes_with_its_command():
    from wgf_cli.commands import COMMANDS
    from wgf_cli.launch import compose
    from wgf_cli.reproduce import presets

    for cmd, preset in presets():
        if preset.needs:  # validation needs the other preset's run folder: tests/test_presets.py
            continue
        cfg = compose(COMMANDS[cmd], [f"experiment={preset.name}"])
        assert cfg.seed == 0


def test_every_group_option_composes_and_validates(tmp_path):
    """Every file of every config group is exercised: composed and validated."""
    from wgf_cli.launch import Command, compose

    cmd = Command("jko", "jko", "wgf_cli.experiments.jko")
    conf = Path(__file__).parents[1] / "conf"
    npy = tmp_path / "rho.npy"
    np.save(npy, np.ones((128, 128)))
    from wgf_cli.experiments.jko import SOLVERS

    for group in ["energy", "initial", "solver"]:
        for option in sorted(p.stem for p in (conf / group).glob("*.yaml")):
            if group == "solver" and option not in SOLVERS:
                continue  # conf/solver/ is shared with wgf ot (tests/test_cli_ot.py covers those)
            extra = [f"initial.path={npy}"] if option == "npy" else []
            if option == "langevin":
                extra = ["energy=fokker_planck"]
            cfg = compose(cmd, [f"{group}={option}", *extra])
            assert cfg[group].name == option
    for option in sorted(p.stem for p in (conf / "energy" / "potential").glob("*.yaml")):
        cfg = compose(cmd, ["energy=fokker_planck", f"energy/potential={option}"])
        assert cfg.energy.potential.name == option
    for option in ["joblib"]:  # slurm needs the submitit plugin (pip install -e ".[slurm]")
        compose(cmd, [f"launcher={option}"])


def test_reused_folder_starts_fresh_metrics(tmp_path):
    run_dir = tmp_path / "run"
    assert wgf(*TINY, f"hydra.run.dir={run_dir}").exit_code == 0
    assert wgf("--grid", "16", "--steps", "2", "output.gif_frames=0", f"hydra.run.dir={run_dir}").exit_code == 0
    assert pd.read_csv(run_dir / "metrics.csv")["step"].tolist() == [0, 1, 2]


def test_sweep_with_a_failed_job_reports_it(tmp_path, jko_fails_above_tau):
    """One failing job: the others complete, summary.csv lists both, exit code 1, no traceback."""
    sweep = tmp_path / "sweep"
    res = runner.invoke(app, ["jko", "-m", "--grid", "16", "--steps", "2", "output.gif_frames=0",
                              "solver.tau=1e-3,2e-3", "~launcher", f"hydra.sweep.dir={sweep}"])
    assert res.exit_code == 1, res.output
    assert "run failed: RuntimeError: boom" in res.output
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and ",completed," in rows[1] and ",failed," in rows[2]
