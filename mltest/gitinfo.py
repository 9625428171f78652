"""The commit under test: from git when there is a checkout, from CI variables when there is not.

Safe in shallow clones (CI checkouts usually are): what git cannot tell is left empty, never guessed,
and a note says so. Outside git and CI the commit is ``unknown``, with a note.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mltest.model import UNKNOWN_SHA, Commit

__all__ = [
    "CommitInfo",
    "ci_run_url",
    "commit_subjects",
    "current_commit",
    "first_parent_range",
    "is_pull_request",
]

ANCESTRY_DEPTH = 200
_SEP = "\x1f"


@dataclass(frozen=True)
class CommitInfo:
    commit: Commit
    notes: tuple[str, ...] = field(default=())
    """Things the user should know (not in git, shallow clone, ...), one line each."""


def _git(cwd: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    # Decoded by hand: text mode would turn a \r inside a commit subject into a line break.
    return proc.stdout.decode("utf-8", "replace").strip() if proc.returncode == 0 else None


def is_pull_request(environ: Mapping[str, str]) -> bool:
    """True on a GitHub pull-request event or a GitLab merge-request pipeline."""
    return environ.get("GITHUB_EVENT_NAME", "") in ("pull_request", "pull_request_target") or bool(
        environ.get("CI_MERGE_REQUEST_IID")
    )


def ci_run_url(environ: Mapping[str, str]) -> str | None:
    """The URL of this CI job, when a known CI system says it."""
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    return environ.get("CI_JOB_URL") or environ.get("CI_PIPELINE_URL") or None


def _ci_branch(environ: Mapping[str, str]) -> str | None:
    """The branch CI names (``MLTEST_BRANCH`` first: set by ``mltest bisect`` for its detached checkouts)."""
    for name in (
        "MLTEST_BRANCH",
        "GITHUB_HEAD_REF",
        "GITHUB_REF_NAME",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
        "CI_COMMIT_BRANCH",
    ):
        if environ.get(name):
            return environ[name]
    return None


def _from_ci(environ: Mapping[str, str]) -> Commit | None:
    sha = environ.get("GITHUB_SHA") or environ.get("CI_COMMIT_SHA")
    if not sha:
        return None
    return Commit(
        sha=sha,
        branch=_ci_branch(environ),
        author=environ.get("CI_COMMIT_AUTHOR") or environ.get("GITHUB_ACTOR") or None,
        authored_at=environ.get("CI_COMMIT_TIMESTAMP") or None,
        subject=environ.get("CI_COMMIT_TITLE") or None,
    )


def commit_subjects(cwd: Path, shas: Iterable[str]) -> dict[str, str]:
    """sha -> subject line for the commits the checkout in ``cwd`` knows (best effort, no errors)."""
    wanted = [s for s in dict.fromkeys(shas) if s]
    if not wanted:
        return {}
    # --ignore-missing: shas this checkout does not have (shallow clone, other fork) are skipped.
    out = _git(cwd, "log", "--no-walk=unsorted", "--ignore-missing", f"--format=%H{_SEP}%s", *wanted)
    if out is None:
        return {}
    # Split on newlines only: str.splitlines() also splits on \r, \x1c-\x1e, \x85 and \u2028, which a
    # subject may contain (git's %s keeps them), and would cut such a subject short.
    return {h: subj for h, _, subj in (ln.partition(_SEP) for ln in out.split("\n")) if h}


def first_parent_range(cwd: Path, good: str, bad: str) -> list[str] | None:
    """``good`` then every first-parent commit after it up to ``bad``, oldest first; None when git
    does not know both, or ``good`` is not a first-parent ancestor of ``bad``."""
    listed = _git(cwd, "rev-list", "--first-parent", "--reverse", f"{good}..{bad}")
    full_good = _git(cwd, "rev-parse", "--verify", "-q", f"{good}^{{commit}}")
    if listed is None or full_good is None:
        return None
    commits = listed.split()
    if not commits:
        return None
    parent = _git(cwd, "rev-parse", "-q", "--verify", f"{commits[0]}^1")
    if parent != full_good:
        return None
    return [full_good, *commits]


def current_commit(cwd: Path, environ: Mapping[str, str]) -> CommitInfo:
    """The commit checked out in ``cwd``, its branch, parents and first-parent ancestry."""
    line = _git(cwd, "log", "-1", f"--format=%H{_SEP}%P{_SEP}%an <%ae>{_SEP}%aI{_SEP}%cI{_SEP}%s", "HEAD")
    if line is None or _SEP not in line:
        ci = _from_ci(environ)
        if ci is not None:
            return CommitInfo(ci, ("no git checkout here: the commit comes from CI variables",))
        return CommitInfo(
            Commit(UNKNOWN_SHA),
            ("not in a git checkout and no CI commit variables: results are recorded against commit 'unknown'",),
        )
    sha, parents, author, authored_at, committed_at, subject = line.split(_SEP, 5)
    notes: list[str] = []
    branch = _ci_branch(environ) or _git(cwd, "symbolic-ref", "--short", "-q", "HEAD") or None
    if branch is None:
        notes.append(f"detached HEAD at {sha[:10]} and no CI branch variable: the branch is recorded as unknown")
    shallow = _git(cwd, "rev-parse", "--is-shallow-repository") == "true"
    chain = (_git(cwd, "rev-list", "--first-parent", f"--max-count={ANCESTRY_DEPTH + 1}", "HEAD") or "").split()
    if shallow and not parents:
        notes.append("shallow clone: the parent of this commit is not known here; ordering uses recorded history")
    return CommitInfo(
        Commit(
            sha=sha,
            branch=branch,
            parents=tuple(parents.split()),
            author=author or None,
            authored_at=authored_at or None,
            committed_at=committed_at or None,
            subject=subject or None,
            ancestry=tuple(chain[1:]),
        ),
        tuple(notes),
    )
