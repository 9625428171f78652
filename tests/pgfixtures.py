"""PostgreSQL fixtures (a pytest plugin, loaded by tests/conftest.py): a real server per test
process, started when a test first asks for one, and a fresh database per test.

Without the server binaries the PostgreSQL tests skip, unless MLTEST_REQUIRE_SERVICES=1 (CI), where a
missing service fails the run instead: a required service must never turn into a silent skip.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:  # pytest's default import mode has put it there already (tests/conftest.py)
    sys.path.insert(0, _TESTS)

import pgserver  # noqa: E402  (tests/pgserver.py)


@pytest.fixture(scope="session")
def pg_instance() -> Iterator[pgserver.PostgresServer]:
    """This process's PostgreSQL server (each xdist worker starts its own, on its own port and directory)."""
    if pgserver.find_bin_dir() is None:
        pgserver.service_missing(pgserver.MISSING_MESSAGE)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pgserver.service_missing("psycopg is not installed: pip install 'mltest[postgres]'")
    server = pgserver.PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_server(pg_instance: pgserver.PostgresServer) -> str:
    """The server's base URL, ``postgresql://postgres@127.0.0.1:PORT`` (trust auth, no password)."""
    return pg_instance.base_url


@pytest.fixture
def pg_url(pg_instance: pgserver.PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test: ``postgresql://postgres@127.0.0.1:PORT/t_<uuid>``."""
    url = pg_instance.create_database()
    yield url
    pg_instance.drop_database(url.rsplit("/", 1)[1])
