"""Killed runs: a real ``mltest run integration`` is killed with SIGKILL in the middle of an integration
test. What the finished tests recorded is intact, the run shows as aborted the next time the store is
opened, and the next run on the same store works, on SQLite and on PostgreSQL.

Two ways the kill can end: the machine survives and its local journal with it (``mltest sync`` replays
it), or the machine goes too, as an ephemeral CI runner does (only what reached the store is left, and
``mltest runs`` marks the dead run aborted).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from procs import journal_text, make_project, mltest, start_mltest, wait_until

from mltest.store import open_store

pytestmark = pytest.mark.integration  # starts mltest processes (and a PostgreSQL server)

SUITE = """
import time, pytest
from signals import signal

@pytest.mark.integration
def test_a_done(record):
    time.sleep(0.2)  # a real test takes a moment: its records are sent to the store as it ends
    record("accuracy", 0.5, support=100)
    record("loss", 0.25)

@pytest.mark.integration
def test_b_killed(record):
    record("accuracy", 0.75)  # in flight: lost with the process, and only this
    signal("b-running")
    time.sleep(600)
"""

NEXT_SUITE = """
import pytest

@pytest.mark.integration
def test_after(record):
    record("accuracy", 0.875)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def killed_run(tmp_path: Path, store_url: str) -> Path:
    """A project whose `mltest run integration` was killed (SIGKILL) while test_b_killed ran."""
    project = make_project(tmp_path / "proj", store_url, {"test_model.py": SUITE})
    signals = tmp_path / "signals"
    signals.mkdir()
    with (tmp_path / "run.log").open("wb") as log:
        proc = start_mltest(
            project,
            "run",
            "integration",
            "-p",
            "no:cacheprovider",
            log=log,
            env={"RELIABILITY_SIGNALS": str(signals)},
        )
        try:
            wait_until(lambda: (signals / "b-running").exists(), "test_b_killed to start", proc=proc)
            assert "test_a_done" in journal_text(project)  # journaled (and sent) before test_b began
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return project


def runs_json(project: Path) -> list[dict[str, object]]:
    listed = mltest(project, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""
    runs: list[dict[str, object]] = json.loads(listed.stdout)
    return runs


def stored(url: str, root: Path, run_id: object) -> tuple[list[tuple[str, str]], list[tuple[str, str, float]]]:
    store = open_store(url, root=root)
    try:
        results = [(r.test.split("::")[1], r.outcome) for r in store.results(str(run_id))]
        measurements = [(m.test.split("::")[1], m.metric, m.value) for m in store.run_measurements(str(run_id))]
    finally:
        store.close()
    return sorted(results), sorted(measurements)


@pytest.mark.parametrize("journal", ["journal-kept", "journal-lost"])
def test_killed_run_keeps_finished_tests_shows_aborted_and_the_store_works_on(
    killed_run: Path, store_url: str, journal: str
) -> None:
    project = killed_run
    store = open_store(store_url, root=project)  # as the kill left it (open_store settles nothing)
    try:
        assert [r.status for r in store.runs()] == ["running"]
    finally:
        store.close()
    if journal == "journal-kept":
        # The next command that opens the store settles the dead run: replayed from the journal, aborted.
        synced = mltest(project, "sync")
        assert synced.returncode == 0, synced.stderr
        assert synced.stdout.startswith("sent 1 spooled run(s), marked 0 dead run(s) aborted"), synced.stdout
        assert synced.stderr == ""
    else:
        # The runner died with the process: no journal; the store alone shows the dead run.
        for path in (project / ".mltest" / "spool").glob("*.jsonl"):
            path.unlink()
    [run] = runs_json(project)
    assert run["status"] == "aborted"
    assert run["finished_at"] is not None
    assert journal_text(project) == ""  # nothing left waiting
    results, measurements = stored(store_url, project, run["run_id"])
    assert results == [("test_a_done", "passed")]  # the killed test has no outcome: it never ended
    assert measurements == [("test_a_done", "accuracy", 0.5), ("test_a_done", "loss", 0.25)]

    # The next run on the same store works, and the aborted run stays as it was.
    (project / "test_model.py").write_text(NEXT_SUITE, encoding="utf-8")
    again = mltest(project, "run", "integration", "-p", "no:cacheprovider")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "recorded run" in again.stdout
    assert "Traceback" not in again.stderr
    newest, oldest = runs_json(project)
    assert (newest["status"], oldest["status"]) == ("passed", "aborted")
    assert oldest["run_id"] == run["run_id"]
    assert stored(store_url, project, newest["run_id"]) == (
        [("test_after", "passed")],
        [("test_after", "accuracy", 0.875)],
    )
    assert stored(store_url, project, run["run_id"]) == (results, measurements)
