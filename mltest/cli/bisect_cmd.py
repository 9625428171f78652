"""``mltest bisect``: find the first bad commit of a regression by measuring commits in a git worktree.

Each measured commit runs the test ``--repeats`` times (separate pytest processes, so run-to-run noise
is in the samples), recording into the store like any run, on the bisected branch: later ``mltest
check`` runs see the extra points and name the culprit too. The search itself is
:class:`mltest.detect.BisectSearch`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mltest.cli.detect_cmds import analyze, guarded
from mltest.cli.options import add_store_flags, store_settings
from mltest.config import Settings
from mltest.detect import BisectSearch
from mltest.errors import ConfigError, MltestError
from mltest.gitinfo import commit_subjects, first_parent_range
from mltest.model import DEVICE_MODES
from mltest.store import Store, open_store

__all__ = ["BisectOutcome", "add_parser", "bisect"]


@dataclass(frozen=True)
class BisectOutcome:
    first_bad: str | None
    suspects: tuple[str, ...]
    runs: int
    """Commits measured between the two ends."""
    message: str


def _absolute_store_url(settings: Settings) -> str:
    """The store URL as seen from any directory (a relative SQLite path is anchored at the project)."""
    url = settings.store_url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str((settings.project_root / url[len(prefix) :]).resolve())
    return url


class _Worktree:
    """One detached git worktree, moved from commit to commit."""

    def __init__(self, repo: Path) -> None:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=repo, capture_output=True, text=True, check=False
        )
        if top.returncode != 0:
            raise ConfigError(f"{repo} is not in a git checkout: bisect needs the repository's history")
        self.top = Path(top.stdout.strip())
        self.relative = repo.resolve().relative_to(self.top.resolve())
        self.tmp = Path(tempfile.mkdtemp(prefix="mltest-bisect-"))
        self.path = self.tmp / "worktree"
        self.added = False

    def checkout(self, sha: str) -> Path:
        if not self.added:
            args = ["git", "worktree", "add", "--detach", "-q", str(self.path), sha]
            self.added = True
        else:
            args = ["git", "-C", str(self.path), "checkout", "--detach", "-q", "--force", sha]
        proc = subprocess.run(args, cwd=self.top, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise MltestError(f"git cannot check out {sha[:10]}: {proc.stderr.strip().splitlines()[-1:]}")
        return self.path / self.relative

    def remove(self) -> None:
        if self.added:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(self.path)], cwd=self.top, capture_output=True, check=False
            )
        shutil.rmtree(self.tmp, ignore_errors=True)


def _measure(
    store: Store,
    worktree: _Worktree,
    *,
    sha: str,
    test: str,
    metric: str,
    repeats: int,
    store_url: str,
    branch: str,
    pytest_args: Sequence[str],
) -> list[float]:
    """Run ``test`` ``repeats`` times at ``sha``; the metric's values those runs recorded."""
    before = {r.run_id for r in store.series(test=test, metric=metric) if r.sha == sha}
    cwd = worktree.checkout(sha)
    env = {**os.environ, "MLTEST_BRANCH": branch}
    command = [
        sys.executable,
        "-m",
        "pytest",
        test,
        "-p",
        "mltest",
        "--mltest-record",
        f"--mltest-store={store_url}",
        "--mltest-tier=all",
        "-q",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    for _ in range(repeats):
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode not in (0, 1):  # 1: the test failed; its measurement may still be there
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise MltestError(f"pytest could not run {test} at {sha[:10]} (exit {proc.returncode}): {' | '.join(tail)}")
    return [r.value for r in store.series(test=test, metric=metric) if r.sha == sha and r.run_id not in before]


def bisect(
    settings: Settings,
    *,
    test: str,
    metric: str,
    good: str | None,
    bad: str | None,
    repeats: int,
    branch: str,
    pytest_args: Sequence[str] = (),
    echo: Callable[[str], None] = print,
) -> BisectOutcome:
    if repeats < 2:
        raise ConfigError(f"--repeats {repeats}: give 2 or more, a single run cannot tell noise from change")
    store = open_store(settings.store_url, root=settings.project_root)
    worktree: _Worktree | None = None
    try:
        if good is None or bad is None:
            good, bad = _range_from_history(
                settings, store, test=test, metric=metric, branch=branch, good=good, bad=bad
            )
        commits = first_parent_range(settings.project_root, good, bad)
        if commits is None:
            raise ConfigError(
                f"git here does not connect {good[:10]} to {bad[:10]} by first parents: fetch the full history "
                "(git fetch --unshallow) and check that --good is an ancestor of --bad"
            )
        subjects = commit_subjects(settings.project_root, commits)

        def name(sha: str) -> str:
            return f"{sha[:10]}" + (f" {subjects[sha]!r}" if subjects.get(sha) else "")

        if len(commits) == 2:
            message = f"first bad commit: {name(commits[1])} (the only commit after {commits[0][:10]})"
            echo(message)
            return BisectOutcome(commits[1], (commits[1],), 0, message)
        steps = BisectSearch.max_probes(len(commits))
        echo(
            f"mltest bisect: {test} {metric} over {len(commits) - 1} commits ({commits[0][:10]}..{commits[-1][:10]}), "
            f"{repeats} runs per commit, at most {steps} steps after measuring both ends"
        )
        worktree = _Worktree(settings.project_root)
        measure_args: dict[str, Any] = {
            "test": test,
            "metric": metric,
            "repeats": repeats,
            "store_url": _absolute_store_url(settings),
            "branch": branch,
            "pytest_args": pytest_args,
        }
        ends = {}
        for label, end in (("good", commits[0]), ("bad", commits[-1])):
            values = _measure(store, worktree, sha=end, **measure_args)
            if len(values) < 2:
                raise MltestError(
                    f"the {label} commit {end[:10]} recorded {len(values)} value(s) of {metric!r} for {test}: "
                    "check that the test passes there and records the metric"
                )
            ends[label] = values
            echo(f"  {label:5} {name(end)}  median {statistics.median(values):.4g} ({len(values)} runs)")
        search = BisectSearch(commits, ends["good"], ends["bad"])
        if not search.separated:
            message = (
                f"inconclusive: on this machine the good and bad ends do not differ beyond noise "
                f"({statistics.median(ends['good']):.4g} vs {statistics.median(ends['bad']):.4g}); "
                "the regression may depend on the environment, or need more --repeats"
            )
            echo(message)
            return BisectOutcome(None, search.suspects, 0, message)
        runs = 0
        while (sha := search.next_commit()) is not None:
            values = _measure(store, worktree, sha=sha, **measure_args)
            runs += 1
            probe = search.record(sha, values) if values else None
            if probe is not None and probe.verdict == "unclear":
                values += _measure(store, worktree, sha=sha, **{**measure_args, "repeats": repeats})
                probe = search.record(sha, values)
            if probe is None or probe.verdict == "unclear":
                level = f"median {statistics.median(values):.4g}" if values else f"no {metric!r} recorded"
                message = (
                    f"inconclusive: {name(sha)} measured {level}, between the good and bad levels; "
                    f"the first bad commit is one of {len(search.suspects)}: "
                    + ", ".join(s[:10] for s in search.suspects)
                )
                echo(message)
                return BisectOutcome(None, search.suspects, runs, message)
            echo(
                f"  [{runs}/{steps}] {name(sha)}  median {probe.level:.4g} ({len(values)} runs) -> {probe.verdict}"
                f" ({search.remaining} commits left)"
            )
        first_bad = search.first_bad
        assert first_bad is not None
        message = f"first bad commit: {name(first_bad)} (after {runs} measured commits)"
        echo(message)
        return BisectOutcome(first_bad, (first_bad,), runs, message)
    finally:
        if worktree is not None:
            worktree.remove()
        store.close()


def _range_from_history(
    settings: Settings, store: Store, *, test: str, metric: str, branch: str, good: str | None, bad: str | None
) -> tuple[str, str]:
    analysis = analyze(settings, store, branch=branch, test=test, metric=metric)
    found = [
        f
        for r in analysis.regressions
        if r.kind in ("regression", "drift")
        for f in r.findings
        if f.test == test and f.metric == metric
    ]
    if not found:
        raise ConfigError(f"no regression of {metric!r} in {test} on {branch} to bisect: give --good SHA and --bad SHA")
    latest = found[-1].range
    start = good or latest.good
    if start is None:
        raise ConfigError("the regression starts at the first recorded commit: give --good SHA")
    return start, bad or latest.bad


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bisect", help="measure commits between a good and a bad one to name the first bad commit"
    )
    parser.add_argument("--test", required=True, help="the test's node id, e.g. tests/test_train.py::test_speed")
    parser.add_argument("--metric", required=True, help="the metric that regressed, e.g. step_time")
    parser.add_argument("--good", default=None, help="last good commit (default: from the detected regression)")
    parser.add_argument("--bad", default=None, help="first bad commit (default: from the detected regression)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measured commit (default: 5)")
    parser.add_argument("--branch", default="main", help="the branch whose history is searched (default: main)")
    parser.add_argument(
        "--device",
        choices=DEVICE_MODES,
        default=None,
        help="device mode of the measured runs (default: the configured one, cuda unless set)",
    )
    add_store_flags(parser)
    parser.set_defaults(handler=_bisect, accepts_extra=True)


def _bisect(args: argparse.Namespace, extra: list[str]) -> int:
    def body() -> int:
        outcome = bisect(
            store_settings(args),
            test=args.test,
            metric=args.metric,
            good=args.good,
            bad=args.bad,
            repeats=args.repeats,
            branch=args.branch,
            pytest_args=[
                *([f"--mltest-device={args.device}"] if args.device else []),
                *(a for a in extra if a != "--"),
            ],
        )
        return 0 if outcome.first_bad is not None else 1

    return guarded(body)
