"""Findings from series (pure, no store): classification, ranges, grouping, compare and the bisect strategy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mltest.detect import (
    BisectSearch,
    Tolerance,
    binomial_noise,
    commits_between,
    compare_values,
    find_shifts,
    group_findings,
)
from mltest.detect.stats import student_t_sf, welch_t_test
from mltest.errors import DetectionError
from mltest.model import MetricSpec, Series, SeriesPoint


def sha(i: int) -> str:
    return f"{i:040x}"


def series(values: list[float], *, fingerprints: list[str] | None = None, support: int | None = None) -> Series:
    points = tuple(
        SeriesPoint(sha(i), v, support=support, fingerprint=(fingerprints[i] if fingerprints else "A100 x1"))
        for i, v in enumerate(values)
    )
    return Series("tests/test_t.py::test_speed", "step_time", "A100 x1", points, unit="s")


LINKS = {sha(i): sha(i - 1) for i in range(1, 400)}


def noisy(level: list[float], sd: float, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in np.asarray(level) + rng.normal(0, sd, len(level))]


def test_a_jump_beyond_tolerance_is_a_regression_naming_the_commit() -> None:
    values = noisy([1.0] * 40 + [1.3] * 20, 0.01)
    (f,) = find_shifts(series(values), tolerance=Tolerance(0.05), higher_is_better=False, links=LINKS)
    assert f.kind == "regression"
    assert f.status == "open"
    assert f.range.culprit == sha(40)
    assert f.range.good == sha(39)
    assert f.rel_change == pytest.approx(0.3, abs=0.03)


def test_the_same_jump_is_an_improvement_when_higher_is_better() -> None:
    values = noisy([1.0] * 40 + [1.3] * 20, 0.01)
    (f,) = find_shifts(series(values), tolerance=Tolerance(0.05), higher_is_better=True, links=LINKS)
    assert f.kind == "improvement"


def test_a_shift_within_tolerance_is_not_reported() -> None:
    values = noisy([1.0] * 40 + [1.03] * 20, 0.002)
    assert find_shifts(series(values), tolerance=Tolerance(0.05), higher_is_better=False, links=LINKS) == []


def test_a_regression_that_comes_back_is_recovered_with_the_fixing_commit() -> None:
    values = noisy([1.0] * 40 + [1.3] * 20 + [1.0] * 40, 0.01)
    (f,) = find_shifts(series(values), tolerance=Tolerance(0.05), higher_is_better=False, links=LINKS)
    assert f.kind == "regression"
    assert f.status == "recovered"
    assert f.fixed_by is not None
    assert f.fixed_by.culprit == sha(60)


def test_small_steps_that_add_up_are_reported_as_drift() -> None:
    values = noisy([1.0] * 30 + [1.03] * 30 + [1.06] * 30 + [1.09] * 30, 0.002)
    findings = find_shifts(series(values), tolerance=Tolerance(0.05), higher_is_better=False, links=LINKS)
    drift = [f for f in findings if f.kind == "drift"]
    assert len(drift) == 1
    assert drift[0].steps == 2
    assert drift[0].range.good == sha(29)
    assert drift[0].range.bad == sha(60)
    assert len(drift[0].range.commits) == 31


def test_an_environment_change_is_never_a_code_regression() -> None:
    values = noisy([1.0] * 30 + [1.25] * 30, 0.01)
    prints = ["A100 x1, driver 550"] * 30 + ["A100 x1, driver 560"] * 30
    findings = find_shifts(
        series(values, fingerprints=prints), tolerance=Tolerance(0.05), higher_is_better=False, links=LINKS
    )
    assert [f.kind for f in findings] == ["environment"]
    assert "driver 550 -> A100 x1, driver 560" in findings[0].note


def test_levels_near_the_largest_float_do_not_overflow() -> None:
    """Found by the fuzz suite: the new level of an environment change was the mean of two values near
    the largest float, which overflowed (a RuntimeWarning, an error under filterwarnings)."""
    values = [0.0, 9.9792015476736e291, 1.7976931348623157e308]
    s = series(values, fingerprints=["gpu b", "gpu a", "gpu a"])
    (finding,) = find_shifts(s, tolerance=Tolerance(None, None), higher_is_better=False, links=LINKS)
    assert finding.kind == "environment"
    assert finding.after == 9.9792015476736e291 / 2 + 1.7976931348623157e308 / 2
    assert math.isfinite(finding.after)


def test_an_absolute_tolerance_and_the_binomial_floor_govern_accuracy() -> None:
    # Deterministic accuracy: moves of 0.0004 are within the binomial error of 10 000 examples.
    values = [0.9012] * 30 + [0.9008] * 30
    s = Series("t", "accuracy", "k", tuple(SeriesPoint(sha(i), v, support=10_000) for i, v in enumerate(values)))
    assert find_shifts(s, tolerance=Tolerance(None, 0.0001), higher_is_better=True, links=LINKS) == []
    values = [0.9012] * 30 + [0.8812] * 30
    s = Series("t", "accuracy", "k", tuple(SeriesPoint(sha(i), v, support=10_000) for i, v in enumerate(values)))
    (f,) = find_shifts(s, tolerance=Tolerance(None, 0.005), higher_is_better=True, links=LINKS)
    assert f.kind == "regression"


def test_binomial_noise_scales_percent_and_skips_unknown_support() -> None:
    points = [SeriesPoint("a", 90.0, support=100), SeriesPoint("b", 0.5)]
    noise = binomial_noise(points, "%")
    assert noise is not None
    assert noise[0] == pytest.approx(100 * math.sqrt(0.9 * 0.1 / 100))
    assert math.isnan(noise[1])
    assert binomial_noise([SeriesPoint("a", 0.9)]) is None


def test_tolerance_needs_every_bound_given() -> None:
    both = Tolerance(0.05, 0.01)
    assert both.exceeded(1.0, 1.06)
    assert not both.exceeded(0.1, 0.108)
    assert not both.exceeded(1.0, 1.02)
    assert Tolerance.of(MetricSpec("m", tolerance_abs=0.5)) == Tolerance(None, 0.5)
    assert Tolerance.of(None) == Tolerance(0.05, None)
    assert Tolerance(0.05).exceeded(0.0, 0.1)
    assert not Tolerance(0.05).exceeded(0.0, 0.0)


def test_commits_between_walks_first_parents_and_gives_up_honestly() -> None:
    assert commits_between(LINKS, sha(3), sha(6)) == (sha(4), sha(5), sha(6))
    assert commits_between(LINKS, sha(6), sha(3)) == ()  # good is not an ancestor
    assert commits_between({}, sha(3), sha(6)) == ()
    assert commits_between(LINKS, None, sha(6)) == ()


def test_one_regression_entry_per_culprit_range_listing_every_metric() -> None:
    values = noisy([1.0] * 40 + [1.3] * 20, 0.01)
    a = find_shifts(series(values), tolerance=Tolerance(0.05), higher_is_better=False, links=LINKS)
    other = Series("tests/test_t.py::test_other", "latency", "A100 x1", series(values).points, unit="s")
    b = find_shifts(other, tolerance=Tolerance(0.05), higher_is_better=False, links=LINKS)
    (entry,) = group_findings(a + b)
    assert entry.is_new
    assert len(entry.findings) == 2
    assert entry.range.culprit == sha(40)
    acked = group_findings(a + b, {entry.id: "expected"})
    assert acked[0].acknowledged == "expected"
    assert not acked[0].is_new
    # Acknowledging every finding of an entry acknowledges the entry.
    by_finding = group_findings(a + b, {f.id: "known" for f in a + b})
    assert not by_finding[0].is_new


def test_ids_are_stable_across_calls() -> None:
    values = noisy([1.0] * 40 + [1.3] * 20, 0.01)
    first = group_findings(find_shifts(series(values), tolerance=Tolerance(0.05), higher_is_better=False))
    second = group_findings(find_shifts(series(values), tolerance=Tolerance(0.05), higher_is_better=False))
    assert [r.id for r in first] == [r.id for r in second]
    assert first[0].id.startswith("r-")
    assert first[0].findings[0].id.startswith("f-")


def test_compare_flags_a_run_outside_the_baseline_and_needs_a_baseline() -> None:
    baseline = noisy([1.0] * 12, 0.01, seed=3)
    worse = compare_values("t", "step_time", baseline, 1.3, tolerance=Tolerance(0.05), higher_is_better=False)
    assert worse.verdict == "regression"
    assert worse.p_value < 0.01
    assert worse.rel_change == pytest.approx(0.3, 0.05)
    same = compare_values("t", "step_time", baseline, 1.005, tolerance=Tolerance(0.05), higher_is_better=False)
    assert same.verdict == "unchanged"
    small = compare_values("t", "step_time", baseline, 1.03, tolerance=Tolerance(0.05), higher_is_better=False)
    assert small.verdict == "unchanged"  # significant, but within tolerance
    better = compare_values("t", "step_time", baseline, 0.7, tolerance=Tolerance(0.05), higher_is_better=False)
    assert better.verdict == "improvement"
    none = compare_values("t", "step_time", [1.0, 1.1], 2.0, tolerance=Tolerance(0.05), higher_is_better=False)
    assert none.verdict == "no baseline"
    assert math.isnan(none.p_value)


def test_compare_uses_the_binomial_floor_for_deterministic_baselines() -> None:
    floor = math.sqrt(0.9 * 0.1 / 1000)
    kwargs = {"tolerance": Tolerance(None, 0.0001), "higher_is_better": True}
    assert compare_values("t", "acc", [0.9] * 10, 0.899, noise=floor, **kwargs).verdict == "unchanged"  # type: ignore[arg-type]
    assert compare_values("t", "acc", [0.9] * 10, 0.899, **kwargs).verdict == "regression"  # type: ignore[arg-type]


def test_bisect_finds_the_first_bad_commit_in_log2_probes() -> None:
    commits = [sha(i) for i in range(17)]  # good, 16 commits, the last one bad
    planted = 11
    rng = np.random.default_rng(1)

    def measure(i: int) -> list[float]:
        return list((1.3 if i >= planted else 1.0) + rng.normal(0, 0.01, 5))

    search = BisectSearch(commits, measure(0), measure(16))
    assert search.separated
    probes = 0
    while (nxt := search.next_commit()) is not None:
        search.record(nxt, measure(commits.index(nxt)))
        probes += 1
    assert search.first_bad == sha(planted)
    assert search.last_good == sha(planted - 1)
    assert probes <= BisectSearch.max_probes(len(commits)) == 4


def test_bisect_says_unclear_between_the_levels_and_refuses_bad_input() -> None:
    search = BisectSearch(["a", "b", "c"], [1.0, 1.01, 0.99], [2.0, 2.01, 1.99])
    assert search.record("b", [1.5, 1.6, 1.4, 1.55]).verdict == "unclear"
    assert search.remaining == 2
    assert search.suspects == ("b", "c")
    flat = BisectSearch(["a", "b"], [1.0, 1.1, 0.9], [1.0, 1.05, 0.95])
    assert not flat.separated
    with pytest.raises(DetectionError, match="not in the range"):
        search.record("zzz", [1.0, 1.0])
    with pytest.raises(DetectionError, match="two measurements"):
        BisectSearch(["a", "b"], [1.0], [2.0, 2.0])
    with pytest.raises(DetectionError, match="at least two commits"):
        BisectSearch(["a"], [1.0, 1.0], [2.0, 2.0])


def test_student_t_and_welch_match_reference_values() -> None:
    # Reference values from the t distribution tables (two-sided).
    assert student_t_sf(2.0, 10) == pytest.approx(0.07339, abs=1e-4)
    assert student_t_sf(1.0, 1) == pytest.approx(0.5, abs=1e-9)
    assert student_t_sf(2.576, 1e6) == pytest.approx(0.01, abs=1e-4)
    assert student_t_sf(math.inf, 5) == 0.0
    assert math.isnan(student_t_sf(1.0, 0))
    assert welch_t_test([1, 2, 3, 4], [2, 3, 4, 5, 6]) == pytest.approx(0.1613, abs=1e-3)
    assert math.isnan(welch_t_test([1], [1, 2]))
    assert welch_t_test([1, 1], [1, 1]) == 1.0
