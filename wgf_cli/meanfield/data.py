"""Targets and data sets of the mean-field experiments.

Inputs ``x_j`` live in ``R^(d-1)`` (uniform on ``[-x_range, x_range]^(d-1)``) and are
augmented with a constant 1, so a neuron ``w = (w_1, ..., w_{d-1}, b)`` has a bias.  Labels
come from a target function: a seeded *teacher* two-layer ReLU network with ``k`` neurons,
``abs`` (``|x_1|``), ``sin`` (``sin(frequency * x_1)``) or a csv file (columns ``x_1 ..
x_{d-1}, y``; the test set is a seeded split of its rows).  Optional Gaussian label noise is
added to the training labels only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

Tensor = torch.Tensor
TARGETS = ("teacher", "abs", "sin", "csv")


@dataclass
class Dataset:
    """Augmented inputs ``x`` (n, d) whose last column is 1, labels ``y`` (n,), and a test set."""

    x: Tensor
    y: Tensor
    x_test: Tensor
    y_test: Tensor
    target: str
    teacher: tuple[Tensor, Tensor] | None = None  # (U (k, d), a (k,)) of the teacher network

    @property
    def dim(self) -> int:
        """Input dimension ``d`` (with the bias coordinate)."""
        return int(self.x.shape[1])

    @property
    def scale(self) -> float:
        """The largest absolute augmented training input, ``max_j |x_j|``.

        ``max_j |x_j|`` of the augmented training inputs (a cell of the (w, b) grid moves a neuron's
        pre-activation by at most ``cell * scale``).
        """
        return float(self.x.norm(dim=1).max())

    def to(self, device=None, dtype=None) -> Dataset:
        """A copy on ``device`` with ``dtype``."""
        def cv(t):
            return None if t is None else t.to(device=device, dtype=dtype)

        teacher = None if self.teacher is None else (cv(self.teacher[0]), cv(self.teacher[1]))
        return Dataset(cv(self.x), cv(self.y), cv(self.x_test), cv(self.y_test), self.target, teacher)


def augment(x: Tensor) -> Tensor:
    """Append the constant-1 bias column: ``(n, d-1) -> (n, d)``."""
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)


def teacher_network(k: int, dim: int, generator: torch.Generator, dtype=torch.float64,
                    x_range: float = 2.0) -> tuple[Tensor, Tensor]:
    """A random teacher network of ``k`` ReLU neurons.

    ``k`` teacher neurons: unit directions in ``R^(d-1)`` times a magnitude in [1, 2], kinks placed
    uniformly inside the input range, output signs alternating ``+1, -1, ...``.

    Returns ``U`` (k, d) and ``a`` (k,); the teacher is ``g(x) = (1/k) sum a_l relu(<u_l, x>)``.
    """
    dirs = torch.randn(k, dim - 1, generator=generator, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    mag = 1.0 + torch.rand(k, generator=generator, dtype=torch.float64)
    kink = (2.0 * torch.rand(k, generator=generator, dtype=torch.float64) - 1.0) * 0.8 * x_range
    w = dirs * mag[:, None]
    b = -kink * mag
    a = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(k)], dtype=torch.float64)
    return torch.cat([w, b[:, None]], dim=1).to(dtype), a.to(dtype)


def evaluate_target(name: str, x: Tensor, *, teacher: tuple[Tensor, Tensor] | None = None,
                    frequency: float = 1.0) -> Tensor:
    """The target at augmented inputs ``x`` (n, d)."""
    if name == "teacher":
        if teacher is None:
            raise ValueError("target 'teacher' needs the teacher network")
        U, a = teacher
        return torch.relu(x @ U.T) @ a / U.shape[0]
    if name == "abs":
        return x[:, 0].abs()
    if name == "sin":
        return torch.sin(frequency * x[:, 0])
    raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")


def make_dataset(target: str, size: int, test_size: int, dim: int, *, x_range: float = 2.0,
                 noise: float = 0.0, teacher_neurons: int = 3, frequency: float = 1.0,
                 path: str | Path | None = None, generator: torch.Generator | None = None,
                 dtype=torch.float64, device="cpu") -> Dataset:
    """Training and test sets for ``target``.

    Args:
        target: ``teacher`` | ``abs`` | ``sin`` | ``csv``.
        size: number of training points.
        test_size: number of test points.
        dim: ``d`` = input dimension + 1 (the bias).
        x_range: inputs uniform on ``[-x_range, x_range]^(d-1)``.
        noise: standard deviation of the Gaussian label noise (training labels only).
        teacher_neurons: ``k`` of the teacher network.
        frequency: of the ``sin`` target.
        path: the csv file of the ``csv`` target (header row, last column the label).
        generator: seeds inputs, teacher and noise.
        dtype: dtype of the tensors.
        device: device of the tensors.

    Returns:
        The :class:`Dataset` (training and test inputs and labels).
    """
    gen = generator or torch.Generator().manual_seed(0)
    teacher = None
    if target == "csv":
        if path is None:
            raise ValueError("target 'csv' needs a path")
        table = np.loadtxt(Path(path), delimiter=",", skiprows=1, ndmin=2)
        if table.shape[1] != dim:
            raise ValueError(f"csv {path} has {table.shape[1]} columns; data.dim={dim} needs "
                             f"{dim - 1} input columns and 1 label column")
        xy = torch.as_tensor(table, dtype=torch.float64)
        perm = torch.randperm(xy.shape[0], generator=gen)
        n_test = max(1, min(test_size, xy.shape[0] // 5))
        test, train = xy[perm[:n_test]], xy[perm[n_test:]]
        x, y = augment(train[:, :-1]), train[:, -1]
        x_test, y_test = augment(test[:, :-1]), test[:, -1]
    else:
        if target == "teacher":
            teacher = teacher_network(teacher_neurons, dim, gen, torch.float64, x_range)
        raw = (2.0 * torch.rand(size + test_size, dim - 1, generator=gen, dtype=torch.float64)
               - 1.0) * x_range
        xa = augment(raw)
        ya = evaluate_target(target, xa, teacher=teacher, frequency=frequency)
        x, y, x_test, y_test = xa[:size], ya[:size], xa[size:], ya[size:]
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=gen, dtype=torch.float64)
    ds = Dataset(x, y, x_test, y_test, target, teacher)
    return ds.to(device=device, dtype=dtype)
