"""The alternating GAN training loop.

One *iteration* is one generator step, preceded by ``n_critic`` critic steps (or, with the
original WGAN warm-up, 100 critic steps for the first 25 generator iterations and every
500th).  ``wgan_clip`` projects every critic parameter onto [−c, c] after each critic step;
``wgan_gp`` adds the per-sample gradient penalty; ``sinkhorn`` has no critic and takes one
generator step on the debiased Sinkhorn divergence to a fresh data batch.

``ema`` keeps exponential moving averages of the generator's weights (one per decay ``β``),
updated after every generator step with ``p_avg ← β_t p_avg + (1 − β_t) p`` and the usual
warm-up ``β_t = min(β, (1 + t) / (10 + t))`` (t = generator steps taken).  The averages never
feed back into training: the trained generator and its averages can be scored side by side
on the same run (:meth:`GANTrainer.sample` with ``ema=``).

Randomness comes from three explicit CPU generators (data batches, latent noise, penalty
interpolation weights), so a seed gives the same run on the CPU, and the same batches on
every device.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from wgf_cli.gan.data import ToyData
from wgf_cli.gan.losses import LOSSES, SinkhornLoss, clip_, critic_loss, generator_loss, gradient_penalty


@dataclass
class TrainConfig:
    """Hyper-parameters of :class:`GANTrainer` (defaults: WGAN-GP of Gulrajani et al.)."""

    loss: str = "wgan_gp"
    n_critic: int = 5
    batch_size: int = 256
    z_dim: int = 2
    lr_g: float = 1e-4
    lr_c: float = 1e-4
    optimizer: str = "adam"  # adam | rmsprop | sgd
    betas: tuple[float, float] = (0.5, 0.9)
    clip: float = 0.01  # wgan_clip box [-c, c]
    clip_init: str = "uniform"  # wgan_clip start: "uniform" in the box, or "clip" the default init
    gp_lambda: float = 10.0
    gp_one_sided: bool = False
    warmup: bool = False  # 100 critic steps for the first 25 iterations and every 500th
    lr_decay: str = "none"  # none | linear: both learning rates decay linearly to 0 at `iterations`
    iterations: int = 0  # the length of the linear decay
    sinkhorn_blur: float = 0.05
    sinkhorn_p: int = 2
    ema: tuple[float, ...] = ()  # decays of generator weight averages (EMA), each in (0, 1)

    def __post_init__(self) -> None:
        if not all(0.0 < d < 1.0 for d in self.ema):
            raise ValueError(f"ema decays must be in (0, 1), got {list(self.ema)}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {self.n_critic}")
        if self.clip <= 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")
        if self.lr_decay not in ("none", "linear"):
            raise ValueError(f"lr_decay must be none or linear, got {self.lr_decay!r}")
        if self.lr_decay == "linear" and self.iterations < 1:
            raise ValueError("lr_decay=linear needs iterations >= 1")
        if self.clip_init not in ("uniform", "clip"):
            raise ValueError(f"clip_init must be uniform or clip, got {self.clip_init!r}")

    def critic_steps(self, iteration: int) -> int:
        """Critic steps before generator step ``iteration`` (0-based)."""
        if self.warmup and (iteration < 25 or iteration % 500 == 0):
            return 100
        return self.n_critic


@dataclass
class StepStats:
    """What one training iteration (:meth:`GANTrainer.step`) measured.

    Attributes:
        iteration: the 0-based index of the iteration.
        critic_loss: critic loss of the last critic step, without the penalty (``None``
            without a critic).
        penalty: gradient penalty of the last critic step (``wgan_gp`` only).
        grad_norm: mean per-sample critic gradient norm at the interpolates (``wgan_gp`` only).
        generator_loss: loss of the generator step.
        critic_steps: number of critic steps taken before the generator step.
        extra: free-form measurements added by the caller.
    """

    iteration: int
    critic_loss: float | None = None  # last critic step, without the penalty
    penalty: float | None = None
    grad_norm: float | None = None  # mean per-sample gradient norm at the interpolates
    generator_loss: float = 0.0
    critic_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _optimizer(params, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas))
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be adam, rmsprop or sgd, got {cfg.optimizer!r}")


class GANTrainer:
    """Trains ``generator`` (z_dim -> d) against ``critic`` (d -> 1) on ``data``.

    Args:
        generator: the generator network; its first parameter sets the device and dtype.
        critic: the critic network; ``None`` only with ``loss="sinkhorn"``.
        data: the target distribution to sample real batches from.
        cfg: the hyper-parameters.
        seed: seed of the three CPU generators (data, noise, penalty) and of the uniform
            critic initialisation of ``wgan_clip``.

    Raises:
        ValueError: If the loss needs a critic and ``critic`` is ``None``, or ``cfg.optimizer``
            is unknown.
    """

    def __init__(self, generator: nn.Module, critic: nn.Module | None, data: ToyData,
                 cfg: TrainConfig, seed: int = 0) -> None:
        self.G, self.D, self.data, self.cfg = generator, critic, data, cfg
        p = next(generator.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.gen_data = torch.Generator().manual_seed(seed * 4 + 1)
        self.gen_noise = torch.Generator().manual_seed(seed * 4 + 2)
        self.gen_gp = torch.Generator().manual_seed(seed * 4 + 3)
        self.opt_g = _optimizer(generator.parameters(), cfg, cfg.lr_g)
        self.has_critic = cfg.loss != "sinkhorn"
        if self.has_critic:
            if critic is None:
                raise ValueError(f"loss {cfg.loss} needs a critic")
            self.opt_c = _optimizer(critic.parameters(), cfg, cfg.lr_c)
            if cfg.loss == "wgan_clip":
                if cfg.clip_init == "uniform":  # start inside the box, none on its faces
                    g = torch.Generator().manual_seed(seed * 4 + 4)
                    with torch.no_grad():
                        for q in critic.parameters():
                            u = torch.rand(q.shape, generator=g, dtype=torch.float64)
                            q.copy_((2 * u - 1) * cfg.clip)
                clip_(critic, cfg.clip)
        else:
            self.sinkhorn = SinkhornLoss(cfg.sinkhorn_p, cfg.sinkhorn_blur)
        self.iteration = 0
        #: generator weight averages, one per ``cfg.ema`` decay (frozen copies of ``generator``)
        self.G_ema = [copy.deepcopy(generator).requires_grad_(False) for _ in cfg.ema]
        self.schedulers = []
        if cfg.lr_decay == "linear":
            opts = [self.opt_g] + ([self.opt_c] if self.has_critic else [])
            self.schedulers = [torch.optim.lr_scheduler.LambdaLR(
                o, lambda i: max(0.0, 1.0 - i / cfg.iterations)) for o in opts]

    # -- sampling -------------------------------------------------------------------
    def noise(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal latent codes, drawn in float64 on the CPU.

        Args:
            count: number of codes.
            generator: the CPU generator to draw from; the trainer's noise generator by default.

        Returns:
            ``(count, z_dim)`` codes on the model's device and dtype.
        """
        z = torch.randn(count, self.cfg.z_dim, generator=generator or self.gen_noise, dtype=torch.float64)
        return z.to(self.device, self.dtype)

    def real(self, count: int) -> torch.Tensor:
        """A batch of ``count`` data samples, ``(count, d)``, from the data generator."""
        return self.data.sample(count, self.gen_data, self.device, self.dtype)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, ema: int | None = None) -> torch.Tensor:
        """``G(z)``; with ``ema=k`` the ``k``-th weight average ``cfg.ema[k]`` instead."""
        return (self.G if ema is None else self.G_ema[ema])(z)

    @torch.no_grad()
    def update_ema(self) -> None:
        """One EMA update of every generator average (called after each generator step)."""
        t = self.iteration
        for decay, avg in zip(self.cfg.ema, self.G_ema, strict=True):
            beta = min(decay, (1.0 + t) / (10.0 + t))
            for pa, p in zip(avg.parameters(), self.G.parameters(), strict=True):
                pa.mul_(beta).add_(p.detach(), alpha=1.0 - beta)
            for ba, b in zip(avg.buffers(), self.G.buffers(), strict=True):
                ba.copy_(b)

    # -- steps ----------------------------------------------------------------------
    def critic_step(self) -> tuple[float, float | None, float | None]:
        """One critic update; returns (loss without penalty, penalty, mean gradient norm)."""
        assert self.D is not None
        B = self.cfg.batch_size
        real = self.real(B)
        with torch.no_grad():
            fake = self.G(self.noise(B))
        loss = critic_loss(self.cfg.loss, self.D(real), self.D(fake))
        total, pen, gn = loss, None, None
        if self.cfg.loss == "wgan_gp":
            p = gradient_penalty(self.D, real, fake, self.cfg.gp_lambda, self.gen_gp,
                                 self.cfg.gp_one_sided)
            total = loss + p.value
            pen, gn = float(p.value.detach()), float(p.grad_norms.mean())
        self.opt_c.zero_grad(set_to_none=True)
        total.backward()
        self.opt_c.step()
        if self.cfg.loss == "wgan_clip":
            clip_(self.D, self.cfg.clip)
        return float(loss.detach()), pen, gn

    def generator_step(self) -> float:
        """One generator update on a fresh noise batch (the critic frozen).

        Returns:
            The generator loss.
        """
        B = self.cfg.batch_size
        fake = self.G(self.noise(B))
        if self.has_critic:
            assert self.D is not None
            for q in self.D.parameters():
                q.requires_grad_(False)
            loss = generator_loss(self.cfg.loss, self.D(fake))
        else:
            loss = self.sinkhorn(fake, self.real(B))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if self.has_critic:
            for q in self.D.parameters():
                q.requires_grad_(True)
        return float(loss.detach())

    def step(self) -> StepStats:
        """One iteration: the critic steps, then one generator step."""
        st = StepStats(self.iteration)
        if self.has_critic:
            st.critic_steps = self.cfg.critic_steps(self.iteration)
            for _ in range(st.critic_steps):
                st.critic_loss, st.penalty, st.grad_norm = self.critic_step()
        st.generator_loss = self.generator_step()
        self.update_ema()
        self.iteration += 1
        for sch in self.schedulers:
            sch.step()
        return st

    # -- checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A deep copy of the models, optimizers, RNG states and iteration count."""
        state = {"G": self.G.state_dict(), "opt_g": self.opt_g.state_dict(), "iteration": self.iteration,
                 "schedulers": [sch.state_dict() for sch in self.schedulers],
                 "rng": [g.get_state() for g in (self.gen_data, self.gen_noise, self.gen_gp)],
                 "G_ema": [avg.state_dict() for avg in self.G_ema]}
        if self.has_critic:
            state.update(D=self.D.state_dict(), opt_c=self.opt_c.state_dict())
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: models, optimizers, schedulers, averages and RNG states.

        Args:
            state: a dict from :meth:`state_dict`.
        """
        self.G.load_state_dict(state["G"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.iteration = int(state["iteration"])
        for sch, st in zip(self.schedulers, state.get("schedulers", []), strict=False):
            sch.load_state_dict(st)
        for avg, st in zip(self.G_ema, state.get("G_ema", []), strict=False):
            avg.load_state_dict(st)
        for g, s in zip((self.gen_data, self.gen_noise, self.gen_gp), state["rng"], strict=True):
            g.set_state(s)
        if self.has_critic:
            self.D.load_state_dict(state["D"])
            self.opt_c.load_state_dict(state["opt_c"])
