"""The per-seed GAN protocol (:mod:`wgf_cli.gan.protocol`): the seed statistics against numpy,
two seeds of a tiny float64 run against the values the loop gave before it moved into the
engine, the callback, and reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wgf_cli.gan.data import make_dataset
from wgf_cli.gan.protocol import (
    EvalConfig,
    NetConfig,
    ProtocolConfig,
    seed_statistics,
    summarize_seeds,
    train_seed,
)
from wgf_cli.gan.trainer import TrainConfig


def test_seed_statistics_against_numpy():
    rng = np.random.default_rng(3)
    v = rng.normal(size=7)
    values = [*v.tolist(), None, float("nan")]  # None and NaN are left out
    st = seed_statistics(values, "max")
    assert st.count == 7
    np.testing.assert_allclose(st.mean, np.mean(v), rtol=1e-15)
    np.testing.assert_allclose(st.se, np.std(v, ddof=1) / np.sqrt(7), rtol=1e-14)
    assert st.worst == np.max(v)
    assert seed_statistics(values, "min").worst == np.min(v)
    assert seed_statistics(values).worst is None


def test_seed_statistics_edge_cases():
    one = seed_statistics([2.5, None], "min")
    assert (one.mean, one.se, one.worst, one.count) == (2.5, None, 2.5, 1)
    empty = seed_statistics([None, float("inf")], "max")
    assert (empty.mean, empty.se, empty.worst, empty.count) == (None, None, None, 0)
    with pytest.raises(ValueError, match="worst"):
        seed_statistics([1.0], "median")


def _tiny() -> ProtocolConfig:
    train = TrainConfig(loss="wgan_gp", n_critic=2, batch_size=32, z_dim=2, lr_g=1e-3, lr_c=1e-3,
                        gp_lambda=1.0, iterations=12, ema=(0.9,))
    return ProtocolConfig(train=train, generator=NetConfig(16, 2), critic=NetConfig(16, 2), data_scale=1.0,
                          eval=EvalConfig(every=6, samples=150, track_every=2, hq_threshold=120.0),
                          ema_decay=0.9, snapshots=2, grid=16)


#: ``wgf wgan``'s per-seed loop before it moved into the engine, same tiny float64 run on ring8,
#: seeds 0 and 1 (EMA 0.9 headline, raw_* the trained generator)
BEFORE = {"final_w1": 1.3726531987069528, "final_w1_se": 0.0015949393341386786,
          "final_w1_worst": 1.3742481380410916, "final_w2": 1.3944278531064265,
          "final_w2_se": 0.00866975695280403, "critic_w1_estimate": 0.07479561933579082,
          "modes_covered": 2.0, "modes_covered_worst": 2.0, "hq_fraction": 1.0,
          "reverse_kl": 1.6533535852475993, "reverse_kl_se": 0.25814380869806364,
          "reverse_kl_worst": 1.911497393945663, "raw_final_w1": 1.3741900034268721,
          "raw_final_w1_se": 0.001098648140090641, "raw_final_w1_worst": 1.3752886515669627,
          "raw_reverse_kl": 1.6430351893017379, "raw_reverse_kl_se": 0.24782541275220213,
          "raw_reverse_kl_worst": 1.89086060205394, "gen_mean_0": -0.19893225213951085,
          "gen_mean_1": 0.0015092065712384167}


def test_two_seeds_give_the_metrics_of_the_loop_before_it_moved():
    data = make_dataset("ring8")
    cfg = _tiny()
    calls: list[tuple[int, dict | None]] = []
    results = [train_seed(data, cfg, s, dtype=torch.float64, keep_snapshots=(s == 0),
                          callback=lambda it, row: calls.append((it, row))) for s in (0, 1)]
    s = summarize_seeds(results, cfg, data.n_modes)
    for key, value in BEFORE.items():
        assert s[key] == pytest.approx(value, rel=1e-7, abs=1e-12), key
    # the callback: iteration 0 and every iteration after it, rows exactly at the evaluations
    assert [it for it, _ in calls] == [*range(13), *range(13)]
    assert [it for it, row in calls if row is not None] == [0, 6, 12, 0, 6, 12]
    assert [row for _, row in calls if row is not None] == [*results[0].rows, *results[1].rows]
    # the summary's statistics are those of the final rows
    w1 = [r.rows[-1]["w1"] for r in results]
    assert s["final_w1"] == np.mean(w1)
    assert s["final_w1_se"] == pytest.approx(np.std(w1, ddof=1) / math.sqrt(2), rel=1e-12)
    assert s["final_w1_worst"] == max(w1)
    assert s["n_modes"] == 8
    assert len(results[0].snaps) == 2 and results[1].snaps == []
    assert results[0].weights is not None and results[0].track["mean"].shape == (7, 2)


def test_same_seed_same_run_other_seed_other_run():
    data = make_dataset("gauss2_1d")
    cfg = _tiny()
    a, b = (train_seed(data, cfg, 4, dtype=torch.float64) for _ in range(2))
    c = train_seed(data, cfg, 5, dtype=torch.float64)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(a.rows) == strip(b.rows)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.rows[-1]["w1"] != c.rows[-1]["w1"]
