"""`make reproduce`: run every experiment preset and write one report page.

    python -m wgf_cli.reproduce --out outputs/reproduce [--only heat,crowd]

Each preset runs as ``wgf <cmd> experiment=<preset>`` into ``<out>/<cmd>-<preset>/``; the
page ``<out>/report.md`` shows, per run, its key numbers and figures (paths relative to
the page, so the folder can be moved or zipped as it is).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from wgf_cli.launch import Command, launch
from wgf_cli.run import atomic_write

COMMANDS = {"jko": Command("jko", "jko", "wgf_cli.experiments.jko")}

#: (command, preset, what it shows, summary keys quoted in the report)
PRESETS = [
    ("jko", "heat", "Heat flow of a Gaussian against the exact heat kernel.",
     ["l1_error_final", "w2_error_final", "mass_error_max", "energy_monotone", "inner_iters_mean"]),
    ("jko", "ornstein_uhlenbeck", "Fokker-Planck, quadratic potential: Ornstein-Uhlenbeck Gaussian.",
     ["l1_error_final", "w2_error_final", "gibbs_l1_final", "energy_monotone"]),
    ("jko", "porous_medium", "Porous medium m=2 from a Barenblatt profile.",
     ["l1_error_final", "w2_error_final", "mass_error_max", "energy_monotone"]),
    ("jko", "crowd", "Crowd motion with congestion (density <= kappa) towards an exit.",
     ["kappa", "max_density_max", "congestion_ratio_max", "energy_monotone"]),
    ("jko", "aggregation", "Attractive-repulsive aggregation of three blobs.",
     ["energy_initial", "energy_final", "energy_monotone", "mass_error_max"]),
    ("jko", "double_well_langevin", "Double-well Fokker-Planck vs 2000 Langevin particles.",
     ["langevin_distance", "langevin_sampling_q95", "langevin_agrees", "gibbs_l1_final"]),
]

FIGURES = ["snapshots.png", "error.png", "energy.png", "profile.png", "flow.gif"]


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(out: Path, rows: list[dict]) -> Path:
    lines = [
        "# wgf — reproduction report",
        "",
        f"Generated {datetime.now().astimezone().isoformat(timespec='seconds')} by "
        "`make reproduce`. Each section is one run folder; its `summary.json`, "
        "`metrics.csv` and `plots/` hold everything shown here.",
        "",
        "| run | status | wall (s) | key numbers |",
        "|---|---|---|---|",
    ]
    for r in rows:
        nums = ", ".join(f"{k}={_fmt(r['summary'][k])}" for k in r["keys"] if k in r["summary"])
        lines.append(f"| [{r['name']}](#{r['name']}) | {r['status']} | "
                     f"{_fmt(r['summary'].get('wall_s', ''))} | {nums} |")
    for r in rows:
        lines += ["", f"## {r['name']}", "", r["what"], "",
                  f"`wgf {r['cmd']} experiment={r['preset']}` → `{r['dir']}`", ""]
        if r["status"] != "completed":
            lines += [f"**{r['status']}**: {r.get('error')}", ""]
            continue
        lines += ["| key | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in r["summary"].items()]
        lines.append("")
        for fig in FIGURES:
            if (out / r["dir"] / "plots" / fig).exists():
                lines.append(f"![{r['name']} {fig}]({r['dir']}/plots/{fig})")
        lines.append("")
    return atomic_write(out / "report.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/reproduce")
    ap.add_argument("--only", default="", help="comma list of presets to run")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    only = {s for s in args.only.split(",") if s}
    rows = []
    for cmd, preset, what, keys in PRESETS:
        if only and preset not in only:
            continue
        name = f"{cmd}-{preset}"
        print(f"== {name}", flush=True)
        res = launch(COMMANDS[cmd], [f"experiment={preset}", f"hydra.run.dir={out / name}"],
                     progress=sys.stderr.isatty())
        job = res.jobs[0]
        rows.append({"name": name, "cmd": cmd, "preset": preset, "what": what, "keys": keys,
                     "dir": name, "status": job.status, "summary": job.summary,
                     "error": job.error})
        print(json.dumps({k: job.summary.get(k) for k in keys}), flush=True)
    page = write_report(out, rows)
    print(f"report: {page}")
    return 0 if all(r["status"] == "completed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
