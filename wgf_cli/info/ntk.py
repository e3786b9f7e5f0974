"""The empirical neural tangent kernel ``K(x_i, x_j) = <grad_theta f(x_i), grad_theta f(x_j)>``.

For a network with ``C`` outputs the per-sample gradient of the scalar ``f`` is taken of
the sum of the outputs (``"sum"``, the trace of the ``C x C`` NTK block, the usual scalar
summary) or of one output (an integer).  Per-sample gradients come from ``torch.func``
(``vmap(jacrev)``) in chunks, so memory stays at ``chunk x #params``.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, jacrev, vmap


def per_sample_gradients(model: torch.nn.Module, x: torch.Tensor, output: int | str = "sum",
                         chunk: int = 256) -> torch.Tensor:
    """``(n, P)``: the gradient of the chosen scalar output w.r.t. every parameter, per sample."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def scalar(p, xi):
        out = functional_call(model, p, (xi[None],))[0]
        return out.sum() if output == "sum" else out[int(output)]

    jac = vmap(jacrev(scalar), in_dims=(None, 0))
    rows = []
    for i in range(0, x.shape[0], chunk):
        g = jac(params, x[i:i + chunk])
        rows.append(torch.cat([g[k].reshape(g[k].shape[0], -1) for k in params], 1))
    return torch.cat(rows, 0)


def empirical_ntk(model: torch.nn.Module, x: torch.Tensor, output: int | str = "sum",
                  chunk: int = 256) -> torch.Tensor:
    """The ``(n, n)`` empirical NTK Gram matrix ``J J^T`` of ``model`` on ``x``."""
    J = per_sample_gradients(model, x, output, chunk)
    return J @ J.T
