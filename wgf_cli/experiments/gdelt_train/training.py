"""`wgf gdelt-train` run: data and prior, the model's training (with resume), the GRU
baseline, then the test evaluation (:func:`~wgf_cli.experiments.gdelt_train.evaluate.score_run`)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C
from wgf_cli.experiments.gdelt_train.config import model_arch, protocol, resume_dir, train_config

log = logging.getLogger(__name__)


def _test_data(cfg: DictConfig, build, val, pr):
    """The test targets: every observed (country, day) after the validation period (rolling),
    or the build's sampled test sequences (split)."""
    from wgf_cli.forecast.data import SequenceData
    from wgf_cli.forecast.rolling import rolling_targets

    context = int(cfg.data.context)
    last_val = int(val.target_day.max())
    r_country, r_day = rolling_targets(build, last_val + 1, context)
    proto = protocol(cfg, len(r_day))
    if proto == "rolling":
        keep = np.arange(len(r_day))
        if int(cfg.data.max_eval) and len(keep) > int(cfg.data.max_eval):
            keep = np.linspace(0, len(keep) - 1, int(cfg.data.max_eval)).round().astype(int)
        test = SequenceData(build, "test", context, targets=(r_country[keep], r_day[keep]), prior=pr)
    else:
        test = SequenceData(build, "test", context, int(cfg.data.max_eval), prior=pr)
    if len(test) == 0:
        raise ValueError("nothing to score: no observed (country, day) after the validation period")
    return test, proto


def _resume(cfg: DictConfig, run, trainer, meta: dict) -> None:
    """Load the checkpoint of ``resume`` (a run folder, or ``true``: this one) into ``trainer``."""
    import torch

    rdir = resume_dir(cfg)
    ck = None
    if rdir is not None:
        ck = torch.load(rdir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
        if rdir.resolve() != run.dir:
            rows = [r for r in _read_jsonl(rdir / "metrics.jsonl") if r["step"] <= ck["epoch"]]
            for r in rows:
                run.log_metrics(**r)
    elif cfg.resume is True:
        ck = run.load_checkpoint()
    if ck is None:
        return
    got = (ck["meta"].get("embedding"), ck["meta"].get("embedding_dim"))
    if got != (meta["embedding"], meta["embedding_dim"]):
        raise ConfigError(f"resume: the checkpoint was trained on embedding {got[0]} "
                          f"({got[1]}-d), the build uses {meta['embedding']} "
                          f"({meta['embedding_dim']}-d)")
    if ck["meta"]["model_config"] != meta["model_config"]:  # validate() compares the options first
        raise ValueError("resume: the checkpoint's model differs from this config's "
                         f"({ck['meta']['model_config']} vs {meta['model_config']})")
    trainer.load_state_dict(ck["trainer"])
    if rdir is None:
        run.truncate_metrics(int(ck["epoch"]))
    log.info("resumed after epoch %d", ck["epoch"])


def run_train(cfg: DictConfig, run) -> dict[str, Any]:
    """Train, evaluate, save; the summary (see ``SUMMARY_KEYS``)."""
    import torch

    from wgf_cli.experiments.gdelt_train.evaluate import score_run
    from wgf_cli.forecast import baselines as B
    from wgf_cli.forecast.data import SequenceData, load_build
    from wgf_cli.forecast.distributed import setup_distributed
    from wgf_cli.forecast.factory import new_forecaster
    from wgf_cli.forecast.prior import fit_prior
    from wgf_cli.forecast.rolling import Refit, predict_rolling
    from wgf_cli.forecast.train import Trainer, calibrate_shrink

    t_start = time.perf_counter()
    if int(cfg.threads) > 0:
        torch.set_num_threads(int(cfg.threads))
    device = C.resolve_device(cfg)
    rank, world, device = setup_distributed(device)
    dtype = getattr(torch, str(cfg.dtype))
    torch.manual_seed(int(cfg.seed))
    context = int(cfg.data.context)

    build = load_build(Path(str(cfg.data.build_dir)).expanduser(), context)
    train0 = SequenceData(build, "train", context, int(cfg.data.max_train))
    val0 = SequenceData(build, "validation", context)
    for name, d in (("train", train0), ("validation", val0)):
        if len(d) == 0:
            raise ValueError(f"the build has no {name} sequences: rebuild with more days or a "
                             "shorter sequences.context")
    clim = B.climatology_tables(build, int(train0.target_day.max()), int(cfg.baselines.cloud_days))
    use_prior = bool(cfg.model.prior)
    prior = fit_prior(build, clim["cells"], clim["total"], int(clim["last_train_day"]),
                      np.unique(val0.target_day.numpy()))
    _save_json(run, "prior.json", {**prior.params.to_dict(),
                                   "last_train_date": int(build.days[int(clim["last_train_day"])]),
                                   "countries": [str(x) for x in build.countries]})
    run.save_arrays("prior.npz", clim_cells=clim["cells"], clim_total=clim["total"])
    pr = prior if use_prior else None
    train = SequenceData(build, "train", context, int(cfg.data.max_train), prior=pr)
    val = SequenceData(build, "validation", context, prior=pr)
    test, proto = _test_data(cfg, build, val, pr)
    log.info("build %s: %d countries, %d days, %d/%d sequences, %d test targets (%s), k=%d, %s %d-d",
             build.root, build.n_countries, len(build.days), len(train), len(val), len(test), proto,
             build.k, build.dataset.get("embedding"), build.dim)
    log.info("prior: %s", prior.params.to_dict())

    alpha0 = prior.alpha if use_prior else 0.1
    model = new_forecaster(build, clim, context, model_arch(cfg), dtype, seed=int(cfg.seed), alpha=alpha0)
    trainer = Trainer(model, train, val, train_config(cfg, device), device)
    meta = {"embedding": build.dataset.get("embedding"), "embedding_dim": build.dim,
            "build_dir": str(build.root), "model_config": model.cfg.to_dict()}
    _resume(cfg, run, trainer, meta)

    def on_epoch(epoch: int, row: dict) -> None:
        if rank != 0:
            return
        run.log_metrics(epoch, **row)
        run.save_checkpoint({"trainer": trainer.state_dict(), "epoch": epoch, "meta": meta})
        log.info("epoch %d: %s", epoch, " ".join(f"{k}={v:.4g}" for k, v in row.items()))

    remaining = int(cfg.train.epochs) + int(cfg.train.cloud_epochs) - trainer.state.epoch
    with run.progress(max(remaining, 0), "gdelt-train") as bar:
        trainer.fit(on_epoch=lambda e, r: (on_epoch(e, r), bar.advance(val=r["val_loss"])))
    st = trainer.state
    main = [h["sequences_per_s"] for h in st.history if not h.get("cloud_phase")]
    seq_s = float(np.mean(main)) if main else math.nan
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        return {}
    summary: dict[str, Any] = {"epochs": st.epoch, "cloud_epochs": st.cloud_epoch,
                               "best_epoch": st.best_epoch, "cloud_best_epoch": st.cloud_best_epoch,
                               "stopped_early": st.stopped_early, "sequences_per_s": seq_s,
                               "device": device, "train_sequences": len(train),
                               "eval_protocol": proto, "test_days": len(test)}
    if not trainer.finished():  # stop_after: a planned pause, resume continues
        summary.update(finished=False, wall_s=time.perf_counter() - t_start)
        run.save_summary(summary)
        return summary
    trainer.load_best()
    if use_prior:
        cal = calibrate_shrink(trainer.model, val, device)
        summary.update(shrink_cells=cal["shrink_cells"], shrink_total=cal["shrink_total"])
        log.info("residuals kept on validation: %s", cal)
    # the final weights (best epoch, calibrated shrink) for gdelt-forecast
    run.save_checkpoint({"trainer": trainer.state_dict(), "epoch": st.epoch, "meta": meta,
                         "model": trainer.model.state_dict()})

    # baselines and evaluation ----------------------------------------------------------
    models = {"model": trainer.model}
    if bool(cfg.baselines.gru.enabled):
        gru = new_forecaster(build, clim, context, model_arch(cfg, gru=True), dtype, seed=int(cfg.seed) + 1,
                             alpha=alpha0)
        gtrainer = Trainer(gru, train, val, train_config(cfg, device, gru=True), device)
        gtrainer.fit()
        gtrainer.load_best()
        if use_prior:
            calibrate_shrink(gru, val, device)
        summary["gru_epochs"] = gtrainer.state.epoch
        models["gru"] = gru
    refit = Refit(every=int(cfg.eval.refit_every) if proto == "rolling" else 0,
                  window=int(cfg.eval.refit_window), steps=int(cfg.eval.refit_steps),
                  lr=float(cfg.eval.refit_lr), seed=int(cfg.seed),
                  configs={name: train_config(cfg, device, gru=name == "gru") for name in models})
    preds = predict_rolling(models, build, test, context, pr, device, refit)
    fitted = B.fit_baselines(train0, val0, clim)
    preds.update(fitted.predict(test))
    summary["smoothing"] = float(fitted.params.get("persistence", {}).get("smoothing", math.nan))
    _save_json(run, "baselines.json", {k: {a: float(b) for a, b in v.items()} for k, v in fitted.params.items()})
    orc = B.oracle(test)
    if orc is not None:
        preds["oracle"] = orc
    return score_run(run, cfg, summary, preds, test, build, st.history, device, t_start)


def _save_json(run, name: str, obj: dict) -> None:
    from wgf_cli.run import atomic_write

    atomic_write(run.dir / name, (json.dumps(obj, indent=1) + "\n").encode())


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
