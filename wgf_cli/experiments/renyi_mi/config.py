"""`wgf renyi-mi` configuration: the checks made before any work, and the engine objects
(entropy estimator, device set-up, inputs) built from a validated config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C

TASKS = ["infoplane", "ntk", "scaling", "estimate"]
DATASETS = ["digits", "blobs"]
#: classes of the bundled datasets (blobs: ``dataset.classes``)
DIGITS_CLASSES = 10


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    from wgf_cli.info.kernels import parse_width

    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.resolve_dtype(cfg, "cpu")
    C.integer(cfg, "threads", minimum=0)
    task = C.choice(cfg, "task", TASKS)
    alpha = C.get(cfg, "alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha) \
            or not alpha > 0:
        raise ConfigError(f"alpha must be a number > 0 (1 = von Neumann), got {alpha!r}")
    method = C.choice(cfg, "entropy.method", ["auto", "eig", "frobenius", "fast"])
    if method == "frobenius" and float(alpha) != 2.0:
        raise ConfigError(f"entropy.method=frobenius is the alpha=2 shortcut; alpha={alpha} needs "
                          "entropy.method=eig, fast or auto")
    for key, lo in (("block", 1), ("blocks", 1), ("probes", 2), ("steps", 2)):
        if C.get(cfg, f"entropy.fast.{key}") is not None:  # null: chosen adaptively
            C.integer(cfg, f"entropy.fast.{key}", minimum=lo)
    C.number(cfg, "entropy.fast.tol", positive=True)
    C.choice(cfg, "entropy.fast.matmul_dtype", ["auto", "float32", "float64"])
    C.choice(cfg, "kernel.name", ["gaussian"])
    width = C.get(cfg, "kernel.width")
    try:
        name, arg = parse_width(width)
    except ValueError as exc:
        raise ConfigError(f"kernel.width: {exc}") from None
    if name == "fixed" and not arg > 0:
        raise ConfigError(f"kernel.width: sigma must be > 0, got {width}")
    C.number(cfg, "kernel.scale", positive=True)
    if task == "estimate":
        if name == "align":
            raise ConfigError("kernel.width=align needs labels; task=estimate has none")
        load_inputs(cfg)
        return
    if task == "scaling":
        sizes = C.get(cfg, "scaling.sizes")
        if not (hasattr(sizes, "__len__") and len(sizes) > 0
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 10 for s in sizes)):
            raise ConfigError(f"scaling.sizes must be a list of integers >= 10, got {sizes}")
        C.integer(cfg, "scaling.exact_max", minimum=0)
        C.integer(cfg, "scaling.features", minimum=1)
        C.integer(cfg, "scaling.components", minimum=1)
        C.integer(cfg, "scaling.repeats", minimum=1)
        if name == "align":
            raise ConfigError("kernel.width=align needs labels; the scaling task has none")
        return
    C.choice(cfg, "dataset.name", DATASETS)
    tf = C.number(cfg, "dataset.test_fraction")
    if not 0 < tf < 1:
        raise ConfigError(f"dataset.test_fraction must be in (0, 1), got {tf}")
    if cfg.dataset.name == "blobs":
        C.integer(cfg, "dataset.samples", minimum=20)
        C.integer(cfg, "dataset.features", minimum=1)
        C.integer(cfg, "dataset.classes", minimum=2)
        C.number(cfg, "dataset.noise", positive=True)
    widths = C.get(cfg, "network.widths")
    if not (hasattr(widths, "__len__") and len(widths) > 0
            and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
        raise ConfigError(f"network.widths must be a non-empty list of integers >= 1, got {widths}")
    C.choice(cfg, "network.activation", ["tanh", "relu"])
    C.integer(cfg, "train.epochs", minimum=1)
    C.integer(cfg, "train.batch_size", minimum=1)
    C.number(cfg, "train.lr", positive=True)
    C.choice(cfg, "train.optimizer", ["adam", "sgd"])
    C.number(cfg, "train.momentum", minimum=0.0, maximum=1.0)
    C.number(cfg, "train.weight_decay", minimum=0.0)
    C.integer(cfg, "info.every", minimum=0)
    C.integer(cfg, "info.eval_size", minimum=10)
    C.number(cfg, "info.label_sigma", positive=True)
    C.boolean(cfg, "info.multivariate")
    C.choice(cfg, "info.per_neuron", ["final", "every", "never"])
    C.number(cfg, "info.dpi_tol", minimum=0.0)
    if task == "ntk":
        C.integer(cfg, "ntk.size", minimum=10)
        out = C.get(cfg, "ntk.output")
        if out != "sum" and (isinstance(out, bool) or not isinstance(out, int) or out < 0):
            raise ConfigError(f"ntk.output must be sum or an output index >= 0, got {out!r}")
        classes = DIGITS_CLASSES if cfg.dataset.name == "digits" else int(cfg.dataset.classes)
        if out != "sum" and out >= classes:
            raise ConfigError(f"ntk.output must be sum or < {classes}, got {out}")


def _load_array(path: str) -> np.ndarray:
    """``.npy``, ``.npz`` (its first array) or ``.csv`` (comma separated, no header) as float64."""
    if path.endswith(".npz"):
        with np.load(path) as z:
            arr = z[z.files[0]]
    elif path.endswith(".csv"):
        arr = np.loadtxt(path, delimiter=",", ndmin=2)
    else:
        arr = np.load(path)
    arr = np.asarray(arr, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)


def load_inputs(cfg: DictConfig) -> dict[str, np.ndarray]:
    """Load and check ``input.x`` / ``input.y`` (rows = samples, equal counts, PSD shapes)."""
    arrays = {}
    for key in ("x", "y"):
        path = C.get(cfg, f"input.{key}")
        kind = C.choice(cfg, f"input.kernel_{key}", ["gaussian", "precomputed"])
        if path is None:
            if key == "x":
                raise ConfigError("task=estimate needs input.x=<path to .npy/.npz/.csv>")
            continue
        p = Path(str(path)).expanduser()
        if not p.is_file():
            raise ConfigError(f"input.{key}: file {p} not found")
        try:
            arr = _load_array(str(p))
        except (ValueError, OSError, IndexError) as exc:
            raise ConfigError(f"input.{key}: cannot read {p}: {exc}") from None
        if arr.shape[0] < 2 or not np.isfinite(arr).all():
            raise ConfigError(f"input.{key}: need >= 2 finite rows, got shape {arr.shape}")
        if kind == "precomputed" and (arr.shape[0] != arr.shape[1] or not np.allclose(arr, arr.T)
                                      or (np.diag(arr) <= 0).any()):
            raise ConfigError(f"input.{key}: a precomputed Gram matrix must be square, symmetric, "
                              f"with a positive diagonal; got shape {arr.shape}")
        arrays[key] = arr
    if "y" in arrays and arrays["y"].shape[0] != arrays["x"].shape[0]:
        raise ConfigError(f"input.x and input.y: mismatched sample counts between the Gram matrices "
                          f"({arrays['x'].shape[0]} vs {arrays['y'].shape[0]})")
    return arrays



# ----------------------------------------------------------------------------------------
# engine objects from a validated config
# ----------------------------------------------------------------------------------------
def setup(cfg: DictConfig) -> tuple[str, object]:
    """Seed torch, set its threads; the resolved ``(device, dtype)``."""
    import torch

    device = C.resolve_device(cfg)
    dtype = C.resolve_dtype(cfg, device)
    torch.manual_seed(int(cfg.seed))
    if int(cfg.threads) > 0:
        torch.set_num_threads(int(cfg.threads))
    return device, dtype


def entropy_estimator(cfg: DictConfig):
    """The configured entropy (``alpha``, ``entropy.method``, ``entropy.fast``, ``seed``)."""
    import torch

    from wgf_cli.info.training import EntropyEstimator

    f = cfg.entropy.fast
    fast: dict = {key: (None if f[key] is None else int(f[key])) for key in ("block", "blocks", "probes", "steps")}
    fast["tol"] = float(f.tol)
    fast["matmul_dtype"] = None if str(f.matmul_dtype) == "auto" else getattr(torch, str(f.matmul_dtype))
    return EntropyEstimator(alpha=float(cfg.alpha), method=str(cfg.entropy.method), fast=fast,
                            seed=int(cfg.seed))
