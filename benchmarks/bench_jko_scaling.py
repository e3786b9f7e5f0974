"""Scaling of ``wgf jko``: threads, banded/absorbed kernels, iterations vs n.

All ratios are measured in this one run (same machine, same load):

1. ``threads``: the default run ``wgf jko --grid 128`` as a whole process with the default
   (``threads: auto``), with ``threads=1`` and with ``threads=0`` (PyTorch's default); and the
   per-call time of the kernel products at 256^2 ... 2048^2 with 1 and with 2 threads (the
   crossover that sets ``threads: auto``).
2. Iterations: median inner iterations per step of the default heat flow (h = 1e-3, tol 1e-9,
   debiased, omega = auto) for n = 64 ... ``--max-n``, with the default ``gamma`` (the blur
   carries half the diffusion, ``solver.blur_share=0.5``) and with ``gamma = dx^2`` (what
   energies without a linear diffusion use); the fitted exponent of iterations against n.
3. The default heat flow for 50 steps at 128^2, 512^2 and (``--max-n 1024``) 1024^2: wall
   time, ratio to 128^2, L1 error against the exact heat kernel; the same at 512^2 with
   ``gamma = dx^2``; and (``--three-d``) 50 steps at 128^3.
4. Log-domain iteration / plain iteration (the absorbed banded log kernel against the plain
   banded product), and the old full log-sum-exp for reference, at 512^2.

    python benchmarks/bench_jko_scaling.py [--quick] [--max-n 1024] [--three-d] [--device cpu|cuda]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import torch

from wgf_cli.flows import initial
from wgf_cli.flows.energies import Heat
from wgf_cli.flows.jko import EntropicJKO, entropic_gamma
from wgf_cli.flows.references import heat_gaussian, relative_l1
from wgf_cli.ot.grid import Grid, GridGeometry
from wgf_cli.ot.sinkhorn import prox_sinkhorn

ROOT = Path(__file__).resolve().parent.parent


def cli_run(extra: list[str], folder: Path) -> float:
    """Wall time of ``wgf jko --grid 128 [extra]`` as a fresh process."""
    cmd = [sys.executable, "-m", "wgf_cli.cli", "jko", "--grid", "128", "--quiet",
           f"hydra.run.dir={folder}", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def flow(n: int, steps: int, device, dtype, tol: float, blur_share: float = 0.5, dim: int = 2):
    grid = Grid.regular(n, dim, dtype=dtype, device=device)
    mean = [common.MEAN[0]] * dim
    rho0 = initial.gaussian(grid, mean, common.STD0)
    gamma = entropic_gamma(grid.spacing[0], 1e-3, common.DIFFUSION, blur_share=blur_share)
    jko = EntropicJKO(Heat(grid, common.DIFFUSION), 1e-3, gamma, tol=tol,
                      debias=True, inner_max=5000, overrelax="auto")
    common.sync(device)
    t0 = time.perf_counter()
    res = jko.run(rho0, steps)
    common.sync(device)
    wall = time.perf_counter() - t0
    ref = heat_gaussian(grid, mean, common.STD0**2, common.DIFFUSION, res.t)
    return {"n": n, "dim": dim, "steps": steps, "gamma": gamma, "blur_share": blur_share,
            "wall_s": wall, "iters_median": statistics.median(res.n_iters[1:] or res.n_iters),
            "iters": res.n_iters, "l1_error": relative_l1(res.rho, ref),
            "log_domain_steps": sum(s.log_domain for s in res.steps), "band": max(jko.geom.band),
            "omega": jko.omega, "converged": res.converged}


def thread_crossover(device, dtype, sizes):
    rows = []
    default_threads = torch.get_num_threads()
    for n in sizes:
        grid = Grid.regular(n, 2, dtype=dtype, device=device)
        geom = GridGeometry(grid, grid.spacing[0] ** 2)
        b = torch.rand(grid.shape, dtype=dtype, device=device) + 0.1
        ker = geom.absorb(torch.log(b))
        row = {"n": n}
        for th in (1, 2):
            torch.set_num_threads(th)
            row[f"plain_ms_{th}t"] = 1e3 * common.per_call(
                lambda geom=geom, b=b: geom.apply_kernel(b), device, 3)
            row[f"absorbed_ms_{th}t"] = 1e3 * common.per_call(
                lambda ker=ker, b=b: ker.apply(torch.log(b)), device, 3)
        row["two_over_one"] = (row["plain_ms_2t"] + row["absorbed_ms_2t"]) / (
            row["plain_ms_1t"] + row["absorbed_ms_1t"])
        rows.append(row)
    torch.set_num_threads(default_threads)
    return rows


def log_plain_ratio(n, device, dtype, iters=40):
    grid = Grid.regular(n, 2, dtype=dtype, device=device)
    energy = Heat(grid, common.DIFFUSION)
    gamma = grid.spacing[0] ** 2
    h = 2e-5  # sigma D small enough that the plain scalings fit: both paths run the same iterations
    q = initial.gaussian(grid, list(common.MEAN), common.STD0)
    geom = GridGeometry(grid, gamma)
    sigma = 2 * h / gamma
    prox = lambda lp: energy.prox_log(lp, sigma)  # noqa: E731
    kw = dict(tol=0.0, inner_max=iters, check_every=5)
    out = {}
    for name, mode in (("plain", False), ("log_absorbed", True)):
        ts = []
        for _ in range(3):
            t, res = common.timed(lambda m=mode: prox_sinkhorn(geom, q, prox, log_domain=m, **kw), device)
            ts.append(t / res.n_iters)
        out[f"{name}_ms_per_iter"] = 1e3 * min(ts)
    # the exact max-shifted banded log-sum-exp and the full (dense) log-sum-exp, per application
    g = torch.log(q)
    full = GridGeometry(grid, gamma, truncation=None)
    out["lse_banded_ms_per_apply"] = 1e3 * common.per_call(lambda: geom.apply_lse_kernel(g), device, 2)
    out["lse_full_ms_per_apply"] = 1e3 * common.per_call(lambda: full.apply_lse_kernel(g), device, 1)
    out["plain_banded_ms_per_apply"] = 1e3 * common.per_call(lambda: geom.apply_kernel(q), device, 3)
    out["plain_full_ms_per_apply"] = 1e3 * common.per_call(lambda: full.apply_kernel(q), device, 2)
    out["log_over_plain_iteration"] = out["log_absorbed_ms_per_iter"] / out["plain_ms_per_iter"]
    return out


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--max-n", type=int, default=512, help="largest n of the iteration fit")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None)
    p.add_argument("--no-cli", action="store_true", help="skip the whole-process runs")
    p.add_argument("--three-d", action="store_true", help="also 50 heat steps at 128^3")
    args = p.parse_args()
    device = common.setup(args)
    dtype = common.parse_dtype(args.dtype, device)
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    payload: dict = {"machine": common.machine_info(device, dtype)}

    if not args.no_cli and device.type == "cpu":
        with tempfile.TemporaryDirectory() as tmp:
            times = {"auto": [], "1": [], "0": []}
            cli_run(["threads=1", "steps=2"], Path(tmp) / "warm")  # warm-up (imports, caches)
            for r in range(1 if args.quick else 2):
                for key in times:
                    extra = [] if key == "auto" else [f"threads={key}"]
                    times[key].append(cli_run(extra, Path(tmp) / f"{key}-{r}"))
        med = {k: statistics.median(v) for k, v in times.items()}
        payload["cli_grid128"] = {
            "command": "wgf jko --grid 128 [threads=1|threads=0]", "wall_s": med,
            "default_over_threads1": med["auto"] / med["1"],
            "threads0_over_threads1": med["0"] / med["1"]}
        print(f"wgf jko --grid 128 whole process: default {med['auto']:.1f}s, threads=1 "
              f"{med['1']:.1f}s, threads=0 {med['0']:.1f}s -> default/threads1 "
              f"{med['auto'] / med['1']:.2f}")

    sizes = [256, 512] if args.quick else [256, 512, 1024, 2048]
    payload["threads_crossover"] = thread_crossover(device, dtype, sizes)
    for row in payload["threads_crossover"]:
        print(f"threads n={row['n']}: 2 threads / 1 thread = {row['two_over_one']:.2f}")

    ns = [n for n in (64, 128, 256, 512, 1024) if n <= (128 if args.quick else args.max_n)]
    payload["iterations"] = {}
    for share in (0.5, 0.0):
        rows = [flow(n, 5, device, dtype, tol, share) for n in ns]
        slope = common.loglog_slope([r["n"] for r in rows], [r["iters_median"] for r in rows])
        payload["iterations"][f"blur_share_{share}"] = {"rows": rows, "exponent": slope}
        for r in rows:
            print(f"blur_share={share} n={r['n']}: median inner iterations {r['iters_median']}, "
                  f"omega {r['omega']:.3f}")
        print(f"blur_share={share}: fitted exponent of inner iterations vs n: {slope:.2f}")

    big = [256] if args.quick else [n for n in (512, 1024) if n <= max(512, args.max_n)]
    runs = {n: flow(n, 50, device, dtype, tol) for n in [128, *big]}
    payload["heat_50_steps"] = {
        "runs": list(runs.values()),
        "time_ratio_to_128": {n: r["wall_s"] / runs[128]["wall_s"] for n, r in runs.items()},
        "gamma_dx2": flow(big[0], 50, device, dtype, tol, blur_share=0.0)}
    for n, r in runs.items():
        print(f"50 steps n={n}: {r['wall_s']:.1f}s, L1 {r['l1_error']:.4f}, x{r['wall_s'] / runs[128]['wall_s']:.1f}"
              f" of 128^2 (cells x{(n / 128) ** 2:.0f})")
    g = payload["heat_50_steps"]["gamma_dx2"]
    print(f"50 steps n={g['n']} with gamma = dx^2: {g['wall_s']:.1f}s, L1 {g['l1_error']:.4f}")
    if args.three_d:
        r3 = flow(128, 50, device, dtype, tol, dim=3)
        payload["heat_3d_50_steps"] = r3
        print(f"50 steps 128^3: {r3['wall_s']:.1f}s, L1 {r3['l1_error']:.4f}")

    payload["log_vs_plain"] = log_plain_ratio(256 if args.quick else 512, device, dtype)
    print("log/plain:", {k: round(v, 2) for k, v in payload["log_vs_plain"].items()})
    path = common.write_json(args.out, "jko_scaling" + ("_quick" if args.quick else ""), payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
