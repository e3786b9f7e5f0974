"""`wgf renyi-mi task=infoplane | ntk`: train the MLP with :mod:`wgf_cli.info.training` and
write its checkpoints (``metrics.csv``), arrays, plots and summary."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wgf_cli.experiments.renyi_mi.config import entropy_estimator, setup


def _data(cfg: DictConfig, device, dtype):
    from wgf_cli.info.models import load_dataset

    d = cfg.dataset
    kw = {}
    if d.name == "blobs":
        kw = {"samples": int(d.samples), "features": int(d.features), "classes": int(d.classes),
              "noise": float(d.noise)}
    return load_dataset(str(d.name), test_fraction=float(d.test_fraction), seed=int(cfg.seed),
                        dtype=dtype, device=device, **kw)


def _configs(cfg: DictConfig, ntk: bool):
    from wgf_cli.info.training import MeasureConfig, TrainConfig

    tr, info = cfg.train, cfg.info
    train = TrainConfig(epochs=int(tr.epochs), batch_size=int(tr.batch_size), lr=float(tr.lr),
                        optimizer=str(tr.optimizer), momentum=float(tr.momentum),
                        weight_decay=float(tr.weight_decay))
    out = None if not ntk else (cfg.ntk.output if cfg.ntk.output == "sum" else int(cfg.ntk.output))
    measure = MeasureConfig(every=int(info.every), eval_size=int(info.eval_size),
                            label_sigma=float(info.label_sigma), kernel_width=str(cfg.kernel.width),
                            kernel_scale=float(cfg.kernel.scale), multivariate=bool(info.multivariate),
                            per_neuron=str(info.per_neuron),
                            ntk_size=int(cfg.ntk.size) if ntk else None,
                            ntk_output=out if ntk else "sum")
    return train, measure


def run_train(cfg: DictConfig, run, ntk: bool) -> dict[str, Any]:
    """Train, measure, save; the summary (see ``SUMMARY_KEYS``)."""
    import torch

    from wgf_cli.info.models import MLP
    from wgf_cli.info.training import iterations, train_with_information

    t_start = time.perf_counter()
    device, dtype = setup(cfg)
    data = _data(cfg, device, dtype)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    model = MLP(data.dim, [int(w) for w in cfg.network.widths], data.classes,
                str(cfg.network.activation)).to(device=device, dtype=dtype)
    ent = entropy_estimator(cfg)
    train, measure = _configs(cfg, ntk)
    layer_widths = [int(w) for w in cfg.network.widths] + [data.classes]
    nk = min(int(cfg.ntk.size), int(cfg.info.eval_size), data.x_train.shape[0]) if ntk else 0

    def on_checkpoint(p) -> None:
        if ntk:
            run.log_metrics(p.step, epoch=p.epoch, ntk_entropy=p.ntk_entropy,
                            ntk_entropy_norm=p.ntk_entropy / math.log2(nk), ntk_alignment=p.ntk_alignment,
                            ntk_alignment_uncentered=p.ntk_alignment_uncentered, test_acc=p.test_acc,
                            train_loss=p.train_loss)
            return
        for li, r in enumerate(p.layers, start=1):
            run.log_metrics(p.step, epoch=p.epoch, layer=li, width=layer_widths[li - 1],
                            I_XT=r["I_XT"], I_TY=r["I_TY"], H_T=r["H_T"], sigma=r["sigma"],
                            H_X=p.H_X, H_Y=p.H_Y, I_Y_layers=p.I_Y_layers, test_acc=p.test_acc,
                            train_loss=p.train_loss)

    _, total = iterations(data.x_train.shape[0], train)
    with run.progress(total, f"renyi-mi {cfg.task}") as bar:
        hist = train_with_information(model, data, ent, train, measure, gen, on_checkpoint=on_checkpoint,
                                      on_step=lambda step, loss: bar.advance(loss=loss))

    wall = time.perf_counter() - t_start
    summary: dict[str, Any] = {
        "task": str(cfg.task), "alpha": ent.alpha, "entropy_method": ent.method,
        "dataset": str(cfg.dataset.name), "layers": len(layer_widths), "layer_widths": layer_widths,
        "activation": str(cfg.network.activation),
        "final_accuracy": hist.test_acc[-1], "final_train_loss": hist.train_loss[-1],
        "checkpoints": len(hist.step), "eval_size": hist.eval_size, "H_X": hist.H_X, "H_Y": hist.H_Y,
        "sigma_x": hist.sigma_x, "kernel_width": str(cfg.kernel.width),
        "kernel_scale": float(cfg.kernel.scale), "device": device,
        "dtype": str(dtype).replace("torch.", ""),
    }
    if ntk:
        summary.update(ntk_size=nk, ntk_entropy_initial=hist.ntk_entropy[0],
                       ntk_entropy_final=hist.ntk_entropy[-1],
                       ntk_entropy_norm_final=hist.ntk_entropy[-1] / math.log2(nk),
                       ntk_alignment_initial=hist.ntk_alignment[0],
                       ntk_alignment_final=hist.ntk_alignment[-1],
                       ntk_alignment_gain=hist.ntk_alignment[-1] - hist.ntk_alignment[0])
    else:
        ixt, ity = np.asarray(hist.I_XT), np.asarray(hist.I_TY)
        tol = float(cfg.info.dpi_tol)
        summary.update(
            I_XT_final=ixt[-1].tolist(), I_TY_final=ity[-1].tolist(),
            sigma_final=list(hist.sigma[-1]), I_Y_layers_final=hist.I_Y_layers[-1],
            dpi_violations=int((np.diff(ixt, axis=1) > tol).sum()),
            dpi_violations_y=int((np.diff(ity, axis=1) > tol).sum()),
            dpi_checks=int(ixt.shape[0] * (ixt.shape[1] - 1)))
    summary["wall_s"] = round(wall, 3)

    _save(run, cfg, hist, ntk, summary)
    run.save_summary(summary)
    return summary


def _save(run, cfg, hist, ntk, summary) -> None:
    from wgf_cli.experiments.renyi_mi import plots as P

    arrays = {k: np.asarray(getattr(hist, k), dtype=float) for k in
              ("step", "epoch", "test_acc", "train_loss")}
    if ntk:
        arrays.update(ntk_entropy=np.asarray(hist.ntk_entropy), ntk_alignment=np.asarray(hist.ntk_alignment))
        run.save_arrays("ntk", **arrays)
        run.save_plot(P.ntk(hist, summary), "ntk")
        return
    arrays.update({k: np.asarray(getattr(hist, k), dtype=float) for k in ("I_XT", "I_TY", "H_T", "sigma")})
    arrays["I_Y_layers"] = np.asarray(hist.I_Y_layers, dtype=float)
    run.save_arrays("infoplane", **arrays)
    if hist.neurons:
        neu = {"neuron_steps": np.asarray([s for s, _ in hist.neurons])}
        for li in range(len(hist.layer_widths)):
            neu[f"layer{li + 1}_I_XT"] = np.stack([n[li]["I_XT"] for _, n in hist.neurons])
            neu[f"layer{li + 1}_I_TY"] = np.stack([n[li]["I_TY"] for _, n in hist.neurons])
        run.save_arrays("neurons", **neu)
        run.save_plot(P.neurons(hist.neurons[-1][1], summary), "neurons")
    run.save_plot(P.infoplane(hist, summary), "infoplane")
    run.save_plot(P.mi_epochs(hist, summary), "mi_epochs")
    run.save_plot(P.dpi(hist, summary, float(cfg.info.dpi_tol)), "dpi")
