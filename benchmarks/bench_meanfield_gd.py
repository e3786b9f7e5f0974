"""Particle gradient descent throughput of `wgf meanfield`: explicit gradient vs a plain autograd loop.

The problem: m = 4096 neurons, n = 1024 data points (d = 2, teacher target), full
batch, mean-field step ``w <- w - dt * m * dF/dw``.  Two implementations of the same step:

* ``explicit``: :class:`wgf_cli.meanfield.particles.ParticleTrainer` (closed-form gradient, two
  (n x m) products, no graph);
* ``autograd``: the textbook loop -- ``W.requires_grad_()``, ``loss(W).backward()``, update under
  ``no_grad`` -- on the same data and initial neurons.

They are timed in alternating rounds in one process (medians of per-step times), and the
neurons after a few steps are compared (max abs difference).  Throughput is neuron-steps per
second (m * steps / s).

    python benchmarks/bench_meanfield_gd.py [--quick] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import sys

import common
import torch

from wgf_cli.meanfield import network as N
from wgf_cli.meanfield.data import make_dataset
from wgf_cli.meanfield.particles import ParticleTrainer


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=("float32", "float64"), default=None)
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--size", type=int, default=1024)
    args = p.parse_args(argv)
    device = common.setup(args)
    dtype = common.parse_dtype(args.dtype, device)
    m, n, dt = args.width, args.size, 0.01
    rounds = 3 if args.quick else 7
    data = make_dataset("teacher", n, 16, 2, generator=torch.Generator().manual_seed(0), dtype=dtype,
                        device=device)
    W0, a0 = N.init_particles(m, 2, 1.0, torch.Generator().manual_seed(1), dtype=dtype, device=device)
    trainer = ParticleTrainer(data, "gd", dt)

    state = {"explicit": W0.clone(), "autograd": W0.clone()}

    def explicit():
        state["explicit"], _, _ = trainer.step(state["explicit"], a0)

    def autograd():
        W = state["autograd"].detach().requires_grad_(True)
        loss = N.loss(W, a0, data.x, data.y)
        loss.backward()
        with torch.no_grad():
            state["autograd"] = W - dt * m * W.grad

    # agreement after 10 steps from the same start
    for _ in range(10):
        explicit()
        autograd()
    diff = float((state["explicit"] - state["autograd"]).abs().max())
    inner = {k: common.calibrate(f, device, 0.2) for k, f in (("explicit", explicit), ("autograd", autograd))}
    times = common.interleaved({"explicit": explicit, "autograd": autograd}, device, rounds, inner)
    med = {k: common.median(v) for k, v in times.items()}
    rows = [{"impl": k, "s_per_step": med[k], "neuron_steps_per_s": m / med[k]} for k in med]
    speedup = med["autograd"] / med["explicit"]
    table = common.markdown_table(rows, [("impl", "implementation"), ("s_per_step", "s / step"),
                                         ("neuron_steps_per_s", "neuron-steps / s")])
    print(f"particle gd, m={m}, n={n}, {dtype}, {device}\n")
    print(table)
    print(f"\nexplicit / autograd throughput: {speedup:.2f}x; max |W_explicit - W_autograd| after 10 steps "
          f"= {diff:.2e}")
    common.write_json(args.out, "meanfield_gd", {
        "machine": common.machine_info(device, dtype), "m": m, "n": n, "rounds": rounds,
        "rows": rows, "speedup": speedup, "max_abs_diff_10_steps": diff,
        "times": times, "tables_md": {"gd": table}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
