"""Reading a ``wgf gdelt-build`` folder (the dataset contract, version 1) for training.

:func:`check_build` validates a folder cheaply (manifest only) and raises :class:`BuildError`
with one line; :func:`load_build` reads everything into a :class:`GdeltBuild`;
:class:`SequenceData` turns the sequence index into batches of tensors:

- context features per day (``feats`` [B, L, F]): log1p of the 20 x 4 root-code x QuadClass
  counts, log1p of the total, Goldstein mean and std (/10), multi-country fraction, whether the
  day was observed (a missing day inside a window is all zeros with this flag 0), and the day
  of week; the day's k weighted points on the embedding sphere (``points`` [B, L, K, E],
  ``weights`` [B, L, K]) and the country index;
- targets for every position (the next day of each context day; the last one is the
  sequence's target day): counts [B, L, 80], total [B, L], points and weights;
- the panel's state on every context day (``world`` [B, L, C, 5]): for every country of the
  build its QuadClass shares of the day's events and log1p of its total (zeros on a day
  without events or not observed), so a forecast can use what happened elsewhere (e.g.
  conflict spreading from neighbours) without knowing who the neighbours are.  It is built
  from the same context days as ``feats`` (days before the target day only): the target day
  never leaks into the input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wgf_cli import gdelt_contract as contract
from wgf_cli.gdelt_contract import BUILD_COMMAND, N_CELLS, N_QUAD, N_ROOT

N_FEATS = N_CELLS + 5  # cells, log total, goldstein mean, goldstein std, multi fraction, observed
N_WORLD = N_QUAD + 1  # per country of the panel: QuadClass shares, log total


class BuildError(ValueError):
    """A build folder that cannot be used; the message is one line."""


def read_manifest(build_dir: str | Path) -> dict:
    """The ``dataset`` object of ``<build>/manifest.json`` (checked for version 1)."""
    root = Path(build_dir)
    if not root.is_dir():
        raise BuildError(f"no gdelt-build folder at {root}; build one with `{BUILD_COMMAND}` "
                         "(or point data.build_dir=PATH at a build)")
    path = root / "manifest.json"
    if not path.is_file():
        raise BuildError(f"{root} is not a gdelt-build folder (no manifest.json); build one "
                         f"with `{BUILD_COMMAND}`")
    try:
        ds = json.loads(path.read_text())["dataset"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise BuildError(f"{path} has no \"dataset\" object; rebuild with `{BUILD_COMMAND}`") from None
    if ds.get("version") != contract.DATASET_VERSION:
        raise BuildError(f"{path}: dataset version {ds.get('version')!r}, this gdelt-train reads "
                         "version 1")
    return ds


def check_build(build_dir: str | Path, context: int, embedding: tuple[str, int] | None = None) -> dict:
    """Check a build folder before any work.

    Files present, sequences at least ``context`` days long, and (when given) the embedding ``(name,
    dim)`` a checkpoint was trained with.
    """
    root = Path(build_dir)
    ds = read_manifest(root)
    for rel in ("descriptors/descriptors.npz", "descriptors/standard_events.npz",
                "sequences/index.parquet"):
        if not (root / rel).is_file():
            raise BuildError(f"{root}: {rel} is missing (an unfinished build?); rebuild with "
                             f"`{BUILD_COMMAND}`")
    if int(ds.get("context", 0)) < context:
        raise BuildError(f"the build's sequences have {ds.get('context')} context days, shorter "
                         f"than data.context={context}; rebuild with longer sequences or lower "
                         "data.context")
    if embedding is not None:
        name, dim = embedding
        if (ds.get("embedding"), int(ds.get("embedding_dim", -1))) != (name, int(dim)):
            raise BuildError(f"the build uses embedding {ds.get('embedding')} "
                             f"({ds.get('embedding_dim')}-d) but the checkpoint was trained on "
                             f"{name} ({dim}-d); resume only on a build with the same embedding")
    return ds


@dataclass
class StandardEvents:
    """The basis of standard events and the country vectors (forecast text)."""

    codes: np.ndarray
    phrases: np.ndarray
    vectors: np.ndarray  # [P, E] float32
    country_codes: np.ndarray
    country_names: np.ndarray
    country_vectors: np.ndarray  # [Q, E] float32

    def country_name(self, code: str) -> str:
        """The readable name of a country code (the code itself when unknown)."""
        hit = np.flatnonzero(self.country_codes == code)
        return str(self.country_names[hit[0]]) if len(hit) else str(code)


@dataclass
class GdeltBuild:
    """Everything gdelt-train reads from one build folder (arrays indexed [country, day])."""

    root: Path
    dataset: dict
    countries: np.ndarray
    days: np.ndarray
    counts: np.ndarray  # [C, D, 20, 4] int32
    total: np.ndarray
    goldstein_mean: np.ndarray
    goldstein_std: np.ndarray
    multi_frac: np.ndarray
    observed: np.ndarray
    points: np.ndarray  # [C, D, K, E] float16
    weights: np.ndarray  # [C, D, K]
    partners: np.ndarray
    standard: StandardEvents
    index: pd.DataFrame
    oracle: dict[str, np.ndarray] | None
    partner_counts: np.ndarray | None = None  # [C, D, 3] events per partner (None: builds without it)

    def partner_weights(self) -> np.ndarray:
        """[C, D, 3] events per partner; a build without counts weighs every listed partner 1."""
        if self.partner_counts is not None:
            return self.partner_counts
        return (self.partners != "").astype(np.int32)

    @property
    def k(self) -> int:
        """Points per day cloud."""
        return int(self.points.shape[2])

    @property
    def dim(self) -> int:
        """Embedding dimension of the cloud points."""
        return int(self.points.shape[3])

    @property
    def n_countries(self) -> int:
        """Number of countries in the panel."""
        return int(len(self.countries))

    @property
    def context(self) -> int:
        """Context length (days) the build's sequences were cut with."""
        return int(self.dataset["context"])

    def split(self, name: str) -> pd.DataFrame:
        """The sequence index rows of split ``name`` (``train``, ``val`` or ``test``)."""
        return self.index[self.index["split"] == name].reset_index(drop=True)

    def weekday(self, extra: int = 0) -> np.ndarray:
        """Day of week (Monday 0) of every day, and of ``extra`` days after the last."""
        first = date(int(self.days[0]) // 10000, int(self.days[0]) // 100 % 100, int(self.days[0]) % 100)
        return (first.weekday() + np.arange(len(self.days) + extra)) % 7

    def date_after_last(self) -> str:
        """The day after the build's last day, ``YYYY-MM-DD``."""
        last = pd.Timestamp(str(int(self.days[-1])))
        return (last + pd.Timedelta(days=1)).strftime("%Y-%m-%d")

    def tensors(self) -> dict[str, torch.Tensor]:
        """The per-day arrays as tensors, made once per build and shared by every :class:`SequenceData` of it."""
        key = tuple(id(a) for a in (self.counts, self.total, self.observed, self.points, self.weights,
                                    self.goldstein_mean, self.goldstein_std, self.multi_frac))
        cache = self.__dict__.get("_tensors")
        if cache is None or cache.get("key") != key:  # a copy with other arrays gets its own
            cache = self.__dict__["_tensors"] = {"key": key}
            cache.update(
                feats=torch.as_tensor(day_features(self)),
                counts=torch.as_tensor(self.counts.reshape(*self.total.shape, N_CELLS)),
                # float32 once here (exact from float16), not per batch
                points=torch.as_tensor(self.points).float(), weights=torch.as_tensor(self.weights),
                dow=torch.as_tensor(self.weekday(extra=1)),
                world=torch.as_tensor(world_features(self)),
                observed=torch.as_tensor(self.observed.astype(bool)))
        return {k: v for k, v in cache.items() if k != "key"}


def load_build(build_dir: str | Path, context: int = 50) -> GdeltBuild:
    """Read a build folder (after :func:`check_build`); checks shapes against the contract."""
    root = Path(build_dir)
    ds = check_build(root, context)
    with np.load(root / "descriptors" / "descriptors.npz") as z:
        arr = {k: z[k] for k in z.files}
    with np.load(root / "descriptors" / "standard_events.npz") as z:
        std = StandardEvents(**{k: z[k] for k in ("codes", "phrases", "vectors", "country_codes",
                                                  "country_names", "country_vectors")})
    oracle = None
    if ds.get("oracle") and (root / "oracle.npz").is_file():
        with np.load(root / "oracle.npz") as z:
            oracle = {k: z[k] for k in z.files}
    index = pd.read_parquet(root / "sequences" / "index.parquet")
    n_c, n_d = arr["total"].shape
    if arr["counts"].shape != (n_c, n_d, N_ROOT, N_QUAD):
        raise BuildError(f"{root}: counts has shape {arr['counts'].shape}, expected "
                         f"({n_c}, {n_d}, 20, 4)")
    if arr["points"].shape[:2] != (n_c, n_d) or arr["points"].shape[-1] != std.vectors.shape[-1]:
        raise BuildError(f"{root}: points {arr['points'].shape} do not match the descriptors / "
                         f"standard events ({std.vectors.shape[-1]}-d)")
    last = index["start"].to_numpy() + int(ds["context"])
    if len(index) and (last.max() >= n_d or index["start"].min() < 0):
        raise BuildError(f"{root}: the sequence index points outside the {n_d} days")
    return GdeltBuild(root, ds, arr["countries"], arr["days"], arr["counts"], arr["total"],
                      arr["goldstein_mean"], arr["goldstein_std"], arr["multi_frac"],
                      arr["observed"], arr["points"], arr["weights"], arr["partners"], std,
                      index, oracle, arr.get("partner_counts"))


def day_features(build: GdeltBuild) -> np.ndarray:
    """Scalar features of every (country, day): [C, D, F] float32 (see the module doc)."""
    n_c, n_d = build.total.shape
    cells = np.log1p(build.counts.reshape(n_c, n_d, N_CELLS).astype(np.float32))
    obs = build.observed
    extra = np.stack([np.log1p(build.total.astype(np.float32)), build.goldstein_mean / 10.0,
                      build.goldstein_std / 10.0, build.multi_frac, obs.astype(np.float32)],
                     axis=-1).astype(np.float32)
    return np.concatenate([cells * obs[..., None], extra * obs[..., None]], axis=-1)


def world_features(build: GdeltBuild) -> np.ndarray:
    """The panel's state of every day.

    [D, C, 5] float32, per country the shares of the four QuadClasses among the day's events and
    ``log1p`` of its total (all 0 on a day without events or not observed). Row ``d`` uses day ``d``'s
    descriptors only.
    """
    quad = build.counts.sum(2).astype(np.float64)  # [C, D, 4]
    n = quad.sum(-1, keepdims=True)
    share = np.divide(quad, n, out=np.zeros_like(quad), where=n > 0)
    total = np.log1p(build.total.astype(np.float64))[..., None]
    world = np.concatenate([share, total], axis=-1) * build.observed[..., None]
    return np.ascontiguousarray(world.transpose(1, 0, 2), dtype=np.float32)


class SequenceData:
    """Batches of forecasts of one split (or of given target days), as tensors.

    ``context`` days before each target day are the input; for every input position the
    target is the following day.  The per-day arrays are the build's shared tensors
    (:meth:`GdeltBuild.tensors`), gathered per batch.  Target day ``D`` (the day after the
    build's last) is allowed: its targets are zeros, for forecasting tomorrow.  With a
    ``prior`` (:class:`~wgf_cli.forecast.prior.Prior`) every batch carries the prior's log
    cell probabilities and log mean total of each position's next day.
    """

    def __init__(self, build: GdeltBuild, split: str, context: int,
                 max_sequences: int = 0, *, targets: tuple[np.ndarray, np.ndarray] | None = None,
                 prior=None) -> None:
        self.build = build
        self.split = split
        self.context = context
        if targets is None:
            table = build.split(split)
            if max_sequences and len(table) > max_sequences:
                table = table.iloc[np.linspace(0, len(table) - 1, max_sequences).round().astype(int)]
                table = table.reset_index(drop=True)
            target = table["start"].to_numpy(np.int64) + build.context
        else:
            country, target = (np.asarray(a, np.int64) for a in targets)
            if len(target) and (target.min() < context or target.max() > len(build.days)):
                raise ValueError(f"target days must lie in [{context}, {len(build.days)}]")
            table = pd.DataFrame({"seq_id": np.arange(len(target)), "country": build.countries[country],
                                  "country_idx": country, "start": target - build.context, "split": split})
        self.table = table
        self.country = torch.tensor(table["country_idx"].to_numpy(np.int64))
        self.target_day = torch.as_tensor(target)
        self._t = build.tensors()
        self._prior = None
        if prior is not None:
            self._prior = (torch.as_tensor(np.log(np.maximum(prior.cells, 1e-12))),
                           torch.as_tensor(np.log(np.maximum(prior.mu, 1e-6))))

    def __len__(self) -> int:
        return len(self.table)

    def batch(self, rows: torch.Tensor | np.ndarray | list[int]) -> dict[str, torch.Tensor]:
        """The tensors of sequences ``rows`` (positions in this split's table)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        t_ = self._t
        n_days = t_["feats"].shape[1]
        c = self.country[rows]
        t = self.target_day[rows]
        ctx = t[:, None] + torch.arange(-self.context, 0)[None, :]  # [B, L] input days
        nxt = ctx + 1  # [B, L] target days (the last may be the day after the build)
        known = (nxt < n_days)
        nxt_c = nxt.clamp_max(n_days - 1)
        cc = c[:, None].expand_as(ctx)
        out = {
            "rows": rows,
            "country": c,
            "feats": t_["feats"][cc, ctx],
            "points": t_["points"][cc, ctx],
            "weights": t_["weights"][cc, ctx],
            "dow": t_["dow"][ctx],
            "world": t_["world"][ctx],  # [B, L, C, 5]: context days only
            "next_dow": t_["dow"][nxt],
            "y_counts": t_["counts"][cc, nxt_c].float() * known[..., None],
            "y_points": t_["points"][cc, nxt_c],
            "y_weights": t_["weights"][cc, nxt_c] * known[..., None],
            "y_observed": t_["observed"][cc, nxt_c] & known,
        }
        if self._prior is not None:
            out["prior_cells"] = self._prior[0][cc, nxt]
            out["prior_log_mu"] = self._prior[1][cc, nxt]
        return out


class BatchDataset(torch.utils.data.Dataset):
    """A map-style dataset whose items are whole batches (for a DataLoader with workers)."""

    def __init__(self, data: SequenceData, batches: list[np.ndarray]) -> None:
        self.data, self.batches = data, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.data.batch(self.batches[i])


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
                  rank: int = 0, world: int = 1, per_epoch: int = 0) -> list[np.ndarray]:
    """The batches of one epoch.

    A permutation drawn from ``(seed, epoch)`` alone (so a resumed run sees the same order), cut to its
    first ``per_epoch`` sequences (0: all; the sequences overlap heavily, so an epoch of a fresh random
    subset loses little), sharded over ``world`` ranks.
    """
    if shuffle:
        g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
        order = torch.randperm(n, generator=g).numpy()
    else:
        order = np.arange(n)
    if per_epoch and per_epoch < n:
        order = order[:per_epoch]
    if world > 1:  # every rank gets the same number of batches (DDP steps in lockstep)
        order = order[: len(order) - len(order) % world][rank::world]
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
