"""SQLite and PostgreSQL: one schema, versioned migrations, idempotent upserts.

SQLite runs in WAL mode with a busy timeout and takes its write lock up front (``BEGIN IMMEDIATE``),
so concurrent writers queue instead of failing with "database is locked". PostgreSQL writes run in
transactions; migrations hold an advisory lock so that concurrent first opens migrate once.

Every read and write sends prepared SQL straight to the driver's cursor: SQLAlchemy's per-statement
work cost more than SQLite's own. SQLite gets plain ``sqlite3`` connections (a small pool of this
store's own); PostgreSQL keeps SQLAlchemy's connection (``exec_driver_sql``), whose error handling
tells a lost connection from a refused statement. SQLAlchemy is imported only where it is needed:
PostgreSQL, and creating or migrating a schema. A recording session opens a store whose schema is
current, and importing SQLAlchemy would be most of what it costs (about 150 ms of CPU time).

Samples are stored packed: big-endian IEEE 754 doubles, 8 bytes each (PostgreSQL's ``float8send``),
which decode in one ``struct`` call instead of a JSON parse per measurement.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import json
import sqlite3
import struct
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:  # imported where used: a SQLite store whose schema is current never needs it
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc

from mltest.errors import BackendUnavailable, MissingExtraError, StoreError
from mltest.model import (
    SCHEMA_VERSION,
    Acknowledgement,
    Commit,
    Environment,
    Measurement,
    Run,
    RunStatus,
    TestResult,
    utc_now,
)
from mltest.store import MAX_WALK, SeriesRow, median_durations, redact_url

__all__ = ["MIGRATIONS", "SqlStore", "pack_samples", "unpack_samples"]


# ----------------------------------------------------------------------------- samples
_STRUCTS: dict[int, struct.Struct] = {}


def _struct(count: int) -> struct.Struct:
    packer = _STRUCTS.get(count)
    if packer is None:
        packer = _STRUCTS[count] = struct.Struct(f">{count}d")
    return packer


def pack_samples(samples: Sequence[float]) -> bytes:
    """``samples`` as stored: big-endian doubles, 8 bytes each (empty for no samples)."""
    try:
        return _struct(len(samples)).pack(*samples)
    except (struct.error, OverflowError, TypeError) as exc:
        raise StoreError(f"samples must be numbers, got {tuple(samples)!r:.200}: {exc}") from None


def unpack_samples(data: bytes) -> tuple[float, ...]:
    """The samples :func:`pack_samples` stored."""
    return _struct(len(data) // 8).unpack(data)


def _pack_json(text: str) -> bytes:
    """Schema v5 migration (SQLite): JSON text samples (v1-v4) to the packed form."""
    values = json.loads(text)
    if not isinstance(values, list):
        raise ValueError(f"samples {text[:100]!r} are not a JSON list")
    return pack_samples([float(v) for v in values])


# ----------------------------------------------------------------------------- schema history
# Plain DDL that both SQLite and PostgreSQL accept, or a function of (connection, dialect) where the
# two differ. Never edit a shipped step: add the next one.
Statement: TypeAlias = "str | Callable[[sa.Connection, str], None]"


def _v5_measurements(conn: sa.Connection, dialect: str) -> None:
    """Samples become packed doubles. On SQLite the table is also rebuilt WITHOUT ROWID around its key
    (run_id, test, metric), and the (test, metric) index goes: a run's measurements then sit together,
    and recording one is a few page writes, where the index took about a hundred per transaction (a
    run of 20 tests x 5 metrics lands in 100 places of it). A series is read by walking the runs that
    match its filters and looking each one's measurement up by key (see ``SqlStore._series_query``)."""
    if dialect == "postgresql":
        for statement in (
            "ALTER TABLE measurements ADD COLUMN packed BYTEA",
            # json.dumps wrote NaN and Infinity, which are not JSON: quote them so the parse succeeds;
            # float8 takes 'NaN' and '-Infinity' as text.
            "UPDATE measurements SET packed = COALESCE((SELECT string_agg(float8send(x.v::float8), ''::bytea "
            "ORDER BY x.i) FROM json_array_elements_text(regexp_replace(samples, '(-?Infinity|NaN)', '\"\\1\"', "
            "'g')::json) WITH ORDINALITY AS x(v, i)), ''::bytea)",
            "ALTER TABLE measurements DROP COLUMN samples",
            "ALTER TABLE measurements RENAME COLUMN packed TO samples",
            "ALTER TABLE measurements ALTER COLUMN samples SET NOT NULL",
        ):
            conn.exec_driver_sql(statement)
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.create_function("mltest_pack_samples", 1, _pack_json, deterministic=True)
    try:
        for statement in (
            "CREATE TABLE measurements_v5 (run_id TEXT NOT NULL REFERENCES runs(run_id), test TEXT NOT NULL, "
            "metric TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, unit TEXT, higher_is_better BOOLEAN, "
            "samples BLOB NOT NULL, iqr DOUBLE PRECISION, support INTEGER, PRIMARY KEY (run_id, test, metric)) "
            "WITHOUT ROWID",
            "INSERT INTO measurements_v5 (run_id, test, metric, value, unit, higher_is_better, samples, iqr, support) "
            "SELECT run_id, test, metric, value, unit, higher_is_better, mltest_pack_samples(samples), iqr, support "
            "FROM measurements",
            "DROP TABLE measurements",  # and its index ix_measurements_series
            "ALTER TABLE measurements_v5 RENAME TO measurements",
            # What a series read needs of a run and of its commit, each found in one index lookup.
            "CREATE INDEX IF NOT EXISTS ix_runs_series ON runs (branch, run_id, sha, tier, project, env_id, "
            "started_at)",
            "CREATE INDEX IF NOT EXISTS ix_commits_series ON commits (sha, committed_at, subject)",
        ):
            conn.exec_driver_sql(statement)
    finally:
        driver.create_function("mltest_pack_samples", 1, None)


MIGRATIONS: tuple[tuple[int, tuple[Statement, ...]], ...] = (
    (
        1,
        (
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY, parents TEXT NOT NULL, author TEXT, "
            "authored_at TEXT, committed_at TEXT, subject TEXT)",
            "CREATE TABLE IF NOT EXISTS environments (env_id TEXT PRIMARY KEY, env_key TEXT NOT NULL, "
            "data TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, project TEXT NOT NULL, tier TEXT NOT NULL, "
            "status TEXT NOT NULL, sha TEXT NOT NULL REFERENCES commits(sha), branch TEXT, "
            "env_id TEXT NOT NULL REFERENCES environments(env_id), ci_url TEXT, started_at TEXT NOT NULL, "
            "finished_at TEXT, hostname TEXT, pid INTEGER)",
            "CREATE TABLE IF NOT EXISTS test_results (run_id TEXT NOT NULL REFERENCES runs(run_id), "
            "test TEXT NOT NULL, "
            "attempt INTEGER NOT NULL, outcome TEXT NOT NULL, duration DOUBLE PRECISION NOT NULL, "
            "flaky BOOLEAN NOT NULL, PRIMARY KEY (run_id, test, attempt))",
            "CREATE TABLE IF NOT EXISTS measurements (run_id TEXT NOT NULL REFERENCES runs(run_id), "
            "test TEXT NOT NULL, "
            "metric TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, unit TEXT, higher_is_better BOOLEAN, "
            "samples TEXT NOT NULL, iqr DOUBLE PRECISION, support INTEGER, PRIMARY KEY (run_id, test, metric))",
            "CREATE INDEX IF NOT EXISTS ix_measurements_series ON measurements (test, metric)",
            "CREATE INDEX IF NOT EXISTS ix_runs_branch ON runs (branch, started_at)",
        ),
    ),
    (
        2,
        (
            # First-parent links let the store order commits by history even from shallow clones.
            "CREATE TABLE IF NOT EXISTS commit_links (sha TEXT PRIMARY KEY, first_parent TEXT NOT NULL)",
            # A heartbeat tells a crashed run (stale) from a long one.
            "ALTER TABLE runs ADD COLUMN heartbeat_at TEXT",
        ),
    ),
    (
        3,
        (
            # Regressions someone acknowledged: they stop failing `mltest check`.
            "CREATE TABLE IF NOT EXISTS acknowledgements (target TEXT PRIMARY KEY, reason TEXT NOT NULL, "
            "who TEXT NOT NULL, at TEXT NOT NULL)",
        ),
    ),
    (
        4,
        (
            # Which finished runs each sink (a Google Sheet) has received: a finished run without a
            # row here is still queued for that sink.
            "CREATE TABLE IF NOT EXISTS deliveries (sink TEXT NOT NULL, run_id TEXT NOT NULL "
            "REFERENCES runs(run_id), delivered_at TEXT NOT NULL, PRIMARY KEY (sink, run_id))",
        ),
    ),
    (
        5,
        (
            # Packed samples (and, on SQLite, measurements keyed for cheap writes and series reads).
            _v5_measurements,
            # What incremental detection keeps between runs: key -> state (text), upserted. Keyed by
            # the key's SHA-256: a key (a test id and more) may be longer than PostgreSQL's B-tree
            # takes in an index entry (about 2.7 kB).
            "CREATE TABLE IF NOT EXISTS detection_states (key_hash TEXT PRIMARY KEY, key TEXT NOT NULL, "
            "state TEXT NOT NULL, updated_at TEXT NOT NULL)",
        ),
    ),
)
assert MIGRATIONS[-1][0] == SCHEMA_VERSION

# ----------------------------------------------------------------------------- hot-path SQL
# Written with qmark parameters (SQLite's); PostgreSQL's driver gets them as %s (see SqlStore._sql).
INSERT_COMMIT = (
    "INSERT INTO commits (sha, parents, author, authored_at, committed_at, subject) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (sha) DO NOTHING"
)
INSERT_LINK = "INSERT INTO commit_links (sha, first_parent) VALUES (?, ?) ON CONFLICT (sha) DO NOTHING"
INSERT_ENVIRONMENT = "INSERT INTO environments (env_id, env_key, data) VALUES (?, ?, ?) ON CONFLICT (env_id) DO NOTHING"
INSERT_RUN = (
    "INSERT INTO runs (run_id, project, tier, status, sha, branch, env_id, ci_url, started_at, finished_at, "
    "hostname, pid, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING"
)
UPSERT_RESULT = (
    "INSERT INTO test_results (run_id, test, attempt, outcome, duration, flaky) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, test, attempt) DO UPDATE SET outcome = excluded.outcome, duration = excluded.duration, "
    "flaky = excluded.flaky"
)
UPSERT_MEASUREMENT = (
    "INSERT INTO measurements (run_id, test, metric, value, unit, higher_is_better, samples, iqr, support) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, test, metric) DO UPDATE SET value = excluded.value, "
    "unit = excluded.unit, higher_is_better = excluded.higher_is_better, samples = excluded.samples, "
    "iqr = excluded.iqr, support = excluded.support"
)
HEARTBEAT = "UPDATE runs SET heartbeat_at = ? WHERE run_id = ?"
FINISH_RUN = "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?"
UPSERT_STATE = (
    "INSERT INTO detection_states (key_hash, key, state, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (key_hash) "
    "DO UPDATE SET key = excluded.key, state = excluded.state, updated_at = excluded.updated_at"
)
SERIES_COLUMNS = (
    "r.run_id, r.sha, r.branch, r.tier, r.project, r.env_id, r.started_at, c.committed_at, c.subject, m.test, "
    "m.metric, m.value, m.unit, m.higher_is_better, m.samples, m.iqr, m.support"
)
SERIES_SHORT = (  # SERIES_COLUMNS without test, metric and branch, when all three are filtered on
    "r.run_id, r.sha, r.tier, r.project, r.env_id, r.started_at, c.committed_at, c.subject, m.value, m.unit, "
    "m.higher_is_better, m.samples, m.iqr, m.support"
)
MARK_ABORTED = "UPDATE runs SET status = 'aborted', finished_at = ? WHERE status = 'running' AND run_id IN "
"""Followed by a list of run ids (:func:`_marks`)."""
RUN_SELECT = (
    "SELECT r.run_id, r.project, r.tier, r.status, r.sha, r.branch, r.ci_url, r.started_at, r.finished_at, "
    "r.hostname, r.pid, c.parents, c.author, c.authored_at, c.committed_at, c.subject, e.data "
    "FROM runs r JOIN commits c ON c.sha = r.sha JOIN environments e ON e.env_id = r.env_id"
)
"""A run with its commit and environment (:func:`_to_run` reads the row); WHERE and ORDER BY follow."""
SELECT_RESULTS = (
    "SELECT test, outcome, duration, attempt, flaky FROM test_results WHERE run_id = ? ORDER BY test, attempt"
)
SELECT_MEASUREMENTS = (
    "SELECT test, metric, value, unit, higher_is_better, samples, iqr, support FROM measurements "
    "WHERE run_id = ? ORDER BY test, metric"
)
SCHEMA_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'runs')",
    "postgresql": "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p') "
    "AND c.relname IN ('meta', 'runs') AND pg_catalog.pg_table_is_visible(c.oid)",
}
"""Which of the tables ``meta`` and ``runs`` exist (on PostgreSQL: in the search path, as SQLAlchemy's
``has_table`` looks)."""
SELECT_VERSION = "SELECT value FROM meta WHERE key = 'schema_version'"
CHUNK = 900
"""Parameters per ``IN (...)`` list: under every driver's limit (SQLite's oldest is 999)."""
CACHE_LIMIT = 1_000_000
"""First-parent links a store keeps of those it has read before starting over."""


def _marks(count: int) -> str:
    return "(" + ", ".join("?" * count) + ")"


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


_ENV_ROWS: dict[Environment, tuple[str, str, str]] = {}


def _environment_row(environment: Environment) -> tuple[str, str, str]:
    """(env_id, env_key, data) of ``environment``: serialized once per environment and process."""
    row = _ENV_ROWS.get(environment)
    if row is None:
        data = json.dumps(dataclasses.asdict(environment), sort_keys=True)
        row = (hashlib.sha256(data.encode()).hexdigest()[:24], environment.key, data)
        if len(_ENV_ROWS) < 1000:
            _ENV_ROWS[environment] = row
    return row


def env_id(environment: Environment) -> str:
    return _environment_row(environment)[0]


_ENVIRONMENTS: dict[str, Environment] = {}


def _environment(data: str) -> Environment:
    """The environment a row's JSON holds: read once per text and process (a list of runs holds the
    same few environments many times over)."""
    environment = _ENVIRONMENTS.get(data)
    if environment is None:
        env = json.loads(data)
        env["flags"] = tuple(tuple(pair) for pair in env.get("flags", ()))
        environment = Environment(**env)
        if len(_ENVIRONMENTS) < 1000:
            _ENVIRONMENTS[data] = environment
    return environment


def _state_key(key: str) -> str:
    """The stored key of a detection state: the SHA-256 of its key."""
    if not isinstance(key, str):
        raise StoreError(f"a detection state key must be text, got {key!r:.100}")
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _checked_state(key: str, state: str) -> str:
    if not isinstance(state, str):
        raise StoreError(f"the detection state of {key!r:.100} must be text, got {type(state).__name__}")
    return state


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _to_run(row: Sequence[Any]) -> Run:
    """A row of ``RUN_SELECT`` as a run."""
    (
        run_id,
        project,
        tier,
        status,
        sha,
        branch,
        ci_url,
        started_at,
        finished_at,
        hostname,
        pid,
        parents,
        author,
        authored_at,
        committed_at,
        subject,
        data,
    ) = row
    return Run(
        run_id=run_id,
        project=project,
        tier=tier,
        status=status,
        commit=Commit(
            sha=sha,
            branch=branch,
            parents=tuple((parents or "").split()),
            author=author,
            authored_at=authored_at,
            committed_at=committed_at,
            subject=subject,
        ),
        environment=_environment(data),
        started_at=started_at,
        finished_at=finished_at,
        ci_url=ci_url,
        hostname=hostname,
        pid=pid,
    )


class _Cursor(Protocol):
    """The few cursor calls the hot paths make: a sqlite3 cursor, or :class:`_Pg` on PostgreSQL."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /) -> Any: ...


class _Pg:
    """An SQLAlchemy connection with a cursor's two calls (``fetchall`` on what ``execute`` returns):
    PostgreSQL's, and a migrating SQLite store's."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self._conn.exec_driver_sql(sql, tuple(parameters))

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /) -> Any:
        if seq_of_parameters:
            self._conn.exec_driver_sql(sql, [tuple(p) for p in seq_of_parameters])


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """A connection to the SQLite store at ``path``: autocommit (each transaction begins explicitly, see
    :meth:`SqlStore._raw`), WAL, a minute's busy timeout, usable from any thread (one at a time)."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: a kill -9 loses nothing committed
    except BaseException:
        conn.close()
        raise
    return conn


class SqlStore:
    def __init__(self, url: str, engine: sa.Engine | None, dialect: str, *, path: Path | None = None) -> None:
        """``engine``: PostgreSQL's; SQLite's store has none (``path`` is its file)."""
        self.url = url
        self._engine = engine
        self._dialect = dialect
        self._path = str(path) if path is not None else ""
        self._idle: list[sqlite3.Connection] = []
        """SQLite: connections not in use (``list.pop`` and ``append`` are atomic: threads share it)."""
        self._queries: dict[str, str] = {}
        # What never changes once written (nothing updates or deletes it), kept across calls: each
        # environment's key and fingerprint, and first-parent links.
        self._environments: dict[str, tuple[str, str]] = {}
        self._links: dict[str, str] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, url: str, *, root: Path) -> SqlStore:
        shown = redact_url(url)
        scheme = url.split(":", 1)[0].lower()
        if scheme.startswith("sqlite"):
            store = cls(shown, None, "sqlite", path=_sqlite_path(url, shown, root))
        else:
            if importlib.util.find_spec("psycopg") is None:
                raise MissingExtraError("the PostgreSQL store", "postgres", "psycopg")
            import sqlalchemy as sa
            from sqlalchemy import exc as sa_exc

            rest = url.split("://", 1)[1] if "://" in url else ""
            try:
                engine = sa.create_engine(
                    "postgresql+psycopg://" + rest, pool_pre_ping=True, connect_args={"connect_timeout": 10}
                )
            except (ValueError, sa_exc.ArgumentError) as exc:
                raise StoreError(f"store URL {shown!r} is malformed: {_first_line(exc)}") from None
            store = cls(shown, engine, "postgresql")
        try:
            store._migrate()
        except BaseException:
            store.close()  # a refused store must not leave a pooled connection behind
            raise
        return store

    def _error(self, what: str, exc: sa_exc.DBAPIError) -> StoreError:
        """A driver error as a one-line StoreError naming the store; BackendUnavailable when the server
        cannot be reached or dropped the connection (a restart): that is worth retrying."""
        from sqlalchemy import exc as sa_exc

        message = _first_line(exc)
        if self._dialect == "postgresql" and isinstance(exc, sa_exc.OperationalError):
            if exc.connection_invalidated:
                return BackendUnavailable(f"{what} failed on {self.url}: the connection was lost: {message}")
            if "connect" in message or "Connection refused" in message or "timeout" in message:
                return BackendUnavailable(f"cannot reach the store {self.url}: {message}")
        return StoreError(f"{what} failed on {self.url}: {message}")

    def _sql(self, sql: str) -> str:
        """``sql`` (qmark parameters) for this store's driver."""
        if self._dialect == "sqlite":
            return sql
        converted = self._queries.get(sql)
        if converted is None:
            converted = self._queries[sql] = sql.replace("?", "%s")
        return converted

    @contextmanager
    def _raw(self, what: str, *, write: bool) -> Iterator[_Cursor]:
        """A cursor, in one write transaction when ``write`` (``BEGIN IMMEDIATE`` on SQLite), else for
        reading (on SQLite in autocommit: each statement reads one snapshot). Driver errors become
        one-line StoreErrors naming the store."""
        if self._dialect != "sqlite":
            from sqlalchemy import exc as sa_exc

            assert self._engine is not None
            try:
                with self._engine.begin() if write else self._engine.connect() as pg:
                    yield _Pg(pg)
            except sa_exc.DBAPIError as exc:
                raise self._error(what, exc) from exc
            return
        conn: sqlite3.Connection | None = None
        try:
            try:
                conn = self._idle.pop()
            except IndexError:
                conn = _sqlite_connect(self._path)
            cursor = conn.cursor()
            try:
                if write:
                    cursor.execute("BEGIN IMMEDIATE")
                    try:
                        yield cursor
                        cursor.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            cursor.execute("ROLLBACK")
                        raise
                else:
                    yield cursor
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StoreError(f"{what} failed on {self.url}: {_first_line(exc)}") from exc
        finally:
            if conn is not None:
                if conn.in_transaction:  # a ROLLBACK failed: this connection is not reused
                    conn.close()
                else:
                    self._idle.append(conn)

    def _migrate(self) -> None:
        """Bring the schema up to date. A SQLite store whose schema is current (every open but a
        project's first after an mltest upgrade) is checked on a plain connection, without SQLAlchemy."""
        if self._dialect == "sqlite":
            with self._raw("opening the store", write=False) as cursor:
                if self._version(cursor) == SCHEMA_VERSION:
                    return
        from sqlalchemy import exc as sa_exc

        engine = self._engine if self._engine is not None else _sqlite_engine(self._path)
        try:
            with engine.begin() as conn:
                cursor = _Pg(conn)
                if self._dialect == "postgresql":
                    cursor.execute("SELECT pg_advisory_xact_lock(727274)")
                version = self._version(cursor)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"the store {self.url} has schema version {version}, written by a newer mltest; this "
                        f"mltest reads up to version {SCHEMA_VERSION}: upgrade mltest (pip install -U mltest)"
                    )
                for step, statements in MIGRATIONS:
                    if step <= version:
                        continue
                    for statement in statements:
                        if isinstance(statement, str):
                            conn.exec_driver_sql(statement)
                        else:
                            statement(conn, self._dialect)
                    cursor.execute("DELETE FROM meta WHERE key = 'schema_version'")
                    cursor.execute(
                        self._sql("INSERT INTO meta (key, value) VALUES ('schema_version', ?)"), (str(step),)
                    )
        except sa_exc.DBAPIError as exc:
            raise self._error("opening the store", exc) from exc
        finally:
            if engine is not self._engine:
                engine.dispose()

    def _version(self, cursor: _Cursor) -> int:
        tables = {row[0] for row in cursor.execute(SCHEMA_TABLES[self._dialect]).fetchall()}
        if "meta" not in tables:
            if "runs" in tables:
                raise StoreError(f"{self.url} has a 'runs' table but no mltest version: it is not an mltest store")
            return 0
        row = cursor.execute(SELECT_VERSION).fetchall()
        return int(row[0][0]) if row and row[0][0] is not None else 0

    def schema_version(self) -> int:
        with self._raw("reading the schema version", write=False) as cursor:
            return self._version(cursor)

    def checkpoint(self) -> None:
        """SQLite: copy what the write-ahead log holds into the database file now, without waiting for
        other connections (a passive checkpoint). Closing the store does it for whatever is left, so a
        writer that checkpoints as it goes leaves less for its close. Nothing on PostgreSQL."""
        if self._dialect == "sqlite":
            with self._raw("moving the write-ahead log into the database", write=False) as cursor:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        """Close the connections (SQLite: the last one to close moves the WAL into the database file)."""
        while self._idle:
            self._idle.pop().close()
        if self._engine is not None:
            self._engine.dispose()

    # ------------------------------------------------------------------ writing
    def _new_links(self, cursor: _Cursor, links: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The links not stored yet: a run records its ancestry (up to a few hundred commits), and
        nearly all of it is already there from earlier runs. Links never change (a commit's first
        parent is fixed), so one lookup replaces hundreds of conflicting inserts."""
        if len(links) <= 1:
            return links
        known: set[str] = set()
        for chunk in _chunks([child for child, _ in links]):
            found = cursor.execute(self._sql("SELECT sha FROM commit_links WHERE sha IN " + _marks(len(chunk))), chunk)
            known.update(row[0] for row in found.fetchall())
        return [link for link in links if link[0] not in known]

    def begin_run(self, run: Run) -> None:
        commit = run.commit
        chain = (commit.sha, *commit.ancestry)
        links = list(itertools.pairwise(chain))
        if not links and commit.parents:
            links = [(commit.sha, commit.parents[0])]
        environment = _environment_row(run.environment)
        sql = self._sql
        with self._raw(f"recording run {run.run_id}", write=True) as cursor:
            cursor.execute(
                sql(INSERT_COMMIT),
                (
                    commit.sha,
                    " ".join(commit.parents),
                    commit.author,
                    commit.authored_at,
                    commit.committed_at,
                    commit.subject,
                ),
            )
            new = self._new_links(cursor, links)
            if new:
                cursor.executemany(sql(INSERT_LINK), new)
            cursor.execute(sql(INSERT_ENVIRONMENT), environment)
            cursor.execute(
                sql(INSERT_RUN),
                (
                    run.run_id,
                    run.project,
                    run.tier,
                    run.status,
                    commit.sha,
                    commit.branch,
                    environment[0],
                    run.ci_url,
                    run.started_at,
                    run.finished_at,
                    run.hostname,
                    run.pid,
                    run.started_at,
                ),
            )

    def add_results(self, run_id: str, results: Sequence[TestResult], measurements: Sequence[Measurement]) -> None:
        rows = [(run_id, r.test, r.attempt, r.outcome, r.duration, r.flaky) for r in results]
        packed = [
            (run_id, m.test, m.metric, m.value, m.unit, m.higher_is_better, pack_samples(m.samples), m.iqr, m.support)
            for m in measurements
        ]
        sql = self._sql
        with self._raw(f"recording results of run {run_id}", write=True) as cursor:
            if rows:
                cursor.executemany(sql(UPSERT_RESULT), rows)
            if packed:
                cursor.executemany(sql(UPSERT_MEASUREMENT), packed)
            cursor.execute(sql(HEARTBEAT), (utc_now(), run_id))

    def finish_run(self, run_id: str, status: RunStatus, finished_at: str) -> None:
        with self._raw(f"finishing run {run_id}", write=True) as cursor:
            cursor.execute(self._sql(FINISH_RUN), (status, finished_at, run_id))

    def mark_aborted(self, run_ids: Sequence[str], finished_at: str) -> None:
        if not run_ids:
            return
        with self._raw("marking aborted runs", write=True) as cursor:
            for chunk in _chunks(list(run_ids)):
                cursor.execute(self._sql(MARK_ABORTED + _marks(len(chunk))), (finished_at, *chunk))

    # ------------------------------------------------------------------ reading
    def _runs(self, what: str, where: str, order: str, parameters: Sequence[Any]) -> list[Run]:
        """The runs of ``RUN_SELECT`` + ``where`` (conditions joined by AND, or empty) + ``order``."""
        query = self._sql(f"{RUN_SELECT}{' WHERE ' + where if where else ''} {order}")
        with self._raw(what, write=False) as cursor:
            rows = cursor.execute(query, parameters).fetchall()
        return [_to_run(row) for row in rows]

    def runs(self, *, branch: str | None = None, project: str | None = None, limit: int = 50) -> list[Run]:
        filters = [(name, value) for name, value in (("r.branch", branch), ("r.project", project)) if value is not None]
        return self._runs(
            "listing runs",
            " AND ".join(f"{name} = ?" for name, _ in filters),
            "ORDER BY r.started_at DESC, r.run_id LIMIT ?",
            [*(value for _, value in filters), limit],
        )

    def get_run(self, run_id: str) -> Run | None:
        found = self._runs(f"reading run {run_id}", "r.run_id = ?", "", (run_id,))
        return found[0] if found else None

    def results(self, run_id: str) -> list[TestResult]:
        with self._raw(f"reading results of run {run_id}", write=False) as cursor:
            rows = cursor.execute(self._sql(SELECT_RESULTS), (run_id,)).fetchall()
        return [
            TestResult(test, outcome, duration, attempt, bool(flaky))
            for test, outcome, duration, attempt, flaky in rows
        ]

    def run_measurements(self, run_id: str) -> list[Measurement]:
        with self._raw(f"reading measurements of run {run_id}", write=False) as cursor:
            rows = cursor.execute(self._sql(SELECT_MEASUREMENTS), (run_id,)).fetchall()
        return [
            Measurement(
                test,
                metric,
                value,
                unit,
                None if higher is None else bool(higher),
                unpack_samples(samples),
                iqr,
                support,
            )
            for test, metric, value, unit, higher, samples, iqr, support in rows
        ]

    def test_durations(
        self,
        *,
        project: str,
        tier: str | None = None,
        branch: str | None = None,
        runs: int = 20,
        exclude_sha: str | None = None,
    ) -> dict[str, float]:
        where = ["project = ?", "status != 'running'"]
        parameters: list[Any] = [project]
        for condition, value in (("tier = ?", tier), ("branch = ?", branch), ("sha != ?", exclude_sha)):
            if value is not None:
                where.append(condition)
                parameters.append(value)
        recent = f"SELECT run_id FROM runs WHERE {' AND '.join(where)} ORDER BY started_at DESC, run_id LIMIT ?"
        query = f"SELECT test, duration FROM test_results WHERE run_id IN ({recent}) AND outcome = 'passed'"
        with self._raw("reading test durations", write=False) as cursor:
            rows = cursor.execute(self._sql(query), [*parameters, max(runs, 0)]).fetchall()
        return median_durations((row[0], row[1]) for row in rows)

    def _series_query(self, filters: tuple[bool, ...]) -> str:
        """The SQL of a series read, by which filters are set (test, metric, branch, tier, project,
        env_key). With test, metric and branch set (one series of one branch: what history and
        detection read), those three columns are not read back: every row has the filter's value."""
        key = "series" + "".join("1" if f else "0" for f in filters)
        query = self._queries.get(key)
        if query is not None:
            return query
        test, metric, branch, *_, env_key = filters
        columns = SERIES_SHORT if test and metric and branch else SERIES_COLUMNS
        names = ("m.test", "m.metric", "r.branch", "r.tier", "r.project")
        where = [f"{name} = ?" for name, on in zip(names, filters[:5], strict=True) if on]
        if env_key:
            where.append("r.env_id IN (SELECT env_id FROM environments WHERE env_key = ?)")
        if self._dialect == "sqlite":
            # From the runs (by branch when given), to each run's measurements by key, to its commit by
            # key: every step one index lookup. The planner has no statistics to find that order itself.
            source = (
                "runs AS r INDEXED BY ix_runs_series CROSS JOIN measurements AS m ON m.run_id = r.run_id "
                "CROSS JOIN commits AS c INDEXED BY ix_commits_series ON c.sha = r.sha"
            )
        else:
            source = "runs r JOIN measurements m ON m.run_id = r.run_id JOIN commits c ON c.sha = r.sha"
        query = f"SELECT {columns} FROM {source}" + (f" WHERE {' AND '.join(where)}" if where else "")
        self._queries[key] = query = self._sql(query)
        return query

    def _environment_keys(self, cursor: _Cursor, env_ids: set[str]) -> dict[str, tuple[str, str]]:
        """env_id -> (env_key, fingerprint), covering ``env_ids`` (cached: an environment row never changes)."""
        known = self._environments
        unknown = sorted(env_ids - known.keys())
        for chunk in _chunks(unknown):
            query = self._sql("SELECT env_id, env_key, data FROM environments WHERE env_id IN " + _marks(len(chunk)))
            for env, key, data in cursor.execute(query, chunk).fetchall():
                known[env] = (key, _environment(data).fingerprint)
        return known

    def series(
        self,
        *,
        test: str | None = None,
        metric: str | None = None,
        branch: str | None = None,
        tier: str | None = None,
        env_key: str | None = None,
        project: str | None = None,
    ) -> list[SeriesRow]:
        given = (test, metric, branch, tier, project, env_key)
        query = self._series_query(tuple(value is not None for value in given))
        with self._raw("reading history", write=False) as cursor:
            rows = cursor.execute(query, [value for value in given if value is not None]).fetchall()
            short = test is not None and metric is not None and branch is not None
            envs = self._environment_keys(cursor, {row[4 if short else 5] for row in rows})
        # Rows are unpacked as tuples and built as named tuples without a call per field, and an
        # environment's JSON is read once, not once per row: this is the hot read path (a series of
        # 10,000 commits).
        unpack = unpack_samples
        new = tuple.__new__
        out: list[SeriesRow] = []
        append = out.append
        if short:
            for (
                run_id,
                sha,
                row_tier,
                row_project,
                env,
                started,
                committed,
                subject,
                value,
                unit,
                higher,
                samples,
                iqr,
                support,
            ) in rows:
                key, fingerprint = envs[env]
                higher = None if higher is None else bool(higher)
                append(
                    new(
                        SeriesRow,
                        (
                            run_id,
                            sha,
                            branch,
                            row_tier,
                            row_project,
                            key,
                            started,
                            committed,
                            subject,
                            test,
                            metric,
                            value,
                            unit,
                            higher,
                            unpack(samples),
                            iqr,
                            support,
                            fingerprint,
                        ),
                    )
                )
            return out
        for (
            run_id,
            sha,
            row_branch,
            row_tier,
            row_project,
            env,
            started,
            committed,
            subject,
            row_test,
            row_metric,
            value,
            unit,
            higher,
            samples,
            iqr,
            support,
        ) in rows:
            key, fingerprint = envs[env]
            higher = None if higher is None else bool(higher)
            append(
                new(
                    SeriesRow,
                    (
                        run_id,
                        sha,
                        row_branch,
                        row_tier,
                        row_project,
                        key,
                        started,
                        committed,
                        subject,
                        row_test,
                        row_metric,
                        value,
                        unit,
                        higher,
                        unpack(samples),
                        iqr,
                        support,
                        fingerprint,
                    ),
                )
            )
        return out

    def first_parent_links(self, shas: Collection[str] | None = None) -> dict[str, str]:
        cache = self._links
        if shas is None:
            with self._raw("reading commit history", write=False) as cursor:
                links: dict[str, str] = dict(cursor.execute("SELECT sha, first_parent FROM commit_links").fetchall())
            if len(links) <= CACHE_LIMIT:
                self._links = links.copy()
            return links
        # Walk back from every sha at once, one step per round: the links on each path up to the
        # nearest other member of ``shas``. Links are cached (they never change); a link not
        # recorded yet is asked for again next time.
        wanted = shas if isinstance(shas, (set, frozenset, dict)) else set(shas)
        out: dict[str, str] = {}
        frontier = list(wanted)
        with self._raw("reading commit history", write=False) as cursor:
            for _ in range(MAX_WALK + 1):
                if not frontier:
                    break
                missing = [sha for sha in frontier if sha not in cache]
                if len(cache) + len(missing) > CACHE_LIMIT:
                    cache.clear()
                    missing = frontier
                for chunk in _chunks(missing):
                    query = self._sql("SELECT sha, first_parent FROM commit_links WHERE sha IN " + _marks(len(chunk)))
                    cache.update(cursor.execute(query, chunk).fetchall())
                step = []
                for sha in frontier:
                    parent = cache.get(sha)
                    if parent is not None:
                        out[sha] = parent
                        if parent not in wanted and parent not in out:
                            step.append(parent)
                frontier = step
        return out

    def add_acknowledgement(self, ack: Acknowledgement) -> None:
        row = (ack.target, ack.reason, ack.who, ack.at)
        query = (
            "INSERT INTO acknowledgements (target, reason, who, at) VALUES (?, ?, ?, ?) ON CONFLICT (target) "
            "DO UPDATE SET reason = excluded.reason, who = excluded.who, at = excluded.at"
        )
        with self._raw(f"acknowledging {ack.target}", write=True) as cursor:
            cursor.execute(self._sql(query), row)

    def acknowledgements(self) -> list[Acknowledgement]:
        query = "SELECT target, reason, who, at FROM acknowledgements ORDER BY at, target"
        with self._raw("reading acknowledgements", write=False) as cursor:
            rows = cursor.execute(query).fetchall()
        return [Acknowledgement(target, reason, who, at) for target, reason, who, at in rows]

    # ------------------------------------------------------------------ detection state
    def detection_states(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = {_state_key(key): key for key in keys}
        found: dict[str, str] = {}
        if not wanted:
            return found
        with self._raw("reading detection state", write=False) as cursor:
            for chunk in _chunks(list(wanted)):
                query = self._sql(
                    "SELECT key_hash, key, state FROM detection_states WHERE key_hash IN " + _marks(len(chunk))
                )
                for key_hash, key, state in cursor.execute(query, chunk).fetchall():
                    if wanted[key_hash] == key:
                        found[key] = state
        return found

    def save_detection_states(self, states: Mapping[str, str]) -> None:
        now = utc_now()
        rows = [(_state_key(key), key, _checked_state(key, state), now) for key, state in states.items()]
        if rows:
            with self._raw("saving detection state", write=True) as cursor:
                cursor.executemany(self._sql(UPSERT_STATE), rows)

    def clear_detection_states(self) -> None:
        with self._raw("clearing detection state", write=True) as cursor:
            cursor.execute("DELETE FROM detection_states")

    # ------------------------------------------------------------------ sinks
    def mark_delivered(self, sink: str, run_ids: Sequence[str], delivered_at: str) -> None:
        wanted = list(dict.fromkeys(run_ids))
        with self._raw(f"marking runs delivered to {sink}", write=True) as cursor:
            known: set[str] = set()
            for chunk in _chunks(wanted):
                query = self._sql("SELECT run_id FROM runs WHERE run_id IN " + _marks(len(chunk)))
                known.update(row[0] for row in cursor.execute(query, chunk).fetchall())
            missing = [run_id for run_id in wanted if run_id not in known]
            if missing:  # SQLite does not enforce the foreign key: refuse it here, like PostgreSQL
                raise StoreError(f"marking runs delivered to {sink} failed on {self.url}: no run {missing[0]!r}")
            query = (
                "INSERT INTO deliveries (sink, run_id, delivered_at) VALUES (?, ?, ?) "
                "ON CONFLICT (sink, run_id) DO NOTHING"
            )
            if wanted:
                cursor.executemany(self._sql(query), [(sink, run_id, delivered_at) for run_id in wanted])

    def deliveries(self, sink: str) -> dict[str, str]:
        query = self._sql("SELECT run_id, delivered_at FROM deliveries WHERE sink = ?")
        with self._raw(f"reading deliveries to {sink}", write=False) as cursor:
            return dict(cursor.execute(query, (sink,)).fetchall())

    def pending_runs(self, sink: str, *, project: str | None = None, limit: int = 1000) -> list[Run]:
        where = (
            "r.status != 'running' AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.sink = ? AND d.run_id = r.run_id)"
        )
        parameters: list[Any] = [sink]
        if project is not None:
            where += " AND r.project = ?"
            parameters.append(project)
        return self._runs(
            f"reading runs queued for {sink}", where, "ORDER BY r.started_at, r.run_id LIMIT ?", [*parameters, limit]
        )


def _sqlite_path(url: str, shown: str, root: Path) -> Path:
    """The file of the SQLite store at ``url`` (relative paths from ``root``); its directory is created."""
    prefix = url.split("://", 1)
    path_text = prefix[1][1:] if len(prefix) == 2 and prefix[1].startswith("/") else ""
    if not path_text or path_text == ":memory:":
        raise StoreError(
            f"store URL {shown!r} names no file: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = Path(path_text)
    path = path if path.is_absolute() else root / path
    if path.is_dir():
        raise StoreError(f"store URL {shown!r} points at the directory {path}: name a file, such as {path}/results.db")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory of the SQLite store {path}: {exc.strerror}") from None
    return path


def _sqlite_engine(path: str) -> sa.Engine:
    """An SQLAlchemy engine on the SQLite store at ``path`` (its connections as :func:`_sqlite_connect`
    makes them), for migrating its schema."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{path}", creator=lambda: _sqlite_connect(path))

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front, so two writers never deadlock upgrading a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
