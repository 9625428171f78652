"""The store benchmark (benchmarks/store.py) at tiny sizes: its writes really land in SQLite and in
PostgreSQL (counts read back through the API), its read checks hold, and its rows judge targets right."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pgserver
import pytest

from mltest.store import Store, open_store

pytestmark = pytest.mark.integration

BENCHMARK = "store"  # the module the shared ``bench`` fixture (tests/conftest.py) imports


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store: a SQLite file, or a fresh database on the module's PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.db'}"
    else:
        url = request.getfixturevalue("pg_instance").create_database()
    opened = open_store(url)
    try:
        yield opened
    finally:
        opened.close()


def tiny(bench: ModuleType, runs: int = 3, tests: int = 2, history: int = 12) -> Any:
    return bench.Sizes(runs=runs, tests=tests, history=history, depth=4)


def _quiet(message: str) -> None:
    pass


# ----------------------------------------------------------------------------- workloads and writes


def test_workloads_have_the_stated_shape(bench: ModuleType) -> None:
    sizes = tiny(bench, runs=5, tests=3)
    workload = bench.insert_workload(sizes)
    assert len(workload) == 5
    assert {len(w.tests) for w in workload} == {3}
    assert sum(len(m) for w in workload for _, m in w.tests) == sizes.measurements == 5 * 3 * len(bench.METRICS)
    step = next(m for _, ms in workload[0].tests for m in ms if m.metric == "step_time")
    assert len(step.samples) == 10
    assert step.iqr is not None
    assert len({w.run.run_id for w in workload}) == 5
    # A chain: each commit's parent is the previous one; ancestry is bounded by the depth, nearest first.
    commits = [w.run.commit for w in workload]
    assert commits[0].parents == ()
    assert commits[0].ancestry == ()
    assert commits[4].parents == (commits[3].sha,)
    assert commits[4].ancestry == (commits[3].sha, commits[2].sha, commits[1].sha, commits[0].sha)
    history = bench.history_workload(sizes)
    assert len(history) == 12
    assert len(history[-1].run.commit.ancestry) == 4  # depth 4, not the whole chain
    assert {(m.test, m.metric) for w in history for _, ms in w.tests for m in ms} == {
        (bench.READ_TEST, bench.READ_METRIC)
    }


@pytest.mark.parametrize("batched", [False, True])
def test_insert_lands_in_the_store(bench: ModuleType, store: Store, batched: bool) -> None:
    sizes = tiny(bench)
    workload = bench.insert_workload(sizes)
    timing = bench.write_runs(store, workload, batched=batched)
    assert timing.runs == 3
    assert timing.measurements == sizes.measurements == 30
    assert timing.add_calls == (3 if batched else 6)
    assert timing.seconds >= timing.begin_s + timing.add_s + timing.finish_s > 0
    runs = store.runs(limit=100)
    assert sorted(r.run_id for r in runs) == sorted(w.run.run_id for w in workload)
    assert {r.status for r in runs} == {"passed"}
    for writes in workload:
        stored = store.run_measurements(writes.run.run_id)
        assert len(stored) == sizes.tests * len(bench.METRICS)
        expected = {(m.test, m.metric): m for _, ms in writes.tests for m in ms}
        assert {(m.test, m.metric): m for m in stored} == expected
        assert len(store.results(writes.run.run_id)) == sizes.tests
    for kind in bench.METRICS:
        assert bench.stored_count(store, workload[0].tests[0][0].test, kind.name) == 3
    # begin_run turned each commit's ancestry into first-parent links.
    commits = [w.run.commit for w in workload]
    assert store.first_parent_links() == {commits[1].sha: commits[0].sha, commits[2].sha: commits[1].sha}


def test_history_is_read_whole_and_in_order(bench: ModuleType, store: Store) -> None:
    sizes = tiny(bench)
    bench.write_runs(store, bench.insert_workload(sizes))  # other tests in the store: not read
    built = bench.write_runs(store, bench.history_workload(sizes))
    assert built.runs == built.measurements == 12
    read = bench.read_series(store, 12, repeats=2)
    assert read.points == 12
    assert read.links == 2 + 11
    assert read.series_ms > 0
    assert read.load_ms > 0
    if hasattr(store, "_series_query"):  # an SQL store: the floor under the read, its own SQL alone
        assert read.join_ms is not None
        assert read.fetch_ms is not None
        assert read.join_ms > 0
        assert read.fetch_ms > 0
    else:
        assert read.join_ms is None
        assert read.fetch_ms is None
    with pytest.raises(RuntimeError, match="returned 12 rows, expected 13"):
        bench.read_series(store, 13, repeats=1)


def test_profile_counts_statements_and_transactions(bench: ModuleType, tmp_path: Path) -> None:
    sqlite = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    try:
        profile = bench.profile_runs(sqlite, bench.insert_workload(tiny(bench, runs=2, tests=3)))
    finally:
        sqlite.close()
    statements, transactions = profile.per_run
    assert transactions == 3 + 2  # begin_run, one add_results per test, finish_run
    assert profile.executemany >= 2 * 3  # the measurements of each add_results in one executemany
    assert statements > transactions
    assert 0 < profile.cursor_s < profile.seconds


def test_measure_on_sqlite(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "PROFILED_RUNS", 2)
    result = bench.measure_sqlite(tiny(bench), _quiet)
    assert result.backend == "SQLite"
    assert result.insert.measurements == result.batched.measurements == 30
    assert result.batched.add_calls == 3
    assert result.history.runs == 12
    assert result.read.points == 12
    assert result.profile.runs == 2


def test_measure_on_postgresql(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's own PostgreSQL path: it starts its server, measures, and stops it."""
    if pgserver.find_bin_dir() is None:
        pgserver.service_missing(pgserver.MISSING_MESSAGE)
    monkeypatch.setattr(bench, "PROFILED_RUNS", 2)
    result = bench.measure_postgres(tiny(bench), _quiet)
    assert not isinstance(result, str), result
    assert result.backend == "PostgreSQL"
    assert result.version[:2].isdigit()
    assert result.read.points == 12


def test_postgresql_that_cannot_start_is_reported_with_its_reason(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise pgserver.ServerError("initdb failed (exit 1):\nno space left on device")

    monkeypatch.setattr(pgserver.PostgresServer, "start", refuse)
    reason = bench.measure_postgres(tiny(bench), _quiet)
    assert reason == "the server did not start: ServerError: initdb failed (exit 1):"


# ----------------------------------------------------------------------------- rows and targets


def fake(bench: ModuleType, insert_s: float, read_ms: float, backend: str = "SQLite") -> Any:
    insert = bench.WriteTiming(1_000, 100_000, insert_s, insert_s * 0.1, insert_s * 0.85, insert_s * 0.05, 20_000)
    return bench.BackendResult(
        backend,
        "1",
        insert,
        dataclasses.replace(insert, seconds=insert_s / 4, add_calls=1_000),
        bench.WriteTiming(10_000, 10_000, 30.0, 15.0, 10.0, 5.0, 10_000),
        bench.ReadTiming(10_000, read_ms, read_ms * 1.5, 3.0, 10_998, read_ms, read_ms * 1.5),
        bench.CallProfile(20, 1_740, 420, 440, 0.6, 0.06),
    )


def test_targets_scale_with_the_sizes(bench: ModuleType) -> None:
    assert bench.targets(bench.FULL) == (2.0, 20.0)
    insert, read = bench.targets(bench.QUICK)
    assert insert == pytest.approx(0.2)
    assert read == pytest.approx(2.0)
    assert bench.FULL.measurements == 100_000
    assert bench.FULL.history == 10_000


def test_rows_judge_the_sqlite_targets_and_show_postgresql_side_by_side(bench: ModuleType) -> None:
    rows = bench.rows(bench.FULL, fake(bench, 1.8, 25.0), fake(bench, 3.6, 20.0, "PostgreSQL"))
    by_metric = {r.metric: r for r in rows}
    assert set(by_metric) == {
        f"{backend}_{m}"
        for backend in ("sqlite", "postgresql")
        for m in ("insert_s", "insert_batched_s", "series_read_ms", "load_series_ms", "history_build_s")
    }
    insert = by_metric["sqlite_insert_batched_s"]  # the recorder's batching carries the target
    assert insert.case == "SQLite: insert 100k measurements (1,000 runs), as the recorder batches them"
    assert (insert.value, insert.unit, insert.shown) == (0.45, "s", "0.45 s")
    assert insert.comparison == "PostgreSQL 0.90 s"
    assert insert.ratio == "PostgreSQL/SQLite 2.0x"
    assert insert.target == "≤ 2.00 s"
    assert insert.met is True
    assert insert.higher_is_better is False
    assert by_metric["sqlite_series_read_ms"].met is False  # 25 ms > 20 ms
    assert by_metric["sqlite_series_read_ms"].target == "≤ 20.0 ms"
    assert by_metric["sqlite_load_series_ms"].met is False  # 37.5 ms
    assert by_metric["sqlite_insert_s"].met is None  # one transaction per test: for comparison
    assert by_metric["sqlite_history_build_s"].met is None
    for row in rows:
        if row.metric.startswith("postgresql_"):
            assert row.met is None
            assert row.target == ""
            assert row.comparison.startswith("SQLite ")
        assert math.isfinite(row.value)  # every row is recorded into mltest's own store


def test_quick_rows_say_so_and_use_scaled_targets(bench: ModuleType) -> None:
    rows = bench.rows(bench.QUICK, fake(bench, 0.19, 2.5), fake(bench, 0.4, 2.0, "PostgreSQL"))
    insert = next(r for r in rows if r.metric == "sqlite_insert_batched_s_quick")
    assert insert.case == "SQLite: insert 10k measurements (100 runs), as the recorder batches them (quick)"
    assert insert.target == "≤ 0.20 s (scaled)"
    assert insert.met is True
    assert all(r.metric.endswith("_quick") for r in rows)
    assert all("(quick)" in r.case for r in rows)


def test_postgresql_not_measured_is_reported_not_dropped(bench: ModuleType) -> None:
    reason = "the server did not start: ServerError: PostgreSQL 15 server binaries not found"
    rows = bench.rows(bench.FULL, fake(bench, 10.0, 10.0), reason)
    assert [r.case.split(":")[0] for r in rows] == ["SQLite"] * 5
    for row in rows:
        assert row.comparison == f"PostgreSQL: not measured ({reason})"
        assert row.ratio == ""
    assert next(r for r in rows if r.metric == "sqlite_insert_batched_s").met is False  # 2.5 s
    section = bench.report(bench.FULL, fake(bench, 2.5, 10.0), reason, "python -m benchmarks.store")
    assert f"PostgreSQL **not measured**: {reason}" in section
    assert "| not measured |" in section


def test_report_is_one_section_between_the_markers(bench: ModuleType, tmp_path: Path) -> None:
    section = bench.report(bench.FULL, fake(bench, 1.8, 15.0), fake(bench, 3.6, 20.0, "PostgreSQL"), "cmd")
    assert section.startswith(bench.HEADING + "\n\n" + bench.START)
    assert section.rstrip().endswith(bench.END)
    assert (
        "| insert 100k measurements (1,000 runs), as the recorder batches them "
        "| 0.45 s | 0.90 s | 2.0x | ≤ 2.00 s | yes |" in section
    )
    assert "| read a 10k-commit series, store.series | 15.0 ms | 20.0 ms | 1.3x | ≤ 20.0 ms | yes |" in section
    assert "49,995,000 link rows" in section  # the quadratic cost of passing the whole ancestry
    assert "hand Python this query's rows" not in section  # the read target is met: no floor note
    slow = fake(bench, 1.8, 60.0)
    slow = dataclasses.replace(slow, read=dataclasses.replace(slow.read, join_ms=11.0, fetch_ms=38.0))
    missed = bench.report(bench.FULL, slow, "PostgreSQL not measured", "cmd")
    assert "| its SQL alone, every row fetched by the driver, nothing decoded or built (median) | 38.0 ms |" in missed
    assert "the driver alone takes 38.0 ms to hand Python this query's rows (11.0 ms of it the joins)" in missed
    target = tmp_path / "BENCHMARKS.md"
    sys.modules["benchmarks._common"].write_section(section, bench.START, bench.END, target)
    sys.modules["benchmarks._common"].write_section(section.replace("1.80 s", "1.70 s"), bench.START, bench.END, target)
    text = target.read_text(encoding="utf-8")
    assert text.count(bench.HEADING) == 1
    assert "1.70 s" in text
    assert "1.80 s" not in text
