"""Cost of one training iteration per loss, and of one exact-OT evaluation, as ratios.

For each MLP width (3 hidden layers, generator and critic alike, batch 256, ring8) one
generator iteration of each scheme is timed, the schemes taking turns round after round:
``gan`` (1 critic step), ``wgan_clip`` and ``wgan_gp`` (5 critic steps each), ``sinkhorn``
(no critic, debiased Sinkhorn on the batch).  Reported: the time of each relative to
``wgan_clip`` (same number of critic steps; ``wgan_gp / wgan_clip`` is the price of the
per-sample gradient penalty's double backward), and the cost of one evaluation of exact
W1 + W2 between 2,500 + 2,500 points (POT ``ot.emd2``) in ``wgan_gp`` iterations -- what
``eval.every`` trades against.  The POT value is checked against an optimal assignment
(SciPy) on 400 points in the same run.

    python benchmarks/bench_wgan_step.py [--quick] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import sys

import common
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from wgf_cli.gan.data import make_dataset
from wgf_cli.gan.metrics import wasserstein
from wgf_cli.gan.models import mlp
from wgf_cli.gan.trainer import GANTrainer, TrainConfig

LOSSES = {"gan": dict(n_critic=1, betas=(0.5, 0.999)), "wgan_clip": dict(optimizer="rmsprop"),
          "wgan_gp": {}, "sinkhorn": dict(n_critic=1)}


def trainer(loss: str, hidden: int, device) -> GANTrainer:
    torch.manual_seed(0)
    data = make_dataset("ring8")
    G = mlp(2, 2, hidden, 3).to(device)
    D = mlp(2, 1, hidden, 3).to(device)
    return GANTrainer(G, D, data, TrainConfig(loss=loss, batch_size=256, **LOSSES[loss]), seed=0)


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    device = common.setup(args)
    widths = [32, 128] if args.quick else [128, 512]
    rounds = 3 if args.quick else 5
    rows = []
    for hidden in widths:
        trs = {k: trainer(k, hidden, device) for k in LOSSES}
        for tr in trs.values():
            tr.step()  # warm-up
        fns = {k: tr.step for k, tr in trs.items()}
        inner = {k: common.calibrate(f, device, target_s=0.2, cap=50) for k, f in fns.items()}
        times = common.interleaved(fns, device, rounds, inner)
        med = {k: common.median(v) for k, v in times.items()}
        row = {"hidden": hidden, **{f"{k}_s": v for k, v in med.items()},
               **{f"{k}_ratio": med[k] / med["wgan_clip"] for k in LOSSES}}
        rows.append(row)
        print(f"hidden {hidden}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items()), flush=True)
    # one evaluation (exact W1 + W2 on 2500 + 2500 points) against a wgan_gp iteration
    g = torch.Generator().manual_seed(1)
    data = make_dataset("ring8")
    x, y = data.sample(2500, g, dtype=torch.float64), data.sample(2500, g, dtype=torch.float64) + 0.05
    t_eval, _ = common.timed(lambda: (wasserstein(x, y, 1), wasserstein(x, y, 2)), torch.device("cpu"))
    eval_row = {"eval_s": t_eval, "eval_in_gp_iterations": t_eval / rows[-1]["wgan_gp_s"],
                "hidden": rows[-1]["hidden"]}
    a, b = x[:400].numpy(), y[:400].numpy()
    C = np.linalg.norm(a[:, None] - b[None], axis=-1)
    r, c = linear_sum_assignment(C)
    eval_row["w1_vs_assignment_abs_diff"] = abs(wasserstein(a, b, 1) - C[r, c].mean())
    cols = [("hidden", "width"), ("gan_ratio", "gan"), ("wgan_clip_ratio", "wgan_clip"),
            ("wgan_gp_ratio", "wgan_gp"), ("sinkhorn_ratio", "sinkhorn"), ("wgan_clip_s", "wgan_clip s/iter")]
    table = common.markdown_table(rows, cols)
    ev = common.markdown_table([eval_row], [("eval_s", "W1+W2 eval s"), ("eval_in_gp_iterations",
                                            "in wgan_gp iterations"), ("hidden", "width"),
                                            ("w1_vs_assignment_abs_diff", "|W1 POT - assignment|")])
    print("\nTime per generator iteration relative to wgan_clip (5 critic steps)\n\n" + table)
    print("\nOne exact evaluation (2,500 + 2,500 points)\n\n" + ev)
    common.write_json(args.out, "wgan_step", {"machine": common.machine_info(device, torch.float32),
                                              "quick": args.quick, "rows": rows, "eval": eval_row,
                                              "tables_md": {"step": table, "eval": ev}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
