"""Separable vs dense Gibbs-kernel application on 2-D grids.

For each grid size n (N = n^2 points) and gamma = dx^2 (the default of the JKO runs) this
times ``GridGeometry.apply_kernel(b)`` (one n x n matrix per axis, O(N n)) against the
matrix-vector product with the dense N x N kernel ``GridGeometry.dense_kernel()``
(O(N^2)), formed once where it fits in memory.  The two are timed in alternating rounds
in the same process and the ratio of the medians is reported, with the max abs
difference of the results.

    python benchmarks/bench_kernel.py [--quick] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import sys

import common
import torch

from wgf_cli.ot.grid import Grid, GridGeometry

TARGET_RATIO = {128: 100.0}


def bench_size(n: int, device: torch.device, dtype: torch.dtype, rounds: int) -> dict:
    grid = Grid.regular(n, dim=2, dtype=dtype, device=device)
    dx = grid.spacing[0]
    gamma = dx * dx
    geom = GridGeometry(grid, gamma)
    N = grid.size
    itemsize = torch.finfo(dtype).bits // 8
    dense_bytes = N * N * itemsize
    gen = torch.Generator(device="cpu").manual_seed(n)
    b = torch.rand(grid.shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)

    row: dict = {"n": n, "N": N, "gamma": gamma, "dense_bytes": dense_bytes}
    # forming the kernel holds about three N x N temporaries at its peak
    if 3.2 * dense_bytes > 0.8 * common.mem_available_bytes(device):
        row.update(status="dense kernel does not fit in memory", ratio=None)
        sep_inner = common.calibrate(lambda: geom.apply_kernel(b), device)
        row["separable_s"] = common.median([
            common.per_call(lambda: geom.apply_kernel(b), device, sep_inner)
            for _ in range(rounds)
        ])
        return row

    t_form, K = common.timed(geom.dense_kernel, device)
    row["dense_form_s"] = t_form
    bflat = b.reshape(-1)

    def sep():
        return geom.apply_kernel(b)

    def dense():
        return K @ bflat

    out_s = sep()
    out_d = dense().reshape(grid.shape)
    diff = float((out_s - out_d).abs().max())
    scale = float(out_d.abs().max())

    inner = {"separable": common.calibrate(sep, device), "dense": common.calibrate(dense, device)}
    times = common.interleaved({"separable": sep, "dense": dense}, device, rounds, inner)
    t_sep, t_dense = common.median(times["separable"]), common.median(times["dense"])
    per_round = [d / s for s, d in zip(times["separable"], times["dense"], strict=True)]
    target = TARGET_RATIO.get(n)
    row.update(
        separable_s=t_sep,
        dense_s=t_dense,
        ratio=t_dense / t_sep,
        ratio_min_round=min(per_round),
        ratio_max_round=max(per_round),
        rounds=rounds,
        inner_calls=inner,
        max_abs_diff=diff,
        max_rel_diff=diff / scale if scale > 0 else None,
        target_ratio=target,
        target_met=None if target is None else t_dense / t_sep >= target,
        status="ok",
    )
    return row


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", help="grid sizes (default 32 64 128)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    args = p.parse_args(argv)
    device = common.setup(args)
    dtype = common.parse_dtype(args.dtype, device)
    sizes = args.sizes or ([16, 32] if args.quick else [32, 64, 128])
    rounds = args.rounds or (3 if args.quick else 7)

    rows = []
    for n in sizes:
        row = bench_size(n, device, dtype, rounds)
        rows.append(row)
        print(f"  n={n}: ratio={common._fmt(row.get('ratio'))}", file=sys.stderr, flush=True)

    cols = [
        ("n", "grid"), ("N", "N"), ("separable_s", "separable s/call"),
        ("dense_s", "dense s/call"), ("ratio", "dense/separable"),
        ("ratio_min_round", "min round"), ("ratio_max_round", "max round"),
        ("max_abs_diff", "max abs diff"), ("max_rel_diff", "max rel diff"),
        ("target_met", "target (>=100x at 128)"),
    ]
    table = common.markdown_table(rows, cols)
    print(f"\n### Kernel application, separable vs dense ({dtype}, {device}, "
          f"threads={torch.get_num_threads()}; times are CPU/noisy, ratios are medians)\n")
    print(table)
    payload = {
        "benchmark": "kernel",
        "description": "GridGeometry.apply_kernel (separable) vs dense N x N kernel matvec, "
        "gamma = dx^2",
        "machine": common.machine_info(device, dtype),
        "quick": args.quick,
        "rows": rows,
        "table_md": table,
    }
    path = common.write_json(args.out, "kernel", payload)
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
