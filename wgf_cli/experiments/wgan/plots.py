"""Figures of `wgf wgan`: samples over time with the critic's contour, metric curves, the
critic-weight histogram, the neuron / generator clouds, the oscillation and the Dirac-GAN
phase portrait."""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def make_train_plots(run, cfg, data, results, ref) -> None:
    """The figures of ``task=train`` from the seeds' :class:`~wgf_cli.gan.protocol.SeedResult`
    (samples, critic weights and clouds, oscillation: the first seed; metrics: all)."""
    first = results[0]
    _samples(run, cfg, data, first, ref)
    _metrics(run, results)
    if first.weights is not None:
        _weights(run, cfg, first)
        _clouds(run, cfg, data, first)
    _oscillation(run, data, first)


def _samples(run, cfg, data, res, ref) -> None:
    plt = _plt()
    snaps = res.snaps
    R = float(cfg.output.plot_range)
    fig, axes = plt.subplots(1, len(snaps), figsize=(3.8 * len(snaps), 3.6), squeeze=False,
                             layout="constrained")
    ax_grid = np.linspace(-R, R, int(cfg.output.grid))
    for ax, snap in zip(axes[0], snaps, strict=True):
        x = snap["samples"]
        if data.dim == 2:
            if "critic" in snap:
                ax.contourf(ax_grid, ax_grid, snap["critic"].T, levels=20, cmap="coolwarm", alpha=0.6)
            ax.scatter(ref[:1000, 0], ref[:1000, 1], s=2, c="k", alpha=0.3, label="data")
            ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:orange", alpha=0.6, label="generated")
            ax.set_xlim(-R, R)
            ax.set_ylim(-R, R)
            ax.set_aspect("equal")
            ax.set(xlabel="x1", ylabel="x2")
        else:
            bins = np.linspace(-R, R, 121)
            ax.set(xlabel="x", ylabel="density")
            ax.hist(ref[:, 0], bins=bins, density=True, color="k", alpha=0.3, label="data", histtype="stepfilled")
            ax.hist(x[:, 0], bins=bins, density=True, color="tab:orange", alpha=0.6, label="generated",
                    histtype="stepfilled")
            if "critic" in snap:
                tw = ax.twinx()
                tw.plot(ax_grid, snap["critic"], color="tab:blue", lw=1)
                tw.set_ylabel("critic D(x)", color="tab:blue")
        ax.set_title(f"iteration {snap['iter']}")
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=3)
    fig.suptitle(f"{cfg.loss.name} on {data.name}: generated samples and critic (seed {res.seed})")
    run.save_plot(fig, "samples")


def _metrics(run, results) -> None:
    plt = _plt()
    panels = [("w1", "W1 (exact)"), ("w2", "W2 (exact)"), ("critic_w1_estimate", "critic estimate"),
              ("modes_covered", "modes covered"), ("hq_fraction", "high-quality fraction"),
              ("reverse_kl", "reverse KL"), ("clip_boundary_fraction", "params at +-c")]
    present = [(k, t) for k, t in panels if any(r.get(k) is not None for r in results[0].rows)]
    groups = [["w1", "w2", "critic_w1_estimate"], ["modes_covered"], ["hq_fraction"], ["reverse_kl"],
              ["clip_boundary_fraction"]]
    groups = [[k for k in g if k in dict(present)] for g in groups]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.2), squeeze=False,
                             layout="constrained")
    names = dict(present)
    ylabels = {"w1": "distance to the data", "modes_covered": "modes", "hq_fraction": "fraction of samples",
               "reverse_kl": "KL (nats)", "clip_boundary_fraction": "fraction of parameters"}
    for ax, group in zip(axes[0], groups, strict=True):
        for key in group:
            for i, res in enumerate(results):
                it = [r["iter"] for r in res.rows]
                v = [np.nan if r.get(key) is None else r[key] for r in res.rows]
                ax.plot(it, v, lw=1, label=names[key] if i == 0 else None,
                        color=f"C{group.index(key)}", alpha=1.0 if len(results) == 1 else 0.6)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabels.get(group[0], "distance to the data"))
        if key in ("w1", "w2", "critic_w1_estimate") and len(group) > 1:
            ax.set_yscale("symlog", linthresh=1e-2)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"metrics ({len(results)} seed{'s' if len(results) > 1 else ''})")
    run.save_plot(fig, "metrics")


def _weights(run, cfg, res) -> None:
    plt = _plt()
    w = res.weights
    fig, ax = plt.subplots(figsize=(5, 3.2))
    c = float(cfg.loss.clip) if cfg.loss.name == "wgan_clip" else None
    ax.hist(w, bins=101, color="tab:blue", range=(-c * 1.05, c * 1.05) if c else None, histtype="stepfilled")
    if c:
        for s in (-c, c):
            ax.axvline(s, color="r", lw=1, ls="--")
        frac = float(np.mean(np.abs(w) >= c * (1 - 1e-6)))
        ax.set_title(f"critic parameters: {100 * frac:.1f}% at +-c (c={c:g})")
    else:
        ax.set_title("critic parameters")
    ax.set_yscale("log")
    ax.set_xlabel("parameter value")
    ax.set_ylabel("count")
    run.save_plot(fig, "weights")


def _clouds(run, cfg, data, res) -> None:
    plt = _plt()
    snaps = [s for s in res.snaps if "cloud" in s]
    fig, axes = plt.subplots(2, len(snaps), figsize=(3.4 * len(snaps), 6.6), squeeze=False,
                             layout="constrained")
    c = float(cfg.loss.clip) if cfg.loss.name == "wgan_clip" else None
    R = float(cfg.output.plot_range)
    vmax = max(float(np.abs(s["cloud"][:, -1]).max()) for s in snaps) or 1.0
    sc = None
    for j, snap in enumerate(snaps):
        cl = snap["cloud"]  # (H, d + 2): w, b, a
        ax = axes[0][j]
        # 2-D data: the incoming weights (w1, w2); 1-D: (w, b)
        sc = ax.scatter(cl[:, 0], cl[:, 1], c=cl[:, -1], s=6, cmap="coolwarm", vmin=-vmax, vmax=vmax)
        ax.set_xlabel("w1")
        ax.set_ylabel("w2" if data.dim == 2 else "b")
        if c:
            ax.plot([-c, c, c, -c, -c], [-c, -c, c, c, -c], "k--", lw=0.8)
            ax.set_xlim(-1.3 * c, 1.3 * c)
            ax.set_ylim(-1.3 * c, 1.3 * c)
        ax.set_title(f"critic neurons, iteration {snap['iter']}", fontsize=9)
        ax = axes[1][j]
        x = snap["samples"]
        if data.dim == 2:
            ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:orange")
            ax.set_xlim(-R, R)
            ax.set_ylim(-R, R)
            ax.set_aspect("equal")
            ax.set(xlabel="x1", ylabel="x2")
        else:
            ax.hist(x[:, 0], bins=np.linspace(-R, R, 121), color="tab:orange", histtype="stepfilled")
            ax.set(xlabel="x", ylabel="count")
        ax.set_title("generator outputs", fontsize=9)
    fig.colorbar(sc, ax=axes[0].tolist(), label="a (outgoing weight)", shrink=0.8)
    fig.suptitle("mean-field view: first-layer critic neurons (w, b, a) and the generator cloud")
    run.save_plot(fig, "clouds")


def _oscillation(run, data, res) -> None:
    plt = _plt()
    tr = res.track
    osc = res.oscillation
    n = 3 if len(tr.get("hist", [])) else 2
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.2), layout="constrained")
    for j in range(tr["mean"].shape[1]):
        axes[0].plot(tr["iter"], tr["mean"][:, j], lw=1, label=f"gen mean[{j}]")
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("generator mean")
    axes[0].legend(fontsize=7)
    axes[0].set_title("periodic: period %s" % (f"{osc.period:.0f}" if osc.periodic else "none"))
    if len(osc.spectrum_freq):
        axes[1].semilogy(osc.spectrum_freq[1:], osc.spectrum_power[1:] + 1e-30)
        axes[1].set_xlabel("frequency (1/iteration)")
        axes[1].set_ylabel("power")
        axes[1].set_title(f"spectrum (last window), peak share {osc.peak_share:.2f}")
    else:
        axes[1].set_axis_off()
        axes[1].text(0.5, 0.5, "no spectrum: run too short", ha="center", va="center",
                     transform=axes[1].transAxes)
    if n == 3:
        h = tr["hist"]
        axes[2].stackplot(tr["iter"], h.T, lw=0)
        axes[2].set_xlabel("iteration")
        axes[2].set_ylim(0, 1)
        axes[2].set_ylabel("share of samples per mode")
        axes[2].set_title("mode-assignment histogram")
    run.save_plot(fig, "oscillation")


def phase_portrait(run, c, h, free, clipped, sim, alt, measured, every) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2))
    lim = 1.15 * max(np.abs(sim.theta).max(), np.abs(sim.psi).max(), np.abs(free.theta).max())
    g = np.linspace(-lim, lim, 200)
    TH, PS = np.meshgrid(g, g)
    for ax in axes:
        ax.contour(TH, PS, TH**2 + PS**2, levels=12, colors="0.8", linewidths=0.6)
        ax.set_xlabel(r"$\theta$ (generator)")
        ax.set_ylabel(r"$\psi$ (critic)")
        ax.set_aspect("equal")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax = axes[0]
    ax.plot(free.theta[::every, 0], free.psi[::every, 0], "k", lw=1.2, label="gradient flow (circle)")
    ax.plot(sim.theta[:, 0], sim.psi[:, 0], "-o", ms=2, lw=0.8, color="tab:red",
            label=f"simultaneous steps h={h:g} (spiral out)")
    ax.plot(alt.theta[:, 0], alt.psi[:, 0], "-o", ms=2, lw=0.8, color="tab:green",
            label="alternating steps (bounded)")
    ax.plot([0], [0], "k*", ms=8)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("WGAN Dirac-GAN: level sets of $\\theta^2+\\psi^2$")
    ax = axes[1]
    lim = 1.15 * max(np.abs(clipped.theta).max(), c)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.axhspan(c, lim, color="0.9")
    ax.axhspan(-lim, -c, color="0.9")
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(c * np.cos(t), c * np.sin(t), "r--", lw=1.2, label=f"limit cycle, radius c={c:g}")
    for j in range(clipped.theta.shape[1]):
        ax.plot(clipped.theta[::every, j], clipped.psi[::every, j], lw=1, color=f"C{j}")
        ax.plot(clipped.theta[0, j], clipped.psi[0, j], "o", ms=4, color=f"C{j}")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(r"$\psi$ clipped to $[-c, c]$: orbits outside radius c reach the cycle")
    run.save_plot(fig, "phase_portrait")


def twopoint_portrait(run, p, c, clipped, dirac, orbit_th, orbit_om, outside, every) -> None:
    """Left: the Dirac-GAN with ψ clipped (circles, limit circle of radius c).  Right: the
    two-point GAN: contours of H = ω²/2 + V(θ), the clipped limit orbit H = H_c, the box."""
    from wgf_cli.gan import twopoint as Tp

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    ts = Tp.theta_star(p)
    lim_th = 1.1 * max(np.abs(clipped.theta - ts).max(), np.abs(dirac.theta).max(), 1.0)
    lim_om = 1.3 * max(np.abs(clipped.psi).max(), c)
    for ax, title in zip(axes, [r"Dirac-GAN: $\theta^2+\psi^2$, $\psi$ clipped to $[-c, c]$",
                                r"two-point GAN: $H=\omega^2/2+V(\theta)$, $\omega$ clipped"], strict=True):
        ax.axhspan(c, lim_om, color="0.9")
        ax.axhspan(-lim_om, -c, color="0.9")
        ax.set_ylim(-lim_om, lim_om)
        ax.set_title(title, fontsize=10)
    ax = axes[0]
    g_th = np.linspace(-lim_th, lim_th, 300)
    g_om = np.linspace(-lim_om, lim_om, 200)
    TH, OM = np.meshgrid(g_th, g_om)
    ax.contour(TH, OM, TH**2 + OM**2, levels=14, colors="0.7", linewidths=0.6)
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(c * np.cos(t), c * np.sin(t), "r--", lw=1.5, label=f"limit cycle: radius c={c:g}")
    for j in range(dirac.theta.shape[1]):
        ax.plot(dirac.theta[::every, j], dirac.psi[::every, j], lw=1, color=f"C{j}")
        ax.plot(dirac.theta[0, j], dirac.psi[0, j], "o", ms=4, color=f"C{j}")
    ax.set_xlim(-lim_th, lim_th)
    ax.set_xlabel(r"$\theta$ (generator: $\delta_\theta$)")
    ax.set_ylabel(r"$\psi$ (critic $\psi x$)")
    ax.legend(fontsize=7, loc="upper right")
    ax = axes[1]
    g_th = np.linspace(ts - lim_th, ts + lim_th, 300)
    TH, OM = np.meshgrid(g_th, g_om)
    H = Tp.first_integral(TH, OM, p)
    levels = np.quantile(H, np.linspace(0.02, 0.9, 16))
    ax.contour(TH, OM, H, levels=np.unique(levels), colors="0.7", linewidths=0.6)
    ax.plot(orbit_th, orbit_om, "r--", lw=1.5, label=rf"limit orbit $H = c^2/2 + V(\theta^*)$, c={c:g}")
    for j in range(clipped.theta.shape[1]):
        ax.plot(clipped.theta[::every, j], clipped.psi[::every, j], lw=1, color=f"C{j}",
                ls="-" if outside[j] else ":")
        ax.plot(clipped.theta[0, j], clipped.psi[0, j], "o", ms=4, color=f"C{j}")
    ax.plot([ts], [0], "k*", ms=8)
    ax.set_xlim(ts - lim_th, ts + lim_th)
    ax.set_xlabel(r"$\theta$ (generator: $w(\theta)\delta_{-1} + (1-w(\theta))\delta_{+1}$)")
    ax.set_ylabel(r"$\omega$ (critic $\omega x$)")
    ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"clipped critics: every orbit outside the limit orbit reaches it in finite time (p={p:g})")
    run.save_plot(fig, "twopoint")


def vanishing_plot(run, df, lam) -> None:
    """JS and W1 between the segments at distance θ (closed form, trained) and the generator
    gradient each gives."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    th = np.linspace(df.theta.min(), df.theta.max(), 401)
    ax = axes[0]
    neg, pos = th[th < 0], th[th > 0]
    for half, label in ((neg, "JS (closed form): log 2 for θ ≠ 0, 0 at θ = 0"), (pos, None)):
        ax.plot(half, np.full_like(half, np.log(2)), color="tab:red", lw=1.5, label=label)
    ax.plot([0], [0], "o", color="tab:red", ms=5)
    ax.plot(th, np.abs(th), color="tab:blue", lw=1.5, label="W1 = |θ| (closed form)")
    ax.plot(th, np.abs(th) + th**2 / (2 * lam), color="tab:blue", lw=0.8, ls="--",
            label=f"WGAN-GP optimum |θ| + θ²/(2λ), λ={lam:g}")
    ax.plot(df.theta, df.gan_estimate, "s", color="tab:red", label="trained discriminator: (value + log 4)/2")
    ax.plot(df.theta, df.wgan_gp_estimate, "o", color="tab:blue", label="trained WGAN-GP critic: E_P f - E_Q f")
    ax.set_xlabel("θ (distance between the lines)")
    ax.set_title("divergence between P_0 and P_θ")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(th, np.zeros_like(th), color="tab:red", lw=1.5, label="d JS / dθ = 0 (closed form)")
    for half, label in ((neg, "d W1 / dθ = sign θ (closed form)"), (pos, None)):
        ax.plot(half, np.sign(half), color="tab:blue", lw=1.5, label=label)
        ax.plot(half, np.sign(half) * (1 + np.abs(half) / (2 * lam)), color="tab:blue", lw=0.8, ls="--",
                label=None if label is None else "penalised optimum: sign θ (1 + |θ|/(2λ))")
    ax.plot(df.theta, df.gan_grad, "s", color="tab:red", label="through the trained discriminator")
    ax.plot(df.theta, df.wgan_gp_grad, "o", color="tab:blue", label="through the trained WGAN-GP critic")
    ax.set_xlabel("θ")
    ax.set_title("gradient the generator receives")
    ax.legend(fontsize=7)
    fig.suptitle("parallel lines: the original GAN's gradient vanishes, the Wasserstein gradient does not")
    run.save_plot(fig, "vanishing")


def twospecies_figure(run, base, study, speeds) -> None:
    """Width study (W2 curves per width, distance to the reference against the width with the
    fitted rate) and critic-speed study (W2 curves and generator means per critic speed)."""
    from wgf_cli.gan.two_species import data_quadrature

    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2), layout="constrained")
    ax = axes[0]
    for k, (m, r) in enumerate(sorted(study.runs.items())):
        ax.plot(r.times, r.w2, color=plt.cm.viridis(k / max(1, len(study.runs) - 1)), lw=1, label=f"m = {m}")
    ax.plot(study.reference.times, study.reference.w2, "k--", lw=1.5, label=f"reference m = {study.reference_width}")
    ax.set_xlabel("t")
    ax.set_ylabel(r"$W_2(\mu_t, \nu)$")
    ax.set_title("training curves by width (first seed)", fontsize=10)
    ax.legend(fontsize=7)
    ax = axes[1]
    w = np.asarray(study.widths, float)
    for j in range(study.distances.shape[1]):
        ax.plot(w, study.distances[:, j], "o", color="0.6", ms=3, label="seeds" if j == 0 else None)
    ax.plot(w, study.distances.mean(1), "ko", ms=5, label="mean over seeds")
    fit = np.exp(np.log(study.distances.mean(1)).mean() + study.slope * (np.log(w) - np.log(w).mean()))
    ax.plot(w, fit, "r-", lw=1.2, label=f"slope {study.slope:.2f} [{study.slope_ci[0]:.2f}, {study.slope_ci[1]:.2f}]")
    ax.plot(w, fit[0] * (w / w[0]) ** -0.5, "b:", lw=1, label="$m^{-1/2}$ (CLT)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(w, [str(int(v)) for v in w])
    ax.minorticks_off()
    ax.set_xlabel("generator width m (critic n = ratio m)")
    ax.set_ylabel("RMS distance of the curves to the reference")
    ax.set_title("distance to the mean-field limit", fontsize=10)
    ax.legend(fontsize=7)
    ax = axes[2]
    for k, r in enumerate(speeds):
        ax.plot(r.run.times, r.run.w2, color=f"C{k}", lw=1, label=rf"$\eta$ = {r.critic_speed:g}")
    ax.set_xlabel("t")
    ax.set_ylabel(r"$W_2(\mu_t, \nu)$")
    ax.set_title(r"critic speed $\eta$: slow oscillates, fast settles", fontsize=10)
    ax.legend(fontsize=7)
    ax = axes[3]
    y = data_quadrature(base)
    ax.hist(y, bins=60, density=True, color="0.8", label=r"data $\nu$")
    ax.hist(study.reference.particles, bins=60, density=True, histtype="step", color="k",
            label=f"generator at T, m = {study.reference_width}")
    ax.set_xlabel("x")
    ax.set_title("generated distribution at the end", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle("WGAN as two particle populations: the mean-field limit in the widths")
    run.save_plot(fig, "twospecies")
