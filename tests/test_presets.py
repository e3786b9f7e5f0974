"""Every ``conf/experiment/`` preset of every subcommand composes, validates and runs at toy size."""

from __future__ import annotations

import json

import pytest

from wgf_cli.commands import COMMANDS
from wgf_cli.launch import launch
from wgf_cli.reproduce import presets

PRESETS = presets()


@pytest.mark.parametrize(("cmd", "preset"), PRESETS, ids=[f"{c}-{p.name}" for c, p in PRESETS])
def test_preset_runs_at_toy_size(cmd, preset, tmp_path):
    res = launch(COMMANDS[cmd], [f"experiment={preset.name}", *preset.toy, f"hydra.run.dir={tmp_path}"],
                 progress=False)
    job = res.jobs[0]
    assert job.status == "completed", job.error
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    for claim in preset.claims:  # every claimed key exists (values need the full preset)
        assert claim.key in summary, f"{cmd}-{preset.name}: claim key {claim.key!r} not in summary.json"
