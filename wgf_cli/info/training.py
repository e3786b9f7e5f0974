"""Train a classifier and measure its layers' matrix-based Rényi information as it learns.

:func:`train_with_information` runs plain minibatch training (Adam or SGD, cross entropy)
of an :class:`~wgf_cli.info.models.MLP` and, every ``MeasureConfig.every`` iterations, measures
on a fixed evaluation batch drawn once from the training set either

* the information plane (:func:`measure_layers`): ``I(X;T_l)``, ``I(T_l;Y)``, ``H(T_l)`` of
  every layer, the multivariate ``I(Y; {T_1..T_L})`` and, when asked, per-neuron
  ``I(X;T_lj)``, ``I(T_lj;Y)``; or
* the empirical neural tangent kernel (``MeasureConfig.ntk_size`` set): the Rényi entropy
  of its normalized Gram matrix and its alignment with the label kernel.

Quick use::

    import torch
    from wgf_cli.info.models import MLP, load_dataset
    from wgf_cli.info.training import (EntropyEstimator, MeasureConfig, TrainConfig,
                                       train_with_information)

    data = load_dataset("digits", dtype=torch.float64)
    torch.manual_seed(0)
    model = MLP(data.dim, [16, 8], data.classes).double()
    hist = train_with_information(model, data, EntropyEstimator(alpha=1.01),
                                  TrainConfig(epochs=2), MeasureConfig(every=10, eval_size=80),
                                  torch.Generator().manual_seed(0))
    hist.I_XT[-1]  # I(X;T_l) per layer at the last checkpoint, bits

Everything is in bits; entropies are computed in float64 whatever the network's dtype.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wgf_cli.info.entropy import entropy, hadamard
from wgf_cli.info.kernels import alignment, gram, label_gram
from wgf_cli.info.models import Dataset
from wgf_cli.info.ntk import empirical_ntk

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")
PER_NEURON = ("final", "every", "never")


@dataclass
class EntropyEstimator:
    """The Rényi entropy (bits) of a trace-normalized Gram matrix, with one choice of method.

    Args:
        alpha: Rényi order (> 0; 1 = von Neumann).
        method: ``auto`` | ``eig`` | ``frobenius`` | ``fast`` (see :func:`wgf_cli.info.entropy`).
        fast: keyword arguments of the fast path (``block``, ``blocks``, ``probes``, ``steps``,
            ``tol``, ``matmul_dtype``); ``None`` values are chosen adaptively.
        seed: seed of the fast path's probes; every call uses a fresh generator with it, so
            the same matrix always gives the same estimate.
    """

    alpha: float
    method: str = "auto"
    fast: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __call__(self, A: torch.Tensor) -> torch.Tensor:
        """Entropy of ``A`` [n, n] (a 0-d tensor) or of each matrix of a stack [k, n, n] ([k])."""
        if self.method != "fast":
            return entropy(A, self.alpha, self.method)
        if A.dim() == 2:
            return entropy(A, self.alpha, "fast", generator=torch.Generator().manual_seed(self.seed),
                           **self.fast)
        return torch.stack([self(a) for a in A])


@dataclass
class TrainConfig:
    """Minibatch training of the classifier (cross entropy).

    Args:
        epochs: passes over the training set.
        batch_size: samples per iteration (a fresh random permutation every epoch).
        lr: learning rate.
        optimizer: ``adam`` | ``sgd``.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 weight decay of the optimizer.
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0

    def optimizer_for(self, params) -> torch.optim.Optimizer:
        """The configured optimizer over ``params``."""
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                                   weight_decay=self.weight_decay)
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")


@dataclass
class MeasureConfig:
    """What is measured, how often, and with which kernels.

    Args:
        every: training iterations between measurements (0: at the end of every epoch);
            there is always one before training and one after the last iteration.
        eval_size: size of the fixed evaluation batch (at most the training set).
        label_sigma: width of the Gaussian label kernel on one-hot labels.
        kernel_width: width rule of the Gaussian kernels of inputs and layers
            (:func:`wgf_cli.info.kernels.parse_width`).
        kernel_scale: factor on every width.
        multivariate: measure ``I(Y; {T_1..T_L})`` at each checkpoint.
        per_neuron: ``final`` | ``every`` | ``never``: per-neuron information.
        ntk_size: measure the empirical NTK on the first ``ntk_size`` samples of the
            evaluation batch instead of the layers (``None``: the information plane).
        ntk_output: ``"sum"`` or the output index whose NTK is measured.
    """

    every: int = 20
    eval_size: int = 500
    label_sigma: float = 0.1
    kernel_width: str = "silverman"
    kernel_scale: float = 1.0
    multivariate: bool = True
    per_neuron: str = "final"
    ntk_size: int | None = None
    ntk_output: int | str = "sum"


@dataclass
class Checkpoint:
    """One measurement during training (handed to ``on_checkpoint``).

    ``H_X``, ``H_Y`` are the evaluation batch's input and label entropies; ``layers`` holds one
    dict per layer (``I_XT``, ``I_TY``, ``H_T``, ``sigma``) for the information plane;
    ``ntk_entropy``, ``ntk_alignment`` (centered) and ``ntk_alignment_uncentered`` are set
    for the NTK.
    """

    step: int
    epoch: float
    test_acc: float
    train_loss: float
    final: bool
    H_X: float
    H_Y: float
    layers: list[dict[str, float]] = field(default_factory=list)
    I_Y_layers: float | None = None
    neurons: list[dict[str, np.ndarray]] | None = None
    ntk_entropy: float | None = None
    ntk_alignment: float | None = None
    ntk_alignment_uncentered: float | None = None


@dataclass
class TrainHistory:
    """Everything measured during :func:`train_with_information`, one entry per checkpoint.

    ``I_XT``, ``I_TY``, ``H_T``, ``sigma`` are per checkpoint lists over layers;
    ``neurons`` lists ``(step, per-layer dicts of arrays)`` where per-neuron information was
    measured.  ``H_X``, ``H_Y``, ``sigma_x`` describe the evaluation batch; ``ntk_size`` is
    the NTK sample count (0 for the information plane).
    """

    eval_size: int
    H_X: float
    H_Y: float
    sigma_x: float
    layer_widths: list[int]
    ntk_size: int = 0
    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    I_XT: list[list[float]] = field(default_factory=list)
    I_TY: list[list[float]] = field(default_factory=list)
    H_T: list[list[float]] = field(default_factory=list)
    sigma: list[list[float]] = field(default_factory=list)
    I_Y_layers: list[float] = field(default_factory=list)
    ntk_entropy: list[float] = field(default_factory=list)
    ntk_alignment: list[float] = field(default_factory=list)
    neurons: list[tuple[int, list[dict[str, np.ndarray]]]] = field(default_factory=list)


def measure_layers(model: torch.nn.Module, xe: torch.Tensor, ye: torch.Tensor, AX: torch.Tensor,
                   AY: torch.Tensor, HX: float, HY: float, ent: Callable[[torch.Tensor], torch.Tensor],
                   config: MeasureConfig, per_neuron: bool) -> dict[str, Any]:
    """Every information quantity of one checkpoint on the evaluation batch.

    Args:
        model: a network with ``layers(x)`` returning every layer's activations.
        xe: evaluation inputs [m, d].
        ye: labels of ``xe`` [m].
        AX: normalized input Gram matrix (float64, [m, m]).
        AY: normalized label Gram matrix (float64, [m, m]).
        HX: ``S(AX)``, the input entropy (bits).
        HY: ``S(AY)``, the label entropy (bits).
        ent: the entropy functional (e.g. an :class:`EntropyEstimator`).
        config: kernel width rule and scale, ``multivariate``.
        per_neuron: also measure every neuron alone.

    Returns:
        ``{"layers": [{"H_T", "I_XT", "I_TY", "sigma"}, ...]}`` plus ``"I_Y_layers"`` when
            ``config.multivariate`` and ``"neurons"`` (per layer ``{"I_XT", "I_TY"}`` arrays
            over neurons) when ``per_neuron``.
    """
    width, scale = str(config.kernel_width), float(config.kernel_scale)
    with torch.no_grad():
        Ts = [t.to(torch.float64) for t in model.layers(xe)]
    out: dict[str, Any] = {"layers": []}
    grams = []
    for T in Ts:
        g = gram(T, sigma=width, scale=scale, labels=ye)
        A = g.A
        grams.append(A)
        HT = float(ent(A))
        HXT = float(ent(hadamard(AX, A)))
        HTY = float(ent(hadamard(A, AY)))
        out["layers"].append({"H_T": HT, "I_XT": HX + HT - HXT, "I_TY": HT + HY - HTY,
                              "sigma": g.sigma})
    if config.multivariate:
        HTs = float(ent(hadamard(*grams)))
        HTsY = float(ent(hadamard(*grams, AY)))
        out["I_Y_layers"] = HY + HTs - HTsY
    if per_neuron:
        out["neurons"] = []
        for T in Ts:
            As = torch.stack([gram(T[:, j], sigma=width, scale=scale, labels=ye).A
                              for j in range(T.shape[1])])
            H = ent(As)
            ixt = HX + H - ent(hadamard(AX, As))
            ity = H + HY - ent(hadamard(As, AY))
            out["neurons"].append({"I_XT": ixt.cpu().numpy(), "I_TY": ity.cpu().numpy()})
    return out


def iterations(n_train: int, train: TrainConfig) -> tuple[int, int]:
    """``(iterations per epoch, total iterations)`` of training on ``n_train`` samples."""
    per_epoch = math.ceil(n_train / train.batch_size)
    return per_epoch, train.epochs * per_epoch


def train_with_information(model: torch.nn.Module, data: Dataset, ent: Callable[[torch.Tensor], torch.Tensor],
                           train: TrainConfig, measure: MeasureConfig, generator: torch.Generator, *,
                           on_checkpoint: Callable[[Checkpoint], None] | None = None,
                           on_step: Callable[[int, float], None] | None = None) -> TrainHistory:
    """Train ``model`` on ``data`` and measure its information at checkpoints.

    The evaluation batch (``measure.eval_size`` training samples) is drawn first from
    ``generator``, which then draws every epoch's permutation.  Checkpoints: before
    training, every ``measure.every`` iterations (0: every epoch) and after the last one.

    Args:
        model: an :class:`~wgf_cli.info.models.MLP` (``layers(x)``, logits out) on the data's
            device and dtype.
        data: train/test split (:func:`~wgf_cli.info.models.load_dataset`).
        ent: entropy of a normalized Gram matrix in bits (e.g. :class:`EntropyEstimator`).
        train: optimizer and schedule.
        measure: what to measure and how often.
        generator: CPU generator of the evaluation batch and the permutations.
        on_checkpoint: called with each :class:`Checkpoint` as it is measured.
        on_step: called after every iteration with ``(step, loss)``.

    Returns:
        The :class:`TrainHistory`.

    Raises:
        ValueError: ``measure.ntk_output`` is not ``"sum"`` nor an index below the classes.
    """
    device = data.x_train.device
    opt = train.optimizer_for(model.parameters())

    # the fixed evaluation batch and the input / label Gram matrices
    n_train = data.x_train.shape[0]
    m = min(int(measure.eval_size), n_train)
    idx = torch.randperm(n_train, generator=generator)[:m].to(device)
    xe, ye = data.x_train[idx], data.y_train[idx]
    AY = label_gram(ye, data.classes, sigma=float(measure.label_sigma), dtype=torch.float64)
    gx = gram(xe.to(torch.float64), sigma=str(measure.kernel_width), scale=float(measure.kernel_scale),
              labels=ye)
    AX = gx.A
    HX, HY = float(ent(AX)), float(ent(AY))
    log.info("evaluation batch %d, H(X)=%.4f bits (sigma_x=%.4g), H(Y)=%.4f bits, alpha=%g",
             m, HX, gx.sigma, HY, getattr(ent, "alpha", float("nan")))
    ntk = measure.ntk_size is not None
    nk = 0
    if ntk:
        nk = min(int(measure.ntk_size), m)
        xk = xe[:nk]
        Lk = label_gram(ye[:nk], data.classes, dtype=torch.float64)
        out_sel = measure.ntk_output if measure.ntk_output == "sum" else int(measure.ntk_output)
        if out_sel != "sum" and out_sel >= data.classes:
            raise ValueError(f"ntk.output must be sum or < {data.classes}, got {out_sel}")

    hist = TrainHistory(eval_size=m, H_X=HX, H_Y=HY, sigma_x=gx.sigma,
                        layer_widths=[lin.out_features for lin in model.hidden] + [data.classes],
                        ntk_size=nk)
    iters_per_epoch, total = iterations(n_train, train)
    every = int(measure.every) or iters_per_epoch
    state = {"loss_sum": 0.0, "loss_n": 0}

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
        hist.step.append(step)
        hist.epoch.append(epoch)
        hist.test_acc.append(acc)
        hist.train_loss.append(loss)
        point = Checkpoint(step, epoch, acc, loss, final, HX, HY)
        if ntk:
            K = empirical_ntk(model, xk, out_sel).to(torch.float64)
            A = gram(K, kernel="precomputed").A
            point.ntk_entropy = float(ent(A))
            point.ntk_alignment = float(alignment(K, Lk, centered=True))
            point.ntk_alignment_uncentered = float(alignment(K, Lk))
            hist.ntk_entropy.append(point.ntk_entropy)
            hist.ntk_alignment.append(point.ntk_alignment)
        else:
            pn = measure.per_neuron == "every" or (measure.per_neuron == "final" and final)
            res = measure_layers(model, xe, ye, AX, AY, HX, HY, ent, measure, pn)
            point.layers = res["layers"]
            point.I_Y_layers = res.get("I_Y_layers")
            for key in ("I_XT", "I_TY", "H_T", "sigma"):
                getattr(hist, key).append([r[key] for r in res["layers"]])
            hist.I_Y_layers.append(res.get("I_Y_layers", float("nan")))
            if pn:
                point.neurons = res["neurons"]
                hist.neurons.append((step, res["neurons"]))
        if on_checkpoint is not None:
            on_checkpoint(point)

    model.train()
    step = 0
    checkpoint(0, final=False)
    for _ in range(train.epochs):
        perm = torch.randperm(n_train, generator=generator).to(device)
        for b in range(iters_per_epoch):
            sel = perm[b * train.batch_size:(b + 1) * train.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(data.x_train[sel]), data.y_train[sel])
            loss.backward()
            opt.step()
            state["loss_sum"] += float(loss.detach())
            state["loss_n"] += 1
            step += 1
            if step % every == 0 or step == total:
                checkpoint(step, final=step == total)
            if on_step is not None:
                on_step(step, float(loss.detach()))
    return hist
