"""Run every benchmark (each in its own process) and print a summary of the results.

    python benchmarks/run_all.py [--quick] [--device cpu|cuda] [--threads T] [--only NAME ...]

Each benchmark prints its own tables and writes ``benchmarks/results/<name>.json``; this
script then prints the headline numbers and writes ``benchmarks/results/run_all.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
BENCHES = {
    "kernel": "bench_kernel.py",
    "jko_step": "bench_jko_step.py",
    "accuracy": "bench_accuracy.py",
    "default_run": "bench_default_run.py",
    "renyi_scaling": "bench_renyi_scaling.py",
    "meanfield_gd": "bench_meanfield_gd.py",
    "wgan_step": "bench_wgan_step.py",
    "gdelt_reader": "bench_gdelt_reader.py",
    "gdelt_build_window": "bench_gdelt_build_window.py",
    "gdelt_train_sinkhorn": "bench_gdelt_train_sinkhorn.py",
}


def _load(out: Path, name: str) -> dict | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def summary_tables(out: Path) -> str:
    parts = []
    k = _load(out, "kernel")
    if k:
        parts.append("### Kernel application: dense / separable time ratio\n\n"
                     + common.markdown_table(k["rows"], [
                         ("n", "grid"), ("ratio", "ratio"), ("max_abs_diff", "max abs diff"),
                         ("target_met", "target met")]))
    j = _load(out, "jko_step")
    if j:
        parts.append("### One JKO step: dense / separable time ratio\n\n" + common.markdown_table(
            j["rows"], [("n", "grid"), ("iters_separable", "iters"), ("ratio", "ratio"),
                        ("max_abs_diff_rho", "max abs diff rho"), ("status", "status"),
                        ("target_met", "target met")]))
    a = _load(out, "accuracy")
    if a:
        parts.append("### Accuracy: Pareto frontier (L1 error vs wall time)\n\n"
                     + a["tables_md"]["frontier"])
        parts.append("### Accuracy: empirical order in h\n\n" + a["tables_md"]["orders"])
    d = _load(out, "default_run")
    if d:
        parts.append("### Default run\n\n" + d["tables_md"]["default_run"])
        parts.append("### Largest grid\n\n" + d["tables_md"]["sizes"]
                     + f"\n\nlargest grid within the limit: {d['largest_grid_within_limit']}")
    mf = _load(out, "meanfield_gd")
    if mf:
        parts.append(f"### meanfield: particle gd throughput (m={mf['m']}, n={mf['n']})\n\n"
                     + mf["tables_md"]["gd"] + f"\n\nexplicit / autograd: {mf['speedup']:.2f}x")
    w = _load(out, "wgan_step")
    if w:
        parts.append("### wgan: time per iteration relative to wgan_clip\n\n" + w["tables_md"]["step"]
                     + "\n\n" + w["tables_md"]["eval"])
    g = _load(out, "gdelt_reader")
    if g:
        parts.append("### GDELT reader: rows/s per core vs pandas' defaults\n\n" + g["tables_md"]["reader"])
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(BENCHES), help="run only these")
    p.add_argument("--summary-only", action="store_true",
                   help="run nothing; print the summary of the JSON files already in --out")
    args = p.parse_args(argv)
    if args.summary_only:
        print(summary_tables(args.out))
        return 0
    names = args.only or list(BENCHES)
    extra = ["--device", args.device, "--threads", str(args.threads), "--out", str(args.out)]
    if args.quick:
        extra.append("--quick")
    status = {}
    for name in names:
        cmd = [sys.executable, str(HERE / BENCHES[name]), *extra]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        status[name] = {"returncode": rc, "wall_s": time.perf_counter() - t0}
        print(f"=== {name}: exit {rc} in {status[name]['wall_s']:.0f} s", flush=True)
    print("\n\n## Summary\n")
    print(summary_tables(args.out))
    args.out.mkdir(parents=True, exist_ok=True)
    common.write_json(args.out, "run_all", {"quick": args.quick, "device": args.device,
                                            "threads": args.threads, "benchmarks": status})
    return 0 if all(s["returncode"] == 0 for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
