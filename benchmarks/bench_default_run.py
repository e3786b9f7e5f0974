"""Wall time of the engine part of the default run, and the largest grid that runs in 10 min.

Default run (mirrors ``wgf jko --grid 128``): heat flow D=0.1 on a 128 x 128 grid of [0,1]^2,
Gaussian std 0.06 at the centre, h=1e-3, gamma=dx^2 (gamma_factor 1), 50 steps, tol=1e-9,
debias=True; ``EntropicJKO.run`` is timed (grid, energy and initial density built
outside the timing).  Measured with ``--threads`` threads and, on the CPU, with torch's
default thread count too (target: at most 60 s on the 2-core CPU).

Largest grid: the same physical settings and 50 steps on 256, 512, 768, 1024 (by default).
Each size is probed step by step; after every step the total is extrapolated as
``elapsed + remaining_steps * median(step time after the first)``.  A size whose
extrapolation exceeds the limit (10 min) ends the search; a size whose extrapolation is
below ``--full-run-s`` is run to the end (measured), otherwise its time is extrapolated
from ``--probe-steps`` steps (and reported as such).

On a GPU (``--device cuda``) the sizes go up to 1024 in float32 (tol 1e-5 there: float32
cannot reach 1e-9).

    python benchmarks/bench_default_run.py [--quick] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import signal
import statistics
import sys
import time

import common
import torch

from wgf_cli.flows.jko import EntropicJKO
from wgf_cli.flows.references import heat_gaussian, relative_l1

H = 1e-3
GAMMA_FACTOR = 1.0
#: A warm step was never found cheaper than the cold first step by more than ~1.3x
#: (iterations 300 -> 230 at 256^2); a step that runs past WATCHDOG_FACTOR times the
#: per-step budget ``limit_s / steps`` is stopped and the size declared over the limit.
WATCHDOG_FACTOR = 4.0


class StepTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise StepTimeout


def _step_with_watchdog(jko, rho, device, seconds: float):
    """``jko.step(rho)`` timed; raises StepTimeout after ``seconds`` (CPU, main thread)."""
    use_alarm = device.type == "cpu" and hasattr(signal, "setitimer")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return common.timed(lambda: jko.step(rho), device)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def capped_run(n: int, steps: int, device, dtype, tol: float, inner_max: int, limit_s: float,
               full_run_s: float, probe_steps: int) -> dict:
    """Run (or probe and extrapolate) ``steps`` JKO steps on an n x n grid."""
    grid, energy, rho0 = common.heat_setup(n, dtype, device)
    dx = grid.spacing[0]
    gamma = GAMMA_FACTOR * dx * dx
    t_setup0 = time.perf_counter()
    jko = EntropicJKO(energy, H, gamma, tol=tol, inner_max=inner_max, debias=True)
    setup_s = time.perf_counter() - t_setup0
    rho = rho0
    times: list[float] = []
    iters: list[int] = []
    converged = True
    log_domain = False
    status = "measured"
    est = None
    watchdog_s = WATCHDOG_FACTOR * limit_s / steps
    aborted = None
    for k in range(1, steps + 1):
        try:
            t, st = _step_with_watchdog(jko, rho, device, watchdog_s)
        except StepTimeout:
            # lower bound: every remaining step at least 1/1.3 of this one's budget
            aborted = k
            times.append(watchdog_s)
            iters.append(-1)
            est = watchdog_s + (steps - k) * watchdog_s / 1.3
            status = f"extrapolated (exceeds limit: step {k} stopped after {watchdog_s:.0f} s)"
            converged = False
            break
        rho = st.rho
        times.append(t)
        iters.append(st.inner_iters)
        converged &= st.converged
        log_domain |= st.log_domain
        typical = statistics.median(times[1:]) if k > 1 else times[0]
        est = sum(times) + (steps - k) * typical
        if k == steps:
            break
        # the first (cold) step needs more iterations: decide on it alone only with margin
        if est > limit_s and (k > 1 or est > 1.5 * limit_s):
            status = "extrapolated (exceeds limit)"
            break
        if k >= probe_steps and est > full_run_s:
            status = "extrapolated"
            break
    done = len(times)
    row = {
        "n": n, "N": grid.size, "steps": steps, "steps_run": done, "gamma": gamma, "h": H,
        "tol": tol, "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(), "status": status,
        "total_s": sum(times) if done == steps and aborted is None else est,
        "measured_s": sum(times), "first_step_s": times[0],
        "step_s_median": statistics.median(times[1:]) if done > 1 else times[0],
        "inner_iters_first": iters[0], "inner_iters_median": int(statistics.median(iters)),
        "converged": converged, "log_domain": log_domain, "setup_s": setup_s,
        "within_limit": (sum(times) if done == steps and aborted is None else est) <= limit_s,
        "aborted_step": aborted,
    }
    if done == steps and aborted is None:
        ref = heat_gaussian(grid, common.MEAN, common.STD0**2, common.DIFFUSION, steps * H)
        row["l1_error"] = relative_l1(rho.to(torch.float64), ref.to(torch.float64))
    return row


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="float64 on cpu, float32 on cuda by default")
    p.add_argument("--tol", type=float, default=None, help="1e-9 (float64), 1e-5 (float32)")
    p.add_argument("--inner-max", type=int, default=20000)
    p.add_argument("--steps", type=int, default=None, help="50 (quick: 10)")
    p.add_argument("--grid", type=int, default=None, help="default-run grid (128; quick 32)")
    p.add_argument("--repeats", type=int, default=None, help="default-run repeats (3; quick 1)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="largest-grid candidates (256 512 768 1024; quick 64 128)")
    p.add_argument("--limit-s", type=float, default=None, help="600 (quick 20)")
    p.add_argument("--full-run-s", type=float, default=None,
                   help="run a size to the end only if its estimate is below this (200; quick 10)")
    p.add_argument("--probe-steps", type=int, default=3)
    p.add_argument("--no-default-threads", action="store_true",
                   help="skip the extra default run with torch's default thread count")
    args = p.parse_args(argv)
    default_threads = torch.get_num_threads()
    device = common.setup(args)
    dtype = common.parse_dtype(args.dtype, device)
    tol = args.tol or (1e-9 if dtype == torch.float64 else 1e-5)
    steps = args.steps or (10 if args.quick else 50)
    grid_n = args.grid or (32 if args.quick else 128)
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = args.sizes or ([64, 128] if args.quick else [256, 512, 768, 1024])
    limit_s = args.limit_s or (20.0 if args.quick else 600.0)
    full_run_s = args.full_run_s or (10.0 if args.quick else 200.0)
    threads = torch.get_num_threads()

    # -- default run --------------------------------------------------------------
    thread_settings = [threads]
    if device.type == "cpu" and not args.no_default_threads and default_threads != threads:
        thread_settings.append(default_threads)
    default_rows = []
    for th in thread_settings:
        torch.set_num_threads(th)
        for r in range(repeats):
            row = capped_run(grid_n, steps, device, dtype, tol, args.inner_max,
                             limit_s=limit_s, full_run_s=max(full_run_s, 120.0),
                             probe_steps=max(args.probe_steps, 5))
            row["repeat"] = r
            default_rows.append(row)
            print(f"  default run n={grid_n} threads={th} #{r}: {row['total_s']:.1f}s "
                  f"({row['status']})", file=sys.stderr, flush=True)
            if row["status"] != "measured":
                break  # too slow to repeat
    torch.set_num_threads(threads)
    summary = []
    for th in thread_settings:
        sel = [r for r in default_rows if r["threads"] == th]
        summary.append({
            "n": grid_n, "threads": th, "runs": len(sel),
            "median_s": statistics.median(r["total_s"] for r in sel),
            "min_s": min(r["total_s"] for r in sel), "max_s": max(r["total_s"] for r in sel),
            "status": sel[0]["status"], "inner_iters_median": sel[0]["inner_iters_median"],
            "l1_error": sel[0].get("l1_error"), "converged": all(r["converged"] for r in sel),
            "target_60s_met": statistics.median(r["total_s"] for r in sel) <= 60.0,
        })

    # -- largest grid -------------------------------------------------------------
    size_rows = []
    largest = None
    for n in sizes:
        row = capped_run(n, steps, device, dtype, tol, args.inner_max, limit_s=limit_s,
                         full_run_s=full_run_s, probe_steps=args.probe_steps)
        size_rows.append(row)
        print(f"  grid {n}: {row['total_s']:.1f}s ({row['status']}, {row['steps_run']} steps run)",
              file=sys.stderr, flush=True)
        if not row["within_limit"]:
            break
        largest = n

    cols_default = [
        ("n", "grid"), ("threads", "threads"), ("runs", "runs"), ("median_s", "median s"),
        ("min_s", "min s"), ("max_s", "max s"), ("status", "status"),
        ("inner_iters_median", "inner iters/step"), ("l1_error", f"L1 error at t={steps * H:g}"),
        ("converged", "converged"), ("target_60s_met", "<= 60 s"),
    ]
    cols_sizes = [
        ("n", "grid"), ("steps_run", "steps run"), ("total_s", f"{steps}-step time s"),
        ("status", "status"), ("first_step_s", "first step s"), ("step_s_median", "step s"),
        ("inner_iters_first", "iters first"), ("inner_iters_median", "iters/step"),
        ("log_domain", "log domain"), ("converged", "converged"),
        ("within_limit", f"<= {limit_s:.0f} s"),
    ]
    t_default = common.markdown_table(summary, cols_default)
    t_sizes = common.markdown_table(size_rows, cols_sizes)
    print(f"\n### Default run (heat, grid {grid_n}, {steps} steps, h={H}, gamma=dx^2, tol={tol}, "
          f"debias; {dtype}, {device}; wall times CPU/noisy)\n\n{t_default}")
    print(f"\n### Largest grid within {limit_s:.0f} s ({steps} steps, same settings)\n\n{t_sizes}")
    print(f"\nlargest grid within the limit: {largest}")

    payload = {
        "benchmark": "default_run",
        "description": "engine wall time of the default heat run and the largest grid whose "
        f"{steps}-step run fits in {limit_s:.0f} s",
        "machine": common.machine_info(device, dtype),
        "quick": args.quick,
        "settings": {"D": common.DIFFUSION, "std0": common.STD0, "h": H,
                     "gamma_factor": GAMMA_FACTOR, "steps": steps, "tol": tol, "debias": True,
                     "inner_max": args.inner_max, "limit_s": limit_s, "full_run_s": full_run_s,
                     "probe_steps": args.probe_steps, "torch_default_threads": default_threads},
        "default_run": summary,
        "default_runs": default_rows,
        "sizes": size_rows,
        "largest_grid_within_limit": largest,
        "tables_md": {"default_run": t_default, "sizes": t_sizes},
    }
    path = common.write_json(args.out, "default_run", payload)
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
