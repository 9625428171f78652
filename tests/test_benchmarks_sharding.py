"""The sharding benchmark (benchmarks/sharding.py) on one small case: the same durations go to every
splitter, every test lands in one shard, and the rows judge the 10 % target right."""

from __future__ import annotations

from types import ModuleType

import pytest

pytestmark = pytest.mark.integration  # installs pytest-split into .bench/ on first use (pip)

BENCHMARK = "sharding"  # the module the shared ``bench`` fixture (tests/conftest.py) imports


def test_a_small_case_end_to_end(bench: ModuleType) -> None:
    [result] = bench.measure([bench.Case(60, 4)], seeds=2)
    assert set(result.over) == set(bench.TOOLS)
    assert all(len(v) == 2 for v in result.over.values())
    assert all(x >= -1e-9 for v in result.over.values() for x in v)  # nobody beats the ideal
    assert result.worst("mltest") <= bench.TARGET
    assert result.worst("mltest") <= result.worst("duration_based_chunks") + 1e-9
    durations = bench.suite(0, 60)
    assert sum(result.example["mltest"]) == pytest.approx(sum(durations.values()))
    [row] = bench.rows([result])
    assert row.met is True
    assert row.metric_name == "over_ideal_60_tests_4_shards"
    assert row.higher_is_better is False
    section = bench.report([result], "python -m benchmarks.sharding --write")
    assert section.startswith(bench.HEADING)
    assert section.count(bench.START) == section.count(bench.END) == 1


def test_the_suite_is_seeded_and_heavy_tailed(bench: ModuleType) -> None:
    a, b = bench.suite(3, 300), bench.suite(3, 300)
    assert a == b
    assert len(a) == 300 + len(bench.LONG_TESTS)
    assert max(a.values()) == max(bench.LONG_TESTS)
    ordinary = sorted(v for k, v in a.items() if "long" not in k)
    assert ordinary[-1] > 10 * ordinary[len(ordinary) // 2]  # a long tail
    assert bench.ideal({"a": 10.0, "b": 1.0}, 4) == 10.0  # the longest test bounds every split
    assert bench.ideal({"a": 2.0, "b": 2.0}, 2) == 2.0


def test_a_target_miss_is_reported(bench: ModuleType) -> None:
    result = bench.Result(
        bench.Case(10, 2),
        1,
        {"mltest": [0.2], "least_duration": [0.1], "duration_based_chunks": [0.3]},
        {},
        1.0,
        {},
    )
    [row] = bench.rows([result])
    assert row.met is False
    assert row.shown == "+20.00%"
