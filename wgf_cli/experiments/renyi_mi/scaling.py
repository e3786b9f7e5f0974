"""`wgf renyi-mi task=scaling`: exact vs fast entropy of growing Gram matrices
(:func:`wgf_cli.info.scaling.entropy_scaling`), one ``metrics.csv`` row per size."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wgf_cli.experiments.renyi_mi.config import entropy_estimator, setup


def run_scaling(cfg: DictConfig, run) -> dict[str, Any]:
    """Measure every ``scaling.sizes``; save arrays, plots and the summary."""
    from wgf_cli.experiments.renyi_mi import plots as P
    from wgf_cli.info.scaling import ScalingConfig, entropy_scaling

    t_start = time.perf_counter()
    device, _ = setup(cfg)
    ent = entropy_estimator(cfg)
    alpha = ent.alpha
    sc = cfg.scaling
    config = ScalingConfig(sizes=[int(s) for s in sc.sizes], exact_max=int(sc.exact_max),
                           features=int(sc.features), components=int(sc.components),
                           repeats=int(sc.repeats), kernel_width=str(cfg.kernel.width),
                           kernel_scale=float(cfg.kernel.scale), seed=int(cfg.seed), fast=ent.fast)
    sizes = sorted(config.sizes)

    def on_size(row: dict[str, Any]) -> None:
        run.log_metrics(row["size"], **row)
        bar.advance(rel_error=row.get("rel_error", float("nan")))

    with run.progress(len(sizes), "renyi-mi scaling") as bar:
        rows = entropy_scaling(config, alpha, device, on_size=on_size)
    ref = [r for r in rows if "rel_error" in r]
    wall = time.perf_counter() - t_start
    summary: dict[str, Any] = {
        "task": "scaling", "alpha": alpha, "n_max": sizes[-1],
        "kernel_width": str(cfg.kernel.width),
        **{f"fast_{k}": (str(v or "auto").replace("torch.", "") if k == "matmul_dtype" else v)
           for k, v in ent.fast.items()},
        "max_rel_error": max((r["rel_error"] for r in ref), default=None),
        "speedup_at_n_max": ref[-1]["speedup"] if ref else None,
        "rel_error_at_n_max": ref[-1]["rel_error"] if ref else None,
        "n_max_exact": ref[-1]["size"] if ref else None,
        "within_3_sigma": float(np.mean([r["within_3_sigma"] for r in ref])) if ref else None,
        "device": device, "wall_s": round(wall, 3),
    }
    run.save_arrays("scaling", **{k: np.asarray([r.get(k, np.nan) for r in rows], dtype=float)
                                  for k in ("size", "sigma", "fast_bits", "exact_bits", "fast_s",
                                            "eigvalsh_s", "rel_error", "error_estimate")})
    fig_t, fig_e = P.scaling(rows, summary)
    run.save_plot(fig_t, "scaling_time")
    run.save_plot(fig_e, "scaling_error")
    run.save_summary(summary)
    return summary
