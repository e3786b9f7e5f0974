"""`make reproduce` end to end on its cheapest preset: run folder + report page."""

from __future__ import annotations

import json

from wgf_cli.reproduce import PRESETS, main


def test_reproduce_writes_report_with_figures(tmp_path):
    assert main(["--out", str(tmp_path), "--only", "aggregation"]) == 0
    page = (tmp_path / "report.md").read_text()
    assert "| [jko-aggregation](#jko-aggregation) | completed |" in page
    summary = json.loads((tmp_path / "jko-aggregation" / "summary.json").read_text())
    assert summary["energy"] == "aggregation" and summary["mass_error_max"] < 1e-9
    for fig in ["snapshots.png", "energy.png", "flow.gif"]:
        assert f"(jko-aggregation/plots/{fig})" in page
        assert (tmp_path / "jko-aggregation" / "plots" / fig).stat().st_size > 1000


def test_every_preset_is_reproduced():
    from pathlib import Path

    presets = {p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml")}
    assert {preset for _, preset, _, _ in PRESETS} == presets
