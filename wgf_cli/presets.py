"""Experiment presets and the claims ``make reproduce`` checks on them.

Each experiment module lists its presets (``conf/experiment/<name>.yaml``) in ``PRESETS``:
what the run shows, the summary keys the report quotes, and the claims -- a measured
summary value, a comparison, a threshold and the reference it stands for.  The report
prints every claim with pass/fail, and ``make reproduce`` exits non-zero when one fails.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq}


@dataclass(frozen=True)
class Claim:
    """``summary[key] <op> threshold``, e.g. ``Claim("l1_error_final", "<=", 0.02, "L1 vs exact")``."""

    key: str
    op: str
    threshold: Any
    text: str

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"claim op {self.op!r} not in {sorted(_OPS)}")

    def check(self, summary: dict[str, Any]) -> tuple[Any, bool]:
        """The measured value and whether the claim holds (a missing or NaN value fails)."""
        value = summary.get(self.key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return value, False
        try:
            return value, bool(_OPS[self.op](value, self.threshold))
        except TypeError:
            return value, False


@dataclass(frozen=True)
class Preset:
    """A ``conf/experiment/<name>.yaml`` preset of one subcommand, as the report shows it.

    The preset file itself is the *quick* profile (all presets together: about 30 min on a
    2-core CPU); ``full`` holds the overrides of the paper-scale version for a GPU box.
    """

    name: str
    what: str
    keys: list[str]
    claims: list[Claim] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)  # plots/<file> shown in the report (all if empty)
    toy: list[str] = field(default_factory=list)  # overrides that run it in seconds (tests/test_presets.py)
    full: list[str] = field(default_factory=list)  # overrides for the paper-scale run (profile=full)
    #: config key -> name of another preset whose run folder it reads (e.g. a dataset build);
    #: ``make reproduce`` runs that preset first and passes ``key=<its run folder>``
    needs: dict[str, str] = field(default_factory=dict)
    #: sweep overrides (``key=a,b,c``): the preset is a sweep, run in one process, one job
    #: folder each; ``aggregate(jobs, folder)`` turns the jobs' ``{"overrides": [...], **summary}``
    #: into the sweep's own ``summary.json`` (fitted rates, ...; it may save ``folder/plots/``),
    #: which the claims check
    sweep: list[str] = field(default_factory=list)
    aggregate: Callable[[list[dict[str, Any]], Any], dict[str, Any]] | None = None
