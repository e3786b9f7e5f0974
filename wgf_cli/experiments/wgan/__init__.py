"""`wgf wgan`: wire the config to the GAN engine (``task=train``) or the Dirac-GAN pendulum
(``task=dirac``).

``task=train`` trains a generator against a critic (or, for ``loss=sinkhorn``, directly on the
Sinkhorn divergence) once per seed (``seed``, or the list ``seeds``).  Every ``eval.every``
iterations it logs ``iter, seed, w1, w2, critic_w1_estimate, modes_covered, hq_fraction,
reverse_kl, clip_boundary_fraction, clip_corner_fraction, gen_mean_*`` and the losses; every
``eval.track_every`` iterations it records the generator mean and mode histogram
(``trajectory.npz``) from which the oscillation is detected.  At the end: ``samples.npz``,
``seeds.csv``, ``checkpoints/last.pt`` (the models of the last seed), the plots and
``summary.json`` (keys in :data:`SUMMARY_KEYS`; with several seeds the mean and, in
``<key>_se``, the standard error over seeds).

``task=dirac`` integrates the Dirac-GAN flows and writes the phase portrait and the
comparison with the closed forms (``dirac.npz``, ``summary.json``).

``task=twopoint`` integrates the two-point GAN (generator weights on δ₋₁ and δ₊₁, clipped
linear critic) and compares its first integral, limit orbit and time to reach it with the
closed forms (``twopoint.npz``, ``plots/twopoint.png``).

``task=vanishing`` puts the closed-form JS divergence and W1 distance between two segments at
distance θ next to trained discriminators / WGAN-GP critics and the generator gradients they
give (``vanishing.csv``, ``plots/vanishing.png``).

``task=twospecies`` treats the WGAN as two interacting particle populations (generator
particles, critic neurons): the distance of finite-width runs to a large-width reference and
its rate in the width, and the critic's speed against oscillation (``twospecies.npz``,
``plots/twospecies.png``).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from wgf_cli.experiments import common as C
from wgf_cli.experiments.wgan.dirac import (
    run_dirac,
    run_twopoint,
    run_vanishing,
    validate_dirac,
    validate_twopoint,
    validate_vanishing,
)
from wgf_cli.experiments.wgan.presets import HEADLINE, PRESETS, SUMMARY_KEYS
from wgf_cli.experiments.wgan.train import ACTIVATIONS, DATASETS, LOSSES, OPTIMIZERS, run_train, validate_train
from wgf_cli.experiments.wgan.twospecies import run_twospecies, validate_twospecies

__all__ = ["ACTIVATIONS", "DATASETS", "HEADLINE", "LOSSES", "OPTIMIZERS", "PRESETS", "SUMMARY_KEYS", "TASKS",
           "run", "validate"]

TASKS = ["train", "dirac", "twopoint", "vanishing", "twospecies"]


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.choice(cfg, "dtype", ["float32", "float64"])
    C.integer(cfg, "threads", minimum=0)
    task = C.choice(cfg, "task", TASKS)
    {"twospecies": validate_twospecies, "twopoint": validate_twopoint, "vanishing": validate_vanishing,
     "dirac": validate_dirac, "train": validate_train}[task](cfg)


def run(cfg: DictConfig, run) -> dict[str, Any]:
    """Run the task of ``cfg``; returns the summary (also written to ``summary.json``)."""
    return {"twospecies": run_twospecies, "dirac": run_dirac, "twopoint": run_twopoint, "vanishing": run_vanishing,
            "train": run_train}[str(cfg.task)](cfg, run)
