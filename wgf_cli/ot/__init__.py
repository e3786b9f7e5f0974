"""Optimal-transport engine: grid geometries with separable Gibbs kernels and KL-proximal Sinkhorn iterations.

Plain PyTorch; knows nothing of the CLI or Hydra.
"""

from wgf_cli.ot.grid import Grid, GridGeometry
from wgf_cli.ot.sinkhorn import DenseGeometry, ProxSinkhornResult, prox_sinkhorn

__all__ = ["DenseGeometry", "Grid", "GridGeometry", "ProxSinkhornResult", "prox_sinkhorn"]
