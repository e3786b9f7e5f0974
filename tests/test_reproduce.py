"""`make reproduce` end to end on its cheapest preset: run folder, claims, report page."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from wgf_cli.experiments import jko
from wgf_cli.presets import Claim
from wgf_cli.reproduce import main, presets


def test_claim_check():
    c = Claim("x", "<=", 0.02, "x is small")
    assert c.check({"x": 0.01}) == (0.01, True)
    assert c.check({"x": 0.03}) == (0.03, False)
    assert c.check({})[1] is False and c.check({"x": math.nan})[1] is False
    assert Claim("ok", "==", True, "flag").check({"ok": True}) == (True, True)
    with pytest.raises(ValueError, match="claim op"):
        Claim("x", "~", 1, "bad op")


def test_reproduce_writes_report_and_fails_on_a_false_claim(tmp_path, monkeypatch, capsys):
    agg = next(p for p in jko.PRESETS if p.name == "aggregation")
    impossible = Claim("energy_final", ">", 1e300, "an impossible claim")
    patched = [dataclasses.replace(p, claims=[*p.claims, impossible]) if p is agg else p for p in jko.PRESETS]
    monkeypatch.setattr(jko, "PRESETS", patched)
    assert main(["--out", str(tmp_path), "--report", str(tmp_path / "report"), "--only", "aggregation"]) == 1
    assert "FAILED jko-aggregation: an impossible claim" in capsys.readouterr().err
    page = (tmp_path / "report" / "report.md").read_text()
    assert f"**Claims: {len(agg.claims)}/{len(agg.claims) + 1} pass.**" in page
    for c in agg.claims:
        assert f"| jko-aggregation | {c.text} (`{c.key}`) |" in page
    assert "an impossible claim (`energy_final`) |" in page and "| **FAIL** |" in page
    assert "| [jko-aggregation](#jko-aggregation) | completed |" in page
    summary = json.loads((tmp_path / "jko-aggregation" / "summary.json").read_text())
    assert summary["energy"] == "aggregation" and summary["mass_error_max"] < 1e-9
    for fig in ["snapshots.png", "energy.png", "flow.gif"]:
        assert f"(figures/jko-aggregation/{fig})" in page
        assert (tmp_path / "report" / "figures" / "jko-aggregation" / fig).stat().st_size > 1000


def test_unknown_preset_is_rejected(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--only", "nope"]) == 2
    assert "unknown preset or command ['nope']" in capsys.readouterr().err


def test_every_preset_is_reproduced_once():
    files = {p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml")}
    names = [p.name for _, p in presets()]
    assert len(names) == len(set(names)) and set(names) == files


def test_sweep_preset_aggregates_and_reports_failed_jobs(tmp_path, request):
    from wgf_cli.presets import Preset
    from wgf_cli.reproduce import run_preset

    seen = []

    def aggregate(jobs, folder):
        seen.append(folder)
        return {"taus": len(jobs), "h_sum": sum(j["h"] for j in jobs)}

    preset = Preset("heat", "a sweep", [], sweep=["solver.tau=1e-3,2e-3"], aggregate=aggregate)
    job = run_preset("jko", preset, tmp_path / "ok", ["grid.size=16", "steps=2", "output.gif_frames=0"])
    assert job.status == "completed" and seen == [tmp_path / "ok"]
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert summary["jobs"] == 2 and summary["taus"] == 2 and abs(summary["h_sum"] - 3e-3) < 1e-15

    request.getfixturevalue("jko_fails_above_tau")  # from here on, the tau=2e-3 job fails
    job = run_preset("jko", preset, tmp_path / "bad", ["grid.size=16", "steps=2", "output.gif_frames=0"])
    assert job.status == "failed" and "boom" in job.error
    status = json.loads((tmp_path / "bad" / "status.json").read_text())
    assert status["status"] == "failed" and "boom" in status["error"]
    assert not (tmp_path / "bad" / "summary.json").exists()


def test_parallel_reproduce_runs_presets_in_processes(tmp_path, capsys):
    """Two presets at a time, each in its own process: a progress line per preset with the
    counter and an ETA, the report with its provenance."""
    rc = main(["--out", str(tmp_path / "runs"), "--report", str(tmp_path / "report"),
               "--only", "aggregation,heat_convergence", "--jobs", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[1/2] jko-" in out and "[2/2] jko-" in out and "ETA" in out
    manifest = json.loads((tmp_path / "runs" / "reproduce.json").read_text())
    assert {e["status"] for e in manifest["runs"].values()} == {"completed"}
    assert all("threads=1" in e["overrides"] for e in manifest["runs"].values())
    prov = manifest["provenance"]
    assert prov["jobs"] == 2 and prov["versions"]["torch"] and prov["cpu"] and prov["wall_s"] > 0
    page = (tmp_path / "report" / "report.md").read_text()
    assert "| commit |" in page and "| CPU |" in page


def test_every_preset_has_an_expected_time():
    """The order and the ETA of a first reproduction come from EXPECTED_S: a preset without an
    entry would count as 30 s wherever its real time lies."""
    from wgf_cli.reproduce import EXPECTED_S

    missing = [p.name for _, p in presets() if p.name not in EXPECTED_S]
    assert not missing, f"add the quick profile's wall seconds (one thread) of {missing} to EXPECTED_S"


def test_start_order_longest_chain_first_and_last_wall_times(tmp_path):
    from wgf_cli.reproduce import EXPECTED_S, start_order

    todo = presets()
    order, cost = start_order(todo, tmp_path)
    names = [p.name for p in order]
    assert sorted(names) == sorted(p.name for _, p in todo)
    assert cost == {p.name: float(EXPECTED_S[p.name]) for _, p in todo}
    assert names[:2] == ["gdelt_synthetic", "gdelt_train"]  # the 600 s training and the build it needs
    for p in order:  # a preset that another needs starts before it
        assert all(names.index(dep) < names.index(p.name) for dep in p.needs.values()), p.name
    rest = [p for p in order if not p.needs and not any(p.name in q.needs.values() for q in order)]
    assert [cost[p.name] for p in rest] == sorted((cost[p.name] for p in rest), reverse=True)
    # a completed earlier run under out: its wall time replaces the estimate
    folder = tmp_path / "jko-aggregation"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"wall_s": 5000.0}))
    (folder / "status.json").write_text(json.dumps({"status": "completed"}))
    order, cost = start_order(todo, tmp_path)
    assert order[0].name == "aggregation" and cost["aggregation"] == 5000.0
    (folder / "status.json").write_text(json.dumps({"status": "failed"}))  # a failed run's time is no estimate
    assert start_order(todo, tmp_path)[1]["aggregation"] == EXPECTED_S["aggregation"]
