"""`wgf renyi-mi task=estimate`: ``H(X)``, ``H(Y)``, ``H(X,Y)``, ``I(X;Y)`` of the user's arrays."""

from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig

from wgf_cli.experiments.renyi_mi.config import entropy_estimator, load_inputs, setup


def run_estimate(cfg: DictConfig, run) -> dict[str, Any]:
    """Entropies of ``input.x`` (and ``input.y``); spectra saved and plotted."""
    import torch

    from wgf_cli.experiments.renyi_mi import plots as P
    from wgf_cli.info import gram, hadamard, spectrum

    t_start = time.perf_counter()
    device, _ = setup(cfg)
    ent = entropy_estimator(cfg)
    arrays = load_inputs(cfg)
    grams, summary = {}, {"task": "estimate", "alpha": ent.alpha, "entropy_method": ent.method}
    for key, arr in arrays.items():
        t = torch.as_tensor(arr, dtype=torch.float64, device=device)
        kind = str(cfg.input[f"kernel_{key}"])
        g = gram(t, "precomputed") if kind == "precomputed" else gram(
            t, sigma=str(cfg.kernel.width), scale=float(cfg.kernel.scale))
        grams[key] = g.A
        summary[f"H_{key.upper()}"] = float(ent(g.A))
        summary[f"sigma_{key}"] = g.sigma
    summary["samples"] = int(arrays["x"].shape[0])
    if "y" in grams:
        hxy = float(ent(hadamard(grams["x"], grams["y"])))
        summary.update(H_XY=hxy, I_XY=summary["H_X"] + summary["H_Y"] - hxy,
                       H_X_given_Y=hxy - summary["H_Y"], H_Y_given_X=hxy - summary["H_X"])
    run.log_metrics(0, **{k: v for k, v in summary.items() if isinstance(v, int | float)})
    spectra = {k: spectrum(A).flip(-1).cpu().numpy() for k, A in grams.items()}
    run.save_arrays("spectra", **spectra)
    run.save_plot(P.spectra(spectra, summary), "spectra")
    summary["wall_s"] = round(time.perf_counter() - t_start, 3)
    run.save_summary(summary)
    return summary
