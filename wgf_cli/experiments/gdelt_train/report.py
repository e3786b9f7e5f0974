"""The method comparison of `wgf gdelt-train` in the reproduce report: a Markdown table
per run from its ``scores.json`` (or ``summary.json``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from wgf_cli.experiments.gdelt_train.evaluate import LABELS, REPORT_COLUMNS


def _decimals(values: list[float], rule: str) -> int:
    """Decimals for a column: at least 4 (``rule="ll"``) or 3 significant digits of its
    smallest non-zero value (``"small"``), more until the distinct values print distinctly."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    nonzero = [abs(v) for v in vals if v != 0]
    d = 4
    if rule == "small" and nonzero:
        d = max(d, 2 - int(np.floor(np.log10(min(nonzero)))))
    d = min(d, 8)
    while d < 10 and len({f"{v:.{d}f}" for v in vals}) < len(set(vals)):
        d += 1
    return d


def _pvalue(p: float | None, alpha: float = 0.05) -> str:
    """A p-value to 2 significant digits, more where 2 would put it on the other side of ``alpha``."""
    if p is None or not np.isfinite(p):
        return "—"
    for digits in range(2, 10):
        text = f"{p:.{digits}g}"
        if (float(text) < alpha) == (p < alpha):
            return text
    return repr(p)


def _from_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A method comparison from ``summary.json`` alone (runs without ``scores.json``): the
    intervals and the test against the best baseline exist for the model only."""
    names = ["model"] + [k[: -len("_log_loss")] for k in summary if k.endswith("_log_loss")
                         and k not in ("test_log_loss", "best_baseline_log_loss")]
    methods = {}
    for name in names:
        prefix = "test" if name == "model" else name
        row = {k: summary.get(f"{prefix}_{k}") for k, _, _ in REPORT_COLUMNS}
        row["log_loss_ci"] = summary.get("test_log_loss_ci") if name == "model" else None
        row["dm_pvalue_vs_best"] = summary.get("dm_pvalue_vs_best") if name == "model" else None
        methods[name] = row
    methods = dict(sorted(methods.items(), key=lambda kv: kv[1]["log_loss"]
                          if isinstance(kv[1]["log_loss"], int | float) else float("inf")))
    return {"best": summary.get("best_baseline"), "days": summary.get("test_days"),
            "days_scored": summary.get("test_days_scored"), "methods": methods}


def method_table_md(comparison: dict[str, Any]) -> list[str]:
    """The Markdown table of a :func:`method_scores` comparison, one row per method (the
    oracle last), each column with as many decimals as it takes to tell its values apart."""
    methods = comparison["methods"]
    cols = [(k, title, rule) for k, title, rule in REPORT_COLUMNS
            if any(isinstance(m.get(k), int | float) for m in methods.values())]
    dec = {k: _decimals([m.get(k) for m in methods.values()]
                        + ([x for m in methods.values() for x in (m.get("log_loss_ci") or [])]
                           if k == "log_loss" else []), rule) for k, _, rule in cols}
    best = comparison.get("best")
    lines = ["| method | " + " | ".join(t for _, t, _ in cols) + f" | DM p vs {LABELS.get(best, best)} |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for name in sorted(methods, key=lambda n: n == "oracle"):  # the oracle last: a reference
        m = methods[name]
        label = f"**{LABELS.get(name, name)}** (the model)" if name == "model" else LABELS.get(name, name)
        cells = []
        for k, _, _ in cols:
            v = m.get(k)
            text = "—" if not isinstance(v, int | float) else ("0" if v == 0 else f"{v:.{dec[k]}f}")
            if k == "log_loss" and m.get("log_loss_ci"):
                lo, hi = m["log_loss_ci"]
                text += f" [{lo:.{dec[k]}f}, {hi:.{dec[k]}f}]"
            cells.append(text)
        p = "(best)" if name == best else ("—" if name == "oracle" else _pvalue(m.get("dm_pvalue_vs_best")))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {p} |")
    return lines


def report_section(runs: list[dict[str, Any]]) -> str:
    """Markdown for the reproduce report: per completed run its test method comparison
    (``scores.json``, else ``summary.json``) as a table."""
    from pathlib import Path

    from wgf_cli.run import read_file

    out = []
    for r in runs:
        if r.get("status") != "completed":
            continue
        comp = read_file(Path(r["folder"]) / "scores.json") or _from_summary(r.get("summary") or {})
        if not comp.get("methods") or not any(isinstance(m.get("log_loss"), int | float)
                                             for m in comp["methods"].values()):
            continue
        best = comp.get("best")
        out += [f"### Method comparison: {r['name']}", "",
                f"Test split: {comp.get('days')} target days, {comp.get('days_scored')} with events "
                "(the event scores' days). Lower is better except 80 % coverage (nominal 0.8). "
                "Log loss in nats per event with its 95 % block-bootstrap interval over "
                "country-weeks; DM p: Diebold-Mariano test (country-week clusters) of the "
                f"method's per-day log loss against {LABELS.get(best, best)}, the lowest log loss "
                "without the oracle.", "", *method_table_md(comp), ""]
    return "\n".join(out)
