"""Optimal-transport engine: grid geometries with separable Gibbs kernels, KL-proximal Sinkhorn, point clouds.

The point-cloud distances every engine uses live in :mod:`wgf_cli.ot.pointcloud`. Plain PyTorch;
knows nothing of the CLI or Hydra.
"""

from wgf_cli.ot.grid import Grid, GridGeometry
from wgf_cli.ot.pointcloud import sinkhorn_divergence, sliced_w2, w2, w2_1d
from wgf_cli.ot.sinkhorn import DenseGeometry, ProxSinkhornResult, prox_sinkhorn

__all__ = ["DenseGeometry", "Grid", "GridGeometry", "ProxSinkhornResult", "prox_sinkhorn",
           "sinkhorn_divergence", "sliced_w2", "w2", "w2_1d"]
