"""Recording in the pytest plugin: one run per session, written by the controller (or the only process).

Workers never touch the store: the ``record`` fixture hands measurements over with each test's
reports (:mod:`mltest.harness.handoff`); here they are joined with the test's outcome and written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from mltest.config import Settings
from mltest.errors import MltestError
from mltest.gitinfo import is_pull_request
from mltest.harness import handoff
from mltest.model import Measurement, RunStatus, TestResult
from mltest.recorder import RunRecorder, open_run

__all__ = ["RecorderPlugin", "recording_skipped_reason"]


def recording_skipped_reason(settings: Settings, environ: Any) -> str | None:
    """Why this session records nothing, or None when it records."""
    if not settings.record:
        return "recording is off (--mltest-no-record / record = false)"
    if settings.tier == "unit" and is_pull_request(environ) and not settings.record_pull_requests:
        return "a pull request's unit tier is not recorded (record_pull_requests = true changes that)"
    return None


@dataclass
class _Attempt:
    outcome: str | None = None
    duration: float = 0.0
    rerun: bool = False


@dataclass
class _Test:
    attempt: int = 0
    current: _Attempt = field(default_factory=_Attempt)
    measurements: list[Measurement] = field(default_factory=list)


def _exit_status(exitstatus: int) -> RunStatus:
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return "passed"
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "aborted"
    return "failed"


class RecorderPlugin:
    """Registered as ``mltest-recorder`` on the reporting process when the session records."""

    def __init__(self, config: pytest.Config, settings: Settings, flags: dict[str, Any]) -> None:
        self.config = config
        self.settings = settings
        self._tests: dict[str, _Test] = {}
        try:
            self.recorder: RunRecorder
            self.recorder, self.notes = open_run(
                settings,
                tier=settings.tier,
                environ=os.environ,
                flags=flags,
                import_torch=settings.tier != "unit",
            )
        except MltestError as exc:
            raise pytest.UsageError(
                f"mltest: cannot record this run: {exc} (--mltest-no-record runs without)"
            ) from None
        handoff.add_receiver(config, self._receive)

    def _receive(self, nodeid: str, entry: dict[str, Any]) -> None:
        if entry.get("kind") == "measurement":
            data = {k: v for k, v in entry.items() if k != "kind"}
            data["samples"] = tuple(data.get("samples", ()))
            self._tests.setdefault(nodeid, _Test()).measurements.append(Measurement(**data))

    @pytest.hookimpl(trylast=True)  # after the session plugin has delivered the hand-off entries
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test = self._tests.setdefault(report.nodeid, _Test())
        attempt = test.current
        attempt.duration += report.duration
        if str(report.outcome) == "rerun":  # pytest-rerunfailures: this attempt failed
            attempt.rerun = True
        elif report.when == "setup" and report.outcome != "passed":
            attempt.outcome = "error" if report.failed else "skipped"
        elif report.when == "call":
            if hasattr(report, "wasxfail"):
                attempt.outcome = "xfailed" if report.skipped else "xpassed"
            else:
                attempt.outcome = report.outcome
        elif report.when == "teardown" and report.failed and attempt.outcome in (None, "passed"):
            attempt.outcome = "error"
        if report.when != "teardown":
            return
        if attempt.rerun:
            self.recorder.add_test(TestResult(report.nodeid, "failed", attempt.duration, test.attempt, False))
            test.attempt += 1
            test.current = _Attempt()
            return
        outcome = attempt.outcome or "passed"
        result = TestResult(
            report.nodeid, outcome, attempt.duration, test.attempt, flaky=test.attempt > 0 and outcome == "passed"
        )
        del self._tests[report.nodeid]
        self.recorder.add_test(result, test.measurements)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            self.recorder.finish(_exit_status(exitstatus))
        except MltestError as exc:
            self.recorder.store_errors.append(str(exc))
        finally:
            self.recorder.store.close()

    @pytest.hookimpl(trylast=True)  # inside the session plugin's "mltest" section
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        run = self.recorder.run
        terminalreporter.write_line(
            f"recorded run {run.run_id[:12]} at {run.commit.short} ({run.commit.branch or 'no branch'}): "
            f"{self.recorder.tests} test results, {self.recorder.measurement_count} measurements "
            f"-> {self.recorder.store.url}"
        )
        for note in self.notes:
            terminalreporter.write_line(f"note: {note}", yellow=True)
        for error in self.recorder.store_errors:
            terminalreporter.write_line(
                f"store error: {error}; the records are kept in {self.recorder.journal_path} for `mltest sync`",
                red=True,
            )
