"""`wgf report` and `wgf summarize`, and the report page in a headless browser (slow)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wgf_cli.cli import app
from wgf_cli.experiments import jko
from wgf_cli.reproduce import main as reproduce

runner = CliRunner()
TINY = ["--grid", "16", "--steps", "2", "output.gif_frames=0"]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """``make reproduce --only aggregation`` into a temporary folder."""
    root = tmp_path_factory.mktemp("repro")
    assert reproduce(["--out", str(root / "runs"), "--report", str(root / "report"), "--only", "aggregation"]) == 0
    return root


def test_report_page_is_self_contained(reproduced):
    page = (reproduced / "report" / "index.html").read_text()
    agg = next(p for p in jko.PRESETS if p.name == "aggregation")
    assert page.count('<tr class="claim">') == len(agg.claims)  # every claim, each passing
    images = re.findall(r'<img alt="[^"]*" src="([^"]*)"', page)
    assert len(images) >= 3 and all(src.startswith("data:image/") for src in images)
    md = (reproduced / "report" / "report.md").read_text()
    for fig in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (reproduced / "report" / fig).stat().st_size > 1000


def test_wgf_report_rebuilds_and_rejects_missing_runs(reproduced, tmp_path):
    res = runner.invoke(app, ["report", str(reproduced / "runs"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "claims: 2/2 pass" in res.output and (tmp_path / "rep" / "index.html").exists()
    res = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no such folder" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no run folders" in res.output


def test_report_of_any_run_or_sweep_folder(tmp_path):
    single, sweep = tmp_path / "runs" / "single", tmp_path / "runs" / "sweep"
    assert runner.invoke(app, ["jko", *TINY, f"hydra.run.dir={single}"]).exit_code == 0
    res = runner.invoke(app, ["jko", "-m", *TINY, "solver.gamma_factor=1,2", "~launcher", f"hydra.sweep.dir={sweep}"])
    assert res.exit_code == 0, res.output
    for folder, runs in ((single, 1), (sweep, 2), (tmp_path / "runs", 3)):
        out = tmp_path / f"report-{folder.name}"
        res = runner.invoke(app, ["report", str(folder), "--out", str(out)])
        assert res.exit_code == 0, res.output
        md = (out / "report.md").read_text()
        assert md.count("| completed |") == runs, md
        assert "l1_error_final=" in md and (out / "index.html").is_file()


def test_summarize_runs_and_sweeps(tmp_path):
    single = tmp_path / "single"
    assert runner.invoke(app, ["jko", *TINY, f"hydra.run.dir={single}"]).exit_code == 0
    sweep = tmp_path / "sweep"
    res = runner.invoke(app, ["jko", "-m", *TINY, "solver.gamma_factor=1,2", f"hydra.sweep.dir={sweep}"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "table.csv"
    res = runner.invoke(app, ["summarize", str(single), str(sweep), "--csv", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"}
    assert sorted(r["overrides"].split()[-1] for r in rows if "gamma" in r["overrides"]) == [
        "solver.gamma_factor=1", "solver.gamma_factor=2"]
    summaries = {str(p.parent): json.loads(p.read_text()) for p in tmp_path.rglob("summary.json")}
    for r in rows:  # the table holds each run's own numbers
        assert float(r["l1_error_final"]) == pytest.approx(summaries[r["run"]]["l1_error_final"], rel=1e-12)
    res = runner.invoke(app, ["summarize", str(sweep)])  # one column per swept key
    shared = next(ln for ln in res.output.splitlines() if ln.startswith("every run: "))
    assert "grid.size=16" in shared and "gamma" not in shared
    from wgf_cli.summarize import for_display, table

    shown, _ = for_display(table([sweep]), cwd=tmp_path)
    assert "overrides" not in shown.columns and shown["solver.gamma_factor"].tolist() == ["1", "2"]
    assert shown["run"].tolist() == ["sweep/0", "sweep/1"]
    res = runner.invoke(app, ["summarize", str(single), "--keys", "gamma,nope"])
    assert res.exit_code == 0 and "'nope' is in no summary.json" in res.output


def test_summarize_bad_input(tmp_path):
    res = runner.invoke(app, ["summarize", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["summarize", str(tmp_path)])
    assert res.exit_code == 2 and "no run folders" in res.output


def _chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (the test setup)."""
    exe = shutil.which("chromium")
    if exe is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True,
                       env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed and apt-get could not install it")
    return exe


@pytest.mark.slow
def test_report_opens_in_headless_chromium(reproduced):
    page = reproduced / "report" / "index.html"
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    total = int(re.search(r'data-images-total="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom).group(1))
    assert total == page.read_text().count("<img ") and total >= 3
    assert loaded == total  # every figure decoded in the browser
    agg = next(p for p in jko.PRESETS if p.name == "aggregation")
    for c in agg.claims:
        assert f"{c.text} (<code>{c.key}</code>)" in dom


# ---------------------------------------------------------------------------------------
# the gdelt-train method comparison in the report
# ---------------------------------------------------------------------------------------
GDELT_TOY = ["train.per_epoch=32", "train.batch_size=16", "model.d_model=16", "model.ff=32", "model.layers=1",
             "train.max_val=16", "data.max_eval=24", "eval.samples=10", "eval.examples=0", "threads=1",
             "train.patience=0", "train.epochs=1", "train.cloud_epochs=0", "baselines.gru.epochs=1"]


def _table(md: str, first: str) -> list[list[str]]:
    """The cells of the Markdown table whose header starts with ``first``."""
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first} |"))
    rows = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return rows


def test_report_shows_the_gdelt_train_method_table(tmp_path):
    """A toy gdelt-train run on the fixture build: scores.json has every method with its log
    loss interval and its test against the best; the report renders them as a table (Markdown
    and HTML) with the digits that tell the log losses apart."""
    pytest.importorskip("pyarrow")
    fixture = Path(__file__).resolve().parent / "fixtures" / "gdelt_train_build"
    run = tmp_path / "run"
    res = runner.invoke(app, ["gdelt-train", "--quiet", f"data.build_dir={fixture}", *GDELT_TOY,
                              f"hydra.run.dir={run}"])
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "summary.json").read_text())
    comp = json.loads((run / "scores.json").read_text())
    methods = comp["methods"]
    assert {"model", "gru", "climatology", "persistence", "oracle"} <= set(methods)
    assert comp["best"] == min((n for n in methods if n != "oracle"), key=lambda n: methods[n]["log_loss"])
    assert methods["model"]["log_loss"] == pytest.approx(summary["test_log_loss"], abs=1e-12)
    assert methods["model"]["log_loss_ci"] == pytest.approx(summary["test_log_loss_ci"])
    for name, m in methods.items():
        lo, hi = m["log_loss_ci"]
        assert lo < m["log_loss"] < hi, name
        assert (m["dm_pvalue_vs_best"] is None) == (name == comp["best"]), name
        if name != comp["best"]:
            assert 0 <= m["dm_pvalue_vs_best"] <= 1 and m["dm_diff_vs_best"] >= 0, name

    out = tmp_path / "report"
    res = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    assert "### Method comparison: run" in md
    rows = _table(md, "method")
    head, body = rows[0], rows[2:]
    assert head[1].startswith("event log loss") and "count CRPS" in head and "ECE" in head
    assert "80 % coverage" in head and head[-1].startswith("DM p vs")
    assert len(body) == len(methods)
    shown = {}
    for r in body:
        ll = re.fullmatch(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", r[1])
        assert ll, r
        shown[r[0]] = ll.group(1)
        assert len(ll.group(1).split(".")[1]) >= 4  # at least 4 decimals (5 significant digits here)
    model = shown["**transformer** (the model)"]
    assert float(model) == pytest.approx(summary["test_log_loss"], abs=0.51 * 10 ** -len(model.split(".")[1]))
    distinct = {m["log_loss"] for m in methods.values()}
    assert len(set(shown.values())) == len(distinct)  # different log losses print differently
    assert body[-1][0] == "oracle" and next(r for r in body if r[-1] == "(best)")
    crps = head.index("count CRPS")
    assert float(next(r for r in body if r[0].startswith("**"))[crps]) == pytest.approx(
        summary["test_count_crps"], abs=1e-4)
    lo, hi = summary["test_log_loss_ci"]
    assert f"| test_log_loss_ci | [{lo:.6g}, {hi:.6g}] |" in md  # the run's key-value table
    page = (out / "index.html").read_text()
    assert '<h3 id="method-comparison-run">' in page
    assert f"<td><strong>transformer</strong> (the model)</td><td>{model} [" in page
    assert page.count("<tr><td>") >= len(methods)


def test_method_table_digits_and_pvalues():
    """Log losses that differ in the 5th significant digit print differently; a p-value just
    under 0.05 does not print as 0.05; a run without scores.json gets its table from summary.json."""
    from wgf_cli.experiments.gdelt_train_eval import method_table_md, report_section

    comp = {"best": "ewma", "days": 10, "days_scored": 8, "methods": {
        "ewma": {"log_loss": 0.95970, "log_loss_ci": [0.94, 0.98], "ece": 0.0070, "dm_pvalue_vs_best": None},
        "model": {"log_loss": 0.95974, "log_loss_ci": [0.94, 0.98], "ece": 0.0039, "dm_pvalue_vs_best": 0.04996},
        "gru": {"log_loss": 0.96120, "log_loss_ci": None, "ece": 0.00042, "dm_pvalue_vs_best": 0.5}}}
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in method_table_md(comp)][2:]
    ll = [r[1].split(" ")[0] for r in rows]
    assert ll == ["0.95970", "0.95974", "0.96120"]
    assert rows[1][-1] == "0.04996" and rows[2][-1] == "0.5" and rows[0][-1] == "(best)"
    ece = [r[2] for r in rows]
    assert ece == ["0.007000", "0.003900", "0.000420"]  # 3 significant digits of the smallest
    summary = {"test_log_loss": 0.9572, "test_log_loss_ci": [0.9393, 0.9747], "test_count_crps": 1.6966,
               "gru_log_loss": 0.9559, "gru_count_crps": 1.6875, "best_baseline": "gru",
               "best_baseline_log_loss": 0.9559, "dm_pvalue_vs_best": 0.16, "test_days": 100,
               "test_days_scored": 40}
    md = report_section([{"name": "old", "status": "completed", "folder": "/nonexistent", "summary": summary}])
    assert "| GRU | 0.9559 | 1.6875 | (best) |" in md
    assert "| **transformer** (the model) | 0.9572 [0.9393, 0.9747] | 1.6966 | 0.16 |" in md
    assert report_section([{"name": "x", "status": "failed", "folder": "/nonexistent", "summary": summary}]) == ""


def _printed(text: str):
    return {"True": True, "False": False}.get(text, None) if text in ("True", "False") else float(text)


def test_claims_table_prints_the_digits_that_decide_each_claim():
    """Every preset's claim, with a measured value just either side of its threshold (down to
    one part in 1e15): the claims table's printed value and threshold, compared with the
    claim's operator, give the claim's result, and different numbers never print alike."""
    from wgf_cli.presets import _OPS
    from wgf_cli.report import _claims_table, fmt_pair
    from wgf_cli.reproduce import presets

    checked = 0
    for _, preset in presets():
        for c in preset.claims:
            if isinstance(c.threshold, bool):
                values = [True, False]
            elif isinstance(c.threshold, int):
                values = [c.threshold - 1, c.threshold, c.threshold + 1, float(c.threshold) + 1e-9]
            else:
                t = float(c.threshold)
                values = [t] + [t * (1 + s * 10.0 ** -k) + (s * 10.0 ** -k if t == 0 else 0)
                                for k in range(1, 16) for s in (-1, 1)]
            for v in values:
                value, passed = c.check({c.key: v})
                claim = {"run": preset.name, "text": c.text, "key": c.key, "value": value, "op": c.op,
                         "threshold": c.threshold, "passed": passed}
                row = [x.strip() for x in re.split(r"(?<!\\)\|", _claims_table([claim])[2].strip("|"))]
                shown_v, shown_t = row[2], row[3].split(" ", 1)[1]
                assert (shown_v, shown_t) == fmt_pair(v, c.threshold)
                assert row[3].startswith(c.op) and row[4] == ("pass" if passed else "**FAIL**")
                assert _OPS[c.op](_printed(shown_v), _printed(shown_t)) == passed, (c, v, shown_v, shown_t)
                assert (shown_v == shown_t) == (v == c.threshold), (c, v)
                checked += 1
    assert checked > 500
    assert fmt_pair(0.95723, 0.9585) == ("0.9572", "0.9585")  # 4 significant digits suffice
    assert fmt_pair(0.958549, 0.95855) == ("0.9585", "0.9586")
    assert fmt_pair(0.1 + 1e-15, 0.1) == ("0.100000000000001", "0.1")
    assert fmt_pair(75850.000001, 75850) == ("75850.000001", "75850")  # a float against an int


def _overlapping_texts(fig) -> list[str]:
    """Pairs of tick labels (major and minor, in view), axis labels, titles and the
    suptitle of ``fig`` that overlap once drawn."""
    import itertools

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    items = []
    for ax in fig.axes:
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        ticks = []
        for minor in (False, True):
            ticks += [t for v, t in zip(ax.get_xticks(minor=minor), ax.get_xticklabels(minor=minor), strict=True)
                      if x0 <= v <= x1]
            ticks += [t for v, t in zip(ax.get_yticks(minor=minor), ax.get_yticklabels(minor=minor), strict=True)
                      if y0 <= v <= y1]
        texts = [*ticks, ax.xaxis.label, ax.yaxis.label, ax.title]
        items += [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
    if fig._suptitle is not None:
        items.append((fig._suptitle.get_text(), fig._suptitle.get_window_extent(renderer)))
    return [f"{a!r} / {b!r}" for (a, ba), (b, bb) in itertools.combinations(items, 2)
            if min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > 1 and min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > 1
            and not (a == b and abs(ba.x0 - bb.x0) < 1 and abs(ba.y0 - bb.y0) < 1)]  # twin axes: one label


@pytest.mark.parametrize("iters", [[580.0, 608.0, 605.0], [50.0, 400.0, 3000.0]], ids=["close", "decades"])
def test_convergence_figure_is_readable(iters):
    """heat_convergence's figure: no overlapping labels (a few close iteration counts used to
    cram log-axis labels), labelled axes, a legend with the least-squares slope, plain tick labels."""
    import numpy as np

    from wgf_cli.experiments.jko_plots import convergence

    h, err = np.array([4e-3, 2e-3, 1e-3]), np.array([0.0139, 0.0066, 0.0023])
    order = float(np.polyfit(np.log(h), np.log(err), 1)[0])
    fig = convergence(h, err, np.array(iters), order)
    assert _overlapping_texts(fig) == []
    a, b = fig.axes
    for ax in (a, b):
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        y0, y1 = ax.get_ylim()
        labels = [t.get_text() for v, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
                  if t.get_text() and y0 <= v <= y1]
        assert len(labels) >= 2 and not any("times" in x or "^" in x for x in labels), labels
    assert [t.get_text() for t in a.get_xticklabels() if t.get_text()] == ["0.001", "0.002", "0.004"]
    legend = [t.get_text() for t in a.get_legend().get_texts()]
    assert any(f"slope {order:.2f}" in x for x in legend)
    fit = next(ln for ln in a.get_lines() if "least-squares" in ln.get_label())
    x, y = fit.get_data()
    assert np.polyfit(np.log(x), np.log(y), 1)[0] == pytest.approx(order)
    import matplotlib.pyplot as plt

    plt.close(fig)


class _Figures:
    """A run that keeps the figures it is asked to save."""

    def __init__(self):
        self.figs = {}

    def save_plot(self, fig, name, **_):
        self.figs[name] = fig


def test_report_figures_have_room_and_labels():
    """The 1-D GAN samples (histogram + critic on a twin axis per panel), the mean-field grid
    snapshots (suptitle over panel titles) and the GAN oscillation panels: nothing overlaps,
    every plotted axis is labelled."""
    from types import SimpleNamespace as NS

    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from wgf_cli.experiments.meanfield import plots as meanfield_plots
    from wgf_cli.experiments.wgan import plots as wgan_plots

    rng = np.random.default_rng(0)
    run = _Figures()
    cfg = NS(loss=NS(name="gan"), output=NS(plot_range=3.0, grid=15))
    snaps = [{"iter": i, "samples": rng.normal(size=(200, 1)), "critic": np.sin(np.linspace(-3, 3, 15)) * 0.2 - i}
             for i in (0, 20)]
    wgan_plots._samples(run, cfg, NS(dim=1, name="gauss2_1d"), NS(snaps=snaps, seed=0), rng.normal(size=(500, 1)))
    osc = NS(period=0.0, periodic=False, spectrum_freq=np.array([]), spectrum_power=np.array([]), peak_share=0.0)
    track = {"iter": np.arange(20), "mean": rng.normal(size=(20, 2)), "hist": rng.dirichlet(np.ones(3), 20)}
    wgan_plots._oscillation(run, NS(dim=2), NS(track=track, oscillation=osc))
    ax = torch.linspace(-3, 3, 12)
    problem = NS(grid=NS(axes=[ax, ax]))
    meanfield_plots.grid_snapshots(run, problem, [(t, torch.rand(2, 12, 12)) for t in (0.0, 0.05, 0.1, 0.15)])
    assert set(run.figs) == {"samples", "oscillation", "grid_snapshots.png"}
    for name, fig in run.figs.items():
        assert _overlapping_texts(fig) == [], name
        plotted = [ax for ax in fig.axes if ax.axison and ax.has_data()]
        assert plotted, name
        for ax in plotted:  # an x label on the axes or its twin; a y label (the grid row: on its first panel)
            assert any(a.get_xlabel() for a in ax.get_shared_x_axes().get_siblings(ax)), (name, ax.get_title())
            assert ax.get_ylabel() or name == "grid_snapshots.png" and ax is not fig.axes[0], (name, ax.get_title())
        plt.close(fig)


def test_pipe_in_claim_text_stays_in_its_cell(tmp_path):
    """A claim text with ``|theta|`` keeps five cells in Markdown (escaped) and in HTML."""
    from wgf_cli.report import _claims_table, to_html

    lines = _claims_table([{"run": "r", "text": "W1 = |theta|", "key": "k", "value": 0.1, "op": "<=",
                            "threshold": 0.2, "passed": True}])
    assert len(re.split(r"(?<!\\)\|", lines[2].strip().strip("|"))) == 5
    page = to_html("\n".join(lines), tmp_path)
    assert "<td>W1 = |theta| (<code>k</code>)</td>" in page and page.count("<td>") == 5
