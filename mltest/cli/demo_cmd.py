"""``mltest demo``: the whole loop on a real PyTorch project across a generated git history.

The example project (:mod:`mltest.demo`) becomes a git repository; a scripted history of commits is
replayed on branch ``main``. At each commit the unit tier and the integration tier run as separate
``mltest run`` processes, exactly as CI would run them, recording into the project's embedded SQLite
store. Then detection runs over the history and the demo checks itself: both planted commits must be
named as culprits of the metrics they moved, and no neutral commit may be flagged.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltest.cli.detect_cmds import Analysis, analyze
from mltest.cli.report_cmd import build_report, render
from mltest.config import load_settings
from mltest.demo import MAX_COMMITS, MIN_COMMITS, ScriptedCommit, apply, copy_project, history
from mltest.errors import ConfigError, MltestError
from mltest.model import Finding
from mltest.report.fmt import fmt_value
from mltest.store import Store, open_store

__all__ = ["CommitRun", "DemoOutcome", "Planted", "add_parser", "demo"]

INTEGRATION_TEST = "tests/test_training.py::test_training_reaches_accuracy_floor"
SHOWN_METRICS = (
    ("accuracy", "acc {:.4f}"),
    ("step_time", "step {:.3g} ms"),
    ("train_samples_per_s", "{:,.0f} samples/s"),
)
PLANTED_NAMES = {"slowdown": "slowdown", "accuracy": "accuracy loss"}
# Variables that would make the demo's runs record somebody else's commit, branch or store.
FOREIGN_ENV = ("MLTEST_", "GITHUB_", "GITLAB_", "CI_COMMIT_", "CI_MERGE_REQUEST_", "PYTEST_", "GIT_")
GIT_IDENTITY = ("-c", "user.name=mltest demo", "-c", "user.email=demo@mltest.invalid", "-c", "commit.gpgsign=false")


@dataclass(frozen=True)
class CommitRun:
    position: int
    sha: str
    subject: str
    planted: str | None
    seconds: float
    values: dict[str, float]
    """The integration test's recorded values at this commit, by metric."""


@dataclass(frozen=True)
class Planted:
    """What detection said about one planted commit."""

    commit: CommitRun
    expected: tuple[str, ...]
    found: tuple[Finding, ...]
    """Findings whose culprit is this commit."""

    @property
    def ok(self) -> bool:
        moved = {f.metric for f in self.found if f.kind in ("regression", "drift")}
        return set(self.expected) <= moved


@dataclass(frozen=True)
class DemoOutcome:
    repo: Path
    store_url: str
    commits: tuple[CommitRun, ...]
    analysis: Analysis
    planted: tuple[Planted, ...]
    false_flags: tuple[tuple[CommitRun, Finding], ...]
    """Findings (of any kind but environment) that name or include a neutral commit."""
    seconds: float
    kept: bool
    report: Path | None = None
    """The HTML report (kept even when the work directory is not)."""
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.planted) and not self.false_flags


# ----------------------------------------------------------------------------- processes
def _clean_env(seed: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    env.update(
        MLTEST_BRANCH="main", MLTEST_SEED=str(seed), PYTHONDONTWRITEBYTECODE="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    # One intra-op thread: a small model gains nothing from more, and its step time stays steady
    # when the machine is busy with something else.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _git(repo: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=repo, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MltestError(f"git {args[0]} failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def _run_tier(repo: Path, tier: str, device: str, env: dict[str, str]) -> str:
    """``mltest run TIER`` in a fresh process; returns pytest's summary line, raises when it failed."""
    # Plugin autoloading is off (the environment's other pytest plugins stay out of the example, and
    # each process starts a second sooner); ``-p mltest`` loads the one plugin it needs.
    command = [
        *(sys.executable, "-m", "mltest", "run", tier, "--device", device),
        *("--", "-q", "-p", "no:cacheprovider", "-p", "mltest"),
    ]
    proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in (proc.stdout + proc.stderr).strip().splitlines() if line.strip()]
    if proc.returncode != 0:
        tail = "\n    ".join(lines[-15:])
        raise MltestError(f"the {tier} tier failed at {repo} (pytest exit {proc.returncode}):\n    {tail}")
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "")
    return summary.strip("= ").split(" in ")[0]


def _values_at(store: Store, sha: str) -> dict[str, float]:
    return {row.metric: row.value for row in store.series(test=INTEGRATION_TEST, branch="main") if row.sha == sha}


def _progress(run: CommitRun, total: int, unit: str, elapsed: float, echo: Callable[[str], None]) -> None:
    shown = []
    for metric, fmt in SHOWN_METRICS:
        if metric in run.values:
            value = run.values[metric] * (1000 if metric == "step_time" else 1)
            shown.append(fmt.format(value))
    left = (total - run.position - 1) * elapsed / (run.position + 1)
    subject = run.subject if len(run.subject) <= 52 else run.subject[:51] + "…"
    echo(
        f"[{run.position + 1:>2}/{total}] {run.sha[:10]}  {subject:<52}  unit: {unit or '?'}  "
        f"integration: {', '.join(shown)}  ({run.seconds:.1f} s, ~{left:.0f} s left)"
    )


# ----------------------------------------------------------------------------- the demo
def _workdir(workdir: Path | None) -> tuple[Path, bool]:
    """The directory to build in, and whether the demo created it as a temporary one."""
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="mltest-demo-")), True
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise ConfigError(f"--workdir {workdir}: not an empty directory; give a new or empty one")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir, False


def _check_tools() -> None:
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(
            "mltest demo trains a PyTorch model and torch is not installed here: pip install torch "
            "(a CPU build is enough)"
        )
    if shutil.which("git") is None:
        raise ConfigError("mltest demo builds a git history and git is not on PATH: install git")


def _blamed(finding: Finding) -> set[str]:
    """The commits a finding blames: its culprit, or every commit of its range."""
    rng = finding.range
    if rng.culprit is not None:
        return {rng.culprit}
    return set(rng.commits or (rng.bad,))


def _verdict(
    runs: Sequence[CommitRun], scripted: Sequence[ScriptedCommit], analysis: Analysis
) -> tuple[tuple[Planted, ...], tuple[tuple[CommitRun, Finding], ...]]:
    findings = [f for reg in analysis.regressions for f in reg.findings if f.kind != "environment"]
    by_sha = {run.sha: run for run in runs}
    blamed: dict[str, list[Finding]] = {}
    for f in findings:
        for sha in _blamed(f) & by_sha.keys():
            blamed.setdefault(sha, []).append(f)
    planted = tuple(
        Planted(run, step.moves, tuple(f for f in blamed.get(run.sha, []) if f.range.culprit == run.sha))
        for run, step in zip(runs, scripted, strict=True)
        if step.planted
    )
    false_flags = tuple(
        (run, f) for run, step in zip(runs, scripted, strict=True) if not step.planted for f in blamed.get(run.sha, [])
    )
    return planted, false_flags


def demo(
    *,
    commits: int = MIN_COMMITS,
    workdir: Path | None = None,
    keep: bool = False,
    seed: int = 0,
    device: str = "auto",
    echo: Callable[[str], None] = print,
    color: bool = False,
) -> DemoOutcome:
    """Build the example repository, replay the scripted history, record every commit, detect."""
    scripted = history(commits)
    if seed < 0:
        raise ConfigError(f"--seed {seed}: use a whole number >= 0")
    _check_tools()
    base, temporary = _workdir(workdir)
    repo = base / "tinyclf"
    keep = keep or not temporary
    started = time.perf_counter()
    env = _clean_env(seed)
    try:
        copy_project(repo)
        _git(repo, "init", "-q", env=env)
        _git(repo, "symbolic-ref", "HEAD", "refs/heads/main", env=env)
        settings = load_settings(repo, environ={})
        echo(
            f"mltest demo: {commits} commits of an example PyTorch project in {repo} "
            f"(seed {seed}, integration tier on device '{device}')"
        )
        echo(
            "each commit: edit, git commit, `mltest run unit`, `mltest run integration`, recorded into "
            f"{settings.store_url}"
        )
        runs: list[CommitRun] = []
        store: Store | None = None
        for position, step in enumerate(scripted):
            t0 = time.perf_counter()
            apply(step, repo)
            _git(repo, "add", "-A", env=env)
            _git(repo, "commit", "-q", "--no-verify", "-m", step.subject, env=env)
            sha = _git(repo, "rev-parse", "HEAD", env=env)
            unit = _run_tier(repo, "unit", device, env)
            _run_tier(repo, "integration", device, env)
            if store is None:
                store = open_store(settings.store_url, root=repo)
            run = CommitRun(position, sha, step.subject, step.planted, time.perf_counter() - t0, _values_at(store, sha))
            runs.append(run)
            _progress(run, len(scripted), unit, time.perf_counter() - started, echo)
        assert store is not None  # history() gives at least MIN_COMMITS commits
        analysis = analyze(settings, store, branch="main")
        planted, false_flags = _verdict(runs, scripted, analysis)
        report = build_report(settings, store, analysis, environ={})
        # The HTML report lives next to a temporary work directory (which is removed), else in the store's folder.
        html_path = (repo / ".mltest" if keep else base.parent / f"{base.name}-report") / "report.html"
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render(report, "html"), encoding="utf-8")
        outcome = DemoOutcome(
            repo=repo,
            store_url=settings.store_url,
            commits=tuple(runs),
            analysis=analysis,
            planted=planted,
            false_flags=false_flags,
            seconds=time.perf_counter() - started,
            kept=keep,
            report=html_path,
        )
        echo("")
        echo(render(report, "text", color=color))
        echo("")
        echo(summary(outcome))
        return outcome
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def _finding_text(f: Finding) -> str:
    if f.metric == "accuracy":
        return f"{f.metric} {f.before:.4f} -> {f.after:.4f} ({(f.after - f.before) * 100:+.1f} points)"
    return f"{f.metric} {fmt_value(f.before, f.unit)} -> {fmt_value(f.after, f.unit)} ({f.rel_change:+.0%})"


def summary(outcome: DemoOutcome) -> str:
    """The demo's own verdict: were the planted commits found, and nothing else?"""
    lines = ["what the demo planted, and what mltest found:"]
    for p in outcome.planted:
        mark = "found" if p.ok else "MISSED"
        kind = PLANTED_NAMES.get(p.commit.planted or "", p.commit.planted)
        what = "; ".join(_finding_text(f) for f in p.found) or "nothing"
        lines.append(
            f"  {mark}: the {kind} at commit {p.commit.position + 1}, {p.commit.sha[:10]} {p.commit.subject!r}: {what}"
        )
    neutral = sum(1 for c in outcome.commits if c.planted is None)
    if outcome.false_flags:
        for run, f in outcome.false_flags:
            lines.append(
                f"  FALSE FLAG: neutral commit {run.position + 1} {run.sha[:10]} {run.subject!r}: {_finding_text(f)}"
            )
    else:
        lines.append(f"  none of the {neutral} neutral commits was flagged")
    lines.append(
        f"{'demo passed' if outcome.ok else 'demo FAILED'}: {len(outcome.commits)} commits in {outcome.seconds:.0f} s"
    )
    if outcome.report is not None:
        lines.append(f"HTML report (charts of every series): {outcome.report}")
    if outcome.kept:
        lines += [
            f"the repository and its store are kept in {outcome.repo}; look around with:",
            f"  cd {outcome.repo}",
            "  git log --oneline                 # the scripted history",
            "  mltest runs                       # every recorded run",
            f"  mltest history {INTEGRATION_TEST} step_time",
            "  mltest check --all                # the regressions, as a CI check (exit 1 on new ones)",
            "  mltest report --format markdown   # the same report for a PR comment",
        ]
    else:
        lines.append("(the work directory was removed; `mltest demo --keep` keeps the repository and its store)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI wiring
def _commits(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of commits") from None
    if not MIN_COMMITS <= value <= MAX_COMMITS:
        raise argparse.ArgumentTypeError(f"{value}: choose {MIN_COMMITS} to {MAX_COMMITS} commits")
    return value


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="the whole loop on an example PyTorch project: a git history with a planted slowdown and "
        "accuracy loss, both tiers at every commit, detection",
        description=(
            "Create a git repository from the bundled example PyTorch project, replay a scripted history "
            "(neutral commits, one that slows the training step, one that costs accuracy), run the unit and "
            "integration tiers at every commit into the embedded SQLite store, then detect regressions and "
            "check that both planted commits, and nothing else, were named. Exit 0 when they were."
        ),
    )
    parser.add_argument(
        "--commits",
        type=_commits,
        default=MIN_COMMITS,
        metavar="N",
        help=f"commits to replay, {MIN_COMMITS} to {MAX_COMMITS} (default: {MIN_COMMITS})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help="build the repository here, a new or empty directory, kept afterwards (default: a temporary one)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary work directory afterwards (default: removed)"
    )
    parser.add_argument("--seed", type=_seed, default=0, metavar="N", help="seed of the data and training (default: 0)")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="integration-tier device: auto uses a GPU when present (default: auto)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, extra: list[str]) -> int:
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    outcome = demo(
        commits=args.commits, workdir=args.workdir, keep=args.keep, seed=args.seed, device=args.device, color=color
    )
    return 0 if outcome.ok else 1
