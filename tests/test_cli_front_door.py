"""What a newcomer meets first: --version, --help listing the config groups and presets,
`wgf presets`, one-line errors with the closest match and the allowed values, --show-config,
and --resume (refusals leave the run byte-identical; sweeps rerun only unfinished jobs)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from wgf_cli import __version__
from wgf_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
TINY = ["--grid", "16", "--steps", "4", "output.gif_frames=0", "output.checkpoint_every=2", "--quiet"]


def _one_line(res, code: int = 2) -> str:
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    return lines[0]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"wgf {__version__}"


def test_help_lists_groups_options_and_presets():
    res = runner.invoke(app, ["jko", "--help"])
    assert res.exit_code == 0
    for needle in ("Config groups of wgf jko", "energy", "heat*", "porous_medium", "initial",
                   "energy/potential", "double_well", "Presets", "ornstein_uhlenbeck", "--resume"):
        assert needle in res.output, needle
    assert "grid.size = 128" in res.output and "default:" in res.output  # each flag's key and default
    res = runner.invoke(app, ["wgan", "--help"])
    assert "wgan_ring8_pacgan" in res.output and "wgan_gp*" in res.output


def test_presets_lists_every_subcommand():
    res = runner.invoke(app, ["presets"])
    assert res.exit_code == 0
    for needle in ("wgf jko experiment=NAME", "heat_convergence", "wgf renyi-mi", "infoplane",
                   "wgf gdelt-train", "gdelt_train"):
        assert needle in res.output, needle
    line = _one_line(runner.invoke(app, ["presets", "jk"]))
    assert "did you mean jko?" in line


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["jko", "foo=1"], ["unknown key 'foo'", "top-level keys: seed", "groups: energy"]),
        (["jko", "solver.tua=1e-3"], ["unknown key 'solver.tua'", "did you mean solver.tau?",
                                      "keys of solver:", "gamma_factor"]),
        (["jko", "enrgy=heat"], ["did you mean energy?"]),
        (["jko", "energy=hot"], ["energy=hot: no such option", "did you mean energy=heat?",
                                 "aggregation, crowd, fokker_planck, heat, keller_segel, porous_medium"]),
        (["jko", "energy=fokker_planck", "energy/potential=quadratc"],
         ["did you mean energy/potential=quadratic?", "double_well, expr, quadratic"]),
        (["jko", "experiment=nonexistent"], ["no such preset of wgf jko", "presets: heat,"]),
        (["jko", "experiment=haet"], ["did you mean experiment=heat?"]),
        (["jko", "experiment=ntk"], ["a preset of wgf renyi-mi, not of wgf jko", "heat_convergence"]),
        (["jko", "--gird", "128"], ["unknown option --gird", "did you mean --grid?", "--steps"]),
        (["jko", "--grid", "abc"], ["--grid must be a valid integer", "got 'abc'"]),
        (["wgan", "--iterations", "1.5"], ["--iterations must be a valid integer"]),
        (["jkoo"], ["unknown subcommand 'jkoo'", "did you mean jko?", "gdelt-train"]),
        (["jko", "resume=true"], ["resume=true needs the run folder", "wgf jko --resume RUN_DIR"]),
        (["meanfield", "model.widht=3"], ["did you mean model.width?"]),
        (["renyi-mi", "kernel=gauss"], ["did you mean kernel=gaussian?"]),
    ],
)
def test_unknown_names_one_line_closest_match(tmp_path, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    line = _one_line(runner.invoke(app, args))
    assert line.startswith("wgf: error:"), line
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (tmp_path / "outputs").exists()


def test_bad_key_exits_before_torch_is_imported(tmp_path):
    """A bad key is rejected by the composition alone: no torch import, well under a second."""
    code = ("import sys, runpy\n"
            "sys.argv = ['wgf', 'jko', 'solver.tua=1e-3']\n"
            "try:\n    runpy.run_module('wgf_cli.cli', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 2, e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    assert "did you mean solver.tau?" in res.stderr
    assert wall < 10  # about 0.5 s on an idle 2-core machine; generous for a loaded one


def test_show_config_shows_the_flag_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["jko", "--show-config", "--steps", "7"])
    assert res.exit_code == 0
    assert "steps: 120" not in res.output
    assert res.output.count("steps: 7") == 2  # steps and energy.steps


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    res = runner.invoke(app, ["jko", *TINY, f"hydra.run.dir={run}"])
    assert res.exit_code == 0, res.output
    return run


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--grid", "32"], "grid.size=32 differs from the run's grid.size=16"),
        (["solver.tau=2e-3"], "solver.tau=0.002 differs"),
        (["energy=porous_medium"], "differs from the run's"),
        (["foo=1"], "unknown key 'foo'"),
    ],
)
def test_refused_resume_leaves_the_run_byte_identical(finished, args, needle):
    before = _digest(finished)
    line = _one_line(runner.invoke(app, ["jko", "--resume", str(finished), *args]))
    assert needle in line, line
    assert _digest(finished) == before


def test_resume_true_with_a_changed_config_is_refused_too(finished):
    before = _digest(finished)
    line = _one_line(runner.invoke(app, ["jko", *TINY, "--grid", "8", f"hydra.run.dir={finished}",
                                         "resume=true"]))
    assert "grid.size=8 differs" in line
    assert _digest(finished) == before


def test_resume_wrong_subcommand_and_missing_folder(finished, tmp_path):
    before = _digest(finished)
    line = _one_line(runner.invoke(app, ["wgan", "--resume", str(finished)]))
    assert "a run of wgf jko, not of wgf wgan" in line
    assert "no such folder" in _one_line(runner.invoke(app, ["jko", "--resume", str(tmp_path / "none")]))
    assert _digest(finished) == before


def test_resume_a_completed_run(finished, tmp_path):
    import shutil

    before = _digest(finished)
    res = runner.invoke(app, ["jko", "--resume", str(finished)])
    assert res.exit_code == 0 and "already completed" in res.output
    assert _digest(finished) == before
    run = Path(shutil.copytree(finished, tmp_path / "more"))
    res = runner.invoke(app, ["jko", "--resume", str(run), "--steps", "6", "--quiet"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(run / "metrics.csv")["step"].tolist() == list(range(7))
    assert json.loads((run / "summary.json").read_text())["steps"] == 6


def test_ctrl_c_names_the_folder_and_the_resume_command(tmp_path, monkeypatch):
    from wgf_cli.flows.jko import EntropicJKO

    original, calls = EntropicJKO.step, {"k": 0}

    def step(self, rho):
        calls["k"] += 1
        if calls["k"] == 3:
            raise KeyboardInterrupt
        return original(self, rho)

    monkeypatch.setattr(EntropicJKO, "step", step)
    run = tmp_path / "run"
    res = runner.invoke(app, ["jko", *TINY, f"hydra.run.dir={run}"])
    assert res.exit_code == 130
    assert f"continue with: wgf jko --resume {run}" in res.output
    monkeypatch.undo()
    res = runner.invoke(app, ["jko", "--resume", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(run / "metrics.csv")["step"].tolist() == [0, 1, 2, 3, 4]


def test_killed_sweep_resumes_only_unfinished_jobs(tmp_path):
    sweep, ref = tmp_path / "sweep", tmp_path / "ref"
    args = ["jko", "-m", "--grid", "16", "--steps", "2", "output.gif_frames=0", "--quiet",
            "solver.tau=1e-3,2e-3,3e-3", "~launcher"]
    assert runner.invoke(app, [*args, f"hydra.sweep.dir={ref}"]).exit_code == 0
    assert runner.invoke(app, [*args, f"hydra.sweep.dir={sweep}"]).exit_code == 0
    # what kill -9 during job 1 leaves: job 1 "running" without its summary, job 2 never started
    (sweep / "1" / "status.json").write_text(json.dumps({"status": "running"}))
    (sweep / "1" / "summary.json").unlink()
    import shutil

    shutil.rmtree(sweep / "2")
    (sweep / "summary.csv").unlink()
    job0 = _digest(sweep / "0")
    res = runner.invoke(app, ["jko", "--resume", str(sweep), "--quiet"])
    assert res.exit_code == 0, res.output
    assert _digest(sweep / "0") == job0  # the finished job was not rerun
    got, want = pd.read_csv(sweep / "summary.csv"), pd.read_csv(ref / "summary.csv")
    assert got["status"].tolist() == ["completed"] * 3
    pd.testing.assert_frame_equal(got.drop(columns=["run_dir", "overrides", "wall_s"]),
                                  want.drop(columns=["run_dir", "overrides", "wall_s"]))
    assert not got["overrides"].str.contains("resume").any()
    res = runner.invoke(app, ["jko", "--resume", str(sweep)])
    assert res.exit_code == 0 and "every job of the sweep (3) already completed" in res.output


def test_gdelt_subcommands_name_their_extra_when_missing(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    for cmd in ("gdelt-build", "gdelt-train"):
        line = _one_line(runner.invoke(app, [cmd]))
        assert f"wgf {cmd} needs pyarrow: pip install 'wgf-cli[gdelt]'" in line
    res = runner.invoke(app, ["gdelt-build", "--help"])  # the help works without the extra
    assert res.exit_code == 0 and "gdelt_synthetic" in res.output


def test_the_core_does_not_import_the_gdelt_stack(tmp_path):
    code = ("import sys, runpy\n"
            "sys.argv = ['wgf', 'jko', '--grid', '16', '--steps', '2', 'output.gif_frames=0', '-q']\n"
            "try:\n    runpy.run_module('wgf_cli.cli', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('dask', 'sentence_transformers', 'deflate', 'transformers') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
