"""Data-parallel set-up of the forecaster's training under ``torchrun``.

:func:`setup_distributed` reads the launcher's environment (``WORLD_SIZE``, ``LOCAL_RANK``)
and, when more than one process runs, initialises :mod:`torch.distributed` (NCCL on CUDA,
Gloo on the CPU) and pins each process to its GPU::

    rank, world, device = setup_distributed("cuda")
    if rank == 0:
        ...  # write outputs once
"""

from __future__ import annotations

import os

import torch


def setup_distributed(device: str) -> tuple[int, int, str]:
    """Initialise ``torch.distributed`` under torchrun (``WORLD_SIZE`` > 1).

    Args:
        device: the configured device (``cpu``, ``cuda``, ``cuda:0`` ...).

    Returns:
        ``(rank, world size, device)``: ``(0, 1, device)`` in a single process; under
            torchrun on CUDA the device becomes ``cuda:<LOCAL_RANK>`` (and is made current).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    rank = torch.distributed.get_rank()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return rank, world, device
