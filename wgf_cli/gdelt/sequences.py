"""Training sequences: ``context`` consecutive observed daily descriptors plus the next day.

A window ``(country, start)`` covers day indices ``start .. start + context`` (the last one
the target) and is valid when all of them are observed (never across a missing day).
Windows are split by their target day: the target days ``context .. D-1`` are cut in time
order into train / validation / test blocks of the given fractions, so every train target
is earlier than every validation target, itself earlier than every test target.  From each
block its share of ``count`` (largest-remainder rounding) windows are drawn without replacement with the seed (all
of them when the block holds fewer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")


@dataclass
class Sequences:
    index: pd.DataFrame          # seq_id, country, country_idx, start, split
    requested: int
    available: dict[str, int]    # valid windows per split
    splits: dict[str, list[int]]  # split -> [first target day, last target day] (YYYYMMDD)


def valid_windows(observed: np.ndarray, context: int) -> np.ndarray:
    """bool [C, D - context]: window starting at ``s`` has all ``context + 1`` days observed."""
    C, D = observed.shape
    if D <= context:
        return np.zeros((C, 0), bool)
    bad = np.concatenate([np.zeros((C, 1), np.int64), np.cumsum(~observed, axis=1)], axis=1)
    return (bad[:, context + 1:] - bad[:, : D - context]) == 0


def sample(observed: np.ndarray, countries: np.ndarray, days: np.ndarray, *, count: int, context: int = 50,
           fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0) -> Sequences:
    C, D = observed.shape
    ok = valid_windows(observed, context)
    n_targets = max(D - context, 0)
    cuts = np.round(np.cumsum(fractions) / sum(fractions) * n_targets).astype(int)
    bounds = [0, int(cuts[0]), int(cuts[1]), n_targets]
    rng = np.random.Generator(np.random.PCG64(seed))
    share = np.asarray(fractions, float) / sum(fractions) * count
    quota = np.floor(share).astype(int)
    quota[np.argsort(-(share - quota), kind="stable")[: count - quota.sum()]] += 1   # largest remainders
    parts, available, splits = [], {}, {}
    for i, name in enumerate(SPLITS):
        lo, hi = bounds[i], bounds[i + 1]
        c_idx, s_idx = np.nonzero(ok[:, lo:hi])
        s_idx = s_idx + lo
        available[name] = len(c_idx)
        want = min(int(quota[i]), len(c_idx))
        pick = np.sort(rng.choice(len(c_idx), size=want, replace=False)) if want else np.zeros(0, int)
        part = pd.DataFrame({"country_idx": c_idx[pick].astype(np.int32), "start": s_idx[pick].astype(np.int32),
                             "split": name})
        parts.append(part)
        if want:
            targets = days[part["start"].to_numpy() + context]
            splits[name] = [int(targets.min()), int(targets.max())]
        else:
            splits[name] = [0, 0]
    index = pd.concat(parts, ignore_index=True)
    index.insert(0, "seq_id", np.arange(len(index), dtype=np.int64))
    index.insert(1, "country", countries[index["country_idx"].to_numpy()].astype(str))
    index = index[["seq_id", "country", "country_idx", "start", "split"]]
    return Sequences(index, count, available, splits)
