"""`wgf meanfield`: two-layer ReLU networks in the mean-field limit.

``mode=train`` runs one method (``gd``, ``sgd``, ``jko_grid``, ``wprox``); ``mode=compare`` runs
gd, the grid Wasserstein gradient flow and wprox from the same initial neurons on one time
axis, with the blur-matched and step-matched particle runs that set the tolerance of the
gd-vs-grid comparison; ``mode=width`` measures how fast finite-width gd approaches a wide
reference.  ``metrics.csv`` has one row per record and method (``method, t, loss, test_loss,
grad_norm``, and ``dist_to_reference`` where a reference exists); ``summary.json`` the keys of
:data:`SUMMARY_KEYS`; snapshots go to ``particles.npz`` / ``grid.npz`` / ``width.npz``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from omegaconf import DictConfig

from wgf_cli.experiments.meanfield.compare import run_compare
from wgf_cli.experiments.meanfield.config import DISTANCES, METHODS, MODES, TARGETS, setup, validate
from wgf_cli.experiments.meanfield.presets import HEADLINE, PRESETS, SUMMARY_KEYS
from wgf_cli.experiments.meanfield.train import run_train
from wgf_cli.experiments.meanfield.width import run_width

__all__ = ["DISTANCES", "HEADLINE", "METHODS", "MODES", "PRESETS", "SUMMARY_KEYS", "TARGETS", "run", "validate"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run) -> dict[str, Any]:
    """Run the mode of ``cfg``; returns the summary (also written to ``summary.json``)."""
    t_start = time.perf_counter()
    device, dtype, data = setup(cfg)
    log.info("data: %s, n=%d, d=%d on %s/%s", data.target, data.x.shape[0], data.dim, device, dtype)
    mode = str(cfg.mode)
    summary = {"width": run_width, "compare": run_compare, "train": run_train}[mode](cfg, run, data, device, dtype)
    summary["device"] = device
    summary["dtype"] = str(dtype).replace("torch.", "")
    summary["wall_s"] = round(time.perf_counter() - t_start - summary.pop("_plot_s", 0.0), 3)
    run.save_summary(summary)
    return summary
