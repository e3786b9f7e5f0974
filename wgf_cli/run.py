"""The run-folder contract (see DESIGN.md): one :class:`Run` per job.

A run folder holds ``config.yaml``, ``run.json``, ``status.json``, ``metrics.jsonl`` (appended
and flushed as the run goes), ``metrics.csv`` (written at the end), ``summary.json``,
``plots/``, arrays and checkpoints.  Every file but the append-only ``metrics.jsonl`` is
written atomically (temporary name, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _jsonable(value: Any) -> Any:
    """Plain JSON value (numpy/torch scalars to Python; NaN/inf to None)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_file(path: str | Path, default: Any = None) -> Any:
    """A run-folder file (``.json``, or YAML such as ``.hydra/overrides.yaml``) parsed, or
    ``default`` when it is missing, unreadable or empty."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        value = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return default
    return default if value is None else value


def save_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip("."), **({"dpi": 120, "bbox_inches": "tight"} | savefig_kwargs))
    plt.close(fig)
    return atomic_write(path, buf.getvalue())


def _git_info() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                                    text=True, timeout=5).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"commit": commit, "dirty": dirty}


class Progress:
    """A rich progress bar, or nothing when disabled.  ``advance(**fields)`` per step."""

    def __init__(self, total: int, description: str, enabled: bool) -> None:
        self.total, self.description, self.enabled = total, description, enabled
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, info="")
        return self

    def advance(self, n: int = 1, **fields: Any) -> None:
        if self._bar is not None:
            info = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in fields.items())
            self._bar.update(self._task, advance=n, info=info)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


class Run:
    """Paths and writers of one run folder.

    Use as a context manager: entering writes ``config.yaml``, ``run.json`` and
    ``status.json = running`` and starts an empty ``metrics.jsonl`` (kept when ``resume``);
    leaving writes ``metrics.csv``, the end of ``run.json`` and the final status
    (``completed``, ``failed`` with the traceback, or ``interrupted``).
    """

    def __init__(self, directory: str | Path, command: str, config_yaml: str = "",
                 *, progress: bool = True, device: str | None = None,
                 argv: list[str] | None = None, resume: bool = False) -> None:
        self.dir = Path(directory).resolve()
        self.command = command
        self.config_yaml = config_yaml
        self.progress_enabled = progress
        self.device = device
        self.argv = list(sys.argv if argv is None else argv)
        self.resume = resume
        self.plots_dir = self.dir / "plots"
        self.metrics_path = self.dir / "metrics.jsonl"
        self.status = "created"
        self._metrics_fh: io.TextIOBase | None = None
        self._run_info: dict[str, Any] = {}
        self._t0 = time.perf_counter()
        self.summary: dict[str, Any] = {}

    # lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Run:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.plots_dir.mkdir(exist_ok=True)
        if self.config_yaml:
            atomic_write(self.dir / "config.yaml", self.config_yaml)
        self._run_info = self._collect_run_info()
        write_json(self.dir / "run.json", self._run_info)
        self.set_status("running")
        if not self.resume:  # a folder reused for a fresh run starts a fresh metric log
            atomic_write(self.metrics_path, "")
        self._metrics_fh = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            status, error, trace = "completed", None, None
        elif issubclass(exc_type, KeyboardInterrupt):
            status, error, trace = "interrupted", "interrupted by the user (KeyboardInterrupt)", None
        else:
            status = "failed"
            error = f"{exc_type.__name__}: {exc}"
            trace = "".join(traceback.format_exception(exc_type, exc, tb))
        if self._metrics_fh is not None:
            self._metrics_fh.close()
            self._metrics_fh = None
        with contextlib.suppress(Exception):
            self.write_metrics_csv()
        self._run_info.update(end=datetime.now().astimezone().isoformat(timespec="seconds"),
                              wall_s=round(time.perf_counter() - self._t0, 3))
        write_json(self.dir / "run.json", self._run_info)
        self.set_status(status, error=error, traceback=trace)
        return False

    def set_status(self, status: str, **extra: Any) -> None:
        self.status = status
        write_json(self.dir / "status.json", {"status": status, "error": extra.get("error"),
                                              "traceback": extra.get("traceback")})

    def _collect_run_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "command": self.command,
            "argv": self.argv,
            "cwd": os.getcwd(),
            "start": datetime.now().astimezone().isoformat(timespec="seconds"),
            "end": None,
            "git": _git_info(),
            "python": platform.python_version(),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "device": self.device,
        }
        try:
            import torch

            info["torch"] = torch.__version__
            info["cuda"] = torch.version.cuda
            info["cuda_available"] = torch.cuda.is_available()
            if self.device and self.device.startswith("cuda") and torch.cuda.is_available():
                info["device_name"] = torch.cuda.get_device_name()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        return info

    # writers ------------------------------------------------------------------------
    def log_metrics(self, step: int, **values: Any) -> None:
        """Append one row ``{"step": step, **values}`` to ``metrics.jsonl`` and flush it."""
        row = _jsonable({"step": int(step), **values})
        if self._metrics_fh is None:
            raise RuntimeError("log_metrics called outside the run context")
        self._metrics_fh.write(json.dumps(row) + "\n")
        self._metrics_fh.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                rows.append(json.loads(line))
        return rows

    def write_metrics_csv(self) -> Path | None:
        """``metrics.csv``: the rows of ``metrics.jsonl``, wide, column ``step`` first."""
        import pandas as pd

        rows = self.read_metrics()
        if not rows:
            return None
        df = pd.DataFrame(rows)
        df = df[["step"] + [c for c in df.columns if c != "step"]]
        return atomic_write(self.dir / "metrics.csv", df.to_csv(index=False))

    def save_summary(self, summary: dict[str, Any]) -> Path:
        """``summary.json``: a flat object of final scalars."""
        self.summary = dict(summary)
        return write_json(self.dir / "summary.json", self.summary)

    def save_plot(self, fig: Any, name: str, **savefig_kwargs: Any) -> Path:
        """Save a matplotlib figure as ``plots/<name>`` (``.png`` unless given) and close it."""
        return save_figure(fig, self.plots_dir / (name if "." in name else f"{name}.png"), **savefig_kwargs)

    def save_arrays(self, name: str, **arrays: Any) -> Path:
        """``<name>.npz`` with the given arrays (compressed)."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        return atomic_write(self.dir / (name if name.endswith(".npz") else f"{name}.npz"),
                            buf.getvalue())

    def save_checkpoint(self, state: dict[str, Any], name: str = "last") -> Path:
        """``checkpoints/<name>.pt`` (torch.save), atomically."""
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        return atomic_write(self.dir / "checkpoints" / f"{name}.pt", buf.getvalue())

    def load_checkpoint(self, name: str = "last") -> dict[str, Any] | None:
        import torch

        path = self.dir / "checkpoints" / f"{name}.pt"
        return torch.load(path, weights_only=False) if path.exists() else None

    def truncate_metrics(self, last_step: int) -> None:
        """Keep only the metric rows with ``step <= last_step`` (used when resuming)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= last_step]
        if self._metrics_fh is not None:
            self._metrics_fh.close()
        atomic_write(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
        self._metrics_fh = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Progress]:
        with Progress(total, description, self.progress_enabled) as bar:
            yield bar
