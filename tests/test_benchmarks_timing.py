"""The timing benchmark (benchmarks/timing.py): a tiny comparison end to end, and its row/target logic."""

from __future__ import annotations

import math
import time
from types import ModuleType

import pytest
import torch

pytestmark = pytest.mark.integration

BENCHMARK = "timing"  # the module the shared ``bench`` fixture (tests/conftest.py) imports


def _comparison(bench: ModuleType, **changes: object) -> object:
    values: dict[str, object] = {
        "device": "cpu",
        "key": "small_matmul",
        "label": "matmul 160x160",
        "reference": "Timer",
        "ours_median": 1.02e-4,
        "ours_iqr": 0.06e-4,
        "ref_median": 1.0e-4,
        "ref_iqr": 0.05e-4,
        "ours_n": 100,
        "ref_n": 10,
        "ours_seconds": 0.01,
        "ref_seconds": 0.01,
    }
    values.update(changes)
    return bench.Comparison(**values)


def test_a_tiny_comparison_end_to_end(bench: ModuleType) -> None:
    a = torch.ones(16, 16)
    tiny = bench.Workload("tiny", "matmul 16x16", lambda: a @ a)
    threads = torch.get_num_threads()
    # Few, very short rounds: NoisyTimingWarning is likely and must be counted, not raised.
    result = bench.measure(rounds=2, seconds=0.01, cpu_workloads=[tiny], with_overhead=False)
    assert torch.get_num_threads() == threads  # restored
    (c,) = result.cpu
    assert c.device == "cpu"
    assert c.reference == "Timer"
    for value in (c.ours_median, c.ref_median, c.ours_seconds, c.ref_seconds):
        assert value > 0
    assert c.ours_iqr >= 0
    assert c.ref_iqr >= 0
    assert c.ours_n >= 2 * 10  # repeat=10 per round at least
    assert c.ref_n >= 2
    assert c.agreement == c.ours_median / c.ref_median
    assert len(c.round_ratios) == 2
    assert all(r > 0 for r in c.round_ratios)
    assert len(c.block_sizes) == 2
    assert c.ours_blocked_spread is not None
    assert c.ours_blocked_median is not None
    assert c.ours_blocked_median > 0
    assert 0 <= c.noisy_warnings <= 2
    assert c.gc_runs >= 0

    rows = result.rows()
    names = [r.case for r in rows]
    assert c.in_blocks  # a 16x16 matmul is far below Timer's block threshold
    assert names[:3] == [
        "CPU matmul 16x16: median, record.time / Timer" + bench.BLOCKED,
        "CPU matmul 16x16: per-call median, record.time / Timer's block median",
        "CPU matmul 16x16: spread (IQR/median)",
    ]
    assert rows[0].value == c.like_for_like == c.ours_blocked_median / c.ref_median
    assert rows[0].met == (abs(c.like_for_like - 1) <= 0.05)
    assert rows[1].value == c.agreement
    assert rows[1].met is None  # the per-call ratio has no target
    cuda_rows = [r for r in rows if r.case.startswith("CUDA ")]
    if torch.cuda.is_available():
        assert result.cuda is not None
        assert all(r.met is not None for r in cuda_rows)
    else:
        assert result.cuda is None
        assert len(cuda_rows) == 2 * len(bench.cuda_labels_without_gpu()) == 6
        for row in cuda_rows:
            assert row.shown == "not measured: no GPU"
            assert row.met is None
            assert math.isfinite(row.value)  # every row is recorded into mltest's store

    section = bench.report(result, "python -m benchmarks.timing --write")
    assert section.startswith(bench.HEADING)
    assert section.count(bench.START) == section.count(bench.END) == 1
    assert "matmul 16x16" in section


def test_rows_and_targets_on_given_numbers(bench: ModuleType) -> None:
    c = _comparison(bench)
    agreement, spread = bench.comparison_rows(c)
    assert agreement.value == pytest.approx(1.02)
    assert agreement.ratio == "1.020"
    assert agreement.met is True
    assert agreement.metric_name == "cpu_small_matmul_agreement"
    assert agreement.shown == "102 µs"
    assert agreement.comparison == "Timer 100 µs"
    assert spread.value == pytest.approx(0.0588, abs=1e-4)
    assert spread.shown == "5.9%"
    assert spread.comparison == "Timer 5.0%"
    assert spread.ratio == "1.18x"
    assert spread.met is True
    assert spread.higher_is_better is False
    assert spread.metric_name == "cpu_small_matmul_spread"

    slow, noisy = bench.comparison_rows(_comparison(bench, ours_median=1.06e-4, ours_iqr=0.08e-4))
    assert slow.met is False  # 6 % off
    assert noisy.met is False  # 7.5 % against 5 %: 1.51x

    assert bench.agreement_met(0.95)
    assert bench.agreement_met(1.05)
    assert not bench.agreement_met(0.949)
    assert bench.spread_met(0.15, 0.1)
    assert not bench.spread_met(0.151, 0.1)

    # Timer's samples are block means: the target compares record.time's calls in the same blocks.
    skewed = _comparison(
        bench, ours_median=0.94e-4, ours_blocked_median=1.01e-4, ours_blocked_spread=0.05, block_sizes=(10, 100)
    )
    same, per_call, _spread = bench.comparison_rows(skewed)
    assert same.case == "CPU matmul 160x160: median, record.time / Timer" + bench.BLOCKED
    assert same.value == pytest.approx(1.01)
    assert same.shown == "101 µs"
    assert same.met is True
    assert same.metric_name == "cpu_small_matmul_agreement"
    assert per_call.value == pytest.approx(0.94)
    assert per_call.met is None
    assert per_call.target == ""
    assert per_call.metric_name == "cpu_small_matmul_per_call_agreement"
    far = bench.comparison_rows(_comparison(bench, ours_median=1.0e-4, ours_blocked_median=1.07e-4, block_sizes=(10,)))
    assert far[0].met is False  # 7 % off in the same statistic fails, whatever the per-call ratio
    # Blocks of one call are single calls: one statistic, one row, no per-call duplicate.
    single = bench.comparison_rows(_comparison(bench, ours_blocked_median=1.0e-4, block_sizes=(1, 1)))
    assert len(single) == 2
    assert single[0].case == "CPU matmul 160x160: median, record.time / Timer"
    assert single[0].value == pytest.approx(1.02)

    cuda = bench.comparison_rows(_comparison(bench, device="cuda", reference="CUDA events by hand"))
    assert len(cuda) == 2  # CUDA events time single calls: one statistic, no per-call row
    assert cuda[0].case == "CUDA matmul 160x160: median, record.time / CUDA events by hand"
    assert cuda[0].metric_name == "cuda_small_matmul_agreement"


def test_not_measured_rows(bench: ModuleType) -> None:
    rows = bench.not_measured_rows("cuda", ["matmul 160x160"], "CUDA events by hand")
    assert [r.case for r in rows] == [
        "CUDA matmul 160x160: median, record.time / CUDA events by hand",
        "CUDA matmul 160x160: spread (IQR/median)",
    ]
    assert all(r.shown == "not measured: no GPU" and r.met is None and r.value == 0.0 for r in rows)
    assert {r.metric_name for r in rows} == {"cuda_measured"}


def test_statistics_helpers(bench: ModuleType) -> None:
    assert bench.quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, 2.0)
    assert bench.quartiles([2.0]) == (2.0, 0.0)
    assert bench.block_means([1.0, 3.0, 5.0, 7.0, 100.0], 2) == [2.0, 6.0]
    assert bench.duration(0.0235) == "23.5 ms"
    assert bench.duration(4.5e-8) == "45 ns"


def test_noisy_timing_warnings_are_counted_not_raised(bench: ModuleType) -> None:
    calls = 0

    def bimodal() -> None:  # every other call 1 ms slower: IQR/median far above 0.1
        nonlocal calls
        calls += 1
        if calls % 2:
            time.sleep(0.001)

    c = bench.compare(bench.Workload("bimodal", "bimodal", bimodal), "cpu", rounds=1, seconds=0.01)
    assert c.noisy_warnings == 1
    assert c.ours_spread > 0.1
