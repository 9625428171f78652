"""The detection benchmark's corpora and scoring (benchmarks/detection.py), without Otava."""

from __future__ import annotations

import importlib
import itertools
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytestmark = pytest.mark.integration

BENCHMARK = "detection"  # the module the shared ``bench`` fixture (tests/conftest.py) imports


def _spec(bench: ModuleType, key: str) -> object:
    return next(s for s in bench.SPECS if s.key == key)


def test_match_counts_detections_within_the_tolerance_only(bench: ModuleType) -> None:
    assert bench.match([105], [100]) == bench.Score(1, 0, 0)
    assert bench.match([95], [100]) == bench.Score(1, 0, 0)
    assert bench.match([106], [100]) == bench.Score(0, 1, 1)
    assert bench.match([], [50, 100]) == bench.Score(0, 0, 2)
    assert bench.match([50], []) == bench.Score(0, 1, 0)


def test_a_second_detection_of_the_same_change_is_a_false_positive(bench: ModuleType) -> None:
    assert bench.match([100, 100], [100]) == bench.Score(1, 1, 0)
    assert bench.match([99, 102], [100]) == bench.Score(1, 1, 0)


def test_matching_is_one_to_one_and_closest_first(bench: ModuleType) -> None:
    # 104 is closest to 103 and takes it; 100 is left over although it lies within 5 of 103.
    assert bench.match([100, 104], [103]) == bench.Score(1, 1, 0)
    # One detection between two true change points serves only the nearer one.
    assert bench.match([100], [96, 101]) == bench.Score(1, 0, 1)
    # Greedy by distance: 30->31 (1) first, then 26->25 (1); both matched.
    assert bench.match([26, 30], [25, 31]) == bench.Score(2, 0, 0)


def test_pooled_f1(bench: ModuleType) -> None:
    score = bench.f1_score([[10, 50], [], [100]], [[10], [60], [100]])
    assert score == bench.Score(2, 1, 1)
    assert score.precision == pytest.approx(2 / 3)
    assert score.recall == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(2 / 3)
    assert bench.Score().f1 == 1.0


def test_alert_and_located_shares(bench: ModuleType) -> None:
    assert bench.alert_share([[], [3], [], []]) == 0.25
    assert bench.located_share([[100], [106], [10, 96], []], [[100], [100], [100], [100]]) == 0.5


@pytest.mark.parametrize("kind", ["gaussian", "lognormal", "ar1", "t3", "outliers"])
def test_noise_is_standardised(bench: ModuleType, kind: str) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([bench.noise(kind, rng, 200) for _ in range(500)])
    assert abs(x.mean()) < 0.05
    expected_sd = np.sqrt(1 + 0.02 * 64) if kind == "outliers" else 1.0  # 2% of points moved by 8 sd
    assert x.std() == pytest.approx(expected_sd, rel=0.05)


def test_ar1_noise_has_the_stated_correlation(bench: ModuleType) -> None:
    rng = np.random.default_rng(1)
    lag1 = [np.corrcoef(x[:-1], x[1:])[0, 1] for x in (bench.noise("ar1", rng, 200) for _ in range(300))]
    assert np.mean(lag1) == pytest.approx(0.5, abs=0.03)


def test_outliers_are_isolated_and_keep_off_change_points(bench: ModuleType) -> None:
    rng = np.random.default_rng(2)
    for _ in range(200):
        where = bench.outlier_positions(rng, 200, 4, protect=[50, 100])
        assert len(where) == 4
        assert np.all(np.diff(where) >= 2)
        assert not {49, 50, 99, 100} & set(where)


def test_corpora_follow_their_definitions(bench: ModuleType) -> None:
    for spec in bench.SPECS:
        corpus = bench.generate(spec, 12)
        assert corpus.series.shape == (12, bench.N_POINTS)
        for truth in corpus.truth:
            if spec.family == "noise":
                assert truth == []
            elif spec.family == "power":
                assert len(truth) == 1
                assert 50 <= truth[0] <= 150
            else:
                assert 1 <= len(truth) <= 4
                assert truth[0] >= 25
                assert truth[-1] <= 175
                assert np.all(np.diff(truth) >= 25)


def test_step_corpus_levels_move_by_the_drawn_sizes(bench: ModuleType) -> None:
    corpus = bench.generate(_spec(bench, "steps-gaussian"), 40)
    for x, truth in zip(corpus.series, corpus.truth, strict=True):
        edges = [0, *truth, len(x)]
        means = [x[a:b].mean() for a, b in itertools.pairwise(edges)]
        for jump in np.abs(np.diff(means)):
            assert min(abs(jump - size) for size in (2, 3, 4)) < 1.0


def test_corpora_are_reproducible_and_a_smaller_run_is_a_prefix(bench: ModuleType) -> None:
    spec = _spec(bench, "steps-outliers")
    small, large = bench.generate(spec, 5), bench.generate(spec, 20)
    np.testing.assert_array_equal(small.series, large.series[:5])
    assert small.truth == large.truth[:5]


def test_mltest_scores_a_few_series_end_to_end(bench: ModuleType) -> None:
    corpus = bench.generate(_spec(bench, "steps-gaussian"), 10)
    run = bench.run_mltest(corpus.series)
    assert len(run.indices) == 10
    assert run.seconds > 0
    assert bench.f1_score(run.indices, corpus.truth).f1 > 0.8
    # The oracle split finds a 2 sd step almost always.
    assert bench.oracle_located(bench.generate(_spec(bench, "power-gaussian-2"), 20)) >= 0.8


def test_section_is_appended_then_replaced_in_place(bench: ModuleType, tmp_path: Path) -> None:
    target = tmp_path / "BENCHMARKS.md"
    first = f"{bench.HEADING}\n\n{bench.START}\nold numbers\n{bench.END}\n"
    sys.modules["benchmarks._common"].write_section(first, bench.START, bench.END, target)
    text = target.read_text(encoding="utf-8")
    assert text.startswith(sys.modules["benchmarks._common"].INTRO)
    assert text.count(bench.HEADING) == 1
    target.write_text(text + "\n## Another section\n\nkept\n", encoding="utf-8")
    sys.modules["benchmarks._common"].write_section(
        first.replace("old numbers", "new numbers"), bench.START, bench.END, target
    )
    text = target.read_text(encoding="utf-8")
    assert "new numbers" in text
    assert "old numbers" not in text
    assert text.count(bench.HEADING) == 1
    assert text.endswith("## Another section\n\nkept\n")


def test_every_series_of_the_full_corpora_is_detected_without_error_or_warning(bench: ModuleType) -> None:
    """Regression: a steps-gaussian series (seed 301, number 232) once made two refined change points
    meet at one index (an empty segment: a crash in the middle of the benchmark)."""
    import warnings

    from mltest.detect import change_points

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for spec in bench.SPECS:
            corpus = bench.generate(spec, bench.SERIES_FULL)
            for series in corpus.series:
                points = change_points(series)
                indices = [cp.index for cp in points]
                assert indices == sorted(set(indices))
                assert all(0 < i < len(series) for i in indices)


def test_only_replaces_its_own_rows_of_the_summary(bench: ModuleType, tmp_path: Path) -> None:
    """`python -m benchmarks --only NAME --write`: the other benchmarks' rows keep their numbers."""
    main = importlib.import_module("benchmarks.__main__")
    common = sys.modules["benchmarks._common"]

    def row(benchmark: str, case: str, shown: str, met: bool | None) -> object:
        return common.Row(benchmark, case, 1.0, "s", shown, "", "", "t" if met is not None else "", met)

    full = main.summary_section(
        [
            row("harness", "overhead", "+44%", False),
            row("detector", "speed", "3.9x", False),
            row("demo", "time", "79 s", True),
        ],
        "python -m benchmarks --write",
        60.0,
    )
    partial = main.merged_section(
        full, [row("detector", "speed", "12x", True), row("detector", "F1", "0.99", True)], "cmd"
    )
    assert "| harness | overhead | +44% |" in partial
    assert "| demo | time | 79 s |" in partial
    assert "3.9x" not in partial
    table = [line for line in partial.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split("|")[1].strip() for line in table] == ["harness", "detector", "detector", "demo"]
    assert "3 of 4 targets met; missed: harness: overhead." in partial
    assert "`python -m benchmarks --write` on" in partial
    assert "Rows of detector since: `cmd`" in partial
    # A later partial run names only what it replaced; earlier lines keep only the rest, once each.
    later = main.merged_section(
        partial, [row("detector", "speed", "14x", True), row("demo", "time", "75 s", True)], "cmd2"
    )
    stamps = [line for line in later.splitlines() if line.startswith(("`", "Rows of "))]
    assert stamps == ["`python -m benchmarks --write` on " + stamps[0].split(" on ", 1)[1], stamps[1]]
    assert stamps[1].startswith("Rows of demo, detector since: `cmd2`")
    mixed = main.merged_section(later, [row("demo", "time", "70 s", True)], "cmd3")
    assert [line.split(" since: ")[0] for line in mixed.splitlines() if line.startswith("Rows of ")] == [
        "Rows of detector",
        "Rows of demo",
    ]


def test_a_failing_benchmark_is_a_missed_row_and_the_others_stand(bench: ModuleType, tmp_path: Path) -> None:
    main = importlib.import_module("benchmarks.__main__")
    outcome = main.failed_outcome("docker", RuntimeError("step 16 'case \"$V\" in cpu|cuda' failed\nsecond line"))
    (row,) = outcome.rows
    assert row.met is False
    assert row.shown == "failed: step 16 'case \"$V\" in cpu\\|cuda' failed"  # one line; the pipe escaped
    assert outcome.section is None
    table = main.summary_section(outcome.rows, "cmd", 1.0)
    assert "| docker | the benchmark failed | failed: step 16" in table
    body = [line for line in table.splitlines() if line.startswith("| docker")]
    assert len(body[0].replace("\\|", "").split("|")) == 9  # 7 cells between 8 pipes
