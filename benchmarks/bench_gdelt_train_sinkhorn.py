"""The cloud loss of `wgf gdelt-train`: our converged Sinkhorn divergence vs GeomLoss.

Day clouds are small (K = 6-10 weighted points on a 384-d sphere) and come in batches.  For
each (batch, K) this times forward + backward of ``wgf_cli.ot.pointcloud.sinkhorn_divergence``
(iters=20, blur=0.3: the training setting) and of GeomLoss ``SamplesLoss("sinkhorn", p=2, blur=0.3,
scaling=0.5, debias=True, backend="tensorized")`` in alternating rounds, and reports the
time ratio and each one's value and gradient error against a converged reference (ours with
2000 iterations at the final eps).

    python benchmarks/bench_gdelt_train_sinkhorn.py [--quick] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import common
import torch
from geomloss import SamplesLoss

from wgf_cli.ot.pointcloud import sinkhorn_divergence

BLUR = 0.3


def clouds(b, k, e, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, k, e, generator=g)
    y = torch.randn(b, k, e, generator=g)
    x, y = x / x.norm(dim=-1, keepdim=True), 0.3 * x + y / y.norm(dim=-1, keepdim=True)
    y = y / y.norm(dim=-1, keepdim=True)
    a = torch.softmax(torch.randn(b, k, generator=g), -1)
    w = torch.softmax(torch.randn(b, k, generator=g), -1)
    return [t.to(device) for t in (a, x, w, y)]


def value_grad(fn, a, x, w, y):
    x = x.clone().requires_grad_(True)
    v = fn(a, x, w, y)
    v.sum().backward()
    return v.detach(), x.grad


def main() -> None:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    device = common.setup(args)
    geom = SamplesLoss("sinkhorn", p=2, blur=BLUR, scaling=0.5, debias=True, backend="tensorized")
    ours = lambda a, x, w, y: sinkhorn_divergence(a, x, w, y, BLUR, 0.5, 20)  # noqa: E731
    ref = lambda a, x, w, y: sinkhorn_divergence(a, x, w, y, BLUR, 0.5, 2000)  # noqa: E731
    sizes = [(64, 6)] if args.quick else [(64, 6), (128, 6), (128, 10), (512, 10)]
    rows = []
    for b, k in sizes:
        a, x, w, y = clouds(b, k, 384, device)
        v_ref, g_ref = value_grad(ref, a, x, w, y)
        row = {"batch": b, "k": k}
        for name, fn in (("ours", ours), ("geomloss", geom)):
            v, g = value_grad(fn, a, x, w, y)
            row[f"{name}_value_err"] = float((v - v_ref).abs().max() / v_ref.abs().max())
            row[f"{name}_grad_err"] = float((g - g_ref).norm() / g_ref.norm())
        args4 = (a, x, w, y)
        fns = {n: (lambda fn=fn, t=args4: value_grad(fn, *t))
               for n, fn in (("ours", ours), ("geomloss", geom))}
        inner = {n: common.calibrate(f, device) for n, f in fns.items()}
        times = common.interleaved(fns, device, 3 if args.quick else 7, inner)
        row["ours_ms"] = 1e3 * common.median(times["ours"])
        row["geomloss_ms"] = 1e3 * common.median(times["geomloss"])
        row["time_ratio_geomloss_over_ours"] = row["geomloss_ms"] / row["ours_ms"]
        rows.append(row)
    cols = [("batch", "batch"), ("k", "K"), ("ours_ms", "ours ms"), ("geomloss_ms", "GeomLoss ms"),
            ("time_ratio_geomloss_over_ours", "GeomLoss/ours time"),
            ("ours_grad_err", "ours grad err"), ("geomloss_grad_err", "GeomLoss grad err"),
            ("ours_value_err", "ours value err"), ("geomloss_value_err", "GeomLoss value err")]
    table = common.markdown_table(rows, cols)
    print(table)
    common.write_json(args.out, "gdelt_train_sinkhorn",
                      {"machine": common.machine_info(device, torch.float32), "rows": rows,
                       "tables_md": {"sinkhorn": table}})


if __name__ == "__main__":
    main()
