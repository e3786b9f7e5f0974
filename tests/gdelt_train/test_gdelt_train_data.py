"""The build reader: contract checks with one-line errors, batches aligned with the arrays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wgf_cli.forecast.data import BuildError, SequenceData, check_build, epoch_batches, load_build

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt_train_build"


def test_missing_folder_names_the_build_command(tmp_path):
    with pytest.raises(BuildError, match="wgf gdelt-build experiment=gdelt_synthetic"):
        check_build(tmp_path / "nope", 50)


def test_short_sequences_and_other_embedding_are_rejected():
    with pytest.raises(BuildError, match="shorter than data.context=60"):
        check_build(FIXTURE, 60)
    with pytest.raises(BuildError, match="embedding"):
        check_build(FIXTURE, 50, ("minilm", 384))
    assert check_build(FIXTURE, 50, ("hash", 16))["k"] == 4


def test_wrong_version_is_rejected(tmp_path):
    b = shutil.copytree(FIXTURE, tmp_path / "b")
    m = json.loads((b / "manifest.json").read_text())
    m["dataset"]["version"] = 2
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BuildError, match="version"):
        check_build(b, 50)


def test_batches_align_with_the_descriptor_arrays():
    build = load_build(FIXTURE)
    data = SequenceData(build, "test", 50)
    batch = data.batch([0, 3])
    for i, r in enumerate([0, 3]):
        c, start = int(data.table.country_idx[r]), int(data.table.start[r])
        t = start + 50
        np.testing.assert_array_equal(batch["y_counts"][i, -1].numpy(),
                                      build.counts[c, t].reshape(80))
        np.testing.assert_array_equal(batch["y_counts"][i, 0].numpy(),
                                      build.counts[c, start + 1].reshape(80))
        np.testing.assert_allclose(batch["feats"][i, -1, :80].numpy(),
                                   np.log1p(build.counts[c, t - 1].reshape(80)), rtol=1e-6)
        np.testing.assert_array_equal(batch["points"][i, 5].numpy(),
                                      build.points[c, start + 5].astype(np.float32))
    assert batch["feats"].shape == (2, 50, 85)  # 80 cells, total, Goldstein x 2, multi, observed
    np.testing.assert_array_equal(batch["feats"][:, :, -1].numpy(), 1.0)   # the fixture has no gap
    assert build.split("train").start.max() < build.split("test").start.min()


def test_epoch_order_depends_on_seed_and_epoch_only():
    a = epoch_batches(100, 16, seed=1, epoch=3)
    b = epoch_batches(100, 16, seed=1, epoch=3)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert not all((x == y).all() for x, y in zip(a, epoch_batches(100, 16, 1, 4), strict=True))
    shards = [np.concatenate(epoch_batches(101, 8, 0, 0, rank=r, world=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 50 and not set(shards[0]) & set(shards[1])
