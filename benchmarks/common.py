"""Shared helpers of the benchmarks: arguments, machine info, timing, tables, JSON output.

Every benchmark reports *ratios* measured in one process with the two contenders
interleaved (round after round) and medians taken, because the machines these run on are
shared and noisy.  Absolute times are written too, labelled as such.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"

#: Physical settings of the heat-flow benchmarks (the default run of ``wgf jko``).
DIFFUSION = 0.1
MEAN = (0.5, 0.5)
STD0 = 0.06


# -- arguments ----------------------------------------------------------------------
def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared 2-core machine two threads stall on "
        "each other; 0 keeps torch's default)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and check ``--device``; returns the torch device."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available to this torch")
    args.out.mkdir(parents=True, exist_ok=True)
    return torch.device(args.device)


def parse_dtype(name: str | None, device: torch.device) -> torch.dtype:
    if name is None:
        return torch.float32 if device.type == "cuda" else torch.float64
    return {"float32": torch.float32, "float64": torch.float64}[name]


# -- machine ------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_available_bytes(device: torch.device) -> int:
    """Free memory on ``device`` (``MemAvailable`` on the CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def machine_info(device: torch.device, dtype: torch.dtype) -> dict:
    info = {
        "date": _dt.date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_model": _cpu_model(),
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()
        ),
        "dtype": str(dtype).replace("torch.", ""),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "note": "absolute times are wall-clock on a shared, noisy machine; compare ratios",
    }
    return info


# -- timing -------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Wall time of one call (device synchronised before and after) and its result."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def per_call(fn: Callable[[], object], device: torch.device, inner: int) -> float:
    """Mean wall time of ``inner`` back-to-back calls."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / inner


def calibrate(fn: Callable[[], object], device: torch.device, target_s: float = 0.05,
              cap: int = 10_000) -> int:
    """Number of back-to-back calls that take about ``target_s`` (at least 1)."""
    t = per_call(fn, device, 1)
    return int(min(cap, max(1, math.ceil(target_s / max(t, 1e-7)))))


def interleaved(fns: dict[str, Callable[[], object]], device: torch.device, rounds: int,
                inner: dict[str, int]) -> dict[str, list[float]]:
    """Per-call times of each function, ``rounds`` rounds, the functions taking turns."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(list(fns)))
        for k in order:
            out[k].append(per_call(fns[k], device, inner[k]))
    return out


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ``log y`` against ``log x`` (None with < 2 usable points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    return sxy / sxx if sxx > 0 else None


# -- output -------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if math.isinf(v) or math.isnan(v):
            return str(v)
        a = abs(v)
        if a >= 1e4 or a < 1e-3:
            return f"{v:.2e}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}"
    return str(v)


def markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """``columns`` are ``(key, header)`` pairs."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_json(out_dir: Path, name: str, payload: dict) -> Path:
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


# -- problems -----------------------------------------------------------------------
def heat_setup(n: int, dtype: torch.dtype, device: torch.device):
    """Grid ``n x n`` on [0,1]^2, heat energy D=0.1 and the initial Gaussian (std 0.06)."""
    from wgf_cli.flows.energies import Heat
    from wgf_cli.flows.initial import gaussian
    from wgf_cli.ot.grid import Grid

    grid = Grid.regular(n, dim=2, dtype=dtype, device=device)
    energy = Heat(grid, DIFFUSION)
    rho0 = gaussian(grid, MEAN, STD0)
    return grid, energy, rho0


def dense_cost(grid) -> torch.Tensor:
    """``|x_i - x_j|^2`` as an ``N x N`` matrix, in C order, summed axis by axis.

    Built from the same per-axis differences as :class:`GridGeometry` (no ``cdist``), so
    the dense and the separable kernels hold the same numbers up to the rounding of exp.
    """
    if grid.dim != 2:
        raise ValueError("dense_cost is written for 2-D grids")
    cx, cy = ((x[:, None] - x[None, :]) ** 2 for x in grid.axes)
    n0, n1 = grid.shape
    cost = cx[:, None, :, None] + cy[None, :, None, :]  # (i0, i1, j0, j1)
    return cost.reshape(n0 * n1, n0 * n1)
