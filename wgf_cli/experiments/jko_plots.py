"""Figures of a `wgf jko` run: snapshots panel, energy, error, 1-D profile, animated flow."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.grid": False})


def _image(grid, rho) -> np.ndarray:
    """2-D image of a density (mass / volume); 3-D grids show the middle slice."""
    arr = (rho / grid.cell_volume).numpy()
    if grid.dim == 3:
        arr = arr[:, :, arr.shape[2] // 2]
    return arr


def _extent(grid):
    return [grid.lo[0], grid.hi[0], grid.lo[1], grid.hi[1]]


def snapshots(grid, snaps, title: str):
    count = len(snaps)
    if grid.dim == 1:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        x = grid.axes[0].cpu().numpy()
        for t, r in snaps:
            ax.plot(x, (r / grid.cell_volume).numpy(), label=f"t={t:.3g}")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
        ax.set_title(title)
        return fig
    fig, axs = plt.subplots(1, count, figsize=(2.3 * count, 2.6), squeeze=False)
    vmax = max(float(_image(grid, r).max()) for _, r in snaps)
    for ax, (t, r) in zip(axs[0], snaps, strict=True):
        im = ax.imshow(_image(grid, r).T, origin="lower", extent=_extent(grid), cmap="magma",
                       vmin=0, vmax=vmax)
        ax.set_title(f"t = {t:.3g}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axs[0].tolist(), shrink=0.8, label="density")
    fig.suptitle(title)
    return fig


def curve(t, ys: dict[str, np.ndarray], ylabel: str, title: str, logy: bool = False):
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, y in ys.items():
        ax.plot(t[: len(y)], y, label=label, lw=1.5)
    ax.set_xlabel("t")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if len(ys) > 1:
        ax.legend()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def profile(grid, rho, exact, t: float, title: str):
    """Density along the first axis through the centre of the box, against the exact one."""
    v = grid.cell_volume
    x = grid.axes[0].cpu().numpy()
    num = (rho / v).numpy()
    ex = None if exact is None else (exact.cpu() / v).numpy()
    while num.ndim > 1:
        mid = num.shape[-1] // 2
        num = num[..., mid]
        ex = None if ex is None else ex[..., mid]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(x, num, "o", ms=2.5, label="entropic JKO")
    if ex is not None:
        ax.plot(x, ex, "-", lw=1.2, label="exact")
    ax.set_xlabel("x (middle line)")
    ax.set_ylabel("density")
    ax.set_title(f"{title}, t = {t:.3g}")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def animation_gif(grid, frames, title: str) -> bytes:
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    if grid.dim == 1:
        x = grid.axes[0].cpu().numpy()
        ymax = max(float((r / grid.cell_volume).max()) for _, r in frames)
        (line,) = ax.plot(x, (frames[0][1] / grid.cell_volume).numpy())
        ax.set_ylim(0, 1.05 * ymax)

        def update(i):
            line.set_ydata((frames[i][1] / grid.cell_volume).numpy())
            ax.set_title(f"{title}  t = {frames[i][0]:.3g}")
            return (line,)
    else:
        vmax = max(float(_image(grid, r).max()) for _, r in frames)
        im = ax.imshow(_image(grid, frames[0][1]).T, origin="lower", extent=_extent(grid),
                       cmap="magma", vmin=0, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])

        def update(i):
            im.set_data(_image(grid, frames[i][1]).T)
            ax.set_title(f"{title}  t = {frames[i][0]:.3g}")
            return (im,)

    anim = FuncAnimation(fig, update, frames=len(frames), blit=False)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flow.gif"
        anim.save(path, writer=PillowWriter(fps=10))
        data = path.read_bytes()
    plt.close(fig)
    return data


def make_all(run, cfg, grid, state, ref, energies) -> None:
    from wgf_cli.run import atomic_write

    name = str(cfg.energy.name).replace("_", " ")
    t = np.asarray(state["times"])
    run.save_plot(snapshots(grid, state["snaps"], f"{name}: entropic JKO"), "snapshots")
    run.save_plot(curve(t, {"F": energies}, "energy F(rho)", f"{name}: energy"), "energy")
    if state["l1"]:
        fig = curve(t, {"relative L1": np.asarray(state["l1"])}, "error",
                    f"{name}: error vs {ref.name}", logy=True)
        tw = [a for a, _ in state["w2"]]
        fig.axes[0].plot(tw, [b for _, b in state["w2"]], "s--", ms=4,
                         label="W2" if grid.dim == 1 else "sliced W2")
        fig.axes[0].legend()
        run.save_plot(fig, "error")
    exact = ref.at(float(t[-1])) if ref is not None else None
    run.save_plot(profile(grid, state["rho"].cpu(), exact, float(t[-1]), name), "profile")
    if int(cfg.output.gif_frames) > 0 and len(state["frames"]) > 1:
        atomic_write(run.plots_dir / "flow.gif", animation_gif(grid, state["frames"], name))


def convergence(h, err, iters, order: float):
    """Error vs time step (log-log, with the fitted slope) and error vs total inner iterations."""
    h, err, iters = map(np.asarray, (h, err, iters))
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    a.loglog(h, err, "o-", label="relative L1 error")
    a.loglog(h, err[-1] * (h / h[-1]) ** order, "k--", lw=0.8, label=f"fitted slope {order:.2f}")
    a.set(xlabel="time step h", ylabel="L1 error vs exact", title="accuracy in h")
    a.legend()
    b.loglog(iters, err, "s-")
    for hi, ii, ei in zip(h, iters, err, strict=True):
        b.annotate(f"h={hi:.0e}", (ii, ei), fontsize=7, xytext=(3, 3), textcoords="offset points")
    b.set(xlabel="total inner iterations", ylabel="L1 error", title="accuracy vs cost")
    fig.tight_layout()
    return fig
