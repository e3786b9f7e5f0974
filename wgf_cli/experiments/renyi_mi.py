"""`wgf renyi-mi`: matrix-based Rényi entropy and mutual information of network layers.

Three tasks (``task=``):

``infoplane``  train an MLP classifier; every ``info.every`` iterations measure, on a fixed
               evaluation batch, ``I(X;T_l)``, ``I(T_l;Y)`` and ``H(T_l)`` for every layer (hidden
               layers and the softmax output), the multivariate ``I(Y; {T_1..T_L})``, and
               per-neuron ``I(X;T_lj)``, ``I(T_lj;Y)``; count violations of the data-processing
               inequality ``I(X;T_1) >= I(X;T_2) >= ...`` per checkpoint.
``ntk``        the empirical neural tangent kernel Gram matrix during training: its Rényi
               entropy (also normalized by ``log2 n``) and its alignment with the label kernel.
``scaling``    entropy of Gram matrices for growing ``n``: exact ``eigvalsh`` vs the fast path,
               wall time and relative error.
``estimate``   ``H(X)``, ``H(Y)``, ``H(X,Y)``, ``I(X;Y)`` of user arrays (``input.x``, ``input.y``:
               samples or precomputed Gram matrices).

``metrics.csv``: infoplane: one row per checkpoint and layer (``step, epoch, layer, I_XT,
I_TY, H_T, sigma, ...``); ntk: one row per checkpoint; scaling: one row per ``n``.
Summary keys: :data:`SUMMARY_KEYS`.  Units: bits.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C
from wgf_cli.presets import Claim, Preset

log = logging.getLogger(__name__)

TASKS = ["infoplane", "ntk", "scaling", "estimate"]
DATASETS = ["digits", "blobs"]

SUMMARY_KEYS = {
    "task": "infoplane | ntk | scaling",
    "alpha": "Rényi order",
    "entropy_method": "auto | eig | frobenius | fast",
    "layers": "number of measured layers (hidden layers + softmax output)",
    "layer_widths": "units per measured layer",
    "final_accuracy": "test accuracy at the end of training",
    "final_train_loss": "mean cross-entropy of the last epoch",
    "checkpoints": "information measurements made",
    "H_X": "S_alpha of the input Gram matrix on the evaluation batch (bits)",
    "H_Y": "S_alpha of the label Gram matrix (bits) = Rényi entropy of the label histogram",
    "sigma_x": "kernel width of the input",
    "I_XT_final": "I(X;T_l) per layer at the last checkpoint (list)",
    "I_TY_final": "I(T_l;Y) per layer at the last checkpoint (list)",
    "sigma_final": "kernel width per layer at the last checkpoint (list)",
    "I_Y_layers_final": "multivariate I(Y; {T_1..T_L}) at the last checkpoint",
    "dpi_violations": "checkpoint/layer pairs with I(X;T_l+1) > I(X;T_l) + info.dpi_tol",
    "dpi_violations_y": "the same for I(T_l+1;Y) > I(T_l;Y) + info.dpi_tol",
    "ntk_entropy_initial": "S_alpha of the normalized NTK Gram matrix before training",
    "ntk_entropy_final": "... after training",
    "ntk_entropy_norm_final": "ntk_entropy_final / log2 n",
    "ntk_alignment_initial": "centered alignment <HKH, HLH>/(|HKH||HLH|) of the NTK with the "
                             "label kernel, before training",
    "ntk_alignment_final": "... at the end",
    "ntk_alignment_gain": "ntk_alignment_final - ntk_alignment_initial",
    "n_max": "largest Gram matrix (scaling)",
    "max_rel_error": "max |fast - exact| / exact over the sizes with an exact reference",
    "speedup_at_n_max": "eigvalsh time / fast-path time at the largest n with a reference",
    "rel_error_at_n_max": "relative error of the fast path at that n",
    "within_3_sigma": "fraction of sizes where |fast - exact| <= 3 x the error estimate",
    "H_XY": "estimate: joint entropy S(A_X o A_Y / tr) (bits)",
    "I_XY": "estimate: I(X;Y) = H_X + H_Y - H_XY (bits)",
    "wall_s": "wall time of the run (plots excluded)",
}

#: summary keys shown (first present) per job in the sweep table
HEADLINE = ["final_accuracy", "max_rel_error", "I_XY"]

_TOY_TRAIN = ["train.epochs=2", "info.every=10", "info.eval_size=80", "network.widths=[16,8]"]

#: ``conf/experiment/`` presets of ``wgf renyi-mi``, with the claims ``make reproduce`` checks.
PRESETS = [
    Preset("infoplane", "Information plane of a 64-32-16 tanh MLP trained on digits "
                        "(matrix-based Rényi alpha=1.01, k-NN kernel widths).",
           ["final_accuracy", "layers", "H_X", "H_Y", "I_XT_final", "I_TY_final", "I_Y_layers_final",
            "dpi_violations", "wall_s"],
           [Claim("final_accuracy", ">=", 0.95, "MLP on digits reaches 95% test accuracy"),
            Claim("layers", "==", 4, "every layer (3 hidden + softmax) is measured")],
           figures=["infoplane.png", "mi_epochs.png", "dpi.png", "neurons.png"],
           toy=_TOY_TRAIN,
           full=["train.epochs=200", "info.every=10", "info.eval_size=1000", "info.per_neuron=every"]),
    Preset("ntk", "Empirical NTK Gram matrix during training: Rényi entropy and label alignment.",
           ["final_accuracy", "ntk_entropy_initial", "ntk_entropy_final", "ntk_alignment_initial",
            "ntk_alignment_final", "wall_s"],
           [Claim("ntk_alignment_gain", ">", 0.0,
                  "the NTK aligns with the label kernel during training (final - initial > 0)")],
           figures=["ntk.png"],
           toy=["train.epochs=1", "info.every=10", "info.eval_size=60", "ntk.size=40",
                "network.widths=[16,8]"],
           full=["train.epochs=100", "ntk.size=1000", "info.every=20"]),
    Preset("scaling", "Entropy of Gaussian Gram matrices, n = 500..5000: exact eigvalsh vs the "
                      "fast path (deflation + stochastic Lanczos quadrature).",
           ["n_max", "max_rel_error", "speedup_at_n_max", "within_3_sigma", "wall_s"],
           [Claim("max_rel_error", "<=", 1e-3, "fast path: relative error <= 1e-3 against eigvalsh")],
           figures=["scaling_time.png", "scaling_error.png"],
           toy=["scaling.sizes=[300,600]", "entropy.fast.block=16", "entropy.fast.blocks=4"],
           full=["scaling.sizes=[500,1000,2000,5000,10000,20000]"]),
]


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
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
        _validate_inputs(cfg)
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


def _validate_inputs(cfg: DictConfig) -> dict[str, np.ndarray]:
    """Load and check ``input.x`` / ``input.y`` (rows = samples, equal counts, PSD shapes)."""
    from pathlib import Path

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
# shared pieces
# ----------------------------------------------------------------------------------------
class _Entropy:
    """The configured entropy (method, fast-path settings) as one callable, in bits."""

    def __init__(self, cfg: DictConfig, seed: int) -> None:
        import torch

        self.alpha = float(cfg.alpha)
        self.method = str(cfg.entropy.method)
        f = cfg.entropy.fast
        self.fast = {key: (None if f[key] is None else int(f[key]))
                     for key in ("block", "blocks", "probes", "steps")}
        self.fast["tol"] = float(f.tol)
        self.fast["matmul_dtype"] = (None if str(f.matmul_dtype) == "auto"
                                     else getattr(torch, str(f.matmul_dtype)))
        self.seed = seed

    def __call__(self, A):
        import torch

        from wgf_cli.info import entropy

        if self.method != "fast":
            return entropy(A, self.alpha, self.method)
        if A.dim() == 2:
            return entropy(A, self.alpha, "fast", generator=torch.Generator().manual_seed(self.seed),
                           **self.fast)
        return torch.stack([self(a) for a in A])


def _setup(cfg: DictConfig):
    import torch

    device = C.resolve_device(cfg)
    dtype = C.resolve_dtype(cfg, device)
    torch.manual_seed(int(cfg.seed))
    if int(cfg.threads) > 0:
        torch.set_num_threads(int(cfg.threads))
    return device, dtype


def run(cfg: DictConfig, run) -> dict[str, Any]:
    task = str(cfg.task)
    if task == "scaling":
        return _scaling(cfg, run)
    if task == "estimate":
        return _estimate(cfg, run)
    return _train(cfg, run, ntk=task == "ntk")


# ----------------------------------------------------------------------------------------
# infoplane / ntk
# ----------------------------------------------------------------------------------------
def _data(cfg: DictConfig, device, dtype):
    from wgf_cli.info.models import load_dataset

    d = cfg.dataset
    kw = {}
    if d.name == "blobs":
        kw = {"samples": int(d.samples), "features": int(d.features), "classes": int(d.classes),
              "noise": float(d.noise)}
    return load_dataset(str(d.name), test_fraction=float(d.test_fraction), seed=int(cfg.seed),
                        dtype=dtype, device=device, **kw)


def _measure(model, xe, ye, AX, AY, HX, HY, ent, cfg, per_neuron: bool) -> dict[str, Any]:
    """Every information quantity of one checkpoint on the evaluation batch."""
    import torch

    from wgf_cli.info import gram, hadamard

    k = cfg.kernel
    with torch.no_grad():
        Ts = [t.to(torch.float64) for t in model.layers(xe)]
    out: dict[str, Any] = {"layers": []}
    grams = []
    for T in Ts:
        g = gram(T, sigma=str(k.width), scale=float(k.scale), labels=ye)
        A = g.A
        grams.append(A)
        HT = float(ent(A))
        HXT = float(ent(hadamard(AX, A)))
        HTY = float(ent(hadamard(A, AY)))
        out["layers"].append({"H_T": HT, "I_XT": HX + HT - HXT, "I_TY": HT + HY - HTY,
                              "sigma": g.sigma})
    if bool(cfg.info.multivariate):
        HTs = float(ent(hadamard(*grams)))
        HTsY = float(ent(hadamard(*grams, AY)))
        out["I_Y_layers"] = HY + HTs - HTsY
    if per_neuron:
        out["neurons"] = []
        for T in Ts:
            As = torch.stack([gram(T[:, j], sigma=str(k.width), scale=float(k.scale), labels=ye).A
                              for j in range(T.shape[1])])
            H = ent(As)
            ixt = HX + H - ent(hadamard(AX, As))
            ity = H + HY - ent(hadamard(As, AY))
            out["neurons"].append({"I_XT": ixt.cpu().numpy(), "I_TY": ity.cpu().numpy()})
    return out


def _train(cfg: DictConfig, run, ntk: bool) -> dict[str, Any]:
    import torch

    from wgf_cli.info import alignment, gram, label_gram
    from wgf_cli.info.models import MLP
    from wgf_cli.info.ntk import empirical_ntk

    t_start = time.perf_counter()
    device, dtype = _setup(cfg)
    data = _data(cfg, device, dtype)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    model = MLP(data.dim, [int(w) for w in cfg.network.widths], data.classes,
                str(cfg.network.activation)).to(device=device, dtype=dtype)
    tr = cfg.train
    if tr.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=float(tr.lr), weight_decay=float(tr.weight_decay))
    else:
        opt = torch.optim.SGD(model.parameters(), lr=float(tr.lr), momentum=float(tr.momentum),
                              weight_decay=float(tr.weight_decay))
    ent = _Entropy(cfg, int(cfg.seed))
    alpha = ent.alpha

    # the fixed evaluation batch and the input / label Gram matrices
    n_train = data.x_train.shape[0]
    m = min(int(cfg.info.eval_size), n_train)
    idx = torch.randperm(n_train, generator=gen)[:m].to(device)
    xe, ye = data.x_train[idx], data.y_train[idx]
    AY = label_gram(ye, data.classes, sigma=float(cfg.info.label_sigma), dtype=torch.float64)
    gx = gram(xe.to(torch.float64), sigma=str(cfg.kernel.width), scale=float(cfg.kernel.scale),
              labels=ye)
    AX = gx.A
    HX, HY = float(ent(AX)), float(ent(AY))
    log.info("evaluation batch %d, H(X)=%.4f bits (sigma_x=%.4g), H(Y)=%.4f bits, alpha=%g",
             m, HX, gx.sigma, HY, alpha)
    if ntk:
        nk = min(int(cfg.ntk.size), m)
        xk, yk = xe[:nk], ye[:nk]
        Lk = label_gram(yk, data.classes, dtype=torch.float64)
        out_sel = cfg.ntk.output if cfg.ntk.output == "sum" else int(cfg.ntk.output)
        if out_sel != "sum" and out_sel >= data.classes:
            from wgf_cli.errors import ConfigError as _CE

            raise _CE(f"ntk.output must be sum or < {data.classes}, got {out_sel}")

    per_neuron_mode = str(cfg.info.per_neuron)
    layer_widths = [int(w) for w in cfg.network.widths] + [data.classes]
    L = len(layer_widths)
    epochs, bs = int(tr.epochs), int(tr.batch_size)
    iters_per_epoch = math.ceil(n_train / bs)
    total = epochs * iters_per_epoch
    every = int(cfg.info.every) or iters_per_epoch
    hist: dict[str, list] = {"step": [], "epoch": [], "I_XT": [], "I_TY": [], "H_T": [], "sigma": [],
                             "I_Y_layers": [], "test_acc": [], "train_loss": [], "ntk_H": [],
                             "ntk_align": [], "neurons": []}
    state = {"loss_sum": 0.0, "loss_n": 0, "last_loss": float("nan")}

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            acc = (model(data.x_test).argmax(1) == data.y_test).double().mean()
        model.train()
        return float(acc)

    def checkpoint(step: int, final: bool) -> None:
        epoch = step / iters_per_epoch
        acc = accuracy()
        loss = state["loss_sum"] / state["loss_n"] if state["loss_n"] else float("nan")
        state["loss_sum"], state["loss_n"] = 0.0, 0
        hist["step"].append(step)
        hist["epoch"].append(epoch)
        hist["test_acc"].append(acc)
        hist["train_loss"].append(loss)
        if ntk:
            K = empirical_ntk(model, xk, out_sel).to(torch.float64)
            A = gram(K, kernel="precomputed").A
            H = float(ent(A))
            al = float(alignment(K, Lk, centered=True))
            hist["ntk_H"].append(H)
            hist["ntk_align"].append(al)
            run.log_metrics(step, epoch=epoch, ntk_entropy=H, ntk_entropy_norm=H / math.log2(nk),
                            ntk_alignment=al, ntk_alignment_uncentered=float(alignment(K, Lk)),
                            test_acc=acc, train_loss=loss)
            return
        pn = per_neuron_mode == "every" or (per_neuron_mode == "final" and final)
        res = _measure(model, xe, ye, AX, AY, HX, HY, ent, cfg, pn)
        for key in ("I_XT", "I_TY", "H_T", "sigma"):
            hist[key].append([r[key] for r in res["layers"]])
        hist["I_Y_layers"].append(res.get("I_Y_layers", float("nan")))
        if pn:
            hist["neurons"].append((step, res["neurons"]))
        for li, r in enumerate(res["layers"], start=1):
            run.log_metrics(step, epoch=epoch, layer=li, width=layer_widths[li - 1],
                            I_XT=r["I_XT"], I_TY=r["I_TY"], H_T=r["H_T"], sigma=r["sigma"],
                            H_X=HX, H_Y=HY, I_Y_layers=res.get("I_Y_layers"), test_acc=acc,
                            train_loss=loss)

    model.train()
    step = 0
    checkpoint(0, final=False)
    with run.progress(total, f"renyi-mi {cfg.task}") as bar:
        for _ in range(epochs):
            perm = torch.randperm(n_train, generator=gen).to(device)
            for b in range(iters_per_epoch):
                sel = perm[b * bs:(b + 1) * bs]
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(data.x_train[sel]), data.y_train[sel])
                loss.backward()
                opt.step()
                state["loss_sum"] += float(loss.detach())
                state["loss_n"] += 1
                state["last_loss"] = float(loss.detach())
                step += 1
                if step % every == 0 or step == total:
                    checkpoint(step, final=step == total)
                bar.advance(loss=state["last_loss"])

    wall = time.perf_counter() - t_start
    summary: dict[str, Any] = {
        "task": str(cfg.task), "alpha": alpha, "entropy_method": ent.method,
        "dataset": str(cfg.dataset.name), "layers": L, "layer_widths": layer_widths,
        "activation": str(cfg.network.activation),
        "final_accuracy": hist["test_acc"][-1], "final_train_loss": hist["train_loss"][-1],
        "checkpoints": len(hist["step"]), "eval_size": m, "H_X": HX, "H_Y": HY, "sigma_x": gx.sigma,
        "kernel_width": str(cfg.kernel.width), "kernel_scale": float(cfg.kernel.scale),
        "device": device, "dtype": str(dtype).replace("torch.", ""),
    }
    if ntk:
        summary.update(ntk_size=nk, ntk_entropy_initial=hist["ntk_H"][0],
                       ntk_entropy_final=hist["ntk_H"][-1],
                       ntk_entropy_norm_final=hist["ntk_H"][-1] / math.log2(nk),
                       ntk_alignment_initial=hist["ntk_align"][0],
                       ntk_alignment_final=hist["ntk_align"][-1],
                       ntk_alignment_gain=hist["ntk_align"][-1] - hist["ntk_align"][0])
    else:
        ixt, ity = np.asarray(hist["I_XT"]), np.asarray(hist["I_TY"])
        tol = float(cfg.info.dpi_tol)
        summary.update(
            I_XT_final=ixt[-1].tolist(), I_TY_final=ity[-1].tolist(),
            sigma_final=list(hist["sigma"][-1]), I_Y_layers_final=hist["I_Y_layers"][-1],
            dpi_violations=int((np.diff(ixt, axis=1) > tol).sum()),
            dpi_violations_y=int((np.diff(ity, axis=1) > tol).sum()),
            dpi_checks=int(ixt.shape[0] * (ixt.shape[1] - 1)))
    summary["wall_s"] = round(wall, 3)

    _save_train(run, cfg, hist, layer_widths, ntk, summary)
    run.save_summary(summary)
    return summary


def _save_train(run, cfg, hist, layer_widths, ntk, summary) -> None:
    from wgf_cli.experiments import renyi_mi_plots as P

    arrays = {k: np.asarray(hist[k], dtype=float) for k in
              ("step", "epoch", "test_acc", "train_loss")}
    if ntk:
        arrays.update(ntk_entropy=np.asarray(hist["ntk_H"]), ntk_alignment=np.asarray(hist["ntk_align"]))
        run.save_arrays("ntk", **arrays)
        run.save_plot(P.ntk(hist, summary), "ntk")
        return
    arrays.update({k: np.asarray(hist[k], dtype=float) for k in ("I_XT", "I_TY", "H_T", "sigma")})
    arrays["I_Y_layers"] = np.asarray(hist["I_Y_layers"], dtype=float)
    run.save_arrays("infoplane", **arrays)
    if hist["neurons"]:
        neu = {"neuron_steps": np.asarray([s for s, _ in hist["neurons"]])}
        for li in range(len(layer_widths)):
            neu[f"layer{li + 1}_I_XT"] = np.stack([n[li]["I_XT"] for _, n in hist["neurons"]])
            neu[f"layer{li + 1}_I_TY"] = np.stack([n[li]["I_TY"] for _, n in hist["neurons"]])
        run.save_arrays("neurons", **neu)
        run.save_plot(P.neurons(hist["neurons"][-1][1], summary), "neurons")
    run.save_plot(P.infoplane(hist, summary), "infoplane")
    run.save_plot(P.mi_epochs(hist, summary), "mi_epochs")
    run.save_plot(P.dpi(hist, summary, float(cfg.info.dpi_tol)), "dpi")


# ----------------------------------------------------------------------------------------
# scaling
# ----------------------------------------------------------------------------------------
def mixture(size: int, features: int, components: int, seed: int):
    """``size`` points of a mixture of ``components`` unit Gaussians (centres ~ N(0, 4 I))."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(components, features, generator=g, dtype=torch.float64)
    return centres[torch.randint(0, components, (size,), generator=g)] + torch.randn(
        size, features, generator=g, dtype=torch.float64)


def _timed(fn, device: str, repeats: int):
    import torch

    best, out = float("inf"), None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _scaling(cfg: DictConfig, run) -> dict[str, Any]:
    import torch

    from wgf_cli.info import entropy_fast, gram, renyi_from_spectrum, spectrum

    t_start = time.perf_counter()
    device, _ = _setup(cfg)
    ent = _Entropy(cfg, int(cfg.seed))
    alpha = ent.alpha
    sc = cfg.scaling
    sizes = sorted(int(s) for s in sc.sizes)
    reps = int(sc.repeats)
    rows = []
    with run.progress(len(sizes), "renyi-mi scaling") as bar:
        for size in sizes:
            x = mixture(size, int(sc.features), int(sc.components), int(cfg.seed)).to(device)
            g = gram(x, sigma=str(cfg.kernel.width), scale=float(cfg.kernel.scale))
            A = g.A
            row: dict[str, Any] = {"size": size, "sigma": g.sigma}
            gen_seed = int(cfg.seed) + 1
            t_fast, res = _timed(lambda s=gen_seed, M=A: entropy_fast(
                M, alpha, generator=torch.Generator().manual_seed(s), **ent.fast), device, reps)
            row.update(fast_bits=res.entropy, fast_s=t_fast, error_estimate=res.error_estimate,
                       deflated=res.rank, top_mass=res.top_mass, fast_exact=res.exact,
                       probes=res.probes, steps=res.steps, blocks=res.blocks)
            if size <= int(sc.exact_max):
                t_exact, H = _timed(lambda M=A: float(renyi_from_spectrum(spectrum(M), alpha)), device,
                                    reps)
                err = abs(res.entropy - H)
                row.update(exact_bits=H, eigvalsh_s=t_exact, rel_error=err / abs(H),
                           speedup=t_exact / t_fast,
                           within_3_sigma=bool(err <= 3 * res.error_estimate + 1e-12))
            rows.append(row)
            run.log_metrics(size, **row)
            bar.advance(rel_error=row.get("rel_error", float("nan")))
            log.info("n=%d sigma=%.4g fast %.6f bits (%.3fs) exact %s rel.err %s", size, g.sigma,
                     res.entropy, t_fast, row.get("exact_bits"), row.get("rel_error"))
            del A, g, x
    ref = [r for r in rows if "rel_error" in r]
    wall = time.perf_counter() - t_start
    summary: dict[str, Any] = {
        "task": "scaling", "alpha": alpha, "n_max": sizes[-1],
        "kernel_width": str(cfg.kernel.width),
        **{f"fast_{k}": (str(v or "auto").replace("torch.", "") if k == "matmul_dtype" else v)
           for k, v in ent.fast.items()},
        "max_rel_error": max((r["rel_error"] for r in ref), default=None),
        "speedup_at_n_max": ref[-1]["speedup"] if ref else None,
        "rel_error_at_n_max": ref[-1]["rel_error"] if ref else None,
        "n_max_exact": ref[-1]["size"] if ref else None,
        "within_3_sigma": float(np.mean([r["within_3_sigma"] for r in ref])) if ref else None,
        "device": device, "wall_s": round(wall, 3),
    }
    from wgf_cli.experiments import renyi_mi_plots as P

    run.save_arrays("scaling", **{k: np.asarray([r.get(k, np.nan) for r in rows], dtype=float)
                                  for k in ("size", "sigma", "fast_bits", "exact_bits", "fast_s",
                                            "eigvalsh_s", "rel_error", "error_estimate")})
    fig_t, fig_e = P.scaling(rows, summary)
    run.save_plot(fig_t, "scaling_time")
    run.save_plot(fig_e, "scaling_error")
    run.save_summary(summary)
    return summary


# ----------------------------------------------------------------------------------------
# estimate
# ----------------------------------------------------------------------------------------
def _estimate(cfg: DictConfig, run) -> dict[str, Any]:
    import torch

    from wgf_cli.info import gram, hadamard, spectrum

    t_start = time.perf_counter()
    device, _ = _setup(cfg)
    ent = _Entropy(cfg, int(cfg.seed))
    arrays = _validate_inputs(cfg)
    grams, summary = {}, {"task": "estimate", "alpha": ent.alpha, "entropy_method": ent.method}
    for key, arr in arrays.items():
        t = torch.as_tensor(arr, dtype=torch.float64, device=device)
        kind = str(cfg.input[f"kernel_{key}"])
        g = gram(t, "precomputed") if kind == "precomputed" else gram(
            t, sigma=str(cfg.kernel.width), scale=float(cfg.kernel.scale))
        grams[key] = g.A
        summary[f"H_{key.upper()}"] = float(ent(g.A))
        summary[f"sigma_{key}"] = g.sigma
    summary["samples"] = int(arrays["x"].shape[0])
    if "y" in grams:
        hxy = float(ent(hadamard(grams["x"], grams["y"])))
        summary.update(H_XY=hxy, I_XY=summary["H_X"] + summary["H_Y"] - hxy,
                       H_X_given_Y=hxy - summary["H_Y"], H_Y_given_X=hxy - summary["H_X"])
    run.log_metrics(0, **{k: v for k, v in summary.items() if isinstance(v, int | float)})
    spectra = {k: spectrum(A).flip(-1).cpu().numpy() for k, A in grams.items()}
    run.save_arrays("spectra", **spectra)
    from wgf_cli.experiments import renyi_mi_plots as P

    run.save_plot(P.spectra(spectra, summary), "spectra")
    summary["wall_s"] = round(time.perf_counter() - t_start, 3)
    run.save_summary(summary)
    return summary
