"""``wgf summarize DIR...``: one table from any set of run folders (single runs and sweeps).

A run folder is any folder with a ``status.json`` (the run-folder contract); each ``DIR``
is searched recursively, so a sweep root, a day folder or ``outputs/`` all work.  Columns:
the folder, its command, status, the overrides it was run with (``.hydra/overrides.yaml``)
and summary keys — by default each command's headline keys and ``wall_s``, ``all`` for every
key, or a chosen list.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wgf_cli.commands import COMMANDS
from wgf_cli.run import read_file


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders (with ``status.json``) at or below ``paths``, sorted, without duplicates."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        if (p / "status.json").exists():
            found.add(p.resolve())
        found.update(s.parent.resolve() for s in p.rglob("status.json"))
    return sorted(found)


def table(paths: list[str | Path], keys: list[str] | None = None) -> pd.DataFrame:
    """One row per run: ``run, command, status, overrides`` and the summary ``keys``
    (``None``: headline keys of the commands present and ``wall_s``; ``["all"]``: all)."""
    rows, commands = [], []
    for run in find_runs(paths):
        info = read_file(run / "run.json", {})
        status = read_file(run / "status.json", {})
        overrides = read_file(run / ".hydra" / "overrides.yaml", [])
        summary = read_file(run / "summary.json", {})
        cmd = info.get("command", "")
        commands.append(cmd)
        rows.append({"run": str(run), "command": cmd, "status": status.get("status", "?"),
                     "overrides": " ".join(o for o in overrides
                                           if not o.startswith("hydra.") and not o.startswith("resume=")),
                     **{k: v for k, v in summary.items() if not isinstance(v, (list, dict))}})
    df = pd.DataFrame(rows, columns=["run", "command", "status", "overrides"] if not rows else None)
    if keys == ["all"]:
        return df
    if keys is None:
        keys = []
        for cmd in dict.fromkeys(commands):
            if cmd in COMMANDS:
                keys += [k for k in getattr(COMMANDS[cmd].experiment(), "HEADLINE", []) if k not in keys]
        keys.append("wall_s")
    missing = [k for k in keys if k not in df.columns]
    df = df.reindex(columns=["run", "command", "status", "overrides", *keys])
    if missing and len(df):
        df.attrs["missing"] = missing
    return df


def for_display(df: pd.DataFrame, cwd: Path | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The table as printed: run folders relative to ``cwd`` where possible, and instead of
    the ``overrides`` column one column per override key whose value differs between runs.
    Returns the table and the overrides every run shares."""
    cwd = (cwd or Path.cwd()).resolve()
    out = df.copy()

    def short(run: str) -> str:
        try:
            return str(Path(run).resolve().relative_to(cwd))
        except ValueError:
            return run

    if "run" in out:
        out["run"] = [short(r) for r in out["run"]]
    if "overrides" not in out or out.empty:
        return out, []
    parsed = [dict(o.split("=", 1) if "=" in o else (o, "") for o in str(s).split())
              for s in out["overrides"].fillna("")]
    keys = list(dict.fromkeys(k for d in parsed for k in d))
    varying = [k for k in keys if len({d.get(k) for d in parsed}) > 1]
    shared = [f"{k}={parsed[0][k]}" for k in keys if k not in varying]
    at = list(out.columns).index("overrides")
    out = out.drop(columns=["overrides"])
    for i, k in enumerate(varying):
        out.insert(at + i, k, [d.get(k, "") for d in parsed])
    return out, shared
