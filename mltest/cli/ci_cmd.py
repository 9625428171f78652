"""``mltest ci unit`` and ``mltest ci nightly``: what the CI jobs run, each in one command.

``ci unit`` (every commit and pull request): the unit tier with pytest-xdist and a JUnit XML file; when
the store holds recent unit runs of the main branch, the job summary gets the comparison of this run's
test durations and metrics with them. The exit code is pytest's (5, no tests ran, is a failure).

``ci nightly`` (scheduled, main branch only): the integration tier on a GPU (this shard of it), recorded
into the team store; then ``mltest sync``; then, unsharded or in ``--report-only``, detection over the
main branch's history, the report (Markdown job summary, HTML and JSON artefacts), the webhook
notification of new regressions, and an exit code by ``--policy``.

The tests run in a child ``python -m pytest``, not in this process: a test that kills its process (a
segfault in a CUDA kernel, the OOM killer) still leaves this process to replay the run's journal into
the store, report, notify and fail the job; and the GPU memory and user modules the tests loaded are
gone before the report is built. The child records with its own pid, which is how its run is found.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from mltest.cli.detect_cmds import compare_runs, comparison_markdown
from mltest.cli.options import add_setting_flags, given_settings, to_pytest_args
from mltest.cli.report_cmd import build_report, render
from mltest.cli.run_cmd import PLUGIN_MODULE, plugin_installed
from mltest.config import OPTIONS_BY_NAME, Settings, load_settings
from mltest.errors import ConfigError, MltestError
from mltest.model import Measurement, Run, ShardSpec
from mltest.report.markdown import md_text
from mltest.store import Store, open_store

__all__ = [
    "DEFAULT_ARTIFACTS",
    "DURATION_METRIC",
    "POLICIES",
    "add_parser",
    "nightly",
    "unit",
]

DEFAULT_ARTIFACTS = Path(".mltest") / "artifacts"
POLICIES = ("fail", "report")
DURATION_METRIC = "test_duration"
"""The metric under which ``ci unit`` compares each passed test's duration with the main branch's."""
EXIT_OK, EXIT_REGRESSION = 0, 1
NO_TESTS = 5  # pytest.ExitCode.NO_TESTS_COLLECTED


# ----------------------------------------------------------------------------- wiring
def _workers(text: str) -> int | str:
    value = text.strip().lower()
    if value in ("auto", "logical"):
        return value
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"expected auto, logical or a whole number of workers (0: no xdist); got {text!r}")


def add_parser(commands: Any) -> None:
    ci = commands.add_parser(
        "ci",
        help="the CI jobs in one command each: `ci unit` (every commit) and `ci nightly` (GPU, main branch)",
        description="The CI jobs, one command each. Arguments after '--' go to pytest.",
    )
    jobs = ci.add_subparsers(dest="ci_job", metavar="JOB", required=True)

    unit_p = jobs.add_parser(
        "unit",
        help="the unit tier with xdist and JUnit XML; compares durations with main in $GITHUB_STEP_SUMMARY",
        description=(
            "Run the unit tier with pytest-xdist, write JUnit XML, and when the store holds recent unit runs "
            "of the main branch, append the comparison of this run's test durations and metrics to "
            "$GITHUB_STEP_SUMMARY. Exits with pytest's code (5, no tests ran, is a failure). Arguments after "
            "'--' go to pytest."
        ),
    )
    unit_p.add_argument(
        "-n",
        "--numprocesses",
        type=_workers,
        default="auto",
        metavar="N",
        help="pytest-xdist workers: auto, logical, or a number; 0 runs without xdist (default: auto)",
    )
    unit_p.add_argument(
        "--junitxml",
        type=Path,
        default=None,
        metavar="PATH",
        help="JUnit XML report (default: ARTIFACTS/junit-unit.xml)",
    )
    _common(unit_p)
    unit_p.add_argument(
        "--baseline-runs",
        type=int,
        default=20,
        metavar="K",
        help="compare with the last K unit runs of the main branch (default: 20)",
    )
    add_setting_flags(unit_p, exclude=("tier",))
    unit_p.set_defaults(handler=_unit, accepts_extra=True)

    night = jobs.add_parser(
        "nightly",
        help="the integration tier on a GPU (one shard), recorded; detection, report, notification, exit policy",
        description=(
            "On the main branch only: run the integration tier (this --shard of it) with a GPU required, record "
            "it into the store, sync, then (unsharded, or with --report-only after all shards) detect "
            "regressions over the main branch's history, append the Markdown report to $GITHUB_STEP_SUMMARY, "
            "write report.html and report.json to the artefact folder, post new regressions to the webhook, "
            "and exit by --policy. A test failure always fails the job. Arguments after '--' go to pytest."
        ),
    )
    night.add_argument(
        "--any-branch",
        action="store_true",
        help="run on a branch other than main_branch too; detection then covers that branch (default: refuse)",
    )
    night.add_argument(
        "--policy",
        choices=POLICIES,
        default="fail",
        help="fail: exit 1 on new regressions; report: only report them. Test failures fail either way (default: fail)",
    )
    night.add_argument(
        "--report-only",
        action="store_true",
        help="run no tests: sync, detect, report and notify once, after the shards (default: off)",
    )
    night.add_argument(
        "--junitxml",
        type=Path,
        default=None,
        metavar="PATH",
        help="JUnit XML report (default: ARTIFACTS/junit-nightly.xml, or junit-nightly-I-of-N.xml for a shard)",
    )
    night.add_argument(
        "--webhook",
        default=None,
        metavar="URL",
        help="post new regressions here (default: $MLTEST_WEBHOOK_URL; none: no notification)",
    )
    night.add_argument(
        "--notify-kind", choices=("slack", "json"), default="slack", help="webhook payload (default: slack)"
    )
    _common(night)
    add_setting_flags(night, exclude=("tier",))
    # The nightly requires a GPU whatever the config file or MLTEST_DEVICE says; only this flag changes it.
    for action in night._actions:
        if action.dest == "setting_device":
            action.help = (
                "the integration tier's device: cuda (a GPU is required) unless given here; the config file "
                "and MLTEST_DEVICE do not apply to the nightly (default: cuda)"
            )
    night.set_defaults(handler=_nightly, accepts_extra=True)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=DEFAULT_ARTIFACTS,
        metavar="DIR",
        help=f"folder for the JUnit XML, reports and summary (default: {DEFAULT_ARTIFACTS})",
    )


def _pytest_args(extra: Sequence[str]) -> list[str]:
    passthrough = list(extra)
    if "--" in passthrough:  # the first "--" separates; a later one belongs to pytest
        passthrough.remove("--")
    return passthrough


def _settings(given: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    return load_settings(Path.cwd(), environ=environ, cli=given, cli_flag=lambda spec: spec.cli_flag)


def _unit(args: argparse.Namespace, extra: list[str]) -> int:
    given = {**given_settings(args), "tier": "unit"}
    settings = _settings(given, os.environ)
    return unit(
        settings,
        given=given,
        workers=args.numprocesses,
        junitxml=args.junitxml,
        artifacts=args.artifacts,
        baseline_runs=args.baseline_runs,
        pytest_args=_pytest_args(extra),
        environ=os.environ,
    )


def _nightly(args: argparse.Namespace, extra: list[str]) -> int:
    given = {**given_settings(args), "tier": "integration"}
    if given["device"] is None:
        given["device"] = "cuda"
    if given["record"] is None:
        given["record"] = True
    settings = _settings(given, os.environ)
    return nightly(
        settings,
        given=given,
        any_branch=args.any_branch,
        policy=args.policy,
        report_only=args.report_only,
        artifacts=args.artifacts,
        junitxml=args.junitxml,
        webhook=args.webhook or os.environ.get("MLTEST_WEBHOOK_URL") or None,
        notify_kind=args.notify_kind,
        pytest_args=_pytest_args(extra),
        environ=os.environ,
    )


# ----------------------------------------------------------------------------- pieces
@dataclass
class Summary:
    """What the job says: lines for the log (stderr) and Markdown for the job summary.

    The title and lines carry untrusted text (a branch name, the first line of an error, a webhook's
    reason): in the Markdown each is inert text (:func:`~mltest.report.markdown.md_text`: no HTML, link,
    @mention or formatting from the data). ``md=`` is Markdown the caller has made safe itself."""

    title: str
    markdown: list[str] = field(default_factory=list)

    def say(self, line: str, *, md: str | None = None) -> None:
        print(f"mltest ci: {line}", file=sys.stderr, flush=True)
        self.markdown.append(f"- {md if md is not None else md_text(line)}")

    def warn(self, line: str) -> None:
        print(f"mltest ci: WARNING: {line}", file=sys.stderr, flush=True)
        self.markdown.append(f"- ⚠️ {md_text(line)}")

    def text(self, *sections: str) -> str:
        return "\n".join([f"## {md_text(self.title)}", "", *self.markdown, "", *sections]).rstrip("\n") + "\n"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class TierRun:
    code: int
    """pytest's exit code (128 + N when signal N killed it)."""
    run: Run | None
    """The run it recorded, when it recorded one."""

    @property
    def what(self) -> str:
        if self.code == 0:
            return "tests passed"
        if self.code == NO_TESTS:
            return "no tests ran (pytest exit 5): check the selection, the tier markers and the shard count"
        if self.code > 128:
            try:
                name = signal.Signals(self.code - 128).name
            except ValueError:
                name = f"signal {self.code - 128}"
            return f"the test process was killed by {name} (exit {self.code})"
        return f"tests failed (pytest exit {self.code})"


def _run_tier(flags: Sequence[str], pytest_args: Sequence[str], settings: Settings, store_url: str) -> TierRun:
    """pytest in a child process; returns its exit code and the run it recorded into ``store_url``."""
    command = [sys.executable, "-m", "pytest"]
    if not plugin_installed():  # a source tree: load the plugin by module name
        command += ["-p", PLUGIN_MODULE]
    command += [*flags, *pytest_args]
    print(f"mltest ci: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    try:
        with subprocess.Popen(command) as proc:
            pid = proc.pid
            code = proc.wait()
    except OSError as exc:
        raise ConfigError(f"cannot start pytest ({sys.executable} -m pytest): {exc.strerror or exc}") from None
    code = 128 - code if code < 0 else code
    return TierRun(code, _recorded_run(settings, store_url, pid))


def _recorded_run(settings: Settings, store_url: str, pid: int) -> Run | None:
    try:
        store = open_store(store_url, root=settings.project_root)
    except MltestError:
        return None
    try:
        host = socket.gethostname()
        runs = store.runs(project=settings.project_name, limit=200)
    except MltestError:
        return None
    finally:
        store.close()
    return next((r for r in runs if r.pid == pid and r.hostname == host), None)


def _append_summary(summary: str, artifacts: Path, environ: Mapping[str, str], name: str) -> None:
    """The job summary: appended to ``$GITHUB_STEP_SUMMARY`` (as GitHub expects) and kept as an artefact."""
    _write(artifacts / name, summary)
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    try:
        with open(target, "a+", encoding="utf-8") as out:
            out.write("\n" if out.tell() else "")  # a blank line after what earlier steps wrote
            out.write(summary)
    except OSError as exc:
        print(f"mltest ci: WARNING: cannot append to $GITHUB_STEP_SUMMARY ({target}): {exc.strerror}", file=sys.stderr)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--artifacts: cannot write {path}: {exc.strerror or exc}") from None


def _exit_code(code: int) -> int:
    """An exit status for the shell (0..255)."""
    return code if 0 <= code <= 255 else 1


# ----------------------------------------------------------------------------- ci unit
def unit(
    settings: Settings,
    *,
    given: dict[str, Any],
    workers: int | str,
    junitxml: Path | None,
    artifacts: Path,
    baseline_runs: int,
    pytest_args: Sequence[str],
    environ: Mapping[str, str],
) -> int:
    """The unit-tier job; returns pytest's exit code."""
    from mltest.harness.recording import recording_skipped_reason

    if baseline_runs < 1:
        raise ConfigError(f"--baseline-runs {baseline_runs}: give a positive number of runs")
    if workers != 0 and find_spec("xdist") is None:
        raise ConfigError(f"-n {workers} needs pytest-xdist: pip install pytest-xdist, or pass -n 0 to run without")
    junitxml = junitxml if junitxml is not None else artifacts / "junit-unit.xml"
    flags = [*to_pytest_args(given), f"--junitxml={junitxml}"]
    if workers != 0:
        flags += ["-n", str(workers)]
    # A pull request's unit run is not recorded in the team store (unless record_pull_requests): it is
    # recorded into a scratch store in the artefacts instead, so it can still be compared with main.
    skipped = recording_skipped_reason(settings, environ)
    store_url = settings.store_url
    if skipped is not None:
        scratch = (artifacts / "unit-run.db").resolve()
        for stale in (scratch, scratch.with_name(scratch.name + "-wal"), scratch.with_name(scratch.name + "-shm")):
            stale.unlink(missing_ok=True)
        store_url = f"sqlite:///{scratch}"
        flags += [f"{OPTIONS_BY_NAME['store_url'].pytest_flag}={store_url}", "--mltest-record"]
        flags += ["--mltest-record-pull-requests"]
    result = _run_tier(flags, pytest_args, settings, store_url)
    summary = Summary("mltest ci unit")
    summary.say(
        result.what + (f"; JUnit XML: {junitxml}" if junitxml.exists() else ""),
        md=("✅ " if result.code == 0 else "❌ ") + result.what,
    )
    comparison = ""
    if result.run is None:
        summary.warn("no recorded run of this job was found: nothing to compare with the main branch")
    else:
        try:
            comparison = _unit_comparison(settings, result.run, store_url, baseline_runs, environ)
        except MltestError as exc:
            summary.warn(f"comparison with {settings.main_branch} skipped: {_first_line(exc)}")
        else:
            if not comparison:
                summary.say(f"no recent unit runs of {settings.main_branch} on this machine type to compare with")
    _append_summary(summary.text(comparison), artifacts, environ, "summary-unit.md")
    return _exit_code(result.code)


def _with_durations(source: Store, target: Store, run: Run) -> None:
    """Copy ``run`` into ``target`` with each passed test's duration as the measurement ``test_duration``."""
    results = source.results(run.run_id)
    measurements = [m for m in source.run_measurements(run.run_id) if m.metric != DURATION_METRIC]
    passed = {r.test: r.duration for r in results if r.outcome == "passed"}  # the last passed attempt wins
    measurements += [
        Measurement(test, DURATION_METRIC, seconds, "s", False, (seconds,)) for test, seconds in sorted(passed.items())
    ]
    target.begin_run(run)
    target.add_results(run.run_id, results, measurements)
    target.finish_run(run.run_id, run.status, run.finished_at or run.started_at)


def _unit_comparison(settings: Settings, run: Run, run_store_url: str, last: int, environ: Mapping[str, str]) -> str:
    """``mltest compare --format markdown`` of this run (durations included) against the last ``last``
    unit runs of the main branch on the same machine type; empty when there are none."""
    from mltest.store.memory import MemoryStore

    team = open_store(settings.store_url, root=settings.project_root)
    try:
        recent = [
            r
            for r in team.runs(branch=settings.main_branch, project=settings.project_name, limit=max(200, 10 * last))
            if r.tier == "unit"
            and r.status in ("passed", "failed")
            and r.run_id != run.run_id
            and r.environment.key == run.environment.key
        ][:last]
        if not recent:
            return ""
        # One store holding just what the comparison reads: the baseline runs and this run.
        view_store = MemoryStore()
        for baseline in recent:
            _with_durations(team, view_store, baseline)
        if run_store_url == settings.store_url:
            _with_durations(team, view_store, run)
        else:
            scratch = open_store(run_store_url, root=settings.project_root)
            try:
                _with_durations(scratch, view_store, run)
            finally:
                scratch.close()
    finally:
        team.close()
    main = settings.main_branch
    run, rows = compare_runs(settings, view_store, baseline=main, run_id=run.run_id, commit=None, last=last)
    return comparison_markdown(settings, run, main, rows, environ)


# ----------------------------------------------------------------------------- ci nightly
def _branch_checked(settings: Settings, any_branch: bool, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(sha, branch) of the checkout; refuses a branch other than ``main_branch`` unless ``any_branch``."""
    from mltest.gitinfo import current_commit

    commit = current_commit(settings.project_root, environ).commit
    main = settings.main_branch
    if commit.branch != main and not any_branch:
        where = f"branch {commit.branch!r}" if commit.branch else "no known branch (detached HEAD, no CI variable)"
        raise ConfigError(
            f"mltest ci nightly runs on the main branch {main!r}, and this checkout is on {where}: run it on "
            f"{main}, set main_branch in [tool.mltest] if yours is named otherwise, or pass --any-branch"
        )
    return commit.sha, commit.branch


def _sync(settings: Settings, summary: Summary) -> None:
    """``mltest sync`` (spooled journals, dead runs, and the Google Sheet when configured); best effort."""
    from mltest.cli.store_cmds import sync, sync_sheets

    try:
        summary.say(f"sync: {sync(settings)}")
    except Exception as exc:  # a side channel (spool, Google Sheet): any failure of it is one warning line
        summary.warn(f"sync failed: {type(exc).__name__}: {_first_line(exc)}")
    if not settings.sheets_url:
        return
    try:
        summary.say(f"sheet: {sync_sheets(settings).line()}")
    except Exception as exc:  # the runs stay queued in the store for the next sync
        summary.warn(f"sheet sync failed, the runs stay queued: {type(exc).__name__}: {_first_line(exc)}")


def nightly(
    settings: Settings,
    *,
    given: dict[str, Any],
    any_branch: bool,
    policy: str,
    report_only: bool,
    artifacts: Path,
    junitxml: Path | None,
    webhook: str | None,
    notify_kind: str,
    pytest_args: Sequence[str],
    environ: Mapping[str, str],
) -> int:
    """The nightly job; returns its exit code (see the module docstring and ``--policy``)."""
    from mltest.cli.detect_cmds import analyze

    if policy not in POLICIES:
        raise ConfigError(f"--policy {policy!r}: choose one of {', '.join(POLICIES)}")
    sha, branch = _branch_checked(settings, any_branch, environ)
    shard: ShardSpec | None = settings.shard
    if report_only and shard is not None:
        raise ConfigError("--report-only runs no tests: drop --shard (the report covers every shard's runs)")
    label = f"shard {shard}" if shard is not None else ("report" if report_only else "")
    summary = Summary(f"mltest ci nightly{', ' + label if label else ''} at {sha[:10]} ({branch or 'no branch'})")
    tests = TierRun(0, None)
    if not report_only:
        suffix = f"-{shard.index}-of-{shard.total}" if shard is not None else ""
        junitxml = junitxml if junitxml is not None else artifacts / f"junit-nightly{suffix}.xml"
        tests = _run_tier([*to_pytest_args(given), f"--junitxml={junitxml}"], pytest_args, settings, settings.store_url)
        mark = "✅ " if tests.code == 0 else "❌ "
        summary.say(tests.what, md=mark + md_text(tests.what))
        if tests.run is not None:
            summary.say(f"recorded run {tests.run.run_id[:12]} ({tests.run.status})")
        elif settings.record:
            summary.warn("the run this job recorded was not found in the store")
    _sync(settings, summary)
    summary_name = f"summary-nightly{'-' + str(shard).replace('/', '-of-') if shard else ''}.md"
    if shard is not None:
        summary.say("detection, report and notification run once, after every shard: mltest ci nightly --report-only")
        _append_summary(summary.text(), artifacts, environ, summary_name)
        return _exit_code(tests.code)

    store = open_store(settings.store_url, root=settings.project_root)
    try:
        analysis = analyze(settings, store, branch=branch)
        report = build_report(settings, store, analysis, environ=environ)
        at_commit = [
            r
            for r in store.runs(branch=branch, project=settings.project_name, limit=500)
            if r.commit.sha == sha and r.tier == "integration"
        ]
    finally:
        store.close()
    failed = tests.code != 0
    if report_only:
        bad = [r for r in at_commit if r.status != "passed"]
        if not at_commit:
            failed = True
            summary.warn(f"no integration run of {sha[:10]} in the store: the shards recorded nothing")
        else:
            statuses = ", ".join(f"{r.run_id[:12]} {r.status}" for r in at_commit)
            summary.say(
                f"{len(at_commit)} integration run(s) of this commit: {statuses}",
                md=("❌ " if bad else "✅ ") + f"{len(at_commit)} integration run(s) of this commit: {statuses}",
            )
            failed = failed or bool(bad)
    new = len(report.new)
    summary.say(f"detection over {branch or 'every branch'}: {new} new regression(s)")
    _write(artifacts / "report.html", render(report, "html"))
    _write(artifacts / "report.json", render(report, "json"))
    summary.say(f"report: {artifacts / 'report.html'}, {artifacts / 'report.json'}")
    if webhook:
        from mltest.report.notify import NotifyKind, notify

        try:
            kind: NotifyKind = "json" if notify_kind == "json" else "slack"
            summary.say(f"notify: {notify(report, webhook, kind=kind).reason}")
        except MltestError as exc:
            summary.warn(f"notify failed: {_first_line(exc)}")
    if failed:
        code = tests.code if tests.code != 0 else EXIT_REGRESSION
        verdict = f"exit {_exit_code(code)}: the tests failed, whatever the policy"
    elif new and policy == "fail":
        code = EXIT_REGRESSION
        verdict = f"exit 1: {new} new regression(s) and --policy fail (acknowledge with `mltest ack ID`)"
    else:
        code = EXIT_OK
        verdict = "exit 0" + (f": {new} new regression(s) reported (--policy report)" if new else "")
    summary.say(verdict)
    _append_summary(summary.text(render(report, "markdown")), artifacts, environ, summary_name)
    return _exit_code(code)
