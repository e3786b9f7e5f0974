"""One rank of a 2-process gloo DDP run of the forecast Trainer (used by
``test_gdelt_train_train.py::test_ddp_two_gloo_ranks_equal_one_process_on_the_global_batch``).

``python gdelt_train_ddp_worker.py RANK WORLD PORT OUT``: trains :func:`make_trainer` with a
per-rank batch of ``GLOBAL_BATCH // WORLD`` and, on rank 0, saves the final weights and the
history to ``OUT`` (``torch.save``).  :func:`make_trainer` is also the single-process run the
test compares against (``world=1``: the whole global batch in one process).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from wgf_cli.forecast.data import SequenceData, load_build
from wgf_cli.forecast.model import Forecaster, ModelConfig
from wgf_cli.forecast.train import TrainConfig, Trainer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gdelt_train_build"
GLOBAL_BATCH = 32
PER_EPOCH = 96  # even: the sharded order keeps every sequence; 3 global steps an epoch


def make_trainer(world: int) -> Trainer:
    """No dropout (the ranks' masks would differ from the single process's), the same seed,
    sequences and schedule; ``batch_size`` per rank so that the ranks' batches together are
    the single process's batch (``epoch_batches`` shards the order by interleaving)."""
    torch.set_num_threads(1)
    build = load_build(FIXTURE)
    tr, va = SequenceData(build, "train", 50, 48), SequenceData(build, "validation", 50)
    torch.manual_seed(0)
    model = Forecaster(ModelConfig(build.n_countries, build.dim, build.k, 50, d_model=16, ff=32,
                                   layers=1, dropout=0.0))
    tc = TrainConfig(epochs=1, cloud_epochs=1, batch_size=GLOBAL_BATCH // world, patience=0,
                     max_val=16, per_epoch=PER_EPOCH, min_delta=-1e9)
    return Trainer(model, tr, va, tc, "cpu")


def main(rank: int, world: int, port: int, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                         rank=rank, world_size=world)
    try:
        t = make_trainer(world)
        assert isinstance(t.net, torch.nn.parallel.DistributedDataParallel)
        t.fit()
        if rank == 0:
            torch.save({"model": t.model.state_dict(), "history": t.state.history}, out)
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
