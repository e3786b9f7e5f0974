"""`make reproduce`: run every experiment preset, check its claims, write one report page.

    python -m wgf_cli.reproduce --out outputs/reproduce [--only heat,crowd]

Each preset (an experiment module's ``PRESETS``, see :mod:`wgf_cli.presets`) runs as
``wgf <cmd> experiment=<preset>`` into ``<out>/<cmd>-<preset>/``.  The page
``<out>/report.md`` has a claims table (measured value, threshold, pass/fail) and, per run,
its key numbers and figures (paths relative to the page, so the folder can be moved or
zipped as it is).  The exit code is 1 when a run failed or a claim does not hold.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from wgf_cli.commands import COMMANDS
from wgf_cli.launch import launch
from wgf_cli.presets import Preset
from wgf_cli.run import atomic_write


def presets() -> list[tuple[str, Preset]]:
    """Every ``(command, preset)`` in the order the report shows them."""
    return [(cmd, p) for cmd, command in COMMANDS.items() for p in command.experiment().PRESETS]


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _figures(out: Path, row: dict) -> list[str]:
    plots = out / row["dir"] / "plots"
    names = row["preset"].figures or sorted(p.name for p in plots.glob("*") if p.suffix in {".png", ".gif"})
    return [n for n in names if (plots / n).exists()]


def check_claims(rows: list[dict]) -> list[dict]:
    """One record per claim of every run: text, value, op, threshold, passed."""
    out = []
    for r in rows:
        for c in r["preset"].claims:
            value, ok = c.check(r["summary"]) if r["status"] == "completed" else (None, False)
            out.append({"run": r["name"], "text": c.text, "key": c.key, "value": value,
                        "op": c.op, "threshold": c.threshold, "passed": ok})
    return out


def write_report(out: Path, rows: list[dict], claims: list[dict]) -> Path:
    n_pass = sum(c["passed"] for c in claims)
    lines = [
        "# wgf — reproduction report",
        "",
        f"Generated {datetime.now().astimezone().isoformat(timespec='seconds')} by "
        "`make reproduce`. Each section is one run folder; its `summary.json`, "
        "`metrics.csv` and `plots/` hold everything shown here.",
        "",
        f"## Claims: {n_pass}/{len(claims)} pass",
        "",
        "| run | claim | measured | threshold | result |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {c['run']} | {c['text']} (`{c['key']}`) | {_fmt(c['value'])} | {c['op']} "
              f"{_fmt(c['threshold'])} | {'pass' if c['passed'] else '**FAIL**'} |" for c in claims]
    lines += ["", "## Runs", "", "| run | status | wall (s) | key numbers |", "|---|---|---|---|"]
    for r in rows:
        nums = ", ".join(f"{k}={_fmt(r['summary'][k])}" for k in r["preset"].keys if k in r["summary"])
        lines.append(f"| [{r['name']}](#{r['name']}) | {r['status']} | "
                     f"{_fmt(r['summary'].get('wall_s', ''))} | {nums} |")
    for r in rows:
        lines += ["", f"## {r['name']}", "", r["preset"].what, "",
                  f"`wgf {r['cmd']} experiment={r['preset'].name}` → `{r['dir']}`", ""]
        if r["status"] != "completed":
            lines += [f"**{r['status']}**: {r.get('error')}", ""]
            continue
        lines += ["| key | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in r["summary"].items()]
        lines.append("")
        lines += [f"![{r['name']} {fig}]({r['dir']}/plots/{fig})" for fig in _figures(out, r)]
        lines.append("")
    return atomic_write(out / "report.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/reproduce")
    ap.add_argument("--only", default="", help="comma list of presets (or commands) to run")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    only = {s for s in args.only.split(",") if s}
    rows = []
    for cmd, preset in presets():
        if only and preset.name not in only and cmd not in only:
            continue
        name = f"{cmd}-{preset.name}"
        print(f"== {name}", flush=True)
        res = launch(COMMANDS[cmd], [f"experiment={preset.name}", f"hydra.run.dir={out / name}"],
                     progress=sys.stderr.isatty())
        job = res.jobs[0]
        rows.append({"name": name, "cmd": cmd, "preset": preset, "dir": name,
                     "status": job.status, "summary": job.summary, "error": job.error})
        print(json.dumps({k: job.summary.get(k) for k in preset.keys}), flush=True)
    claims = check_claims(rows)
    page = write_report(out, rows, claims)
    failed = [f"{r['name']}: {r['status']}" for r in rows if r["status"] != "completed"]
    failed += [f"{c['run']}: {c['text']} ({c['key']}={_fmt(c['value'])}, needs {c['op']} "
               f"{_fmt(c['threshold'])})" for c in claims if not c["passed"]]
    print(f"report: {page}  claims: {len(claims) - sum(not c['passed'] for c in claims)}/{len(claims)} pass")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
