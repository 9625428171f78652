"""Tests of mltest/gitinfo.py against real git repositories (and CI variables) in tmp_path."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from gitrepo import git as _git
from gitrepo import isolate_git

from mltest.gitinfo import ci_run_url, commit_subjects, current_commit, first_parent_range, is_pull_request
from mltest.model import UNKNOWN_SHA

AUTHOR_DATE = "2024-03-04T05:06:07+02:00"
COMMITTER_DATE = "2024-03-05T08:09:10+00:00"


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No system/global git config, no repository above tmp_path, no GIT_DIR from outside."""
    isolate_git(monkeypatch, tmp_path)


def git(cwd: Path, *args: str, date: str | None = None) -> str:
    return _git(cwd, *args, date=date, name="Tess Ter", email="tess@example.com")


def commit(repo: Path, subject: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": AUTHOR_DATE, "GIT_COMMITTER_DATE": COMMITTER_DATE}
    identity = ["-c", "user.name=Tess Ter", "-c", "user.email=tess@example.com"]
    subprocess.run(
        ["git", *identity, "commit", "-q", "--allow-empty", "-m", subject],
        cwd=repo,
        env=env,
        capture_output=True,
        check=True,
    )
    return git(repo, "rev-parse", "HEAD")


def init_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    git(path, "symbolic-ref", "HEAD", "refs/heads/main")  # whatever init.defaultBranch says
    return path


@pytest.fixture
def linear(tmp_path: Path) -> tuple[Path, list[str]]:
    """main: c0 <- c1 <- c2 (HEAD)."""
    repo = init_repo(tmp_path / "repo")
    return repo, [commit(repo, f"commit {i}") for i in range(3)]


# ----------------------------------------------------------------------------- a normal checkout


def test_current_commit_of_a_linear_history(linear: tuple[Path, list[str]]) -> None:
    repo, shas = linear
    info = current_commit(repo, {})
    c = info.commit
    assert c.sha == shas[2]
    assert len(c.sha) == 40
    assert c.branch == "main"
    assert c.parents == (shas[1],)
    assert c.ancestry == (shas[1], shas[0])  # HEAD excluded, newest first
    assert c.author == "Tess Ter <tess@example.com>"
    assert c.subject == "commit 2"
    assert c.authored_at == AUTHOR_DATE
    assert c.committed_at == COMMITTER_DATE
    assert datetime.fromisoformat(c.authored_at).utcoffset() is not None
    assert info.notes == ()


def test_the_root_commit_has_no_parents_and_no_ancestry(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    sha = commit(repo, "root")
    info = current_commit(repo, {})
    assert info.commit.sha == sha
    assert info.commit.parents == ()
    assert info.commit.ancestry == ()
    assert info.notes == ()  # a root commit is not a shallow clone


def test_from_a_subdirectory(linear: tuple[Path, list[str]]) -> None:
    repo, shas = linear
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    assert current_commit(sub, {}).commit.sha == shas[2]


def test_ancestry_follows_first_parents_across_a_merge(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    c0 = commit(repo, "c0")
    c1 = commit(repo, "c1")
    git(repo, "checkout", "-q", "-b", "feature")
    f1 = commit(repo, "f1")
    f2 = commit(repo, "f2")
    git(repo, "checkout", "-q", "main")
    c2 = commit(repo, "c2")
    git(repo, "merge", "-q", "--no-ff", "feature", "-m", "merge feature", date=COMMITTER_DATE)
    merge = git(repo, "rev-parse", "HEAD")
    c3 = commit(repo, "c3")

    info = current_commit(repo, {})
    assert info.commit.sha == c3
    assert info.commit.parents == (merge,)
    assert info.commit.ancestry == (merge, c2, c1, c0)
    assert f1 not in info.commit.ancestry
    assert f2 not in info.commit.ancestry

    git(repo, "checkout", "-q", merge)
    at_merge = current_commit(repo, {"GITHUB_REF_NAME": "main"}).commit
    assert at_merge.parents == (c2, f2)
    assert at_merge.ancestry == (c2, c1, c0)
    assert at_merge.subject == "merge feature"


# ----------------------------------------------------------------------------- shallow clones, detached HEADs


def test_a_shallow_clone(linear: tuple[Path, list[str]], tmp_path: Path) -> None:
    repo, shas = linear
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    assert git(shallow, "rev-parse", "--is-shallow-repository") == "true"
    info = current_commit(shallow, {})
    assert info.commit.sha == shas[2]
    assert info.commit.parents == ()
    assert info.commit.ancestry == ()
    assert info.commit.branch == "main"
    assert info.commit.subject == "commit 2"
    assert any("shallow" in note for note in info.notes), info.notes


def test_a_detached_head_without_ci_has_no_branch_and_a_note(linear: tuple[Path, list[str]]) -> None:
    repo, shas = linear
    git(repo, "checkout", "-q", "--detach", shas[1])
    info = current_commit(repo, {})
    assert info.commit.sha == shas[1]
    assert info.commit.branch is None
    assert info.commit.ancestry == (shas[0],)
    assert len(info.notes) == 1
    assert "detached" in info.notes[0]
    assert shas[1][:10] in info.notes[0]


@pytest.mark.parametrize(
    ("environ", "branch"),
    [
        ({"GITHUB_REF_NAME": "release"}, "release"),
        ({"GITHUB_REF_NAME": "42/merge", "GITHUB_HEAD_REF": "feature-x"}, "feature-x"),
        ({"GITHUB_REF_NAME": "main", "GITHUB_HEAD_REF": ""}, "main"),  # a push: GITHUB_HEAD_REF is empty
        ({"CI_COMMIT_BRANCH": "gl-branch"}, "gl-branch"),
        ({"CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "mr-src"}, "mr-src"),
    ],
)
def test_a_detached_head_takes_the_branch_from_ci(
    linear: tuple[Path, list[str]], environ: dict[str, str], branch: str
) -> None:
    repo, shas = linear
    git(repo, "checkout", "-q", "--detach", shas[2])
    info = current_commit(repo, environ)
    assert info.commit.branch == branch
    assert info.commit.sha == shas[2]  # the commit itself still comes from git
    assert info.notes == ()


def test_the_ci_branch_wins_over_the_local_branch(linear: tuple[Path, list[str]]) -> None:
    repo, _ = linear
    assert current_commit(repo, {"CI_COMMIT_BRANCH": "ci-branch"}).commit.branch == "ci-branch"


# ----------------------------------------------------------------------------- outside git


def test_outside_git_without_ci_the_commit_is_unknown(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    info = current_commit(plain, {})
    assert info.commit.sha == UNKNOWN_SHA
    assert info.commit.short == UNKNOWN_SHA
    assert info.commit.branch is None
    assert info.commit.parents == ()
    assert len(info.notes) == 1
    assert "unknown" in info.notes[0]


def test_a_repository_without_commits_counts_as_outside_git(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "empty")
    assert current_commit(repo, {}).commit.sha == UNKNOWN_SHA
    assert current_commit(repo, {"GITHUB_SHA": "f" * 40}).commit.sha == "f" * 40


def test_outside_git_the_commit_comes_from_github_variables(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    environ = {"GITHUB_SHA": "1" * 40, "GITHUB_REF_NAME": "main", "GITHUB_ACTOR": "octocat"}
    info = current_commit(plain, environ)
    assert info.commit.sha == "1" * 40
    assert info.commit.branch == "main"
    assert info.commit.author == "octocat"
    assert info.commit.parents == ()
    assert len(info.notes) == 1
    assert "CI" in info.notes[0]


def test_outside_git_the_commit_comes_from_gitlab_variables(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    environ = {
        "CI_COMMIT_SHA": "2" * 40,
        "CI_COMMIT_TITLE": "Fix the loader",
        "CI_COMMIT_AUTHOR": "Jane Doe <jane@example.com>",
        "CI_COMMIT_TIMESTAMP": "2024-05-06T07:08:09+00:00",
        "CI_COMMIT_BRANCH": "dev",
    }
    c = current_commit(plain, environ).commit
    assert c.sha == "2" * 40
    assert c.subject == "Fix the loader"
    assert c.author == "Jane Doe <jane@example.com>"
    assert c.authored_at == "2024-05-06T07:08:09+00:00"
    assert c.branch == "dev"


def test_outside_git_empty_ci_variables_count_as_absent(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    c = current_commit(plain, {"GITHUB_SHA": "", "CI_COMMIT_SHA": ""}).commit
    assert c.sha == UNKNOWN_SHA


# ----------------------------------------------------------------------------- CI helpers


def test_ci_run_url_on_github() -> None:
    environ = {
        "GITHUB_SERVER_URL": "https://github.example.com/",
        "GITHUB_REPOSITORY": "org/repo",
        "GITHUB_RUN_ID": "123456",
    }
    assert ci_run_url(environ) == "https://github.example.com/org/repo/actions/runs/123456"
    del environ["GITHUB_SERVER_URL"]
    assert ci_run_url(environ) == "https://github.com/org/repo/actions/runs/123456"


def test_ci_run_url_on_gitlab() -> None:
    assert ci_run_url({"CI_JOB_URL": "https://gitlab.com/g/p/-/jobs/9"}) == "https://gitlab.com/g/p/-/jobs/9"
    assert ci_run_url({"CI_PIPELINE_URL": "https://gitlab.com/g/p/-/pipelines/3"}) == (
        "https://gitlab.com/g/p/-/pipelines/3"
    )


def test_ci_run_url_outside_ci() -> None:
    assert ci_run_url({}) is None
    assert ci_run_url({"GITHUB_RUN_ID": "1"}) is None  # no repository: no URL
    assert ci_run_url({"CI_JOB_URL": ""}) is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"GITHUB_EVENT_NAME": "pull_request"}, True),
        ({"GITHUB_EVENT_NAME": "pull_request_target"}, True),
        ({"GITHUB_EVENT_NAME": "push"}, False),
        ({"GITHUB_EVENT_NAME": "schedule"}, False),
        ({"CI_MERGE_REQUEST_IID": "17"}, True),
        ({"CI_MERGE_REQUEST_IID": ""}, False),
        ({}, False),
    ],
)
def test_is_pull_request(environ: dict[str, str], expected: bool) -> None:
    assert is_pull_request(environ) is expected


# ----------------------------------------------------------------------------- subjects and ranges


def test_commit_subjects_skips_commits_the_checkout_does_not_have(linear: tuple[Path, list[str]]) -> None:
    repo, shas = linear
    missing = "f" * 40
    assert commit_subjects(repo, [shas[2], missing, shas[0], shas[2]]) == {shas[2]: "commit 2", shas[0]: "commit 0"}
    assert commit_subjects(repo, []) == {}
    assert commit_subjects(repo.parent, [shas[0]]) == {}  # not a checkout


def test_commit_subjects_keep_separators_that_are_not_newlines(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    subject = "fix\x1cthe\x1dloss\x1e and\u2028the\x85step\rnow"
    git(repo, "commit", "-q", "--allow-empty", "-m", subject)
    sha = git(repo, "rev-parse", "HEAD").strip()
    assert commit_subjects(repo, [sha]) == {sha: subject}


def test_first_parent_range_lists_good_then_every_commit_up_to_bad(linear: tuple[Path, list[str]]) -> None:
    repo, shas = linear
    assert first_parent_range(repo, shas[0], shas[2]) == shas
    assert first_parent_range(repo, shas[0][:10], shas[1]) == shas[:2]
    assert first_parent_range(repo, shas[2], shas[0]) is None  # good after bad
    assert first_parent_range(repo, "f" * 40, shas[2]) is None
