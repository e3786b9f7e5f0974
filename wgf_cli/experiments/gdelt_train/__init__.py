"""`wgf gdelt-train`: train the next-day event forecaster on a `wgf gdelt-build` folder.

Per epoch ``metrics.csv`` has train/val losses (total, per-event cross entropy, count NLL,
Sinkhorn), lr, sequences/s and the best epoch; ``checkpoints/last.pt`` holds everything a
resumed run needs (``resume=<run folder>``).  At the end the best model and the baselines
(persistence, climatology, moving average, a GRU, the oracle when the build has one) are
scored on the test split; ``scores.json`` has every method's scores (log loss with its
bootstrap interval, Diebold-Mariano p-value against the best method), ``forecasts.parquet``
one row per test day; plots: learning curves, reliability diagram, metric table, example
forecasts.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from wgf_cli.experiments.gdelt_train.config import validate
from wgf_cli.presets import Claim, Preset

__all__ = ["HEADLINE", "METHODS", "PRESETS", "SUMMARY_KEYS", "method_table_md", "report_section", "run",
           "validate"]

METHODS = ["model", "gru", "persistence", "moving_average", "climatology", "oracle"]
SUMMARY_KEYS = {
    "test_log_loss": "per-event root-code cross entropy of the model on the test split (nats)",
    "test_brier": "Brier score of the root-code distribution",
    "test_quad_kl": "KL(actual quad-class distribution || forecast)",
    "test_f1_micro": "multi-label F1 (micro) of the root codes that occur (P >= 0.5)",
    "test_f1_weighted": "multi-label F1 (weighted by support)",
    "test_hamming": "Hamming loss of the occurring root codes",
    "test_ece": "expected calibration error of the occurrence probabilities",
    "test_rouge1": "ROUGE-1 F1 of forecast vs actual phrase lists", "test_rouge2": "ROUGE-2 F1",
    "test_rougeL": "ROUGE-L F1", "test_sinkhorn": "Sinkhorn divergence forecast vs actual cloud",
    "test_kl_oracle": "mean KL(oracle || model) of the root-code forecasts (synthetic): the "
                      "expected excess log loss, without the test events' sampling noise",
    "<baseline>_<metric>": "the same metrics for gru, persistence, moving_average, climatology, "
                           "oracle (no cloud/text for the oracle)",
    "skill_vs_oracle": "(LL_climatology - LL_model) / (LL_climatology - LL_oracle) (synthetic)",
    "beats_all_baselines": "model log loss below every non-oracle baseline's",
    "beats_count_baselines": "model log loss below persistence, climatology and the moving average",
    "margin_over_gru": "gru_log_loss - test_log_loss (> 0: the transformer is better)",
    "epochs": "epochs trained (both phases)", "cloud_epochs": "epochs of the cloud branch alone",
    "cloud_best_epoch": "epoch of the cloud branch's best validation Sinkhorn (0: no cloud phase)",
    "best_epoch": "epoch of the best validation train.monitor (the event and count heads' weights)",
    "stopped_early": "early stopping ended training", "sequences_per_s": "training throughput",
    "device": "device", "wall_s": "wall time of the run", "test_days": "test sequences scored",
    "smoothing": "pseudo-events of climatology in persistence / moving average",
}
SUMMARY_KEYS.update({
    "eval_protocol": "rolling (every observed country-day after the validation period) or split",
    "test_days_scored": "test targets with events (the event-mix scores' days)",
    "test_count_crps": "CRPS of the day's total count (all test days); <baseline>_count_crps too",
    "test_coverage80": "share of test days whose count lies in the 80 % predictive interval",
    "test_log_loss_ci": "95 % block-bootstrap interval (country-weeks) of the model's log loss",
    "best_baseline": "the baseline with the lowest test log loss", "best_baseline_log_loss": "its log loss",
    "dm_pvalue_vs_best": "Diebold-Mariano p-value, model vs the best baseline (per-day log loss)",
    "margin_over_best": "best_baseline_log_loss - test_log_loss (> 0: the model is better)",
    "worse_than_best": "the model's log loss is significantly (p < 0.05) above the best baseline's",
    "shrink_cells": "fraction of the cell residuals kept over the prior (chosen on validation)",
    "shrink_total": "fraction of the count residual kept over the prior (chosen on validation)",
})
HEADLINE = ["skill_vs_oracle", "test_log_loss"]

_TOY = ["train.epochs=1", "train.cloud_epochs=1", "train.per_epoch=64",
        "train.batch_size=32", "model.d_model=16", "model.ff=32", "model.layers=1",
        "baselines.gru.epochs=1", "data.max_eval=40", "train.max_val=40", "eval.samples=20"]

PRESETS = [
    Preset("gdelt_westafrica_train",
           "Real GDELT: next-day material-conflict events in 10 West and North African countries "
           "(1979-1997 export, data/gdelt/), rolling-origin evaluation of every country-day after the "
           "validation period against every baseline.",
           ["test_log_loss", "test_log_loss_ci", "best_baseline", "best_baseline_log_loss", "dm_pvalue_vs_best",
            "ewma_log_loss", "gru_log_loss", "test_count_crps", "ewma_count_crps", "test_ece", "test_coverage80",
            "test_days", "test_days_scored", "wall_s"],
           [Claim("test_days_scored", ">=", 4000, "rolling evaluation: thousands of scored country-days "
                  "(4,440 of 10,330 test targets have events)"),
            Claim("test_log_loss", "<=", 0.9585, "per-event log loss below every statistical baseline "
                  "(best: ewma 0.9597; measured 0.9572)"),
            Claim("worse_than_best", "==", False, "not significantly worse than the best method among the "
                  "baselines, the GRU included (Diebold-Mariano over country-weeks, p >= 0.05)"),
            Claim("test_count_crps", "<=", 1.71, "the count forecast beats the EWMA level and the NB "
                  "regression (1.724, 1.803; measured 1.697)"),
            Claim("test_ece", "<=", 0.006, "calibrated occurrence probabilities (measured 0.004; ewma 0.007)")],
           figures=["reliability.png", "metric_table.png"],
           toy=[*_TOY, "data.context=20"], needs={"data.build_dir": "gdelt_westafrica"}),
    Preset("gdelt_train", "Next-day GDELT event forecasts on the synthetic gdelt-build "
           "(Markov-switching regimes): transformer vs persistence, climatology, moving average, "
           "GRU and the exact HMM oracle.",
           ["test_log_loss", "gru_log_loss", "climatology_log_loss", "oracle_log_loss", "skill_vs_oracle",
            "test_kl_oracle", "gru_kl_oracle",
            "test_f1_micro", "test_rouge1", "test_sinkhorn", "sequences_per_s", "epochs"],
           [Claim("beats_all_baselines", "==", True,
                  "the transformer's test log loss is below persistence, climatology, the 7-day "
                  "average and the GRU trained as long"),
            Claim("margin_over_gru", ">=", 0.001,
                  "ahead of the GRU by more than the test days' sampling noise of the log loss "
                  "(~0.0008 nats); the regime filter is what the GRU lacks (docs/gdelt-train.md)"),
            Claim("skill_vs_oracle", ">=", 0.8,
                  "skill (LL_clim - LL_model)/(LL_clim - LL_oracle) against the exact HMM oracle "
                  "(target 0.8)")],
           figures=["learning_curves.png", "reliability.png", "metric_table.png",
                    "example_forecasts.png"],
           toy=_TOY, needs={"data.build_dir": "gdelt_synthetic"},
           full=["train.epochs=40", "train.per_epoch=0", "model.d_model=128", "model.layers=4",
                 "model.ff=256", "train.patience=5", "baselines.gru.epochs=10",
                 "baselines.gru.d_model=64"]),
]


def report_section(runs: list[dict[str, Any]]) -> str:
    """The reproduce report's method comparison table of each run (``scores.json``)."""
    from wgf_cli.experiments.gdelt_train.report import report_section as section

    return section(runs)


def method_table_md(comparison: dict[str, Any]) -> list[str]:
    """The Markdown table of one run's method comparison (see :mod:`.report`)."""
    from wgf_cli.experiments.gdelt_train.report import method_table_md as table

    return table(comparison)


def run(cfg: DictConfig, run) -> dict[str, Any]:
    """Train the forecaster on ``data.build_dir``, score it and the baselines; the summary."""
    from wgf_cli.experiments.gdelt_train.training import run_train

    return run_train(cfg, run)
