"""Concurrent writers: 8 processes write 500 runs each into one store at the same time, SQLite and
PostgreSQL; afterwards every row is there exactly once, with its values, and no run is half-written.

The writers use the store API directly (``open_store``, ``begin_run``, ``add_results``,
``finish_run``): three transactions per run, 12,000 per store, all colliding on shared commits,
commit links and environments. The figures are printed (``pytest -s``, or ``-rP``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mltest.model import Commit, Environment, Measurement, Run, RunStatus, TestResult, utc_now
from mltest.store import open_store
from mltest.store.sql import unpack_samples

pytestmark = pytest.mark.integration  # starts processes (and a PostgreSQL server)

PROCESSES, RUNS_EACH, TESTS_PER_RUN = 8, 500, 3
RUNS = PROCESSES * RUNS_EACH
ROWS = RUNS * TESTS_PER_RUN  # test results, and as many measurements
COMMITS, ANCESTRY = 20, 3

OUTCOMES = ("passed", "failed", "skipped")
METRICS = ("accuracy", "loss", "step_time")


# ----------------------------------------------------------------------------- what each writer writes
# The values of every row, exact in binary floating point (so equality is the right check). The writer
# processes run this file as a script (``main`` below), so they and the checks share these functions.
def run_id(worker: int, i: int) -> str:
    return f"w{worker}-r{i:04d}"


def commit_sha(i: int) -> str:
    return f"{i % COMMITS + 1:040x}"


def ancestry(i: int) -> tuple[str, ...]:
    return tuple(f"{i % COMMITS + 1 + d:040x}" for d in range(1, ANCESTRY + 1))


def status(worker: int, i: int) -> RunStatus:
    return "passed" if (worker + i) % 2 == 0 else "failed"


def result(i: int, k: int) -> TestResult:
    return TestResult(f"t.py::test_{k}", OUTCOMES[(i + k) % 3], (i * TESTS_PER_RUN + k) / 1024, 0, k == 2)


def measurement(worker: int, i: int, k: int) -> Measurement:
    value = worker * 1_000_000 + i * 10 + k + 0.25
    return Measurement(
        f"t.py::test_{k}",
        METRICS[k],
        value,
        "s" if k == 2 else None,
        None,
        (value - 0.25, value, value + 0.25),
        None,
        i + 1,
    )


def environment(worker: int) -> Environment:
    """Two environments shared by all writers: their upserts collide on purpose, as do commits and links."""
    return Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0", flags=(("seed", str(worker % 2)),))


def main(url: str, worker: int, count: int, signals: Path) -> None:
    """One writer process: open the store, wait for the go signal, write ``count`` runs, print figures."""
    store = open_store(url)  # concurrent first opens: the store may not exist yet
    try:
        (signals / f"ready-{worker}").touch()
        deadline = time.monotonic() + 120
        while not (signals / "go").exists():
            if time.monotonic() > deadline:
                sys.exit("no go signal within 120 s")
            time.sleep(0.005)
        slowest = 0.0

        def timed(write: Callable[[], None]) -> None:
            nonlocal slowest
            t0 = time.perf_counter()
            write()
            slowest = max(slowest, time.perf_counter() - t0)

        started = time.perf_counter()
        for i in range(count):
            rid = run_id(worker, i)
            commit = Commit(commit_sha(i), "main", ancestry=ancestry(i))
            run = Run(rid, "proj", "integration", commit, environment(worker), utc_now(), pid=worker)
            results = [result(i, k) for k in range(TESTS_PER_RUN)]
            measurements = [measurement(worker, i, k) for k in range(TESTS_PER_RUN)]
            timed(partial(store.begin_run, run))  # three transactions per run
            timed(partial(store.add_results, rid, results, measurements))
            timed(partial(store.finish_run, rid, status(worker, i), utc_now()))
        print(json.dumps({"seconds": time.perf_counter() - started, "slowest_transaction": slowest}))
    finally:
        store.close()


# ----------------------------------------------------------------------------- the test
@pytest.fixture(params=["sqlite", "postgresql"], ids=lambda b: f"{b}-{PROCESSES}procs-x-{RUNS_EACH}runs")
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return str(request.getfixturevalue("pg_url"))


def raw_engine(url: str) -> sa.Engine:
    """A plain SQLAlchemy engine, bypassing mltest: what is really in the tables."""
    if url.startswith("postgresql://"):
        return sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    return sa.create_engine(url)


@pytest.fixture
def writers(store_url: str, tmp_path: Path) -> Iterator[tuple[list[subprocess.Popen[str]], Path]]:
    signals = tmp_path / "signals"
    signals.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, store_url, str(worker), str(RUNS_EACH), str(signals)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(PROCESSES)
    ]
    try:
        yield procs, signals
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()  # no ResourceWarning


def expected_rows() -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    runs, results, measurements = set(), set(), set()
    for worker in range(PROCESSES):
        for i in range(RUNS_EACH):
            rid = run_id(worker, i)
            runs.add((rid, status(worker, i), commit_sha(i), worker))
            for k in range(TESTS_PER_RUN):
                r = result(i, k)
                results.add((rid, r.test, r.attempt, r.outcome, r.duration, r.flaky))
                m = measurement(worker, i, k)
                measurements.add((rid, m.test, m.metric, m.value, m.unit, m.samples, m.support))
    return runs, results, measurements


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(
    writers: tuple[list[subprocess.Popen[str]], Path], store_url: str, tmp_path: Path
) -> None:
    procs, signals = writers
    deadline = time.monotonic() + 120
    while len(list(signals.glob("ready-*"))) < PROCESSES and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    started = time.monotonic()
    (signals / "go").touch()  # every writer starts at once
    outputs = [p.communicate(timeout=600) for p in procs]
    wall = time.monotonic() - started
    reports = []
    for worker, (proc, (stdout, stderr)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"writer {worker} exited {proc.returncode}:\n{stderr}"
        assert stderr == "", f"writer {worker}:\n{stderr}"
        reports.append(json.loads(stdout))

    engine = raw_engine(store_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT run_id, status, sha, pid, finished_at, branch FROM runs")).all()
            results = conn.execute(
                sa.text("SELECT run_id, test, attempt, outcome, duration, flaky FROM test_results")
            ).all()
            measurements = conn.execute(
                sa.text("SELECT run_id, test, metric, value, unit, samples, support FROM measurements")
            ).all()
            commits = conn.execute(sa.text("SELECT COUNT(*) FROM commits")).scalar_one()
            links = {row[0]: row[1] for row in conn.execute(sa.text("SELECT sha, first_parent FROM commit_links"))}
            environments = conn.execute(sa.text("SELECT COUNT(*) FROM environments")).scalar_one()
            versions = conn.execute(sa.text("SELECT COUNT(*) FROM meta WHERE key = 'schema_version'")).scalar_one()
    finally:
        engine.dispose()

    want_runs, want_results, want_measurements = expected_rows()
    # Every row exactly once (counts: nothing duplicated), with exactly the values written (sets).
    assert len(runs) == len(want_runs) == RUNS
    assert {(r.run_id, r.status, r.sha, r.pid) for r in runs} == want_runs
    assert all(r.finished_at is not None and r.branch == "main" for r in runs)  # every run finished
    assert len(results) == len(want_results) == ROWS
    assert {(r.run_id, r.test, r.attempt, r.outcome, r.duration, bool(r.flaky)) for r in results} == want_results
    assert len(measurements) == len(want_measurements) == ROWS
    stored = {(m.run_id, m.test, m.metric, m.value, m.unit, unpack_samples(m.samples), m.support) for m in measurements}
    assert stored == want_measurements
    # The shared rows: once each, however many writers upserted them at the same moment.
    assert commits == COMMITS
    assert environments == 2
    assert versions == 1
    assert sorted(int(child, 16) for child in links) == list(range(1, COMMITS + ANCESTRY))  # every child once
    assert all(int(parent, 16) == int(child, 16) + 1 for child, parent in links.items())

    store = open_store(store_url, root=tmp_path)  # and mltest reads it back the same
    try:
        listed = store.runs(limit=2 * RUNS)
        series = store.series(test="t.py::test_0", metric="accuracy")
    finally:
        store.close()
    assert len(listed) == RUNS
    assert {r.status for r in listed} == {"passed", "failed"}
    assert len(series) == RUNS

    transactions = RUNS * 3
    slowest = max(r["slowest_transaction"] for r in reports)
    print(
        f"\n{store_url.split(':', 1)[0]}: {PROCESSES} processes x {RUNS_EACH} runs = {RUNS} runs, {ROWS} test results, "
        f"{ROWS} measurements, {transactions} transactions in {wall:.1f} s ({transactions / wall:.0f} tx/s); "
        f"slowest transaction {slowest:.2f} s"
    )


if __name__ == "__main__":  # a writer process
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
