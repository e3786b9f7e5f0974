"""``wgf wgan task=twospecies``: WGAN as two interacting particle populations.

A width study (generator and critic widths ``m, n = ratio * m`` to infinity under the
mean-field scaling; the distance of each finite-width run's curves to a large-width reference,
its fitted rate and interval) and a critic-speed study (convergence against oscillation), on
the engine :mod:`wgf_cli.gan.two_species`.  Logs one row per ``(width, seed)`` and per speed;
writes ``twospecies.npz``, ``plots/twospecies.png`` and ``summary.json``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C


def _numbers(cfg: DictConfig, key: str, kind=float, minimum: float | None = None) -> list:
    value = C.get(cfg, key)
    ok = isinstance(value, ListConfig | list) and len(value) > 0 and all(
        isinstance(v, int if kind is int else int | float) and not isinstance(v, bool) for v in value)
    if not ok or (minimum is not None and min(value) < minimum):
        what = "integers" if kind is int else "numbers"
        bound = "" if minimum is None else f" >= {minimum}"
        raise ConfigError(f"{key} must be a non-empty list of {what}{bound}, got {value!r}")
    return [kind(v) for v in value]


def validate_twospecies(cfg: DictConfig) -> None:
    """``twospecies.*``: widths, seeds, reference, speeds, the flow's data and step."""
    widths = _numbers(cfg, "twospecies.widths", int, minimum=2)
    if len(set(widths)) < 2:
        raise ConfigError(f"twospecies.widths needs at least two different widths, got {widths}")
    C.number(cfg, "twospecies.critic_ratio", positive=True)
    C.integer(cfg, "twospecies.seeds", minimum=2)
    ref = C.integer(cfg, "twospecies.reference_width", minimum=2)
    if ref < 4 * max(widths):
        raise ConfigError(f"twospecies.reference_width must be >= 4 x the largest width ({4 * max(widths)}), "
                          f"got {ref}")
    C.number(cfg, "twospecies.critic_speed", positive=True)
    _numbers(cfg, "twospecies.speeds")
    if min(cfg.twospecies.speeds) <= 0:
        raise ConfigError(f"twospecies.speeds must be > 0, got {list(cfg.twospecies.speeds)}")
    C.integer(cfg, "twospecies.speed_width", minimum=2)
    C.number(cfg, "twospecies.speed_time", positive=True)
    C.number(cfg, "twospecies.weight_decay", minimum=0.0)
    _numbers(cfg, "twospecies.data_means")
    C.number(cfg, "twospecies.data_std", positive=True)
    C.integer(cfg, "twospecies.data_points", minimum=len(cfg.twospecies.data_means))
    C.number(cfg, "twospecies.init_std", positive=True)
    C.number(cfg, "twospecies.time", positive=True)
    dt = C.number(cfg, "twospecies.dt", positive=True, maximum=0.2)
    if dt > float(cfg.twospecies.time):
        raise ConfigError(f"twospecies.dt={dt} is longer than twospecies.time={cfg.twospecies.time}")


def _base(cfg: DictConfig):
    from wgf_cli.gan.two_species import TwoSpeciesConfig

    d = cfg.twospecies
    return TwoSpeciesConfig(data_means=tuple(float(v) for v in d.data_means), data_std=float(d.data_std),
                            data_points=int(d.data_points), init_std=float(d.init_std),
                            weight_decay=float(d.weight_decay), critic_speed=float(d.critic_speed),
                            time=float(d.time), dt=float(d.dt), seed=int(cfg.seed))


def run_twospecies(cfg: DictConfig, run) -> dict[str, Any]:
    """The width study and the critic-speed study; returns the summary."""
    from dataclasses import replace

    import torch

    from wgf_cli.experiments.wgan import plots as wgan_plots
    from wgf_cli.gan import two_species as S

    t_start = time.perf_counter()
    if int(cfg.threads) > 0:
        torch.set_num_threads(int(cfg.threads))
    d = cfg.twospecies
    base = _base(cfg)
    widths = [int(w) for w in d.widths]
    seeds = [int(cfg.seed) + k for k in range(int(d.seeds))]
    ref_seed = int(cfg.seed) + 10_000
    with run.progress(len(widths) + 1, "two-species width study") as bar:
        study = S.width_study(base, widths, seeds, int(d.reference_width), critic_ratio=float(d.critic_ratio),
                              reference_seed=ref_seed, progress=lambda line: bar.advance(1))
    for i, m in enumerate(widths):
        for j, s in enumerate(seeds):
            run.log_metrics(i * len(seeds) + j, part="width", width=m, seed=s, distance=study.distances[i, j])
    m_speed = int(d.speed_width)
    speed_base = replace(base, gen_width=m_speed, critic_width=max(1, round(float(d.critic_ratio) * m_speed)),
                         time=float(d.speed_time))
    with run.progress(len(d.speeds), "critic speeds") as bar:
        speeds = []
        for eta in d.speeds:
            speeds.extend(S.critic_speed_study(speed_base, [float(eta)]))
            bar.advance(1)
    offset = len(widths) * len(seeds)
    for k, r in enumerate(speeds):
        run.log_metrics(offset + k, part="speed", critic_speed=r.critic_speed, w2_final=r.w2_final,
                        w2_late_range=r.w2_late_range, amplitude=r.amplitude, settle_time=r.settle_time)
    slow = min(speeds, key=lambda r: r.critic_speed)
    fast = max(speeds, key=lambda r: r.critic_speed)
    mean_dist = study.distances.mean(1)
    summary = {
        "task": "twospecies", "widths": widths, "critic_ratio": float(d.critic_ratio), "seeds_per_width": len(seeds),
        "reference_width": study.reference_width, "weight_decay": base.weight_decay,
        "critic_speed": base.critic_speed,
        "twospecies_slope": study.slope,
        "twospecies_slope_ci_low": study.slope_ci[0], "twospecies_slope_ci_high": study.slope_ci[1],
        "twospecies_slope_reg_ci_low": study.slope_reg_ci[0], "twospecies_slope_reg_ci_high": study.slope_reg_ci[1],
        "twospecies_clt_in_ci": bool(study.slope_ci[0] <= -0.5 <= study.slope_ci[1]),
        "twospecies_distance_by_width": [float(v) for v in mean_dist],
        "twospecies_reference_w2_final": float(study.reference.w2[-1]),
        "speeds": [r.critic_speed for r in speeds],
        "speed_w2_final": [r.w2_final for r in speeds],
        "speed_amplitude": [r.amplitude for r in speeds],
        "speed_settle_time": [r.settle_time for r in speeds],
        "speed_slowest_amplitude": slow.amplitude, "speed_slowest_w2_late_range": slow.w2_late_range,
        "speed_fastest_amplitude": fast.amplitude, "speed_fastest_w2_late_range": fast.w2_late_range,
        "wall_s": round(time.perf_counter() - t_start, 3),
    }
    ref = study.reference
    run.save_arrays("twospecies", widths=np.array(widths), seeds=np.array(seeds), distances=study.distances,
                    times=ref.times, reference_w2=ref.w2, reference_observables=ref.observables(),
                    reference_particles=ref.particles, speeds=np.array([r.critic_speed for r in speeds]),
                    speed_times=speeds[0].run.times, speed_w2=np.stack([r.run.w2 for r in speeds]),
                    speed_gen_mean=np.stack([r.run.gen_mean for r in speeds]))
    wgan_plots.twospecies_figure(run, base, study, speeds)
    run.save_summary(summary)
    return summary
