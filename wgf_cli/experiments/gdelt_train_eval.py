"""Test-split evaluation, forecast texts, ``forecasts.parquet`` and plots of `wgf gdelt-train`."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from wgf_cli.forecast import scores as M
from wgf_cli.forecast import text as F
from wgf_cli.forecast.baselines import Prediction
from wgf_cli.forecast.data import GdeltBuild, SequenceData
from wgf_cli.ot.pointcloud import sinkhorn_divergence

LABELS = {"model": "transformer", "gru": "GRU", "persistence": "persistence",
          "moving_average": "moving average", "climatology": "climatology", "oracle": "oracle",
          "same_weekday": "same weekday"}


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
# the method comparison: scores.json and its table in the reproduce report
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


def _decimals(values: list[float], rule: str) -> int:
    """Decimals for a column: at least 4 (``rule="ll"``) or 3 significant digits of its
    smallest non-zero value (``"small"``), more until the distinct values print distinctly."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    nonzero = [abs(v) for v in vals if v != 0]
    d = 4
    if rule == "small" and nonzero:
        d = max(d, 2 - int(np.floor(np.log10(min(nonzero)))))
    d = min(d, 8)
    while d < 10 and len({f"{v:.{d}f}" for v in vals}) < len(set(vals)):
        d += 1
    return d


def _pvalue(p: float | None, alpha: float = 0.05) -> str:
    """A p-value to 2 significant digits, more where 2 would put it on the other side of ``alpha``."""
    if p is None or not np.isfinite(p):
        return "—"
    for digits in range(2, 10):
        text = f"{p:.{digits}g}"
        if (float(text) < alpha) == (p < alpha):
            return text
    return repr(p)


def _from_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A method comparison from ``summary.json`` alone (runs without ``scores.json``): the
    intervals and the test against the best baseline exist for the model only."""
    names = ["model"] + [k[: -len("_log_loss")] for k in summary if k.endswith("_log_loss")
                         and k not in ("test_log_loss", "best_baseline_log_loss")]
    methods = {}
    for name in names:
        prefix = "test" if name == "model" else name
        row = {k: summary.get(f"{prefix}_{k}") for k, _, _ in REPORT_COLUMNS}
        row["log_loss_ci"] = summary.get("test_log_loss_ci") if name == "model" else None
        row["dm_pvalue_vs_best"] = summary.get("dm_pvalue_vs_best") if name == "model" else None
        methods[name] = row
    methods = dict(sorted(methods.items(), key=lambda kv: kv[1]["log_loss"]
                          if isinstance(kv[1]["log_loss"], int | float) else float("inf")))
    return {"best": summary.get("best_baseline"), "days": summary.get("test_days"),
            "days_scored": summary.get("test_days_scored"), "methods": methods}


def method_table_md(comparison: dict[str, Any]) -> list[str]:
    """The Markdown table of a :func:`method_scores` comparison, one row per method (the
    oracle last), each column with as many decimals as it takes to tell its values apart."""
    methods = comparison["methods"]
    cols = [(k, title, rule) for k, title, rule in REPORT_COLUMNS
            if any(isinstance(m.get(k), int | float) for m in methods.values())]
    dec = {k: _decimals([m.get(k) for m in methods.values()]
                        + ([x for m in methods.values() for x in (m.get("log_loss_ci") or [])]
                           if k == "log_loss" else []), rule) for k, _, rule in cols}
    best = comparison.get("best")
    lines = ["| method | " + " | ".join(t for _, t, _ in cols) + f" | DM p vs {LABELS.get(best, best)} |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for name in sorted(methods, key=lambda n: n == "oracle"):  # the oracle last: a reference
        m = methods[name]
        label = f"**{LABELS.get(name, name)}** (the model)" if name == "model" else LABELS.get(name, name)
        cells = []
        for k, _, _ in cols:
            v = m.get(k)
            text = "—" if not isinstance(v, int | float) else ("0" if v == 0 else f"{v:.{dec[k]}f}")
            if k == "log_loss" and m.get("log_loss_ci"):
                lo, hi = m["log_loss_ci"]
                text += f" [{lo:.{dec[k]}f}, {hi:.{dec[k]}f}]"
            cells.append(text)
        p = "(best)" if name == best else ("—" if name == "oracle" else _pvalue(m.get("dm_pvalue_vs_best")))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {p} |")
    return lines


def report_section(runs: list[dict[str, Any]]) -> str:
    """Markdown for the reproduce report: per completed run its test method comparison
    (``scores.json``, else ``summary.json``) as a table."""
    from pathlib import Path

    from wgf_cli.run import read_file

    out = []
    for r in runs:
        if r.get("status") != "completed":
            continue
        comp = read_file(Path(r["folder"]) / "scores.json") or _from_summary(r.get("summary") or {})
        if not comp.get("methods") or not any(isinstance(m.get("log_loss"), int | float)
                                             for m in comp["methods"].values()):
            continue
        best = comp.get("best")
        out += [f"### Method comparison: {r['name']}", "",
                f"Test split: {comp.get('days')} target days, {comp.get('days_scored')} with events "
                "(the event scores' days). Lower is better except 80 % coverage (nominal 0.8). "
                "Log loss in nats per event with its 95 % block-bootstrap interval over "
                "country-weeks; DM p: Diebold-Mariano test (country-week clusters) of the "
                f"method's per-day log loss against {LABELS.get(best, best)}, the lowest log loss "
                "without the oracle.", "", *method_table_md(comp), ""]
    return "\n".join(out)


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
# plots
# ----------------------------------------------------------------------------------------
def plots(run, history: list[dict], scores: dict, rel: dict, preds: dict, test: SequenceData,
          build: GdeltBuild, texts: dict, examples: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if history:
        ep = np.arange(1, len(history) + 1)
        fig, axs = plt.subplots(1, 3, figsize=(13, 3.5), layout="constrained")
        axs[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train")
        axs[0].plot(ep, [h["val_loss"] for h in history], "s-", label="validation")
        axs[0].set_title("total loss")
        axs[0].set_ylabel("loss")
        axs[1].plot(ep, [h["train_events"] for h in history], "o-", label="train")
        axs[1].plot(ep, [h["val_log_loss"] for h in history], "s-", label="validation")
        for name, style in (("climatology", ":"), ("oracle", "--")):
            if name in scores:
                axs[1].axhline(scores[name]["log_loss"], ls=style, c="gray",
                               label=f"test {LABELS[name]}")
        axs[1].set_title("per-event cross entropy")
        axs[1].set_ylabel("nats per event")
        axs[2].plot(ep, [h["train_cloud"] for h in history], "o-", label="train")
        axs[2].plot(ep, [h["val_sinkhorn"] for h in history], "s-", label="validation")
        axs[2].set_title("Sinkhorn divergence of the day cloud")
        axs[2].set_ylabel("Sinkhorn divergence")
        start = next((i for i, h in enumerate(history) if h.get("cloud_phase")), None)
        for a in axs:
            if start is not None:  # train_* of the other terms are NaN from here on
                a.axvline(start + 0.5, c="gray", lw=0.8, ls="-.", label="cloud branch from here")
            a.set_xlabel("epoch")
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
            a.legend(fontsize=7)
        run.save_plot(fig, "learning_curves.png")

    fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
    ax.plot([0, 1], [0, 1], c="gray", lw=0.8)
    for name, r in rel.items():
        m = r["count"] > 0
        ax.plot(r["mean"][m], r["freq"][m], "o-", ms=3,
                label=f"{LABELS.get(name, name)} (ECE {r['ece']:.4f})")
    ax.set_xlabel("forecast P(root code occurs)")
    ax.set_ylabel("observed frequency")
    ax.set_title("reliability diagram (test)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the curves
    run.save_plot(fig, "reliability.png")

    cols = ["log_loss", "brier", "quad_kl", "f1_micro", "f1_weighted", "hamming", "ece",
            "rouge1", "rouge2", "rougeL", "sinkhorn"]
    names = list(scores)
    cell = [[f"{scores[n][k]:.4f}" if k in scores[n] else "—" for k in cols] for n in names]
    fig, ax = plt.subplots(figsize=(13, 0.27 * len(names) + 0.9))
    ax.axis("off")
    tab = ax.table(cellText=cell, rowLabels=[LABELS.get(n, n) for n in names], colLabels=cols,
                   loc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    ax.set_title("test metrics per method")
    run.save_plot(fig, "metric_table.png")

    if examples > 0 and "model" in texts:
        countries = list(dict.fromkeys(test.country.tolist()))[:examples]
        fig, axs = plt.subplots(len(countries), 1, figsize=(11, 2.7 * len(countries)), squeeze=False)
        t = test.target_day.numpy()
        for ax, c in zip(axs[:, 0], countries, strict=True):
            i = int(np.flatnonzero(test.country.numpy() == c)[-1])
            y = build.counts[c, t[i]].sum(-1)
            x = np.arange(1, 21)
            ax.bar(x - 0.2, y / max(y.sum(), 1), 0.4, label="actual")
            ax.bar(x + 0.2, preds["model"].root_probs[i], 0.4, label="forecast")
            if "oracle" in preds:
                ax.plot(x, preds["oracle"].root_probs[i], "k_", ms=10, label="oracle")
            ax.set_xticks(x)
            ax.set_xlabel("CAMEO root code")
            ax.set_ylabel("share of events")
            ax.set_title(f"{build.countries[c]} {build.days[t[i]]}", fontsize=9)
            txt = ("forecast: " + "; ".join(texts["model"][i][:3]) + "\nactual:   "
                   + "; ".join(texts["actual"][i][:3]))
            ax.text(1.01, 0.5, txt, transform=ax.transAxes, fontsize=7, va="center", wrap=True)
            ax.legend(fontsize=7, loc="upper left")
        fig.subplots_adjust(right=0.55, hspace=0.6)
        run.save_plot(fig, "example_forecasts.png")
