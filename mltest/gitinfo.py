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
_LOG_FORMAT = "%H%x1f%P%x1f%an <%ae>%x1f%aI%x1f%cI%x1f%s"


@dataclass(frozen=True)
class CommitInfo:
    commit: Commit
    notes: tuple[str, ...] = field(default=())
    """Things the user should know (not in git, shallow clone, ...), one line each."""


def _start_git(cwd: Path, *args: str) -> subprocess.Popen[bytes] | None:
    """Start ``git ARGS`` in ``cwd`` (None: git cannot be started); :func:`_output` collects it."""
    try:
        return subprocess.Popen(
            ["git", *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError:
        return None


def _output(proc: subprocess.Popen[bytes] | None) -> str | None:
    """What a started git command printed, stripped; None when it failed or ran 30 s."""
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.SubprocessError:
        proc.kill()
        proc.communicate()
        return None
    # Decoded by hand: text mode would turn a \r inside a commit subject into a line break.
    return out.decode("utf-8", "replace").strip() if proc.returncode == 0 else None


def _git(cwd: Path, *args: str) -> str | None:
    return _output(_start_git(cwd, *args))


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
    """The commit checked out in ``cwd``, its branch, parents and first-parent ancestry.

    Two git processes, run at the same time: ``git log`` of the first-parent chain (HEAD's details,
    then the shas of its ancestry) and ``git rev-parse`` for shallowness and the branch.
    """
    log = _start_git(
        cwd, "log", "-z", "--first-parent", f"--max-count={ANCESTRY_DEPTH + 1}", f"--format={_LOG_FORMAT}", "HEAD"
    )
    # --abbrev-ref=loose shortens the branch exactly as `git symbolic-ref --short` does; detached: "HEAD".
    head = _start_git(cwd, "rev-parse", "--is-shallow-repository", "--abbrev-ref=loose", "HEAD")
    out, head_out = _output(log), _output(head)
    # NUL ends each commit (git refuses a NUL in a commit message); the first is HEAD.
    records = [r for r in (out or "").split("\0") if r.strip()]
    line = records[0].strip() if records else None
    if line is None or _SEP not in line:
        ci = _from_ci(environ)
        if ci is not None:
            return CommitInfo(ci, ("no git checkout here: the commit comes from CI variables",))
        return CommitInfo(
            Commit(UNKNOWN_SHA),
            ("not in a git checkout and no CI commit variables: results are recorded against commit 'unknown'",),
        )
    sha, parents, author, authored_at, committed_at, subject = line.split(_SEP, 5)
    shallow_text, _, ref = (head_out or "").partition("\n")
    notes: list[str] = []
    branch = _ci_branch(environ) or (ref.strip() if ref.strip() not in ("", "HEAD") else None)
    if branch is None:
        notes.append(f"detached HEAD at {sha[:10]} and no CI branch variable: the branch is recorded as unknown")
    shallow = shallow_text.strip() == "true"
    chain = [r.strip().split(_SEP, 1)[0] for r in records]
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
