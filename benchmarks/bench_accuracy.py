"""Accuracy vs cost of the entropic JKO scheme on the 2-D heat flow.

Heat equation d rho/dt = D Laplacian rho, D=0.1, on [0,1]^2 (no-flux walls) from a Gaussian
of std 0.06 at the centre, up to T=0.04, on an n x n grid (n=128; 64 with --quick).  Sweep:
gamma = factor * dx^2 for factor in {0.5, 1, 2, 4}, h in {4e-3, 2e-3, 1e-3, 5e-4}
(steps = T/h), debias True and False; tol=1e-9.  Each run records the relative L1 error
against ``references.heat_gaussian`` at T (exact Neumann solution by images), the total
number of inner (Sinkhorn) iterations, the wall time, and the engine's ``blur_diffusion``
(gamma/(4h) for a well-resolved kernel) and ``debias_complete`` (blur <= D).

Reported: the table of runs; the empirical order of the L1 error in h (least-squares
log-log slope over the h values) per gamma factor and debias setting; the Pareto frontier
of error vs wall time (also written as markdown to results/accuracy_frontier.md).

    python benchmarks/bench_accuracy.py [--quick] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import sys
import time

import common
import torch

from wgf_cli.flows.jko import EntropicJKO
from wgf_cli.flows.references import heat_gaussian, relative_l1

T_FINAL = 0.04
FACTORS = (0.5, 1.0, 2.0, 4.0)
HS = (4e-3, 2e-3, 1e-3, 5e-4)


def run_one(n, factor, h, debias, dtype, device, tol, inner_max) -> dict:
    grid, energy, rho0 = common.heat_setup(n, dtype, device)
    dx = grid.spacing[0]
    gamma = factor * dx * dx
    steps = int(round(T_FINAL / h))
    jko = EntropicJKO(energy, h, gamma, tol=tol, inner_max=inner_max, debias=debias)
    common.sync(device)
    t0 = time.perf_counter()
    res = jko.run(rho0, steps)
    common.sync(device)
    wall = time.perf_counter() - t0
    ref = heat_gaussian(grid, common.MEAN, common.STD0**2, common.DIFFUSION, res.t)
    return {
        "n": n,
        "gamma_factor": factor,
        "gamma": gamma,
        "h": h,
        "steps": steps,
        "debias": debias,
        "blur_diffusion": jko.blur_diffusion,
        "prox_diffusion": jko.prox_diffusion,
        "debias_complete": jko.debias_complete,
        "l1_error": relative_l1(res.rho.to(torch.float64), ref.to(torch.float64)),
        "total_inner_iters": int(sum(res.n_iters)),
        "max_inner_iters": int(max(res.n_iters)),
        "converged": res.converged,
        "log_domain": any(s.log_domain for s in res.steps),
        "wall_s": wall,
    }


def pareto(rows: list[dict], cost_key: str = "wall_s") -> list[dict]:
    """Runs not beaten by another run on both cost and error, by increasing cost."""
    out: list[dict] = []
    best = float("inf")
    for r in sorted(rows, key=lambda r: (r[cost_key], r["l1_error"])):
        if r["l1_error"] < best:
            out.append(r)
            best = r["l1_error"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--grid", type=int, default=None, help="grid size (default 128, quick 64)")
    p.add_argument("--factors", type=float, nargs="+", default=list(FACTORS))
    p.add_argument("--hs", type=float, nargs="+", default=list(HS))
    p.add_argument("--dtype", choices=("float32", "float64"), default=None)
    p.add_argument("--tol", type=float, default=None, help="1e-9 (float64), 1e-6 (float32)")
    p.add_argument("--inner-max", type=int, default=5000)
    args = p.parse_args(argv)
    device = common.setup(args)
    dtype = common.parse_dtype(args.dtype, device)
    tol = args.tol or (1e-9 if dtype == torch.float64 else 1e-6)
    n = args.grid or (64 if args.quick else 128)

    rows = []
    t_all = time.perf_counter()
    for factor in args.factors:
        for h in args.hs:
            for debias in (False, True):
                r = run_one(n, factor, h, debias, dtype, device, tol, args.inner_max)
                rows.append(r)
                print(f"  factor={factor} h={h} debias={debias}: err={r['l1_error']:.3e} "
                      f"iters={r['total_inner_iters']} {r['wall_s']:.1f}s",
                      file=sys.stderr, flush=True)
    sweep_s = time.perf_counter() - t_all

    orders = []
    for factor in args.factors:
        for debias in (False, True):
            sel = [r for r in rows if r["gamma_factor"] == factor and r["debias"] == debias]
            sel.sort(key=lambda r: r["h"])
            slope = common.loglog_slope([r["h"] for r in sel], [r["l1_error"] for r in sel])
            # the two largest time steps only: the slope before any floor is reached
            big = sel[-2:]
            slope_big = common.loglog_slope([r["h"] for r in big], [r["l1_error"] for r in big])
            orders.append({
                "gamma_factor": factor, "debias": debias, "order_all_h": slope,
                "order_two_largest_h": slope_big,
                "error_at_largest_h": sel[-1]["l1_error"],
                "error_at_smallest_h": sel[0]["l1_error"],
                "debias_complete_all_h": all(r["debias_complete"] for r in sel) if debias else None,
            })

    frontier = pareto(rows)
    frontier_iters = pareto(rows, "total_inner_iters")

    run_cols = [
        ("gamma_factor", "gamma/dx^2"), ("h", "h"), ("steps", "steps"), ("debias", "debias"),
        ("blur_diffusion", "D_blur"), ("debias_complete", "debias complete"),
        ("l1_error", "L1 error"), ("total_inner_iters", "inner iters"), ("wall_s", "wall s"),
        ("converged", "converged"),
    ]
    order_cols = [
        ("gamma_factor", "gamma/dx^2"), ("debias", "debias"), ("order_all_h", "order (all h)"),
        ("order_two_largest_h", "order (2 largest h)"), ("error_at_largest_h", "err h=max"),
        ("error_at_smallest_h", "err h=min"), ("debias_complete_all_h", "debias complete"),
    ]
    front_cols = [
        ("wall_s", "wall s (CPU, noisy)"), ("l1_error", "L1 error"), ("gamma_factor", "gamma/dx^2"),
        ("h", "h"), ("steps", "steps"), ("debias", "debias"), ("total_inner_iters", "inner iters"),
    ]
    t_runs = common.markdown_table(rows, run_cols)
    t_orders = common.markdown_table(orders, order_cols)
    t_front = common.markdown_table(frontier, front_cols)
    t_front_it = common.markdown_table(frontier_iters, front_cols)
    head = (f"heat flow, grid {n}x{n}, D={common.DIFFUSION}, std0={common.STD0}, T={T_FINAL}, "
            f"tol={tol}, {dtype}, {device}, threads={torch.get_num_threads()}")
    print(f"\n### Accuracy sweep ({head})\n\n{t_runs}")
    print(f"\n### Empirical order of the L1 error in h\n\n{t_orders}")
    print(f"\n### Pareto frontier, L1 error vs wall time\n\n{t_front}")
    print(f"\n### Pareto frontier, L1 error vs total inner iterations\n\n{t_front_it}")

    info = common.machine_info(device, dtype)
    md = "\n".join([
        "# Accuracy vs cost frontier (heat flow)",
        "",
        f"Generated by `benchmarks/bench_accuracy.py`{' --quick' if args.quick else ''} on "
        f"{info['date']}; {head}; torch {info['torch']}, {info['cpu_count']} CPUs "
        f"({info['device_name']}).  Wall times are from a shared, noisy machine.",
        "",
        "## Pareto frontier: L1 error vs wall time",
        "",
        t_front,
        "",
        "## Pareto frontier: L1 error vs total inner iterations (machine-independent cost)",
        "",
        t_front_it,
        "",
        "## Empirical order in h",
        "",
        t_orders,
        "",
    ])
    (args.out / "accuracy_frontier.md").write_text(md)
    payload = {
        "benchmark": "accuracy",
        "description": "entropic JKO heat flow vs exact Gaussian (images), sweep of gamma and h",
        "machine": info,
        "quick": args.quick,
        "settings": {"grid": n, "D": common.DIFFUSION, "std0": common.STD0, "mean": common.MEAN,
                     "T": T_FINAL, "tol": tol, "factors": args.factors, "hs": args.hs,
                     "inner_max": args.inner_max},
        "sweep_wall_s": sweep_s,
        "runs": rows,
        "orders": orders,
        "frontier_wall": frontier,
        "frontier_iters": frontier_iters,
        "tables_md": {"runs": t_runs, "orders": t_orders, "frontier": t_front,
                      "frontier_iters": t_front_it},
    }
    path = common.write_json(args.out, "accuracy", payload)
    print(f"\nwritten {path} and {args.out / 'accuracy_frontier.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
