"""``wgf meanfield``: the checks of a config, and the engine configs built from it."""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C

MODES = ["train", "compare", "width"]
METHODS = ["gd", "sgd", "jko_grid", "wprox"]
TARGETS = ["teacher", "abs", "sin", "csv"]
DISTANCES = ["emd", "entropic", "sliced"]


def _int_list(cfg: DictConfig, key: str, minimum: int) -> list[int]:
    value = C.get(cfg, key)
    if not isinstance(value, ListConfig | list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value):
        raise ConfigError(f"{key} must be a non-empty list of integers >= {minimum}, got {value!r}")
    return [int(v) for v in value]


def _float_list(cfg: DictConfig, key: str) -> list[float]:
    value = C.get(cfg, key)
    if not isinstance(value, ListConfig | list) or not value or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value):
        raise ConfigError(f"{key} must be a non-empty list of positive numbers, got {value!r}")
    return [float(v) for v in value]


def _multiple(a: float, b: float) -> int | None:
    """``a / b`` when it is (numerically) a positive integer, else None."""
    k = round(a / b)
    return k if k >= 1 and math.isclose(k * b, a, rel_tol=1e-9, abs_tol=1e-12) else None


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.resolve_dtype(cfg, "cpu")
    C.threads(cfg)
    mode = C.choice(cfg, "mode", MODES)
    method = C.choice(cfg, "method", METHODS)
    T = C.number(cfg, "time", positive=True)
    dt = C.number(cfg, "dt", positive=True)
    if _multiple(T, dt) is None:
        raise ConfigError(f"time must be a multiple of dt, got time={T} dt={dt}")

    target = C.choice(cfg, "data.target", TARGETS)
    C.integer(cfg, "data.size", minimum=1)
    C.integer(cfg, "data.test_size", minimum=1)
    dim = C.integer(cfg, "data.dim", minimum=2)
    x_range = C.number(cfg, "data.x_range", positive=True)
    C.number(cfg, "data.noise", minimum=0.0)
    C.integer(cfg, "data.teacher_neurons", minimum=1)
    C.number(cfg, "data.frequency", positive=True)
    C.integer(cfg, "data.seed", minimum=0)
    if target == "csv":
        path = C.get(cfg, "data.path")
        if path is None or not Path(str(path)).expanduser().is_file():
            raise ConfigError(f"data.path: csv file {path} not found (needed by data.target=csv)")
        with open(Path(str(path)).expanduser(), encoding="utf-8") as fh:
            fh.readline()
            first = fh.readline()
        if len(first.split(",")) != dim:
            raise ConfigError(f"data.path: {path} has {len(first.split(','))} columns; data.dim={dim} "
                              f"needs {dim - 1} inputs and 1 label")

    C.integer(cfg, "model.width", minimum=1)
    std = C.number(cfg, "model.init_std", positive=True)
    train_alpha = C.boolean(cfg, "model.train_alpha")
    C.number(cfg, "model.weight_decay", minimum=0.0)
    C.integer(cfg, "sgd.batch_size", minimum=1)
    if method == "sgd" and mode == "train" and int(cfg.sgd.batch_size) > int(cfg.data.size):
        raise ConfigError(f"sgd.batch_size must be <= data.size={cfg.data.size}, got {cfg.sgd.batch_size}")

    C.choice(cfg, "wprox.distance", DISTANCES)
    tau = C.number(cfg, "wprox.tau", positive=True)
    C.integer(cfg, "wprox.inner_iters", minimum=1)
    C.number(cfg, "wprox.inner_lr", positive=True, maximum=1.0)
    C.number(cfg, "wprox.blur", positive=True)
    C.integer(cfg, "wprox.projections", minimum=1)
    C.integer(cfg, "output.snapshots", minimum=2)
    C.integer(cfg, "output.trajectories", minimum=0)

    uses = set(methods_of(cfg)) if mode != "width" else {"gd"}
    if "wprox" in uses and _multiple(T, tau) is None:
        raise ConfigError(f"time must be a multiple of wprox.tau, got time={T} wprox.tau={tau}")
    if "jko_grid" in uses:
        if dim != 2:
            raise ConfigError(f"method jko_grid needs data.dim=2 (one input + bias: the (w, b) plane), "
                              f"got data.dim={dim}")
        if train_alpha:
            raise ConfigError("method jko_grid keeps the output weights at +-1: set model.train_alpha=false")
        size = C.integer(cfg, "jko.grid_size", minimum=8)
        box = C.number(cfg, "jko.box", positive=True)
        h = C.number(cfg, "jko.h", positive=True)
        C.number(cfg, "jko.gamma_factor", positive=True)
        C.choice(cfg, "jko.linearize", ["step", "inner"])
        relax = C.number(cfg, "jko.relax", positive=True)
        if relax > 1:
            raise ConfigError(f"jko.relax must be in (0, 1], got {relax}")
        C.number(cfg, "jko.tol", positive=True)
        C.integer(cfg, "jko.inner_max", minimum=1)
        C.choice(cfg, "jko.init", ["particles", "gaussian"])
        if _multiple(T, h) is None:
            raise ConfigError(f"time must be a multiple of jko.h, got time={T} jko.h={h}")
        if mode == "compare":
            if _multiple(h, dt) is None:
                raise ConfigError(f"jko.h must be a multiple of dt in mode=compare, got h={h} dt={dt}")
            if "wprox" in uses and _multiple(h, tau) is None:
                raise ConfigError(f"jko.h must be a multiple of wprox.tau in mode=compare, got h={h} "
                                  f"tau={tau}")
        if box < 3.0 * std:
            raise ConfigError(f"jko.box={box} does not hold the initial neurons: need >= 3 * "
                              f"model.init_std = {3 * std:g}")
        cell = 2.0 * box / size
        scale = min(std, x_range)
        if cell > scale / 4.0:
            need = math.ceil(8.0 * box / scale)
            raise ConfigError(f"jko.grid_size={size} too coarse for the data scale: cell {cell:.3g} > "
                              f"min(model.init_std, data.x_range)/4 = {scale / 4:.3g}; use "
                              f"jko.grid_size >= {need}")
    if mode == "compare":
        C.integer(cfg, "compare.distances_at", minimum=2)
        C.integer(cfg, "compare.emd_max_pairs", minimum=1)
    if mode == "width":
        widths = _int_list(cfg, "width_study.widths", 1)
        if len(set(widths)) < 2:
            raise ConfigError(f"width_study.widths needs at least two distinct widths, got {widths}")
        ref = C.integer(cfg, "width_study.reference", minimum=2)
        if ref <= max(widths):
            raise ConfigError(f"width_study.reference must exceed the widths (max {max(widths)}), got {ref}")
        C.integer(cfg, "width_study.seeds", minimum=2)
        for t in _float_list(cfg, "width_study.times"):
            if t > T * (1 + 1e-12) or _multiple(t, dt) is None:
                raise ConfigError(f"width_study.times must be multiples of dt={dt} and <= time={T}, got {t}")
        C.integer(cfg, "width_study.projections", minimum=1)
        C.integer(cfg, "width_study.emd_max_pairs", minimum=1)
        C.integer(cfg, "width_study.bootstrap", minimum=10)
        level = C.number(cfg, "width_study.level")
        if not 0 < level < 1:
            raise ConfigError(f"width_study.level must be in (0, 1), got {level}")


def methods_of(cfg: DictConfig) -> list[str]:
    """The methods a run uses (``compare.methods`` in mode=compare, else ``method``)."""
    if str(cfg.mode) == "compare":
        value = C.get(cfg, "compare.methods")
        if not isinstance(value, ListConfig | list) or not value or not all(v in ("gd", "jko_grid", "wprox")
                                                                             for v in value):
            raise ConfigError(f"compare.methods must be a list of gd, jko_grid, wprox, got {value!r}")
        if "gd" not in value or "jko_grid" not in value:
            raise ConfigError(f"compare.methods must contain gd and jko_grid, got {list(value)}")
        return [str(v) for v in value]
    return [str(cfg.method)]


# ----------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------
def setup(cfg: DictConfig):
    """Device, dtype (threads, global seed) and the data set of a validated config."""
    import torch

    from wgf_cli.meanfield.data import make_dataset

    device = C.resolve_device(cfg)
    dtype = C.resolve_dtype(cfg, device)
    # the largest per-op work: neurons x training points, or the jko_grid's cells
    C.resolve_threads(cfg, max(int(cfg.model.width) * int(cfg.data.size),
                               int(cfg.jko.grid_size) ** 2), device)
    torch.manual_seed(int(cfg.seed))
    d = cfg.data
    gen = torch.Generator().manual_seed(int(d.seed))
    data = make_dataset(str(d.target), int(d.size), int(d.test_size), int(d.dim),
                        x_range=float(d.x_range), noise=float(d.noise),
                        teacher_neurons=int(d.teacher_neurons), frequency=float(d.frequency),
                        path=None if d.path is None else str(d.path), generator=gen,
                        dtype=dtype, device=device)
    return device, dtype, data


def particle_config(cfg: DictConfig):
    """The engine's :class:`~wgf_cli.meanfield.protocol.ParticleConfig`."""
    from wgf_cli.meanfield.protocol import ParticleConfig

    w = cfg.wprox
    return ParticleConfig(
        dt=float(cfg.dt), seed=int(cfg.seed), weight_decay=float(cfg.model.weight_decay),
        train_alpha=bool(cfg.model.train_alpha), batch_size=int(cfg.sgd.batch_size),
        wprox_distance=str(w.distance), wprox_tau=float(w.tau), wprox_inner_iters=int(w.inner_iters),
        wprox_inner_lr=float(w.inner_lr), wprox_blur=float(w.blur), wprox_projections=int(w.projections))


def grid_config(cfg: DictConfig):
    """The engine's :class:`~wgf_cli.meanfield.protocol.GridConfig`."""
    from wgf_cli.meanfield.protocol import GridConfig

    j = cfg.jko
    return GridConfig(
        grid_size=int(j.grid_size), box=float(j.box), h=float(j.h), gamma_factor=float(j.gamma_factor),
        linearize=str(j.linearize), relax=float(j.relax), tol=float(j.tol), inner_max=int(j.inner_max),
        init=str(j.init), init_std=float(cfg.model.init_std))


class Reporter:
    """The engines' ``callback(event, info)`` onto the run: a progress bar per phase and one
    ``metrics.jsonl`` row per ``record`` event (steps numbered 0, 1, 2, ... in order)."""

    def __init__(self, run) -> None:
        self.run, self.step = run, 0
        self._stack = ExitStack()
        self._bar = None

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "record":
            self.run.log_metrics(self.step, **info)
            self.step += 1
        elif event == "begin":
            self._bar = self._stack.enter_context(self.run.progress(int(info["total"]), str(info["phase"])))
        elif event == "advance" and self._bar is not None:
            self._bar.advance(**{k: v for k, v in info.items() if k != "phase"})
        elif event == "end":
            self._stack.close()
            self._bar = None

    def close(self) -> None:
        """Close a bar left open (an engine that raised)."""
        self._stack.close()
