"""`wgf report` and `wgf summarize`, and the report page in a headless browser (slow)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app
from wgf_cli.experiments import jko
from wgf_cli.reproduce import main as reproduce

runner = CliRunner()
TINY = ["--grid", "16", "--steps", "2", "output.gif_frames=0"]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """``make reproduce --only aggregation`` into a temporary folder."""
    root = tmp_path_factory.mktemp("repro")
    assert reproduce(["--out", str(root / "runs"), "--report", str(root / "report"), "--only", "aggregation"]) == 0
    return root


def test_report_page_is_self_contained(reproduced):
    page = (reproduced / "report" / "index.html").read_text()
    agg = next(p for p in jko.PRESETS if p.name == "aggregation")
    assert page.count('<tr class="claim">') == len(agg.claims)  # every claim, each passing
    images = re.findall(r'<img alt="[^"]*" src="([^"]*)"', page)
    assert len(images) >= 3 and all(src.startswith("data:image/") for src in images)
    md = (reproduced / "report" / "report.md").read_text()
    for fig in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (reproduced / "report" / fig).stat().st_size > 1000


def test_wgf_report_rebuilds_and_rejects_missing_runs(reproduced, tmp_path):
    res = runner.invoke(app, ["report", str(reproduced / "runs"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "claims: 2/2 pass" in res.output and (tmp_path / "rep" / "index.html").exists()
    res = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no such folder" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no run folders" in res.output


def test_report_of_any_run_or_sweep_folder(tmp_path):
    single, sweep = tmp_path / "runs" / "single", tmp_path / "runs" / "sweep"
    assert runner.invoke(app, ["jko", *TINY, f"hydra.run.dir={single}"]).exit_code == 0
    res = runner.invoke(app, ["jko", "-m", *TINY, "solver.gamma_factor=1,2", "~launcher", f"hydra.sweep.dir={sweep}"])
    assert res.exit_code == 0, res.output
    for folder, runs in ((single, 1), (sweep, 2), (tmp_path / "runs", 3)):
        out = tmp_path / f"report-{folder.name}"
        res = runner.invoke(app, ["report", str(folder), "--out", str(out)])
        assert res.exit_code == 0, res.output
        md = (out / "report.md").read_text()
        assert md.count("| completed |") == runs, md
        assert "l1_error_final=" in md and (out / "index.html").is_file()


def test_summarize_runs_and_sweeps(tmp_path):
    single = tmp_path / "single"
    assert runner.invoke(app, ["jko", *TINY, f"hydra.run.dir={single}"]).exit_code == 0
    sweep = tmp_path / "sweep"
    res = runner.invoke(app, ["jko", "-m", *TINY, "solver.gamma_factor=1,2", f"hydra.sweep.dir={sweep}"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "table.csv"
    res = runner.invoke(app, ["summarize", str(single), str(sweep), "--csv", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"}
    assert sorted(r["overrides"].split()[-1] for r in rows if "gamma" in r["overrides"]) == [
        "solver.gamma_factor=1", "solver.gamma_factor=2"]
    summaries = {str(p.parent): json.loads(p.read_text()) for p in tmp_path.rglob("summary.json")}
    for r in rows:  # the table holds each run's own numbers
        assert float(r["l1_error_final"]) == pytest.approx(summaries[r["run"]]["l1_error_final"], rel=1e-12)
    res = runner.invoke(app, ["summarize", str(sweep)])  # one column per swept key
    shared = next(ln for ln in res.output.splitlines() if ln.startswith("every run: "))
    assert "grid.size=16" in shared and "gamma" not in shared
    from wgf_cli.summarize import for_display, table

    shown, _ = for_display(table([sweep]), cwd=tmp_path)
    assert "overrides" not in shown.columns and shown["solver.gamma_factor"].tolist() == ["1", "2"]
    assert shown["run"].tolist() == ["sweep/0", "sweep/1"]
    res = runner.invoke(app, ["summarize", str(single), "--keys", "gamma,nope"])
    assert res.exit_code == 0 and "'nope' is in no summary.json" in res.output


def test_summarize_bad_input(tmp_path):
    res = runner.invoke(app, ["summarize", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["summarize", str(tmp_path)])
    assert res.exit_code == 2 and "no run folders" in res.output


def _chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (the test setup)."""
    exe = shutil.which("chromium")
    if exe is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True,
                       env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed and apt-get could not install it")
    return exe


@pytest.mark.slow
def test_report_opens_in_headless_chromium(reproduced):
    page = reproduced / "report" / "index.html"
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    total = int(re.search(r'data-images-total="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom).group(1))
    assert total == page.read_text().count("<img ") and total >= 3
    assert loaded == total  # every figure decoded in the browser
    agg = next(p for p in jko.PRESETS if p.name == "aggregation")
    for c in agg.claims:
        assert f"{c.text} (<code>{c.key}</code>)" in dom
