"""Store throughput: recording and reading measurements on SQLite and PostgreSQL, side by side (issue 6).

Usage (from the repository root)::

    python -m benchmarks --only store [--quick] [--write]     # as part of the suite
    python -m benchmarks.store [--quick] [--write]

Everything goes through the public :class:`~mltest.store.Store` API, in the order the recorder
(:class:`mltest.recorder.RunRecorder` under the pytest plugin) calls it: ``begin_run`` once per run,
``add_results`` for what finished since the last flush, ``finish_run`` at the end. The recorder
batches: one transaction per 0.1 s while tests record metrics (per second otherwise), so a run of
fast tests is one ``add_results``; the target applies to that. One transaction per test (what the
recorder did before batching) is reported beside it. Two workloads, each on a fresh SQLite file in a temporary directory
and on a fresh database of a PostgreSQL server that this script starts (``tests/pgserver.py``):

1. *insert* (timed): 1,000 runs, one per commit of a first-parent chain, each of 20 tests x 5 metrics
   = 100,000 measurements; a step time carries its 10 timing samples.
2. *read* (timed): one test x metric over 10,000 commits, through ``store.series(test=, metric=,
   branch=)`` (the SQL query) and through ``mltest.store.history.load_series`` (what detection reads:
   the query, the first-parent links, commit ordering, one point per commit). The 10,000 runs behind
   it are recorded beforehand through the same API, into the same store as the insert workload; that
   build is timed as an informational row.

``--quick`` makes both workloads 10x smaller (targets scaled linearly). Prints a markdown section;
``--write`` replaces the store section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib
import itertools
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import BENCHMARKS_MD, ROOT, Outcome, Row, machine, met_text, table, write_section
from mltest.gitinfo import ANCESTRY_DEPTH
from mltest.model import Commit, Environment, Measurement, Run, TestResult
from mltest.store import Store, open_store
from mltest.store.history import load_series

NAME = "store"
HEADING = "## Store throughput (issue 6)"
START, END = f"<!-- {NAME}:start -->", f"<!-- {NAME}:end -->"

INSERT_TARGET_S = 2.0
"""At most this long for 100,000 measurements (1,000 runs) on SQLite."""
READ_TARGET_MS = 20.0
"""At most this long to read one series of 10,000 commits on SQLite."""
FULL_MEASUREMENTS = 100_000
FULL_HISTORY = 10_000
READ_REPEATS = 5
PROFILED_RUNS = 20
"""Runs written once more with the store's cursor wrapped, for statement counts (not timed)."""

PROJECT = "bench"
BRANCH = "main"
READ_TEST = "tests/test_train.py::test_train_step"
READ_METRIC = "step_time"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

ENVIRONMENT = Environment(
    python="3.11.7",
    platform="Linux-6.1.0-x86_64-with-glibc2.36",
    hostname="ci-runner-07",
    cpu_model="AMD EPYC 7B13",
    cpu_count=16,
    mltest_version="0.1.0",
    torch="2.3.1+cu121",
    cuda="12.1",
    cudnn="8902",
    gpu_model="NVIDIA A100-SXM4-40GB",
    gpu_count=1,
    driver="535.104.05",
    container_image="ghcr.io/acme/train:2026.01",
    flags=(("cudnn_benchmark", "False"), ("deterministic", "True"), ("seed", "0")),
)


@dataclass(frozen=True)
class MetricKind:
    name: str
    unit: str | None
    higher_is_better: bool | None
    level: float
    samples: int
    support: int | None = None


METRICS: tuple[MetricKind, ...] = (
    MetricKind("step_time", "s", False, 0.05, 10),  # record.time: 10 repeats, every sample kept
    MetricKind("throughput", "items/s", True, 5_000.0, 1),
    MetricKind("peak_memory_rss", "bytes", False, 2.5e9, 1),
    MetricKind("loss", None, False, 0.35, 1),
    MetricKind("accuracy", None, True, 0.91, 1, support=10_000),
)


@dataclass(frozen=True)
class Sizes:
    runs: int
    """Runs of the insert workload, one per commit."""
    tests: int
    """Tests per run, each recording every metric of :data:`METRICS`."""
    history: int
    """Commits (one run each) behind the series that is read."""
    depth: int = ANCESTRY_DEPTH
    """First-parent ancestors passed with each commit, as ``mltest.gitinfo.current_commit`` does."""

    @property
    def measurements(self) -> int:
        return self.runs * self.tests * len(METRICS)

    @property
    def scale(self) -> float:
        """Size relative to the full benchmark (targets scale linearly)."""
        return self.measurements / FULL_MEASUREMENTS


FULL = Sizes(runs=1_000, tests=20, history=FULL_HISTORY)
QUICK = Sizes(runs=100, tests=20, history=FULL_HISTORY // 10)


# ----------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class RunWrites:
    """One run as the recorder writes it: the run row, then one ``add_results`` per finished test."""

    run: Run
    tests: tuple[tuple[TestResult, tuple[Measurement, ...]], ...]
    finished_at: str


def _sha(prefix: str, i: int) -> str:
    return hashlib.sha1(f"{prefix}-{i}".encode()).hexdigest()


def _when(i: int, minutes: int = 0) -> str:
    return (T0 + dt.timedelta(hours=i, minutes=minutes)).isoformat()


def commit_chain(prefix: str, n: int, depth: int, branch: str = BRANCH) -> list[Commit]:
    """``n`` commits, oldest first, each the first parent of the next; each carries its ``depth``
    nearest first-parent ancestors (``ancestry``), as a CI checkout records them."""
    shas = [_sha(prefix, i) for i in range(n)]
    return [
        Commit(
            sha,
            branch,
            parents=(shas[i - 1],) if i else (),
            author="Dev <dev@example.com>",
            authored_at=_when(i),
            committed_at=_when(i),
            subject=f"{prefix}: change {i}",
            ancestry=tuple(reversed(shas[max(0, i - depth) : i])),
        )
        for i, sha in enumerate(shas)
    ]


def measurement(rng: random.Random, test: str, kind: MetricKind) -> Measurement:
    samples = tuple(kind.level * (1 + 0.02 * rng.gauss(0, 1)) for _ in range(kind.samples))
    ordered = sorted(samples)
    iqr = None
    if len(samples) > 1:
        q = statistics.quantiles(samples, n=4, method="inclusive")
        iqr = q[2] - q[0]
    return Measurement(
        test, kind.name, statistics.median(ordered), kind.unit, kind.higher_is_better, samples, iqr, kind.support
    )


def _run(prefix: str, i: int, commit: Commit) -> Run:
    return Run(
        run_id=hashlib.md5(f"{prefix}-run-{i}".encode()).hexdigest(),
        project=PROJECT,
        tier="integration",
        commit=commit,
        environment=ENVIRONMENT,
        started_at=_when(i, 1),
        ci_url=f"https://ci.example.com/{prefix}/{i}",
        hostname=ENVIRONMENT.hostname,
        pid=4242,
    )


def insert_workload(sizes: Sizes, prefix: str = "insert", seed: int = 0) -> list[RunWrites]:
    """``sizes.runs`` runs at consecutive commits, each of ``sizes.tests`` tests x every metric."""
    rng = random.Random(seed)
    tests = [f"tests/test_model_{k:02d}.py::test_case" for k in range(sizes.tests)]
    out = []
    for i, commit in enumerate(commit_chain(prefix, sizes.runs, sizes.depth)):
        out.append(
            RunWrites(
                _run(prefix, i, commit),
                tuple(
                    (
                        TestResult(test, "passed", 0.2 + rng.random()),
                        tuple(measurement(rng, test, kind) for kind in METRICS),
                    )
                    for test in tests
                ),
                _when(i, 30),
            )
        )
    return out


def history_workload(sizes: Sizes, prefix: str = "history", seed: int = 1) -> list[RunWrites]:
    """``sizes.history`` runs at consecutive commits, each recording only :data:`READ_TEST` x :data:`READ_METRIC`."""
    rng = random.Random(seed)
    kind = next(k for k in METRICS if k.name == READ_METRIC)
    return [
        RunWrites(
            _run(prefix, i, commit),
            ((TestResult(READ_TEST, "passed", 1.0 + rng.random()), (measurement(rng, READ_TEST, kind),)),),
            _when(i, 30),
        )
        for i, commit in enumerate(commit_chain(prefix, sizes.history, sizes.depth))
    ]


# ----------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class WriteTiming:
    """Wall time of writing runs through the Store API, and its split over the three calls."""

    runs: int
    measurements: int
    seconds: float
    begin_s: float
    add_s: float
    finish_s: float
    add_calls: int

    @property
    def per_measurement_us(self) -> float:
        return 1e6 * self.seconds / max(self.measurements, 1)


def write_runs(store: Store, workload: Sequence[RunWrites], *, batched: bool = False) -> WriteTiming:
    """Write ``workload`` the way the recorder does (one ``add_results`` per test); returns the timing.

    ``batched``: one ``add_results`` per run instead, with every test of the run (what a recorder
    that batches its flushes would do; not what it does today)."""
    clock = time.perf_counter
    begin_s = add_s = finish_s = 0.0
    add_calls = measurements = 0
    started = clock()
    for writes in workload:
        t0 = clock()
        store.begin_run(writes.run)
        t1 = clock()
        if batched:
            store.add_results(
                writes.run.run_id, [r for r, _ in writes.tests], [m for _, measured in writes.tests for m in measured]
            )
        else:
            for result, measured in writes.tests:
                store.add_results(writes.run.run_id, [result], measured)
        t2 = clock()
        store.finish_run(writes.run.run_id, "passed", writes.finished_at)
        t3 = clock()
        begin_s += t1 - t0
        add_s += t2 - t1
        finish_s += t3 - t2
        add_calls += 1 if batched else len(writes.tests)
        measurements += sum(len(m) for _, m in writes.tests)
    return WriteTiming(len(workload), measurements, clock() - started, begin_s, add_s, finish_s, add_calls)


@dataclass(frozen=True)
class ReadTiming:
    points: int
    """Rows from ``store.series`` (= points of the one series from ``load_series``)."""
    series_ms: float
    """Median over the repeats."""
    load_ms: float
    links_ms: float
    """``store.first_parent_links()`` alone (part of ``load_series``)."""
    links: int
    series_first_ms: float
    load_first_ms: float
    join_ms: float | None = None
    """The floor under ``store.series``: its own SQL with ``count(*)`` for columns (the joins, no row
    to Python). None: the store is not an SQL store."""
    fetch_ms: float | None = None
    """Its own SQL, every row fetched through the driver, nothing decoded or built."""


def _sql_floor(store: Store, repeats: int) -> tuple[float | None, float | None]:
    """(join_ms, fetch_ms): medians of the SQL that ``store.series`` sends, run straight on the store's
    driver cursor. Where the time of a series read goes that no Python code of ours can take back."""
    series_query = getattr(store, "_series_query", None)
    raw = getattr(store, "_raw", None)
    if series_query is None or raw is None:
        return None, None
    query = series_query((True, True, True, False, False, False))  # test, metric, branch: what is timed
    count = "SELECT count(*) FROM " + query.split(" FROM ", 1)[1]
    args = [READ_TEST, READ_METRIC, BRANCH]
    join_ms: list[float] = []
    fetch_ms: list[float] = []
    with raw("benchmark: the series query alone", write=False) as cursor:
        for _ in range(repeats):
            t0 = time.perf_counter()
            cursor.execute(count, args).fetchall()
            join_ms.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            cursor.execute(query, args).fetchall()
            fetch_ms.append(1000 * (time.perf_counter() - t0))
    return statistics.median(join_ms), statistics.median(fetch_ms)


def read_series(store: Store, expected: int, repeats: int = READ_REPEATS) -> ReadTiming:
    """Time reading :data:`READ_TEST` x :data:`READ_METRIC` on :data:`BRANCH`; checks what comes back."""
    series_ms: list[float] = []
    load_ms: list[float] = []
    links_ms: list[float] = []
    links = 0
    first_sha = last_sha = ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = store.series(test=READ_TEST, metric=READ_METRIC, branch=BRANCH)
        series_ms.append(1000 * (time.perf_counter() - t0))
        if len(rows) != expected:
            raise RuntimeError(f"store.series returned {len(rows)} rows, expected {expected}")
        t0 = time.perf_counter()
        loaded = load_series(store, test=READ_TEST, metric=READ_METRIC, branch=BRANCH)
        load_ms.append(1000 * (time.perf_counter() - t0))
        if len(loaded) != 1 or len(loaded[0].points) != expected:
            raise RuntimeError(f"load_series returned {[len(s.points) for s in loaded]} points, expected {expected}")
        first_sha, last_sha = loaded[0].points[0].sha, loaded[0].points[-1].sha
        t0 = time.perf_counter()
        links = len(store.first_parent_links())
        links_ms.append(1000 * (time.perf_counter() - t0))
    if expected and (first_sha, last_sha) != (_sha("history", 0), _sha("history", expected - 1)):
        raise RuntimeError("load_series did not order the history oldest first")
    join_ms, fetch_ms = _sql_floor(store, repeats)
    return ReadTiming(
        expected,
        statistics.median(series_ms),
        statistics.median(load_ms),
        statistics.median(links_ms),
        links,
        series_ms[0],
        load_ms[0],
        join_ms,
        fetch_ms,
    )


@dataclass(frozen=True)
class CallProfile:
    """Statements and transactions per run, and the share of time inside the DBAPI cursor calls."""

    runs: int
    statements: int
    executemany: int
    transactions: int
    seconds: float
    cursor_s: float

    @property
    def per_run(self) -> tuple[float, float]:
        return self.statements / max(self.runs, 1), self.transactions / max(self.runs, 1)


class _CountingCursor:
    """A store cursor that counts and times the statements sent through it."""

    def __init__(self, cursor: Any, counts: dict[str, float]) -> None:
        self._cursor = cursor
        self._counts = counts

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        started = time.perf_counter()
        try:
            return self._cursor.execute(sql, parameters)
        finally:
            self._counts["statements"] += 1
            self._counts["cursor_s"] += time.perf_counter() - started

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /) -> Any:
        started = time.perf_counter()
        try:
            return self._cursor.executemany(sql, seq_of_parameters)
        finally:
            self._counts["statements"] += 1
            self._counts["executemany"] += 1
            self._counts["cursor_s"] += time.perf_counter() - started


@contextmanager
def _counting(store: Store) -> Iterator[dict[str, float]]:
    """Counts statements (``executemany`` ones too), transactions and cursor time of a SQL store.

    The store's writes go straight to the driver's cursor (``SqlStore._raw``), past SQLAlchemy's
    events: this wraps that cursor. On SQLite, each transaction's ``BEGIN IMMEDIATE`` and ``COMMIT``
    are statements too (sent, and timed, outside the wrapped calls)."""
    counts: dict[str, float] = {"statements": 0, "executemany": 0, "commits": 0, "cursor_s": 0.0}
    original = getattr(store, "_raw", None)
    if original is None:
        yield counts
        return
    sqlite = getattr(store, "_dialect", "") == "sqlite"

    @contextmanager
    def counted(what: str, *, write: bool) -> Iterator[_CountingCursor]:
        with original(what, write=write) as cursor:
            yield _CountingCursor(cursor, counts)
        if write:
            counts["commits"] += 1
            counts["statements"] += 2 if sqlite else 0

    store._raw = counted  # type: ignore[attr-defined]
    try:
        yield counts
    finally:
        del store._raw  # type: ignore[attr-defined]


def profile_runs(store: Store, workload: Sequence[RunWrites]) -> CallProfile:
    """Write ``workload`` with its statements counted (kept out of the timed passes)."""
    with _counting(store) as counts:
        timing = write_runs(store, workload)
    return CallProfile(
        len(workload),
        int(counts["statements"]),
        int(counts["executemany"]),
        int(counts["commits"]),
        timing.seconds,
        counts["cursor_s"],
    )


@dataclass(frozen=True)
class BackendResult:
    backend: str
    """``SQLite`` or ``PostgreSQL``."""
    version: str
    insert: WriteTiming
    batched: WriteTiming
    """The insert workload again, into another empty store, one ``add_results`` per run."""
    history: WriteTiming
    read: ReadTiming
    profile: CallProfile


def stored_count(store: Store, test: str, metric: str) -> int:
    """How many measurements of ``test`` x ``metric`` the store holds (read back through the API)."""
    return len(store.series(test=test, metric=metric))


def measure(
    fresh: Callable[[], Store], sizes: Sizes, backend: str, version: str, log: Callable[[str], None]
) -> BackendResult:
    """The whole benchmark; ``fresh()`` opens a new empty store (two are used: the batched insert
    gets its own, so that both inserts start empty)."""
    workload = insert_workload(sizes)
    one_test, one_metric = workload[0].tests[0][0].test, METRICS[0].name
    store = fresh()
    try:
        log(f"{backend}: inserting {sizes.measurements:,} measurements ({sizes.runs:,} runs)")
        insert = write_runs(store, workload)
        log(f"{backend}: insert {insert.seconds:.2f} s; recording a {sizes.history:,}-commit history")
        built = write_runs(store, history_workload(sizes))
        log(f"{backend}: history {built.seconds:.1f} s; reading")
        read = read_series(store, sizes.history)
        log(f"{backend}: series {read.series_ms:.1f} ms, load_series {read.load_ms:.1f} ms; profiling")
        profile = profile_runs(store, insert_workload(Sizes(PROFILED_RUNS, sizes.tests, 0), prefix="profile", seed=2))
        if (stored := stored_count(store, one_test, one_metric)) != sizes.runs + PROFILED_RUNS:
            raise RuntimeError(f"{one_test}: {stored} measurements stored, expected {sizes.runs + PROFILED_RUNS}")
    finally:
        store.close()
    store = fresh()
    try:
        log(f"{backend}: inserting again, one add_results per run")
        batched = write_runs(store, workload, batched=True)
        if (stored := stored_count(store, one_test, one_metric)) != sizes.runs:
            raise RuntimeError(f"{one_test}: {stored} measurements stored (batched), expected {sizes.runs}")
    finally:
        store.close()
    return BackendResult(backend, version, insert, batched, built, read, profile)


def measure_sqlite(sizes: Sizes, log: Callable[[str], None]) -> BackendResult:
    """The benchmark on SQLite files in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="mltest-store-bench-") as tmp:
        names = (Path(tmp) / f"results-{i}.db" for i in itertools.count())
        return measure(lambda: open_store(f"sqlite:///{next(names)}"), sizes, "SQLite", sqlite3.sqlite_version, log)


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _pgserver() -> Any:
    """``tests/pgserver.py`` (the test suite's throwaway-server helper), imported from the repository."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    return importlib.import_module("pgserver")


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def measure_postgres(sizes: Sizes, log: Callable[[str], None]) -> BackendResult | str:
    """The benchmark on a PostgreSQL server started for it (a new database per store), or why it
    could not run."""
    try:
        pgserver = _pgserver()
        import psycopg  # noqa: F401  (the store's driver: a clear reason when it is missing)

        log("PostgreSQL: starting a server")
        server = pgserver.PostgresServer.start()
    except Exception as exc:  # no binaries, no postgres user, no psycopg, a server that will not start
        return f"the server did not start: {_reason(exc)}"
    try:
        version = postgres_version(server.create_database("version_probe"))
        return measure(lambda: open_store(server.create_database()), sizes, "PostgreSQL", version, log)
    except Exception as exc:  # reported in the table, never dropped
        return f"failed while measuring: {_reason(exc)}"
    finally:
        server.stop()


# ----------------------------------------------------------------------------- reporting


def _n(count: int) -> str:
    return f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else f"{count:,}"


def targets(sizes: Sizes) -> tuple[float, float]:
    """(insert seconds, read milliseconds) for these sizes: the full targets, scaled linearly."""
    return INSERT_TARGET_S * sizes.scale, READ_TARGET_MS * sizes.history / FULL_HISTORY


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def _millis(value: float) -> str:
    return f"{value:.1f} ms"


@dataclass(frozen=True)
class Case:
    """One measure of the results table, read off a :class:`BackendResult`."""

    case: str
    metric: str
    unit: str
    get: Callable[[BackendResult], float]
    shown: Callable[[float], str]
    target: float | None


def cases(sizes: Sizes) -> list[Case]:
    insert_target, read_target = targets(sizes)
    quick = " (quick)" if sizes.scale != 1 else ""
    inserted = f"insert {_n(sizes.measurements)} measurements ({sizes.runs:,} runs)"
    series = f"read a {_n(sizes.history)}-commit series"
    return [
        # The recorder batches (a transaction per 0.1 s while tests record metrics, per second
        # otherwise): a run of fast tests is one add_results, which is what the target applies to.
        Case(
            f"{inserted}, as the recorder batches them{quick}",
            "insert_batched_s",
            "s",
            lambda r: r.batched.seconds,
            _seconds,
            insert_target,
        ),
        Case(
            f"{inserted}, one transaction per test{quick}",
            "insert_s",
            "s",
            lambda r: r.insert.seconds,
            _seconds,
            None,
        ),
        Case(
            f"{series}, store.series{quick}", "series_read_ms", "ms", lambda r: r.read.series_ms, _millis, read_target
        ),
        Case(f"{series}, load_series{quick}", "load_series_ms", "ms", lambda r: r.read.load_ms, _millis, read_target),
        Case(
            f"record the {_n(sizes.history)}-run history through the API{quick}",
            "history_build_s",
            "s",
            lambda r: r.history.seconds,
            lambda v: f"{v:.1f} s",
            None,
        ),
    ]


def rows(sizes: Sizes, sqlite: BackendResult, postgres: BackendResult | str) -> list[Row]:
    """Summary rows: each SQLite row carries its target (scaled in quick mode) and PostgreSQL side by
    side; PostgreSQL rows (no target) follow, so that both are recorded. When PostgreSQL was not
    measured, the SQLite rows say why and there are no PostgreSQL rows (there is no value to record)."""
    suffix = "_quick" if sizes.scale != 1 else ""
    scaled = " (scaled)" if sizes.scale != 1 else ""
    pg = postgres if isinstance(postgres, BackendResult) else None
    out = []
    for c in cases(sizes):
        mine = c.get(sqlite)
        theirs = c.get(pg) if pg else None
        ratio = "" if theirs is None or mine <= 0 else f"PostgreSQL/SQLite {theirs / mine:.1f}x"
        out.append(
            Row(
                NAME,
                f"SQLite: {c.case}",
                mine,
                c.unit,
                c.shown(mine),
                f"PostgreSQL {c.shown(theirs)}" if theirs is not None else f"PostgreSQL: not measured ({postgres})",
                ratio,
                f"≤ {c.shown(c.target)}{scaled}" if c.target is not None else "",
                None if c.target is None else mine <= c.target,
                False,
                f"sqlite_{c.metric}{suffix}",
            )
        )
        if theirs is not None:
            out.append(
                Row(
                    NAME,
                    f"PostgreSQL: {c.case}",
                    theirs,
                    c.unit,
                    c.shown(theirs),
                    f"SQLite {c.shown(mine)}",
                    ratio,
                    "",
                    None,
                    False,
                    f"postgresql_{c.metric}{suffix}",
                )
            )
    return out


def call_split(timing: WriteTiming) -> dict[str, tuple[int, float]]:
    """Calls and seconds per Store method."""
    return {
        "begin_run": (timing.runs, timing.begin_s),
        "add_results": (timing.add_calls, timing.add_s),
        "finish_run": (timing.runs, timing.finish_s),
    }


def _call_cell(calls: int, seconds: float) -> str:
    return f"{seconds:.2f} s ({1000 * seconds / max(calls, 1):.2f} ms/call)"


def _both(sqlite: BackendResult, postgres: BackendResult | str, cell: Callable[[BackendResult], str]) -> list[str]:
    return [cell(sqlite), cell(postgres) if isinstance(postgres, BackendResult) else "not measured"]


def split_table(
    sqlite: BackendResult, postgres: BackendResult | str, get: Callable[[BackendResult], WriteTiming]
) -> str:
    mine = call_split(get(sqlite))
    theirs = call_split(get(postgres)) if isinstance(postgres, BackendResult) else None
    return table(
        ["call", "calls", "SQLite", "PostgreSQL"],
        [
            [label, f"{calls:,}", _call_cell(calls, seconds), _call_cell(*theirs[label]) if theirs else "not measured"]
            for label, (calls, seconds) in mine.items()
        ],
    )


def read_table(sqlite: BackendResult, postgres: BackendResult | str) -> str:
    def rest(r: BackendResult) -> str:
        return _millis(r.read.load_ms - r.read.series_ms)

    def floor(ms: float | None) -> str:
        return "not measured" if ms is None else _millis(ms)

    return table(
        ["step", "SQLite", "PostgreSQL"],
        [
            [
                "its SQL alone, `count(*)` for columns: the joins, no row to Python (median)",
                *_both(sqlite, postgres, lambda r: floor(r.read.join_ms)),
            ],
            [
                "its SQL alone, every row fetched by the driver, nothing decoded or built (median)",
                *_both(sqlite, postgres, lambda r: floor(r.read.fetch_ms)),
            ],
            [
                "`store.series` (median; first call)",
                *_both(sqlite, postgres, lambda r: f"{_millis(r.read.series_ms)}; {_millis(r.read.series_first_ms)}"),
            ],
            [
                "`store.first_parent_links()`: every link (not what `load_series` reads)",
                *_both(sqlite, postgres, lambda r: f"{_millis(r.read.links_ms)} ({r.read.links:,} links)"),
            ],
            [
                "`load_series` (median; first call)",
                *_both(sqlite, postgres, lambda r: f"{_millis(r.read.load_ms)}; {_millis(r.read.load_first_ms)}"),
            ],
            [
                "`load_series` minus `store.series` (the links of its commits, ordering, grouping)",
                *_both(sqlite, postgres, rest),
            ],
        ],
    )


def floor_note(sqlite: BackendResult, target_ms: float) -> str:
    """Why a missed read target is missed, from the floor measured in the same run (empty when met)."""
    read = sqlite.read
    if read.fetch_ms is None or read.join_ms is None or max(read.series_ms, read.load_ms) <= target_ms:
        return ""
    return (
        f"\nOn SQLite the driver alone takes {_millis(read.fetch_ms)} to hand Python this query's rows "
        f"({_millis(read.join_ms)} of it the joins), against a target of {_millis(target_ms)} for the "
        "whole read: what is left above the floor is decoding the rows and building the points, and "
        "no faster decoding reaches the target. Reaching it takes a different layout (each series "
        "kept as one columnar value, updated on every write), which costs every write and was not "
        "made.\n"
    )


def profile_table(sqlite: BackendResult, postgres: BackendResult | str) -> str:
    def cells(r: BackendResult) -> list[str]:
        p = r.profile
        statements, transactions = p.per_run
        return [
            f"{statements:.0f}",
            f"{p.executemany / max(p.runs, 1):.0f}",
            f"{transactions:.0f}",
            f"{1000 * p.seconds / max(p.runs, 1):.1f} ms",
            f"{1000 * p.seconds / max(p.transactions, 1):.2f} ms",
            f"{100 * p.cursor_s / p.seconds:.0f}%" if p.seconds else "—",
        ]

    header = [
        "backend",
        "statements / run",
        "of them executemany",
        "transactions / run",
        "wall time / run",
        "wall time / transaction",
        "inside DBAPI cursor calls",
    ]
    body = [["SQLite", *cells(sqlite)]]
    body.append(
        ["PostgreSQL", *cells(postgres)]
        if isinstance(postgres, BackendResult)
        else ["PostgreSQL", f"not measured: {postgres}", "", "", "", "", ""]
    )
    return table(header, body)


def report(sizes: Sizes, sqlite: BackendResult, postgres: BackendResult | str, command: str) -> str:
    summary = [r for r in rows(sizes, sqlite, postgres) if r.case.startswith("SQLite: ")]
    pg_ok = isinstance(postgres, BackendResult)
    results = table(
        ["measure", "SQLite", "PostgreSQL", "PostgreSQL/SQLite", "target (SQLite)", "met?"],
        [
            [
                r.case.removeprefix("SQLite: "),
                r.shown,
                r.comparison.removeprefix("PostgreSQL ") if pg_ok else "not measured",
                r.ratio.removeprefix("PostgreSQL/SQLite ") or "—",
                r.target or "—",
                met_text(r.met),
            ]
            for r in summary
        ],
    )
    pg_about = (
        f"PostgreSQL {postgres.version}: a throwaway server from `tests/pgserver.py` on this machine "
        "(`fsync=off`, `synchronous_commit=off`), TCP on 127.0.0.1, a new database per store"
        if isinstance(postgres, BackendResult)
        else f"PostgreSQL **not measured**: {postgres}"
    )
    insert_target, read_target = targets(sizes)
    quick_note = (
        f"\n**Quick mode**: both workloads 10x smaller than the full benchmark ({_n(sizes.measurements)} "
        f"measurements, a {_n(sizes.history)}-commit series); targets scaled linearly ({insert_target:.2f} s, "
        f"{read_target:.1f} ms).\n"
        if sizes.scale != 1
        else ""
    )
    per_run = sizes.tests * len(METRICS)

    def tx_ms(r: BackendResult) -> str:
        return _millis(1000 * r.insert.seconds / max(r.insert.runs * r.profile.per_run[1], 1))

    def faster(r: BackendResult) -> str:
        return f"{r.insert.seconds / r.batched.seconds:.1f}x faster" if r.batched.seconds else "—"

    transactions = f"{sizes.runs * sqlite.profile.per_run[1]:,.0f}"
    per_transaction = f"{tx_ms(sqlite)} per transaction on SQLite" + (
        f", {tx_ms(postgres)} on PostgreSQL" if isinstance(postgres, BackendResult) else ""
    )
    speedup = f"{faster(sqlite)} on SQLite" + (
        f", {faster(postgres)} on PostgreSQL" if isinstance(postgres, BackendResult) else ""
    )
    return f"""{HEADING}

{START}
Reproduce from the repository root: `{command}` (`--quick`: 10x smaller, a smoke test).

- Date: {dt.date.today().isoformat()}
- Machine: {machine()}
- Python {platform.python_version()}, SQLAlchemy {_version("sqlalchemy")}, psycopg {_version("psycopg")}
- SQLite {sqlite.version}: a file in a temporary directory (the store's WAL mode, `synchronous=NORMAL`)
- {pg_about}
{quick_note}
**Workload.** Everything goes through the public `Store` API in the recorder's order
(`RunRecorder`): `begin_run`, then `add_results` for what finished since the last flush, then
`finish_run`. The recorder batches (a transaction per 0.1 s while tests record metrics, per second
otherwise), so a run of fast tests is a single `add_results`: the target row.

- *insert* (timed, into an empty store): {sizes.runs:,} runs x {sizes.tests} tests x {len(METRICS)} metrics
  ({", ".join(f"`{k.name}`" for k in METRICS)}) = {sizes.measurements:,} measurements ({per_run} per
  run); `{METRICS[0].name}` carries {METRICS[0].samples} timing samples, the others one. One run per
  commit of a first-parent chain, one environment (a GPU CI runner). Written twice, into two empty
  stores: each run's {sizes.tests} tests in a single `add_results` (the recorder's batching: the
  target), and one `add_results` per test (one transaction per test, for comparison).
- *history* (recorded after the insert, into the same store; timed for information): {sizes.history:,}
  runs at {sizes.history:,} distinct commits of another chain, each recording only
  `{READ_TEST}` x `{READ_METRIC}` ({METRICS[0].samples} samples).
- *read* (timed, median of {READ_REPEATS}): that series on branch `{BRANCH}` via
  `store.series(test=, metric=, branch=)` (the SQL query and row decoding) and via
  `mltest.store.history.load_series` (the query, `first_parent_links(shas)` of its commits, commit
  ordering, one point per commit); both are checked to return all {sizes.history:,} points, oldest first.

**Ancestry.** Each commit carries `parents=(previous,)` and `ancestry` = its {sizes.depth} nearest
first-parent ancestors, which is what `mltest.gitinfo.current_commit` records from a real checkout
(`ANCESTRY_DEPTH = {ANCESTRY_DEPTH}`). The store turns `(sha, *ancestry)` into first-parent links
(an `ON CONFLICT DO NOTHING` insert of up to {sizes.depth} rows per `begin_run`); history ordering
(`commit_order`) only needs the link from each measured commit to its nearest measured ancestor, so
with a run at every commit `parents` alone would order the series too. Passing the whole ancestry
(as `tests/cli/test_detect_cli.py` does for short histories) would make recording quadratic:
{sizes.history:,} runs would upsert about {sizes.history * (sizes.history - 1) // 2:,} link rows.

**Results.**

{results}

The recorder's pattern is {sqlite.profile.per_run[1]:.0f} transactions per run
({transactions} for the insert): {per_transaction}. Writing each run's tests in one `add_results` (3 transactions
per run) is {speedup}.

Insert, by call ({sizes.runs:,} runs, the recorder's pattern):

{split_table(sqlite, postgres, lambda r: r.insert)}

History build ({sizes.history:,} runs, one test x one metric each, {sizes.depth} ancestors per commit):

{split_table(sqlite, postgres, lambda r: r.history)}

Read, by step ({sizes.history:,}-commit series; the store also holds the insert workload):

{read_table(sqlite, postgres)}
{floor_note(sqlite, read_target)}
Statements per run ({PROFILED_RUNS} more runs of the insert workload written with the store's cursor
wrapped to count them, outside the timed passes; SQLite's `BEGIN IMMEDIATE` and `COMMIT` count as
statements):

{profile_table(sqlite, postgres)}
{END}
"""


def _version(module: str) -> str:
    try:
        return str(importlib.import_module(module).__version__)
    except (ImportError, AttributeError):
        return "not installed"


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def measure_all(sizes: Sizes, log: Callable[[str], None] = _log) -> tuple[BackendResult, BackendResult | str]:
    sqlite = measure_sqlite(sizes, log)
    postgres = measure_postgres(sizes, log)
    if isinstance(postgres, str):
        log(f"PostgreSQL not measured: {postgres}")
    return sqlite, postgres


def run(quick: bool) -> Outcome:
    """For ``python -m benchmarks``."""
    sizes = QUICK if quick else FULL
    sqlite, postgres = measure_all(sizes)
    command = "python -m benchmarks --only store" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(sizes, sqlite, postgres), report(sizes, sqlite, postgres, command), START, END)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10x smaller workloads (a smoke test)")
    parser.add_argument("--write", action="store_true", help=f"replace the store section of {BENCHMARKS_MD.name}")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    sqlite, postgres = measure_all(sizes)
    command = "python -m benchmarks.store" + (" --quick" if args.quick else "") + " --write"
    section = report(sizes, sqlite, postgres, command)
    summary = rows(sizes, sqlite, postgres)
    print(section)
    print(
        table(
            ["case", "value", "compared with (same run)", "ratio", "target", "met?"],
            [[r.case, r.shown, r.comparison, r.ratio, r.target, met_text(r.met)] for r in summary],
        )
    )
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.write:
        write_section(section, START, END)
        print(f"wrote {BENCHMARKS_MD}", file=sys.stderr)
    return 1 if any(r.met is False for r in summary) else 0


if __name__ == "__main__":
    raise SystemExit(main())
