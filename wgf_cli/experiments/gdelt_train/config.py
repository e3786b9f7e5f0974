"""`wgf gdelt-train` configuration: the checks made before any work, and the engine
configs (training, architecture, evaluation protocol) built from a validated config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C


def resume_dir(cfg: DictConfig) -> Path | None:
    """The run folder ``resume=PATH`` names (``None`` for ``false`` / ``true``)."""
    value = cfg.get("resume", False)
    if isinstance(value, bool) or value is None:
        return None
    return Path(str(value)).expanduser()


def checkpoint_meta(path: Path) -> dict:
    """The ``meta`` entry (embedding, model config) of a gdelt-train checkpoint."""
    import torch

    ck = torch.load(path, map_location="cpu", weights_only=False)
    return ck.get("meta", {})


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    from wgf_cli.forecast.data import BuildError, check_build

    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.choice(cfg, "dtype", ["float32", "float64"])
    C.integer(cfg, "threads", minimum=0)
    resume = C.get(cfg, "resume")
    if not isinstance(resume, bool | str):
        raise ConfigError(f"resume must be false, true or a run folder, got {resume!r}")
    context = C.integer(cfg, "data.context", minimum=2)
    C.integer(cfg, "data.max_train", minimum=0)
    C.integer(cfg, "data.max_eval", minimum=0)
    C.integer(cfg, "data.workers", minimum=0)
    C.integer(cfg, "train.epochs", minimum=1)
    C.integer(cfg, "train.batch_size", minimum=1)
    C.integer(cfg, "train.per_epoch", minimum=0)
    C.integer(cfg, "train.patience", minimum=0)
    C.integer(cfg, "train.stop_after", minimum=0)
    C.integer(cfg, "train.cloud_stride", minimum=0)
    C.integer(cfg, "train.max_val", minimum=0)
    ema = C.number(cfg, "train.ema", minimum=0.0)
    if ema >= 1:
        raise ConfigError(f"train.ema must be in [0, 1), got {ema}")
    C.boolean(cfg, "train.all_positions")
    C.boolean(cfg, "train.compile")
    C.choice(cfg, "train.amp", ["auto", True, False])
    for k in ("events", "total", "cloud"):
        C.number(cfg, f"train.loss.{k}", minimum=0.0)
    C.number(cfg, "train.loss.blur", positive=True)
    C.integer(cfg, "train.loss.iters", minimum=1)
    sc = C.number(cfg, "train.loss.scaling", positive=True)
    if sc >= 1:
        raise ConfigError(f"train.loss.scaling must be in (0, 1), got {sc}")
    C.choice(cfg, "model.backbone", ["transformer", "gru"])
    d = C.integer(cfg, "model.d_model", minimum=4)
    h = C.integer(cfg, "model.heads", minimum=1)
    if d % h:
        raise ConfigError(f"model.d_model={d} must be divisible by model.heads={h}")
    C.integer(cfg, "model.layers", minimum=1)
    C.integer(cfg, "model.ff", minimum=1)
    C.integer(cfg, "model.set_heads", minimum=1)
    C.integer(cfg, "model.world_heads", minimum=0)
    C.integer(cfg, "model.mixture", minimum=0)
    C.integer(cfg, "model.cell_rank", minimum=0)
    C.integer(cfg, "model.mixture_tilt", minimum=0)
    C.boolean(cfg, "model.recency_bias")
    C.choice(cfg, "model.positions", ["learned", "none"])
    C.choice(cfg, "train.monitor", ["loss", "log_loss"])
    C.integer(cfg, "train.cloud_epochs", minimum=0)
    C.number(cfg, "train.cloud_lr", positive=True)
    C.boolean(cfg, "model.ema_mixer")
    C.boolean(cfg, "model.mix_evidence")
    if C.boolean(cfg, "model.regime_filter") and not C.get(cfg, "model.mixture"):
        raise ConfigError("model.regime_filter=true needs a mixture head: set model.mixture "
                          "to the number of mixes (e.g. 16)")
    C.boolean(cfg, "model.country_embedding")
    C.number(cfg, "model.dropout", minimum=0.0, maximum=0.9)
    C.choice(cfg, "model.count_dist", ["negbin", "poisson"])
    C.number(cfg, "optim.lr", positive=True)
    C.number(cfg, "optim.weight_decay", minimum=0.0)
    C.number(cfg, "optim.beta1", minimum=0.0, maximum=0.9999)
    C.number(cfg, "optim.beta2", minimum=0.0, maximum=0.99999)
    C.number(cfg, "optim.warmup", minimum=0.0, maximum=1.0)
    C.number(cfg, "optim.min_lr", minimum=0.0, maximum=1.0)
    C.number(cfg, "optim.grad_clip", minimum=0.0)
    C.integer(cfg, "eval.samples", minimum=1)
    C.integer(cfg, "eval.top_events", minimum=1)
    C.integer(cfg, "eval.bins", minimum=2)
    C.integer(cfg, "eval.examples", minimum=0)
    C.choice(cfg, "eval.protocol", ["auto", "rolling", "split"])
    C.integer(cfg, "eval.max_rolling", minimum=1)
    C.integer(cfg, "eval.refit_every", minimum=0)
    C.integer(cfg, "eval.refit_window", minimum=1)
    C.integer(cfg, "eval.refit_steps", minimum=0)
    C.number(cfg, "eval.refit_lr", positive=True)
    if C.boolean(cfg, "model.prior") and C.get(cfg, "model.mixture"):
        raise ConfigError("model.prior=true needs the free cell head: set model.mixture=0 "
                          "(or model.prior=false for a mixture head)")
    C.integer(cfg, "baselines.window", minimum=1)
    sm = C.get(cfg, "baselines.smoothing")
    if sm != "auto":
        C.number(cfg, "baselines.smoothing", positive=True)
    C.integer(cfg, "baselines.cloud_days", minimum=1)
    C.boolean(cfg, "baselines.gru.enabled")
    C.integer(cfg, "baselines.gru.d_model", minimum=4)
    C.integer(cfg, "baselines.gru.layers", minimum=1)
    C.integer(cfg, "baselines.gru.epochs", minimum=0)
    C.boolean(cfg, "baselines.gru.regime_filter")

    embedding = None
    rdir = resume_dir(cfg)
    if rdir is not None:
        ck = rdir / "checkpoints" / "last.pt"
        if not ck.is_file():
            raise ConfigError(f"resume: no checkpoint at {ck} (give the folder of a gdelt-train run)")
        meta = checkpoint_meta(ck)
        embedding = (meta.get("embedding"), meta.get("embedding_dim"))
        saved = meta.get("model_config", {})
        wanted = {**model_arch(cfg), "context": context}
        diff = [k for k, v in wanted.items() if k in saved and saved[k] != v]
        if diff:
            raise ConfigError(
                f"resume: the checkpoint's model has {', '.join(f'{k}={saved[k]}' for k in diff)}, this config "
                f"{', '.join(f'{k}={wanted[k]}' for k in diff)}; resume with the model options of the run "
                f"({rdir / 'config.yaml'})")
    try:
        check_build(Path(str(C.get(cfg, "data.build_dir"))).expanduser(), context, embedding)
    except BuildError as exc:
        raise ConfigError(f"data.build_dir: {exc}") from None


# ----------------------------------------------------------------------------------------
# engine configs from a validated config
# ----------------------------------------------------------------------------------------
def train_config(cfg: DictConfig, device: str, gru: bool = False):
    """The :class:`~wgf_cli.forecast.train.TrainConfig` of the model (or of the GRU baseline)."""
    from wgf_cli.forecast.train import TrainConfig

    t, o = cfg.train, cfg.optim
    amp = (device.startswith("cuda") if t.amp == "auto" else bool(t.amp))
    return TrainConfig(
        epochs=int(cfg.baselines.gru.epochs or t.epochs) if gru else int(t.epochs),
        batch_size=int(t.batch_size), lr=float(o.lr), weight_decay=float(o.weight_decay),
        betas=(float(o.beta1), float(o.beta2)), warmup=float(o.warmup), min_lr=float(o.min_lr),
        grad_clip=float(o.grad_clip), patience=int(t.patience), monitor=f"val_{t.monitor}",
        cloud_epochs=int(t.cloud_epochs), cloud_lr=float(t.cloud_lr),
        w_events=float(t.loss.events), w_total=float(t.loss.total), w_cloud=float(t.loss.cloud),
        blur=float(t.loss.blur), scaling=float(t.loss.scaling), iters=int(t.loss.iters),
        all_positions=bool(t.all_positions), cloud_stride=int(t.cloud_stride), amp=amp,
        compile=bool(t.compile) and not gru, workers=int(cfg.data.workers),
        seed=int(cfg.seed) + (1 if gru else 0), stop_after=0 if gru else int(t.stop_after),
        max_val=int(t.max_val), per_epoch=int(t.per_epoch), ema=float(t.ema))


def model_arch(cfg: DictConfig, gru: bool = False) -> dict[str, Any]:
    """The :class:`~wgf_cli.forecast.model.ModelConfig` fields of ``model`` (the GRU baseline:
    its own size and backbone, the model's inputs and heads)."""
    from wgf_cli.forecast.factory import architecture

    arch = architecture(OmegaConf.to_container(cfg.model, resolve=True))
    if gru:
        g = cfg.baselines.gru
        arch.update(backbone="gru", d_model=int(g.d_model), layers=int(g.layers),
                    regime_filter=bool(g.regime_filter) and bool(arch.get("mixture")))
    return arch


def protocol(cfg: DictConfig, n_targets: int) -> str:
    """``rolling`` or ``split`` (``eval.protocol=auto``: rolling up to ``eval.max_rolling`` targets)."""
    proto = str(cfg.eval.protocol)
    if proto == "auto":
        return "rolling" if n_targets <= int(cfg.eval.max_rolling) else "split"
    return proto

