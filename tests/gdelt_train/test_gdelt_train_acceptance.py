"""Acceptance (slow, ~3-8 min): the quick preset with the generic cell head (free softmax and
a country embedding, the defaults of conf/model, so no regime filter over shared mixes: this
generator's countries have their own event mixes, unlike gdelt-build's synthetic world the
preset is tuned for) on a full-size development build of the test-side generator beats every
baseline on test log loss and reaches skill >= 0.8 against the exact HMM oracle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from wgf_cli.commands import COMMANDS
from wgf_cli.launch import launch

sys.path.insert(0, str(Path(__file__).parent))
import gdelt_train_synth as G  # noqa: E402


@pytest.mark.slow
def test_quick_preset_reaches_oracle_skill(tmp_path):
    build = G.generate(tmp_path / "build", countries=20, days=730, k=6, dim=32, sequences=10000)
    res = launch(COMMANDS["gdelt-train"], ["experiment=gdelt_train", f"data.build_dir={build}",
                                          "model.mixture=0", "model.regime_filter=false",
                                          "model.country_embedding=true",
                                          "train.epochs=12", f"hydra.run.dir={tmp_path / 'run'}"],
                 progress=False)
    assert res.jobs[0].status == "completed", res.jobs[0].error
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["beats_all_baselines"] is True
    assert s["skill_vs_oracle"] >= 0.8
