"""Helpers shared by the experiments: config checks (one-line :class:`ConfigError`) and
device / dtype resolution."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from wgf_cli.errors import ConfigError


def get(cfg: DictConfig, key: str) -> Any:
    """The value at dotted ``key``; :class:`ConfigError` if absent or ``???``."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        raise ConfigError(f"missing config key {key}")
    if OmegaConf.is_missing(node, leaf):
        raise ConfigError(f"{key} is required (give {key}=...)")
    return node[leaf]


def number(cfg: DictConfig, key: str, *, positive: bool = False, minimum: float | None = None,
           maximum: float | None = None, allow_none: bool = False) -> float | None:
    value = get(cfg, key)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{key} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key} must be <= {maximum}, got {value}")
    return float(value)


def integer(cfg: DictConfig, key: str, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    value = get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key} must be <= {maximum}, got {value}")
    return int(value)


def choice(cfg: DictConfig, key: str, allowed: Iterable[Any]) -> Any:
    allowed = list(allowed)
    value = get(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def boolean(cfg: DictConfig, key: str) -> bool:
    value = get(cfg, key)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def vector(cfg: DictConfig, key: str, length: int, *, allow_none: bool = False,
           allow_scalar: bool = False) -> list[float] | float | None:
    value = get(cfg, key)
    if value is None and allow_none:
        return None
    if allow_scalar and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, ListConfig | list) or len(value) != length or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"{key} must be a list of {length} numbers, got {_show(value)}")
    return [float(v) for v in value]


def _show(value: Any) -> str:
    return repr(OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig)
                else value)


def resolve_device(cfg: DictConfig) -> str:
    """``device``: auto | cpu | cuda (cuda:N); ``auto`` is cuda when available."""
    import torch

    device = get(cfg, "device")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda")
                                           or device.startswith("cuda:")):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA GPU is available; use device=cpu or auto")
    return device


def resolve_dtype(cfg: DictConfig, device: str):
    """``dtype``: auto | float32 | float64; ``auto`` is float64 on the CPU, float32 on CUDA."""
    import torch

    name = choice(cfg, "dtype", ["auto", "float32", "float64"])
    if name == "auto":
        return torch.float32 if device.startswith("cuda") else torch.float64
    return getattr(torch, name)


#: ``threads: auto`` uses one torch thread below this much work per op (elements of the largest
#: tensor an elementwise op or a per-axis product touches), PyTorch's default above.  Measured
#: on the 2-core CPU (benchmarks/bench_jko_scaling.py, docs/jko.md): with the machine busy two
#: threads made the kernel products 8x slower at 256^2 (the issue: 11x for the whole default
#: run); idle, two threads were 1.6-2.2x faster from 256^2 up.  One thread bounds the loss to
#: ~2x instead of ~10x ("never the slow case"); above 2048^2 cells a run is long enough to be
#: worth a dedicated machine, where the threads pay.
AUTO_THREADS_WORK = 1 << 22


def threads(cfg: DictConfig, key: str = "threads") -> int | str:
    """``threads``: ``auto`` or an integer >= 0 (0: PyTorch's default); one-line error otherwise."""
    value = get(cfg, key)
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be auto or an integer >= 0, got {value!r}")
    if value < 0:
        raise ConfigError(f"{key} must be >= 0 (or auto), got {value}")
    return int(value)


def resolve_threads(cfg: DictConfig, work: int, device: str = "cpu", key: str = "threads") -> int:
    """Apply ``threads`` to torch and return the thread count in use.

    ``auto``: 1 when ``work`` (elements touched by one op, e.g. grid cells) is below
    :data:`AUTO_THREADS_WORK` or the work runs on a GPU, else PyTorch's default; ``0``:
    PyTorch's default; ``k > 0``: ``k`` threads.
    """
    import torch

    value = threads(cfg, key)
    if value == "auto":
        value = 1 if (work < AUTO_THREADS_WORK or not device.startswith("cpu")) else 0
    if value > 0:
        torch.set_num_threads(value)
    return torch.get_num_threads()
