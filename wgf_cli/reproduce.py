"""`make reproduce`: run every experiment preset, check its claims, write the report.

    python -m wgf_cli.reproduce [--profile quick|full] [--only heat,wgan] [--jobs N]
                                [--out outputs/reproduce] [--report outputs/report]

Each preset (an experiment module's ``PRESETS``, see :mod:`wgf_cli.presets`) runs as
``wgf <cmd> experiment=<preset>`` (plus the preset's ``full`` overrides with
``--profile full``) into ``<out>/<cmd>-<preset>/``; ``<out>/reproduce.json`` records what
each folder ran.  Then :func:`wgf_cli.report.build` writes ``<report>/report.md`` and
``<report>/index.html``.  The exit code is 1 when a run failed or a claim does not hold,
and each failure is named on stderr.

With ``--jobs N`` (default: the machine's cores) N presets run at a time on N worker
processes with one torch thread each, the longest first (a preset's expected time is its last wall
time in ``<out>``, else :data:`EXPECTED_S`; a preset that others need counts with them); a
progress line per finished preset gives the counter, the elapsed time and an ETA.
``reproduce.json`` also records the provenance (commit, versions, CPU, wall time).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from wgf_cli import report
from wgf_cli.commands import COMMANDS
from wgf_cli.launch import JobResult, launch
from wgf_cli.presets import Preset
from wgf_cli.run import write_json

PROFILES = ("quick", "full")

#: wall seconds of each preset (quick profile, one thread, quiet 2-core CPU), for the order
#: and the ETA when ``<out>`` has no earlier run of it
EXPECTED_S = {
    "heat": 9, "heat_convergence": 3, "ornstein_uhlenbeck": 9, "porous_medium": 13, "crowd": 14,
    "aggregation": 3, "double_well_langevin": 4, "compare": 55, "width": 23, "infoplane": 25,
    "ntk": 2, "scaling": 10, "dirac": 1, "wgan_ring8_gp": 66, "wgan_ring8_pacgan": 115,
    "wgan_grid25_pacgan": 220, "wgan_ring8_pacgan_vanilla": 35, "wgan_clip_boundary": 28,
    "wgan_gauss2_vanilla": 7, "wgan_ring8_sinkhorn": 27, "wgan_grid25_gan": 52,
    "wgan_grid25_clip": 41, "wgan_grid25_sinkhorn": 48, "gdelt_synthetic": 20, "gdelt_train": 600,
    "heat_512": 20, "gdelt_westafrica": 35, "gdelt_westafrica_train": 265,
    "ot_geodesic": 8, "ot_plans": 3, "ot_map": 2, "ot_duality": 1, "keller_segel": 5,
    "keller_segel_supercritical": 3, "wgan_twopoint": 2, "wgan_vanishing": 20,
    "wgan_two_species": 50,
}


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


def provenance(jobs: int, wall_s: float | None = None) -> dict:
    """Commit, versions, CPU and wall time of a reproduction (``reproduce.json``)."""
    from wgf_cli import __version__
    from wgf_cli.run import _git_info

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"wgf": __version__, "python": platform.python_version()}
    for mod in ("torch", "numpy", "hydra", "ot", "geomloss"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - an optional module
            pass
    return {"git": _git_info(), "versions": versions, "cpu": cpu, "cores": os.cpu_count(), "jobs": jobs,
            "platform": platform.platform(), "host": platform.node(), "wall_s": wall_s,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def expected_s(name: str, folder: Path) -> float:
    """The preset's last wall time in ``folder`` (its ``run.json``/``summary.json``), else :data:`EXPECTED_S`."""
    from wgf_cli.run import read_file

    for f in ("run.json", "summary.json"):
        wall = read_file(folder / f, {}).get("wall_s")
        done = read_file(folder / "status.json", {}).get("status") == "completed"
        if isinstance(wall, int | float) and wall > 0 and done:
            return float(wall)
    return float(EXPECTED_S.get(name, 30))


def _clock(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def start_order(todo: list[tuple[str, Preset]], out: Path) -> tuple[list[Preset], dict[str, float]]:
    """The presets of ``todo`` in the order a parallel reproduction starts them -- the longest
    chain first (a preset's expected time plus the longest chain of the presets that need
    it) -- and each preset's expected seconds (:func:`expected_s`)."""
    names = {p.name: f"{c}-{p.name}" for c, p in todo}
    cost = {p.name: expected_s(p.name, out / names[p.name]) for _, p in todo}
    deps = {p.name: [d for d in p.needs.values() if d in names] for _, p in todo}

    def chain(name: str) -> float:  # this preset and the longest chain of presets that need it
        after = [chain(n) for n, ds in deps.items() if name in ds]
        return cost[name] + max(after, default=0.0)

    priority = {n: chain(n) for n in cost}
    return sorted((p for _, p in todo), key=lambda p: -priority[p.name]), cost


def _overrides(preset: Preset, out: Path, profile: str, one_thread: bool = False) -> list[str]:
    return [*(preset.full if profile == "full" else []), *needs_overrides(preset, out),
            *(["threads=1"] if one_thread else [])]


def _worker_init() -> None:
    """A worker process of a parallel reproduction: one torch thread."""
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    import torch

    torch.set_num_threads(1)


def _run_one(cmd: str, name: str, out: str, profile: str) -> dict:
    """One preset in a worker process, its output (stdout, stderr, logs) into ``<out>/logs/``."""
    out_path = Path(out)
    preset = next(p for c, p in presets() if c == cmd and p.name == name)
    log = out_path / "logs" / f"{cmd}-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        job = run_preset(cmd, preset, out_path / f"{cmd}-{name}", _overrides(preset, out_path, profile, True))
        return {"status": job.status, "error": job.error}
    except BaseException as exc:  # noqa: BLE001 - reported as a failed preset
        import traceback

        traceback.print_exc()
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def _parallel(todo: list[tuple[str, Preset]], out: Path, profile: str, jobs: int, manifest: dict,
              t0: float) -> None:
    """Run ``todo`` on ``jobs`` worker processes (one thread each), dependencies first, the
    longest chain first; a progress line per finished preset."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    names = {p.name: f"{c}-{p.name}" for c, p in todo}
    deps = {p.name: [d for d in p.needs.values() if d in names] for _, p in todo}
    pending, cost = start_order(todo, out)
    cmd_of = {p.name: c for c, p in todo}
    running: dict = {}  # future -> (preset, start time)
    done: dict[str, str] = {}
    total = len(todo)
    spent = [0.0, 0.0]  # wall seconds and expected seconds of the finished presets
    print(f"reproduce: {total} presets, {jobs} at a time, about {_clock(sum(cost.values()) / jobs)} "
          f"of work per core", flush=True)

    def record(p: Preset, state: str, error: str | None) -> None:
        done[p.name] = state
        manifest[names[p.name]] = {"cmd": cmd_of[p.name], "preset": p.name, "status": state, "error": error,
                                   "overrides": _overrides(p, out, profile, True)}
        report.save_manifest(out, manifest, profile=profile)

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init) as pool:
        while pending or running:
            for p in list(pending):
                if len(running) >= jobs:
                    break
                if any(d not in done for d in deps[p.name]):
                    continue
                pending.remove(p)
                if any(done[d] != "completed" for d in deps[p.name]):
                    record(p, "failed", "a preset it needs failed")
                    continue
                future = pool.submit(_run_one, cmd_of[p.name], p.name, str(out), profile)
                running[future] = (p, time.perf_counter())
            if not running:
                continue
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                p, started = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died
                    result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                record(p, result["status"], result["error"])
                now = time.perf_counter()
                spent[0] += now - started
                spent[1] += cost[p.name]
                pace = spent[0] / spent[1]  # this machine's pace against the expected times
                left_running = [max(pace * cost[q.name] - (now - s), 0.0) for q, s in running.values()]
                eta = max((pace * sum(cost[q.name] for q in pending) + sum(left_running)) / jobs,
                          max(left_running, default=0.0))
                print(f"[{len(done)}/{total}] {names[p.name]:<38} {result['status']:<9} {now - started:6.0f} s"
                      f"  elapsed {_clock(now - t0)}  ETA {_clock(eta)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/reproduce", help="folder of the preset runs")
    ap.add_argument("--report", default="outputs/report", help="folder of report.md and index.html")
    ap.add_argument("--profile", default="quick", choices=PROFILES)
    ap.add_argument("--only", default="", help="comma list of presets or commands to (re)run")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="presets run at a time, one thread each (default: the machine's cores; 1: in this process)")
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
    todo = [(cmd, p) for cmd, p in presets() if not only or p.name in only or cmd in only]
    jobs = max(1, min(args.jobs, len(todo)))
    expected = [expected_s(p.name, out / f"{c}-{p.name}") for c, p in todo]
    if jobs > 1:
        _parallel(todo, out, args.profile, jobs, manifest, t0)
    for i, (cmd, preset) in enumerate(todo if jobs == 1 else []):
        name = f"{cmd}-{preset.name}"
        started = time.perf_counter()
        extra = _overrides(preset, out, args.profile)
        job = run_preset(cmd, preset, out / name, extra, progress=sys.stderr.isatty())
        manifest[name] = {"cmd": cmd, "preset": preset.name, "status": job.status, "error": job.error,
                          "overrides": extra}
        report.save_manifest(out, manifest, profile=args.profile)
        pace = (time.perf_counter() - t0) / sum(expected[:i + 1])
        left = pace * sum(expected[i + 1:])
        print(f"[{i + 1}/{len(todo)}] {name:<38} {job.status:<9} {time.perf_counter() - started:6.0f} s"
              f"  elapsed {_clock(time.perf_counter() - t0)}  ETA {_clock(left)}", flush=True)
    wall = time.perf_counter() - t0
    report.save_manifest(out, manifest, profile=args.profile, provenance=provenance(jobs, round(wall, 1)))
    md, page, claims = report.build(out, args.report, args.profile)
    failed = [f"{n}: {e['status']} ({e['error']})" for n, e in manifest.items() if e["status"] != "completed"]
    for c in claims:
        if not c["passed"]:
            value, threshold = report.fmt_pair(c["value"], c["threshold"])
            failed.append(f"{c['run']}: {c['text']} ({c['key']}={value}, needs {c['op']} {threshold})")
    n_pass = sum(c["passed"] for c in claims)
    print(f"report: {page} and {md.name}; claims: {n_pass}/{len(claims)} pass; {_clock(wall)} wall", flush=True)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
