"""Hostile text, and a real project full of it, for tests/reliability/test_hostile_text.py and test_secrets.py.

:func:`build_hostile_project` makes a real git repository whose commit subjects are hostile (written
with ``git commit --cleanup=verbatim``, so escape sequences and carriage returns reach git's history
as they are), and a real SQLite store with one run per commit, read from that checkout by
:func:`mltest.gitinfo.current_commit` and recorded through the store API: hostile test ids, metric
names, a unit and an environment key (GPU model), two regressions (one at a single culprit commit, one
over a two-commit range), and an acknowledgement with a hostile reason.

Also: the local Sheets API server of tests/store (imported from there), and a local webhook receiver.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

_TESTS = Path(__file__).resolve().parent.parent
for _folder in (_TESTS, _TESTS / "store"):  # gitrepo.py; sheets_server.py (as tests/store/conftest.py imports it)
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from gitrepo import git, isolate_git  # noqa: E402
from sheets_server import SPREADSHEET, Formula, SheetsServer, make_service_account, running_server  # noqa: E402

from mltest.model import Acknowledgement, Environment, Measurement, Run, TestResult, utc_now  # noqa: E402

__all__ = [
    "CONTROL",
    "HOSTILE",
    "SPREADSHEET",
    "Formula",
    "HostileProject",
    "Ran",
    "SheetsServer",
    "Webhook",
    "build_hostile_project",
    "make_service_account",
    "run_cli",
    "running_server",
    "running_webhook",
]

HOSTILE: dict[str, str] = {
    "formula": '=HYPERLINK("http://evil.example/x","click me")',
    "importxml": '=IMPORTXML("http://evil.example/feed","//secret")',
    "script": "<script>alert(1)</script>",
    "img": '<img src=x onerror="alert(2)">',
    "markdown": "cell|break\n| --- | --- |\n`tick` [x](javascript:alert(3)) <!channel> <@U123|me>",
    "terminal": "\x1b[2J\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07\rfake: ok\x1b[31m\u202eevil\x9b31m",
}
"""Each kind of hostile text: spreadsheet formulas, HTML, Markdown/Slack structure, terminal escapes."""

CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""What must never reach a terminal: C0 (but the newline) and C1 controls, DEL, bidi overrides."""

ALL = " ".join(HOSTILE.values())
COMMITS = 16
CULPRIT = 6
"""Series A (every commit) drops at this commit: a single culprit."""
RANGE_BAD, RANGE_SKIPPED = 10, 9
"""Series B is not measured at commit 9 and rises at commit 10: a two-commit range (9, 10)."""

TEST_A = f"tests/test_model.py::test_train[{HOSTILE['formula']}|{HOSTILE['script']}]"
METRIC_A = f"accuracy {HOSTILE['img']} {HOSTILE['terminal']}"
TEST_B = f"tests/test_speed.py::test_step[{HOSTILE['markdown']}]"
METRIC_B = f"{HOSTILE['importxml']} step_time"
UNIT_B = "s"
GPU = f"H100 {HOSTILE['script']} {HOSTILE['terminal']}"
ACK_REASON = f"known: {HOSTILE['markdown']} {HOSTILE['formula']} {HOSTILE['terminal']}"
ACK_WHO = f"{HOSTILE['img']}"


def subject(i: int) -> str:
    """The commit message of commit ``i``: every kind of hostile text; the culprit gets all of them."""
    if i == 0:
        return "first model"
    if i == CULPRIT:
        return ALL
    kinds = list(HOSTILE.values())
    return f"change {i}: {kinds[i % len(kinds)]}"


@dataclass
class HostileProject:
    root: Path
    """The git checkout, with pyproject.toml ([tool.mltest]) and the store results.db."""
    store_url: str
    shas: list[str] = field(default_factory=list)
    subjects: dict[str, str] = field(default_factory=dict)
    """sha -> subject as git reports it (``%s``: the message's first paragraph on one line)."""
    regressions: list[str] = field(default_factory=list)
    """Ids of the regressions found (the acknowledged one second)."""

    @property
    def texts(self) -> list[str]:
        """Every hostile text recorded (what outputs are searched for)."""
        return [TEST_A, METRIC_A, TEST_B, METRIC_B, GPU, ACK_REASON, ACK_WHO, *self.subjects.values()]


def _env() -> Environment:
    return Environment(
        "3.11", "linux-x86_64", "runner-1", "Xeon", 8, "0.1.0", torch="2.13.0", gpu_model=GPU, gpu_count=1
    )


def _value_a(i: int) -> float:
    return (0.90 if i < CULPRIT else 0.60) + 0.001 * ((i * 7) % 5 - 2)


def _value_b(i: int) -> float:
    return (1.0 if i < RANGE_BAD else 2.0) + 0.002 * ((i * 3) % 5 - 2)


def build_hostile_project(root: Path, *, store_url: str | None = None) -> HostileProject:
    """The git repository and store described in the module docstring, in ``root/proj``.

    ``store_url``: record there (the project's pyproject.toml then names no store: give it as
    ``MLTEST_STORE_URL``, as a secret); default: ``results.db`` in the project, named in pyproject.toml."""
    from mltest.cli.detect_cmds import analyze
    from mltest.config import load_settings
    from mltest.gitinfo import current_commit
    from mltest.store import open_store

    repo = root / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text(
        "[tool.mltest]\n"
        + ('store_url = "sqlite:///results.db"\n' if store_url is None else "")
        + 'project = "proj"\nrepo_url = "https://github.com/acme/model"\n',
        encoding="utf-8",
    )
    (repo / ".gitignore").write_text("results.db*\n.mltest/\n", encoding="utf-8")
    project = HostileProject(repo, store_url or f"sqlite:///{repo / 'results.db'}")
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp, root)
        for name in [n for n in os.environ if n.startswith(("MLTEST_", "GITHUB_", "CI_", "GITLAB_"))]:
            mp.delenv(name)
        store = open_store(project.store_url, root=repo)
        try:
            for i in range(COMMITS):
                (repo / "model.txt").write_text(f"version {i}\n", encoding="utf-8")
                message = repo.parent / "message.txt"
                message.write_text(subject(i), encoding="utf-8")
                git(repo, "add", "-A")
                date = f"2026-03-{i + 1:02d}T12:00:00+00:00"
                git(repo, "commit", "-q", "--cleanup=verbatim", "-F", str(message), date=date)
                commit = current_commit(repo, {}).commit
                assert commit.subject, "git reported no subject"
                project.shas.append(commit.sha)
                project.subjects[commit.sha] = commit.subject
                run = Run(f"run-{i:02d}", "proj", "integration", commit, _env(), started_at=date)
                store.begin_run(run)
                measurements = [Measurement(TEST_A, METRIC_A, _value_a(i), None, True, (), None, 100_000)]
                if i != RANGE_SKIPPED:
                    measurements.append(Measurement(TEST_B, METRIC_B, _value_b(i), UNIT_B, False))
                store.add_results(run.run_id, [TestResult(TEST_A, "passed", 1.0)], measurements)
                store.finish_run(run.run_id, "passed", date.replace("12:00", "13:00"))
            settings = load_settings(repo, environ={"MLTEST_STORE_URL": project.store_url})
            analysis = analyze(settings, store, branch="main")
            by_bad = {r.range.bad: r for r in analysis.regressions if r.kind == "regression"}
            new = by_bad[project.shas[CULPRIT]]
            ranged = by_bad[project.shas[RANGE_BAD]]
            assert new.range.culprit == project.shas[CULPRIT], new.range
            assert ranged.range.commits == (project.shas[RANGE_SKIPPED], project.shas[RANGE_BAD]), ranged.range
            project.regressions = [new.id, ranged.id]
            store.add_acknowledgement(Acknowledgement(ranged.id, ACK_REASON, ACK_WHO, utc_now()))
        finally:
            store.close()
    return project


# ----------------------------------------------------------------------------- the CLI
@dataclass(frozen=True)
class Ran:
    code: int
    """The exit code; -1 when ``main`` raised (the traceback is then in ``err``)."""
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + "\n" + self.err


def run_cli(project: HostileProject, *args: str, env: dict[str, str] | None = None) -> Ran:
    """``mltest ARGS`` in-process, in the project, with a clean environment plus ``env``."""
    from mltest.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith(("MLTEST_", "GITHUB_", "CI_", "GITLAB_"))]:
            mp.delenv(name)
        mp.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
        isolate_git(mp, project.root.parent)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        mp.chdir(project.root)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except Exception:
                traceback.print_exc()
                code = -1
    return Ran(code, out.getvalue(), err.getvalue())


# ----------------------------------------------------------------------------- a webhook receiver
@dataclass
class Webhook:
    """A local webhook: records every POST; answers ``status`` (200 by default)."""

    url: str
    status: int = 200
    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def payloads(self) -> list[Any]:
        return [json.loads(body) for body in self.bodies]


@contextmanager
def running_webhook(path: str = "/hooks/T000/B000/token", status: int = 200) -> Iterator[Webhook]:
    """Serve a :class:`Webhook` on 127.0.0.1 until the block ends."""
    hook = Webhook("", status)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            hook.bodies.append(self.rfile.read(length))
            hook.paths.append(self.path)
            body = b"ok" if hook.status < 400 else f"no such hook {self.path}".encode()
            self.send_response(hook.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    hook.url = f"http://{host}:{port}{path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
