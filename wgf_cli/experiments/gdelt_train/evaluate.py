"""Test-split evaluation, forecast texts, ``scores.json`` and ``forecasts.parquet`` of
`wgf gdelt-train`."""

from __future__ import annotations

import io
import logging
import math
import time
from typing import Any

import numpy as np
import torch

from wgf_cli.experiments.gdelt_train.plots import LABELS, plots
from wgf_cli.forecast import scores as M
from wgf_cli.forecast import text as F
from wgf_cli.forecast.baselines import Prediction
from wgf_cli.forecast.data import GdeltBuild, SequenceData
from wgf_cli.ot.pointcloud import sinkhorn_divergence

log = logging.getLogger(__name__)



def _sinkhorn(pred: Prediction, ax: np.ndarray, aw: np.ndarray, blur: float,
              chunk: int = 256) -> float:
    fw = pred.cloud_w.sum(-1)
    ok = np.flatnonzero((aw.sum(-1) > 0) & (fw > 0))
    vals = []
    for i in range(0, len(ok), chunk):
        j = ok[i: i + chunk]
        a = torch.as_tensor(pred.cloud_w[j] / fw[j, None], dtype=torch.float32)
        b = torch.as_tensor(aw[j] / aw[j].sum(-1, keepdims=True), dtype=torch.float32)
        vals.append(sinkhorn_divergence(a, torch.as_tensor(pred.cloud_x[j], dtype=torch.float32),
                                          b, torch.as_tensor(ax[j], dtype=torch.float32),
                                          blur).numpy())
    return float(np.concatenate(vals).mean()) if vals else float("nan")


def day_partner(build: GdeltBuild, c: int, t: int, days: int = 1) -> str | None:
    """The main partner of country ``c`` over days ``[t - days + 1, t]`` (domestic included)."""
    lo = max(t - days + 1, 0)
    shares = F.partner_shares(build.partners[c, lo: t + 1], build.partner_weights()[c, lo: t + 1],
                              str(build.countries[c]), build.standard, top=1)
    return shares[0][1] if shares else None


def texts_for(pred: Prediction, build: GdeltBuild, test: SequenceData, samples: int, top: int,
              seed: int, partner_days: int = 28, chunk: int = 128) -> tuple[list[list[str]], np.ndarray]:
    """Forecast phrase lists and standard-event probabilities [N, P] of one method; each
    phrase's partner is the country's main partner over the ``partner_days`` before the target."""
    basis = build.standard
    gen = torch.Generator().manual_seed(seed)
    phrases, probs_all = [], []
    c_all, t_all = test.country.numpy(), test.target_day.numpy()
    names = [build.standard.country_name(str(build.countries[c])) for c in c_all]
    for i in range(0, len(test), chunk):
        sl = slice(i, min(len(test), i + chunk))
        x = torch.as_tensor(pred.cloud_x[sl], dtype=torch.float32)
        w = torch.as_tensor(pred.cloud_w[sl], dtype=torch.float32)
        w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
        proj = F.project_atoms(x, basis)
        mu = torch.as_tensor(pred.total_mean[sl], dtype=torch.float64)
        alpha = None if pred.alpha is None else torch.as_tensor(pred.alpha[sl], dtype=torch.float64)
        probs = F.event_probabilities(proj, w, mu, alpha, len(basis.codes), samples, gen).numpy()
        for r in range(probs.shape[0]):
            j = i + r
            partner = day_partner(build, int(c_all[j]), int(t_all[j]) - 1, partner_days)
            phrases.append(F.forecast_phrases(probs[r], names[j], basis, top, partner))
        probs_all.append(probs)
    return phrases, np.concatenate(probs_all)


def actual_texts(build: GdeltBuild, test: SequenceData, top: int) -> list[list[str]]:
    """The test days' events as text, each with that day's main partner."""
    c, t = test.country.numpy(), test.target_day.numpy()
    x = torch.as_tensor(build.points[c, t], dtype=torch.float32)
    w = build.weights[c, t]
    proj = F.project_atoms(x, build.standard)
    names = [build.standard.country_name(str(build.countries[k])) for k in c]
    return [F.actual_phrases(proj.event[i].numpy(), w[i], names[i], build.standard, top,
                             day_partner(build, int(c[i]), int(t[i]))) for i in range(len(c))]


def evaluate(preds: dict[str, Prediction], test: SequenceData, build: GdeltBuild, cfg,
             device: str) -> tuple[dict[str, dict], dict[str, Any], dict[str, dict]]:
    """Scores of every method, their phrase lists (plus ``actual``) and reliability tables."""
    c, t = test.country.numpy(), test.target_day.numpy()
    y = build.counts[c, t]
    ax, aw = build.points[c, t].astype(np.float32), build.weights[c, t]
    top, samples = int(cfg.eval.top_events), int(cfg.eval.samples)
    texts: dict[str, Any] = {"actual": actual_texts(build, test, top)}
    scores, rel = {}, {}
    for name, p in preds.items():
        s = M.score(y, p.root_probs, p.quad_probs, p.occur_probs, int(cfg.eval.bins))
        rel[name] = M.reliability(y.sum(-1) > 0, p.occur_probs, int(cfg.eval.bins))
        if p.cloud_x is not None:
            s["sinkhorn"] = _sinkhorn(p, ax, aw, float(cfg.train.loss.blur))
            ph, probs = texts_for(p, build, test, samples, top, int(cfg.seed))
            texts[name] = ph
            if name == "model":
                texts["model_event_probs"] = probs
            r = [M.rouge(f, a) for f, a in zip(ph, texts["actual"], strict=True)]
            for k in ("rouge1", "rouge2", "rougeL"):
                s[k] = float(np.mean([x[k] for x in r]))
        scores[name] = s
    if "oracle" in preds:  # expected excess log loss, free of the test events' sampling noise
        has = y.sum((-1, -2)) > 0
        for name, p in preds.items():
            scores[name]["kl_oracle"] = M.mean_kl(preds["oracle"].root_probs[has], p.root_probs[has])
    return scores, texts, rel


TABLE_METRICS = ("log_loss", "brier", "ece", "count_crps", "coverage80", "quad_kl")


def method_table(scores: dict[str, dict]) -> str:
    """One method x metric table (text), methods sorted by log loss."""
    names = sorted(scores, key=lambda n: scores[n].get("log_loss", float("inf")))
    head = f"{'method':<16}" + "".join(f"{m:>12}" for m in TABLE_METRICS)
    rows = [head] + [f"{LABELS.get(n, n):<16}" + "".join(
        f"{scores[n][m]:>12.4f}" if m in scores[n] else f"{'—':>12}" for m in TABLE_METRICS) for n in names]
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------
# the method comparison: scores.json (its table in the report: report.py)
# ----------------------------------------------------------------------------------------
#: scores.json's numbers per method shown in the report's table: (key, column, rule), the
#: rule ``"ll"`` for log-loss-like numbers (at least 4 decimals), ``"small"`` for numbers
#: near zero (at least 3 significant digits)
REPORT_COLUMNS = (("log_loss", "event log loss [95 % CI]", "ll"), ("brier", "Brier", "ll"),
                  ("quad_kl", "quad KL", "small"), ("kl_oracle", "KL to oracle", "small"),
                  ("ece", "ECE", "small"), ("count_crps", "count CRPS", "ll"),
                  ("coverage80", "80 % coverage", "ll"))


def method_scores(scores: dict[str, dict], full: dict[str, dict], preds: dict[str, Prediction],
                  counts: np.ndarray, blocks: np.ndarray) -> dict[str, Any]:
    """The method comparison of a run (``scores.json``): per method (sorted by log loss) its
    test scores, the 95 % block-bootstrap interval of its log loss (``log_loss_ci``) and the
    Diebold-Mariano test (country-week clusters) of its per-day log loss against ``best``,
    the method with the lowest log loss (the oracle aside): ``dm_pvalue_vs_best``,
    ``dm_diff_vs_best`` (its mean excess log loss; ``None`` for the best itself)."""
    from wgf_cli.forecast.baselines import best_baseline

    root_n = np.asarray(counts).sum(-1)
    best = best_baseline(scores, exclude=("oracle",))
    day = {name: M.log_loss(root_n, p.root_probs) for name, p in preds.items()}
    blocks = np.asarray(blocks).reshape(-1)
    methods: dict[str, dict] = {}
    for name in sorted(scores, key=lambda n: scores[n].get("log_loss", float("inf"))):
        row: dict[str, Any] = {k: v for k, v in scores[name].items()
                               if isinstance(v, int | float) and not isinstance(v, bool)}
        ci = full.get(name, {}).get("log_loss_ci")
        row["log_loss_ci"] = None if ci is None else [float(x) for x in ci]
        row["dm_pvalue_vs_best"] = row["dm_diff_vs_best"] = None
        if name != best and name in day:
            ok = np.isfinite(day[name]) & np.isfinite(day[best])
            try:
                dm = M.diebold_mariano(day[name][ok], day[best][ok], blocks[ok])
                row.update(dm_pvalue_vs_best=dm["pvalue"], dm_diff_vs_best=dm["mean_diff"])
            except ValueError:  # fewer than two days / blocks with events: no test
                pass
        methods[name] = row
    return {"best": best, "days": int(len(root_n)), "days_scored": int((root_n.sum(-1) > 0).sum()),
            "methods": methods}


def write_forecasts(run, pred: Prediction, test: SequenceData, build: GdeltBuild,
                    phrases: list[list[str]]) -> None:
    """``forecasts.parquet``: one row per test day (probabilities, phrases, scores)."""
    import pandas as pd

    from wgf_cli.run import atomic_write

    c, t = test.country.numpy(), test.target_day.numpy()
    y = build.counts[c, t].sum(-1)
    ll = M.log_loss(y, pred.root_probs)
    actual = actual_texts(build, test, max(len(p) for p in phrases) or 1)
    df = pd.DataFrame({
        "seq_id": test.table["seq_id"].to_numpy(), "country": build.countries[c],
        "date": build.days[t], "total": build.total[c, t], "pred_total_mean": pred.total_mean,
        "root_probs": list(pred.root_probs.astype(np.float32)),
        "occur_probs": list(pred.occur_probs.astype(np.float32)),
        "quad_probs": list(pred.quad_probs.astype(np.float32)),
        "actual_root_counts": list(y.astype(np.int32)),
        "forecast_phrases": phrases, "actual_phrases": actual,
        "log_loss": ll,
        "rouge1": [M.rouge(f, a)["rouge1"] for f, a in zip(phrases, actual, strict=True)]})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write(run.dir / "forecasts.parquet", buf.getvalue())


# ----------------------------------------------------------------------------------------
# the run's test evaluation
# ----------------------------------------------------------------------------------------
def score_run(run, cfg, summary: dict[str, Any], preds: dict[str, Prediction], test: SequenceData,
              build: GdeltBuild, history: list[dict], device: str, t_start: float) -> dict[str, Any]:
    """Score every method on the test targets, write ``scores.json``, ``forecasts.parquet``
    and the plots, complete and save ``summary``; :class:`ValueError` when a summary metric
    is NaN (a score computed on no day)."""
    from wgf_cli.forecast import scores as S
    from wgf_cli.forecast.baselines import best_baseline
    from wgf_cli.run import write_json

    scores, texts, rel = evaluate(preds, test, build, cfg, device)
    c_t, t_t = test.country.numpy(), test.target_day.numpy()
    y_cells = build.counts[c_t, t_t]
    blocks = S.country_week_blocks(c_t, t_t)
    full = S.score_all(preds, y_cells, build.total[c_t, t_t], blocks=blocks, bins=int(cfg.eval.bins),
                       seed=int(cfg.seed))
    for name, sc in full.items():
        scores[name].update({k: v for k, v in sc.items() if not isinstance(v, tuple)})
    summary["test_days_scored"] = int(full["model"]["days_scored"])
    if "log_loss_ci" in full["model"]:
        summary["test_log_loss_ci"] = [float(x) for x in full["model"]["log_loss_ci"]]
    best = best_baseline(scores)
    dm = S.compare(preds["model"], preds[best], y_cells, blocks)
    summary.update(best_baseline=best, best_baseline_log_loss=float(scores[best]["log_loss"]),
                   dm_pvalue_vs_best=float(dm["pvalue"]), dm_stat_vs_best=float(dm["stat"]))
    summary["margin_over_best"] = summary["best_baseline_log_loss"] - float(scores["model"]["log_loss"])
    summary["worse_than_best"] = bool(summary["margin_over_best"] < 0 and dm["pvalue"] < 0.05)
    log.info("test scores (%d targets, %d with events):\n%s", len(test), summary["test_days_scored"],
             method_table(scores))
    write_json(run.dir / "scores.json", method_scores(scores, full, preds, y_cells, blocks))
    for name, sc in scores.items():
        prefix = "test" if name == "model" else name
        summary.update({f"{prefix}_{k}": v for k, v in sc.items() if k not in ("days", "days_scored")})
    ll = {n: s["log_loss"] for n, s in scores.items()}
    base = [n for n in ll if n not in ("model", "oracle")]
    summary["beats_all_baselines"] = bool(all(ll["model"] < ll[n] for n in base))
    summary["beats_count_baselines"] = bool(all(ll["model"] < ll[n] for n in base if n != "gru"))
    if "gru" in ll:
        summary["margin_over_gru"] = ll["gru"] - ll["model"]
    if "oracle" in ll:
        den = ll["climatology"] - ll["oracle"]
        summary["skill_vs_oracle"] = (ll["climatology"] - ll["model"]) / den if den > 0 else math.nan
    write_forecasts(run, preds["model"], test, build, texts["model"])
    plots(run, history, scores, rel, preds, test, build, texts, int(cfg.eval.examples))
    summary["wall_s"] = time.perf_counter() - t_start
    summary["finished"] = True
    bad = sorted(k for k, v in summary.items() if isinstance(v, float) and math.isnan(v)
                 and not k.startswith(("margin", "skill")) and k not in ("smoothing",))
    run.save_summary(summary)
    if bad:
        raise ValueError(f"summary metric {bad[0]} is NaN (and {len(bad) - 1} more): "
                         "a score was computed on no day")
    return summary

