"""Measurements of a GAN run.

Exact transport distances, mode metrics, clipping statistics and oscillation detection.

- :func:`wasserstein`: exact W1 / W2 between two empirical measures with POT's network simplex
  (``ot.emd2``; CPU, float64); in 1-D by sorting, which is exact too
  (:func:`wgf_cli.ot.pointcloud.w2`).
- :func:`mode_metrics`: the PacGAN / VEEGAN mode metrics -- each sample goes to its nearest
  mode in standardized distance ``‖x − c_k‖ / σ``; it is *high quality* when that distance is
  below ``threshold`` (3 std); a mode is *covered* when at least ``min_count`` high-quality
  samples fall on it; the reverse KL is ``KL(p̂ ‖ uniform)`` of the histogram of the
  high-quality samples over the modes.
- :func:`clip_statistics`: the fraction of critic parameters at ±c (within ``rtol·c``) and
  the fraction of neurons whose whole parameter box ``(w_i, b_i)`` sits on a corner.
- :func:`detect_oscillation`: dominant period and amplitude of a time series from its
  spectrum, and whether the trajectory is periodic rather than convergent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from wgf_cli.gan.models import linear_layers
from wgf_cli.ot.pointcloud import w2


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def wasserstein(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, p: int = 1) -> float:
    """Exact ``W_p`` between the uniform empirical measures on ``x`` and ``y``.

    :func:`wgf_cli.ot.pointcloud.w2` on float64 NumPy copies (CPU), whatever the inputs' device.

    Args:
        x: ``(n, d)`` samples (or ``(n,)`` on the line).
        y: ``(m, d)`` samples.
        p: 1 or 2.

    Returns:
        The distance, a float.

    Raises:
        ValueError: If ``p`` is not 1 or 2.
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    return w2(_np(x), _np(y), p=p)


@dataclass
class ModeMetrics:
    """Mode metrics of a sample set (see :func:`mode_metrics`).

    Attributes:
        counts: ``(K,)`` number of high-quality samples per mode.
        nearest: ``(n,)`` index of each sample's nearest mode.
        high_quality: ``(n,)`` bool, whether each sample lies within the threshold of its mode.
        modes_covered: number of modes with at least ``min_count`` high-quality samples.
        hq_fraction: fraction of the samples that are high quality (nan with no samples).
        reverse_kl: ``KL(p̂ ‖ uniform)`` of the high-quality histogram over the modes, in nats
            (nan when no sample is high quality).
        n_modes: number of modes ``K``.
    """

    counts: np.ndarray  # (K,) high-quality samples per mode
    nearest: np.ndarray  # (n,) nearest mode of each sample
    high_quality: np.ndarray  # (n,) bool
    modes_covered: int
    hq_fraction: float
    reverse_kl: float  # nan when no sample is high quality
    n_modes: int

    @property
    def fractions(self) -> np.ndarray:
        """Fraction of *all* samples whose nearest mode is k (the mode-assignment histogram)."""
        return np.bincount(self.nearest, minlength=self.n_modes) / max(len(self.nearest), 1)


def mode_metrics(samples: torch.Tensor | np.ndarray, centres: torch.Tensor | np.ndarray, std: float,
                 threshold: float = 3.0, min_count: int = 1) -> ModeMetrics:
    """PacGAN mode metrics of ``samples`` (n x d) for modes at ``centres`` (K x d) of std ``std``.

    Args:
        samples: ``(n, d)`` generated samples (or ``(n,)`` on the line).
        centres: ``(K, d)`` mode centres.
        std: standard deviation of each mode; distances are measured in units of it.
        threshold: standardized distance below which a sample is high quality (3 std).
        min_count: high-quality samples a mode needs to count as covered.

    Returns:
        The :class:`ModeMetrics`.
    """
    x, c = _np(samples), _np(centres)
    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1) / std**2
    nearest = d2.argmin(1)
    hq = np.sqrt(d2[np.arange(len(x)), nearest]) < threshold
    K = len(c)
    counts = np.bincount(nearest[hq], minlength=K).astype(np.float64)
    total = counts.sum()
    if total > 0:
        p = counts / total
        nz = p > 0
        rkl = float(np.sum(p[nz] * np.log(p[nz] * K)))
    else:
        rkl = float("nan")
    return ModeMetrics(counts, nearest, hq, int((counts >= min_count).sum()),
                       float(hq.mean()) if len(x) else float("nan"), rkl, K)


def mode_collapse(m: ModeMetrics, share: float = 0.2) -> bool:
    """Whether some mode holds less than ``share`` of its fair share ``1/K`` of the high-quality samples.

    Such a mode (or the absence of any high-quality sample) means the generator dropped or
    starved it.

    Args:
        m: the mode metrics of a sample set.
        share: fraction of the fair share ``1/K`` below which a mode counts as collapsed.

    Returns:
        ``True`` if a mode collapsed or no sample is high quality.
    """
    total = m.counts.sum()
    if total == 0:
        return True
    return bool((m.counts / total < share / m.n_modes).any())


@dataclass
class ClipStatistics:
    """Where a weight-clipped critic's parameters sit in the box ``[-c, c]``.

    Attributes:
        boundary_fraction: fraction of the parameters with ``|p| >= c (1 - rtol)``.
        corner_fraction: fraction of the neurons with every incoming weight and bias at ±c.
        face_fraction: fraction of the neurons with at least one coordinate at ±c.
        n_parameters: number of parameters counted.
        n_neurons: number of neurons (rows of the Linear layers) counted.
    """

    boundary_fraction: float  # parameters with |p| >= c (1 - rtol)
    corner_fraction: float  # neurons with every incoming weight and bias at ±c
    face_fraction: float  # neurons with at least one coordinate at ±c
    n_parameters: int
    n_neurons: int


@torch.no_grad()
def clip_statistics(critic: nn.Module, c: float, rtol: float = 1e-6) -> ClipStatistics:
    """Where the critic's parameters sit in the box [−c, c] (every Linear layer, biases included).

    Args:
        critic: the critic network.
        c: the clipping bound.
        rtol: relative tolerance: a parameter with ``|p| >= c (1 - rtol)`` is at the bound.

    Returns:
        The :class:`ClipStatistics`.
    """
    tol = c * (1 - rtol)
    on = [(p.detach().abs() >= tol) for p in critic.parameters()]
    n_par = sum(o.numel() for o in on)
    boundary = sum(int(o.sum()) for o in on) / max(n_par, 1)
    corners = faces = neurons = 0
    for lin in linear_layers(critic):
        box = torch.cat([lin.weight, lin.bias[:, None]], dim=1).abs() >= tol  # one row per neuron
        corners += int(box.all(dim=1).sum())
        faces += int(box.any(dim=1).sum())
        neurons += box.shape[0]
    return ClipStatistics(boundary, corners / max(neurons, 1), faces / max(neurons, 1), n_par, neurons)


@dataclass
class Oscillation:
    """Spectral summary of a time series over its analysed window."""

    periodic: bool
    period: float | None  # in the time unit of ``times`` (iterations); None if not periodic
    amplitude: float  # sqrt(2) x the largest detrended standard deviation
    peak_share: float  # share of the (non-DC) power within one bin of the peak
    cycles: float  # window length / period of the peak
    spectrum_freq: np.ndarray
    spectrum_power: np.ndarray


def detect_oscillation(times: np.ndarray, series: np.ndarray, *, window: float = 0.5,
                       min_amplitude: float = 0.05, min_peak_share: float = 0.3,
                       min_cycles: float = 2.0) -> Oscillation:
    """Dominant period and amplitude of ``series`` over the last ``window`` fraction of the run.

    The window is detrended (least-squares line per coordinate, so a slow convergence is not
    taken for an oscillation); the power spectra of the coordinates are summed.  The run is
    *periodic* when the amplitude exceeds ``min_amplitude``, the peak (±1 bin) carries at
    least ``min_peak_share`` of the power and the window holds at least ``min_cycles`` periods.

    Args:
        times: ``(T,)`` sample times (e.g. iterations), increasing.
        series: ``(T,)`` or ``(T, k)`` values at those times.
        window: fraction of the run, at its end, that is analysed.
        min_amplitude: smallest amplitude (in the units of ``series``) counted as periodic.
        min_peak_share: smallest share of the non-DC power within one bin of the peak.
        min_cycles: fewest periods the window must hold.

    Returns:
        The :class:`Oscillation` (not periodic, zero amplitude, when the window has fewer
            than 8 points).
    """
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(series, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    start = int(len(t) * (1 - window))
    t, x = t[start:], x[start:]
    if len(t) < 8:
        return Oscillation(False, None, 0.0, 0.0, 0.0, np.zeros(0), np.zeros(0))
    dt = float(np.median(np.diff(t)))
    A = np.stack([np.ones_like(t), t - t.mean()], 1)
    coef, *_ = np.linalg.lstsq(A, x, rcond=None)
    r = x - A @ coef
    amplitude = float(math.sqrt(2) * r.std(axis=0).max())
    power = (np.abs(np.fft.rfft(r * np.hanning(len(t))[:, None], axis=0)) ** 2).sum(1)
    freq = np.fft.rfftfreq(len(t), d=dt)
    power[0] = 0.0
    k = int(power.argmax())
    total = float(power.sum())
    share = float(power[max(k - 1, 1):k + 2].sum() / total) if total > 0 else 0.0
    period = 1.0 / freq[k] if k > 0 else float("inf")
    cycles = (t[-1] - t[0] + dt) / period if k > 0 else 0.0
    periodic = amplitude >= min_amplitude and share >= min_peak_share and cycles >= min_cycles
    return Oscillation(bool(periodic), float(period) if periodic else None, amplitude, share,
                       float(cycles), freq, power)
