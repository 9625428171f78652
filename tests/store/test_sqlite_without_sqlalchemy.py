"""A SQLite store whose schema is current runs on plain ``sqlite3``: SQLAlchemy is imported only to
create or migrate a schema (mltest/store/sql.py). What every recording session opens must not pay
for it; everything else behaves as before (one-line errors naming the store, rollbacks, threads)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mltest.errors import StoreError
from mltest.model import SCHEMA_VERSION, Commit, Environment, Measurement, Run, TestResult, utc_now
from mltest.store import open_store
from mltest.store.sql import MIGRATIONS

ENV = Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0", flags=(("seed", "0"),))


def _run(run_id: str, *, started_at: str | None = None) -> Run:
    commit = Commit("a" * 40, branch="main", parents=("b" * 40,), ancestry=("b" * 40,))
    return Run(
        run_id=run_id, project="p", tier="unit", commit=commit, environment=ENV, started_at=started_at or utc_now()
    )


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


SQLALCHEMY_MODULES = "sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy')"


@pytest.mark.integration  # fresh interpreters
def test_a_current_sqlite_store_is_read_and_written_without_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    open_store(url).close()  # created (and migrated) here: the schema is current from now on
    out = _python(
        f"""
        import os, socket, sys
        from pathlib import Path
        from mltest.model import Acknowledgement, Commit, Environment, Measurement, Run, TestResult, utc_now
        from mltest.recorder import open_recovered
        env = Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0")
        store = open_recovered({url!r}, Path({str(tmp_path)!r}))  # also settles crashed runs (reads runs)
        dead = Run("dead", "p", "unit", Commit("c" * 40), env, utc_now(), hostname=socket.gethostname(), pid=None)
        run = Run("r1", "p", "unit", Commit("a" * 40, branch="main", ancestry=("b" * 40,)), env, utc_now())
        store.begin_run(dead)
        store.begin_run(run)
        m = Measurement("t::a", "loss", 0.5, None, False, (0.4, 0.6), 0.1, 10)
        store.add_results("r1", [TestResult("t::a", "passed", 0.25)], [m])
        store.finish_run("r1", "passed", utc_now())
        store.mark_aborted(["dead"], utc_now())
        assert [r.run_id for r in store.runs()] == ["r1", "dead"], store.runs()
        assert store.get_run("dead").status == "aborted"
        assert store.results("r1") == [TestResult("t::a", "passed", 0.25)]
        assert store.run_measurements("r1") == [m]
        assert store.test_durations(project="p") == {{"t::a": 0.25}}
        assert [row.value for row in store.series(test="t::a", metric="loss", branch="main")] == [0.5]
        assert store.first_parent_links() == {{"a" * 40: "b" * 40}}
        store.add_acknowledgement(Acknowledgement("t::a", "known", "me", utc_now()))
        assert [a.target for a in store.acknowledgements()] == ["t::a"]
        store.save_detection_states({{"k": "s"}})
        assert store.detection_states(["k"]) == {{"k": "s"}}
        assert [r.run_id for r in store.pending_runs("sink")] == ["dead", "r1"]
        store.mark_delivered("sink", ["r1"], utc_now())
        assert list(store.deliveries("sink")) == ["r1"]
        assert store.schema_version() == {SCHEMA_VERSION}
        store.close()
        print({SQLALCHEMY_MODULES})
        """
    )
    assert out == "[]"


@pytest.mark.integration  # fresh interpreters
def test_a_store_to_create_or_migrate_uses_sqlalchemy_once(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    with sqlite3.connect(path) as conn:  # a store as schema version 4 left it
        for _, statements in MIGRATIONS[:4]:
            for statement in statements:
                assert isinstance(statement, str)
                conn.execute(statement)
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '4')")
    conn.close()
    check = f"""
        import sys
        from mltest.store import open_store
        store = open_store("sqlite:///{path}")
        version = store.schema_version()
        store.close()
        print(version, {SQLALCHEMY_MODULES} != [])
        """
    assert _python(check) == f"{SCHEMA_VERSION} True"  # migrated, with SQLAlchemy
    assert _python(check) == f"{SCHEMA_VERSION} False"  # current: opened without it
    fresh = check.replace(str(path), str(tmp_path / "new.db"))
    assert _python(fresh) == f"{SCHEMA_VERSION} True"  # created, with SQLAlchemy


def test_a_failed_write_is_rolled_back_and_the_store_goes_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    store = open_store(url)
    try:
        store.begin_run(_run("r1"))
        good = TestResult("t::a", "passed", 0.1)
        bad = TestResult(None, "passed", 0.1)  # type: ignore[arg-type]  # NOT NULL
        with pytest.raises(StoreError) as caught:
            store.add_results("r1", [good, bad], [])
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"recording results of run r1 failed on {url}: ")
        assert "NOT NULL" in message
        assert store.results("r1") == []  # the transaction is gone whole: not even the good row
        store.add_results("r1", [good], [Measurement("t::a", "loss", 0.5)])  # the connection is fine
        assert store.results("r1") == [good]
    finally:
        store.close()


def test_a_broken_store_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    store = open_store(url)
    try:
        with sqlite3.connect(tmp_path / "results.db") as conn:
            conn.execute("DROP TABLE test_results")
        conn.close()
        with pytest.raises(StoreError) as caught:
            store.results("r1")
        assert str(caught.value) == f"reading results of run r1 failed on {url}: no such table: test_results"
    finally:
        store.close()


def test_threads_share_one_store(tmp_path: Path) -> None:
    """A recorder's timer thread writes while its main thread does: each write takes a connection of
    its own from the store's pool."""
    store = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for i in range(20):
                store.add_results("r1", [TestResult(f"t::{thread}_{i}", "passed", 0.1)], [])
                store.runs()
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        store.begin_run(_run("r1"))
        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(store.results("r1")) == 80
    finally:
        store.close()


def _in_database_file(path: Path, query: str) -> list[tuple[object, ...]]:
    """``query`` on the database file alone, as a copy of it would answer (the write-ahead log unread)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_a_checkpoint_moves_the_write_ahead_log_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    open_store(f"sqlite:///{path}").close()  # the schema, in the database file
    store = open_store(f"sqlite:///{path}")
    try:
        store.begin_run(_run("r1"))
        store.add_results("r1", [TestResult("t::a", "passed", 0.1)], [])
        assert _in_database_file(path, "SELECT test FROM test_results") == []  # in the log only, so far
        store.checkpoint()  # type: ignore[attr-defined]  # SqlStore's own
        assert _in_database_file(path, "SELECT test FROM test_results") == [("t::a",)]
        assert store.results("r1") == [TestResult("t::a", "passed", 0.1)]  # and the store goes on
    finally:
        store.close()
