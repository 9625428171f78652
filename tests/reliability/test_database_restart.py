"""Database restarts: PostgreSQL goes away during a real ``mltest run``.

Restarted while a test runs, or down when a write comes and back within seconds: the writes are
retried and the run completes with nothing lost. Down until the run ends: the run's records stay in
the local journal and ``mltest sync`` sends them once the database is back; nothing is dropped.

The end-to-end tests run their own server (on its own port: restarting the shared one would pull it
from under other tests); the recorder's retry rules are pinned first, on a store that fails on cue.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pgserver
import pytest
from procs import journal_text, make_project, mltest, start_mltest, wait_until
from sqlalchemy import exc as sa_exc

from mltest.errors import BackendUnavailable, StoreError
from mltest.model import Commit, Environment, Measurement, Run, RunStatus, TestResult
from mltest.recorder import RunRecorder, recover_spool
from mltest.store import open_store
from mltest.store.memory import MemoryStore
from mltest.store.sql import SqlStore


# ============================================================================= the retry rules
class FlakyStore(MemoryStore):
    """A store whose writes fail as unreachable while ``down`` is above zero (each failure counts it down)."""

    def __init__(self, down: int = 0, error: type[StoreError] = BackendUnavailable) -> None:
        super().__init__()
        self.down = down
        self.error = error
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.down > 0:
            self.down -= 1
            raise self.error("cannot reach the store memory://: connection refused")

    def add_results(self, run_id: str, results: Sequence[TestResult], measurements: Sequence[Measurement]) -> None:
        self._maybe_fail()
        super().add_results(run_id, results, measurements)

    def finish_run(self, run_id: str, status: RunStatus, finished_at: str) -> None:
        self._maybe_fail()
        super().finish_run(run_id, status, finished_at)


def make_run(run_id: str = "run1", pid: int | None = None) -> Run:
    environment = Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0")
    started = "2024-01-01T00:00:00+00:00"
    return Run(
        run_id, "proj", "unit", Commit("a" * 40, "main"), environment, started, hostname=socket.gethostname(), pid=pid
    )


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The recorder's backoff sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr("mltest.recorder.time.sleep", slept.append)
    return slept


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited: a journal of a dead run."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(proc.stdout)


def test_an_unreachable_store_is_retried_with_backoff_and_nothing_is_reported_lost(
    tmp_path: Path, sleeps: list[float]
) -> None:
    store = FlakyStore()
    recorder = RunRecorder(store, make_run(), tmp_path / "spool", flush_measured_seconds=0)
    recorder.begin()
    store.down = 3  # a restart: three tries fail, the fourth gets through
    recorder.add_test(TestResult("t::a", "passed", 0.1), [Measurement("t::a", "accuracy", 0.5)])
    assert sleeps == [0.5, 1.0, 2.0]
    assert [r.test for r in store.results("run1")] == ["t::a"]
    assert recorder.store_errors == []
    recorder.finish("passed")
    assert store.get_run("run1").status == "passed"  # type: ignore[union-attr]
    assert not recorder.journal_path.exists()


def test_a_store_down_for_good_is_tried_again_after_a_pause_and_the_journal_keeps_everything(
    tmp_path: Path, sleeps: list[float], monkeypatch: pytest.MonkeyPatch, dead_pid: int
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("mltest.recorder.time.monotonic", lambda: clock[0])
    store = FlakyStore()
    spool = tmp_path / "spool"
    recorder = RunRecorder(store, make_run(pid=dead_pid), spool, flush_measured_seconds=0)
    recorder.begin()
    store.down = 10**6
    recorder.add_test(TestResult("t::a", "passed", 0.1), [Measurement("t::a", "accuracy", 0.5)])
    assert sleeps == [0.5, 1.0, 2.0, 4.0]  # 7.5 s of tries, then the run goes on
    assert store.calls == 5
    assert len(recorder.store_errors) == 1
    clock[0] += 10
    recorder.add_test(TestResult("t::b", "passed", 0.1), [Measurement("t::b", "accuracy", 0.75)])
    assert store.calls == 5  # down moments ago: the journal only, no 7.5 s stall per test
    clock[0] += 30
    recorder.add_test(TestResult("t::c", "passed", 0.1))
    assert store.calls == 10  # after the pause: tried again, with backoff
    clock[0] += 1
    try:
        with pytest.raises(BackendUnavailable):
            recorder.finish("passed")
        assert store.calls == 11  # the end of the run: one more try, no second stall
        assert len(recorder.store_errors) == 2  # t::a's and t::c's flushes (t::b's was skipped); finish raised
    finally:
        recorder._journal.close()
    assert recorder.journal_path.is_file()
    good = MemoryStore()  # the database is back: `mltest sync` replays the journal
    assert recover_spool(good, spool) == ["run1"]
    assert good.get_run("run1").status == "passed"  # type: ignore[union-attr]
    assert [r.test for r in good.results("run1")] == ["t::a", "t::b", "t::c"]
    assert len(good.run_measurements("run1")) == 2


def test_a_store_back_before_the_end_leaves_no_error_and_no_journal(tmp_path: Path, sleeps: list[float]) -> None:
    store = FlakyStore()
    recorder = RunRecorder(store, make_run(), tmp_path / "spool", flush_measured_seconds=0)
    recorder.begin()
    store.down = 5  # every try of this write fails...
    recorder.add_test(TestResult("t::a", "passed", 0.1), [Measurement("t::a", "accuracy", 0.5)])
    assert len(recorder.store_errors) == 1
    recorder.finish("passed")  # ...and the store is back for the end of the run
    assert recorder.store_errors == []  # nothing waits for `mltest sync`: no "kept in the journal" line
    assert len(recorder.recovered_errors) == 1
    assert [r.test for r in store.results("run1")] == ["t::a"]
    assert not recorder.journal_path.exists()


def test_other_store_errors_are_not_retried(tmp_path: Path, sleeps: list[float]) -> None:
    store = FlakyStore(error=StoreError)  # a refused write (a constraint, a full disk): retrying cannot help
    recorder = RunRecorder(store, make_run(), tmp_path / "spool", flush_measured_seconds=0)
    recorder.begin()
    store.down = 1
    recorder.add_test(TestResult("t::a", "passed", 0.1), [Measurement("t::a", "accuracy", 0.5)])
    assert (store.calls, sleeps, len(recorder.store_errors)) == (1, [], 1)
    recorder.finish("passed")  # the next write sends what is pending
    assert [r.test for r in store.results("run1")] == ["t::a"]


def test_a_dropped_postgresql_connection_is_backend_unavailable() -> None:
    store = SqlStore("postgresql://db.example/results", None, "postgresql")  # type: ignore[arg-type]
    lost = sa_exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection unexpectedly"), connection_invalidated=True
    )
    refused = sa_exc.OperationalError("SELECT 1", {}, Exception("connection failed: Connection refused"))
    failed = sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key value"))
    assert isinstance(store._error("recording", lost), BackendUnavailable)
    assert isinstance(store._error("recording", refused), BackendUnavailable)
    assert not isinstance(store._error("recording", failed), BackendUnavailable)
    assert str(store._error("recording", lost)) == (
        "recording failed on postgresql://db.example/results: the connection was lost: "
        "server closed the connection unexpectedly"
    )


# ============================================================================= end to end
SUITE = """
from signals import signal, wait_for

def test_a(record):
    record("accuracy", 0.5, support=100)
    signal("a-waiting")
    wait_for("a-go")

def test_b(record):
    record("loss", 0.25)
    signal("b-waiting")
    wait_for("b-go")
"""


@pytest.fixture(scope="module")
def server() -> Iterator[pgserver.PostgresServer]:
    """A PostgreSQL server of this module's own, to restart at will."""
    if pgserver.find_bin_dir() is None:
        pgserver.service_missing(pgserver.MISSING_MESSAGE)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pgserver.service_missing("psycopg is not installed: pip install 'mltest[postgres]'")
    running = pgserver.PostgresServer.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def database(server: pgserver.PostgresServer) -> Iterator[str]:
    server.start_again()  # a test that failed half-way may have left it stopped
    url = server.create_database()
    yield url
    server.start_again()
    server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def project(tmp_path: Path, database: str) -> Path:
    # unit_budget = 0: the tests wait for this test, which would make them over the unit tier's budget
    return make_project(tmp_path / "proj", database, {"test_model.py": SUITE}, config="unit_budget = 0")


def stored(url: str, root: Path) -> tuple[str, list[tuple[str, str]], list[tuple[str, str, float]]]:
    store = open_store(url, root=root)
    try:
        [run] = store.runs()
        results = sorted((r.test.split("::")[1], r.outcome) for r in store.results(run.run_id))
        measured = sorted((m.test.split("::")[1], m.metric, m.value) for m in store.run_measurements(run.run_id))
    finally:
        store.close()
    return run.status, results, measured


EVERYTHING = (
    "passed",
    [("test_a", "passed"), ("test_b", "passed")],
    [("test_a", "accuracy", 0.5), ("test_b", "loss", 0.25)],
)


@pytest.mark.integration
def test_restarts_during_a_run_lose_nothing(
    tmp_path: Path, server: pgserver.PostgresServer, project: Path, database: str
) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    started = time.monotonic()
    with (tmp_path / "run.log").open("wb") as log:
        proc = start_mltest(
            project, "run", "unit", "-p", "no:cacheprovider", log=log, env={"RELIABILITY_SIGNALS": str(signals)}
        )
        try:
            # 1. Restarted while test_a runs: the connection the run holds is dead when test_a ends.
            wait_until(lambda: (signals / "a-waiting").exists(), "test_a to start", proc=proc)
            server.restart()
            (signals / "a-go").touch()
            # 2. Down when test_b's records are written, back 1.5 s later: the write is retried.
            wait_until(lambda: (signals / "b-waiting").exists(), "test_b to start", proc=proc)
            server.stop(remove=False)
            (signals / "b-go").touch()
            wait_until(lambda: "test_b" in journal_text(project), "test_b to end", proc=proc)
            time.sleep(1.5)
            server.start_again()
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = (tmp_path / "run.log").read_text(encoding="utf-8")
    assert proc.returncode == 0, output
    assert "recorded run" in output
    assert "store error" not in output, output
    assert "Traceback" not in output
    assert journal_text(project) == ""  # everything reached the database: nothing for `mltest sync`
    assert stored(database, project) == EVERYTHING
    print(f"\nrestart + 1.5 s outage during a run: completed in {time.monotonic() - started:.1f} s, nothing lost")


@pytest.mark.integration
def test_a_database_down_until_the_end_is_spooled_and_sent_by_sync(
    tmp_path: Path, server: pgserver.PostgresServer, project: Path, database: str
) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    (signals / "b-go").touch()  # test_b does not wait
    with (tmp_path / "run.log").open("wb") as log:
        proc = start_mltest(
            project, "run", "unit", "-p", "no:cacheprovider", log=log, env={"RELIABILITY_SIGNALS": str(signals)}
        )
        try:
            wait_until(lambda: (signals / "a-waiting").exists(), "test_a to start", proc=proc)
            server.stop(remove=False)  # and it stays down until the run has ended
            (signals / "a-go").touch()
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = (tmp_path / "run.log").read_text(encoding="utf-8")
    assert proc.returncode == 0, output  # the tests passed: an unreachable store never fails them
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("store error: ")]
    assert len(errors) == 2, output  # test_a's write, and the end of the run (test_b's came while offline)
    assert all("for `mltest sync`" in line and "cannot reach the store" in line for line in errors), errors
    spooled = journal_text(project)
    assert "test_model.py::test_b" in spooled  # the whole run, to its end, is in the journal
    assert '"type":"finish"' in spooled

    while_down = mltest(project, "sync")  # still down: one line, exit 2, the journal stays
    assert while_down.returncode == 2
    assert while_down.stderr.startswith("mltest: error: cannot reach the store postgresql://")
    assert journal_text(project) == spooled

    server.start_again()
    synced = mltest(project, "sync")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("sent 1 spooled run(s)"), synced.stdout
    assert journal_text(project) == ""
    assert stored(database, project) == EVERYTHING
