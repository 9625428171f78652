"""Secrets never leak: a DSN password, a service-account private key and a webhook URL.

Configured the way CI configures them (``MLTEST_STORE_URL``, ``MLTEST_SHEETS_CREDENTIALS_JSON`` or a key
file, ``MLTEST_WEBHOOK_URL``), every command that touches them runs, working and failing: ``config
show``, ``runs``, ``history``, ``export``, ``report`` in every format, ``check``, ``compare``,
``notify`` against a webhook that refuses (and echoes its path in the error body), ``sync``, ``sync
--check``, ``ci nightly --report-only``, and ``mltest run`` in a child process. The store is a real
PostgreSQL database owned by a role that must give its password (scram-sha-256 in pg_hba.conf); it
is also tried unreachable, with a wrong password, as a libpq keyword string and with the password
in the query. Everything is searched for each secret, raw and encoded (percent-encoded, JSON-escaped,
base64 lines of the key's body, the whole key base64-encoded): stdout, stderr, tracebacks of the
exceptions (with their causes), every file written into the project and the artefact folder, every
text column of every table of the store, and every cell of the sheet.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hostile import (
    SPREADSHEET,
    HostileProject,
    SheetsServer,
    build_hostile_project,
    make_service_account,
    run_cli,
    running_server,
    running_webhook,
)

pytestmark = pytest.mark.integration  # PostgreSQL, the local Sheets API and webhook servers, a child mltest run

ROLE = "mltest_secret_role"
PASSWORD_CORE = "S3CRET-" + secrets.token_hex(6)
PASSWORD = PASSWORD_CORE + "/p@ss:w"
"""The store password: '/', '@' and ':' make its URL form differ from the raw one; any part of it
that holds PASSWORD_CORE counts as a leak."""
WRONG_PASSWORD = "WR0NG-" + secrets.token_hex(6)
WEBHOOK_TOKEN = "XoXo" + secrets.token_hex(12)
WEBHOOK_PATH = f"/services/T0AB/B0CD/{WEBHOOK_TOKEN}"


def _url_forms(text: str) -> list[str]:
    return [text, quote(text, safe=""), quote_plus(text), quote(text)]


def key_forms(info: dict[str, Any]) -> list[str]:
    """The private key as it could leak: whole, JSON-escaped, percent-encoded, base64, and each
    base64 line of its body (a partial leak), plus the key id."""
    pem = str(info["private_key"])
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    body = "".join(lines)
    return [
        pem,
        json.dumps(pem)[1:-1],
        *_url_forms(pem),
        body,
        body.replace("+", "-").replace("/", "_"),
        base64.b64encode(pem.encode()).decode()[:60],
        base64.b64encode(json.dumps(info).encode()).decode()[40:100],
        *[line for line in lines if len(line) >= 40],
        str(info["private_key_id"]),
    ]


@dataclass
class Secrets:
    forms: dict[str, list[str]] = field(default_factory=dict)
    """What each secret looks like, in every form searched for."""

    def add(self, name: str, forms: list[str]) -> None:
        self.forms.setdefault(name, []).extend(f for f in forms if f and len(f) >= 8)

    def leaks(self, text: str) -> list[str]:
        text = text.casefold()  # a secret lowercased (as a URL scheme is) is still the secret
        return sorted({name for name, forms in self.forms.items() for f in forms if f.casefold() in text})


# ============================================================================ the services
@pytest.fixture(scope="module")
def pg_role(pg_instance: Any) -> Iterator[tuple[int, str]]:
    """A database owned by a role that must give its password; yields (port, database)."""
    import psycopg
    from psycopg import sql

    admin = pg_instance.base_url + "/postgres"
    database = "secret_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin, autocommit=True) as conn:
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
        original = hba.read_text(encoding="utf-8")
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(PASSWORD)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(ROLE)))
        # This role (only) must authenticate; every other role keeps the server's trust rule.
        hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + original, encoding="utf-8")
        conn.execute("SELECT pg_reload_conf()")
    try:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"postgresql://{ROLE}:{quote(WRONG_PASSWORD)}@127.0.0.1:{pg_instance.port}/{database}")
        yield pg_instance.port, database
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            hba.write_text(original, encoding="utf-8")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def dsn(port: int, database: str, password: str = PASSWORD) -> str:
    return f"postgresql://{ROLE}:{quote(password, safe='')}@127.0.0.1:{port}/{database}"


def closed_port() -> int:
    import pgserver

    return pgserver.free_port()


@dataclass
class Setup:
    project: HostileProject
    env: dict[str, str]
    secrets: Secrets
    sheets: SheetsServer
    info: dict[str, Any]
    port: int
    database: str
    artifacts: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, pg_role: tuple[int, str]) -> Iterator[Setup]:
    port, database = pg_role
    url = dsn(port, database)
    project = build_hostile_project(tmp_path_factory.mktemp("secrets"), store_url=url)
    (project.root / "test_tiny.py").write_text(
        "import pytest\n\n@pytest.mark.integration\ndef test_tiny(record):\n    record('accuracy', 0.5)\n",
        encoding="utf-8",
    )
    found = Secrets()
    found.add("store password", [PASSWORD_CORE, *_url_forms(PASSWORD), *_url_forms(WRONG_PASSWORD)])
    found.add("webhook", [*_url_forms(WEBHOOK_PATH), WEBHOOK_TOKEN])
    with running_server() as sheets, running_webhook(WEBHOOK_PATH, status=404) as hook:
        sheets.add_spreadsheet(SPREADSHEET, "Sheet1")
        info, public = make_service_account(sheets.base_url + "/token")
        sheets.public_keys.append(public)
        found.add("private key", key_forms(info))
        found.add("webhook", _url_forms(hook.url))
        env = {
            "MLTEST_STORE_URL": url,
            "MLTEST_SHEETS_URL": f"gsheets://{SPREADSHEET}/results",
            "MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps(info),
            "MLTEST_SHEETS_ENDPOINT": sheets.base_url,
            "MLTEST_WEBHOOK_URL": hook.url,
        }
        artifacts = project.root / ".mltest" / "artifacts"
        yield Setup(project, env, found, sheets, info, port, database, artifacts)


def files_text(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` (not .git), decoded leniently."""
    out = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and ".git" not in path.relative_to(root).parts:
                out[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return out


def assert_no_leak(setup: Setup, what: str, text: str) -> None:
    # Access tokens the local server issued are secrets too.
    tokens = Secrets({"access token": list(setup.sheets.tokens)})
    leaks = setup.secrets.leaks(text) + tokens.leaks(text)
    assert not leaks, f"{what} shows the {', '.join(leaks)}:\n{text[:3000]}"


# ============================================================================ every command
def _store(setup: Setup, kind: str) -> dict[str, str]:
    """``MLTEST_STORE_URL`` for a store that works (``ok``) or fails in one of several ways."""
    port, database = setup.port, setup.database
    return {
        "ok": {},
        "unreachable": {
            "MLTEST_STORE_URL": f"postgresql://{ROLE}:{quote(PASSWORD, safe='')}@127.0.0.1:{closed_port()}/db"
        },
        "wrong password": {"MLTEST_STORE_URL": dsn(port, database, WRONG_PASSWORD)},
        "password in the query": {
            "MLTEST_STORE_URL": f"postgresql://{ROLE}@127.0.0.1:{closed_port()}/db?password={quote(PASSWORD, safe='')}"
        },
        "keyword string": {
            "MLTEST_STORE_URL": f"host=127.0.0.1 port={port} dbname={database} user={ROLE} password={PASSWORD}"
        },
        "bad port": {"MLTEST_STORE_URL": f"postgresql://{ROLE}:{quote(PASSWORD, safe='')}@127.0.0.1:99999999/db"},
    }[kind]


COMMANDS: dict[str, list[str]] = {
    "config show": ["config", "show"],
    "config show --json": ["config", "show", "--json"],
    "runs": ["runs"],
    "runs --json": ["runs", "--json"],
    "history": ["history", "t", "m"],
    "export": ["export", "--format", "json"],
    "report text": ["report"],
    "report markdown": ["report", "--format", "markdown"],
    "report json": ["report", "--format", "json"],
    "report html": ["report", "--format", "html", "--out", ".mltest/artifacts/report.html"],
    "check": ["check"],
    "check --json": ["check", "--json"],
    "compare": ["compare"],
    "compare markdown": ["compare", "--format", "markdown"],
    "compare json": ["compare", "--json"],
    "notify slack (refused)": ["notify"],
    "notify json (refused)": ["notify", "--kind", "json"],
    "sync": ["sync"],
    "sync --check": ["sync", "--check"],
    "ci nightly --report-only": [
        "ci", "nightly", "--report-only", "--any-branch", "--device", "cpu", "--artifacts", ".mltest/artifacts",
    ],
}  # fmt: skip
FAILING = ["unreachable", "wrong password", "password in the query", "keyword string", "bad port"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_shows_a_secret(setup: Setup, command: str) -> None:
    ran = run_cli(setup.project, *COMMANDS[command], env=setup.env)
    assert ran.code != -1, ran.err  # no crash
    if command.startswith("notify"):
        assert ran.code == 2
        assert "refused the post: HTTP 404" in ran.err  # the body echoed the path: scrubbed
    elif command == "sync":
        assert ran.code == 0, ran
        assert "sent 16 run(s), 31 row(s)" in ran.out or "sent 0 run(s)" in ran.out
    assert_no_leak(setup, f"`mltest {command}`", ran.text)
    for path, text in files_text(setup.project.root).items():
        assert_no_leak(setup, path, text)


@pytest.mark.parametrize("store", FAILING)
@pytest.mark.parametrize("command", ["config show", "runs", "report json", "check", "sync", "ci nightly --report-only"])
def test_a_failing_store_shows_no_password(setup: Setup, command: str, store: str) -> None:
    ran = run_cli(setup.project, *COMMANDS[command], env={**setup.env, **_store(setup, store)})
    assert ran.code != -1, ran.err
    if command != "config show":
        assert ran.code != 0, ran
    assert_no_leak(setup, f"`mltest {command}` with a store URL that is {store}", ran.text)


def test_a_refused_key_and_a_refused_webhook_show_no_secret(setup: Setup) -> None:
    other, _ = make_service_account(setup.sheets.base_url + "/token")  # the server does not trust it
    setup.secrets.add("private key", key_forms(other))
    env = {  # a worksheet that has not had the runs: sync must talk to the sheet
        **setup.env,
        "MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps(other),
        "MLTEST_SHEETS_URL": f"gsheets://{SPREADSHEET}/refused",
    }
    ran = run_cli(setup.project, "sync", env=env)
    assert ran.code == 2, ran
    assert "refused a token" in ran.err
    assert_no_leak(setup, "`mltest sync` with a key the sheet refuses", ran.text)
    key_file = setup.project.root.parent / "sa.json"
    key_file.write_text(json.dumps(other), encoding="utf-8")
    env = {**env, "MLTEST_SHEETS_CREDENTIALS": str(key_file)}
    env.pop("MLTEST_SHEETS_CREDENTIALS_JSON")
    for args in (["sync", "--check"], ["sync"], ["config", "show"]):
        ran = run_cli(setup.project, *args, env=env)
        assert ran.code == (0 if args == ["config", "show"] else 2), ran
        assert_no_leak(setup, f"`mltest {' '.join(args)}` with a key file", ran.text)


def test_exceptions_and_their_causes_show_no_secret(setup: Setup) -> None:
    """Through the API: each error's whole traceback, causes and context included."""
    from mltest.errors import MltestError
    from mltest.report.model import Report
    from mltest.report.notify import notify
    from mltest.store import open_store
    from mltest.store.gsheets import RetryPolicy, open_sheet

    def raised(call: Any) -> str:
        with pytest.raises(MltestError) as caught:
            call()
        return "".join(traceback.format_exception(caught.value))

    for kind in FAILING:
        url = _store(setup, kind)["MLTEST_STORE_URL"]
        assert_no_leak(setup, f"opening a store that is {kind}", raised(lambda url=url: open_store(url)))
    other, _ = make_service_account(setup.sheets.base_url + "/token")
    setup.secrets.add("private key", key_forms(other))
    environ = {"MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps(other), "MLTEST_SHEETS_ENDPOINT": setup.sheets.base_url}

    def refused_sheet() -> None:
        open_sheet(
            f"gsheets://{SPREADSHEET}/x", credentials_path=None, environ=environ, retry=RetryPolicy(attempts=1)
        ).header()

    assert_no_leak(setup, "a sheet refusing the key", raised(refused_sheet))
    from mltest.report.model import EntryView, FindingView

    finding = FindingView(
        "f-1", "regression", "open", "t", "m", "cpu", None, True, 1.0, 0.5, -0.5, 0.001, 0.999, "a" * 40,
        "b" * 40, "b" * 40, ("b" * 40,),
    )  # fmt: skip
    report = Report("p", "main", "now", "sqlite://", (), (EntryView("r-1", "regression", "new", (finding,)),), ())
    hook_url = setup.env["MLTEST_WEBHOOK_URL"]
    assert_no_leak(setup, "a refused webhook", raised(lambda: notify(report, hook_url, retries=1)))
    bad_url = hook_url.replace("127.0.0.1", "127.0.0.1:notaport", 1)
    assert_no_leak(setup, "a malformed webhook URL", raised(lambda: notify(report, bad_url, retries=1)))


def test_mltest_run_in_a_child_process_shows_no_password(setup: Setup) -> None:
    """The pytest plugin's own output (the run summary names the store) and the files it leaves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTEST_", "GITHUB_", "CI_"))}
    env.update(setup.env)
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mltest", "run", "integration", "--mltest-device=cpu", "-p", "no:cacheprovider",
         "test_tiny.py"],
        cwd=setup.project.root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "recorded run" in proc.stdout
    assert f"{ROLE}:***@" in proc.stdout  # the store is named, its password redacted
    assert_no_leak(setup, "`mltest run`", proc.stdout + proc.stderr)
    for path, text in files_text(setup.project.root).items():
        assert_no_leak(setup, path, text)


def test_the_store_and_the_sheet_hold_no_secret(setup: Setup) -> None:
    """Every text column of every table of the store, and every cell of the sheet (after a sync)."""
    import psycopg

    ran = run_cli(setup.project, "sync", env=setup.env)
    assert ran.code == 0, ran
    url = dsn(setup.port, setup.database)
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchall()
        ]
        assert "runs" in tables
        for table in tables:
            rows = conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()  # every column, as text
            assert_no_leak(setup, f"the store's table {table}", "\n".join(r[0] for r in rows))
    worksheet = setup.sheets.worksheet(SPREADSHEET, "results")
    assert len(worksheet.data_rows()) >= 31
    assert_no_leak(setup, "the sheet", json.dumps(worksheet.rows, default=str))
