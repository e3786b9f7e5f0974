"""Distances between neuron measures (:mod:`wgf_cli.ot.pointcloud`).

Neurons never change the sign of their output weight (``alpha`` fixed), so a coupling of two
neuron measures only moves mass within a sign: with sign masses ``p_s`` (equal for both
measures),

    W2^2(mu, nu) = sum_s p_s W2^2(mu_s / p_s, nu_s / p_s),

and the same composition is used for the sliced distance.  Both run on the CPU (float64
NumPy), whatever the device of the inputs.  Grid measures enter as weighted supports (the cell
centres with non-negligible mass).
"""

from __future__ import annotations

import numpy as np
import torch

from wgf_cli.ot import pointcloud as pc

Tensor = torch.Tensor

#: largest ``n_a * n_b`` for which :func:`w2` solves the exact EMD (about 0.5 GB of costs)
EMD_MAX_PAIRS = 1 << 26


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _split(points: Tensor, weights: Tensor, signs: Tensor) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    out = {}
    P, w, s = _np(points), _np(weights), _np(signs)
    for sign in np.unique(s):
        sel = (s == sign) & (w > 0)
        out[float(sign)] = (P[sel], w[sel])
    return out


def _per_sign(a: dict, b: dict, fn) -> float:
    total = 0.0
    for sign in set(a) | set(b):
        if sign not in a or sign not in b:
            raise ValueError(f"sign {sign} has mass in only one measure")
        (Pa, wa), (Pb, wb) = a[sign], b[sign]
        mass = 0.5 * (wa.sum() + wb.sum())
        total += mass * fn(Pa, wa / wa.sum(), Pb, wb / wb.sum())
    return float(np.sqrt(max(total, 0.0)))


def w2(points_a: Tensor, weights_a: Tensor, signs_a: Tensor, points_b: Tensor, weights_b: Tensor,
       signs_b: Tensor, *, max_pairs: int = EMD_MAX_PAIRS) -> float:
    """Exact W2 between two weighted neuron measures, composed over the output signs.

    Per sign :func:`wgf_cli.ot.pointcloud.w2` (``ot.emd2``, float64 NumPy).

    Args:
        points_a: support of the first measure, ``(n, d)``.
        weights_a: masses of the first measure, ``(n,)`` (zero-mass points are dropped).
        signs_a: output-weight sign of each point of the first measure, ``(n,)``.
        points_b: support of the second measure, ``(m, d)``.
        weights_b: masses of the second measure, ``(m,)``.
        signs_b: output-weight signs of the second measure, ``(m,)``.
        max_pairs: the largest support-pair count per sign solved exactly.

    Returns:
        The distance; ``nan`` when a sign has more than ``max_pairs`` support pairs.

    Raises:
        ValueError: If a sign has mass in only one of the two measures.
    """

    def fn(Pa, wa, Pb, wb):
        if Pa.shape[0] * Pb.shape[0] > max_pairs:
            return float("nan")
        return pc.w2(Pa, Pb, wa, wb, squared=True)

    return _per_sign(_split(points_a, weights_a, signs_a), _split(points_b, weights_b, signs_b), fn)


def sliced_w2(points_a: Tensor, weights_a: Tensor, signs_a: Tensor, points_b: Tensor,
              weights_b: Tensor, signs_b: Tensor, *, n_projections: int = 128, seed: int = 0) -> float:
    """Sliced W2 composed over the output signs.

    Per sign :func:`wgf_cli.ot.pointcloud.sliced_w2` over the ``n_projections`` directions
    POT's ``ot.sliced_wasserstein_distance`` draws from ``seed``
    (:func:`wgf_cli.ot.pointcloud.pot_directions`).

    Args:
        points_a: support of the first measure, ``(n, d)``.
        weights_a: masses of the first measure, ``(n,)`` (zero-mass points are dropped).
        signs_a: output-weight sign of each point of the first measure, ``(n,)``.
        points_b: support of the second measure, ``(m, d)``.
        weights_b: masses of the second measure, ``(m,)``.
        signs_b: output-weight signs of the second measure, ``(m,)``.
        n_projections: directions per sign.
        seed: seed of the directions.

    Returns:
        The distance.

    Raises:
        ValueError: If a sign has mass in only one of the two measures.
    """

    def fn(Pa, wa, Pb, wb):
        return pc.sliced_w2(Pa, Pb, wa, wb, projections=pc.pot_directions(Pa.shape[1], n_projections, seed),
                            squared=True)

    return _per_sign(_split(points_a, weights_a, signs_a), _split(points_b, weights_b, signs_b), fn)


def uniform(W: Tensor) -> Tensor:
    """Uniform float64 weights ``1/n`` for the ``n`` neurons (rows) of ``W``, shape ``(n,)``."""
    return torch.full((W.shape[0],), 1.0 / W.shape[0], dtype=torch.float64)


def grid_support(points: Tensor, r: Tensor, alphas: Tensor, *, rel_threshold: float = 1e-10
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """A grid measure ``r`` as a weighted support ``(points, weights, signs)``.

    Cells with mass below ``rel_threshold * max`` are dropped (their total mass is below
    ``N * rel_threshold``).

    Args:
        points: ``(N, d)`` cell centres, in the C order of the grid.
        r: ``(S, *grid.shape)`` masses, one grid measure per output sign.
        alphas: ``(S,)`` the output sign of each of those measures.
        rel_threshold: mass, relative to the largest cell, below which a cell is dropped.

    Returns:
        ``(points, weights, signs)`` of the kept cells, float64 on the CPU.
    """
    flat = r.reshape(r.shape[0], -1).detach().to("cpu", torch.float64)
    P = points.detach().to("cpu", torch.float64)
    keep = flat > rel_threshold * float(flat.max())
    pts, wts, sgn = [], [], []
    for s in range(flat.shape[0]):
        pts.append(P[keep[s]])
        wts.append(flat[s][keep[s]])
        sgn.append(torch.full((int(keep[s].sum()),), float(alphas[s]), dtype=torch.float64))
    return torch.cat(pts), torch.cat(wts), torch.cat(sgn)
