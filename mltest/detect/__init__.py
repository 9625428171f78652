"""Regression detection: pure functions over plain sequences, returning dataclasses. No I/O, no store."""

from __future__ import annotations

from mltest.detect.bisect import BisectSearch, Probe
from mltest.detect.changepoint import ChangePointMethod, RankScan, change_points
from mltest.detect.compare import Comparison, compare_values
from mltest.detect.regressions import (
    DEFAULT_TOLERANCE,
    Tolerance,
    binomial_noise,
    commits_between,
    find_shifts,
    group_findings,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "BisectSearch",
    "ChangePointMethod",
    "Comparison",
    "Probe",
    "RankScan",
    "Tolerance",
    "binomial_noise",
    "change_points",
    "commits_between",
    "compare_values",
    "find_shifts",
    "group_findings",
]
