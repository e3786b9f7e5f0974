"""Training sequences: ``context`` consecutive daily descriptors plus the next day.

A window ``(country, start)`` covers day indices ``start .. start + context`` (the last one
the target).  It is valid when its target day is observed and no run of consecutive
unobserved days inside its context is longer than ``max_gap`` (``max_gap=0``: every day
observed).  Unobserved context days stay in the window as masked days (``observed`` of
``descriptors.npz`` is False there); the consumer treats them as missing, not as days
without events.  :func:`sample` reports why the other windows were not made
(:attr:`Sequences.report`).
Windows are split by their target day: the target days ``context .. D-1`` are cut in time
order into train / validation / test blocks of the given fractions, so every train target
is earlier than every validation target, itself earlier than every test target.  From each
block its share of ``count`` (largest-remainder rounding) windows are drawn without replacement with the seed (all
of them when the block holds fewer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")


@dataclass
class Sequences:
    """The training windows of a build: index, split ranges and why windows were left out."""
    index: pd.DataFrame          # seq_id, country, country_idx, start, split
    requested: int
    available: dict[str, int]    # valid windows per split
    splits: dict[str, list[int]]  # split -> [first target day, last target day] (YYYYMMDD)
    report: dict = field(default_factory=dict)   # windows requested / possible / made and why not


def _run_lengths(observed: np.ndarray) -> np.ndarray:
    """Int [C, D]: the number of consecutive unobserved days ending at each day (0 if observed)."""
    C, D = observed.shape
    miss = ~observed
    idx = np.where(miss, 0, np.arange(D)[None, :] + 1)          # last observed position + 1, so far
    last = np.maximum.accumulate(idx, axis=1)
    return np.where(miss, np.arange(D)[None, :] + 1 - last, 0)


def window_status(observed: np.ndarray, context: int, max_gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(target observed [C, D - context], gap ok [C, D - context]) of each window.

    Its target day observed; no run of more than ``max_gap`` consecutive unobserved days inside its
    context (runs clipped to the window).
    """
    C, D = observed.shape
    if D <= context:
        return np.zeros((C, 0), bool), np.zeros((C, 0), bool)
    target = observed[:, context:]
    # a day t ends a too-long run inside window s iff run[t] > max_gap and t - max_gap >= s
    long_end = _run_lengths(observed) > max_gap                     # [C, D]
    cum = np.concatenate([np.zeros((C, 1), np.int64), np.cumsum(long_end, axis=1)], axis=1)
    s = np.arange(D - context)
    lo = s + max_gap                                                # first t that can end a long run
    hi = s + context                                                # context days are s .. s + context - 1
    lo = np.minimum(lo, hi)
    gap_ok = (cum[:, hi] - cum[:, lo]) == 0
    return target, gap_ok


def valid_windows(observed: np.ndarray, context: int, max_gap: int = 0) -> np.ndarray:
    """Bool [C, D - context]: the window starting at ``s`` is valid (see the module doc)."""
    target, gap_ok = window_status(observed, context, max_gap)
    return target & gap_ok


def sample(observed: np.ndarray, countries: np.ndarray, days: np.ndarray, *, count: int, context: int = 50,
           fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0, max_gap: int = 0) -> Sequences:
    """Sample up to ``count`` usable windows of ``context`` days and split them by target day."""
    C, D = observed.shape
    target, gap_ok = window_status(observed, context, max_gap)
    ok = target & gap_ok
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
    report = {"requested": int(count), "possible": int(C * max(D - context, 0)), "valid": int(ok.sum()),
              "made": int(len(index)), "max_gap": int(max_gap), "context": int(context),
              "target_unobserved": int((~target).sum()), "gap_too_long": int((target & ~gap_ok).sum()),
              "not_sampled": int(ok.sum() - len(index)),
              "windows_with_unobserved_days": int(_masked_windows(observed, context, ok))}
    return Sequences(index, count, available, splits, report)


def _masked_windows(observed: np.ndarray, context: int, ok: np.ndarray) -> int:
    """How many valid windows hold at least one unobserved (masked) context day."""
    C, D = observed.shape
    if D <= context:
        return 0
    miss = np.concatenate([np.zeros((C, 1), np.int64), np.cumsum(~observed, axis=1)], axis=1)
    s = np.arange(D - context)
    return int(((miss[:, s + context] - miss[:, s]) > 0)[ok].sum())
