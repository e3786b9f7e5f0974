"""Figures of a `wgf ot` run: geodesic vs mixture snapshots, convergence, entropic plans, maps,
Kantorovich duality."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.grid": False})


def _extent(grid):
    return [grid.lo[0], grid.hi[0], grid.lo[1], grid.hi[1]]


def geodesic(run, grid, times, idx, path, mixture, exact, summary, solver: str) -> None:
    """``plots/snapshots.png``: rows = the solver's geodesic, the exact plan's displacement
    interpolation (if computed) and the mixture, at the snapshot times; ``plots/profile.png``
    (1-D) or the midpoint cross-section (2-D)."""
    label = {"benamou_brenier": "Benamou-Brenier", "entropic": "entropic plan"}[solver]
    rows = [(label, path)] + ([("exact plan (POT)", exact)] if exact is not None else []) + [("mixture", mixture)]
    if grid.dim == 1:
        x = grid.axes[0].cpu().numpy()
        fig, axs = plt.subplots(1, len(rows), figsize=(4 * len(rows), 3.2), squeeze=False, sharey=True)
        xe = None
        if exact is not None:
            n = exact.shape[-1]
            xe = np.linspace(grid.lo[0], grid.hi[0], n + 1)[:-1] + (grid.hi[0] - grid.lo[0]) / (2 * n)
        for ax, (name, p) in zip(axs[0], rows, strict=True):
            xs = xe if (p is exact and xe is not None) else x
            for k in idx:
                ax.plot(xs, p[k].numpy(), label=f"t={times[k]:.2g}")
            ax.set_title(name)
            ax.set_xlabel("x")
        axs[0][0].set_ylabel("density")
        axs[0][-1].legend(fontsize=7)
        run.save_plot(fig, "snapshots")
        return
    fig, axs = plt.subplots(len(rows), len(idx), figsize=(2.1 * len(idx), 2.2 * len(rows)), squeeze=False)
    vmax = max(float(p[idx].max()) for _, p in rows)
    for r, (name, p) in enumerate(rows):
        ext = _extent(grid)
        for c, k in enumerate(idx):
            ax = axs[r][c]
            im = ax.imshow(p[k].numpy().T, origin="lower", extent=ext, cmap="magma", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t = {times[k]:.2g}")
            if c == 0:
                ax.set_ylabel(name)
    fig.colorbar(im, ax=axs.ravel().tolist(), shrink=0.7, label="density")
    w = summary.get("w2sq")
    ref = summary.get("w2sq_reference")
    fig.suptitle(f"W2 geodesic vs mixture: W2^2 = {w:.5g}" + (f" (closed form {ref:.5g})" if ref else ""))
    run.save_plot(fig, "snapshots")
    # the midpoint, cross-section through its maximum
    k = idx[len(idx) // 2]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    j = int(np.unravel_index(int(np.argmax(path[k].numpy())), path[k].shape)[1])
    x = grid.axes[0].cpu().numpy()
    ax.plot(x, path[k].numpy()[:, j], label=label)
    ax.plot(x, mixture[k].numpy()[:, j], label="mixture", ls="--")
    ax.set_xlabel("x (row through the geodesic's maximum)")
    ax.set_ylabel("density")
    ax.set_title(f"t = {times[k]:.2g}")
    ax.legend()
    run.save_plot(fig, "profile")


def convergence(run, rows, ref) -> None:
    """``plots/convergence.png``: W2^2 estimate and splitting mismatch per iteration."""
    rows = [r for r in rows if "residual" in r]
    if not rows:
        return
    it = np.array([r["step"] for r in rows])
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.2))
    w = np.array([r["w2sq"] for r in rows])
    if ref:
        axs[0].semilogy(it, np.abs(w / ref - 1) + 1e-16)
        axs[0].set_ylabel("|W2^2 / closed form - 1|")
    else:
        axs[0].plot(it, w)
        axs[0].set_ylabel("W2^2 estimate")
    axs[1].semilogy(it, [r["residual"] for r in rows], label="|V - I(U)| / |V|")
    axs[1].semilogy(it, [max(r["change"], 1e-300) for r in rows], label="relative change of the iterate")
    axs[1].legend()
    for ax in axs:
        ax.set_xlabel("Douglas-Rachford iteration")
    run.save_plot(fig, "convergence")


def plans(run, x, a, b, eps_list, plan_list, exact, rows, w2) -> None:
    """``plots/plans.png`` (the exact plan and one image per eps) and ``plots/divergence.png``."""
    count = len(eps_list) + 1
    fig, axs = plt.subplots(1, count, figsize=(2.8 * count, 3.0), squeeze=False)
    ext = [x[0], x[-1], x[0], x[-1]]
    panels = [("exact", exact)] + [(f"eps = {e:g}", p) for e, p in zip(eps_list, plan_list, strict=True)]
    for ax, (name, p) in zip(axs[0], panels, strict=True):
        ax.imshow(p.T, origin="lower", extent=ext, cmap="Blues", vmin=0)
        ax.set_title(name)
        ax.set_xlabel("x (source)")
    axs[0][0].set_ylabel("y (target)")
    run.save_plot(fig, "plans")
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.2))
    axs[0].plot(x, a, label="source")
    axs[0].plot(x, b, label="target")
    axs[0].set_xlabel("x")
    axs[0].set_ylabel("density")
    axs[0].legend()
    e = np.array(eps_list)
    axs[1].loglog(e, [r["sinkhorn_divergence"] for r in rows], "o-", label="Sinkhorn divergence S_eps")
    axs[1].loglog(e, [r["entropic_value"] for r in rows], "s-", label="entropic cost OT_eps")
    axs[1].loglog(e, [r["transport_cost"] for r in rows], "^-", label="<P_eps, C>")
    axs[1].axhline(w2, color="k", ls="--", label="W2^2 (quantiles)")
    axs[1].set_xlabel("eps")
    axs[1].legend(fontsize=7)
    run.save_plot(fig, "divergence")


def maps(run, grid, a, b, pts, t_pot, t_bar, t_ref, u) -> None:
    """``plots/map.png``: the densities and the map's displacement field (potential,
    barycentric, closed form); ``plots/potential.png``."""
    if grid.dim == 1:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        x = pts[:, 0].numpy()
        ax.plot(x, t_pot[:, 0].numpy(), label="x - u'(x)/2")
        ax.plot(x, t_bar[:, 0].numpy(), ".", label="barycentric", ms=3)
        if t_ref is not None:
            ax.plot(x, t_ref[:, 0].numpy(), "--", label="affine (closed form)")
        ax.set_xlabel("x")
        ax.set_ylabel("T(x)")
        ax.legend()
        run.save_plot(fig, "map")
        return
    mask = (a.reshape(-1) > 2e-2 * float(a.max())).numpy()
    step = max(1, grid.shape[0] // 12)
    ii = np.arange(grid.size).reshape(grid.shape)[::step, ::step].reshape(-1)
    sel = ii[mask[ii]]
    fields = [("potential: x - grad u / 2", t_pot), ("barycentric projection", t_bar)]
    if t_ref is not None:
        fields.append(("affine closed form", t_ref))
    fig, axs = plt.subplots(1, len(fields), figsize=(3.4 * len(fields), 3.4), squeeze=False)
    for ax, (name, T) in zip(axs[0], fields, strict=True):
        ax.imshow((a + b).numpy().T, origin="lower", extent=_extent(grid), cmap="Greys", alpha=0.6)
        p = pts[sel].numpy()
        d = (T[sel] - pts[sel]).numpy()
        ax.quiver(p[:, 0], p[:, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1, width=0.004,
                  color="tab:blue")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    run.save_plot(fig, "map")
    fig, ax = plt.subplots(figsize=(4, 3.4))
    im = ax.imshow(u.reshape(grid.shape).numpy().T, origin="lower", extent=_extent(grid), cmap="viridis")
    fig.colorbar(im, ax=ax, label="u = v^c")
    ax.set_title("Kantorovich potential")
    run.save_plot(fig, "potential")


def duality(run, x, y, a, b, plan, values) -> None:
    """``plots/duality.png``: the plan's edges between the clouds and the dual ascent."""
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.6))
    p = plan.plan.numpy()
    i, j = np.nonzero(p > 1e-12)
    xs, ys = x.numpy(), y.numpy()
    d = xs.shape[1]
    if d == 1:
        xs = np.c_[xs, np.zeros(len(xs))]
        ys = np.c_[ys, np.ones(len(ys))]
    for k in range(len(i)):
        axs[0].plot([xs[i[k], 0], ys[j[k], 0]], [xs[i[k], 1], ys[j[k], 1]], color="0.6", lw=0.5,
                    alpha=min(1.0, 0.3 + p[i[k], j[k]] / p.max()))
    axs[0].scatter(xs[:, 0], xs[:, 1], s=60 * a.numpy() * len(xs), label="source", zorder=3)
    axs[0].scatter(ys[:, 0], ys[:, 1], s=60 * b.numpy() * len(ys), label="target", zorder=3)
    axs[0].set_title("optimal plan (ot.emd)")
    axs[0].legend(fontsize=7)
    axs[1].plot(np.arange(1, len(values) + 1), values, "o-", label="dual value, alternating c-transforms")
    axs[1].axhline(plan.cost, color="k", ls="--", label="primal <P, C>")
    axs[1].set_xlabel("c-transform")
    axs[1].legend(fontsize=7)
    run.save_plot(fig, "duality")
