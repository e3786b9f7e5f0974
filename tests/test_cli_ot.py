"""`wgf ot` end to end: tiny runs write the run-folder contract; bad input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app

runner = CliRunner()
TINY = ["--grid", "12", "solver.time_steps=6", "solver.iters=60", "output.snapshots=3"]


def wgf(*args: str):
    return runner.invoke(app, ["ot", *args], catch_exceptions=False)


def test_help_lists_ot():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "ot" in res.output
    res = wgf("--help")
    assert res.exit_code == 0 and "benamou_brenier" in res.output and "ot_geodesic" in res.output


def test_geodesic_run_folder_contract(tmp_path):
    run_dir = tmp_path / "run"
    res = wgf(*TINY, f"hydra.run.dir={run_dir}")
    assert res.exit_code == 0, res.output
    for name in ["config.yaml", "run.json", "status.json", "metrics.jsonl", "metrics.csv", "summary.json",
                 "paths.npz", "ot.log", "plots/snapshots.png", "plots/profile.png", "plots/convergence.png"]:
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    df = pd.read_csv(run_dir / "metrics.csv")
    assert df.columns[0] == "step" and {"w2sq", "residual", "divergence", "change"} <= set(df.columns)
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ["w2sq", "w2sq_reference", "w2sq_rel_error", "w2sq_exact_plan", "converged", "n_iters",
                "residual_final", "divergence_max", "midpoint_cov_error", "wall_s"]:
        assert key in summary, key
    assert summary["divergence_max"] < 1e-8 and summary["mass_error_max"] < 1e-10


@pytest.mark.parametrize(("args", "files"), [
    (["solver=entropic", "target=gaussian_mixture", "--grid", "12", "solver.time_steps=4"],
     ["paths.npz", "plots/snapshots.png"]),
    (["task=plans", "--grid", "24", "eps=[0.01,0.1]"], ["plans.npz", "plots/plans.png", "plots/divergence.png"]),
    (["task=map", "--grid", "12"], ["map.npz", "plots/map.png", "plots/potential.png"]),
    (["task=duality", "duality.points_source=12", "duality.points_target=9"], ["duality.npz", "plots/duality.png"]),
    (["--grid", "16", "grid.dim=1", "solver.time_steps=6", "solver.iters=60"], ["paths.npz", "plots/snapshots.png"]),
    (["--grid", "16", "solver.time_steps=4", "solver.iters=20", "exact.max_points=40"],
     ["paths.npz", "plots/snapshots.png"]),
], ids=["entropic", "plans", "map", "duality", "1d", "coarsened-exact"])
def test_other_tasks_write_their_artifacts(tmp_path, args, files):
    run_dir = tmp_path / "run"
    res = wgf(*args, f"hydra.run.dir={run_dir}", "-q")
    assert res.exit_code == 0, res.output
    for name in ["config.yaml", "run.json", "status.json", "metrics.jsonl", "metrics.csv", "summary.json",
                 "ot.log", *files]:
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["task"] in ("geodesic", "plans", "map", "duality") and "w2sq" in summary
    if "exact.max_points=40" in args:  # the exact plan ran on a coarser grid
        assert summary["exact_grid_size"] < 16 and summary["w2sq_exact_plan"] > 0


def test_every_ot_group_option_composes_and_validates():
    """Every option of wgf ot's groups (in the folders it shares with other subcommands) composes
    and validates; the other subcommands' options are named in one line."""
    from wgf_cli.commands import COMMANDS
    from wgf_cli.errors import ConfigError
    from wgf_cli.experiments.ot import DENSITIES, SOLVERS
    from wgf_cli.launch import compose

    conf = Path(__file__).parents[1] / "conf"
    for group, allowed in (("source", DENSITIES), ("target", DENSITIES), ("solver", SOLVERS)):
        for option in sorted(p.stem for p in (conf / group).glob("*.yaml")):
            if option in allowed:
                assert compose(COMMANDS["ot"], [f"{group}={option}"])[group].name == option
            else:
                with pytest.raises(ConfigError, match=f"{group}={option} is not a"):
                    compose(COMMANDS["ot"], [f"{group}={option}"])


@pytest.mark.parametrize(("args", "needle"), [
    (["task=wrong"], "task must be one of geodesic, plans, map, duality"),
    (["source=download"], "source=download is not a density of wgf ot (source: gaussian, gaussian_mixture)"),
    (["solver=jko"], "solver=jko is not a solver of wgf ot (solver: benamou_brenier, entropic)"),
    (["target=nope"], "target=nope: no such option"),
    (["--grid", "4"], "grid.size must be >= 8"),
    (["grid.dim=3"], "grid.dim must be <= 2"),
    (["solver.alpha=2.5"], "solver.alpha must be in (0, 2)"),
    (["task=plans", "eps=[0.1,-1]"], "eps must be a number > 0 or a list of them"),
    (["source.std=-0.1"], "source.std must be a number > 0"),
    (["solver.tmie_steps=3"], "unknown key 'solver.tmie_steps'"),
    (["source.mean=0.5"], "source.mean must be a list of 2 numbers, got 0.5"),
    (["target=gaussian_mixture", "target.stds=[0.1,x,0.1]"], "target.means must be a list of points"),
    (["target=gaussian_mixture", "target.weights=[1,1]"], "need the same number of entries"),
    (["task=plans", "eps=abc"], "eps must be a number > 0 or a list of them"),
    (["task=duality", "duality.points_source=1"], "duality.points_source must be >= 2"),
])
def test_bad_input_one_line_exit_2(args, needle):
    res = runner.invoke(app, ["ot", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.output
    assert "Traceback" not in res.output
