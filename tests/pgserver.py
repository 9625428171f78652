"""A throwaway PostgreSQL server for tests: initdb into a temp dir, listen on 127.0.0.1:<free port>.

One server per test process (each pytest-xdist worker starts its own, on its own port and directory).
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.

Used by ``tests/store/conftest.py``; only ``service_missing`` needs pytest, so a script can use it too::

    with PostgresServer.start() as server:
        url = server.create_database()
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn

__all__ = ["MISSING_MESSAGE", "PostgresServer", "ServerError", "find_bin_dir", "free_port", "service_missing"]

PG_VERSION = "15"
BIN_DIR = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
MISSING_MESSAGE = f"PostgreSQL {PG_VERSION} server binaries not found: apt-get install postgresql"
READY_TIMEOUT = 30.0
SUPERUSER = "postgres"


class ServerError(RuntimeError):
    """The server could not be set up or started; the message carries the server's own log."""


def service_missing(message: str) -> NoReturn:
    """Skip the test, or fail it when ``MLTEST_REQUIRE_SERVICES=1``: a required service never silently skips."""
    import pytest

    if os.environ.get("MLTEST_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def find_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when they are not installed."""
    if all((BIN_DIR / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
        return BIN_DIR
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A running server; ``base_url`` is ``postgresql://postgres@127.0.0.1:PORT`` (trust auth, no password)."""

    def __init__(self, bin_dir: Path, workdir: Path, port: int, as_postgres: bool) -> None:
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.port = port
        self.as_postgres = as_postgres
        self.datadir = workdir / "data"
        self.logfile = workdir / "server.log"
        self._running = False

    @property
    def base_url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls, bin_dir: Path | None = None, attempts: int = 3) -> PostgresServer:
        """initdb and start a server; a port taken between choosing and binding it is retried."""
        bin_dir = bin_dir or find_bin_dir()
        if bin_dir is None:
            raise ServerError(MISSING_MESSAGE)
        as_postgres = os.geteuid() == 0
        owner = None
        if as_postgres:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise ServerError(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as"
                ) from None
        workdir = Path(tempfile.mkdtemp(prefix=f"mltest-pg-{os.getpid()}-"))
        try:
            if owner is not None:
                os.chown(workdir, owner.pw_uid, owner.pw_gid)
            workdir.chmod(0o700)
            server = cls(bin_dir, workdir, free_port(), as_postgres)
            server._initdb()
            for attempt in range(attempts):
                try:
                    server._start()
                    break
                except ServerError:
                    if attempt == attempts - 1:
                        raise
                    server.port = free_port()
            return server
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def _command(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / tool), *args]
        if not self.as_postgres:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", SUPERUSER, "--", *argv]
        return ["su", SUPERUSER, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run(self, argv: Sequence[str], what: str, timeout: float = 60.0) -> None:
        # Output goes to a file, not a pipe: the postmaster that pg_ctl forks would hold a pipe open.
        out = self.workdir / f"{what}.out"
        with out.open("wb") as sink:
            proc = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                timeout=timeout,
                check=False,
            )
        if proc.returncode != 0:
            raise ServerError(f"{what} failed (exit {proc.returncode}):\n{out.read_text()}\n{self.log()}")

    def _initdb(self) -> None:
        self._run(
            self._command(
                "initdb",
                "-D",
                str(self.datadir),
                "--auth=trust",
                f"--username={SUPERUSER}",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ),
            "initdb",
        )

    def _start(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-c unix_socket_directories={self.workdir}",
                # A test server: durability buys nothing, speed does.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        self._running = True  # from here on stop() must run, even when starting fails half-way
        try:
            self._run(
                self._command(
                    "pg_ctl",
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(READY_TIMEOUT)),
                    "start",
                ),
                "pg_ctl-start",
                timeout=READY_TIMEOUT + 10,
            )
            self._wait_ready()
        except (ServerError, subprocess.TimeoutExpired):
            self.stop(remove=False)
            raise

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + READY_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.base_url + "/postgres", connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise ServerError(
            f"PostgreSQL on port {self.port} did not answer within {READY_TIMEOUT:g} s: {last}\n{self.log()}"
        )

    def stop(self, remove: bool = True) -> None:
        """Stop the server (fast shutdown) and, by default, delete its directory. Safe to call twice."""
        if self._running:
            self._running = False
            with contextlib.suppress(subprocess.TimeoutExpired, ServerError):
                self._run(self._command("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop"), "pg_ctl-stop")
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start_again(self) -> None:
        """Start a server stopped with ``stop(remove=False)``: the same port, data directory and databases."""
        if not self._running:
            self._start()

    def restart(self, down_for: float = 0.0) -> None:
        """A database restart: fast shutdown (clients are disconnected), ``down_for`` seconds down, then
        up again on the same port with the same data."""
        self.stop(remove=False)
        time.sleep(down_for)
        self.start_again()

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return "server log:\n" + self.logfile.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no server log)"

    # ------------------------------------------------------------------ databases
    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex}"
        with psycopg.connect(self.base_url + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.base_url}/{name}"

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.base_url + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
