"""`wgf renyi-mi`: matrix-based Rényi entropy and mutual information of network layers.

Three tasks (``task=``):

``infoplane``  train an MLP classifier; every ``info.every`` iterations measure, on a fixed
               evaluation batch, ``I(X;T_l)``, ``I(T_l;Y)`` and ``H(T_l)`` for every layer (hidden
               layers and the softmax output), the multivariate ``I(Y; {T_1..T_L})``, and
               per-neuron ``I(X;T_lj)``, ``I(T_lj;Y)``; count violations of the data-processing
               inequality ``I(X;T_1) >= I(X;T_2) >= ...`` per checkpoint.
``ntk``        the empirical neural tangent kernel Gram matrix during training: its Rényi
               entropy (also normalized by ``log2 n``) and its alignment with the label kernel.
``scaling``    entropy of Gram matrices for growing ``n``: exact ``eigvalsh`` vs the fast path,
               wall time and relative error.
``estimate``   ``H(X)``, ``H(Y)``, ``H(X,Y)``, ``I(X;Y)`` of user arrays (``input.x``, ``input.y``:
               samples or precomputed Gram matrices).

``metrics.csv``: infoplane: one row per checkpoint and layer (``step, epoch, layer, I_XT,
I_TY, H_T, sigma, ...``); ntk: one row per checkpoint; scaling: one row per ``n``.
Summary keys: :data:`SUMMARY_KEYS`.  Units: bits.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from wgf_cli.experiments.renyi_mi.config import DATASETS, TASKS, validate
from wgf_cli.presets import Claim, Preset

__all__ = ["DATASETS", "HEADLINE", "PRESETS", "SUMMARY_KEYS", "TASKS", "run", "validate"]

SUMMARY_KEYS = {
    "task": "infoplane | ntk | scaling",
    "alpha": "Rényi order",
    "entropy_method": "auto | eig | frobenius | fast",
    "layers": "number of measured layers (hidden layers + softmax output)",
    "layer_widths": "units per measured layer",
    "final_accuracy": "test accuracy at the end of training",
    "final_train_loss": "mean cross-entropy of the last epoch",
    "checkpoints": "information measurements made",
    "H_X": "S_alpha of the input Gram matrix on the evaluation batch (bits)",
    "H_Y": "S_alpha of the label Gram matrix (bits) = Rényi entropy of the label histogram",
    "sigma_x": "kernel width of the input",
    "I_XT_final": "I(X;T_l) per layer at the last checkpoint (list)",
    "I_TY_final": "I(T_l;Y) per layer at the last checkpoint (list)",
    "sigma_final": "kernel width per layer at the last checkpoint (list)",
    "I_Y_layers_final": "multivariate I(Y; {T_1..T_L}) at the last checkpoint",
    "dpi_violations": "checkpoint/layer pairs with I(X;T_l+1) > I(X;T_l) + info.dpi_tol",
    "dpi_violations_y": "the same for I(T_l+1;Y) > I(T_l;Y) + info.dpi_tol",
    "ntk_entropy_initial": "S_alpha of the normalized NTK Gram matrix before training",
    "ntk_entropy_final": "... after training",
    "ntk_entropy_norm_final": "ntk_entropy_final / log2 n",
    "ntk_alignment_initial": "centered alignment <HKH, HLH>/(|HKH||HLH|) of the NTK with the "
                             "label kernel, before training",
    "ntk_alignment_final": "... at the end",
    "ntk_alignment_gain": "ntk_alignment_final - ntk_alignment_initial",
    "n_max": "largest Gram matrix (scaling)",
    "max_rel_error": "max |fast - exact| / exact over the sizes with an exact reference",
    "speedup_at_n_max": "eigvalsh time / fast-path time at the largest n with a reference",
    "rel_error_at_n_max": "relative error of the fast path at that n",
    "within_3_sigma": "fraction of sizes where |fast - exact| <= 3 x the error estimate",
    "H_XY": "estimate: joint entropy S(A_X o A_Y / tr) (bits)",
    "I_XY": "estimate: I(X;Y) = H_X + H_Y - H_XY (bits)",
    "wall_s": "wall time of the run (plots excluded)",
}

#: summary keys shown (first present) per job in the sweep table
HEADLINE = ["final_accuracy", "max_rel_error", "I_XY"]

_TOY_TRAIN = ["train.epochs=2", "info.every=10", "info.eval_size=80", "network.widths=[16,8]"]

#: ``conf/experiment/`` presets of ``wgf renyi-mi``, with the claims ``make reproduce`` checks.
PRESETS = [
    Preset("infoplane", "Information plane of a 64-32-16 tanh MLP trained on digits "
                        "(matrix-based Rényi alpha=1.01, k-NN kernel widths).",
           ["final_accuracy", "layers", "H_X", "H_Y", "I_XT_final", "I_TY_final", "I_Y_layers_final",
            "dpi_violations", "wall_s"],
           [Claim("final_accuracy", ">=", 0.95, "MLP on digits reaches 95% test accuracy"),
            Claim("layers", "==", 4, "every layer (3 hidden + softmax) is measured")],
           figures=["infoplane.png", "mi_epochs.png", "dpi.png", "neurons.png"],
           toy=_TOY_TRAIN,
           full=["train.epochs=200", "info.every=10", "info.eval_size=1000", "info.per_neuron=every"]),
    Preset("ntk", "Empirical NTK Gram matrix during training: Rényi entropy and label alignment.",
           ["final_accuracy", "ntk_entropy_initial", "ntk_entropy_final", "ntk_alignment_initial",
            "ntk_alignment_final", "wall_s"],
           [Claim("ntk_alignment_gain", ">", 0.0,
                  "the NTK aligns with the label kernel during training (final - initial > 0)")],
           figures=["ntk.png"],
           toy=["train.epochs=1", "info.every=10", "info.eval_size=60", "ntk.size=40",
                "network.widths=[16,8]"],
           full=["train.epochs=100", "ntk.size=1000", "info.every=20"]),
    Preset("scaling", "Entropy of Gaussian Gram matrices, n = 500..5000: exact eigvalsh vs the "
                      "fast path (deflation + stochastic Lanczos quadrature).",
           ["n_max", "max_rel_error", "speedup_at_n_max", "within_3_sigma", "wall_s"],
           [Claim("max_rel_error", "<=", 1e-3, "fast path: relative error <= 1e-3 against eigvalsh")],
           figures=["scaling_time.png", "scaling_error.png"],
           toy=["scaling.sizes=[300,600]", "entropy.fast.block=16", "entropy.fast.blocks=4"],
           full=["scaling.sizes=[500,1000,2000,5000,10000,20000]"]),
]


def run(cfg: DictConfig, run) -> dict[str, Any]:
    """Run ``cfg.task`` (validated by :func:`validate`) and return its summary."""
    task = str(cfg.task)
    if task == "scaling":
        from wgf_cli.experiments.renyi_mi.scaling import run_scaling

        return run_scaling(cfg, run)
    if task == "estimate":
        from wgf_cli.experiments.renyi_mi.estimate import run_estimate

        return run_estimate(cfg, run)
    from wgf_cli.experiments.renyi_mi.train import run_train

    return run_train(cfg, run, ntk=task == "ntk")
