"""Figures of `wgf meanfield`: loss curves, neuron trajectories in the (w, b) plane, grid
snapshots, network output vs target, distances over time and the width log-log plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_SIGN = {1.0: "tab:red", -1.0: "tab:blue"}


def _np(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def loss_curves(run, curves: dict, tolerance=None) -> None:
    """``curves[name] = (times, loss, test_loss | None)``; optional band ``(t, centre, half-width)``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, (t, loss, test) in curves.items():
        line, = ax.plot(t, loss, label=f"{name}", lw=1.6)
        if test is not None:
            ax.plot(t, test, ls=":", color=line.get_color(), lw=1.0)
    if tolerance is not None:
        t, c, w = (np.asarray(v) for v in tolerance)
        ax.fill_between(t, np.maximum(c - w, 1e-300), c + w, color="0.5", alpha=0.2,
                        label="gd +- tolerance (blur + step + initial)")
    ax.set_yscale("log")
    ax.set_xlabel("mean-field time t")
    ax.set_ylabel("loss (solid: train, dotted: test)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    run.save_plot(fig, "loss.png")


def trajectories(run, snapshots, count: int) -> None:
    """Neuron paths through the snapshots in the (w, b) plane (first two coordinates), by sign."""
    if count <= 0 or not snapshots:
        return
    Ws = np.stack([_np(W) for _, W, _ in snapshots])  # (S, m, d)
    alpha = _np(snapshots[-1][2])
    m = Ws.shape[1]
    idx = np.linspace(0, m - 1, min(count, m)).astype(int)
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for i in idx:
        c = _SIGN.get(float(np.sign(alpha[i])) or 1.0, "k")
        ax.plot(Ws[:, i, 0], Ws[:, i, -1], color=c, lw=0.6, alpha=0.6)
        ax.plot(Ws[-1, i, 0], Ws[-1, i, -1], "o", color=c, ms=2)
    ax.set_xlabel("w (input weight)")
    ax.set_ylabel("b (bias)")
    ax.set_title(f"neuron trajectories to t={snapshots[-1][0]:g} (red: alpha>0, blue: alpha<0)", fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    run.save_plot(fig, "trajectories.png")


def grid_snapshots(run, problem, snaps, particles=None) -> None:
    """Signed grid measure ``r_+ - r_-`` at the snapshot times (particles overlaid if given)."""
    axes = [_np(a) for a in problem.grid.axes]
    ext = [axes[0][0], axes[0][-1], axes[1][0], axes[1][-1]]
    k = len(snaps)
    fig, axs = plt.subplots(1, k, figsize=(2.6 * k, 3.0), squeeze=False, layout="constrained")
    by_t = {round(t, 9): (W, a) for t, W, a in (particles or [])}
    for ax, (t, r) in zip(axs[0], snaps, strict=True):
        r = _np(r)
        signed = (r[0] - r[1]).T
        v = np.abs(signed).max() or 1.0
        ax.imshow(signed, origin="lower", extent=ext, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
        if round(t, 9) in by_t:
            W, a = (_np(z) for z in by_t[round(t, 9)])
            sel = np.linspace(0, W.shape[0] - 1, min(400, W.shape[0])).astype(int)
            ax.scatter(W[sel, 0], W[sel, 1], s=0.5, c=["k" if x > 0 else "g" for x in a[sel]], alpha=0.5)
        ax.set_title(f"t={t:g}", fontsize=9)
        ax.set_xlabel("w")
    axs[0][0].set_ylabel("b")
    fig.suptitle("grid measure r+ - r- (red +, blue -); dots: gd neurons (black +, green -)", fontsize=9)
    run.save_plot(fig, "grid_snapshots.png")


def output_snapshots(run, data, outputs, grid=None) -> None:
    """Network output vs target on the test inputs (first input coordinate) over time."""
    x = _np(data.x_test[:, 0])
    order = np.argsort(x)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    cmap = plt.get_cmap("viridis")
    for i, (t, f) in enumerate(outputs):
        ax.plot(x[order], _np(f)[order], color=cmap(i / max(1, len(outputs) - 1)), lw=1.2,
                label=f"t={t:g}" if i in (0, len(outputs) - 1) else None)
    for _t, f in grid or []:
        ax.plot(x[order], _np(f)[order], color="tab:orange", lw=0.8, ls="--")
    ax.plot(x[order], _np(data.y_test)[order], "k:", lw=1.5, label="target")
    if grid:
        ax.plot([], [], color="tab:orange", ls="--", label="grid flow")
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    run.save_plot(fig, "outputs.png")


def distance_curves(run, dists: dict, times: dict) -> None:
    """W2 and sliced W2 of particle measures to the grid measure over time."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for name, d in dists.items():
        idx = sorted(d)
        t = [times[name][i] for i in idx]
        w2 = [d[i]["dist_to_reference"] for i in idx]
        if not np.isnan(w2).all():
            ax.plot(t, w2, "o-", label=f"W2 ({name} vs grid)")
        ax.plot(t, [d[i]["sliced_w2_to_reference"] for i in idx], "s--", label=f"sliced W2 ({name} vs grid)")
    ax.set_xlabel("mean-field time t")
    ax.set_ylabel("distance")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    run.save_plot(fig, "distance.png")


def width_plot(run, widths, times, err, fits) -> None:
    """Log-log distance to the reference vs width, per time, with the fitted slopes."""
    w = np.asarray(widths, dtype=float)
    fig, axs = plt.subplots(1, 2, figsize=(10, 4.2))
    cmap = plt.get_cmap("viridis")
    for ax, key, label in ((axs[0], "l2", "L2 distance of outputs"), (axs[1], "sw2", "sliced W2 of neurons")):
        for j, t in enumerate(times):
            e = err[key][j]
            c = cmap(j / max(1, len(times) - 1))
            ax.plot(np.repeat(w, e.shape[1]), e.reshape(-1), ".", color=c, alpha=0.35, ms=4)
            ax.plot(w, e.mean(axis=1), "o-", color=c, label=_fit_label(fits.get((key, t)), t))
        ref = err[key][-1].mean(axis=1)[0] * (w / w[0]) ** -0.5
        ax.plot(w, ref, "k--", lw=1, label="m^(-1/2)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width m")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    run.save_plot(fig, "width.png")


def _fit_label(fit, t) -> str:
    if fit is None:
        return f"t={t:g}"
    return f"t={t:g}: slope {fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]"
