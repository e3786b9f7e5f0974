"""A fresh :class:`~wgf_cli.forecast.model.Forecaster` for a build.

Its output biases are set from the training base rates (and, for a mixture head, its mixes
from the training days)::

    clim = climatology_tables(build, last_train_day)
    net = new_forecaster(build, clim, context=50, arch={"d_model": 64, "layers": 2}, seed=0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from wgf_cli.forecast.baselines import event_mixes
from wgf_cli.forecast.data import GdeltBuild
from wgf_cli.forecast.model import Forecaster, ModelConfig


def architecture(options: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``options`` that are :class:`ModelConfig` fields (others are dropped)."""
    return {f.name: options[f.name] for f in dataclasses.fields(ModelConfig) if f.name in options}


def new_forecaster(build: GdeltBuild, clim: Mapping[str, Any], context: int, arch: Mapping[str, Any],
                   dtype: torch.dtype = torch.float32, seed: int = 0, alpha: float = 0.1) -> Forecaster:
    """A freshly initialised network for ``build``.

    Args:
        build: the build (countries, descriptor dimension, atoms per day).
        clim: :func:`~wgf_cli.forecast.baselines.climatology_tables` of the training days
            (``cells``, ``total``, ``last_train_day``).
        context: days of history per forecast.
        arch: :class:`~wgf_cli.forecast.model.ModelConfig` fields (backbone, sizes, heads).
        dtype: parameter dtype.
        seed: ``torch.manual_seed`` before the weights are drawn (the global generator).
        alpha: initial negative-binomial dispersion of the count head.

    Returns:
        The :class:`~wgf_cli.forecast.model.Forecaster`, biases initialised, in ``dtype``.
    """
    mc = ModelConfig(build.n_countries, build.dim, build.k, int(context), **arch)
    torch.manual_seed(int(seed))
    model = Forecaster(mc)
    mixes = None
    if mc.mixture:
        mixes = torch.as_tensor(event_mixes(build, clim["last_train_day"], mc.mixture), dtype=torch.float32)
    model.init_biases(torch.as_tensor(clim["cells"].mean(0), dtype=torch.float32),
                      float(clim["total"].mean()), alpha=alpha, mixes=mixes,
                      country_totals=torch.as_tensor(clim["total"], dtype=torch.float32))
    return model.to(dtype)
