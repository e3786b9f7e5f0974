"""`make reproduce`: run every experiment preset, check its claims, write the report.

    python -m wgf_cli.reproduce [--profile quick|full] [--only heat,wgan] [--out outputs/reproduce]
                                [--report outputs/report]

Each preset (an experiment module's ``PRESETS``, see :mod:`wgf_cli.presets`) runs as
``wgf <cmd> experiment=<preset>`` (plus the preset's ``full`` overrides with
``--profile full``) into ``<out>/<cmd>-<preset>/``; ``<out>/reproduce.json`` records what
each folder ran.  Then :func:`wgf_cli.report.build` writes ``<report>/report.md`` and
``<report>/index.html``.  The exit code is 1 when a run failed or a claim does not hold,
and each failure is named on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from wgf_cli import report
from wgf_cli.commands import COMMANDS
from wgf_cli.launch import JobResult, launch
from wgf_cli.presets import Preset
from wgf_cli.run import write_json

PROFILES = ("quick", "full")


def presets() -> list[tuple[str, Preset]]:
    """Every ``(command, preset)`` in the order they run (a builder before its consumer)."""
    return [(cmd, p) for cmd, command in COMMANDS.items() for p in command.experiment().PRESETS]


def run_name(preset_name: str) -> str:
    """``<cmd>-<preset>``: the folder of a preset's run under the reproduce folder."""
    cmd = next(c for c, p in presets() if p.name == preset_name)
    return f"{cmd}-{preset_name}"


def needs_overrides(preset: Preset, out: Path) -> list[str]:
    """``key=<run folder>`` for every preset this one reads (see :attr:`Preset.needs`)."""
    return [f"{key}={out / run_name(dep)}" for key, dep in preset.needs.items()]


def run_preset(cmd: str, preset: Preset, folder: Path, extra: list[str] = (), progress: bool = False) -> JobResult:
    """Run one preset into ``folder`` (a run folder, or a sweep folder for a sweep preset)."""
    overrides = [f"experiment={preset.name}", *extra]
    if not preset.sweep:
        return launch(COMMANDS[cmd], [*overrides, f"hydra.run.dir={folder}"], progress=progress).jobs[0]
    res = launch(COMMANDS[cmd], [*overrides, *preset.sweep, "~launcher", f"hydra.sweep.dir={folder}"],
                 multirun=True, progress=False)
    failed = [j for j in res.jobs if j.status != "completed"]
    error = "; ".join(f"job {j.run_dir.name}: {j.error}" for j in failed) or None
    summary: dict = {}
    if not failed:
        jobs = [{"overrides": [o for o in j.overrides if not o.startswith("hydra")], **j.summary} for j in res.jobs]
        summary = {"jobs": len(jobs), **(preset.aggregate(jobs, folder) if preset.aggregate else {})}
        write_json(folder / "summary.json", summary)
    status = "failed" if failed else "completed"
    write_json(folder / "status.json", {"status": status, "error": error, "traceback": None})
    return JobResult(folder, status, summary, overrides, error)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/reproduce", help="folder of the preset runs")
    ap.add_argument("--report", default="outputs/report", help="folder of report.md and index.html")
    ap.add_argument("--profile", default="quick", choices=PROFILES)
    ap.add_argument("--only", default="", help="comma list of presets or commands to (re)run")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    only = {s for s in args.only.split(",") if s}
    known = {p.name for _, p in presets()} | set(COMMANDS)
    if only - known:
        print(f"reproduce: error: unknown preset or command {sorted(only - known)}; "
              f"allowed: {sorted(known)}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    manifest = report.load_manifest(out) if only else {}
    t0 = time.perf_counter()
    for cmd, preset in presets():
        if only and preset.name not in only and cmd not in only:
            continue
        name = f"{cmd}-{preset.name}"
        print(f"== {name}", flush=True)
        extra = [*(preset.full if args.profile == "full" else []), *needs_overrides(preset, out)]
        job = run_preset(cmd, preset, out / name, extra, progress=sys.stderr.isatty())
        manifest[name] = {"cmd": cmd, "preset": preset.name, "status": job.status, "error": job.error,
                          "overrides": extra}
        report.save_manifest(out, manifest, profile=args.profile)
        print(json.dumps({k: job.summary.get(k) for k in preset.keys}), flush=True)
    md, page, claims = report.build(out, args.report, args.profile)
    failed = [f"{n}: {e['status']} ({e['error']})" for n, e in manifest.items() if e["status"] != "completed"]
    for c in claims:
        if not c["passed"]:
            value, threshold = report.fmt_pair(c["value"], c["threshold"])
            failed.append(f"{c['run']}: {c['text']} ({c['key']}={value}, needs {c['op']} {threshold})")
    n_pass = sum(c["passed"] for c in claims)
    print(f"report: {page} and {md.name}; claims: {n_pass}/{len(claims)} pass; "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
