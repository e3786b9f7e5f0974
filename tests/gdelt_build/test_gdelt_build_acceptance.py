"""Acceptance at full quick size (slow): the default synthetic preset builds 10,000 sequences
of 50 days offline and round-trips the generator's counts; GPU k-means = CPU k-means."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wgf_cli.commands import COMMANDS
from wgf_cli.gdelt import descriptors as Dm
from wgf_cli.launch import launch


@pytest.mark.slow
def test_gdelt_synthetic_preset_at_quick_size(tmp_path):
    res = launch(COMMANDS["gdelt-build"], ["experiment=gdelt_synthetic", f"hydra.run.dir={tmp_path}"],
                 progress=False)
    assert res.jobs[0].status == "completed", res.jobs[0].error
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["sequences"] == 10_000 and s["countries"] == 40 and s["days"] == 330
    assert s["synthetic_counts_match"] is True and s["files_failed"] == 0
    assert s["rows_rejected"] == s["rejects_marker_row"] and s["rows_repaired"] > 0
    assert s["oracle_test_ll"] < s["climatology_test_ll"] < s["uniform_test_ll"]
    from wgf_cli.experiments.gdelt_build import PRESETS

    for claim in PRESETS[0].claims:
        assert claim.check(s)[1], claim.text


@pytest.mark.gpu
def test_spherical_kmeans_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(16, 50, 32, generator=g, dtype=torch.float64), dim=-1)
    w = torch.rand(16, 50, generator=g, dtype=torch.float64)
    c_cpu, m_cpu = Dm.spherical_kmeans(x, w, 6, 5)
    c_gpu, m_gpu = Dm.spherical_kmeans(x.cuda(), w.cuda(), 6, 5)
    torch.testing.assert_close(c_gpu.cpu(), c_cpu, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(m_gpu.cpu(), m_cpu, rtol=1e-9, atol=1e-9)
    assert np.isfinite(c_gpu.cpu().numpy()).all()
