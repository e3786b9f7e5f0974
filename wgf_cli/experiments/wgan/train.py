"""``wgf wgan task=train``: the config of a GAN run -> :mod:`wgf_cli.gan.protocol`, once per seed.

Every evaluation row goes to ``metrics.jsonl``; at the end ``samples.npz``,
``trajectory.npz``, ``seeds.csv``, ``checkpoints/last.pt`` (the models of the last seed), the
plots and ``summary.json`` (with several seeds the mean, the standard error and the worst seed).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C

log = logging.getLogger(__name__)

LOSSES = ["gan", "gan_ns", "wgan_clip", "wgan_gp", "sinkhorn"]
DATASETS = ["gauss2_1d", "ring8", "grid25", "swissroll", "ring8_pacgan", "grid25_pacgan"]
OPTIMIZERS = ["adam", "rmsprop", "sgd"]
ACTIVATIONS = ["relu", "leaky_relu", "tanh"]


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
def seeds_of(cfg: DictConfig) -> list[int]:
    seeds = C.get(cfg, "seeds")
    if seeds is None:
        return [C.integer(cfg, "seed", minimum=0)]
    if not isinstance(seeds, ListConfig | list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds must be null or a non-empty list of integers >= 0, got "
                          f"{OmegaConf.to_container(seeds) if isinstance(seeds, ListConfig) else seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must not repeat, got {list(seeds)}")
    return [int(s) for s in seeds]



def dev_seeds_of(cfg: DictConfig) -> list[int] | None:
    dev = C.get(cfg, "dev_seeds")
    if dev is None:
        return None
    if not isinstance(dev, ListConfig | list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in dev):
        raise ConfigError(f"dev_seeds must be null or a list of integers >= 0, got "
                          f"{OmegaConf.to_container(dev) if isinstance(dev, ListConfig) else dev!r}")
    return [int(s) for s in dev]



def ema_of(cfg: DictConfig) -> tuple[float, list[float]]:
    """(headline decay or 0, the compared decays)."""
    return float(cfg.ema.decay), [float(d) for d in cfg.ema.compare]


def validate_train(cfg: DictConfig) -> None:
    """The checks of ``task=train``: seeds, averages, data, loss, optimizer, model, evaluation."""
    seeds_of(cfg)
    dev_seeds_of(cfg)
    decay = C.number(cfg, "ema.decay", minimum=0.0)
    if decay >= 1:
        raise ConfigError(f"ema.decay must be 0 (off) or in (0, 1), got {decay}")
    compare = C.get(cfg, "ema.compare")
    if not isinstance(compare, ListConfig | list) or not all(
            isinstance(d, int | float) and not isinstance(d, bool) and 0 < d < 1 for d in compare):
        raise ConfigError(f"ema.compare must be a list of decays in (0, 1), got "
                          f"{OmegaConf.to_container(compare) if isinstance(compare, ListConfig) else compare!r}")
    C.choice(cfg, "data.name", DATASETS)
    C.number(cfg, "data.std", positive=True, allow_none=True)
    loss = C.choice(cfg, "loss.name", LOSSES)
    C.choice(cfg, "loss.optimizer", OPTIMIZERS)
    C.number(cfg, "loss.lr_g", positive=True)
    C.number(cfg, "loss.lr_c", positive=True)
    betas = C.vector(cfg, "loss.betas", 2)
    if not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"loss.betas must be two numbers in [0, 1), got {betas}")
    C.integer(cfg, "loss.n_critic", minimum=1)
    C.boolean(cfg, "loss.warmup")
    C.choice(cfg, "loss.lr_decay", ["none", "linear"])
    if loss == "wgan_clip":
        C.number(cfg, "loss.clip", positive=True)
        C.choice(cfg, "loss.init", ["uniform", "clip"])
    if loss == "wgan_gp":
        C.number(cfg, "loss.gp_lambda", minimum=0.0)
        C.boolean(cfg, "loss.one_sided")
    if loss == "sinkhorn":
        C.number(cfg, "loss.blur", positive=True)
        C.choice(cfg, "loss.p", [1, 2])
    C.integer(cfg, "iterations", minimum=1)
    C.integer(cfg, "batch_size", minimum=2)
    C.integer(cfg, "model.z_dim", minimum=1)
    if C.get(cfg, "model.data_scale") != "auto":
        C.number(cfg, "model.data_scale", positive=True)
    for net in ("generator", "critic"):
        C.integer(cfg, f"model.{net}.hidden", minimum=1)
        C.integer(cfg, f"model.{net}.depth", minimum=1)
        C.choice(cfg, f"model.{net}.activation", ACTIVATIONS)
    C.integer(cfg, "eval.every", minimum=1)
    C.integer(cfg, "eval.samples", minimum=10)
    C.integer(cfg, "eval.track_every", minimum=1)
    C.number(cfg, "eval.hq_threshold", positive=True)
    C.integer(cfg, "eval.min_count", minimum=1)
    C.number(cfg, "eval.collapse_share", positive=True, maximum=1.0)
    w = C.number(cfg, "eval.oscillation_window", positive=True)
    if w > 1:
        raise ConfigError(f"eval.oscillation_window must be in (0, 1], got {w}")
    C.number(cfg, "eval.oscillation_min_amplitude", minimum=0.0)
    C.number(cfg, "eval.oscillation_min_peak_share", minimum=0.0, maximum=1.0)
    C.number(cfg, "eval.oscillation_min_cycles", positive=True)
    C.integer(cfg, "output.snapshots", minimum=1)
    C.number(cfg, "output.plot_range", positive=True)
    C.integer(cfg, "output.grid", minimum=8, maximum=1024)


# ----------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------
def protocol_config(cfg: DictConfig):
    """The engine's :class:`~wgf_cli.gan.protocol.ProtocolConfig` of a validated config."""
    from wgf_cli.gan.protocol import EvalConfig, NetConfig, ProtocolConfig
    from wgf_cli.gan.trainer import TrainConfig

    lc, mc, ev = cfg.loss, cfg.model, cfg.eval
    decay, compare = ema_of(cfg)
    train = TrainConfig(
        loss=str(lc.name), n_critic=int(lc.n_critic), batch_size=int(cfg.batch_size),
        z_dim=int(mc.z_dim), lr_g=float(lc.lr_g), lr_c=float(lc.lr_c),
        optimizer=str(lc.optimizer), betas=(float(lc.betas[0]), float(lc.betas[1])),
        clip=float(lc.get("clip", 0.01)), clip_init=str(lc.get("init", "uniform")),
        gp_lambda=float(lc.get("gp_lambda", 10.0)),
        gp_one_sided=bool(lc.get("one_sided", False)), warmup=bool(lc.warmup),
        sinkhorn_blur=float(lc.get("blur", 0.05)), sinkhorn_p=int(lc.get("p", 2)),
        lr_decay=str(lc.lr_decay), iterations=int(cfg.iterations),
        ema=tuple(([decay] if decay > 0 else []) + compare))
    nets = {k: NetConfig(int(mc[k].hidden), int(mc[k].depth), str(mc[k].activation))
            for k in ("generator", "critic")}
    return ProtocolConfig(
        train=train, generator=nets["generator"], critic=nets["critic"],
        data_scale=None if mc.data_scale == "auto" else float(mc.data_scale),
        eval=EvalConfig(
            every=int(ev.every), samples=int(ev.samples), track_every=int(ev.track_every),
            hq_threshold=float(ev.hq_threshold), min_count=int(ev.min_count),
            collapse_share=float(ev.collapse_share), oscillation_window=float(ev.oscillation_window),
            oscillation_min_amplitude=float(ev.oscillation_min_amplitude),
            oscillation_min_peak_share=float(ev.oscillation_min_peak_share),
            oscillation_min_cycles=float(ev.oscillation_min_cycles)),
        ema_decay=decay, ema_compare=tuple(compare), snapshots=int(cfg.output.snapshots),
        plot_range=float(cfg.output.plot_range), grid=int(cfg.output.grid))


def run_train(cfg: DictConfig, run) -> dict[str, Any]:
    """Train every seed, write the metrics, arrays, plots and ``summary.json``."""
    import torch

    from wgf_cli.gan.data import make_dataset
    from wgf_cli.gan.protocol import summarize_seeds, train_seed

    t_start = time.perf_counter()
    device = C.resolve_device(cfg)
    dtype = getattr(torch, str(cfg.dtype))
    if int(cfg.threads) > 0:
        torch.set_num_threads(int(cfg.threads))
    data = make_dataset(str(cfg.data.name), std=None if cfg.data.std is None else float(cfg.data.std))
    pcfg = protocol_config(cfg)
    seeds = seeds_of(cfg)
    iters = int(cfg.iterations)
    log.info("wgan: %s on %s, %d iterations x %d seeds, %s/%s", pcfg.train.loss, data.name,
             iters, len(seeds), device, dtype)
    results = []
    for k, seed in enumerate(seeds):
        label = f"wgan {pcfg.train.loss} {data.name} seed {seed} ({k + 1}/{len(seeds)})"
        with run.progress(iters, label) as bar:
            def report(it: int, row: dict | None, bar=bar) -> None:
                if row is not None:
                    run.log_metrics(it, **row)
                if it > 0:
                    bar.advance(1, **({} if row is None else {"w1": row["w1"], **(
                        {"modes": row["modes_covered"]} if "modes_covered" in row else {})}))

            results.append(train_seed(data, pcfg, seed, device=device, dtype=dtype,
                                      keep_snapshots=(k == 0), callback=report))
    scored, dev = [r.seed for r in results], dev_seeds_of(cfg)
    summary: dict[str, Any] = {"task": "train", "loss": pcfg.train.loss, "data": data.name,
                               "iterations": iters, "seeds": len(results), "scored_seeds": scored,
                               "dev_seeds": dev, "heldout": dev is not None and not set(dev) & set(scored),
                               "ema": pcfg.ema_decay}
    if dev is not None and set(dev) & set(scored):
        log.warning("wgan: seeds %s are development seeds (dev_seeds): these scores are not held out",
                    sorted(set(dev) & set(scored)))
    summary.update(summarize_seeds(results, pcfg, data.n_modes if data.centres is not None else None))
    summary["device"] = device
    summary["dtype"] = str(cfg.dtype)
    summary["wall_s"] = round(time.perf_counter() - t_start, 3)
    _save_outputs(cfg, run, data, results)
    run.save_summary(summary)
    return summary


def _save_outputs(cfg: DictConfig, run, data, results) -> None:
    import pandas as pd
    import torch

    from wgf_cli.experiments.wgan import plots
    from wgf_cli.run import atomic_write

    centres = data.centres.numpy() if data.centres is not None else np.zeros((0, data.dim))
    ref = data.sample(int(cfg.eval.samples), torch.Generator().manual_seed(40_000), "cpu",
                      torch.float64).numpy()
    run.save_arrays("samples", samples=np.stack([r.samples for r in results]),
                    seeds=np.array([r.seed for r in results]), centres=centres, data=ref)
    run.save_arrays("trajectory", **{k: v for k, v in results[0].track.items() if len(v)})
    table = []
    for r in results:
        f = r.rows[-1]
        table.append({"seed": r.seed, "w1": f["w1"], "w2": f["w2"],
                      **{k: f.get(k) for k in ("modes_covered", "hq_fraction", "reverse_kl",
                                               "clip_boundary_fraction")},
                      **{k: v for k, v in f.items() if k.startswith(("raw_", "ema"))},
                      "oscillating": r.oscillation.periodic, "mode_collapse": r.collapse,
                      "mode_hopping": r.hopping, "wall_s": round(r.wall_s, 2)})
    atomic_write(run.dir / "seeds.csv", pd.DataFrame(table).to_csv(index=False))
    run.save_checkpoint({"seed": results[-1].seed, **results[-1].state})
    plots.make_train_plots(run, cfg, data, results, ref)
