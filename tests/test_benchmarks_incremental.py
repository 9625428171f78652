"""The incremental-detection benchmark (benchmarks/incremental.py) on small inputs: it times what it
says, scores F1 right and judges its targets."""

from __future__ import annotations

from types import ModuleType

BENCHMARK = "incremental"  # the module the shared ``bench`` fixture (tests/conftest.py) imports


def test_speed_of_one_append(bench: ModuleType) -> None:
    speed = bench.measure_speed(3_000, repeats=2)
    assert speed.length == 3_000
    assert 0 < speed.append_ms < speed.full_ms
    assert speed.again_ms < speed.append_ms


def test_f1_scoring(bench: ModuleType) -> None:
    assert bench.f1([[100]], [[104]]) == 1.0
    assert bench.f1([[100]], [[106]]) == 0.0  # beyond 5 commits
    assert bench.f1([[100, 102]], [[101]]) == 2 / 3  # a second detection of one change is a false positive
    assert bench.f1([[]], [[]]) == 1.0
    assert bench.f1([[50], []], [[50], [80]]) == 2 / 3


def test_quality_rows_and_report(bench: ModuleType) -> None:
    corpus = bench.quality_corpus(3)
    assert [t for _, t in corpus] == [t for _, t in bench.quality_corpus(3)]  # seeded
    quality = bench.measure_quality(3)
    assert quality.detections == 3 * (bench.QUALITY_N - bench.QUALITY_FROM + 1)
    assert 0 <= quality.same <= quality.detections
    speeds = [bench.Speed(10_000, 10.0, 0.5, 0.01), bench.Speed(1_000, 1.0, 0.5, 0.01)]
    rows = bench.rows(speeds, quality)
    assert [r.met for r in rows[:2]] == [True, None]  # the target is on the longest series only
    assert rows[2].met is (quality.f1_incremental >= quality.f1_full - bench.F1_SLACK)
    slow = bench.rows([bench.Speed(10_000, 10.0, 2.0, 0.01)], quality)
    assert slow[0].met is False
    section = bench.report(speeds, quality, "python -m benchmarks.incremental --write")
    assert section.startswith(bench.HEADING)
    assert section.count(bench.START) == section.count(bench.END) == 1
