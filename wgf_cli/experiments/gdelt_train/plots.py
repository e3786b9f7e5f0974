"""Figures of a `wgf gdelt-train` run: learning curves, reliability diagram, metric table,
example forecasts."""

from __future__ import annotations

import numpy as np

from wgf_cli.forecast.data import GdeltBuild, SequenceData

#: display names of the methods
LABELS = {"model": "transformer", "gru": "GRU", "persistence": "persistence",
          "moving_average": "moving average", "climatology": "climatology", "oracle": "oracle",
          "same_weekday": "same weekday"}


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
