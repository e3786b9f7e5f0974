"""Every ``conf/experiment/`` preset of every subcommand composes, validates and runs at toy size;
its claims are evaluated on the toy run's summary."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from wgf_cli.reproduce import needs_overrides, presets, run_name, run_preset

PRESETS = presets()


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    """Folder of toy-size runs, named as ``make reproduce`` names them; runs on demand."""
    out = tmp_path_factory.mktemp("toy")
    by_name = dict((p.name, (c, p)) for c, p in PRESETS)

    def ensure(name: str) -> Path:
        folder = out / run_name(name)
        if not (folder / "summary.json").exists():
            cmd, preset = by_name[name]
            for dep in preset.needs.values():
                ensure(dep)
            job = run_preset(cmd, preset, folder, [*preset.toy, *needs_overrides(preset, out)])
            assert job.status == "completed", job.error
        return folder

    return ensure


@pytest.mark.parametrize(("cmd", "preset"), PRESETS, ids=[f"{c}-{p.name}" for c, p in PRESETS])
def test_preset_runs_at_toy_size(cmd, preset, toy_runs):
    folder = toy_runs(preset.name)
    summary = json.loads((folder / "summary.json").read_text())
    assert json.loads((folder / "status.json").read_text())["status"] == "completed"
    for claim in preset.claims:  # every claimed key exists (values need the full preset)
        assert claim.key in summary, f"{cmd}-{preset.name}: claim key {claim.key!r} not in summary.json"


# ------------------------------------------------------------------ the claims, evaluated
_OPS = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t, "<": lambda v, t: v < t,
        ">": lambda v, t: v > t, "==": lambda v, t: v == t}

#: (preset, key, op) of the claims that hold already at toy size: fixed properties (mass kept,
#: a monotone energy, duality, a closed form an integrator reproduces) that do not need the
#: full preset; measured on the toy runs (float64 CPU, fixed seeds)
TOY_HOLDS: set[tuple[str, str, str]] = {
    *((name, "mass_error_max", "<=") for name in ("heat", "heat_512", "aggregation", "keller_segel")),
    *((name, "energy_monotone", "==") for name in ("heat", "heat_512", "ornstein_uhlenbeck", "porous_medium",
                                                   "aggregation", "keller_segel")),
    ("crowd", "congestion_ratio_max", "<="),
    ("compare", "loss_gap_within_tolerance", "=="), ("compare", "max_w2_within_blur", "=="),
    ("scaling", "max_rel_error", "<="),
    ("dirac", "conserved_drift", "<="), ("dirac", "simultaneous_rel_error", "<="),
    ("dirac", "clip_radius_error", "<="), ("dirac", "clip_time_error", "<="),
    ("wgan_twopoint", "twopoint_integral_drift", "<="), ("wgan_twopoint", "twopoint_limit_error", "<="),
    ("wgan_twopoint", "twopoint_time_error", "<="), ("wgan_twopoint", "twopoint_inside_drift", "<="),
    ("ot_geodesic", "divergence_max", "<="),
    ("ot_plans", "entropic_value_monotone", "=="), ("ot_plans", "plan_cost_above_w2", "=="),
    ("ot_plans", "converged", "=="), ("ot_plans", "w2sq_exact_rel_error", "<="),
    ("ot_duality", "duality_gap", "<="), ("ot_duality", "c_transform_residual", "<="),
    ("ot_duality", "weak_duality_holds", "=="),
    ("gdelt_synthetic", "synthetic_counts_match", "=="), ("gdelt_synthetic", "files_failed", "=="),
    ("gdelt_westafrica", "rows_kept", "=="), ("gdelt_westafrica", "files_failed", "=="),
}


def test_toy_holds_names_real_claims():
    claims = {(p.name, c.key, c.op) for _, p in PRESETS for c in p.claims}
    assert TOY_HOLDS <= claims, TOY_HOLDS - claims


def _violating(claim):
    """A value the claim must reject."""
    t = claim.threshold
    if isinstance(t, bool):
        return not t
    if claim.op == "==":
        return t + 1
    if claim.op in ("<=", "<"):
        return t + abs(t) + 1
    return t - abs(t) - 1


def _expected(claim, value) -> bool:
    """The claim's verdict, computed here independently of :meth:`Claim.check`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return bool(_OPS[claim.op](value, claim.threshold))


@pytest.mark.parametrize(("cmd", "preset"), PRESETS, ids=[f"{c}-{p.name}" for c, p in PRESETS])
def test_claims_evaluated_on_the_toy_summary(cmd, preset, toy_runs, tmp_path):
    """Each claim's check on the summary of the toy run (the run ``make reproduce`` makes, at
    toy size): it reports the summary's value and the verdict of the comparison; the claims
    that hold at any size hold here; a summary with the value moved past the threshold, a
    missing key or NaN fails; and the report's claims table gives the same verdicts."""
    folder = toy_runs(preset.name)
    summary = json.loads((folder / "summary.json").read_text())
    verdicts = {}
    for claim in preset.claims:
        value, ok = claim.check(summary)
        assert value == summary[claim.key] or _expected(claim, value) is False
        assert ok == _expected(claim, value), (claim, value)
        verdicts[claim.key, claim.op] = ok
        if (preset.name, claim.key, claim.op) in TOY_HOLDS:
            assert ok, f"{cmd}-{preset.name}: {claim.key} = {value!r} fails {claim.op} {claim.threshold!r}"
        wrong = _violating(claim)
        assert claim.check({**summary, claim.key: wrong}) == (wrong, False)
        assert claim.check({k: v for k, v in summary.items() if k != claim.key}) == (None, False)
        assert claim.check({**summary, claim.key: math.nan})[1] is False
        at = claim.check({**summary, claim.key: claim.threshold})[1]  # the threshold itself
        assert at == (claim.op in ("<=", ">=", "==")), claim
    if preset.sweep or not preset.claims:
        return
    # through the report: the same verdicts, and every claim fails on a deliberately wrong summary
    from wgf_cli import report

    (row,) = report.collect(folder)
    assert [(c["key"], c["passed"]) for c in row["claims"]] == [(c.key, verdicts[c.key, c.op]) for c in preset.claims]
    bad = tmp_path / folder.name
    shutil.copytree(folder, bad)
    for i, claim in enumerate(preset.claims):  # one claim wrong at a time (two may share a key)
        (bad / "summary.json").write_text(json.dumps({**summary, claim.key: _violating(claim)}))
        (row,) = report.collect(bad)
        assert row["claims"][i]["key"] == claim.key and row["claims"][i]["passed"] is False
