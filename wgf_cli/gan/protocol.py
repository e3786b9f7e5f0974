"""One seed of the GAN protocol: build the networks, train, evaluate, detect the dynamics.

:func:`train_seed` is the whole per-seed loop of ``wgf wgan task=train``: it seeds PyTorch,
builds the MLP generator and critic, trains them with :class:`~wgf_cli.gan.trainer.GANTrainer`
and every ``eval.every`` iterations scores the generator (exact W1/W2 to fresh data, PacGAN
mode metrics, the critic's own W1 estimate, clipping statistics) on fixed latent noise; every
``eval.track_every`` iterations it records the generator mean and mode histogram, from which
the oscillation, mode-collapse and mode-hopping flags of the seed are computed at the end.
:func:`summarize_seeds` reduces several seeds to means, standard errors and worst seeds
(:func:`seed_statistics`).

The noise and data of the evaluations come from their own generators (seeded ``10_000 +
seed``, ``20_000 + seed``, ``30_000 + seed``), so evaluating never changes the training run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wgf_cli.gan import metrics as M
from wgf_cli.gan.data import ToyData
from wgf_cli.gan.models import critic_net, flat_parameters, generator_net, neuron_cloud
from wgf_cli.gan.trainer import GANTrainer, TrainConfig

#: ``callback(iteration, row)``: called at iteration 0 and after every training iteration;
#: ``row`` is the evaluation row at evaluation iterations, else ``None``
Callback = Callable[[int, "dict[str, Any] | None"], None]


@dataclass
class NetConfig:
    """An MLP: ``depth`` hidden layers of ``hidden`` units with ``activation``."""

    hidden: int = 512
    depth: int = 3
    activation: str = "relu"


@dataclass
class EvalConfig:
    """What is measured, how often, and the thresholds of the dynamics flags.

    Attributes:
        every: iterations between evaluations (the last iteration is always evaluated).
        samples: generated and fresh data samples per evaluation.
        track_every: iterations between points of the generator-mean / mode-histogram series.
        hq_threshold: a sample is high quality within this many stds of its nearest mode.
        min_count: high-quality samples a mode needs to count as covered.
        collapse_share: mode collapse: a mode holds less than this share of its fair share.
        oscillation_window: analysed last fraction of the tracked series.
        oscillation_min_amplitude: see :func:`~wgf_cli.gan.metrics.detect_oscillation`.
        oscillation_min_peak_share: see :func:`~wgf_cli.gan.metrics.detect_oscillation`.
        oscillation_min_cycles: see :func:`~wgf_cli.gan.metrics.detect_oscillation`.
    """

    every: int = 250
    samples: int = 2500
    track_every: int = 10
    hq_threshold: float = 3.0
    min_count: int = 1
    collapse_share: float = 0.2
    oscillation_window: float = 0.5
    oscillation_min_amplitude: float = 0.05
    oscillation_min_peak_share: float = 0.3
    oscillation_min_cycles: float = 2.0


@dataclass
class ProtocolConfig:
    """Everything :func:`train_seed` needs besides the data and the seed.

    Attributes:
        train: the trainer's hyper-parameters (``train.iterations`` is the run length).
        generator: the generator MLP.
        critic: the critic MLP (unused for the critic-free ``sinkhorn`` loss).
        data_scale: the MLPs work on ``x / data_scale``; ``None``: :func:`data_scale` of the data.
        eval: the evaluation schedule and thresholds.
        ema_decay: > 0: the headline metrics score the weight average of this decay (the
            trained generator under the prefix ``raw_``); 0: the trained generator.
        ema_compare: more decays scored beside it (prefix ``ema<decay>_``).
        snapshots: sample / critic / neuron-cloud snapshots kept (``keep_snapshots``).
        plot_range: the critic snapshots cover ``[-plot_range, plot_range]^d``.
        grid: points per axis of the critic snapshots.
    """

    train: TrainConfig
    generator: NetConfig = field(default_factory=NetConfig)
    critic: NetConfig = field(default_factory=NetConfig)
    data_scale: float | None = 1.0
    eval: EvalConfig = field(default_factory=EvalConfig)
    ema_decay: float = 0.0
    ema_compare: tuple[float, ...] = ()
    snapshots: int = 4
    plot_range: float = 3.0
    grid: int = 128

    @property
    def iterations(self) -> int:
        """Generator iterations of the run (``train.iterations``)."""
        return self.train.iterations

    def generators(self) -> tuple[int | None, dict[str, int | None]]:
        """The generator the headline metrics score and the others scored beside it.

        Returns:
            The headline generator (``None``: the trained one, ``k``: ``GANTrainer.G_ema[k]``) and
                the others by key prefix (``raw_``, ``ema<decay>_``).
        """
        head = 0 if self.ema_decay > 0 else None
        others: dict[str, int | None] = {"raw_": None} if self.ema_decay > 0 else {}
        for k, d in enumerate(self.ema_compare):
            others[f"ema{d:g}_"] = k + (1 if self.ema_decay > 0 else 0)
        return head, others


@dataclass
class SeedResult:
    """One trained seed.

    Attributes:
        seed: the seed.
        rows: the evaluation rows (``iter, seed, w1, w2, ...``), first at iteration 0.
        snaps: snapshots ``{"iter", "samples"[, "critic", "cloud"]}`` (empty unless kept).
        samples: the final ``eval.samples`` generated samples (float64, numpy).
        track: ``iter``, ``mean`` (and ``hist`` for data with modes) series, numpy arrays.
        wall_s: wall time of the seed (training and evaluation).
        state: :meth:`GANTrainer.state_dict` at the end.
        weights: the critic's flat parameters at the end (``None`` without a critic).
        oscillation: the oscillation analysis of the generator mean.
        collapse: some mode holds less than ``eval.collapse_share`` of its fair share.
        hopping: the dominant mode changed within the analysed window.
    """

    seed: int
    rows: list[dict[str, Any]]
    snaps: list[dict[str, Any]]
    samples: np.ndarray
    track: dict[str, np.ndarray]
    wall_s: float
    state: dict[str, Any]
    weights: np.ndarray | None
    oscillation: M.Oscillation
    collapse: bool
    hopping: bool


@dataclass
class SeedStatistics:
    """Mean, standard error and worst value over seeds (``None`` values and NaNs dropped).

    Attributes:
        mean: the mean (``None`` when no finite value).
        se: ``std(ddof=1) / sqrt(count)`` (``None`` below two finite values).
        worst: ``min`` or ``max`` of the values as asked (``None`` when not asked or no value).
        count: finite values used.
    """

    mean: float | None
    se: float | None
    worst: float | None
    count: int


def seed_statistics(values: list[float | None], worst: str | None = None) -> SeedStatistics:
    """Reduce per-seed values to :class:`SeedStatistics`.

    Args:
        values: one value per seed; ``None`` and non-finite values are left out.
        worst: ``"min"`` or ``"max"``: which end is the worst seed; ``None``: not computed.

    Returns:
        The mean, the standard error of the mean, the worst value and the count.
    """
    if worst not in (None, "min", "max"):
        raise ValueError(f"worst must be None, 'min' or 'max', got {worst!r}")
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return SeedStatistics(None, None, None, 0)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    low = None if worst is None else float(min(v.tolist()) if worst == "min" else max(v.tolist()))
    return SeedStatistics(float(v.mean()), se, low, int(v.size))


def data_scale(data: ToyData) -> float:
    """The ``auto`` scale of the MLPs: the RMS norm per coordinate of the mode centres.

    Data without modes (the swiss roll) use 10,000 samples instead of the centres.
    """
    if data.centres is not None:
        return float(data.centres.pow(2).mean().sqrt())
    x = data.sample(10_000, torch.Generator().manual_seed(0), dtype=torch.float64)
    return float(x.pow(2).mean().sqrt())


def critic_grid(plot_range: float, size: int, dim: int, device: str | torch.device,
                dtype: torch.dtype) -> tuple[torch.Tensor, np.ndarray]:
    """The points of the critic snapshots and their axis.

    ``size`` points per axis on ``[-plot_range, plot_range]``; in 2-D ``D(points).reshape(size, size)[i,
    j] = D(x_i, y_j)``.
    """
    ax = torch.linspace(-plot_range, plot_range, size, dtype=torch.float64)
    pts = ax[:, None] if dim == 1 else torch.cartesian_prod(ax, ax)
    return pts.to(device=device, dtype=dtype), ax.numpy()


def dynamics(data: ToyData, ev: EvalConfig, track: dict[str, np.ndarray],
             final_x: np.ndarray) -> tuple[M.Oscillation, bool, bool]:
    """Oscillation, mode-collapse and mode-hopping flags of one seed.

    Args:
        data: the target (its mode centres, if any, give the collapse / hopping flags).
        ev: the thresholds.
        track: the tracked ``iter``, ``mean`` and (with modes) ``hist`` series.
        final_x: the final generated samples.

    Returns:
        ``(oscillation, collapse, hopping)``; without modes both flags are ``False``.
    """
    osc = M.detect_oscillation(track["iter"], track["mean"], window=float(ev.oscillation_window),
                               min_amplitude=float(ev.oscillation_min_amplitude),
                               min_peak_share=float(ev.oscillation_min_peak_share),
                               min_cycles=float(ev.oscillation_min_cycles))
    if data.centres is None:
        return osc, False, False
    mm = M.mode_metrics(final_x, data.centres, data.std, float(ev.hq_threshold), int(ev.min_count))
    collapse = M.mode_collapse(mm, float(ev.collapse_share))
    hist = track["hist"]
    start = int(len(hist) * (1 - float(ev.oscillation_window)))
    dominant = hist[start:].argmax(1)
    # hopping: the mode holding most (> 3/4) of the samples changes within the window
    major = hist[start:].max(1) > 0.75
    return osc, collapse, bool(len(set(dominant[major].tolist())) > 1)


def train_seed(data: ToyData, cfg: ProtocolConfig, seed: int, *, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32, keep_snapshots: bool = True,
               callback: Callback | None = None) -> SeedResult:
    """Train and evaluate one seed of the protocol.

    Seeds PyTorch's global generator with ``seed`` (the network initialisations), then trains
    for ``cfg.iterations`` iterations.

    Args:
        data: the target distribution.
        cfg: the protocol.
        seed: the seed of the networks, the trainer and the evaluation noise.
        device: where the networks live.
        dtype: their dtype.
        keep_snapshots: keep ``cfg.snapshots`` snapshots of samples, critic and neurons.
        callback: ``callback(iteration, row)`` at iteration 0 and after every iteration
            (``row``: the evaluation row, ``None`` between evaluations), e.g. to log metrics.

    Returns:
        The :class:`SeedResult`.
    """
    tcfg = cfg.train
    torch.manual_seed(seed)
    scale = data_scale(data) if cfg.data_scale is None else float(cfg.data_scale)
    g, c = cfg.generator, cfg.critic
    G = generator_net(tcfg.z_dim, data.dim, g.hidden, g.depth, g.activation, scale).to(device=device, dtype=dtype)
    D = None
    if tcfg.loss != "sinkhorn":
        D = critic_net(data.dim, c.hidden, c.depth, c.activation, scale).to(device=device, dtype=dtype)
    tr = GANTrainer(G, D, data, tcfg, seed=seed)
    ev = cfg.eval
    n_eval = int(ev.samples)
    z_eval = tr.noise(n_eval, torch.Generator().manual_seed(10_000 + seed))
    z_track = tr.noise(min(n_eval, 1000), torch.Generator().manual_seed(20_000 + seed))
    gen_eval_data = torch.Generator().manual_seed(30_000 + seed)
    iters = int(cfg.iterations)
    eval_at = sorted(set(range(0, iters + 1, int(ev.every))) | {iters})
    n_snap = int(cfg.snapshots)
    snap_at = sorted({eval_at[round(i * (len(eval_at) - 1) / max(n_snap - 1, 1))] for i in range(n_snap)})
    centres = data.centres
    track: dict[str, list] = {"iter": [], "mean": [], "hist": []}
    rows: list[dict[str, Any]] = []
    snaps: list[dict[str, Any]] = []
    last_stats = None
    clip_c = tcfg.clip if tcfg.loss == "wgan_clip" else None
    grid_pts, grid_axes = critic_grid(float(cfg.plot_range), int(cfg.grid), data.dim, device, dtype)
    head, others = cfg.generators()

    def do_track(it: int) -> None:
        x = tr.sample(z_track, head).double().cpu()
        track["iter"].append(it)
        track["mean"].append(x.mean(0).numpy())
        if centres is not None:
            d2 = torch.cdist(x, centres)
            track["hist"].append(np.bincount(d2.argmin(1).numpy(), minlength=data.n_modes) / len(x))

    def do_eval(it: int) -> dict[str, Any]:
        x = tr.sample(z_eval, head)
        y = data.sample(n_eval, gen_eval_data, device, dtype)
        row: dict[str, Any] = {"iter": it, "seed": seed,
                               "w1": M.wasserstein(x, y, 1), "w2": M.wasserstein(x, y, 2)}
        for prefix, idx in others.items():  # the trained generator / other averages, same z and data
            xo = tr.sample(z_eval, idx)
            row[f"{prefix}w1"] = M.wasserstein(xo, y, 1)
            if centres is not None:
                mo = M.mode_metrics(xo, centres, data.std, float(ev.hq_threshold), int(ev.min_count))
                row.update({f"{prefix}modes_covered": mo.modes_covered, f"{prefix}hq_fraction": mo.hq_fraction,
                            f"{prefix}reverse_kl": mo.reverse_kl})
        if D is not None:
            with torch.no_grad():
                est = float(D(y).mean() - D(x).mean())
            row["critic_w1_estimate"] = est if tcfg.loss in ("wgan_clip", "wgan_gp") else None
        if centres is not None:
            mm = M.mode_metrics(x, centres, data.std, float(ev.hq_threshold), int(ev.min_count))
            row.update(modes_covered=mm.modes_covered, hq_fraction=mm.hq_fraction, reverse_kl=mm.reverse_kl)
        if clip_c is not None:
            cs = M.clip_statistics(D, clip_c)
            row.update(clip_boundary_fraction=cs.boundary_fraction,
                       clip_corner_fraction=cs.corner_fraction, clip_face_fraction=cs.face_fraction)
        mean = x.double().mean(0).cpu().numpy()
        row.update({f"gen_mean_{j}": float(v) for j, v in enumerate(mean)})
        if last_stats is not None:
            row.update(generator_loss=last_stats.generator_loss, critic_loss=last_stats.critic_loss,
                       gp_penalty=last_stats.penalty, gp_grad_norm=last_stats.grad_norm)
        row["wall_s"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
        if keep_snapshots and it in snap_at:
            snap = {"iter": it, "samples": x[:1000].double().cpu().numpy()}
            if D is not None:
                with torch.no_grad():
                    snap["critic"] = D(grid_pts).double().cpu().numpy().reshape([len(grid_axes)] * data.dim)
                snap["cloud"] = neuron_cloud(D).numpy()
            snaps.append(snap)
        return row

    t0 = time.perf_counter()
    do_track(0)
    row0 = do_eval(0)
    if callback is not None:
        callback(0, row0)
    for it in range(1, iters + 1):
        last_stats = tr.step()
        if it % int(ev.track_every) == 0:
            do_track(it)
        row = do_eval(it) if it in eval_at else None
        if callback is not None:
            callback(it, row)
    final_x = tr.sample(z_eval, head).double().cpu().numpy()
    tracked = {k: np.asarray(v) for k, v in track.items()}
    wall = time.perf_counter() - t0
    weights = flat_parameters(D).numpy() if D is not None else None
    osc, collapse, hopping = dynamics(data, ev, tracked, final_x)
    return SeedResult(seed=seed, rows=rows, snaps=snaps, samples=final_x, track=tracked, wall_s=wall,
                      state=tr.state_dict(), weights=weights, oscillation=osc, collapse=collapse,
                      hopping=hopping)


#: headline keys of :func:`summarize_seeds` and the evaluation-row key they reduce
_KEYS = [("final_w1", "w1"), ("final_w2", "w2"), ("critic_w1_estimate", "critic_w1_estimate"),
         ("modes_covered", "modes_covered"), ("hq_fraction", "hq_fraction"), ("reverse_kl", "reverse_kl")]
#: the worst seed of these keys is the smallest (min) or the largest (max) value
WORST = {"final_w1": "max", "modes_covered": "min", "hq_fraction": "min", "reverse_kl": "max"}


def summarize_seeds(results: list[SeedResult], cfg: ProtocolConfig, n_modes: int | None = None) -> dict[str, Any]:
    """The final metrics of several seeds as one flat dictionary.

    For each headline key (``final_w1, final_w2, critic_w1_estimate, modes_covered,
    hq_fraction, reverse_kl``, and with generator averages the prefixed ``raw_*`` /
    ``ema<decay>_*`` versions of the keys in :data:`WORST`): the mean over seeds, with
    several seeds the standard error in ``<key>_se`` (not for the critic estimate), and the
    worst seed in ``<key>_worst``.  Then ``n_modes`` (data with modes), the clipping
    statistics (``wgan_clip``), the oscillation / collapse / hopping flags (any seed) and the
    mean final generator mean ``gen_mean_<j>``.

    Args:
        results: the seeds, from :func:`train_seed`.
        cfg: their protocol.
        n_modes: the data's number of modes, ``None`` for data without modes.

    Returns:
        The summary entries, in a fixed order.
    """
    finals = [r.rows[-1] for r in results]
    s: dict[str, Any] = {}
    _, others = cfg.generators()
    prefixed = [(p + k, p + r) for p in others for k, r in _KEYS if k in WORST]
    for out_key, row_key in [*_KEYS, *prefixed]:
        values = [f.get(row_key) for f in finals]
        base = out_key[len(next((p for p in others if out_key.startswith(p)), "")):]
        st = seed_statistics(values, WORST.get(base))
        s[out_key] = st.mean
        if len(results) > 1 and not out_key.endswith("critic_w1_estimate"):
            s[f"{out_key}_se"] = st.se
        if base in WORST:
            s[f"{out_key}_worst"] = st.worst
    if n_modes is not None:
        s["n_modes"] = n_modes
    if cfg.train.loss == "wgan_clip":
        s["clip"] = cfg.train.clip
        s["clip_boundary_fraction"] = seed_statistics([f["clip_boundary_fraction"] for f in finals]).mean
        s["clip_corner_fraction"] = seed_statistics([f["clip_corner_fraction"] for f in finals]).mean
        s["clip_boundary_max"] = max(r["clip_boundary_fraction"] for res in results for r in res.rows)
    else:
        s["clip_boundary_fraction"] = None
    oscs = [r.oscillation for r in results]
    periods = [o.period for o in oscs if o.period is not None]
    s["oscillation_period"] = float(np.mean(periods)) if periods else None
    s["oscillation_amplitude"] = float(np.mean([o.amplitude for o in oscs]))
    s["oscillating"] = any(o.periodic for o in oscs)
    s["mode_collapse"] = any(r.collapse for r in results)
    s["mode_hopping"] = any(r.hopping for r in results)
    s["unstable"] = s["oscillating"] or s["mode_collapse"] or s["mode_hopping"]
    for j, v in enumerate(np.mean([r.samples.mean(0) for r in results], axis=0)):
        s[f"gen_mean_{j}"] = float(v)
    return s
