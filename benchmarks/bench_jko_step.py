"""One entropic JKO step of the heat flow: separable grid kernel vs dense N x N kernel.

Problem (identical for both): heat energy D=0.1 on an n x n grid of [0,1]^2, initial
Gaussian (std 0.06, centred), h=1e-3, gamma=dx^2, tol=1e-9, no debiasing.  One step is
taken first on the separable geometry from a cold start; the timed step is the *second*
step, solved from that step's result with its scalings as the same warm start on both
sides:

* separable: ``prox_sinkhorn(GridGeometry, q, prox)`` on ``n x n`` tensors;
* dense: ``prox_sinkhorn(DenseGeometry(C, gamma), q.flatten(), prox')`` where ``prox'``
  reshapes to the grid, applies the same energy prox, and flattens back.

Both use the plain (scaling) domain.  The energy's transport-cost diagnostic is not part of
either timing; ``EntropicJKO.step`` (which adds it) is timed separately for reference.
The max abs difference of the resulting rho must be <= 1e-8 (rows are marked failed
otherwise and the script exits with status 1).

    python benchmarks/bench_jko_step.py [--quick] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import sys

import common
import torch

from wgf_cli.flows.jko import EntropicJKO
from wgf_cli.ot.grid import GridGeometry
from wgf_cli.ot.sinkhorn import DenseGeometry, prox_sinkhorn

H = 1e-3
MAX_DIFF = 1e-8
TARGET_RATIO = {64: 25.0, 128: 100.0}


def bench_size(n: int, device, dtype, tol: float, inner_max: int, rounds: int,
               dense_budget_s: float) -> dict:
    grid, energy, rho0 = common.heat_setup(n, dtype, device)
    dx = grid.spacing[0]
    gamma = dx * dx
    sigma = 2.0 * H / gamma
    energy.prox_diffusion = energy.diffusion  # debias=False
    geom = GridGeometry(grid, gamma)
    shape = grid.shape

    def prox(lp):
        return energy.prox_log(lp, sigma)

    def prox_flat(lp):
        return energy.prox_log(lp.reshape(shape), sigma).reshape(-1)

    kw = dict(tol=tol, inner_max=inner_max, log_domain=False)
    first = prox_sinkhorn(geom, rho0, prox, **kw)
    q = first.rho
    init = (first.f, first.g)
    init_flat = (first.f.reshape(-1), first.g.reshape(-1))

    row: dict = {"n": n, "N": grid.size, "gamma": gamma, "h": H, "tol": tol}
    N = grid.size
    itemsize = torch.finfo(dtype).bits // 8
    dense_bytes = N * N * itemsize
    # cost, log-kernel and kernel are kept, plus one temporary while forming them
    if 4.2 * dense_bytes > 0.8 * common.mem_available_bytes(device):
        row.update(status="dense kernel does not fit in memory", ok=None)
        return row

    t_build, cost = common.timed(lambda: common.dense_cost(grid), device)
    t_geom, dgeom = common.timed(lambda: DenseGeometry(cost, gamma), device)
    row["dense_setup_s"] = t_build + t_geom
    qf = q.reshape(-1)

    def sep():
        return prox_sinkhorn(geom, q, prox, init=init, **kw)

    def dense():
        return prox_sinkhorn(dgeom, qf, prox_flat, init=init_flat, **kw)

    # first timed round tells how many rounds the dense side can afford
    t_s, res_s = common.timed(sep, device)
    t_d, res_d = common.timed(dense, device)
    sep_times, dense_times = [t_s], [t_d]
    dense_rounds = int(max(1, min(rounds, dense_budget_s // max(t_d, 1e-9))))
    for r in range(1, rounds):
        pair = [("s", sep), ("d", dense)] if r % 2 == 0 else [("d", dense), ("s", sep)]
        for tag, fn in pair:
            if tag == "d" and r >= dense_rounds:
                continue
            t, _ = common.timed(fn, device)
            (sep_times if tag == "s" else dense_times).append(t)

    # the full EntropicJKO.step on the same problem (adds the transport-cost diagnostic)
    jko = EntropicJKO(energy, H, gamma, tol=tol, inner_max=inner_max, log_domain=False)
    jko_times = []
    for _ in range(max(3, rounds)):
        jko.warm_start = init  # the same warm start on both sides
        t, st = common.timed(lambda: jko.step(q), device)
        jko_times.append(t)

    diff = float((res_s.rho - res_d.rho.reshape(shape)).abs().max())
    t_sep, t_dense = common.median(sep_times), common.median(dense_times)
    ok = (
        diff <= MAX_DIFF
        and res_s.converged
        and res_d.converged
        and float((st.rho - res_s.rho).abs().max()) <= MAX_DIFF
    )
    target = TARGET_RATIO.get(n)
    row.update(
        separable_s=t_sep,
        dense_s=t_dense,
        ratio=t_dense / t_sep,
        separable_runs=len(sep_times),
        dense_runs=len(dense_times),
        jko_step_s=common.median(jko_times),
        iters_separable=res_s.n_iters,
        iters_dense=res_d.n_iters,
        iters_first_step=first.n_iters,
        marginal_error_separable=res_s.error,
        marginal_error_dense=res_d.error,
        max_abs_diff_rho=diff,
        max_rho=float(res_s.rho.abs().max()),
        ok=ok,
        status="ok" if ok else "FAILED",
        target_ratio=target,
        target_met=None if target is None else t_dense / t_sep >= target,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", help="grid sizes (default 32 64 128)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--tol", type=float, default=1e-9)
    p.add_argument("--inner-max", type=int, default=5000)
    p.add_argument("--dense-budget-s", type=float, default=180.0,
                   help="wall time allowed for the repeated dense solves of one size")
    args = p.parse_args(argv)
    device = common.setup(args)
    dtype = common.parse_dtype(args.dtype, device)
    sizes = args.sizes or ([16, 32] if args.quick else [32, 64, 128])
    rounds = args.rounds or (3 if args.quick else 5)

    rows = []
    for n in sizes:
        row = bench_size(n, device, dtype, args.tol, args.inner_max, rounds, args.dense_budget_s)
        rows.append(row)
        print(f"  n={n}: ratio={common._fmt(row.get('ratio'))} status={row['status']}",
              file=sys.stderr, flush=True)

    cols = [
        ("n", "grid"), ("iters_separable", "iters sep"), ("iters_dense", "iters dense"),
        ("separable_s", "separable s"), ("dense_s", "dense s"), ("ratio", "dense/separable"),
        ("dense_runs", "dense runs"), ("jko_step_s", "EntropicJKO.step s"),
        ("max_abs_diff_rho", "max abs diff rho"), ("status", "status"),
        ("target_met", "target met"),
    ]
    table = common.markdown_table(rows, cols)
    print(f"\n### One JKO step (heat, h={H}, gamma=dx^2, tol={args.tol}), separable vs dense "
          f"({dtype}, {device}, threads={torch.get_num_threads()}; times CPU/noisy, "
          f"ratios of medians)\n")
    print(table)
    failed = [r["n"] for r in rows if r.get("ok") is False]
    payload = {
        "benchmark": "jko_step",
        "description": "one warm-started entropic JKO step of the heat flow, "
        "GridGeometry vs DenseGeometry, same problem and warm start",
        "machine": common.machine_info(device, dtype),
        "quick": args.quick,
        "settings": {"D": common.DIFFUSION, "h": H, "gamma": "dx^2", "tol": args.tol,
                     "debias": False, "log_domain": False, "max_diff_allowed": MAX_DIFF},
        "rows": rows,
        "failed": failed,
        "table_md": table,
    }
    path = common.write_json(args.out, "jko_step", payload)
    print(f"\nwritten {path}")
    if failed:
        print(f"FAILED rows (rho difference > {MAX_DIFF} or not converged): {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
