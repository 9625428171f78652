"""The report benchmark (benchmarks/reports.py): a tiny store measured end to end, the planted steps,
the rows judging each target on given numbers (met and missed), and its section between its markers."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.integration  # a real SQLite store, every report format rendered

BENCHMARK = "reports"  # the module the shared ``bench`` fixture (tests/conftest.py) imports


def _result(bench: ModuleType, *, detect: float, build: float, render: float, html_bytes: int, md_chars: int) -> object:
    timing = bench.Timing(
        detect=detect,
        again=detect / 2,
        build=dict.fromkeys(bench.FORMATS, build),
        render=dict.fromkeys(bench.FORMATS, render),
        inc_detect=detect / 2,
        inc_html=detect / 2 + build + render,
    )
    return bench.Result(
        bench.FULL,
        write_s=1.0,
        timings=[timing],
        sizes={"text": 2_000, "markdown": md_chars, "html": html_bytes, "json": 10 * html_bytes},
        html_bytes=html_bytes,
        md_chars=md_chars,
        md_cut=False,
        entries=6,
        findings=10,
        new=5,
        charted=10,
    )


def test_a_tiny_store_end_to_end(bench: ModuleType) -> None:
    shape = bench.Shape(tests=4, commits=40, repeats=1)
    result = bench.measure(shape, log=lambda _: None)
    assert len(result.timings) == 1
    [t] = result.timings
    assert t.detect > 0
    assert t.inc_html > t.inc_detect > 0
    assert set(t.build) == set(t.render) == set(bench.FORMATS)
    assert all(t.whole(f) > t.detect for f in bench.FORMATS)
    assert set(result.sizes) == set(bench.FORMATS)
    assert all(n > 0 for n in result.sizes.values())
    assert result.html_bytes >= result.sizes["html"]
    assert result.entries >= 1
    assert result.findings >= result.entries
    assert result.charted >= 1
    assert 0 < result.md_chars <= bench.MARKDOWN_LIMIT
    assert not result.md_cut

    rows = bench.rows(result)
    assert len(rows) == 8
    assert all(math.isfinite(r.value) for r in rows)  # every row is recorded into mltest's own store
    assert all(r.benchmark == "reports" and r.metric_name.endswith("_quick") for r in rows)  # not the full size
    assert len({r.metric_name for r in rows}) == len(rows)
    assert "(scaled)" in rows[0].target

    section = bench.report(result, "python -m benchmarks.reports --write")
    assert section.startswith(bench.HEADING)
    assert section.count(bench.START) == section.count(bench.END) == 1
    assert "4 tests x 5 metrics = 20 series" in section


def test_steps_are_planted_on_the_store_benchmarks_workload(bench: ModuleType) -> None:
    from benchmarks.store import Sizes, insert_workload

    shape = bench.Shape(tests=4, commits=20, repeats=1)
    planted = bench.workload(shape)
    plain = insert_workload(Sizes(runs=21, tests=4, history=0), prefix="report", seed=7)
    assert len(planted) == shape.commits + 1  # the last run is the incremental case's new commit

    def value(runs: list[Any], i: int, test: int, metric: str) -> float:
        return next(m.value for m in runs[i].tests[test][1] if m.metric == metric)

    at = int(0.30 * shape.commits)  # step_time x1.15 on every test (0-4, modulo 4)
    assert value(planted, at - 1, 1, "step_time") == value(plain, at - 1, 1, "step_time")
    assert value(planted, at, 1, "step_time") == pytest.approx(1.15 * value(plain, at, 1, "step_time"))
    assert value(planted, 20, 1, "throughput") == value(plain, 20, 1, "throughput")  # no step there
    samples = next(m.samples for m in planted[at].tests[1][1] if m.metric == "step_time")
    assert len(samples) == 10  # the samples move with the value


def test_rows_judge_the_targets_met(bench: ModuleType) -> None:
    rows = bench.rows(_result(bench, detect=2.0, build=0.5, render=0.3, html_bytes=3_000_000, md_chars=6_000))
    by = {r.metric_name: r for r in rows}
    assert by["html_report_s"].value == pytest.approx(2.8)
    assert by["html_report_s"].met is True
    assert by["html_report_s"].target == "≤ 5.00 s"
    assert all(by[f"{f}_after_detection_s"].met is True for f in bench.FORMATS)
    assert by["html_after_detection_s"].ratio == "0.40x detection"
    assert by["html_bytes"].met is True
    assert by["html_bytes"].shown == "3.00 MB"
    assert by["markdown_chars"].met is True
    assert by["html_report_incremental_s"].met is None  # reported, no target
    assert all(r.higher_is_better is False for r in rows)


def test_rows_report_every_miss(bench: ModuleType) -> None:
    rows = bench.rows(_result(bench, detect=3.0, build=2.0, render=1.5, html_bytes=6_000_000, md_chars=70_000))
    by = {r.metric_name: r for r in rows}
    assert by["html_report_s"].value == pytest.approx(6.5)
    assert by["html_report_s"].met is False  # over 5 s
    assert all(by[f"{f}_after_detection_s"].met is False for f in bench.FORMATS)  # 3.5 s > 1x 3.0 s
    assert by["html_bytes"].met is False
    assert by["markdown_chars"].met is False
    section = bench.report(
        _result(bench, detect=3.0, build=2.0, render=1.5, html_bytes=6_000_000, md_chars=70_000), "x"
    )
    assert section.count("**no**") == 7


def test_the_section_sits_between_its_markers(bench: ModuleType, tmp_path: Path) -> None:
    from benchmarks._common import write_section

    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Other\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n", encoding="utf-8")
    first = bench.report(_result(bench, detect=2.0, build=0.5, render=0.3, html_bytes=1, md_chars=1), "first")
    write_section(first, bench.START, bench.END, path)
    second = bench.report(_result(bench, detect=2.0, build=0.5, render=0.3, html_bytes=2, md_chars=2), "second")
    write_section(second, bench.START, bench.END, path)
    text = path.read_text(encoding="utf-8")
    assert text.count(bench.HEADING) == text.count(bench.START) == text.count(bench.END) == 1
    inside = text.split(bench.START, 1)[1].split(bench.END, 1)[0]
    assert "`second`" in inside
    assert "`first`" not in text
    assert "<!-- other:start -->\nkept\n<!-- other:end -->" in text
