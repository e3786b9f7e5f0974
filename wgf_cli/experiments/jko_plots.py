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
    ax.xaxis.set_major_locator(plt.MaxNLocator(6))  # short runs: no crammed 0.00025-step labels
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


def log_ticks(axis, values, exact: bool = False) -> None:
    """Readable ticks on a log ``axis`` (``ax.xaxis`` / ``ax.yaxis``) spanning ``values``:
    the values themselves (``exact``, e.g. the time steps of a sweep) or 1-2-5 steps (1-2-3-5-7
    within a decade, 1 per decade over more than 3 decades), labelled as plain numbers, minor
    ticks unlabelled."""
    from matplotlib import ticker

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if exact:
        axis.set_major_locator(ticker.FixedLocator(np.unique(v)))
    else:
        decades = np.log10(v.max() / v.min()) if len(v) else 0.0
        subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0) if decades > 1 else (1.0, 2.0, 3.0, 5.0, 7.0)
        axis.set_major_locator(ticker.LogLocator(10, subs=subs))
    axis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def convergence(h, err, iters, order: float):
    """Error vs time step (log-log: the errors, the least-squares line of slope ``order`` and
    a first-order guide) and error vs the total inner (Sinkhorn) iterations of each run."""
    h, err, iters = map(np.asarray, (h, err, iters))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    a.loglog(h, err, "o", ms=6, label="measured", zorder=3)
    hh = np.geomspace(h.min(), h.max(), 50)
    c = np.mean(np.log(err) - order * np.log(h))  # the intercept of the least-squares line
    a.loglog(hh, np.exp(c) * hh ** order, "k--", lw=1, label=f"least-squares fit: slope {order:.2f}")
    a.loglog(hh, err.max() * (hh / h[np.argmax(err)]), ":", c="gray", lw=1, label="first order (slope 1)")
    log_ticks(a.xaxis, h, exact=True)
    log_ticks(a.yaxis, np.concatenate([err, np.exp(c) * hh ** order]))
    a.set(xlabel="time step h", ylabel="relative L1 error vs exact kernel",
          title=f"error vs time step (order {order:.2f})")
    a.legend(fontsize=8)
    a.grid(alpha=0.3, which="both")
    b.plot(iters, err, "s-")
    b.set_yscale("log")
    b.margins(y=0.12)  # room for the h labels
    if iters.min() > 0 and iters.max() / iters.min() > 10:
        b.set_xscale("log")
        log_ticks(b.xaxis, iters)
        b.set_xlim(iters.min() / 1.3, iters.max() * 2.2)
    else:
        from matplotlib import ticker

        b.xaxis.set_major_locator(ticker.MaxNLocator(5, integer=True))
        span = max(float(np.ptp(iters)), 1.0)
        b.set_xlim(iters.min() - 0.08 * span, iters.max() + 0.3 * span)  # room for the h labels
    log_ticks(b.yaxis, err)
    for hi, ii, ei in zip(h, iters, err, strict=True):
        b.annotate(f"h = {hi:g}", (ii, ei), fontsize=8, xytext=(5, 3), textcoords="offset points")
    b.set(xlabel="total inner iterations (all steps)", ylabel="relative L1 error vs exact kernel",
          title="error vs cost")
    b.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def save_outputs(run, cfg, grid, state, ref, energies) -> None:
    """``densities.npz`` (the snapshots as densities, with the axes and times) and the plots."""
    v = grid.cell_volume
    axes = np.stack([a.cpu().numpy() for a in grid.axes])
    snaps = state["snaps"]
    run.save_arrays("densities", axes=axes, t=np.array([t for t, _ in snaps]),
                    rho=np.stack([(r / v).numpy() for _, r in snaps]))
    make_all(run, cfg, grid, state, ref, energies)
