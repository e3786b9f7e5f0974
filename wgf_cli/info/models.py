"""The classifier whose layers are measured, and datasets available offline.

* :class:`MLP`: fully connected, ``tanh`` or ``relu`` hidden layers, softmax output;
  :meth:`MLP.layers` returns every layer's activations (hidden layers and the output
  softmax), the ``T_l`` of the information plane.
* :func:`load_dataset`: scikit-learn's bundled ``digits`` (1,797 images of 8x8, 10
  classes; no download) or a synthetic Gaussian-blob problem; standardized features and a
  stratified train/test split from an explicit seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class MLP(nn.Module):
    """``d_in -> widths[0] -> ... -> widths[-1] -> classes`` with ``activation`` between.

    Args:
        d_in: input dimension.
        widths: widths of the hidden layers, in order.
        classes: number of classes (output logits).
        activation: ``"tanh"`` or ``"relu"``, after every hidden layer.

    Raises:
        ValueError: If ``activation`` is unknown.
    """

    def __init__(self, d_in: int, widths: list[int], classes: int, activation: str = "tanh") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        dims = [d_in, *widths]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.act = ACTIVATIONS[activation]()
        self.out = nn.Linear(dims[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, classes)`` of the inputs ``x`` ``(n, d_in)`` (no softmax)."""
        for lin in self.hidden:
            x = self.act(lin(x))
        return self.out(x)

    def layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations of every hidden layer and the softmax output, in order."""
        outs = []
        for lin in self.hidden:
            x = self.act(lin(x))
            outs.append(x)
        outs.append(torch.softmax(self.out(x), dim=1))
        return outs


@dataclass
class Dataset:
    """A classification dataset split into train and test sets.

    Attributes:
        x_train: ``(n_train, d)`` standardized training features.
        y_train: ``(n_train,)`` integer labels.
        x_test: ``(n_test, d)`` test features, standardized with the training statistics.
        y_test: ``(n_test,)`` integer labels.
        classes: number of classes.
        name: ``"digits"`` or ``"blobs"``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int
    name: str

    @property
    def dim(self) -> int:
        """Number of features."""
        return int(self.x_train.shape[1])


def load_dataset(name: str = "digits", *, test_fraction: float = 0.25, seed: int = 0,
                 samples: int = 2000, features: int = 16, classes: int = 4,
                 noise: float = 1.0, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu") -> Dataset:
    """Load ``digits`` (bundled with scikit-learn) or make ``blobs``.

    Features are standardized with the training mean and std; the split is stratified.

    Args:
        name: ``"digits"`` (1,797 8x8 images, 10 classes) or ``"blobs"``.
        test_fraction: fraction of the samples held out for the test set.
        seed: seed of the split and of the blobs.
        samples: number of points (``blobs`` only).
        features: dimension of the points (``blobs`` only).
        classes: number of Gaussian blobs (``blobs`` only).
        noise: standard deviation of each blob around its centre (``blobs`` only; the centres
            have std 3).
        dtype: dtype of the features (labels are ``torch.long``).
        device: device of every tensor.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: If ``name`` is unknown.
    """
    from sklearn.model_selection import train_test_split

    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = d.data.astype(np.float64), d.target.astype(np.int64)
    elif name == "blobs":
        rng = np.random.default_rng(seed)
        centres = rng.normal(0, 3.0, size=(classes, features))
        y = rng.integers(0, classes, size=samples)
        x = centres[y] + noise * rng.normal(size=(samples, features))
    else:
        raise ValueError(f"unknown dataset {name!r}; allowed: digits, blobs")
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                          stratify=y)
    mu, sd = xtr.mean(0), xtr.std(0)
    sd[sd == 0] = 1.0

    def t(a, dt):
        return torch.as_tensor(a, dtype=dt, device=device)

    return Dataset(t((xtr - mu) / sd, dtype), t(ytr, torch.long), t((xte - mu) / sd, dtype),
                   t(yte, torch.long), int(y.max()) + 1, name)
