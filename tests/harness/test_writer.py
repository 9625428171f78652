"""The store writer process (mltest/harness/writer.py), driven the way a recording session drives it."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mltest.harness.recording import journal_line
from mltest.harness.writer import Writer
from mltest.model import Commit, Environment, Measurement, Run, TestResult, utc_now
from mltest.store import open_store

pytestmark = pytest.mark.integration  # each test starts a writer process


def _request() -> dict[str, object]:
    return {
        "project": "demo",
        "tier": "unit",
        "started_at": utc_now(),
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "flags": {"seed": "0"},
        "torch": None,
    }


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    started = Writer.start(f"sqlite:///{tmp_path / 'results.db'}", tmp_path)
    assert started is not None
    yield started
    started.close(kill=True)


def _dumps(entry: object) -> str:
    return json.dumps(entry, separators=(",", ":")) + "\n"


def _begin_journal(answer: dict[str, object]) -> Path:
    """What the session does with the writer's first answer: the run becomes the journal's first line."""
    path = Path(str(answer["journal"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dumps({"type": "run", "run": answer["run"]}), encoding="utf-8")
    return path


def _append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as journal:
        journal.write("".join(lines))


def test_the_writer_begins_the_run_then_stores_what_the_journal_holds(writer: Writer, tmp_path: Path) -> None:
    assert writer.run(_request())
    answer = writer.ready()
    assert answer is not None, "the writer died"
    assert set(answer) == {"run", "notes", "url", "journal"}
    run_id = answer["run"]["run_id"]
    assert answer["run"]["pid"] == os.getpid()  # the session's, which is what tells a dead run
    assert answer["notes"] == [  # tmp_path is no git checkout
        "not in a git checkout and no CI commit variables: results are recorded against commit 'unknown'"
    ]
    store = open_store(str(answer["url"]), root=tmp_path)
    try:
        stored = store.get_run(run_id)
        assert stored is not None
        assert stored.status == "running"  # in the store before the session runs a test
    finally:
        store.close()

    journal = _begin_journal(answer)
    loss = Measurement("t.py::test_b", "loss", 0.25, None, False, (0.2, 0.3), 0.1, None)
    _append(
        journal,
        journal_line("t.py::test_a", "passed", 0.01, 0, False),
        _dumps(
            {
                "type": "test",
                "result": dataclasses.asdict(TestResult("t.py::test_b", "failed", 0.02)),
                "measurements": [dataclasses.asdict(loss)],
            }
        ),
        journal_line("t.py::test_c", "skipped", 0.0, 0, False),
        _dumps({"type": "finish", "status": "failed", "finished_at": utc_now()}),
    )
    assert writer.finish("failed", utc_now()) == {"store_errors": [], "notes": []}
    writer.close()
    assert not journal.exists()  # everything is in the store: nothing waits for `mltest sync`
    store = open_store(str(answer["url"]), root=tmp_path)
    try:
        stored = store.get_run(run_id)
        assert stored is not None
        assert stored.status == "failed"
        assert [(r.test, r.outcome) for r in store.results(run_id)] == [
            ("t.py::test_a", "passed"),
            ("t.py::test_b", "failed"),
            ("t.py::test_c", "skipped"),
        ]
        assert store.run_measurements(run_id) == [loss]
    finally:
        store.close()


def test_when_the_session_dies_the_writer_sends_the_journal_and_leaves_the_run_running(
    writer: Writer, tmp_path: Path
) -> None:
    assert writer.run(_request())
    answer = writer.ready()
    assert answer is not None
    journal = _begin_journal(answer)
    _append(journal, journal_line("t.py::test_a", "passed", 0.01, 0, False))
    writer.close()  # the session's end of the pipe closes without a finish: it was killed
    store = open_store(str(answer["url"]), root=tmp_path)
    try:
        stored = store.get_run(answer["run"]["run_id"])
        assert stored is not None
        assert stored.status == "running"  # the next command that opens the store settles it
        assert [r.test for r in store.results(stored.run_id)] == ["t.py::test_a"]
    finally:
        store.close()
    assert journal.is_file()  # for that settling, or `mltest sync`


def test_a_store_that_cannot_be_opened_is_the_first_answer(tmp_path: Path) -> None:
    (tmp_path / "results.db").mkdir()
    started = Writer.start(f"sqlite:///{tmp_path / 'results.db'}", tmp_path)
    assert started is not None
    try:
        started.run(_request())  # the writer may have answered and gone already: its answer waits
        answer = started.ready()
    finally:
        started.close()
    assert answer is not None
    assert set(answer) == {"error"}
    assert "results.db" in answer["error"]


def test_the_writer_settles_crashed_runs_once_the_session_runs(writer: Writer, tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    crashed = Run(
        run_id="crashed",
        project="demo",
        tier="unit",
        commit=Commit("a" * 40),
        environment=Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0"),
        started_at="2024-01-01T00:00:00+00:00",
        hostname=socket.gethostname(),
        pid=int(dead.stdout),
    )
    spool = tmp_path / ".mltest" / "spool"
    spool.mkdir(parents=True)
    header = _dumps({"type": "run", "run": dataclasses.asdict(crashed)})
    (spool / "crashed.jsonl").write_text(header + journal_line("t.py::old", "passed", 1.0, 0, False), encoding="utf-8")
    assert writer.run(_request())
    answer = writer.ready()
    assert answer is not None
    _begin_journal(answer)
    assert writer.finish("passed", utc_now()) == {"store_errors": [], "notes": []}
    writer.close()
    store = open_store(str(answer["url"]), root=tmp_path)
    try:
        replayed = store.get_run("crashed")
        assert replayed is not None
        assert replayed.status == "aborted"
        assert [r.test for r in store.results("crashed")] == ["t.py::old"]
    finally:
        store.close()
    assert list(spool.glob("*.jsonl")) == []


def test_a_writer_asked_nothing_ends_without_beginning_a_run(tmp_path: Path) -> None:
    started = Writer.start(f"sqlite:///{tmp_path / 'results.db'}", tmp_path)
    assert started is not None
    started.close()  # pytest --version: configure never came
    if (tmp_path / "results.db").exists():
        store = open_store(f"sqlite:///{tmp_path / 'results.db'}")
        try:
            assert store.runs() == []
        finally:
            store.close()


def test_the_writer_moves_what_it_stores_into_the_database_file_as_it_goes(writer: Writer, tmp_path: Path) -> None:
    """SQLite: the write-ahead log goes into the database file while the tests run (at most every
    CHECKPOINT_SECONDS), so little of it is left for the close the session waits for."""
    assert writer.run(_request())
    answer = writer.ready()
    assert answer is not None
    journal = _begin_journal(answer)
    _append(journal, journal_line("t.py::test_a", "passed", 0.01, 0, False))
    uri = f"file:{tmp_path / 'results.db'}?immutable=1"  # the database file alone: the log unread
    deadline = time.monotonic() + 30
    found: list[tuple[str]] = []
    while not found and time.monotonic() < deadline:
        time.sleep(0.05)
        conn = sqlite3.connect(uri, uri=True)
        try:
            found = conn.execute("SELECT test FROM test_results").fetchall()
        except sqlite3.DatabaseError:  # read in the middle of a checkpoint: again
            pass
        finally:
            conn.close()
    assert found == [("t.py::test_a",)]
    assert writer.finish("passed", utc_now()) == {"store_errors": [], "notes": []}


def _probed_writer(url: str, root: Path, report: Path) -> Writer:
    """A writer started as :meth:`Writer.start` starts it, which writes to ``report``, as it ends, the
    SQLAlchemy modules it imported."""
    code = (
        "import sys; from mltest.harness import writer; end = writer._exit; "
        f"writer._exit = lambda: (Path({str(report)!r}).write_text(repr(sorted(m for m in sys.modules "
        "if m.split('.')[0] == 'sqlalchemy'))), end()); writer.main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pathlib import Path; " + code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    started = Writer(proc)
    assert started._send({"store_url": url, "root": str(root)})
    return started


def test_the_writer_records_into_a_current_sqlite_store_without_importing_sqlalchemy(tmp_path: Path) -> None:
    """Every session but a project's first (or the first after an upgrade) finds the schema current:
    its writer then never imports SQLAlchemy, most of what opening the store used to cost."""
    url = f"sqlite:///{tmp_path / 'results.db'}"
    imported = []
    for n in range(2):
        report = tmp_path / f"modules{n}.txt"
        started = _probed_writer(url, tmp_path, report)
        try:
            assert started.run(_request())
            answer = started.ready()
            assert answer is not None
            assert "run" in answer, answer
            journal = _begin_journal(answer)
            _append(journal, journal_line(f"t.py::test_{n}", "passed", 0.01, 0, False))
            assert started.finish("passed", utc_now()) == {"store_errors": [], "notes": []}
        finally:
            started.close()
        imported.append(report.read_text(encoding="utf-8"))
    assert imported[0] != "[]"  # the first creates the schema
    assert imported[1] == "[]"
    store = open_store(url)
    try:
        assert sorted(r.test for run in store.runs() for r in store.results(run.run_id)) == [
            "t.py::test_0",
            "t.py::test_1",
        ]
    finally:
        store.close()


@pytest.mark.parametrize(
    "nodeid",
    [
        "tests/test_a.py::test_x",
        'tests/test_a.py::test_x[a"b\\c]',
        "tests/test_ü.py::test_x[\u2028\x1f\n]",
    ],
)
@pytest.mark.parametrize("duration", [0.0, 1e-07, 0.1 + 0.2, 12345.678])
def test_a_journal_line_is_the_json_of_its_entry(nodeid: str, duration: float) -> None:
    result = TestResult(nodeid, "passed", duration, 2, True)
    entry = {"type": "test", "result": dataclasses.asdict(result), "measurements": []}
    assert journal_line(nodeid, "passed", duration, 2, True) == _dumps(entry)
    assert json.loads(journal_line(nodeid, "xfailed", duration, 0, False))["result"]["outcome"] == "xfailed"
