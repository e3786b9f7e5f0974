"""Training of a :class:`~wgf_cli.forecast.model.Forecaster`: losses, the epoch loop, prediction.

Loss per position (the next day of every context day when ``all_positions``, else the
sequence's target day only), over days with events:

    w_events * CE(cell counts, cell probs) / N  +  w_total * NLL(N)  +  w_cloud * S_eps(cloud)

with ``CE / N`` the per-event cross entropy of the root-code x QuadClass cells, ``NLL`` the
negative-binomial (or Poisson) likelihood of the total and ``S_eps`` the debiased Sinkhorn
divergence between the forecast and the actual weighted clouds (at the last position, or
every ``cloud_stride`` positions back from it).

:class:`Trainer` runs AdamW with linear warm-up and cosine decay, gradient clipping, bf16
autocast and optional ``torch.compile`` on CUDA, early stopping on the validation loss
(target day only; the weighted sum, or ``monitor="val_log_loss"`` its event term),
DataLoader workers, and DDP when ``torch.distributed`` is initialised (``torchrun``).
With ``cloud_epochs`` a second phase follows on the best weights: a copy of the network
becomes the cloud's own branch (:meth:`Forecaster.attach_cloud_branch`) and is trained on
the Sinkhorn loss alone with a constant learning rate, early-stopped on the validation
Sinkhorn divergence, while the event and count heads keep the best weights: stopping on the
event log loss (best after a few epochs) does not leave the cloud half-trained.
Its :meth:`Trainer.state_dict` holds everything a resumed run needs to continue exactly:
model, optimizer, scheduler, RNG states, epoch, early-stopping state and the best weights.
The epoch order depends only on ``(seed, epoch)``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from wgf_cli.forecast.data import BatchDataset, SequenceData, epoch_batches
from wgf_cli.forecast.model import Forecaster, count_nll, occurrence_probs
from wgf_cli.ot.pointcloud import sinkhorn_divergence


@dataclass
class TrainConfig:
    """Hyper-parameters of :class:`Trainer` (the comments on the fields give their units).

    Attributes:
        epochs: epochs of the main phase.
        batch_size: sequences per batch (per rank under DDP).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup: linear warm-up, as a fraction of all steps.
        min_lr: final learning rate of the cosine, relative to ``lr``.
        grad_clip: gradient-norm clipping (0: none).
        patience: early stopping: epochs without improvement (0: never stop).
        monitor: ``"val_loss"`` or ``"val_log_loss"``, for early stopping and the best weights.
        cloud_epochs: up to this many epochs of the cloud branch alone afterwards (0: none).
        cloud_lr: the cloud phase's constant learning rate.
        min_delta: smallest decrease of the monitored value that counts as improvement.
        w_events: weight of the per-event cross entropy.
        w_total: weight of the total's NLL.
        w_cloud: weight of the Sinkhorn divergence of the clouds.
        blur: Sinkhorn blur (the final ``eps`` is ``blur^2``), in embedding units.
        scaling: epsilon-scaling factor of the Sinkhorn solver.
        iters: Sinkhorn iterations at the final eps (after epsilon-scaling).
        all_positions: train on the next day of every context day, not the target day only.
        cloud_stride: positions between cloud losses, back from the last (0: last only).
        amp: bf16 autocast (CUDA).
        compile: ``torch.compile`` (CUDA).
        workers: DataLoader workers (0: batches built in the main process).
        seed: seed of the epoch order and the workers.
        stop_after: stop this invocation after this many epochs (0: run to the end).
        max_val: validation sequences used per epoch (0: all).
        per_epoch: training sequences per epoch, a fresh random subset (0: all).
        ema: decay of an exponential moving average of the weights (0: none).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: float = 0.05  # fraction of all steps
    min_lr: float = 0.05  # final lr / peak lr of the cosine
    grad_clip: float = 1.0
    patience: int = 3  # early stopping: epochs without improvement (0: never stop)
    monitor: str = "val_loss"  # early stopping and best weights on: val_loss | val_log_loss
    cloud_epochs: int = 0  # then: up to this many epochs of the cloud branch alone (0: none)
    cloud_lr: float = 1e-3  # its constant learning rate
    min_delta: float = 1e-4
    w_events: float = 1.0
    w_total: float = 0.1
    w_cloud: float = 0.5
    blur: float = 0.3
    scaling: float = 0.5
    iters: int = 20  # Sinkhorn iterations at the final eps (after epsilon-scaling)
    all_positions: bool = True
    cloud_stride: int = 0  # 0: cloud loss at the last position only
    amp: bool = False  # bf16 autocast (CUDA)
    compile: bool = False  # torch.compile (CUDA)
    workers: int = 0
    seed: int = 0
    stop_after: int = 0  # stop this invocation after this many epochs (0: run to the end)
    max_val: int = 0  # validation sequences used per epoch (0: all)
    per_epoch: int = 0  # training sequences per epoch, a fresh random subset (0: all)
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: none)


@dataclass
class TrainState:
    """Progress of a :class:`Trainer`, checkpointed with it.

    Attributes:
        epoch: epochs run so far (both phases).
        best_val: best monitored validation value of the main phase.
        best_epoch: epoch that reached ``best_val``.
        bad_epochs: main-phase epochs since the last improvement.
        stopped_early: whether the main phase stopped on ``patience``.
        best_state: CPU copy of the best weights (``None`` before the first validation).
        history: one row of metrics per epoch.
        phase: ``"main"`` or ``"cloud"`` (the cloud branch alone, from the best main weights).
        cloud_epoch: epochs run in the cloud phase.
        cloud_best: best validation Sinkhorn divergence of the cloud phase.
        cloud_best_epoch: epoch that reached ``cloud_best``.
        cloud_bad: cloud-phase epochs since the last improvement.
    """

    epoch: int = 0
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    best_state: dict | None = None
    history: list[dict] = field(default_factory=list)
    phase: str = "main"  # main | cloud (the cloud branch alone, from the best main weights)
    cloud_epoch: int = 0
    cloud_best: float = math.inf
    cloud_best_epoch: int = 0
    cloud_bad: int = 0


def _to(batch: dict[str, torch.Tensor], device: torch.device,
        dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Move a batch to ``device``; floating tensors take the model's ``dtype``."""
    return {k: v.to(device, dtype=dtype if v.is_floating_point() else None, non_blocking=True)
            for k, v in batch.items()}


def _dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def cloud_positions(length: int, stride: int, device) -> torch.Tensor:
    """Positions of a sequence of ``length`` days where the cloud loss is taken.

    Args:
        length: context length.
        stride: positions between cloud losses, back from the last; ``<= 0``: the last only.
        device: device of the result.

    Returns:
        Increasing int64 positions, always ending at ``length - 1``.
    """
    if stride <= 0:
        return torch.tensor([length - 1], device=device)
    return torch.arange(length - 1, -1, -stride, device=device).flip(0)


def cloud_loss(x: torch.Tensor, logw: torch.Tensor, batch: dict[str, torch.Tensor],
               pos: torch.Tensor, tc: TrainConfig) -> torch.Tensor:
    """Mean debiased Sinkhorn divergence between the forecast and the actual clouds.

    Days without events (zero cloud weight) are left out; with none left the loss is 0.

    Args:
        x: [B, P, K, E] forecast cloud points.
        logw: [B, P, K] their log weights.
        batch: the batch (``y_points``, ``y_weights``).
        pos: [P] positions; the actual clouds are those of the days after them.
        tc: the configuration (``blur``, ``scaling``, ``iters``).

    Returns:
        The mean divergence, a 0-d tensor.
    """
    yw = batch["y_weights"][:, pos].to(x.dtype)
    yx = batch["y_points"][:, pos].to(x.dtype)
    ok = yw.sum(-1) > 0
    if not ok.any():
        return torch.zeros((), device=x.device)
    return sinkhorn_divergence(logw.exp()[ok], x[ok], yw[ok] / yw[ok].sum(-1, keepdim=True),
                               yx[ok], tc.blur, tc.scaling, tc.iters).mean()


def losses(model: Forecaster, batch: dict[str, torch.Tensor], tc: TrainConfig,
           all_positions: bool, autocast: Callable) -> dict[str, torch.Tensor]:
    """The loss terms (means over positions with events) and their weighted sum ``loss``."""
    length = batch["feats"].shape[1]
    pos = cloud_positions(length, tc.cloud_stride if all_positions else 0, batch["feats"].device)
    with autocast():  # the target day alone: its heads only (the same numbers)
        out = model(batch, pos) if all_positions else model(batch, pos, last_only=True)
    y = batch["y_counts"]
    if not all_positions:
        y = y[:, -1:]
    n = y.sum(-1)
    logits = out.cell_logits.float() if all_positions else out.cell_logits[:, -1:].float()
    log_mu = out.log_mu if all_positions else out.log_mu[:, -1:]
    log_alpha = out.log_alpha if all_positions else out.log_alpha[:, -1:]
    has = (n > 0).float()
    ce = -(y * torch.log_softmax(logits, -1)).sum(-1) / n.clamp_min(1)
    events = (ce * has).sum() / has.sum().clamp_min(1)
    dist = model.cfg.count_dist if not isinstance(model, nn.parallel.DistributedDataParallel) \
        else model.module.cfg.count_dist
    seen = batch["y_observed"] if all_positions else batch["y_observed"][:, -1:]
    seen = seen.float()
    total = (count_nll(n, log_mu, log_alpha, dist) * seen).sum() / seen.sum().clamp_min(1)
    cloud = cloud_loss(out.cloud_x, out.cloud_logw, batch, pos, tc) if tc.w_cloud > 0 \
        else torch.zeros((), device=n.device)
    loss = tc.w_events * events + tc.w_total * total + tc.w_cloud * cloud
    return {"loss": loss, "events": events, "total": total, "cloud": cloud}


def lr_lambda(total_steps: int, warmup_steps: int, min_lr: float) -> Callable[[int], float]:
    """Linear warm-up to 1, then cosine decay to ``min_lr`` (multipliers of the peak lr)."""
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * t))
    return f


class Trainer:
    """Fits one model; see the module doc.  ``rank``/``world`` come from torch.distributed."""

    def __init__(self, model: Forecaster, train: SequenceData, val: SequenceData,
                 tc: TrainConfig, device: str | torch.device) -> None:
        if tc.monitor not in ("val_loss", "val_log_loss"):
            raise ValueError(f"monitor must be val_loss or val_log_loss, got {tc.monitor!r}")
        self.tc = tc
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.train_data, self.val_data = train, val
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = torch.distributed.get_rank() if dist else 0
        self.world = torch.distributed.get_world_size() if dist else 1
        self.net: nn.Module = self.model
        if dist:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if tc.compile and self.device.type == "cuda":
            self.net = torch.compile(self.net)
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "pos" not in n]
        other = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "pos" not in n)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                                      {"params": other, "weight_decay": 0.0}],
                                     lr=tc.lr, betas=tuple(tc.betas))
        self.steps_per_epoch = len(epoch_batches(len(train), tc.batch_size, tc.seed, 0,
                                                 rank=self.rank, world=self.world,
                                                 per_epoch=tc.per_epoch))
        total = max(1, tc.epochs * self.steps_per_epoch)
        warm = max(1, int(round(tc.warmup * total)))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(total, warm, tc.min_lr))
        self.state = TrainState()
        self.cloud_opt: torch.optim.Optimizer | None = None
        # cloud phase: the frozen network's validation event and count terms, per batch
        self._val_kept: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        # the weight average that is validated, kept as the best state and used at the end
        self.ema_model = copy.deepcopy(self.model) if tc.ema > 0 else None

    def _update_ema(self) -> None:
        """``ema <- d ema + (1 - d) w`` with ``d = min(ema, (1 + s) / (10 + s))`` at step ``s``.

        A short average early on, so the start does not linger.
        """
        step = self.sched.last_epoch
        d = min(self.tc.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, w in zip(self.ema_model.parameters(), self.model.parameters(), strict=True):
                e.lerp_(w.detach(), 1.0 - d)

    @property
    def eval_model(self) -> Forecaster:
        """The weights that are validated and kept (the average when ``ema``, in the main phase)."""
        if self.ema_model is not None and self.state.phase == "main":
            return self.ema_model
        return self.model

    def _make_cloud_opt(self) -> None:
        self.cloud_opt = torch.optim.AdamW(self.model.cloud_branch.parameters(), lr=self.tc.cloud_lr,
                                           betas=tuple(self.tc.betas), weight_decay=0.0)

    def _start_cloud_phase(self) -> None:
        """Best main-phase weights into the model, and a copy of them as its cloud branch."""
        st = self.state
        self.load_best()
        self.model.attach_cloud_branch()
        st.phase = "cloud"
        self._val_kept = None
        self._make_cloud_opt()
        st.cloud_best = self.validate()["val_sinkhorn"]
        st.best_state = self._snapshot()

    def _snapshot(self) -> dict:
        """A CPU copy of the weights that are validated and kept."""
        return {k: v.detach().cpu().clone() for k, v in self.eval_model.state_dict().items()}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly.

        Returns:
            Model, optimizer, scheduler, CPU (and CUDA) RNG states and the :class:`TrainState`
                fields; the weight average and the cloud optimizer when present.
        """
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        out = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
               "scheduler": self.sched.state_dict(), "rng": rng,
               "train_state": copy.deepcopy(self.state.__dict__)}
        if self.ema_model is not None:
            out["ema"] = self.ema_model.state_dict()
        if self.cloud_opt is not None:
            out["cloud_optimizer"] = self.cloud_opt.state_dict()
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (the cloud branch is attached first if it had one).

        Args:
            state: a dict from :meth:`state_dict`.
        """
        if state["train_state"].get("phase") == "cloud" and self.model.cloud_branch is None:
            self.model.attach_cloud_branch()
        self.model.load_state_dict(state["model"])
        self._val_kept = None
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.state = TrainState(**state["train_state"])
        if self.ema_model is not None:
            self.ema_model.load_state_dict(state["ema"])
        if self.state.phase == "cloud":
            self._make_cloud_opt()
            self.cloud_opt.load_state_dict(state["cloud_optimizer"])

    # ------------------------------------------------------------------ loop
    def _autocast(self):
        if self.tc.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _loader(self, data: SequenceData, batches: list[np.ndarray]):
        if self.tc.workers <= 0:
            return (data.batch(b) for b in batches)
        return torch.utils.data.DataLoader(BatchDataset(data, batches), batch_size=None,
                                           shuffle=False, num_workers=self.tc.workers,
                                           pin_memory=self.device.type == "cuda",
                                           persistent_workers=False,
                                           # its own generator: the workers' seeds must not
                                           # consume the global RNG (dropout, resume)
                                           generator=torch.Generator().manual_seed(self.tc.seed))

    def _cloud_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The cloud phase's step: the cloud branch (features and cloud head) on the Sinkhorn term.

        Its gradients are averaged over the DDP ranks by hand.
        """
        branch = self.model.cloud_branch
        length = batch["feats"].shape[1]
        pos = cloud_positions(length, self.tc.cloud_stride if self.tc.all_positions else 0,
                              batch["feats"].device)
        with self._autocast():
            x, logw = branch.cloud_head(branch.features(batch)[0], pos)
        cloud = cloud_loss(x, logw, batch, pos, self.tc)
        self.cloud_opt.zero_grad(set_to_none=True)
        cloud.backward()
        params = [p for p in branch.parameters() if p.grad is not None]
        if self.world > 1:
            for p in params:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world
        if self.tc.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.tc.grad_clip)
        self.cloud_opt.step()
        nan = torch.full((), math.nan, device=cloud.device)  # not trained in this phase
        return {"loss": nan, "events": nan, "total": nan, "cloud": cloud}

    def train_epoch(self, on_step: Callable[[dict], None] | None = None) -> dict:
        """One epoch: all weights on the weighted loss, or in the cloud phase the cloud branch on the Sinkhorn term.

        In the cloud phase (:meth:`_cloud_step`) ``train_loss`` / ``_events`` / ``_total`` are NaN.

        Args:
            on_step: called after every step with the step's loss terms (floats).

        Returns:
            ``train_loss``, ``train_events``, ``train_total``, ``train_cloud`` (means over the
                epoch's sequences), ``sequences_per_s`` (all ranks) and ``epoch_s``.
        """
        self.net.train()
        cloud = self.state.phase == "cloud"
        epoch = self.state.epoch
        batches = epoch_batches(len(self.train_data), self.tc.batch_size, self.tc.seed, epoch,
                                rank=self.rank, world=self.world, per_epoch=self.tc.per_epoch)
        sums = {"loss": 0.0, "events": 0.0, "total": 0.0, "cloud": 0.0}
        seqs, t0 = 0, time.perf_counter()
        for batch in self._loader(self.train_data, batches):
            batch = _to(batch, self.device, _dtype(self.model))
            if cloud:
                terms = self._cloud_step(batch)
            else:
                terms = losses(self.net, batch, self.tc, self.tc.all_positions, self._autocast)
                self.opt.zero_grad(set_to_none=True)
                terms["loss"].backward()
                if self.tc.grad_clip > 0:
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
                self.opt.step()
                self.sched.step()
                if self.ema_model is not None:
                    self._update_ema()
            bs = len(batch["rows"])
            seqs += bs
            for k in sums:
                sums[k] += float(terms[k].detach()) * bs
            if on_step is not None:
                on_step({k: float(v) for k, v in terms.items()})
        dt = time.perf_counter() - t0
        out = {f"train_{k}": v / max(seqs, 1) for k, v in sums.items()}
        out["sequences_per_s"] = seqs * self.world / max(dt, 1e-9)
        out["epoch_s"] = dt
        return out

    @torch.no_grad()
    def validate(self) -> dict:
        """The loss terms of the validation sequences' target days, averaged over all ranks.

        Uses :attr:`eval_model` and at most ``max_val`` sequences.

        Returns:
            ``val_loss``, ``val_log_loss``, ``val_total_nll`` and ``val_sinkhorn``.
        """
        self.net.eval()
        model = self.eval_model
        model.eval()
        n_val = len(self.val_data)
        rows = np.arange(n_val)
        if self.tc.max_val and n_val > self.tc.max_val:
            rows = np.linspace(0, n_val - 1, self.tc.max_val).round().astype(int)
        rows = rows[self.rank::self.world]
        sums = torch.zeros(5, dtype=torch.float64, device=self.device)
        # the cloud phase trains the cloud branch alone: the event and count terms of the
        # frozen network are those of the phase's first validation, kept per batch
        cloud = self.state.phase == "cloud"
        kept = self._val_kept if cloud else None
        fresh: list[tuple[torch.Tensor, torch.Tensor]] = []
        for j, i in enumerate(range(0, len(rows), self.tc.batch_size)):
            batch = _to(self.val_data.batch(rows[i: i + self.tc.batch_size]), self.device,
                        _dtype(self.model))
            if kept is not None:
                terms = self._cloud_val_terms(model, batch, *kept[j])
            else:
                terms = losses(model, batch, self.tc, False, self._autocast)
                fresh.append((terms["events"], terms["total"]))
            bs = len(batch["rows"])
            sums += torch.tensor([float(terms[k].detach()) * bs for k in ("loss", "events", "total", "cloud")]
                                 + [bs], dtype=torch.float64, device=self.device)
        if cloud and kept is None:
            self._val_kept = fresh
        if self.world > 1:
            torch.distributed.all_reduce(sums)
        s = (sums[:4] / sums[4].clamp_min(1)).tolist()
        return {"val_loss": s[0], "val_log_loss": s[1], "val_total_nll": s[2], "val_sinkhorn": s[3]}

    def _cloud_val_terms(self, model: Forecaster, batch: dict[str, torch.Tensor], events: torch.Tensor,
                         total: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`losses` of the target day in the cloud phase from the kept event and count terms.

        Only the cloud branch runs (the same numbers as the whole forward).
        """
        branch, tc = model.cloud_branch, self.tc
        pos = cloud_positions(batch["feats"].shape[1], 0, batch["feats"].device)
        with self._autocast():
            x, logw = branch.cloud_head(branch.features(batch)[0], pos)
        cloud = cloud_loss(x, logw, batch, pos, tc) if tc.w_cloud > 0 else torch.zeros((), device=x.device)
        loss = tc.w_events * events + tc.w_total * total + tc.w_cloud * cloud
        return {"loss": loss, "events": events, "total": total, "cloud": cloud}

    def fit(self, on_epoch: Callable[[int, dict], None] | None = None,
            on_step: Callable[[dict], None] | None = None) -> TrainState:
        """Train from ``state.epoch`` to ``tc.epochs`` (or ``stop_after`` more, or early stop), then the cloud phase.

        The cloud phase runs up to ``tc.cloud_epochs`` epochs.

        Args:
            on_epoch: called as ``on_epoch(epoch, row)`` after each epoch (log and checkpoint
                there).
            on_step: called after every step with its loss terms.

        Returns:
            The :class:`TrainState` (also ``self.state``).
        """
        st, tc = self.state, self.tc
        done_now = 0
        while not self.finished():
            if tc.stop_after and done_now >= tc.stop_after:
                break
            if st.phase == "main" and (st.epoch >= tc.epochs or st.stopped_early):
                self._start_cloud_phase()
                continue
            cloud = st.phase == "cloud"
            row = self.train_epoch(on_step)
            row.update(self.validate())
            row["lr"] = (self.cloud_opt if cloud else self.opt).param_groups[0]["lr"]
            st.epoch += 1
            done_now += 1
            if cloud:
                st.cloud_epoch += 1
                value, best = row["val_sinkhorn"], st.cloud_best
            else:
                value, best = row[tc.monitor], st.best_val
            if value < best - tc.min_delta:
                if cloud:
                    st.cloud_best, st.cloud_bad, st.cloud_best_epoch = value, 0, st.epoch
                else:
                    st.best_val, st.bad_epochs, st.best_epoch = value, 0, st.epoch
                st.best_state = self._snapshot()
            elif cloud:
                st.cloud_bad += 1
            else:
                st.bad_epochs += 1
                st.stopped_early = bool(tc.patience) and st.bad_epochs >= tc.patience
            row["best_epoch"] = st.best_epoch
            row["cloud_phase"] = int(cloud)
            st.history.append(dict(row))
            if on_epoch is not None:
                on_epoch(st.epoch, row)
        return st

    def finished(self) -> bool:
        """Whether both phases are done (the cloud phase counted only when ``cloud_epochs``)."""
        st, tc = self.state, self.tc
        if st.phase == "cloud":
            return st.cloud_epoch >= tc.cloud_epochs or 0 < tc.patience <= st.cloud_bad
        return (st.epoch >= tc.epochs or st.stopped_early) and tc.cloud_epochs == 0

    def load_best(self) -> None:
        """Load the best kept weights into the model (nothing before the first validation)."""
        if self.state.best_state is not None:
            self.model.load_state_dict(self.state.best_state)


@torch.no_grad()
def predict(model: Forecaster, data: SequenceData, batch_size: int = 256,
            device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Forecasts of every sequence's target day.

    Args:
        model: the forecaster.
        data: the sequences.
        batch_size: sequences per forward pass.
        device: device to run on.

    Returns:
        Arrays over the N sequences: ``root_probs`` [N, 20], ``quad_probs`` [N, 4],
            ``occur_probs`` [N, 20], ``total_mean`` [N], ``alpha`` [N] (``None`` for Poisson
            counts), ``cloud_x`` [N, K, E] and ``cloud_w`` [N, K].
    """
    model.eval()
    dev = torch.device(device)
    keys = ("root_probs", "quad_probs", "occur_probs", "total_mean", "alpha", "cloud_x", "cloud_w")
    out: dict[str, list] = {k: [] for k in keys}
    for i in range(0, len(data), batch_size):
        batch = _to(data.batch(np.arange(i, min(len(data), i + batch_size))), dev, _dtype(model))
        o = model(batch, last_only=True)
        root = o.root_log_probs()[:, -1].exp()
        mu = o.log_mu[:, -1].exp()
        alpha = o.log_alpha[:, -1].exp()
        occ = occurrence_probs(root, mu, alpha, model.cfg.count_dist)
        vals = (root, o.quad_log_probs()[:, -1].exp(), occ, mu, alpha, o.cloud_x[:, -1],
                o.cloud_logw[:, -1].exp())
        for k, v in zip(keys, vals, strict=True):
            out[k].append(v.float().cpu().numpy())
    res = {k: np.concatenate(v) for k, v in out.items()}
    if model.cfg.count_dist == "poisson":
        res["alpha"] = None
    return res


SHRINK_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def calibrate_shrink(model: Forecaster, data: SequenceData, device: str | torch.device = "cpu",
                     grid: tuple[float, ...] = SHRINK_GRID, batch_size: int = 256) -> dict[str, float]:
    """Choose how much of a prior-based model's residuals to keep (``model.shrink``).

    Picks the fraction of the cell residuals with the lowest per-event log loss and the fraction of the
    total's residual with the lowest count NLL on ``data`` (target days; days with events for
    the log loss, observed days for the NLL), each from ``grid`` (0 keeps the prior alone, so
    on ``data`` the model is never worse than its prior).  Sets ``model.shrink``.

    Args:
        model: a forecaster with a prior (``ModelConfig.prior``).
        data: the calibration sequences (e.g. validation).
        device: device to run on.
        grid: candidate fractions.
        batch_size: sequences per forward pass.

    Returns:
        ``shrink_cells`` and ``shrink_total`` (the chosen fractions), and the log loss and
            count NLL of the prior alone and of the kept fractions.

    Raises:
        ValueError: If the model has no prior.
    """
    if not model.cfg.prior:
        raise ValueError("calibrate_shrink needs a model with a prior (ModelConfig.prior)")
    model.eval()
    dev = torch.device(device)
    ll = torch.zeros(len(grid), dtype=torch.float64)
    nll = torch.zeros(len(grid), dtype=torch.float64)
    n_ev = n_obs = 0.0
    for i in range(0, len(data), batch_size):
        batch = _to(data.batch(np.arange(i, min(len(data), i + batch_size))), dev, _dtype(model))
        y = batch["y_counts"][:, -1].double()
        n = y.sum(-1)
        has = n > 0
        seen = batch["y_observed"][:, -1]
        n_ev += float(has.sum())
        n_obs += float(seen.sum())
        for j, lam in enumerate(grid):
            model.shrink.fill_(lam)
            o = model(batch, last_only=True)
            lp = torch.log_softmax(o.cell_logits[:, -1].double(), -1)
            ce = -(y * lp).sum(-1) / n.clamp_min(1)
            ll[j] += ce[has].sum()
            nll[j] += count_nll(n, o.log_mu[:, -1].double(), o.log_alpha[:, -1].double(),
                                model.cfg.count_dist)[seen].sum()
    ll /= max(n_ev, 1.0)
    nll /= max(n_obs, 1.0)
    jc, jt = int(torch.argmin(ll)), int(torch.argmin(nll))
    model.shrink.copy_(torch.tensor([grid[jc], grid[jt]], dtype=model.shrink.dtype))
    return {"shrink_cells": float(grid[jc]), "shrink_total": float(grid[jt]),
            "val_log_loss_prior": float(ll[0]), "val_log_loss_kept": float(ll[jc]),
            "val_total_nll_prior": float(nll[0]), "val_total_nll_kept": float(nll[jt])}


def fine_tune(model: Forecaster, data: SequenceData, tc: TrainConfig, *, steps: int, lr: float,
              device: str | torch.device = "cpu", seed: int = 0) -> float:
    """``steps`` AdamW steps of the event and count terms of the loss on ``data``.

    Constant ``lr``, no weight decay; the cloud is not refitted.  This is a rolling
    evaluation's refit on the newest days.

    Args:
        model: the forecaster, updated in place (left in eval mode).
        data: the sequences to fit.
        tc: the loss configuration (``w_cloud`` is set to 0).
        steps: number of optimizer steps.
        lr: the constant learning rate.
        device: device to run on.
        seed: seed of the batch order.

    Returns:
        The mean loss of the steps (NaN when ``steps <= 0`` or ``data`` is empty).
    """
    if steps <= 0 or len(data) == 0:
        return math.nan
    dev = torch.device(device)
    model.to(dev).train()
    params = [p for n, p in model.named_parameters() if not n.startswith("cloud_branch.")]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    tc = TrainConfig(**{**tc.__dict__, "w_cloud": 0.0})
    done, total, epoch = 0, 0.0, 0
    while done < steps:
        for rows in epoch_batches(len(data), tc.batch_size, seed, 10_000 + epoch):
            batch = _to(data.batch(rows), dev, _dtype(model))
            loss = losses(model, batch, tc, tc.all_positions, contextlib.nullcontext)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, tc.grad_clip)
            opt.step()
            total += float(loss.detach())
            done += 1
            if done >= steps:
                break
        epoch += 1
    model.eval()
    return total / done
