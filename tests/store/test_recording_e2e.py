"""Recording end to end: real `mltest run` processes, a real git repository, real SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gitrepo import git

from mltest.store import open_store
from mltest.store.history import history_frame

pytestmark = pytest.mark.integration  # every test here starts mltest processes

SUITE = """
import time, pytest

@pytest.mark.integration
def test_train(record):
    record("accuracy", ACCURACY, support=1000)
    record.time(lambda: sum(range(2000)), repeat=5)

@pytest.mark.integration
def test_fails():
    assert False

def test_unit():
    pass
"""


def mltest(
    repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLTEST_", "GITHUB_", "CI_"))}
    base.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mltest", *args],
        cwd=repo,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def make_repo(tmp_path: Path, store_url: str, accuracy: float = 0.9) -> Path:
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text(
        f'[tool.mltest]\nstore_url = "{store_url}"\ndevice = "cpu"\n'
        "[tool.mltest.metrics.accuracy]\nhigher_is_better = true\ntolerance = '1%'\n",
        encoding="utf-8",
    )
    (repo / "test_model.py").write_text(SUITE.replace("ACCURACY", str(accuracy)), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first model")
    return repo


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_two_commits_two_runs_in_commit_order_with_xdist(tmp_path: Path, store_url: str) -> None:
    repo = make_repo(tmp_path, store_url, accuracy=0.9)
    first = git(repo, "rev-parse", "HEAD")
    run1 = mltest(repo, "run", "integration", "--mltest-device=cpu", "-n", "2", "-p", "no:cacheprovider")
    assert run1.returncode == 1, run1.stdout  # test_fails fails
    (repo / "test_model.py").write_text(SUITE.replace("ACCURACY", "0.8"), encoding="utf-8")
    git(repo, "commit", "-q", "-am", "lower the learning rate")
    second = git(repo, "rev-parse", "HEAD")
    mltest(repo, "run", "integration", "--mltest-device=cpu", "-n", "2", "-p", "no:cacheprovider")

    store = open_store(store_url, root=repo)
    try:
        runs = store.runs()
        assert [r.commit.sha for r in runs] == [second, first]  # newest first; exactly one row per session
        assert {r.status for r in runs} == {"failed"}
        assert runs[0].commit.subject == "lower the learning rate"
        assert runs[0].commit.branch == "main"
        assert runs[0].commit.parents == (first,)
        assert runs[0].commit.author == "Ada <ada@example.com>"
        assert runs[0].tier == "integration"
        assert runs[0].project == "proj"
        assert runs[0].environment.key.startswith("cpu: ")
        assert runs[0].environment.torch
        assert ("seed", "0") in runs[0].environment.flags
        results = {r.test: r.outcome for r in store.results(runs[0].run_id)}
        assert results == {"test_model.py::test_train": "passed", "test_model.py::test_fails": "failed"}
        measured = {m.metric: m for m in store.run_measurements(runs[0].run_id)}
        assert set(measured) == {"accuracy", "step_time"}
        assert measured["accuracy"].value == 0.8
        assert measured["accuracy"].support == 1000
        assert measured["accuracy"].higher_is_better is True
        assert measured["step_time"].unit == "s"
        assert len(measured["step_time"].samples) == 5
        frame = history_frame(store, test="test_model.py::test_train", metric="accuracy")
        assert list(frame["sha"]) == [first, second]
        assert list(frame["value"]) == [0.9, 0.8]
    finally:
        store.close()

    shown = mltest(repo, "history", "test_model.py::test_train", "accuracy", "--branch", "main")
    lines = shown.stdout.splitlines()
    assert lines[2].split()[:2] == ["0", first[:10]]
    assert "first model" in lines[2]
    assert lines[3].split()[:2] == ["1", second[:10]]
    assert "lower the learning rate" in lines[3]
    listed = mltest(repo, "runs")
    assert listed.stdout.count("failed") == 2
    assert second[:10] in listed.stdout


def test_shallow_clone_run_lands_after_the_recorded_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    repo = make_repo(tmp_path, url)
    mltest(repo, "run", "integration", "--mltest-device=cpu", "-p", "no:cacheprovider", "-k", "train")
    for n in range(3):
        (repo / f"f{n}.txt").write_text(str(n), encoding="utf-8")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"change {n}", f"--date=2000-01-0{n + 1}T00:00:00")  # old author dates
    mltest(repo, "run", "integration", "--mltest-device=cpu", "-p", "no:cacheprovider", "-k", "train")
    head = git(repo, "rev-parse", "HEAD")
    # A CI checkout: depth 1, detached, branch from the CI variable.
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    (clone / "f9.txt").write_text("9", encoding="utf-8")
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "from CI", "--date=1999-01-01T00:00:00")
    git(clone, "checkout", "-q", "--detach")
    ci_head = git(clone, "rev-parse", "HEAD")
    proc = mltest(
        clone,
        "run",
        "integration",
        "--mltest-device=cpu",
        "-p",
        "no:cacheprovider",
        "-k",
        "train",
        env={"GITHUB_REF_NAME": "main", "GITHUB_SHA": ci_head},
    )
    assert "1 passed" in proc.stdout
    store = open_store(url, root=repo)
    try:
        frame = history_frame(store, test="test_model.py::test_train", metric="accuracy", branch="main")
    finally:
        store.close()
    # The recorded first-parent links order the runs despite the misleading dates.
    assert list(frame["sha"])[-2:] == [head, ci_head]


def test_no_record_and_pull_request_unit_tier_write_nothing(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    repo = make_repo(tmp_path, f"sqlite:///{db}")
    proc = mltest(repo, "run", "unit", "--no-record", "-p", "no:cacheprovider")
    assert proc.returncode == 0
    assert "not recorded: recording is off" in proc.stdout
    proc = mltest(repo, "run", "unit", "-p", "no:cacheprovider", env={"GITHUB_EVENT_NAME": "pull_request"})
    assert proc.returncode == 0
    assert "not recorded: a pull request's unit tier is not recorded" in proc.stdout
    assert not db.exists()
    proc = mltest(
        repo,
        "run",
        "unit",
        "--record-pull-requests",
        "-p",
        "no:cacheprovider",
        env={"GITHUB_EVENT_NAME": "pull_request"},
    )
    assert "recorded run" in proc.stdout
    assert db.exists()


def test_reruns_are_recorded_as_flaky(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    repo = make_repo(tmp_path, url)
    (repo / "test_model.py").write_text(
        "import pathlib\n"
        "def test_flaky():\n"
        "    marker = pathlib.Path(__file__).parent / 'ran'  # fails on the first attempt only\n"
        "    first = not marker.exists()\n"
        "    marker.write_text('x')\n"
        "    assert not first\n",
        encoding="utf-8",
    )
    proc = mltest(repo, "run", "unit", "--reruns", "2", "-p", "no:cacheprovider")
    assert proc.returncode == 0, proc.stdout
    store = open_store(url, root=repo)
    try:
        (run,) = store.runs()
        results = store.results(run.run_id)
    finally:
        store.close()
    assert [(r.attempt, r.outcome, r.flaky) for r in results] == [(0, "failed", False), (1, "passed", True)]


def test_kill_9_mid_run_keeps_finished_tests_and_shows_the_run_aborted(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    repo = make_repo(tmp_path, f"sqlite:///{db}")
    (repo / "test_model.py").write_text(
        "import time, pytest\n"
        "@pytest.mark.integration\n"
        "def test_a_done(record):\n    record('accuracy', 0.5)\n"
        "@pytest.mark.integration\n"
        "def test_b_hangs(record):\n    record('accuracy', 0.7)\n    time.sleep(120)\n",
        encoding="utf-8",
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLTEST_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mltest", "run", "integration", "--mltest-device=cpu", "-p", "no:cacheprovider"],
        cwd=repo,
        env=base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    spool = repo / ".mltest" / "spool"
    while time.monotonic() < deadline:
        journals = list(spool.glob("*.jsonl")) if spool.exists() else []
        if journals and "test_a_done" in journals[0].read_text(encoding="utf-8"):
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the first test never reached the journal")
    time.sleep(0.5)  # well inside test_b's sleep
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    listed = mltest(repo, "runs")
    assert "aborted" in listed.stdout, listed.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select test, metric, value from measurements").fetchall()
        statuses = conn.execute("select status from runs").fetchall()
    assert rows == [("test_model.py::test_a_done", "accuracy", 0.5)]  # the in-flight test is the only loss
    assert statuses == [("aborted",)]
    assert not list(spool.glob("*.jsonl"))
    # The store still works for a new run.
    (repo / "test_model.py").write_text("def test_ok():\n    pass\n", encoding="utf-8")
    again = mltest(repo, "run", "unit", "-p", "no:cacheprovider")
    assert again.returncode == 0
    with sqlite3.connect(db) as conn:
        assert sorted(s for (s,) in conn.execute("select status from runs")) == ["aborted", "passed"]


def test_bad_store_url_is_a_one_line_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "mysql://db.example/results")
    proc = mltest(repo, "run", "unit", "-p", "no:cacheprovider")
    assert proc.returncode == 4
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "ERROR: mltest: cannot record this run: unsupported store URL scheme 'mysql' in "
        "'mysql://db.example/results': use sqlite:///PATH or postgresql://USER@HOST/DB "
        "(--mltest-no-record runs without)"
    ]
