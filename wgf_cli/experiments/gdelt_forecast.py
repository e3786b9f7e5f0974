"""`wgf gdelt-forecast`: forecast the day after a build's last day with a trained gdelt-train run.

``run=RUN_DIR`` is a finished `wgf gdelt-train` folder (its final weights, its tuned prior);
``build=BUILD_DIR`` a `wgf gdelt-build` folder with the same countries (default: the run's
build; a re-run of gdelt-build on a folder with newer days forecasts the day after those).
For each country: the expected number of events with its 80 % interval (negative binomial),
the most likely CAMEO root codes (share of the day's events and P(occurs)), the partners of
the country's events over the last ``partner_days`` days (from the events' actor locations;
*domestic* when an actor is in the country itself), and phrases.  Writes ``forecast.json``,
``forecast.md`` and ``plots/forecast.png``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from wgf_cli.errors import ConfigError
from wgf_cli.experiments import common as C

log = logging.getLogger(__name__)

SUMMARY_KEYS = {
    "date": "the forecast day (the day after the build's last day), YYYY-MM-DD",
    "countries": "countries forecast", "expected_events": "sum of the expected events over them",
    "last_observed_day": "the build's last day", "run": "the gdelt-train run used",
    "build": "the gdelt-build folder used",
}
HEADLINE = ["date", "expected_events"]
PRESETS: list = []


def _paths(cfg: DictConfig) -> tuple[Path, Path]:
    run_value = C.get(cfg, "run")
    if run_value in (None, ""):
        raise ConfigError("run is required: give the folder of a finished gdelt-train run, "
                          "e.g. `wgf gdelt-forecast run=outputs/2026-01-01/12-00-00`")
    rdir = Path(str(run_value)).expanduser()
    for rel in ("config.yaml", "prior.json", "prior.npz", "checkpoints/last.pt"):
        if not (rdir / rel).is_file():
            raise ConfigError(f"run: {rdir} has no {rel}; give the folder of a finished "
                              "gdelt-train run")
    build = C.get(cfg, "build")
    if build in (None, ""):
        build = OmegaConf.load(rdir / "config.yaml").data.build_dir
    return rdir, Path(str(build)).expanduser()


def validate(cfg: DictConfig) -> None:
    """Every check that can fail before work starts; one-line :class:`ConfigError`."""
    from wgf_cli.forecast.data import BuildError, check_build

    C.integer(cfg, "seed", minimum=0)
    C.resolve_device(cfg)
    C.integer(cfg, "partner_days", minimum=1)
    C.integer(cfg, "top_roots", minimum=1)
    rdir, bdir = _paths(cfg)
    tcfg = OmegaConf.load(rdir / "config.yaml")
    try:
        check_build(bdir, int(tcfg.data.context))
    except BuildError as exc:
        raise ConfigError(f"build: {exc}") from None
    trained = json.loads((rdir / "prior.json").read_text()).get("countries", [])
    with np.load(bdir / "descriptors" / "descriptors.npz") as z:
        have = [str(x) for x in z["countries"]]
    if trained and have != trained:
        raise ConfigError(f"build: its countries {have[:12]} differ from the run's {trained[:12]}; "
                          "forecast on a build of the same countries")
    want = C.get(cfg, "countries")
    if want:
        unknown = [str(x) for x in want if str(x) not in have]
        if unknown:
            raise ConfigError(f"countries: {unknown} are not in the build; allowed: {have}")


def _interval(mu: float, alpha: float | None, level: float = 0.8) -> list[int]:
    from scipy import stats

    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    if alpha is None or alpha <= 0:
        d = stats.poisson(mu)
    else:
        d = stats.nbinom(1.0 / alpha, 1.0 / (1.0 + alpha * mu))
    return [int(d.ppf(lo)), int(d.ppf(hi))]


def run(cfg: DictConfig, run) -> dict[str, Any]:
    import torch

    from wgf_cli.forecast import prior as P
    from wgf_cli.forecast import text as T
    from wgf_cli.forecast.data import SequenceData, load_build
    from wgf_cli.forecast.model import Forecaster, ModelConfig
    from wgf_cli.forecast.train import predict
    from wgf_cli.gdelt_contract import N_CELLS, ROOTS

    torch.set_num_threads(max(int(cfg.threads), 1))
    device = C.resolve_device(cfg)
    rdir, bdir = _paths(cfg)
    tcfg = OmegaConf.load(rdir / "config.yaml")
    context = int(tcfg.data.context)
    build = load_build(bdir, context)
    n_days = len(build.days)
    if n_days < context:
        raise ValueError(f"the build has {n_days} days, fewer than the model's {context} context days")
    pj = json.loads((rdir / "prior.json").read_text())
    params = P.PriorParams(**{k: pj[k] for k in P.PriorParams.__dataclass_fields__ if k in pj})
    with np.load(rdir / "prior.npz") as z:
        clim_cells, clim_total = z["clim_cells"], z["clim_total"]
    last_train = int(np.searchsorted(build.days, int(pj.get("last_train_date", build.days[-1])), "right")) - 1
    counts = build.counts.reshape(*build.total.shape, N_CELLS)
    prior = P.build_prior(counts, build.total, build.observed, build.weekday(extra=1), clim_cells,
                          clim_total, params, max(last_train, 0))

    ck = torch.load(rdir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    if "model" not in ck:
        raise ValueError(f"{rdir} is not a finished gdelt-train run (no final weights in its checkpoint)")
    model = Forecaster(ModelConfig(**ck["meta"]["model_config"]))
    if any(k.startswith("cloud_branch.") for k in ck["model"]):
        model.attach_cloud_branch()
    model.load_state_dict(ck["model"])
    model = model.to(next(iter(ck["model"].values())).dtype)

    names = [str(x) for x in build.countries]
    want = [str(x) for x in (cfg.countries or names)]
    c_idx = np.array([names.index(x) for x in want], np.int64)
    data = SequenceData(build, "forecast", context, targets=(c_idx, np.full(len(c_idx), n_days)),
                        prior=prior if model.cfg.prior else None)
    pred = predict(model, data, device=device)
    date = build.date_after_last()
    basis = build.standard
    label = {str(c): str(p) for c, p in zip(basis.codes, basis.phrases, strict=True)}
    lo = max(n_days - int(cfg.partner_days), 0)
    weights = build.partner_weights()
    out = []
    for i, c in enumerate(c_idx.tolist()):
        mu = float(pred["total_mean"][i])
        alpha = None if pred["alpha"] is None else float(pred["alpha"][i])
        order = np.argsort(-pred["root_probs"][i], kind="stable")[: int(cfg.top_roots)]
        roots = [{"code": ROOTS[r], "label": label.get(ROOTS[r], ROOTS[r]),
                  "share": round(float(pred["root_probs"][i, r]), 4),
                  "p_occurs": round(float(pred["occur_probs"][i, r]), 4)}
                 for r in order if pred["root_probs"][i, r] >= 1e-3]   # codes the country has
        partners = T.partner_shares(build.partners[c, lo:], weights[c, lo:], names[c], basis, top=3)
        country = basis.country_name(names[c])
        top_partner = partners[0][1] if partners else None
        out.append({"country": names[c], "name": country, "expected_events": round(mu, 3),
                    "interval80": _interval(mu, alpha), "roots": roots,
                    "partners": [{"country": k, "label": lab, "share": round(s, 4)} for k, lab, s in partners],
                    "phrases": [T.phrase(country, r["label"], top_partner) for r in roots]})
    doc = {"date": date, "last_observed_day": int(build.days[-1]), "run": str(rdir), "build": str(bdir),
           "forecasts": out}
    from wgf_cli.run import atomic_write

    atomic_write(run.dir / "forecast.json", json.dumps(doc, indent=1) + "\n")
    atomic_write(run.dir / "forecast.md", _markdown(doc))
    _plot(run, doc)
    table = "\n".join(f"{f['country']:<4} {f['expected_events']:>8.2f}  {f['interval80']}  "
                      + ", ".join(f"{r['label']} {r['p_occurs']:.2f}" for r in f["roots"][:3]) for f in out)
    log.info("forecast of %s:\n%s", date, table)
    summary = {"date": date, "countries": len(out), "expected_events": float(sum(f["expected_events"] for f in out)),
               "last_observed_day": int(build.days[-1]), "run": str(rdir), "build": str(bdir)}
    if not math.isfinite(summary["expected_events"]):
        raise ValueError("expected_events is NaN: the model's count forecast failed")
    run.save_summary(summary)
    return summary


def _markdown(doc: dict) -> str:
    lines = [f"# Forecast for {doc['date']}", "", f"From the run `{doc['run']}` on the build `{doc['build']}` "
             f"(last observed day {doc['last_observed_day']}).", "",
             "| country | expected events | 80 % interval | most likely events (P occurs) | partners |",
             "|---|---:|---|---|---|"]
    for f in doc["forecasts"]:
        roots = "; ".join(f"{r['label']} ({r['p_occurs']:.2f})" for r in f["roots"][:3])
        partners = "; ".join(f"{p['label']} {100 * p['share']:.0f} %" for p in f["partners"]) or "—"
        lines.append(f"| {f['name']} | {f['expected_events']:.2f} | {f['interval80'][0]}–{f['interval80'][1]} "
                     f"| {roots} | {partners} |")
    lines += ["", "## Phrases", ""] + [f"- {p}" for f in doc["forecasts"] for p in f["phrases"][:3]]
    return "\n".join(lines) + "\n"


def _plot(run, doc: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fc = doc["forecasts"]
    x = np.arange(len(fc))
    mu = np.array([f["expected_events"] for f in fc])
    lo = np.array([f["interval80"][0] for f in fc])
    hi = np.array([f["interval80"][1] for f in fc])
    fig, axs = plt.subplots(1, 2, figsize=(12, 0.45 * len(fc) + 2))
    axs[0].barh(x, mu, color="C0")
    axs[0].errorbar(mu, x, xerr=[np.maximum(mu - lo, 0), np.maximum(hi - mu, 0)], fmt="none", c="k", lw=1)
    axs[0].set_yticks(x, [f["name"] for f in fc])
    axs[0].invert_yaxis()   # the same row order as the heat map
    axs[0].set_xlabel("expected events (80 % interval)")
    codes = sorted({r["code"] for f in fc for r in f["roots"]})
    mat = np.array([[next((r["p_occurs"] for r in f["roots"] if r["code"] == c), np.nan) for c in codes]
                    for f in fc])
    im = axs[1].imshow(mat, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    axs[1].set_xticks(range(len(codes)), codes)
    axs[1].set_yticks(x, [f["name"] for f in fc])
    axs[1].set_xlabel("CAMEO root code")
    fig.colorbar(im, ax=axs[1], label="P(occurs)")
    fig.suptitle(f"GDELT forecast for {doc['date']}")
    fig.tight_layout()
    run.save_plot(fig, "forecast.png")
