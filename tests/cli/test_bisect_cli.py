"""`mltest bisect` against a real git repository built in tmp_path (tests/gitrepo.py) and its SQLite store.

Every measured commit runs pytest ``--repeats`` times in a separate process (about 3 s each here: tier
``all`` captures the torch environment), so the searches are kept short. The inner runs get
``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` (only ``-p mltest``, which bisect passes itself, is loaded), which
saves the second that autoloaded plugins such as hypothesis cost each of them.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from gitrepo import git, isolate_git

from mltest.cli import main
from mltest.model import Commit, Environment, Measurement, Run
from mltest.store import open_store

pytestmark = pytest.mark.integration  # git subprocesses, and pytest subprocesses per measured commit

TEST_ID = "tests/test_speed.py::test_speed"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
PYPROJECT = '[tool.mltest]\nproject = "bis"\n\n[tool.pytest.ini_options]\npythonpath = ["."]\n'
TIMED_TEST = (
    'from slow import work\n\n\ndef test_speed(record):\n    record.time(work, warmup=1, repeat=5, name="step_time")\n'
)
# Records a fixed cost instead of a timing: both ends measure exactly the same.
FIXED_TEST = 'from slow import COST\n\n\ndef test_speed(record):\n    record("step_time", COST, "s")\n'


@pytest.fixture(autouse=True)
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No outside git config or repository; bisect's temporary worktrees go to a folder we can inspect."""
    isolate_git(monkeypatch, tmp_path)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _write_module(repo: Path, delay: float, revision: int) -> None:
    text = f"import time\n\nCOST = {delay}\n\n\ndef work():\n    time.sleep(COST)\n\n\nREVISION = {revision}\n"
    (repo / "slow.py").write_text(text, encoding="utf-8")


def make_repo(
    root: Path, *, commits: int = 16, slow_from: int | None = 11, test_text: str = TIMED_TEST
) -> tuple[Path, list[str]]:
    """``repo`` with a good commit (index 0) and ``commits`` more, each changing slow.py; from
    ``slow_from`` on, ``work()`` takes 12 ms instead of 4 ms. Returns the repo and its shas, oldest first."""
    repo = root / "repo"
    (repo / "tests").mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    (repo / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (repo / ".gitignore").write_text(".mltest/\n", encoding="utf-8")
    (repo / "tests" / "test_speed.py").write_text(test_text, encoding="utf-8")
    shas = []
    for i in range(commits + 1):
        slow = slow_from is not None and i >= slow_from
        _write_module(repo, 0.012 if slow else 0.004, i)
        subject = "good" if i == 0 else f"change {i}" + (" (slower)" if i == slow_from else "")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", subject, date=(T0 + timedelta(hours=i)).isoformat())
        shas.append(git(repo, "rev-parse", "HEAD"))
    return repo, shas


def bisect(repo: Path, *args: str) -> int:
    return main(
        [
            "bisect",
            "--test",
            TEST_ID,
            "--metric",
            "step_time",
            *args,
            "--device",
            "cpu",
            "--project-dir",
            str(repo),
        ]
    )


def store_runs(repo: Path) -> list[Run]:
    store = open_store("sqlite:///.mltest/results.db", root=repo)
    try:
        return store.runs(limit=10_000)
    finally:
        store.close()


def assert_clean(repo: Path, scratch: Path) -> None:
    """Only the main worktree is left, and no temporary directory of bisect."""
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert list(scratch.iterdir()) == []


# ----------------------------------------------------------------------------- a real search


def test_bisect_names_the_planted_commit(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, shas = make_repo(tmp_path)
    monkeypatch.chdir(repo)
    good, bad, planted = shas[0], shas[-1], shas[11]
    assert bisect(repo, "--good", good, "--bad", bad, "--repeats", "3") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"mltest bisect: {TEST_ID} step_time over 16 commits ({good[:10]}..{bad[:10]}), 3 runs")
    assert lines[1].startswith(f"  good  {good[:10]} 'good'  median 0.004")
    assert lines[2].startswith(f"  bad   {bad[:10]} 'change 16'  median 0.01")
    prefix = f"first bad commit: {planted[:10]} 'change 11 (slower)' (after "
    assert lines[-1].startswith(prefix), captured
    measured = int(lines[-1].removeprefix(prefix).split()[0])
    assert 1 <= measured <= 5  # log2(16) + 1
    assert len([line for line in lines if line.startswith("  [")]) == measured

    runs = store_runs(repo)
    assert {r.commit.branch for r in runs} == {"main"}
    assert {r.project for r in runs} == {"bis"}
    assert {r.status for r in runs} == {"passed"}
    by_sha: dict[str, int] = {}
    for r in runs:
        by_sha[r.commit.sha] = by_sha.get(r.commit.sha, 0) + 1
    assert {good, bad, planted} <= by_sha.keys()
    assert len(by_sha) == 2 + measured
    assert set(by_sha.values()) == {3}  # --repeats 3, no re-measuring needed for a 3x slowdown
    assert_clean(repo, scratch)


# ----------------------------------------------------------------------------- no measuring needed


def test_bisect_range_of_one_commit_names_it_without_running(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, shas = make_repo(tmp_path, commits=12)
    monkeypatch.chdir(repo)
    assert bisect(repo, "--good", shas[10][:12], "--bad", shas[11][:12], "--repeats", "3") == 0
    out = capsys.readouterr().out
    assert out == f"first bad commit: {shas[11][:10]} 'change 11 (slower)' (the only commit after {shas[10][:10]})\n"
    assert store_runs(repo) == []
    assert_clean(repo, scratch)


def test_bisect_without_a_range_takes_the_detected_regression(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recorded history of the repo's commits that jumps at commit 11: bisect's range is (10, 11)."""
    repo, shas = make_repo(tmp_path)
    monkeypatch.chdir(repo)
    rng = np.random.default_rng(5)
    env = Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0")
    store = open_store("sqlite:///.mltest/results.db", root=repo)
    try:
        for i, sha in enumerate(shas):
            level = 0.012 if i >= 11 else 0.004
            samples = tuple(float(v) for v in level * (1 + 0.02 * rng.standard_normal(5)))
            ancestry = tuple(reversed(shas[:i]))
            when = (T0 + timedelta(hours=i)).isoformat()
            commit = Commit(sha, "main", parents=ancestry[:1], committed_at=when, ancestry=ancestry)
            run = Run(hashlib.sha1(sha.encode()).hexdigest()[:12], "bis", "all", commit, env, started_at=when)
            store.begin_run(run)
            store.add_results(run.run_id, [], [Measurement(TEST_ID, "step_time", float(np.median(samples)), "s")])
            store.finish_run(run.run_id, "passed", when)
    finally:
        store.close()
    assert bisect(repo, "--repeats", "3") == 0
    out = capsys.readouterr().out
    assert out == f"first bad commit: {shas[11][:10]} 'change 11 (slower)' (the only commit after {shas[10][:10]})\n"
    assert len(store_runs(repo)) == len(shas)  # nothing measured
    assert_clean(repo, scratch)


# ----------------------------------------------------------------------------- refusals


def test_bisect_good_must_be_a_first_parent_ancestor_of_bad(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, shas = make_repo(tmp_path, commits=4, slow_from=None)
    monkeypatch.chdir(repo)
    git(repo, "checkout", "-q", "-b", "side", shas[2])
    (repo / "side.txt").write_text("side\n", encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "side work")
    side = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    merged = git(repo, "rev-parse", "HEAD")
    cases = [
        (shas[3], shas[1]),  # swapped
        (side, shas[4]),  # another branch
        (side, merged),  # an ancestor, but only through the merge's second parent
        ("0" * 40, shas[4]),  # git does not know it
    ]
    for good, bad in cases:
        assert bisect(repo, "--good", good, "--bad", bad, "--repeats", "3") == 2, (good, bad)
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1
        assert captured.err.startswith(f"mltest: error: git here does not connect {good[:10]} to {bad[:10]} by first")
        assert "check that --good is an ancestor of --bad" in captured.err
    assert store_runs(repo) == []
    assert_clean(repo, scratch)


def test_bisect_without_range_or_detected_regression(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, shas = make_repo(tmp_path, commits=2, slow_from=None)
    monkeypatch.chdir(repo)
    assert bisect(repo, "--repeats", "3") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"mltest: error: no regression of 'step_time' in {TEST_ID} on main to bisect: give --good SHA and --bad SHA\n"
    )
    assert bisect(repo, "--good", shas[0], "--bad", shas[2], "--repeats", "1") == 2
    assert "--repeats 1: give 2 or more" in capsys.readouterr().err
    assert_clean(repo, scratch)


# ----------------------------------------------------------------------------- nothing to find


def test_bisect_inconclusive_when_the_ends_measure_the_same(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, shas = make_repo(tmp_path, commits=8, slow_from=None, test_text=FIXED_TEST)
    monkeypatch.chdir(repo)
    assert bisect(repo, "--good", shas[0], "--bad", shas[-1], "--repeats", "3") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "inconclusive: on this machine the good and bad ends do not differ beyond noise (0.004 vs 0.004); "
        "the regression may depend on the environment, or need more --repeats"
    )
    assert not any(line.startswith("first bad commit") for line in lines)
    runs = store_runs(repo)
    assert sorted({r.commit.sha for r in runs}) == sorted({shas[0], shas[-1]})  # only the two ends
    assert len(runs) == 6
    assert_clean(repo, scratch)
