"""External potentials V(x) and interaction kernels W(x - y) on R^d.

Each is a callable on a list of coordinate tensors (one per axis, any common shape)
returning V at those points, plus ``grad`` on an ``(N, d)`` tensor of particle positions.
Gradients come from autograd, so user expressions need no hand-written derivative.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

Tensor = torch.Tensor

_EXPR_NAMES = {
    name: getattr(torch, name)
    for name in ("sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "atan2")
}
_EXPR_NAMES.update({"pi": math.pi, "minimum": torch.minimum, "maximum": torch.maximum})


def _eval_expr(expr: str, names: dict) -> Tensor:
    code = compile(expr, "<expr>", "eval")
    for name in code.co_names:
        if name not in names:
            raise ValueError(f"unknown name {name!r} in expression {expr!r}; allowed: {sorted(names)}")
    return eval(code, {"__builtins__": {}}, names)  # noqa: S307 - names are whitelisted above


class Potential(ABC):
    """Base class: ``V(xs)`` for coordinates ``xs = [x_1, ..., x_d]``."""

    @abstractmethod
    def __call__(self, xs: Sequence[Tensor]) -> Tensor:
        """The potential at the coordinates ``xs``."""

    def grad(self, x: Tensor) -> Tensor:
        """``grad V`` at particle positions ``x`` of shape ``(N, d)``."""
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            v = self([xr[:, k] for k in range(xr.shape[1])])
            (g,) = torch.autograd.grad(v.sum(), xr)
        return g


class QuadraticPotential(Potential):
    """``V(x) = 1/2 (x - mean)^T A (x - mean)`` with ``A`` symmetric positive definite."""

    def __init__(self, mean: Sequence[float], matrix: Sequence[Sequence[float]] | float, dim: int):
        self.mean = [float(m) for m in mean]
        if len(self.mean) != dim:
            raise ValueError(f"potential mean needs {dim} entries, got {len(self.mean)}")
        if isinstance(matrix, int | float):
            a = [[float(matrix) if i == j else 0.0 for j in range(dim)] for i in range(dim)]
        else:
            a = [[float(v) for v in row] for row in matrix]
        A = torch.tensor(a, dtype=torch.float64)
        if A.shape != (dim, dim):
            raise ValueError(f"potential matrix must be {dim}x{dim}, got {tuple(A.shape)}")
        if not torch.allclose(A, A.T) or torch.linalg.eigvalsh(A).min() <= 0:
            raise ValueError("potential matrix must be symmetric positive definite")
        self.matrix = A

    def __call__(self, xs):
        """``(x - mean)^T A (x - mean) / 2`` on the coordinate arrays ``xs``."""
        d = len(xs)
        dev = [x - m for x, m in zip(xs, self.mean, strict=True)]
        out = torch.zeros_like(xs[0])
        for i in range(d):
            for j in range(d):
                aij = float(self.matrix[i, j])
                if aij != 0.0:
                    out = out + 0.5 * aij * dev[i] * dev[j]
        return out


class DoubleWellPotential(Potential):
    """``V(x) = depth ((x_1 - c_1)^2 / width^2 - 1)^2 + stiffness/2 sum_{k>1} (x_k - c_k)^2``.

    Two wells at ``x_1 = c_1 +- width`` separated by a barrier of height ``depth``.
    """

    def __init__(self, center: Sequence[float], width: float, depth: float, stiffness: float):
        self.center = [float(c) for c in center]
        self.width, self.depth, self.stiffness = float(width), float(depth), float(stiffness)

    def __call__(self, xs):
        """The double well along the first axis plus a quadratic confinement along the others."""
        u = (xs[0] - self.center[0]) ** 2 / self.width**2 - 1.0
        out = self.depth * u**2
        for k in range(1, len(xs)):
            out = out + 0.5 * self.stiffness * (xs[k] - self.center[k]) ** 2
        return out


class ExprPotential(Potential):
    """A potential given as a user expression in the coordinates ``x``, ``y``, ``z``.

    A user expression in ``x``, ``y``, ``z`` (the coordinates) and torch functions, e.g. ``"2*(x-0.5)**2
    + sin(6*y)"``.
    """

    def __init__(self, expr: str, dim: int):
        self.expr = expr
        self.dim = dim
        probe = [torch.linspace(0.1, 0.9, 3, dtype=torch.float64)] * dim
        val = self(probe)
        if not torch.is_tensor(val) or val.shape != probe[0].shape:
            raise ValueError(f"expression {expr!r} must give one value per point")

    def __call__(self, xs):
        """The expression evaluated on the coordinate arrays ``xs``."""
        names = dict(_EXPR_NAMES)
        names.update(dict(zip("xyz", xs, strict=False)))
        out = _eval_expr(self.expr, names)
        return out + torch.zeros_like(xs[0]) if not torch.is_tensor(out) else out


def make_potential(name: str, dim: int, **params) -> Potential:
    """Potential by name: ``quadratic``, ``double_well``, ``expr`` (or ``none``)."""
    if name == "quadratic":
        return QuadraticPotential(params["mean"], params["matrix"], dim)
    if name == "double_well":
        return DoubleWellPotential(
            params["center"], params["width"], params["depth"], params.get("stiffness", 0.0)
        )
    if name == "expr":
        return ExprPotential(params["expr"], dim)
    raise ValueError(f"unknown potential {name!r}; allowed: quadratic, double_well, expr")


class RadialKernel:
    """Interaction kernel ``W(x) = w(|x|)``.

    ``power``: ``w(r) = strength ((r/l)^p_a / p_a - (r/l)^p_r / p_r)`` with ``l = length``
    (attractive beyond ``l``, repulsive inside when ``p_a > p_r``); ``expr``: a user
    expression in ``r``.
    """

    def __init__(self, kind: str = "power", attract_power: float = 2.0,
                 repel_power: float = 1.0, strength: float = 1.0, expr: str | None = None,
                 length: float = 1.0):
        if kind not in ("power", "expr"):
            raise ValueError(f"unknown interaction kernel {kind!r}; allowed: power, expr")
        if kind == "power" and not attract_power > repel_power > 0:
            raise ValueError("interaction needs attract_power > repel_power > 0")
        if kind == "expr" and not expr:
            raise ValueError("interaction kind 'expr' needs an expression in r")
        self.kind, self.expr = kind, expr
        if not length > 0:
            raise ValueError(f"interaction length must be > 0, got {length}")
        self.pa, self.pr, self.strength = float(attract_power), float(repel_power), float(strength)
        self.length = float(length)
        if kind == "expr":
            self.radial(torch.linspace(0.0, 1.0, 3, dtype=torch.float64))

    def radial(self, r: Tensor) -> Tensor:
        """The kernel as a function of the distance ``r``."""
        if self.kind == "power":
            u = r / self.length
            return self.strength * (u**self.pa / self.pa - u**self.pr / self.pr)
        names = dict(_EXPR_NAMES)
        names["r"] = r
        out = _eval_expr(self.expr, names)
        return out + torch.zeros_like(r) if not torch.is_tensor(out) else out

    def __call__(self, diff: Sequence[Tensor]) -> Tensor:
        """The kernel at the displacement components ``diff``."""
        r = torch.sqrt(sum(d**2 for d in diff))
        return self.radial(r)

    def grad(self, diff: Tensor) -> Tensor:
        """``grad W`` at displacement vectors ``diff`` of shape ``(..., d)``; 0 at the origin."""
        r = diff.norm(dim=-1)
        with torch.enable_grad():
            rr = r.detach().requires_grad_(True)
            (dw,) = torch.autograd.grad(self.radial(rr).sum(), rr)
        safe = torch.where(r > 0, r, torch.ones_like(r))
        return torch.where((r > 0)[..., None], (dw / safe)[..., None] * diff, torch.zeros_like(diff))
