"""One run against its baseline: the recent runs of the baseline branch in the same environment.

The question a PR asks is "is this run's value one the baseline could have produced?". The baseline's
run-to-run spread is the noise; the test is a prediction interval: ``t = (new - mean) / (s sqrt(1 + 1/n))``
with ``n - 1`` degrees of freedom. Where the metric is an accuracy on ``N`` examples, its binomial error
is a floor under ``s`` (a deterministic baseline does not make every 0.01 % difference significant). A
verdict of regression or improvement needs both significance and a shift beyond the tolerance.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mltest.detect.regressions import Tolerance
from mltest.detect.stats import student_t_sf
from mltest.model import relative_change

__all__ = ["MIN_BASELINE", "Comparison", "Verdict", "compare_values"]

Verdict = Literal["regression", "improvement", "changed", "unchanged", "no baseline"]
"""``changed``: a significant shift beyond tolerance in a metric whose better direction is unknown."""
MIN_BASELINE = 3
"""Baseline runs needed for a verdict: fewer say nothing about noise."""


@dataclass(frozen=True)
class Comparison:
    """Old (baseline median), new, delta and verdict for one metric."""

    test: str
    metric: str
    old: float
    new: float
    p_value: float
    verdict: Verdict
    baseline_runs: int
    unit: str | None = None
    higher_is_better: bool | None = None

    @property
    def delta(self) -> float:
        return self.new - self.old

    @property
    def rel_change(self) -> float:
        return relative_change(self.old, self.new)


SAFE_MAGNITUDE = 2.0**500
"""Larger magnitudes are scaled down by a power of two before the statistics."""


def _overflow_shift(values: Sequence[float]) -> int:
    biggest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return max(math.frexp(biggest)[1] - math.frexp(SAFE_MAGNITUDE)[1], 0) if biggest > SAFE_MAGNITUDE else 0


def compare_values(
    test: str,
    metric: str,
    baseline: Sequence[float],
    new: float,
    *,
    tolerance: Tolerance,
    higher_is_better: bool | None,
    alpha: float = 0.01,
    noise: float | None = None,
    unit: str | None = None,
) -> Comparison:
    """Compare ``new`` with the ``baseline`` values (one per baseline run). ``noise`` is a known
    standard error of ``new`` (the binomial error of an accuracy), used as a floor for the spread."""
    values = [v for v in baseline if math.isfinite(v)]

    def result(old: float, p: float, verdict: Verdict) -> Comparison:
        return Comparison(test, metric, old, new, p, verdict, len(values), unit, higher_is_better)

    # Near the largest double, sums and squares overflow: the statistics run on the values scaled by a
    # power of two (exact), which changes neither the t statistic nor the median (scaled back).
    shift = _overflow_shift([*values, new, noise if noise is not None else 0.0])
    scaled = [math.ldexp(v, -shift) for v in values]
    new_scaled = math.ldexp(new, -shift)
    if len(values) < MIN_BASELINE:
        return result(math.ldexp(statistics.median(scaled), shift) if values else math.nan, math.nan, "no baseline")
    n = len(values)
    mean = statistics.fmean(scaled)
    spread = statistics.stdev(scaled)
    if noise is not None and math.isfinite(noise):
        spread = max(spread, math.ldexp(noise, -shift) * math.sqrt(2))
    old = math.ldexp(statistics.median(scaled), shift)
    if spread == 0:
        p = 1.0 if new_scaled == mean else 0.0
    else:
        p = student_t_sf((new_scaled - mean) / (spread * math.sqrt(1 + 1 / n)), n - 1)
    verdict: Verdict = "unchanged"
    if p < alpha and tolerance.exceeded(old, new):
        if higher_is_better is None:
            verdict = "changed"
        else:
            worse = new < old if higher_is_better else new > old
            verdict = "regression" if worse else "improvement"
    return result(old, p, verdict)
