"""Figures of a `wgf renyi-mi` run: information plane, MI vs epoch, DPI check, per-neuron
plane, NTK entropy/alignment, scaling of exact vs fast entropy."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "font.size": 9})

_MARKERS = "osD^vP*Xh<>"


def _title(summary) -> str:
    return (f"alpha={summary['alpha']:g}, kernel width {summary.get('kernel_width', '')} "
            f"x{summary.get('kernel_scale', 1):g}")


def infoplane(hist, summary):
    """I(X;T_l) vs I(T_l;Y): one trajectory per layer, points coloured by epoch."""
    ixt, ity = np.asarray(hist.I_XT), np.asarray(hist.I_TY)
    ep = np.asarray(hist.epoch)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    sc = None
    for li in range(ixt.shape[1]):
        ax.plot(ixt[:, li], ity[:, li], "-", color="0.6", lw=0.8, zorder=1)
        sc = ax.scatter(ixt[:, li], ity[:, li], c=ep, cmap="viridis", s=22,
                        marker=_MARKERS[li % len(_MARKERS)], edgecolors="k", linewidths=0.3,
                        zorder=2, label=f"layer {li + 1} ({summary['layer_widths'][li]})")
    fig.colorbar(sc, ax=ax, label="epoch")
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    leg = ax.legend(fontsize=7, loc="lower right")
    for h in leg.legend_handles:
        h.set_facecolor("0.8")
    ax.set_title(f"information plane ({summary['dataset']}, test acc. "
                 f"{summary['final_accuracy']:.3f})\n{_title(summary)}")
    return fig


def mi_epochs(hist, summary):
    ixt, ity = np.asarray(hist.I_XT), np.asarray(hist.I_TY)
    ep = np.asarray(hist.epoch)
    fig, axs = plt.subplots(1, 3, figsize=(12, 3.4))
    for li in range(ixt.shape[1]):
        axs[0].plot(ep, ixt[:, li], label=f"layer {li + 1}")
        axs[1].plot(ep, ity[:, li], label=f"layer {li + 1}")
    iy = np.asarray(hist.I_Y_layers, dtype=float)
    if np.isfinite(iy).any():
        axs[1].plot(ep, iy, "k--", label="I(Y; {T_1..T_L})")
    axs[1].axhline(summary["H_Y"], color="r", lw=0.8, ls=":", label="H(Y)")
    axs[0].axhline(summary["H_X"], color="r", lw=0.8, ls=":", label="H(X)")
    axs[0].set_ylabel("I(X;T) [bits]")
    axs[1].set_ylabel("I(T;Y) [bits]")
    axs[2].plot(ep, hist.test_acc, label="test accuracy")
    ax2 = axs[2].twinx()
    ax2.plot(ep, hist.train_loss, color="C1", label="train loss")
    ax2.set_yscale("log")
    axs[2].set_ylabel("test accuracy")
    ax2.set_ylabel("train loss", color="C1")
    for ax in axs:
        ax.set_xlabel("epoch")
    axs[0].legend(fontsize=7)
    axs[1].legend(fontsize=7)
    fig.suptitle(f"mutual information vs epoch ({_title(summary)})")
    fig.tight_layout()
    return fig


def dpi(hist, summary, tol: float):
    """Per checkpoint: I(X;T_l) - I(X;T_l+1) (should be >= 0 by data processing)."""
    ixt, ity = np.asarray(hist.I_XT), np.asarray(hist.I_TY)
    ep = np.asarray(hist.epoch)
    fig, axs = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
    for li in range(ixt.shape[1] - 1):
        axs[0].plot(ep, ixt[:, li] - ixt[:, li + 1], label=f"I(X;T{li + 1}) - I(X;T{li + 2})")
        axs[1].plot(ep, ity[:, li] - ity[:, li + 1], label=f"I(T{li + 1};Y) - I(T{li + 2};Y)")
    for ax, key in zip(axs, ("dpi_violations", "dpi_violations_y"), strict=True):
        ax.axhline(0, color="k", lw=0.8)
        ax.axhline(-tol, color="r", lw=0.8, ls=":")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.set_title(f"violations: {summary[key]} of {summary['dpi_checks']}")
    axs[0].set_ylabel("difference [bits] (>= 0: DPI holds)")
    fig.suptitle("data-processing inequality per checkpoint")
    fig.tight_layout()
    return fig


def neurons(per_layer, summary):
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for li, r in enumerate(per_layer):
        ax.scatter(r["I_XT"], r["I_TY"], s=14, marker=_MARKERS[li % len(_MARKERS)],
                   label=f"layer {li + 1}", alpha=0.8)
    ax.set_xlabel("I(X;T_lj) [bits]")
    ax.set_ylabel("I(T_lj;Y) [bits]")
    ax.legend(fontsize=7)
    ax.set_title(f"per-neuron information plane, last checkpoint\n{_title(summary)}")
    return fig


def ntk(hist, summary):
    ep = np.asarray(hist.epoch)
    fig, axs = plt.subplots(1, 3, figsize=(12, 3.3))
    axs[0].plot(ep, hist.ntk_entropy)
    axs[0].set_ylabel(f"S_alpha(NTK) [bits] (max {np.log2(summary['ntk_size']):.2f})")
    axs[1].plot(ep, hist.ntk_alignment, color="C2")
    axs[1].set_ylabel("alignment with the label kernel")
    axs[2].plot(ep, hist.test_acc, color="C3")
    axs[2].set_ylabel("test accuracy")
    for ax in axs:
        ax.set_xlabel("epoch")
    fig.suptitle(f"empirical NTK during training (n={summary['ntk_size']}, alpha={summary['alpha']:g})")
    fig.tight_layout()
    return fig


def scaling(rows, summary):
    n = np.array([r["size"] for r in rows], dtype=float)
    fast = np.array([r["fast_s"] for r in rows])
    ex = np.array([r.get("eigvalsh_s", np.nan) for r in rows])
    fig_t, ax = plt.subplots(figsize=(5.4, 3.8))
    ax.loglog(n, ex, "o-", label="exact (eigvalsh, float64)")
    ax.loglog(n, fast, "s-", label="fast (deflation + SLQ)")
    for y, lab in ((ex, "n^3"), (fast, "n^2")):
        ok = np.isfinite(y)
        if ok.sum() >= 1:
            i = np.where(ok)[0][-1]
            p = 3 if lab == "n^3" else 2
            ax.loglog(n[ok], y[i] * (n[ok] / n[i]) ** p, ":", color="0.5", lw=0.8)
    ax.set_xlabel("n")
    ax.set_ylabel("wall time [s]")
    ax.legend(fontsize=8)
    sp = summary.get("speedup_at_n_max")
    ax.set_title(f"entropy of an n x n Gram matrix, alpha={summary['alpha']:g}"
                 + (f"\nspeed-up {sp:.1f}x at n={summary['n_max_exact']}" if sp else ""))
    fig_e, ax = plt.subplots(figsize=(5.4, 3.8))
    rel = np.array([r.get("rel_error", np.nan) for r in rows])
    est = np.array([r["error_estimate"] / r.get("exact_bits", r["fast_bits"]) for r in rows])
    ax.loglog(n, np.maximum(rel, 1e-16), "o-", label="|fast - exact| / exact")
    ax.loglog(n, est, "s--", label="error estimate (1 sigma) / exact")
    ax.axhline(1e-3, color="r", lw=0.8, ls=":", label="1e-3")
    ax.set_xlabel("n")
    ax.set_ylabel("relative error")
    ax.legend(fontsize=8)
    ax.set_title("fast path against eigvalsh")
    return fig_t, fig_e


def spectra(spec, summary):
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    for key, lam in spec.items():
        ax.semilogy(np.arange(1, len(lam) + 1), np.maximum(lam, 1e-18),
                    label=f"{key.upper()}: S = {summary[f'H_{key.upper()}']:.4f} bits")
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue of A")
    ax.legend(fontsize=8)
    ax.set_title(f"spectra of the normalized Gram matrices (alpha={summary['alpha']:g})")
    return fig
