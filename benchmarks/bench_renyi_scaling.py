"""Matrix-based Rényi entropy of large Gram matrices: exact ``eigvalsh`` vs the adaptive fast path.

Three kernel families at each n (the spectra range from near-flat to steep):

* ``silverman``: 10-component Gaussian mixture in 10-d, Silverman's width (moderate decay);
* ``silverman x4``: the same data, a 4x wider kernel (steep decay, ~200 pairs deflated);
* ``normal10 sigma=1``: 10-d standard normal data, ``exp(-|x-y|^2/2)`` (near-flat: ``A`` is
  close to ``I / n`` plus a handful of outliers).

Per case: ``torch.linalg.eigvalsh`` in float64 once (every alpha uses the same spectrum), and
:func:`wgf_cli.info.fast.entropy_fast` with its default (adaptive) settings, ``tol = 1e-4``
(``1e-3`` for alpha < 1), timed before and after the exact call (best of the two), same
process, same matrix.  At alpha = 1.01 random Fourier features (``D`` features, the
eigenvalues of ``Z^T Z / n``) are run at the fast path's wall time for comparison.

``--matrix-free N``: the fast path on the matrix-free Gaussian Gram operator of N mixture
points (``K`` never formed), against random Fourier features at equal wall time and, with
``--reference``, a float64 run of the fast path with a 10x tighter tolerance as reference.

    python benchmarks/bench_renyi_scaling.py [--quick] [--sizes 2000 10000] [--threads T]
    python benchmarks/bench_renyi_scaling.py --matrix-free 100000 [--reference]
"""

from __future__ import annotations

import json
import math
import sys
import time

import common
import torch

from wgf_cli.info.entropy import renyi_from_spectrum
from wgf_cli.info.fast import entropy_fast
from wgf_cli.info.kernels import gram, kernel_width
from wgf_cli.info.operators import GaussianGram

ALPHAS = (1.01, 0.5, 3.0)  # alpha = 2 is exact and O(n^2) through the Frobenius norm
TOL = {1.01: 1e-4, 0.5: 1e-3, 3.0: 1e-4}
TARGET = {"n": 10_000, "rel_error": 1e-4, "speedup": 30.0, "rel_error_alpha_below_1": 1e-3}


def mixture(n: int, d: int = 10, k: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
    return centres[torch.randint(0, k, (n,), generator=g)] + torch.randn(
        n, d, generator=g, dtype=torch.float64)


def normal10(n: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, 10, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def case_data(name: str, n: int) -> tuple[torch.Tensor, float]:
    """Samples and the kernel width of a case."""
    if name == "normal10 sigma=1":
        return normal10(n), 1.0
    x = mixture(n)
    scale = 4.0 if name == "silverman x4" else 1.0
    return x, kernel_width(x, "silverman", scale=scale).sigma


def rff_entropy(x: torch.Tensor, sigma: float, D: int, alpha: float, seed: int = 0) -> float:
    """Rényi entropy of the random-Fourier-feature Gram matrix ``Z Z^T / n`` (trace-normalized),
    from the ``D`` eigenvalues of ``Z^T Z``; ``Z`` in float32 blocks, ``Z^T Z`` in float64."""
    g = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    W = (torch.randn(d, D, generator=g, dtype=torch.float64) / sigma).float()
    b = (2 * math.pi * torch.rand(D, generator=g, dtype=torch.float64)).float()
    x32 = x.float()
    C = torch.zeros(D, D, dtype=torch.float64)
    for i in range(0, x.shape[0], 8192):
        Z = torch.cos(x32[i:i + 8192] @ W + b)
        C += (Z.T @ Z).double()
    lam = torch.linalg.eigvalsh(C)
    lam = torch.where(lam > D * torch.finfo(torch.float64).eps * lam[-1], lam, torch.zeros_like(lam))
    return float(renyi_from_spectrum(lam / lam.sum(), alpha))


def rff_at_time(x, sigma, alpha, budget_s: float) -> tuple[int, float, float]:
    """Random features with the largest ``D`` (doubling from 256) whose time fits ``budget_s``."""
    D, best = 256, None
    while True:
        t0 = time.perf_counter()
        h = rff_entropy(x, sigma, D, alpha)
        t = time.perf_counter() - t0
        if best is None or t <= budget_s:
            best = (D, h, t)
        if t * 4.5 > budget_s or D >= x.shape[0]:  # the next doubling would not fit
            return best
        D *= 2


def bench(n: int, name: str, device: torch.device) -> list[dict]:
    x, sigma = case_data(name, n)
    A = gram(x.to(device), sigma=sigma).A

    def fast(alpha, A=A):
        return entropy_fast(A, alpha, tol=TOL[alpha], generator=torch.Generator().manual_seed(1))

    first = {a: common.timed(lambda a=a: fast(a), device) for a in ALPHAS}
    t_exact, lam = common.timed(lambda M=A: torch.linalg.eigvalsh(M), device)
    # the convention of wgf_cli.info.spectrum: eigenvalues below n * eps * lambda_max are 0
    lam = torch.where(lam > n * torch.finfo(torch.float64).eps * lam[-1], lam, torch.zeros_like(lam))
    rows = []
    for alpha in ALPHAS:
        exact = float(renyi_from_spectrum(lam, alpha))
        second = common.timed(lambda a=alpha: fast(a), device) if alpha >= 1 else first[alpha]
        t_fast, res = min(first[alpha], second, key=lambda r: r[0])
        rel = abs(res.entropy - exact) / abs(exact)
        row = {"n": n, "kernel": name, "sigma": sigma, "alpha": alpha, "tol": TOL[alpha],
               "exact_bits": exact, "fast_bits": res.entropy, "rel_error": rel,
               "error_estimate_rel": res.error_estimate / abs(exact),
               "covered": abs(res.entropy - exact) <= res.error_estimate,
               "eigvalsh_s": t_exact, "fast_s": t_fast, "speedup": t_exact / t_fast,
               "deflated": res.rank, "blocks": res.blocks, "block": res.block,
               "probes": res.probes, "steps": res.steps, "passes": res.passes,
               "columns": res.columns, "matmul_dtype": res.matmul_dtype, "met": res.met,
               "top_mass": res.top_mass}
        if alpha == 1.01:
            D, h, t_rff = rff_at_time(x, sigma, alpha, t_fast)
            row.update(rff_D=D, rff_s=t_rff, rff_rel_error=abs(h - exact) / abs(exact))
        rows.append(row)
        print(f"n={n:6d} {name:17s} sigma={sigma:.3f} alpha={alpha:<5g} exact={exact:.6f} "
              f"rel={rel:.2e} (est {row['error_estimate_rel']:.1e}) eig {t_exact:.2f}s fast "
              f"{t_fast:.2f}s x{row['speedup']:.1f} | deflated {res.rank} ({res.block}x"
              f"{res.blocks}) probes {res.probes} steps {res.steps} columns {res.columns}"
              + (f" | rff D={row['rff_D']} rel={row['rff_rel_error']:.1e}" if "rff_D" in row
                 else ""), flush=True)
    del A, lam
    return rows


def matrix_free(n: int, reference: bool, tol: float, alpha: float = 1.01) -> dict:
    x = mixture(n)
    sigma = kernel_width(x, "silverman").sigma
    t0 = time.perf_counter()
    res = entropy_fast(GaussianGram(x, sigma), alpha, tol=tol,
                       generator=torch.Generator().manual_seed(1))
    t_fast = time.perf_counter() - t0
    out = {"n": n, "kernel": "silverman", "sigma": sigma, "alpha": alpha, "tol": tol,
           "fast_bits": res.entropy, "fast_s": t_fast, "error_estimate_bits": res.error_estimate,
           "std_error_bits": res.std_error, "deflated": res.rank, "blocks": res.blocks,
           "probes": res.probes, "steps": res.steps, "passes": res.passes,
           "columns": res.columns, "peak_note": "K never formed: products in 1024-row blocks"}
    print(f"matrix-free n={n}: {res.entropy:.6f} bits +- {res.error_estimate:.2e} (98 %) in "
          f"{t_fast:.0f}s; deflated {res.rank}, probes {res.probes}, steps {res.steps}, "
          f"passes {res.passes}", flush=True)
    D, h, t_rff = rff_at_time(x, sigma, alpha, t_fast)
    out.update(rff_D=D, rff_bits=h, rff_s=t_rff)
    print(f"random features D={D}: {h:.6f} bits in {t_rff:.0f}s", flush=True)
    if reference:
        t0 = time.perf_counter()
        ref = entropy_fast(GaussianGram(x, sigma, dtype=torch.float64), alpha, tol=tol / 10,
                           generator=torch.Generator().manual_seed(2))
        out.update(reference_bits=ref.entropy, reference_error_estimate_bits=ref.error_estimate,
                   reference_s=time.perf_counter() - t0,
                   fast_rel_error=abs(res.entropy - ref.entropy) / ref.entropy,
                   rff_rel_error=abs(h - ref.entropy) / ref.entropy)
        print(f"reference (float64, tol {tol / 10:g}): {ref.entropy:.6f} +- "
              f"{ref.error_estimate:.1e}; fast rel {out['fast_rel_error']:.1e}, random features "
              f"rel {out['rff_rel_error']:.1e}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--matrix-free", type=int, default=None, metavar="N")
    p.add_argument("--reference", action="store_true")
    p.add_argument("--tol", type=float, default=1e-3, help="tolerance of the matrix-free run")
    args = p.parse_args(argv)
    device = common.setup(args)
    t0 = time.perf_counter()
    if args.matrix_free:
        out = matrix_free(args.matrix_free, args.reference, args.tol)
        # stored under "matrix_free" in renyi_scaling.json (the n = 10,000 rows are kept)
        path = args.out / "renyi_scaling.json"
        payload = json.loads(path.read_text()) if path.exists() else {}
        payload["matrix_free"] = {"machine": common.machine_info(device, torch.float64),
                                  "result": out, "wall_s": time.perf_counter() - t0}
        common.write_json(args.out, "renyi_scaling", payload)
        return 0
    sizes = args.sizes or ([2000] if args.quick else [10_000])
    rows = []
    for n in sizes:
        for name in ("silverman", "silverman x4", "normal10 sigma=1"):
            rows += bench(n, name, device)
    at = [r for r in rows if r["n"] == TARGET["n"]]
    target = None
    if at:
        above = [r for r in at if r["alpha"] >= 1]
        below = [r for r in at if r["alpha"] < 1]
        target = {"max_rel_error_alpha_ge_1": max(r["rel_error"] for r in above),
                  "min_speedup_alpha_ge_1": min(r["speedup"] for r in above),
                  "max_rel_error_alpha_below_1": max(r["rel_error"] for r in below)}
        target["met"] = (target["max_rel_error_alpha_ge_1"] <= TARGET["rel_error"]
                         and target["min_speedup_alpha_ge_1"] >= TARGET["speedup"]
                         and target["max_rel_error_alpha_below_1"]
                         <= TARGET["rel_error_alpha_below_1"])
    table = common.markdown_table(rows, [
        ("n", "n"), ("kernel", "kernel"), ("sigma", "sigma"), ("alpha", "alpha"), ("tol", "tol"),
        ("rel_error", "rel. error"), ("error_estimate_rel", "estimate (98 %)"),
        ("eigvalsh_s", "eigvalsh (s)"), ("fast_s", "fast (s)"), ("speedup", "speed-up"),
        ("deflated", "deflated"), ("probes", "probes"), ("steps", "steps"),
        ("rff_rel_error", "random features, same time")])
    print("\n" + table)
    if target:
        print(f"\nat n={TARGET['n']}: max rel. error (alpha >= 1) "
              f"{target['max_rel_error_alpha_ge_1']:.2e}, min speed-up "
              f"{target['min_speedup_alpha_ge_1']:.1f}x, max rel. error (alpha < 1) "
              f"{target['max_rel_error_alpha_below_1']:.2e} -> target "
              f"{'met' if target['met'] else 'NOT met'}")
    path = args.out / "renyi_scaling.json"
    kept = json.loads(path.read_text()).get("matrix_free") if path.exists() else None
    common.write_json(args.out, "renyi_scaling", {
        **({"matrix_free": kept} if kept else {}),
        "machine": common.machine_info(device, torch.float64), "fast_settings": "adaptive",
        "tol": TOL, "target": TARGET, "result_at_target": target, "rows": rows,
        "table_md": table, "wall_s": time.perf_counter() - t0})
    return 0


if __name__ == "__main__":
    sys.exit(main())
