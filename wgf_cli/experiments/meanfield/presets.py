"""The ``wgf meanfield`` presets (``conf/experiment/*.yaml``) with the claims ``make
reproduce`` checks, the documented summary keys and the sweep-table headline."""

from __future__ import annotations

from wgf_cli.presets import Claim, Preset

SUMMARY_KEYS = {
    "mode": "train | compare | width",
    "method": "the method of a train run (compare: the methods joined by +; width: gd)",
    "m": "number of neurons (width: the reference width)",
    "final_loss": "training loss at T (compare: of gd)",
    "final_test_loss": "test loss at T (compare: of gd)",
    "wall_s": "wall time of the run (plots and arrays excluded)",
    "loss_monotone": "train: the loss never increased between records (slack 1e-12)",
    "blur_diffusion": "jko_grid: extra diffusion of the entropic blur, s^2/(2h) ~ gamma/(4h)",
    "inner_iters_mean": "jko_grid / wprox: mean inner iterations per step",
    "max_w2_gd_vs_wgf": "compare: max over the measurement times of W2(gd particles, grid measure)",
    "max_sliced_w2_gd_vs_wgf": "compare: the same with the sliced W2",
    "w2_initial": "compare: W2(gd particles, grid measure) at t=0 (quantisation on the grid)",
    "w2_blur_bound": "compare: sqrt(2) s with s^2 = 2 D_blur T, the W2 the entropic blur alone moves a "
                     "measure by at T",
    "max_w2_within_blur": "compare: max_w2_gd_vs_wgf <= w2_blur_bound + w2_initial",
    "loss_gap_max": "compare: max_t |F_gd(t) - F_grid(t)|",
    "loss_gap_blur": "compare: max_t |F_gd(t) - F_gd+blur(t)|, gd with Langevin noise of the blur diffusion",
    "loss_gap_step": "compare: max_t |F_gd(t) - F_gd,h(t)|, gd with the JKO time step h",
    "loss_gap_initial": "compare: |F_gd(0) - F_grid(0)| (quantisation of the initial neurons on the grid)",
    "loss_gap_tolerance": "compare: max_t (blur gap + step gap) + initial gap",
    "loss_gap_within_tolerance": "compare: loss_gap_max <= loss_gap_tolerance",
    "loss_gap_wprox_max": "compare: max_t |F_gd(t) - F_wprox(t)|",
    "slope": "width: fitted log-log slope of the output L2 distance at T vs m",
    "slope_ci_low": "width: bootstrap (over seeds) confidence interval of the slope, low end",
    "slope_ci_high": "width: high end",
    "slope_reg_ci_low": "width: regression t-interval of the slope, low end",
    "slope_reg_ci_high": "width: high end",
    "slope_sliced_w2": "width: slope of the sliced W2 of the neuron measures at T",
    "slope_w2": "width: slope of the exact W2 at T (widths within width_study.emd_max_pairs)",
}

#: summary keys shown (first present) per job in the sweep table
HEADLINE = ["slope", "loss_gap_max", "final_loss"]

PRESETS = [
    Preset("compare",
           "Particle gd vs the entropic-JKO Wasserstein gradient flow on a (w, b) grid vs wprox "
           "(exact EMD), same initial neurons (m=1024), teacher target.",
           ["loss_gap_max", "loss_gap_tolerance", "loss_gap_blur", "loss_gap_step",
            "max_w2_gd_vs_wgf", "w2_blur_bound", "max_sliced_w2_gd_vs_wgf", "loss_gap_wprox_max", "final_loss"],
           [Claim("loss_gap_within_tolerance", "==", True,
                  "gd and the grid Wasserstein flow: loss curves agree within blur + time step + "
                  "quantisation"),
            Claim("max_w2_within_blur", "==", True,
                  "W2(gd particles, grid measure) stays within the entropic blur + initial quantisation")],
           figures=["loss.png", "grid_snapshots.png", "trajectories.png", "distance.png"],
           toy=["model.width=128", "time=0.2", "jko.grid_size=32", "jko.box=3.0", "data.size=32",
                "data.test_size=64", "compare.distances_at=2", "wprox.inner_iters=3",
                "output.trajectories=20"],
           full=["dtype=float64", "model.width=4096", "jko.grid_size=256", "jko.h=0.02", "dt=0.002",
                 "wprox.distance=entropic", "wprox.blur=0.02", "wprox.tau=0.02", "compare.distances_at=11"]),
    Preset("width",
           "Finite-width rate: gd at m=16..1024 (8 seeds) vs a width-4096 reference; "
           "log-log slope of the output distance with a bootstrap CI.",
           ["slope", "slope_ci_low", "slope_ci_high", "slope_sliced_w2", "slope_w2"],
           [Claim("slope", "<=", -0.35, "width study: slope <= -0.35 (mean-field rate ~ m^(-1/2))"),
            Claim("slope", ">=", -0.75, "width study: slope >= -0.75")],
           figures=["width.png", "loss.png"],
           toy=["width_study.widths=[4,16]", "width_study.seeds=2", "width_study.reference=64",
                "width_study.times=[0.2]", "time=0.2", "data.size=32", "data.test_size=64",
                "width_study.bootstrap=50"],
           full=["dtype=float64", "width_study.widths=[16,64,256,1024,4096]", "width_study.seeds=8",
                 "width_study.reference=16384", "width_study.emd_max_pairs=67108864",
                 "time=4.0", "dt=0.01", "width_study.times=[1.0,2.0,4.0]"]),
]
