"""Every ``conf/experiment/`` preset of every subcommand composes, validates and runs at toy size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wgf_cli.reproduce import needs_overrides, presets, run_name, run_preset

PRESETS = presets()


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    """Folder of toy-size runs, named as ``make reproduce`` names them; runs on demand."""
    out = tmp_path_factory.mktemp("toy")
    by_name = dict((p.name, (c, p)) for c, p in PRESETS)

    def ensure(name: str) -> Path:
        folder = out / run_name(name)
        if not (folder / "summary.json").exists():
            cmd, preset = by_name[name]
            for dep in preset.needs.values():
                ensure(dep)
            job = run_preset(cmd, preset, folder, [*preset.toy, *needs_overrides(preset, out)])
            assert job.status == "completed", job.error
        return folder

    return ensure


@pytest.mark.parametrize(("cmd", "preset"), PRESETS, ids=[f"{c}-{p.name}" for c, p in PRESETS])
def test_preset_runs_at_toy_size(cmd, preset, toy_runs):
    folder = toy_runs(preset.name)
    summary = json.loads((folder / "summary.json").read_text())
    assert json.loads((folder / "status.json").read_text())["status"] == "completed"
    for claim in preset.claims:  # every claimed key exists (values need the full preset)
        assert claim.key in summary, f"{cmd}-{preset.name}: claim key {claim.key!r} not in summary.json"
