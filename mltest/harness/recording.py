"""Recording in the pytest plugin: one run per session, recorded by the controller (or the only process).

Workers never touch the store: the ``record`` fixture hands measurements over with each test's
reports (:mod:`mltest.harness.handoff`); here they are joined with the test's outcome. Each finished
test is one line appended to the run's journal, and a writer process (:mod:`mltest.harness.writer`),
started as the session configures, puts the journal into the store while the tests run: the session
itself never waits for the store, git or the environment, except, if the writer is not ready by then,
before the first test (the run must be in the store before a test runs) and at the end (the run must
be whole in the store when pytest exits). Without a writer (it cannot start, or the store is
``memory://``, which lives in one process) the session records in-process through
:class:`~mltest.recorder.RunRecorder`, as ``mltest.recording()`` does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mltest.errors import MltestError
from mltest.harness import handoff
from mltest.harness.writer import Writer
from mltest.model import Commit, Measurement, RunStatus, TestResult, utc_now

if TYPE_CHECKING:
    from mltest.config import Settings
    from mltest.recorder import RunRecorder

__all__ = ["RecorderPlugin", "journal_line", "recording_skipped_reason", "start_writer_early"]

_EARLY_WRITER = pytest.StashKey["Writer | None"]()


def recording_skipped_reason(settings: Settings, environ: Any) -> str | None:
    """Why this session records nothing, or None when it records."""
    if not settings.record:
        return "recording is off (--mltest-no-record / record = false)"
    from mltest.gitinfo import is_pull_request

    if settings.tier == "unit" and is_pull_request(environ) and not settings.record_pull_requests:
        return "a pull request's unit tier is not recorded (record_pull_requests = true changes that)"
    return None


def _through_writer(store_url: str) -> bool:
    """Whether a writer process writes this store: not ``memory://`` (it lives in one process, this
    one), and not when this process has imported SQLAlchemy already (a test process that runs pytest
    in-process, an application's conftest): the heaviest import the store may need (PostgreSQL, a
    SQLite schema to create or migrate) is paid by then, and recording here costs less than starting
    a process that imports it again."""
    return not store_url.lower().startswith("memory:") and "sqlalchemy" not in sys.modules


def start_writer_early(config: pytest.Config, settings: Settings) -> None:
    """Start the writer before conftest files load (``pytest_load_initial_conftests``; not in an xdist
    worker), so that it opens the store while they import; :class:`RecorderPlugin` takes it over.
    Nothing happens when this session may not record (recording off, a store URL that configure will
    refuse)."""
    if recording_skipped_reason(settings, os.environ) is not None or not _through_writer(settings.store_url):
        return
    try:
        _check_store_url(settings.store_url)
    except MltestError:
        return  # refused in pytest_configure, with the reason
    writer = Writer.start(settings.store_url, settings.project_root)
    if writer is None:
        return
    config.stash[_EARLY_WRITER] = writer

    def discard() -> None:  # the session never configured (pytest --version) or never recorded
        left = config.stash.get(_EARLY_WRITER, None)
        config.stash[_EARLY_WRITER] = None
        if left is not None:
            left.close(kill=True)

    config.add_cleanup(discard)


class _Test:
    """A test between its first report and its teardown (one attempt at a time)."""

    __slots__ = ("attempt", "duration", "outcome", "rerun")

    def __init__(self) -> None:
        self.attempt = 0
        self.duration = 0.0
        self.outcome: str | None = None
        self.rerun = False


def _exit_status(exitstatus: int) -> RunStatus:
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return "passed"
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "aborted"
    return "failed"


def _cannot_record(reason: object) -> pytest.UsageError:
    return pytest.UsageError(f"mltest: cannot record this run: {reason} (--mltest-no-record runs without)")


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


_json_str = encode_basestring_ascii
"""A string as JSON text, exactly as ``json.dumps`` writes it (the C function it calls)."""


def journal_line(nodeid: str, outcome: str, duration: float, attempt: int, flaky: bool) -> str:
    """The journal line of a test result without measurements (most of them), built directly: the same
    text as ``json.dumps`` of the entry, with separators ``(",", ":")``, in a fraction of the time."""
    return (
        f'{{"type":"test","result":{{"test":{_json_str(nodeid)},"outcome":{_json_str(outcome)},'
        f'"duration":{float(duration)!r},"attempt":{int(attempt)},'
        f'"flaky":{"true" if flaky else "false"}}},"measurements":[]}}\n'
    )


def _check_store_url(url: str) -> None:
    """Raise the :class:`StoreError` that ``open_store`` raises for a URL it refuses, without opening
    (and importing) a store for the URLs it accepts."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("sqlite", "postgresql", "postgres") or scheme.startswith(("postgresql+", "sqlite+")):
        return
    from mltest.store import open_store

    open_store(url).close()  # raises for what it refuses; opens only a scheme this list does not know yet


class RecorderPlugin:
    """Registered as ``mltest-recorder`` on the reporting process when the session records."""

    def __init__(self, config: pytest.Config, settings: Settings, flags: dict[str, Any]) -> None:
        self.config = config
        self.settings = settings
        self._flags = flags
        self.unfinished: dict[str, _Test] = {}
        """Tests with a report that did not pass, or a rerun, until their (last) teardown."""
        self._measurements: dict[str, list[Measurement]] = {}
        """Measurements handed over, by test, until the test's result is journaled."""
        self.tests = 0
        self.measurement_count = 0
        self.store_errors: list[str] = []
        """Failed store writes whose records are, for now, only in the journal."""
        self.notes: tuple[str, ...] = ()
        self.run_id = ""
        self.commit = Commit("unknown")
        self.store_url = ""
        self.journal_path: Path | None = None
        self._fd: int | None = None
        """The journal, appended to by this process while a writer process sends it to the store."""
        self._writer: Writer | None = None
        self._recorder: RunRecorder | None = None
        """In-process recording, when there is no writer."""
        self._started = False
        self._finished = False
        early = config.stash.get(_EARLY_WRITER, None)
        config.stash[_EARLY_WRITER] = None
        try:
            if _through_writer(settings.store_url):
                _check_store_url(settings.store_url)
                self._writer, early = early or Writer.start(settings.store_url, settings.project_root), None
            if self._writer is not None:
                self._writer.run(self._request())  # if it is gone, waiting for its answer says so
            else:
                self._start_in_process()
        except MltestError as exc:
            raise _cannot_record(exc) from None
        finally:
            if early is not None:  # started before this process loaded the SQL store itself
                early.close(kill=True)
        handoff.add_receiver(config, self._receive)

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid; None while this process records in-process."""
        return self._writer.pid if self._writer is not None else None

    # ------------------------------------------------------------------ starting the run
    def _request(self) -> dict[str, Any]:
        settings = self.settings
        torch = None
        if settings.tier != "unit" or "torch" in sys.modules:  # what only this process can tell about torch
            from mltest.envinfo import torch_facts

            torch = torch_facts(settings.tier != "unit")
        return {
            "project": settings.project_name,
            "tier": settings.tier,
            "started_at": utc_now(),
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "flags": {str(k): str(v) for k, v in self._flags.items()},
            "torch": torch,
        }

    def _start_in_process(self) -> None:
        from mltest.recorder import open_run

        self._started = True
        recorder, self.notes = open_run(
            self.settings,
            tier=self.settings.tier,
            environ=os.environ,
            flags=self._flags,
            import_torch=self.settings.tier != "unit",
        )
        self._recorder = recorder
        self.run_id, self.commit, self.store_url = recorder.run.run_id, recorder.run.commit, recorder.store.url
        self.journal_path = recorder.journal_path

    def _start(self) -> None:
        """Wait until the writer has the run in the store, then open the journal with the run as its first
        line. Raises ``UsageError`` when the run cannot be recorded."""
        if self._started:
            return
        self._started = True
        assert self._writer is not None
        answer = self._writer.ready()
        if answer is None or "error" in answer:
            self._writer.close(kill=answer is None)
            self._writer = None
            if answer is not None:
                raise _cannot_record(answer["error"])
            try:  # the writer died: record in this process
                self._start_in_process()
            except MltestError as exc:
                raise _cannot_record(exc) from None
            return
        run = answer["run"]
        self.run_id = run["run_id"]
        self.commit = Commit(run["commit"]["sha"], branch=run["commit"]["branch"])
        self.notes = tuple(answer["notes"])
        self.store_url = answer["url"]
        self.journal_path = Path(answer["journal"])
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        self._append(_dumps({"type": "run", "run": run}) + "\n")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Before the first test: the run is in the store, or the session stops here."""
        try:
            self._start()
        except pytest.UsageError:
            self._finished = True
            raise

    # ------------------------------------------------------------------ each test
    def _append(self, line: str) -> None:
        """One journal line, in one write: in the OS page cache at once, so a kill -9 cannot lose it."""
        assert self._fd is not None
        data = line.encode()
        written = os.write(self._fd, data)
        while written < len(data):
            written += os.write(self._fd, data[written:])

    def _add(self, nodeid: str, outcome: str, duration: float, attempt: int, measurements: list[Measurement]) -> None:
        if not self._started:
            self._start()
        flaky = attempt > 0 and outcome == "passed"
        self.tests += 1
        self.measurement_count += len(measurements)
        if self._fd is None:
            assert self._recorder is not None
            self._recorder.add_test(TestResult(nodeid, outcome, duration, attempt, flaky), measurements)
        elif measurements:
            entry = {
                "type": "test",
                "result": dataclasses.asdict(TestResult(nodeid, outcome, duration, attempt, flaky)),
                "measurements": [dataclasses.asdict(m) for m in measurements],
            }
            self._append(_dumps(entry) + "\n")
        else:
            self._append(journal_line(nodeid, outcome, duration, attempt, flaky))

    def _receive(self, nodeid: str, entry: dict[str, Any]) -> None:
        if entry.get("kind") == "measurement":
            data = {k: v for k, v in entry.items() if k != "kind"}
            data["samples"] = tuple(data.get("samples", ()))
            self._measurements.setdefault(nodeid, []).append(Measurement(**data))

    def report(self, report: pytest.TestReport, nodeid: str, outcome: str, total: float) -> None:
        """A report from the session plugin's ``pytest_runtest_logreport``, after the hand-off entries were
        delivered; ``total`` is the test's duration so far. It needs each report of a test in
        :attr:`unfinished`, and of a test that has just not passed, but of a test that passes throughout
        only the teardown: the test's result is journaled at its teardown."""
        test = self.unfinished.get(nodeid)
        when = report.when
        if test is None:
            if outcome == "passed" and not hasattr(report, "wasxfail"):
                if when == "teardown":  # passed throughout (the common case)
                    self._add(nodeid, "passed", total, 0, self._measurements.pop(nodeid, []))
                return
            test = self.unfinished[nodeid] = _Test()
            test.duration = total  # this attempt's phases so far, this one included
        else:
            test.duration += report.duration
        if outcome == "rerun":  # pytest-rerunfailures: this attempt failed
            test.rerun = True
        elif when == "setup":
            if outcome != "passed":
                test.outcome = "error" if outcome == "failed" else "skipped"
        elif when == "call":
            if hasattr(report, "wasxfail"):
                test.outcome = "xfailed" if outcome == "skipped" else "xpassed"
            else:
                test.outcome = outcome
        elif when == "teardown" and outcome == "failed" and test.outcome in (None, "passed"):
            test.outcome = "error"
        if when != "teardown":
            return
        if test.rerun:
            self._add(nodeid, "failed", test.duration, test.attempt, [])
            test.attempt += 1
            test.duration, test.outcome, test.rerun = 0.0, None, False
            return
        del self.unfinished[nodeid]
        self._add(nodeid, test.outcome or "passed", test.duration, test.attempt, self._measurements.pop(nodeid, []))

    # ------------------------------------------------------------------ the end
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._finished:
            return
        self._finished = True
        status = _exit_status(exitstatus)
        try:
            self._start()
        except pytest.UsageError as exc:  # no test ran (collection stopped the session) and the store failed
            self.store_errors.append(str(exc))
            return
        if self._recorder is None and self._fd is None:  # starting failed (the error is pytest's to show)
            return
        if self._recorder is not None:
            try:
                self._recorder.finish(status)
            except MltestError as exc:
                self.store_errors.append(str(exc))
            finally:
                self.store_errors[:0] = self._recorder.store_errors
                self._recorder.store.close()
            return
        assert self._writer is not None
        assert self._fd is not None
        finished_at = utc_now()
        self._append(_dumps({"type": "finish", "status": status, "finished_at": finished_at}) + "\n")
        os.close(self._fd)
        self._fd = None
        answer = self._writer.finish(status, finished_at)
        if answer is None:  # the writer died: this process sends the journal
            self._writer.close(kill=True)
            self._writer = None
            self._replay()
        else:
            self.store_errors.extend(answer["store_errors"])
            self.notes += tuple(answer.get("notes", ()))

    def _replay(self) -> None:
        from mltest.recorder import read_journal, replay_journal
        from mltest.store import open_store

        assert self.journal_path is not None
        try:
            store = open_store(self.settings.store_url, root=self.settings.project_root)
            try:
                replay_journal(store, read_journal(self.journal_path))
            finally:
                store.close()
        except MltestError as exc:
            self.store_errors.append(str(exc))
            return
        self.journal_path.unlink(missing_ok=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """The writer closes the store (SQLite: the WAL goes into the database file) before pytest exits."""
        if self._fd is not None:  # the session never finished
            os.close(self._fd)
            self._fd = None
        if self._writer is not None:
            self._writer.close(kill=not self._started)
            self._writer = None

    @pytest.hookimpl(trylast=True)  # inside the session plugin's "mltest" section
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.run_id:
            for error in self.store_errors:
                terminalreporter.write_line(f"not recorded: {error}", red=True)
            return
        terminalreporter.write_line(
            f"recorded run {self.run_id[:12]} at {self.commit.short} ({self.commit.branch or 'no branch'}): "
            f"{self.tests} test results, {self.measurement_count} measurements -> {self.store_url}"
        )
        for note in self.notes:
            terminalreporter.write_line(f"note: {note}", yellow=True)
        for error in self.store_errors:
            terminalreporter.write_line(
                f"store error: {error}; the records are kept in {self.journal_path} for `mltest sync`",
                red=True,
            )
