"""The mean-field studies as engine functions (:mod:`wgf_cli.meanfield.protocol`,
:func:`~wgf_cli.meanfield.compare.run_compare`, :func:`~wgf_cli.meanfield.width.run_width`):
the width study against the numbers of ``wgf meanfield experiment=width`` (quick toy profile)
before it moved into the engine, the comparison's statistics against their definitions from the
returned runs, the record events in order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wgf_cli.meanfield.compare import CompareConfig, run_compare
from wgf_cli.meanfield.data import make_dataset
from wgf_cli.meanfield.protocol import (
    GridConfig,
    ParticleConfig,
    init_neurons,
    make_trainer,
    monotone,
    particle_rows,
    run_particles,
)
from wgf_cli.meanfield.width import WidthConfig, fit_slope, run_width


def _teacher(size: int = 32, test: int = 64):
    return make_dataset("teacher", size, test, 2, x_range=2.0, noise=0.0, teacher_neurons=3, frequency=1.0,
                        path=None, generator=torch.Generator().manual_seed(0), dtype=torch.float64, device="cpu")


class Events:
    def __init__(self):
        self.records, self.phases, self.advances = [], [], 0

    def __call__(self, event, info):
        if event == "record":
            self.records.append(info)
        elif event == "begin":
            self.phases.append((info["phase"], info["total"]))
        elif event == "advance":
            self.advances += 1


def test_width_study_gives_the_numbers_of_the_run_before_it_moved():
    data = _teacher()
    cfg = WidthConfig(widths=[4, 16], seeds=2, reference=64, time=0.2, times=[0.2], init_std=1.0,
                      particles=ParticleConfig(dt=0.02, seed=0), projections=128, emd_max_pairs=4194304,
                      level=0.95, bootstrap=50)
    ev = Events()
    res = run_width(data, cfg, callback=ev)
    main = res.fits[("l2", 0.2)]
    # summary.json of `wgf meanfield experiment=width` + the preset's toy overrides, before
    assert res.reference.loss[-1] == pytest.approx(0.20442983627798358, rel=1e-12)
    assert res.reference.test_loss[-1] == pytest.approx(0.2901943457916731, rel=1e-12)
    assert main.slope == pytest.approx(-0.18191441758399207, rel=1e-10)
    assert (main.ci_low, main.ci_high) == pytest.approx((-0.6735907439995449, 0.13336752469465987), rel=1e-10)
    assert (main.reg_ci_low, main.reg_ci_high) == pytest.approx((-1.853482309061917, 1.3132590897570324), rel=1e-10)
    assert res.fits[("sw2", 0.2)].slope == pytest.approx(-0.3960457727244847, rel=1e-10)
    assert res.fits[("w2", 0.2)].slope == pytest.approx(-0.28803206435015033, rel=1e-10)
    # the fit is fit_slope of the returned errors; one record per (seed, width, time)
    refit = fit_slope(np.array([4, 16]), res.errors["l2"][0], level=0.95, boot=50, seed=0)
    assert refit.slope == main.slope
    assert [(r["seed"], r["m"]) for r in ev.records] == [(0, 4), (0, 16), (1, 4), (1, 16)]
    np.testing.assert_array_equal([r["output_l2"] for r in ev.records], res.errors["l2"][0].T.reshape(-1))
    assert ev.phases == [("width", 5)] and ev.advances == 5


def test_compare_statistics_follow_their_definitions():
    data = _teacher(24, 32)
    pc = ParticleConfig(dt=0.025, seed=1, wprox_tau=0.05, wprox_inner_iters=2)
    gc = GridConfig(grid_size=32, box=3.0, h=0.05, relax=0.05, tol=1e-9, inner_max=3000)
    cfg = CompareConfig(width=32, time=0.1, init_std=1.0, particles=pc, grid=gc, distances_at=2, projections=32,
                        snapshots=2)
    ev = Events()
    res = run_compare(data, cfg, callback=ev)
    F_gd, F_grid = np.array(res.gd.loss), np.array(res.grid.loss)
    gap = np.abs(F_gd - F_grid)
    blur, step = np.abs(np.array(res.gd_blur.loss) - F_gd), np.abs(np.array(res.gd_h.loss) - F_gd)
    st = res.stats
    assert st["loss_gap_max"] == gap.max() and st["loss_gap_initial"] == gap[0]
    assert st["loss_gap_tolerance"] == (blur + step).max() + gap[0]
    assert st["loss_gap_within_tolerance"] == (gap.max() <= st["loss_gap_tolerance"])
    np.testing.assert_array_equal(res.tolerance, blur + step + gap[0])
    assert st["w2_blur_bound"] == math.sqrt(4.0 * res.flow.blur_diffusion * 0.1)
    w2 = [res.dist_gd[i]["dist_to_reference"] for i in sorted(res.dist_gd)]
    assert st["w2_initial"] == w2[0] and st["max_w2_gd_vs_wgf"] == max(w2)
    assert sorted(res.dist_gd) == [0, len(F_gd) - 1]  # t = 0 and t = T
    assert res.wprox_stats["loss_gap_wprox_max"] == np.abs(np.array(res.wprox.loss) - F_gd).max()
    # the record rows: the grid steps, then gd (with its distances), gd_blur, gd_h, wprox
    methods = [r["method"] for r in ev.records]
    assert methods == ["jko_grid"] * 3 + ["gd"] * 3 + ["gd_blur"] * 3 + ["gd_h"] * 3 + ["wprox"] * 3
    assert [r for r in ev.records if r["method"] == "gd"] == particle_rows("gd", res.gd, res.dist_gd)
    assert [p for p, _ in ev.phases] == ["jko_grid", "gd", "gd", "gd", "wprox"]
    # gd from the same neurons and trainer seed reproduces the comparison's gd run
    W0, a0 = init_neurons(32, 2, 1.0, 1, dtype=torch.float64)
    again, _ = run_particles(make_trainer(data, "gd", pc), W0, a0, 0.1, record_every=2)
    assert again.loss == res.gd.loss
    assert monotone(res.gd.loss)
