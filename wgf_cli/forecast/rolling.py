"""Rolling-origin evaluation: forecast every observed (country, day) from its past only.

:func:`rolling_targets` lists the targets (every observed country-day in a range of days);
:func:`predict_rolling` forecasts them with one or more trained networks, optionally
fine-tuning every network before each block of ``refit_every`` test days on the windows
whose targets lie in the ``refit_window`` days before the block (the networks never see a
block's own days before forecasting them)::

    c, d = rolling_targets(build, first_day=last_val + 1, context=50)
    test = SequenceData(build, "test", 50, targets=(c, d))
    preds = predict_rolling({"model": net}, build, test, context=50)
    preds["model"].root_probs   # [N, 20]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from wgf_cli.forecast.baselines import Prediction
from wgf_cli.forecast.data import GdeltBuild, SequenceData
from wgf_cli.forecast.model import Forecaster
from wgf_cli.forecast.prior import Prior
from wgf_cli.forecast.train import TrainConfig, fine_tune, predict


def rolling_targets(build: GdeltBuild, first_day: int, context: int, last_day: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Every observed (country, day) with ``first_day <= day <= last_day`` and ``day >= context``.

    Args:
        build: the GDELT build.
        first_day: first day index.
        context: days of history a target needs (earlier days are skipped).
        last_day: last day index; the build's last day by default.

    Returns:
        ``(country indices, days)``, int64, in day order.
    """
    last = len(build.days) - 1 if last_day is None else last_day
    days = np.arange(max(first_day, context), last + 1)
    c, d = np.nonzero(build.observed[:, days])
    order = np.lexsort((c, d))
    return c[order].astype(np.int64), days[d[order]].astype(np.int64)


@dataclass
class Refit:
    """Fine-tuning before every block of test days (rolling protocol).

    Args:
        every: test days per block (0: no fine-tuning, one block).
        window: the fine-tuning windows' targets lie in this many days before the block.
        steps: AdamW steps per network and block.
        lr: their learning rate.
        seed: block ``k`` fine-tunes with seed ``seed + k``.
        configs: each network's :class:`~wgf_cli.forecast.train.TrainConfig` (batch size,
            loss weights) by name.
    """

    every: int = 0
    window: int = 60
    steps: int = 20
    lr: float = 3e-4
    seed: int = 0
    configs: Mapping[str, TrainConfig] | None = None


def as_prediction(name: str, p: Mapping[str, np.ndarray | None]) -> Prediction:
    """A :func:`~wgf_cli.forecast.train.predict` output as a named :class:`Prediction`."""
    return Prediction(name, p["root_probs"], p["quad_probs"], p["occur_probs"], p["total_mean"],
                      p["alpha"], p["cloud_x"], p["cloud_w"])


def predict_rolling(models: Mapping[str, Forecaster], build: GdeltBuild, test: SequenceData, context: int,
                    prior: Prior | None = None, device: str = "cpu", refit: Refit | None = None
                    ) -> dict[str, Prediction]:
    """Each network's forecasts of the targets of ``test``.

    Args:
        models: the networks by name (fine-tuned in place when ``refit.every`` > 0).
        build: the build the targets come from.
        test: the targets (any order; blocks follow their days).
        context: days of history per forecast.
        prior: the prior the networks were trained with (``None``: none).
        device: where to run the networks.
        refit: fine-tuning between blocks of test days (``None`` or ``every=0``: none).

    Returns:
        One :class:`~wgf_cli.forecast.baselines.Prediction` per network, rows in ``test``'s
            order.
    """
    refit = refit or Refit()
    every = int(refit.every)
    t = test.target_day.numpy()
    c = test.country.numpy()
    days = np.unique(t)
    blocks = [days[i: i + every] for i in range(0, len(days), every)] if every else [days]
    out: dict[str, list] = {name: [] for name in models}
    for k, block in enumerate(blocks):
        rows = np.flatnonzero(np.isin(t, block))
        if k > 0:
            lo = int(block[0]) - int(refit.window)
            fc, fd = rolling_targets(build, lo, context, int(block[0]) - 1)
            recent = SequenceData(build, "refit", context, targets=(fc, fd), prior=prior)
            for name, m in models.items():
                fine_tune(m, recent, refit.configs[name], steps=int(refit.steps), lr=float(refit.lr),
                          device=device, seed=int(refit.seed) + k)
        part = SequenceData(build, "test", context, targets=(c[rows], t[rows]), prior=prior)
        for name, m in models.items():
            out[name].append((rows, predict(m, part, device=device)))
    preds = {}
    for name, parts in out.items():
        merged: dict[str, np.ndarray | None] = {}
        for key in parts[0][1]:
            if parts[0][1][key] is None:
                merged[key] = None
                continue
            arr = np.zeros((len(test), *parts[0][1][key].shape[1:]), parts[0][1][key].dtype)
            for rows, p in parts:
                arr[rows] = p[key]
            merged[key] = arr
        preds[name] = as_prediction(name, merged)
    return preds
