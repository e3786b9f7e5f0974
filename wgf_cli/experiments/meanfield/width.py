"""``wgf meanfield mode=width``: finite-width gd against a wide reference
(:func:`wgf_cli.meanfield.width.run_width`); metrics, ``width.npz``, the slope fits, plots."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wgf_cli.experiments.meanfield.config import Reporter, particle_config


def run_width(cfg: DictConfig, run, data, device, dtype) -> dict[str, Any]:
    """Run the width study; returns the summary (``_plot_s``: the time spent on plots)."""
    from wgf_cli.experiments.meanfield import plots as P
    from wgf_cli.meanfield.width import WidthConfig
    from wgf_cli.meanfield.width import run_width as engine

    ws = cfg.width_study
    widths = sorted(set(int(v) for v in ws.widths))
    seeds, M = int(ws.seeds), int(ws.reference)
    times = sorted(float(t) for t in ws.times)
    level = float(ws.level)
    wcfg = WidthConfig(widths=widths, seeds=seeds, reference=M, time=float(cfg.time), times=times,
                       init_std=float(cfg.model.init_std), particles=particle_config(cfg),
                       projections=int(ws.projections), emd_max_pairs=int(ws.emd_max_pairs), level=level,
                       bootstrap=int(ws.bootstrap))
    report = Reporter(run)
    try:
        res = engine(data, wcfg, device=device, dtype=dtype, callback=report)
    finally:
        report.close()
    fits, ref, err = res.fits, res.reference, res.errors
    main = fits[("l2", times[-1])]
    summary: dict[str, Any] = {
        "mode": "width", "method": "gd", "m": M, "widths": widths, "seeds": seeds,
        "final_loss": float(ref.loss[-1]), "final_test_loss": float(ref.test_loss[-1]),
        "slope": main.slope, "slope_ci_low": main.ci_low, "slope_ci_high": main.ci_high,
        "slope_reg_ci_low": main.reg_ci_low, "slope_reg_ci_high": main.reg_ci_high,
        "slope_level": level,
        "slope_sliced_w2": fits[("sw2", times[-1])].slope if ("sw2", times[-1]) in fits else None,
        "slope_w2": fits[("w2", times[-1])].slope if ("w2", times[-1]) in fits else None,
    }
    for (key, t), f in fits.items():
        if key == "l2" and t != times[-1]:
            summary[f"slope_t{t:g}"] = f.slope
    run.save_arrays("width", widths=np.array(widths), times=np.array(times), output_l2=err["l2"],
                    sliced_w2=err["sw2"], w2=err["w2"], final_loss=res.final_loss, reference=M)
    t0 = time.perf_counter()
    P.width_plot(run, widths, times, err, fits)
    P.loss_curves(run, {f"reference m={M}": (ref.times, ref.loss, ref.test_loss)})
    summary["_plot_s"] = time.perf_counter() - t0
    return summary
