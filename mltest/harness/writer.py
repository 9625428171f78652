"""The store writer: a child process that puts a pytest session's records into the store.

Opening the store costs a session about a hundred milliseconds (importing the store, the schema check,
settling crashed runs; a few hundred more where SQLAlchemy is needed: PostgreSQL, or a SQLite store to
create or migrate), git and the environment a few dozen more, and the tests need none of it. So
the recording session starts this process as it configures, and collection and the first tests run
while the writer works, on another core. The session journals each finished test (one appended line,
flushed at once: see :mod:`mltest.recorder`) and never imports the store; the writer begins the run,
follows the journal and sends what it reads in batches, with the retries and the journal-only
fallback of :class:`~mltest.recorder.RunRecorder`.

The protocol is JSON lines. The session writes the start request to the writer's stdin; the writer
answers on its stdout ``{"run": ..., "notes": [...], "url": ..., "journal": ...}`` once the run is in
the store (or ``{"error": ...}``: the run cannot be recorded). The session, before its first test,
writes the run as the journal's first line; then a line per test, the finish line, and a ``finish``
request; the writer sends what is left, marks the run finished, removes the journal and answers
``{"store_errors": [...]}``. The session waits for that answer, and for the writer to close the store,
before pytest exits: a normal end leaves the run whole in the store, as before.

Failures keep the records: when the session dies, the writer sees its stdin close, sends what the
journal holds and leaves the run running with its journal, as a killed run is left (the next
``mltest`` command or ``mltest sync`` settles it). When the writer cannot start, or dies, the session
records in-process instead (at the start) or replays its own journal into the store (at the end).

The session's side (:class:`Writer`) imports neither the store nor the recorder; the writer's side
(:func:`main`) never imports pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from mltest.errors import MltestError

if TYPE_CHECKING:
    from mltest.recorder import RunRecorder

__all__ = ["POLL_SECONDS", "Writer", "main"]

POLL_SECONDS = 0.05
"""How often the writer reads the journal for new tests."""
FLUSH_SECONDS, FLUSH_MAX = 0.1, 100
"""The writer's batches: a tenth of a second's results, or 100 (an in-process recorder sends a second's,
or 500). The session waits at its end for what is not sent yet; the transactions are this process's."""
CHECKPOINT_SECONDS = 0.25
"""At most this often, once something new is stored, the writer moves SQLite's write-ahead log into the
database file (:meth:`~mltest.store.sql.SqlStore.checkpoint`): the session waits for what is left of
it when the writer closes the store."""


class Writer:
    """The session's handle on its writer process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    @classmethod
    def start(cls, store_url: str, project_root: Path) -> Writer | None:
        """Start a writer that opens the store at ``store_url`` for the project at ``project_root``
        (:meth:`run` tells it the rest); None when it cannot be started."""
        if not sys.executable:
            return None
        package_parent = str(Path(__file__).resolve().parents[2])  # importable there, whatever sys.path holds
        code = f"import sys; sys.path.append({package_parent!r}); from mltest.harness.writer import main; main()"
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # it answers on stdout; when it dies, the session records instead
                start_new_session=True,  # the terminal's Ctrl-C is the session's to handle, not the writer's
            )
        except OSError:
            return None
        writer = cls(proc)
        if not writer._send({"store_url": store_url, "root": str(project_root)}):
            writer.close(kill=True)
            return None
        return writer

    def run(self, request: Mapping[str, Any]) -> bool:
        """Tell the writer the run to begin: ``project``, ``tier``, ``started_at``, ``pid``, ``hostname``,
        ``flags`` (str -> str) and ``torch`` (:func:`~mltest.envinfo.torch_facts`, or None: the writer
        reads torch's version without importing it). False when the writer is gone."""
        return self._send(request)

    def _send(self, message: Mapping[str, Any]) -> bool:
        stdin = self._proc.stdin
        try:
            assert stdin is not None
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def _receive(self) -> dict[str, Any] | None:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            line = stdout.readline()
            answer = json.loads(line) if line else None
        except (OSError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    def ready(self) -> dict[str, Any] | None:
        """Wait for the writer's first answer (the run, or an error); None when the writer died."""
        return self._receive()

    def finish(self, status: str, finished_at: str) -> dict[str, Any] | None:
        """Ask the writer to send the rest and finish the run; its answer, or None when it died."""
        if not self._send({"finish": status, "finished_at": finished_at}):
            return None
        return self._receive()

    def close(self, *, kill: bool = False) -> None:
        """Let the writer end (it closes the store) and wait for it; ``kill``: end it now."""
        if kill and self._proc.poll() is None:
            self._proc.kill()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._proc.wait()


# ----------------------------------------------------------------------------- the writer process


class _Lines:
    """Lines from a file descriptor, with a timeout."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False

    def next(self, timeout: float | None) -> bytes | None:
        """The next line (without its newline); b"" at the end of input; None when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer and not self._eof:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._fd], [], [], wait)[0]:
                return None
            data = os.read(self._fd, 65536)
            self._eof = not data
            self._buffer += data
        line, newline, self._buffer = self._buffer.partition(b"\n")
        return line if newline else b""


def _answer(out: IO[bytes], message: Mapping[str, Any]) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def _begin(commands: _Lines) -> tuple[RunRecorder, tuple[str, ...]] | None:
    """Open the store (settling crashed runs), read git and the environment, and begin the run the
    session asks for; None when the session went away first."""
    from mltest.envinfo import capture_environment
    from mltest.gitinfo import CommitInfo, ci_run_url, current_commit
    from mltest.model import Environment, Run

    line = commands.next(None)
    if not line:
        return None
    where = json.loads(line)
    root = Path(where["root"])
    asked: list[dict[str, Any]] = []
    got_request = threading.Event()
    found: dict[str, CommitInfo | Environment | BaseException] = {}

    def probe() -> None:  # mostly waiting for git and nvidia-smi: runs while the main thread imports
        try:
            found["commit"] = current_commit(root, os.environ)
            got_request.wait()
            if asked:
                request = asked[0]
                found["environment"] = capture_environment(
                    request["flags"], os.environ, import_torch=False, torch=request["torch"]
                )
        except BaseException as exc:  # pragma: no cover - re-raised below
            found["error"] = exc

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    from mltest.recorder import RunRecorder, new_run_id, spool_path
    from mltest.store import open_store

    store = open_store(where["store_url"], root=root)  # what crashed runs left is settled later
    try:
        line = commands.next(None)
        if line:
            asked.append(json.loads(line))
        got_request.set()
        thread.join()
        error = found.get("error")
        if isinstance(error, BaseException):
            raise error
        if not asked:
            store.close()
            return None
        request = asked[0]
        info, environment = found["commit"], found["environment"]
        assert isinstance(info, CommitInfo)
        assert isinstance(environment, Environment)
        run = Run(
            run_id=new_run_id(),
            project=request["project"],
            tier=request["tier"],
            commit=info.commit,
            environment=environment,
            started_at=request["started_at"],
            ci_url=ci_run_url(os.environ),
            hostname=request["hostname"],
            pid=request["pid"],
        )
        recorder = RunRecorder(
            store, run, spool_path(root), journal=False, flush_seconds=FLUSH_SECONDS, flush_max=FLUSH_MAX
        )
        recorder.begin()
    except BaseException:
        store.close()
        raise
    return recorder, info.notes


def _settle(recorder: RunRecorder) -> list[str]:
    """Settle what crashed runs left behind (their journals, their rows still 'running'), once the
    session runs its tests: nothing waits for it. Returns notes on what failed (tried again next time)."""
    from mltest.recorder import reap_dead_runs, recover_spool

    try:
        recover_spool(recorder.store, recorder.spool_dir)
        reap_dead_runs(recorder.store)
    except MltestError as exc:
        return [f"crashed runs were not settled: {exc}; the next run or `mltest sync` tries again"]
    return []


def _follow(recorder: RunRecorder, commands: _Lines, out: IO[bytes], notes: list[str]) -> None:
    """Send what the session journals until it asks to finish (or goes away)."""
    from mltest.model import Measurement, TestResult

    journal: IO[bytes] | None = None
    partial = b""
    checkpoint = getattr(recorder.store, "checkpoint", None)  # SQLite's; not in the Store protocol
    checkpointed, next_checkpoint = 0, 0.0
    try:
        while True:
            command = commands.next(POLL_SECONDS)
            if journal is None:
                with contextlib.suppress(FileNotFoundError):  # the session writes it before its first test
                    journal = open(recorder.journal_path, "rb", buffering=0)  # noqa: SIM115 - held while following
            data = journal.read() if journal is not None else b""
            *lines, partial = (partial + data).split(b"\n") if data else [partial]
            # One parse for all the new lines: a call per line costs about twice as much.
            for entry in json.loads(b"[" + b",".join(lines) + b"]") if lines else ():
                if entry["type"] == "test":
                    recorder.add_test(
                        TestResult(**entry["result"]),
                        [Measurement(**{**m, "samples": tuple(m["samples"])}) for m in entry["measurements"]],
                    )
            if command is None:
                # Batches go as RunRecorder decides (FLUSH_SECONDS' or FLUSH_MAX results, measured ones
                # within a tenth of a second); what waits is sent once a poll finds nothing new (a long test).
                if not lines and recorder.pending:
                    recorder.flush(raise_errors=False)
                stored = recorder.tests - recorder.pending
                if checkpoint is not None and stored != checkpointed and time.monotonic() >= next_checkpoint:
                    with contextlib.suppress(MltestError):  # closing the store tries again
                        checkpoint()
                    checkpointed, next_checkpoint = stored, time.monotonic() + CHECKPOINT_SECONDS
                continue
            if not command:  # stdin closed without a finish: the session died; the journal stays for a replay
                recorder.flush(raise_errors=False)
                return
            request = json.loads(command)
            try:
                recorder.finish(request["finish"], request["finished_at"])
            except MltestError as exc:
                recorder.store_errors.append(str(exc))
            _answer(out, {"store_errors": recorder.store_errors, "notes": notes})
            return
    finally:
        if journal is not None:
            journal.close()


def main() -> None:
    """The writer process: ``python -c "from mltest.harness.writer import main; main()"``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupted session still finishes its run
    out = sys.stdout.buffer
    commands = _Lines(sys.stdin.fileno())
    try:
        begun = _begin(commands)
    except MltestError as exc:
        _answer(out, {"error": str(exc)})
        _exit()
    if begun is None:
        _exit()
    recorder, notes = begun
    from mltest.recorder import run_to_json

    try:
        _answer(
            out,
            {
                "run": run_to_json(recorder.run),
                "notes": list(notes),
                "url": recorder.store.url,
                "journal": str(recorder.journal_path),
            },
        )
        _follow(recorder, commands, out, _settle(recorder))
    finally:
        recorder.store.close()  # SQLite: the WAL goes into the database file; the session waits for it
    _exit()


def _exit() -> NoReturn:
    """End now: everything is stored and answered, and tearing down the interpreter (with SQLAlchemy's
    hundreds of modules, where it was needed) would only make the session wait longer for this process."""
    sys.stdout.flush()
    os._exit(0)
