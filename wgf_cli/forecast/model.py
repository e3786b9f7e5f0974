"""The next-day forecaster: a causal transformer over days (or a GRU, the baseline).

Each day is one token (:class:`DayEncoder`): an MLP of the day's scalar descriptor (log counts
of the 20 x 4 root-code x QuadClass cells, log total, Goldstein mean/std, multi-country
fraction), a set encoder of its k weighted points on the embedding sphere (attention pooling
whose logits carry the log weights, so heavier points count more), a country embedding
(optional) and a day-of-week embedding, and the panel's state that day
(:class:`WorldEncoder`: every country's QuadClass shares and log total, weighted per
country), and with a mixture head optionally the day's log-likelihood under each of its
learned event mixes (``mix_evidence``: the evidence a regime filter accumulates).  With
``regime_filter`` a learned hidden-Markov filter over the mixes (:class:`RegimeFilter`) runs
alongside: its predictive law of the next day's mix and mean total are the heads' starting
point, which the backbone's state corrects.  A causal
backbone reads the tokens (position ``t`` sees days ``<= t``): a transformer (learned
absolute positions or none, optionally after :class:`EmaMixer`, learned per-channel moving
averages of the tokens as in Mega) or a GRU; heads predict day ``t + 1`` (whose weekday
embedding is added, the calendar is known in advance):

- ``cell_logits`` [..., 80]: the per-event distribution over root code x QuadClass; the root
  (20) and quad (4) distributions are its marginals.  Either a free softmax of a linear map
  (optionally through a rank-r bottleneck, ``cell_rank``), or (``mixture = K``) a mixture of
  K learned global event mixes with weights from the state (a regime-switching model's form:
  far fewer outputs to learn from short panels), whose logits may all be tilted by one
  low-rank offset read from the state (``mixture_tilt``: a country's own mix, as its history
  shows it);
  With ``prior`` the free head's logits are residuals added to a prior forecast's log
  probabilities (:mod:`wgf_cli.forecast.prior`, given in the batch), starting at zero: the
  untrained model *is* the prior, and ``shrink`` (set on validation after training,
  :func:`wgf_cli.forecast.train.calibrate_shrink`) scales how much of the residuals is kept;
- ``log_mu``, ``log_alpha``: the total count (with ``prior``: the prior's log mean plus a
  residual), negative binomial with mean ``mu`` and variance
  ``mu + alpha mu^2`` (or Poisson, ``count_dist="poisson"``);
- the day's cloud: K unit vectors on the sphere with softmax weights, trained with the
  debiased Sinkhorn divergence (:func:`wgf_cli.ot.pointcloud.sinkhorn_divergence`); after a
  trainer's cloud phase by a copy of the network of its own (``cloud_branch``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from wgf_cli.forecast.data import N_CELLS, N_FEATS, N_QUAD, N_ROOT, N_WORLD


@dataclass
class ModelConfig:
    """Architecture of a :class:`Forecaster` (stored in checkpoints)."""

    n_countries: int
    dim: int  # embedding dimension E of the points
    k: int  # points per day cloud
    context: int = 50
    backbone: str = "transformer"  # transformer | gru
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ff: int = 128
    dropout: float = 0.1
    set_heads: int = 2
    count_dist: str = "negbin"  # negbin | poisson
    world_heads: int = 0  # learned country-to-country weightings of the panel's state (0: none)
    country_embedding: bool = True  # a learned vector per country added to every token
    cell_rank: int = 0  # cell head: logits through a rank-r linear bottleneck (0: full rank)
    mixture: int = 0  # cell head: a mixture of this many learned global event mixes (0: free softmax)
    mixture_tilt: int = 0  # rank of a tilt of the mixes' logits read from the state (0: none)
    recency_bias: bool = False  # transformer: ALiBi, attention logits minus slope_h x distance
    positions: str = "learned"  # transformer: learned absolute position embeddings | none
    ema_mixer: bool = False  # transformer: learned per-channel moving averages of the tokens (Mega)
    mix_evidence: bool = False  # mixture head: each day's log-likelihood under every mix, as input
    regime_filter: bool = False  # mixture head: a learned hidden-Markov filter over the mixes
    prior: bool = False  # free head: residuals on a prior forecast (batch prior_cells / prior_log_mu)

    def to_dict(self) -> dict:
        """The configuration as a plain dict (saved with checkpoints)."""
        return asdict(self)


@dataclass
class ForecastOutput:
    """Raw head outputs for every position (``cloud_*`` only at the requested positions)."""

    cell_logits: torch.Tensor  # [B, L, 80]
    log_mu: torch.Tensor  # [B, L]
    log_alpha: torch.Tensor  # [B, L]
    cloud_x: torch.Tensor | None  # [B, P, K, E] unit vectors
    cloud_logw: torch.Tensor | None  # [B, P, K] log weights

    def root_log_probs(self) -> torch.Tensor:
        """Log-probabilities of the 20 CAMEO root codes, summed over QuadClasses."""
        lp = torch.log_softmax(self.cell_logits.float(), -1)
        return torch.logsumexp(lp.unflatten(-1, (N_ROOT, N_QUAD)), -1)

    def quad_log_probs(self) -> torch.Tensor:
        """Log-probabilities of the four QuadClasses, summed over root codes."""
        lp = torch.log_softmax(self.cell_logits.float(), -1)
        return torch.logsumexp(lp.unflatten(-1, (N_ROOT, N_QUAD)), -2)


class SetEncoder(nn.Module):
    """Attention pooling of a weighted point cloud [..., K, E] (weights [..., K]) to [..., d]."""

    def __init__(self, dim: int, d: int, heads: int = 2) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(dim, d), nn.GELU(), nn.Linear(d, d))
        self.query = nn.Parameter(torch.randn(heads, d) / math.sqrt(d))
        self.out = nn.Linear(heads * d, d)
        self.empty = nn.Parameter(torch.zeros(d))  # the token of a day without events
        self.scale = 1.0 / math.sqrt(d)

    def forward(self, points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Pool each weighted point cloud ``[..., K, dim]`` into one vector ``[..., d]`` by attention."""
        h = self.proj(points)  # [..., K, d]
        present = weights > 0
        logits = torch.einsum("...kd,hd->...hk", h, self.query) * self.scale
        logits = logits + torch.log(weights.clamp_min(1e-12)).unsqueeze(-2).to(logits.dtype)
        logits = logits.masked_fill(~present.unsqueeze(-2), -1e4)
        att = torch.softmax(logits, dim=-1)
        pooled = self.out(torch.einsum("...hk,...kd->...hd", att, h).flatten(-2))
        has = present.any(-1, keepdim=True)
        return torch.where(has, pooled, self.empty.to(pooled.dtype).expand_as(pooled))


class WorldEncoder(nn.Module):
    """What happened elsewhere in the panel on a day, seen from one country.

    ``world`` [B, L, C, F] holds every country's QuadClass shares and log total of the day;
    ``H`` learned weightings ``G[h, c, :]`` of the countries (one row per country of the
    forecast, initialised to the panel mean) give ``H`` weighted averages per day, which an
    MLP maps to the token [B, L, d].  The rows are free parameters learned from the data
    (who influences whom), not a given graph.
    """

    def __init__(self, n_countries: int, d: int, heads: int) -> None:
        super().__init__()
        self.graph = nn.Parameter(torch.full((n_countries, heads, n_countries), 1.0 / n_countries))
        self.mlp = nn.Sequential(nn.Linear(heads * N_WORLD, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, world: torch.Tensor, country: torch.Tensor) -> torch.Tensor:
        """The token [B, L, d] of the panel ``world`` [B, L, C, F] as seen from each ``country`` [B]."""
        g = self.graph[country].to(world.dtype)  # [B, H, C]
        agg = torch.einsum("bhj,bljf->blhf", g, world)
        return self.mlp(agg.flatten(-2))


class EmaMixer(nn.Module):
    """Causal exponential moving averages of the tokens, one learned decay per channel.

    ``e_t = lambda * e_{t-1} + (1 - lambda) * x_t`` (``e_{-1} = 0``) for each of the ``d``
    channels, computed as a causal convolution with the kernel ``(1 - lambda) lambda^k``; the
    block returns ``x + W e`` (``W`` zero-initialised, so it starts as the identity).  This is
    the damped EMA of Mega (Ma et al., 2023, "Mega: moving average equipped gated attention")
    in its simplest form: attention then reads tokens that already summarise the recent
    past at learned time scales (a regime's persistence), the recurrent prior of a filter.
    Decays start spread over time constants of 1-30 days.
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        tau = torch.logspace(0, math.log10(30.0), d)  # time constants (days)
        lam = torch.exp(-1.0 / tau)
        self.logit = nn.Parameter(torch.log(lam / (1 - lam)))
        self.out = nn.Linear(d, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def kernel(self, length: int) -> torch.Tensor:
        """[d, L, L]: ``K[c, t, s] = (1 - lambda_c) lambda_c^(t - s)`` for ``s <= t``, else 0."""
        log_lam = nn.functional.logsigmoid(self.logit)  # log lambda
        pos = torch.arange(length, device=log_lam.device)
        lag = (pos[:, None] - pos[None, :]).float()
        causal = lag >= 0
        k = torch.exp(log_lam[:, None, None] * lag.clamp_min(0)) * causal
        return k * (-torch.expm1(log_lam))[:, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + W e`` for the tokens ``x`` [B, L, d], ``e`` their causal moving averages."""
        e = torch.einsum("cts,bsc->btc", self.kernel(x.shape[1]).to(x.dtype), x)
        return x + self.out(e)


class RegimeFilter(nn.Module):
    """A learned hidden-Markov filter whose states are the K mixes of the mixture head.

    State ``k`` emits a day's cell counts ``n`` (total ``N``) with log-likelihood
    ``e_k = sum_cells n log p_k + N log lambda_k - lambda_k`` (multinomial mix ``p_k``, the
    head's component, and a Poisson total with ``log lambda_k = base[country] +
    weekly[weekday] + volume[k]``; the ``k``-free terms dropped), scaled by a learned
    temperature (a tempered likelihood: heavier-tailed real counts want it below 1).  The
    forward recursion over the context, from a learned initial law ``pi`` with a learned
    transition matrix ``A``,

        post_t = normalise(prior_t * exp(e_t)),    prior_{t+1} = post_t A,

    gives at every position ``t`` the predictive law of the next day's state,
    ``P(z_{t+1} | days <= t)`` [B, L, K], and the predictive mean of its total,
    ``sum_k prior_{t+1, k} lambda_k(t + 1)``.  With the generator's parameters this is the
    exact filter of ``wgf_cli.gdelt.synthetic`` (without contagion); here every parameter is
    fitted by the forecast loss through the recursion, so training on every position is
    maximum likelihood of the HMM.  It runs in its parameters' dtype, outside autocast.
    """

    def __init__(self, k: int, n_countries: int, stay: float = 0.9) -> None:
        super().__init__()
        off = (1.0 - stay) / max(k - 1, 1)
        a = torch.full((k, k), off)
        a.fill_diagonal_(stay)
        self.trans = nn.Parameter(torch.log(a))  # row-softmax: A[i, j] = P(j | i)
        self.init = nn.Parameter(torch.zeros(k))
        self.volume = nn.Parameter(torch.zeros(k))
        self.base = nn.Parameter(torch.zeros(n_countries))
        self.weekly = nn.Parameter(torch.zeros(7))
        self.log_temp = nn.Parameter(torch.zeros(()))

    def log_rates(self, country: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """[B, L, K]: ``log lambda_k`` of country [B] on weekdays [B, L]."""
        return self.base[country][:, None, None] + self.weekly[dow][..., None] + self.volume

    def forward(self, counts: torch.Tensor, log_mixes: torch.Tensor, country: torch.Tensor,
                dow: torch.Tensor, next_dow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the regime filter over a batch of count sequences.

        ``counts`` [B, L, 80], ``log_mixes`` [K, 80] (normalised) -> the log predictive state law [B, L, K]
        and log predictive mean total [B, L] of every next day.
        """
        with torch.autocast(counts.device.type, enabled=False):
            counts, log_mixes = counts.to(self.trans.dtype), log_mixes.to(self.trans.dtype)
            lam = self.log_rates(country, dow)
            e = counts @ log_mixes.T + counts.sum(-1, keepdim=True) * lam - lam.exp()
            e = e * self.log_temp.exp()
            log_a = torch.log_softmax(self.trans, -1)
            prior = torch.log_softmax(self.init, -1).expand(counts.shape[0], -1)
            out = []
            for t in range(counts.shape[1]):
                post = prior + e[:, t]
                post = post - torch.logsumexp(post, -1, keepdim=True)
                prior = torch.logsumexp(post[:, :, None] + log_a, dim=1)
                out.append(prior)
            prior = torch.stack(out, 1)
            log_mu = torch.logsumexp(prior + self.log_rates(country, next_dow), -1)
        return prior, log_mu


class Forecaster(nn.Module):
    """Day tokens -> causal backbone -> next-day heads (see the module doc)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.backbone not in ("transformer", "gru"):
            raise ValueError(f"backbone must be transformer or gru, got {cfg.backbone!r}")
        if cfg.positions not in ("learned", "none"):
            raise ValueError(f"positions must be learned or none, got {cfg.positions!r}")
        if cfg.count_dist not in ("negbin", "poisson"):
            raise ValueError(f"count_dist must be negbin or poisson, got {cfg.count_dist!r}")
        self.cfg = cfg
        d = cfg.d_model
        self.feat = nn.Sequential(nn.Linear(N_FEATS, d), nn.GELU(), nn.Linear(d, d))
        self.set = SetEncoder(cfg.dim, d, cfg.set_heads)
        self.country = nn.Embedding(cfg.n_countries, d) if cfg.country_embedding else None
        self.dow = nn.Embedding(7, d)
        self.world = WorldEncoder(cfg.n_countries, d, cfg.world_heads) if cfg.world_heads else None
        self.norm_in = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.backbone == "transformer":
            self.pos = nn.Parameter(torch.zeros(cfg.context, d)) if cfg.positions == "learned" else None
            self.ema = EmaMixer(d) if cfg.ema_mixer else None
            layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff, cfg.dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.backbone = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        else:
            self.backbone = nn.GRU(d, d, num_layers=cfg.layers, batch_first=True,
                                   dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.norm_out = nn.LayerNorm(d)
        self.next_dow = nn.Embedding(7, d)
        self.trunk = nn.Sequential(nn.Linear(d, d), nn.GELU())
        # low rank: the cells' logits move in an r-dimensional space (few parameters to learn)
        self.cell_proj = nn.Linear(d, cfg.cell_rank, bias=False) if cfg.cell_rank else nn.Identity()
        self.cells = nn.Linear(cfg.cell_rank or d, cfg.mixture or N_CELLS)
        if cfg.mixture:  # component cell logits (set from the base rates by init_biases)
            self.components = nn.Parameter(torch.zeros(cfg.mixture, N_CELLS))
        self.tilt = None
        if cfg.mixture and cfg.mixture_tilt:  # a country's own mix, seen in its history
            self.tilt = nn.Sequential(nn.Linear(d, cfg.mixture_tilt, bias=False),
                                      nn.Linear(cfg.mixture_tilt, N_CELLS))
            nn.init.zeros_(self.tilt[1].weight)
            nn.init.zeros_(self.tilt[1].bias)
        self.evidence = nn.Linear(cfg.mixture, d) if cfg.mixture and cfg.mix_evidence else None
        if cfg.regime_filter and not cfg.mixture:
            raise ValueError("regime_filter needs a mixture head (mixture > 0)")
        self.filter = RegimeFilter(cfg.mixture, cfg.n_countries) if cfg.regime_filter else None
        if cfg.prior and cfg.mixture:
            raise ValueError("prior needs the free cell head (mixture = 0)")
        if cfg.prior:  # how much of the residuals is kept (cells, total); set on validation
            self.register_buffer("shrink", torch.ones(2))
        if self.filter is not None:  # the filter's state law, as input to the heads
            self.filter_in = nn.Linear(cfg.mixture, d)
            nn.init.zeros_(self.filter_in.weight)
        self.total = nn.Linear(d, 2)
        self.cloud = nn.Linear(d, cfg.k * (cfg.dim + 1))
        nn.init.zeros_(self.cells.weight)
        nn.init.zeros_(self.total.weight)
        self.cloud_branch: Forecaster | None = None

    def attach_cloud_branch(self) -> Forecaster:
        """A copy of this network that from now on makes the cloud forecast (the other heads stay with this one).

        The cloud's own weights, to be trained on after the event heads have stopped (the trainer's cloud
        phase).
        """
        self.cloud_branch = None
        branch = copy.deepcopy(self)
        self.cloud_branch = branch
        return branch

    def init_biases(self, cell_freq: torch.Tensor, mean_total: float, alpha: float = 0.1,
                    mixes: torch.Tensor | None = None,
                    country_totals: torch.Tensor | None = None) -> None:
        """Start the heads at the training base rates (cell frequencies, mean total).

        A mixture head's components at ``mixes`` [K, 80] (e.g. training days grouped by their conflict
        share; without them the base rates, tilted apart at random); a regime filter's per-country volumes
        at ``country_totals`` [C] (mean events per day; without them ``mean_total``), and the total head
        then at the filter's predictive mean.
        """
        with torch.no_grad():
            base = torch.log(cell_freq.clamp_min(1e-6))
            log_total = math.log(max(mean_total, 1e-3))
            if self.filter is not None:
                tot = (torch.full((self.cfg.n_countries,), mean_total) if country_totals is None
                       else country_totals.float())
                self.filter.base.copy_(torch.log(tot.clamp_min(1e-3)))
                log_total = 0.0  # a correction of the filter's log mean
            if self.cfg.prior:  # residuals start at zero: the model starts as the prior
                self.total.bias.copy_(torch.tensor([0.0, math.log(alpha)]))
                self.cells.bias.zero_()
                return
            self.total.bias.copy_(torch.tensor([log_total, math.log(alpha)]))
            if not self.cfg.mixture:
                self.cells.bias.copy_(base)
                return
            self.cells.bias.zero_()
            if mixes is not None:
                self.components.copy_(torch.log(mixes.clamp_min(1e-6)))
            else:
                g = torch.Generator().manual_seed(0)
                self.components.copy_(base + 0.3 * torch.randn(self.cfg.mixture, N_CELLS, generator=g))

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Hidden state [B, L, d] of every position (causal)."""
        tok = (self.feat(batch["feats"]) + self.set(batch["points"], batch["weights"])
               + self.dow(batch["dow"]))
        if self.country is not None:
            tok = tok + self.country(batch["country"])[:, None, :]
        if self.world is not None:
            tok = tok + self.world(batch["world"], batch["country"])
        if self.evidence is not None:
            tok = tok + self.evidence(self.mix_loglik(batch["feats"]).to(tok.dtype))
        length = tok.shape[1]
        if self.cfg.backbone == "transformer":
            if self.ema is not None:
                tok = self.ema(tok)
            if self.pos is not None:
                tok = tok + self.pos[-length:]
            x = self.drop(self.norm_in(tok))
            mask = torch.triu(torch.full((length, length), float("-inf"), device=x.device), 1)
            if self.cfg.recency_bias:  # one exponential forgetting rate per head
                mask = (mask[None] + self.recency(length, x.device)).to(x.dtype)
                mask = mask.repeat(x.shape[0], 1, 1)  # [B * heads, L, L]
                h = self.backbone(x, mask=mask)
            else:
                h = self.backbone(x, mask=mask, is_causal=True)
        else:
            h, _ = self.backbone(self.drop(self.norm_in(tok)))
        return self.norm_out(h)

    def mix_loglik(self, feats: torch.Tensor) -> torch.Tensor:
        """Each context day's centred log-likelihood under every mix of the mixture head, ``[..., K]``.

        [..., K]: each context day's log-likelihood of its cell counts under every mix of the mixture head,
        ``sum_cells n log p_k`` centred over ``k`` and divided by 10 (the evidence a regime filter adds up;
        the mixes enter detached, the head's loss alone fits them).  The counts are recovered from the
        ``log1p`` features.
        """
        comp = torch.log_softmax(self.components.detach().float(), -1)
        ll = self.counts(feats) @ comp.T
        return (ll - ll.mean(-1, keepdim=True)) / 10.0

    @staticmethod
    def counts(feats: torch.Tensor) -> torch.Tensor:
        """The context days' cell counts ``[..., 80]``, recovered from the ``log1p`` features.

        [..., 80] float32: the context days' cell counts, recovered (exactly, for integer counts) from the
        ``log1p`` features.
        """
        return torch.expm1(feats[..., :N_CELLS].float()).clamp_min(0.0).round()

    def recency(self, length: int, device) -> torch.Tensor:
        """ALiBi biases [heads, L, L].

        ``-slope_h (t - s)`` for key day ``s`` <= query day ``t``, slopes ``2^(-8 (h + 1) / heads)``.
        """
        heads = self.cfg.heads
        slopes = 2.0 ** (-8.0 * torch.arange(1, heads + 1, device=device) / heads)
        pos = torch.arange(length, device=device)
        dist = (pos[:, None] - pos[None, :]).clamp_min(0).float()
        return -slopes[:, None, None] * dist

    def features(self, batch: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The heads' input and the regime filter's state at every position.

        The heads' input [B, L, d] at every position, with the regime filter's log predictive state law [B,
        L, K] and log mean total [B, L] (``None`` without a filter).
        """
        h = self.encode(batch) + self.next_dow(batch["next_dow"])
        prior = filter_log_mu = None
        if self.filter is not None:
            prior, filter_log_mu = self.filter(self.counts(batch["feats"]),
                                               torch.log_softmax(self.components.float(), -1),
                                               batch["country"], batch["dow"], batch["next_dow"])
            h = h + self.filter_in(prior.exp().to(h.dtype))
        return self.trunk(h), prior, filter_log_mu

    def cloud_head(self, h: torch.Tensor, positions: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The day clouds at ``positions`` (default: last) of features ``h`` [B, L, d].

        Unit vectors [B, P, K, E] and log weights [B, P, K].
        """
        if positions is None:
            positions = torch.tensor([h.shape[1] - 1], device=h.device)
        raw = self.cloud(h[:, positions]).unflatten(-1, (self.cfg.k, self.cfg.dim + 1)).float()
        x = raw[..., :-1]
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6), torch.log_softmax(raw[..., -1], dim=-1)

    def forward(self, batch: dict[str, torch.Tensor],
                cloud_positions: torch.Tensor | None = None, last_only: bool = False) -> ForecastOutput:
        """Heads at every position; the cloud head at ``cloud_positions`` (default: last).

        Args:
            batch: a :meth:`~wgf_cli.forecast.data.SequenceData.batch`.
            cloud_positions: the positions of the cloud forecasts (default: the last).
            last_only: the event and count outputs at the last position only (``[B, 1, ...]``):
                what validation and prediction read.  The mixture of the event head (the
                costly part) is then formed there alone; the backbone and the linear maps
                still run on every position, so the numbers are those of the full forward.
        """
        h, prior, filter_log_mu = self.features(batch)
        tot = self.total(h)
        log_mu = tot[..., 0].float()
        if filter_log_mu is not None:
            log_mu = log_mu + filter_log_mu
        if self.cfg.prior:
            log_mu = batch["prior_log_mu"].float() + self.shrink[1] * log_mu
        if self.cloud_branch is not None:
            x, logw = self.cloud_branch.cloud_head(self.cloud_branch.features(batch)[0], cloud_positions)
        else:
            x, logw = self.cloud_head(h, cloud_positions)
        cells = self.cells(self.cell_proj(h))
        if self.cfg.prior:
            cells = batch["prior_cells"].float() + self.shrink[0] * cells.float()
        tilt = self.tilt(h).float() if self.tilt is not None else None
        if last_only:  # the linear maps above ran on every position: the same numbers
            tot, log_mu, cells = tot[:, -1:], log_mu[:, -1:], cells[:, -1:]
            prior = None if prior is None else prior[:, -1:]
            tilt = None if tilt is None else tilt[:, -1:]
        if self.cfg.mixture:  # log sum_k w_k softmax(components_k): normalised log-probs
            if prior is not None:  # the state's readout corrects the filter's law
                cells = cells.float() + prior
            mix = torch.log_softmax(cells.float(), -1)
            comp = self.components.float()
            if tilt is not None:  # [..., K, 80]: every mix tilted by the same offset
                comp = comp + tilt[..., None, :]
            comp = torch.log_softmax(comp, -1)
            cells = torch.logsumexp(mix[..., :, None] + comp, dim=-2)
        return ForecastOutput(cells, log_mu, tot[..., 1].float().clamp(-8.0, 4.0), x, logw)


# ---------------------------------------------------------------------------------------
# likelihoods
# ---------------------------------------------------------------------------------------
def count_nll(n: torch.Tensor, log_mu: torch.Tensor, log_alpha: torch.Tensor,
              dist: str = "negbin") -> torch.Tensor:
    """Negative log-likelihood of counts ``n`` (elementwise).

    Negative binomial with mean ``mu`` and variance ``mu + alpha mu^2``, or Poisson(mu).
    """
    mu = log_mu.exp()
    if dist == "poisson":
        return mu - n * log_mu + torch.lgamma(n + 1)
    r = torch.exp(-log_alpha)  # 1 / alpha
    log_r_mu = torch.logaddexp(torch.log(r), log_mu)  # log(r + mu)
    return -(torch.lgamma(n + r) - torch.lgamma(r) - torch.lgamma(n + 1)
             + r * (torch.log(r) - log_r_mu) + n * (log_mu - log_r_mu))


def occurrence_probs(root_probs: torch.Tensor, mu: torch.Tensor, alpha: torch.Tensor | None,
                     dist: str = "negbin") -> torch.Tensor:
    """P(at least one event of each root code).

    Thinning of the total count by ``p_r`` gives NB(mu p_r, alpha) (``1 - (1 + alpha mu
    p_r)^(-1/alpha)``) or Poisson(mu p_r).
    """
    lam = mu[..., None] * root_probs
    if dist == "poisson" or alpha is None:
        return -torch.expm1(-lam)
    a = alpha[..., None]
    return -torch.expm1(-torch.log1p(a * lam) / a)
