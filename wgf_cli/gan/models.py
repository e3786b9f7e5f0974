"""MLP generator and critic.

``mlp(in, out, hidden, depth)`` is ``depth`` hidden layers of ``hidden`` units with ReLU (or
LeakyReLU / tanh) and a linear output layer -- the WGAN-GP toy architecture is
``depth=3, hidden=512``.  The critic of a mean-field analysis is ``depth=1``: a two-layer
network ``D(x) = Σ_i a_i σ(w_i·x + b_i) + a_0`` whose neurons ``(w_i, b_i, a_i)`` are the
particles of the critic population; :func:`neuron_cloud` returns them.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh}


def mlp(in_dim: int, out_dim: int, hidden: int, depth: int, activation: str = "relu") -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden``; PyTorch's default initialisation."""
    if depth < 1 or hidden < 1:
        raise ValueError(f"mlp needs depth >= 1 and hidden >= 1, got depth={depth} hidden={hidden}")
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Scale(nn.Module):
    """Multiplication by a fixed factor (not trained).

    Puts a network's inputs or outputs on the data's scale, so that the MLP itself works with O(1)
    quantities.
    """

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` times the fixed factor."""
        return x * self.factor

    def extra_repr(self) -> str:
        """The factor, for the module's printout."""
        return f"factor={self.factor:g}"


def generator_net(z_dim: int, dim: int, hidden: int, depth: int, activation: str = "relu",
                  scale: float = 1.0) -> nn.Sequential:
    """``G(z) = scale · mlp(z)``."""
    net = mlp(z_dim, dim, hidden, depth, activation)
    return net if scale == 1.0 else nn.Sequential(*net, Scale(scale))


def critic_net(dim: int, hidden: int, depth: int, activation: str = "relu",
               scale: float = 1.0) -> nn.Sequential:
    """``D(x) = mlp(x / scale)``."""
    net = mlp(dim, 1, hidden, depth, activation)
    return net if scale == 1.0 else nn.Sequential(Scale(1.0 / scale), *net)


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    """The linear layers of ``net`` in order."""
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def neuron_cloud(critic: nn.Module) -> torch.Tensor:
    """The first hidden layer's neurons as rows ``(w_1..w_d, b, a)``.

    ``a`` is the neuron's outgoing weight: exact for a one-hidden-layer critic (the output
    layer has one unit), the mean of its outgoing column for a deeper one.
    """
    lin = linear_layers(critic)
    first, nxt = lin[0], lin[1]
    w, b = first.weight, first.bias
    a = nxt.weight.mean(dim=0)
    return torch.cat([w, b[:, None], a[:, None]], dim=1).detach().cpu().double()


def flat_parameters(net: nn.Module) -> torch.Tensor:
    """Every parameter (weights and biases) in one float64 CPU vector."""
    return torch.cat([p.detach().reshape(-1).cpu().double() for p in net.parameters()])
