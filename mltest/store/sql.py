"""SQLite and PostgreSQL through SQLAlchemy Core: one schema, versioned migrations, idempotent upserts.

SQLite runs in WAL mode with a busy timeout and takes its write lock up front (``BEGIN IMMEDIATE``),
so concurrent writers queue instead of failing with "database is locked". PostgreSQL writes run in
transactions; migrations hold an advisory lock so that concurrent first opens migrate once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from mltest.errors import BackendUnavailable, MissingExtraError, StoreError
from mltest.model import SCHEMA_VERSION, Acknowledgement, Commit, Environment, Measurement, Run, RunStatus, TestResult
from mltest.store import SeriesRow, median_durations, redact_url

__all__ = ["MIGRATIONS", "SqlStore"]

# ----------------------------------------------------------------------------- schema history
# Plain DDL that both SQLite and PostgreSQL accept. Never edit a shipped step: add the next one.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
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
)
assert MIGRATIONS[-1][0] == SCHEMA_VERSION

_md = sa.MetaData()
meta_t = sa.Table("meta", _md, sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text))
commits_t = sa.Table(
    "commits",
    _md,
    sa.Column("sha", sa.Text, primary_key=True),
    sa.Column("parents", sa.Text),
    sa.Column("author", sa.Text),
    sa.Column("authored_at", sa.Text),
    sa.Column("committed_at", sa.Text),
    sa.Column("subject", sa.Text),
)
links_t = sa.Table("commit_links", _md, sa.Column("sha", sa.Text, primary_key=True), sa.Column("first_parent", sa.Text))
envs_t = sa.Table(
    "environments",
    _md,
    sa.Column("env_id", sa.Text, primary_key=True),
    sa.Column("env_key", sa.Text),
    sa.Column("data", sa.Text),
)
acks_t = sa.Table(
    "acknowledgements",
    _md,
    sa.Column("target", sa.Text, primary_key=True),
    sa.Column("reason", sa.Text),
    sa.Column("who", sa.Text),
    sa.Column("at", sa.Text),
)
deliveries_t = sa.Table(
    "deliveries",
    _md,
    sa.Column("sink", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("delivered_at", sa.Text),
)
runs_t = sa.Table(
    "runs",
    _md,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("project", sa.Text),
    sa.Column("tier", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("sha", sa.Text),
    sa.Column("branch", sa.Text),
    sa.Column("env_id", sa.Text),
    sa.Column("ci_url", sa.Text),
    sa.Column("started_at", sa.Text),
    sa.Column("finished_at", sa.Text),
    sa.Column("hostname", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("heartbeat_at", sa.Text),
)
results_t = sa.Table(
    "test_results",
    _md,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("test", sa.Text, primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("outcome", sa.Text),
    sa.Column("duration", sa.Double),
    sa.Column("flaky", sa.Boolean),
)
measurements_t = sa.Table(
    "measurements",
    _md,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("test", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("value", sa.Double),
    sa.Column("unit", sa.Text),
    sa.Column("higher_is_better", sa.Boolean),
    sa.Column("samples", sa.Text),
    sa.Column("iqr", sa.Double),
    sa.Column("support", sa.Integer),
)


def env_id(environment: Environment) -> str:
    payload = json.dumps(dataclasses.asdict(environment), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _environment(data: str) -> Environment:
    env = json.loads(data)
    env["flags"] = tuple(tuple(pair) for pair in env.get("flags", ()))
    return Environment(**env)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


class SqlStore:
    def __init__(self, url: str, engine: sa.Engine, dialect: str) -> None:
        self.url = url
        self._engine = engine
        self._dialect = dialect
        self._statements: dict[tuple[str, tuple[str, ...], bool], Any] = {}
        self._compiled: dict[tuple[str, tuple[str, ...], bool], tuple[str, tuple[str, ...] | None]] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, url: str, *, root: Path) -> SqlStore:
        shown = redact_url(url)
        scheme = url.split(":", 1)[0].lower()
        if scheme.startswith("sqlite"):
            store = cls(shown, _sqlite_engine(url, shown, root), "sqlite")
        else:
            if importlib.util.find_spec("psycopg") is None:
                raise MissingExtraError("the PostgreSQL store", "postgres", "psycopg")
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
        message = _first_line(exc)
        if self._dialect == "postgresql" and isinstance(exc, sa_exc.OperationalError):
            if exc.connection_invalidated:
                return BackendUnavailable(f"{what} failed on {self.url}: the connection was lost: {message}")
            if "connect" in message or "Connection refused" in message or "timeout" in message:
                return BackendUnavailable(f"cannot reach the store {self.url}: {message}")
        return StoreError(f"{what} failed on {self.url}: {message}")

    @contextmanager
    def _tx(self, what: str) -> Iterator[sa.Connection]:
        """A write transaction; driver errors become one-line StoreErrors naming the store."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa_exc.DBAPIError as exc:
            raise self._error(what, exc) from exc

    def _migrate(self) -> None:
        with self._tx("opening the store") as conn:
            if self._dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
            version = self._version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.url} has schema version {version}, written by a newer mltest; this mltest "
                    f"reads up to version {SCHEMA_VERSION}: upgrade mltest (pip install -U mltest)"
                )
            for step, statements in MIGRATIONS:
                if step <= version:
                    continue
                for statement in statements:
                    conn.exec_driver_sql(statement)
                self._set_version(conn, step)

    def _version(self, conn: sa.Connection) -> int:
        if not sa.inspect(conn).has_table("meta"):
            if sa.inspect(conn).has_table("runs"):
                raise StoreError(f"{self.url} has a 'runs' table but no mltest version: it is not an mltest store")
            return 0
        value = conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == "schema_version")).scalar()
        return int(value) if value is not None else 0

    def _set_version(self, conn: sa.Connection, version: int) -> None:
        conn.execute(sa.delete(meta_t).where(meta_t.c.key == "schema_version"))
        conn.execute(sa.insert(meta_t).values(key="schema_version", value=str(version)))

    def schema_version(self) -> int:
        with self._read("reading the schema version") as conn:
            return self._version(conn)

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------ writing
    def _insert(self, table: sa.Table) -> Any:
        # Only the dialect in use: importing PostgreSQL's for a SQLite store costs ~20 ms per session.
        if self._dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)

    def _upsert_statement(self, table: sa.Table, columns: tuple[str, ...], update: bool) -> Any:
        """The INSERT .. ON CONFLICT statement for these columns, built once per store: building it
        (``excluded`` aliases the whole table on every access) cost more than executing it."""
        key = (table.name, columns, update)
        stmt = self._statements.get(key)
        if stmt is None:
            ins = self._insert(table)
            keys = [c.name for c in table.primary_key.columns]
            if update:
                excluded = ins.excluded
                stmt = ins.on_conflict_do_update(
                    index_elements=keys, set_={c: excluded[c] for c in columns if c not in keys}
                )
            else:
                stmt = ins.on_conflict_do_nothing(index_elements=keys)
            self._statements[key] = stmt
        return stmt

    def _upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], update: bool) -> None:
        if not rows:
            return
        columns = tuple(rows[0])
        key = (table.name, columns, update)
        compiled = self._compiled.get(key)
        if compiled is None:
            # Compiled once to the driver's own SQL: many rows then go straight to the driver's
            # executemany, without SQLAlchemy's per-row parameter processing (every value here is
            # a str, float, int, bool or None, which both drivers take as they are).
            statement = self._upsert_statement(table, columns, update).compile(
                dialect=conn.dialect, column_keys=list(columns)
            )
            order = statement.positiontup
            compiled = (str(statement), tuple(order) if order is not None else None)
            self._compiled[key] = compiled
        sql, order = compiled
        if order is None:
            conn.exec_driver_sql(sql, rows)
        else:
            conn.exec_driver_sql(sql, [tuple(row[c] for c in order) for row in rows])

    def _new_links(self, conn: sa.Connection, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The links not stored yet: a run records its ancestry (up to a few hundred commits), and
        nearly all of it is already there from earlier runs. Links never change (a commit's first
        parent is fixed), so one lookup replaces hundreds of conflicting inserts."""
        if len(links) <= 1:
            return links
        shas = [link["sha"] for link in links]
        known: set[str] = set()
        for start in range(0, len(shas), 500):  # well under every driver's parameter limit
            chunk = shas[start : start + 500]
            known.update(conn.execute(sa.select(links_t.c.sha).where(links_t.c.sha.in_(chunk))).scalars())
        return [link for link in links if link["sha"] not in known]

    def begin_run(self, run: Run) -> None:
        commit, environment = run.commit, run.environment
        chain = (commit.sha, *commit.ancestry)
        links = [{"sha": child, "first_parent": parent} for child, parent in itertools.pairwise(chain)]
        if not links and commit.parents:
            links = [{"sha": commit.sha, "first_parent": commit.parents[0]}]
        with self._tx(f"recording run {run.run_id}") as conn:
            self._upsert(
                conn,
                commits_t,
                [
                    {
                        "sha": commit.sha,
                        "parents": " ".join(commit.parents),
                        "author": commit.author,
                        "authored_at": commit.authored_at,
                        "committed_at": commit.committed_at,
                        "subject": commit.subject,
                    }
                ],
                update=False,
            )
            self._upsert(conn, links_t, self._new_links(conn, links), update=False)
            self._upsert(
                conn,
                envs_t,
                [
                    {
                        "env_id": env_id(environment),
                        "env_key": environment.key,
                        "data": json.dumps(dataclasses.asdict(environment), sort_keys=True),
                    }
                ],
                update=False,
            )
            self._upsert(
                conn,
                runs_t,
                [
                    {
                        "run_id": run.run_id,
                        "project": run.project,
                        "tier": run.tier,
                        "status": run.status,
                        "sha": commit.sha,
                        "branch": commit.branch,
                        "env_id": env_id(environment),
                        "ci_url": run.ci_url,
                        "started_at": run.started_at,
                        "finished_at": run.finished_at,
                        "hostname": run.hostname,
                        "pid": run.pid,
                        "heartbeat_at": run.started_at,
                    }
                ],
                update=False,
            )

    def add_results(self, run_id: str, results: Sequence[TestResult], measurements: Sequence[Measurement]) -> None:
        from mltest.model import utc_now

        with self._tx(f"recording results of run {run_id}") as conn:
            self._upsert(
                conn,
                results_t,
                [
                    {
                        "run_id": run_id,
                        "test": r.test,
                        "attempt": r.attempt,
                        "outcome": r.outcome,
                        "duration": r.duration,
                        "flaky": r.flaky,
                    }
                    for r in results
                ],
                update=True,
            )
            self._upsert(
                conn,
                measurements_t,
                [
                    {
                        "run_id": run_id,
                        "test": m.test,
                        "metric": m.metric,
                        "value": m.value,
                        "unit": m.unit,
                        "higher_is_better": m.higher_is_better,
                        "samples": json.dumps(list(m.samples)),
                        "iqr": m.iqr,
                        "support": m.support,
                    }
                    for m in measurements
                ],
                update=True,
            )
            conn.execute(sa.update(runs_t).where(runs_t.c.run_id == run_id).values(heartbeat_at=utc_now()))

    def finish_run(self, run_id: str, status: RunStatus, finished_at: str) -> None:
        with self._tx(f"finishing run {run_id}") as conn:
            conn.execute(
                sa.update(runs_t).where(runs_t.c.run_id == run_id).values(status=status, finished_at=finished_at)
            )

    def mark_aborted(self, run_ids: Sequence[str], finished_at: str) -> None:
        if not run_ids:
            return
        with self._tx("marking aborted runs") as conn:
            conn.execute(
                sa.update(runs_t)
                .where(runs_t.c.run_id.in_(list(run_ids)), runs_t.c.status == "running")
                .values(status="aborted", finished_at=finished_at)
            )

    # ------------------------------------------------------------------ reading
    @contextmanager
    def _read(self, what: str) -> Iterator[sa.Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn.execution_options(mltest_read=True)
        except sa_exc.DBAPIError as exc:
            raise self._error(what, exc) from exc

    def _run_query(self) -> sa.Select[Any]:
        return (
            sa.select(
                runs_t,
                commits_t.c.parents,
                commits_t.c.author,
                commits_t.c.authored_at,
                commits_t.c.committed_at,
                commits_t.c.subject,
                envs_t.c.data,
            )
            .join(commits_t, commits_t.c.sha == runs_t.c.sha)
            .join(envs_t, envs_t.c.env_id == runs_t.c.env_id)
        )

    @staticmethod
    def _to_run(row: Any) -> Run:
        return Run(
            run_id=row.run_id,
            project=row.project,
            tier=row.tier,
            status=row.status,
            commit=Commit(
                sha=row.sha,
                branch=row.branch,
                parents=tuple((row.parents or "").split()),
                author=row.author,
                authored_at=row.authored_at,
                committed_at=row.committed_at,
                subject=row.subject,
            ),
            environment=_environment(row.data),
            started_at=row.started_at,
            finished_at=row.finished_at,
            ci_url=row.ci_url,
            hostname=row.hostname,
            pid=row.pid,
        )

    def runs(self, *, branch: str | None = None, project: str | None = None, limit: int = 50) -> list[Run]:
        query = self._run_query().order_by(runs_t.c.started_at.desc(), runs_t.c.run_id).limit(limit)
        if branch is not None:
            query = query.where(runs_t.c.branch == branch)
        if project is not None:
            query = query.where(runs_t.c.project == project)
        with self._read("listing runs") as conn:
            return [self._to_run(row) for row in conn.execute(query)]

    def get_run(self, run_id: str) -> Run | None:
        with self._read(f"reading run {run_id}") as conn:
            row = conn.execute(self._run_query().where(runs_t.c.run_id == run_id)).first()
        return None if row is None else self._to_run(row)

    def results(self, run_id: str) -> list[TestResult]:
        query = sa.select(results_t).where(results_t.c.run_id == run_id).order_by(results_t.c.test, results_t.c.attempt)
        with self._read(f"reading results of run {run_id}") as conn:
            return [TestResult(r.test, r.outcome, r.duration, r.attempt, bool(r.flaky)) for r in conn.execute(query)]

    def run_measurements(self, run_id: str) -> list[Measurement]:
        query = (
            sa.select(measurements_t)
            .where(measurements_t.c.run_id == run_id)
            .order_by(measurements_t.c.test, measurements_t.c.metric)
        )
        with self._read(f"reading measurements of run {run_id}") as conn:
            return [
                Measurement(
                    m.test,
                    m.metric,
                    m.value,
                    m.unit,
                    m.higher_is_better,
                    tuple(json.loads(m.samples)),
                    m.iqr,
                    m.support,
                )
                for m in conn.execute(query)
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
        r, t = runs_t, results_t
        recent = sa.select(r.c.run_id).where(r.c.project == project, r.c.status != "running")
        for column, value in ((r.c.tier, tier), (r.c.branch, branch)):
            if value is not None:
                recent = recent.where(column == value)
        if exclude_sha is not None:
            recent = recent.where(r.c.sha != exclude_sha)
        recent = recent.order_by(r.c.started_at.desc(), r.c.run_id).limit(max(runs, 0))
        query = sa.select(t.c.test, t.c.duration).where(
            t.c.run_id.in_(recent.scalar_subquery()), t.c.outcome == "passed"
        )
        with self._read("reading test durations") as conn:
            return median_durations((row[0], row[1]) for row in conn.execute(query))

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
        m, r, c, e = measurements_t, runs_t, commits_t, envs_t
        # The environment's JSON is read once per environment, not once per row, and rows are
        # unpacked as tuples: this is the hot read path (a 10k-commit series).
        query = sa.select(
            r.c.run_id,
            r.c.sha,
            r.c.branch,
            r.c.tier,
            r.c.project,
            r.c.env_id,
            r.c.started_at,
            c.c.committed_at,
            c.c.subject,
            m.c.test,
            m.c.metric,
            m.c.value,
            m.c.unit,
            m.c.higher_is_better,
            m.c.samples,
            m.c.iqr,
            m.c.support,
        ).select_from(m.join(r, r.c.run_id == m.c.run_id).join(c, c.c.sha == r.c.sha))
        if env_key is not None:
            query = query.join(e, e.c.env_id == r.c.env_id).where(e.c.env_key == env_key)
        for column, value in (
            (m.c.test, test),
            (m.c.metric, metric),
            (r.c.branch, branch),
            (r.c.tier, tier),
            (r.c.project, project),
        ):
            if value is not None:
                query = query.where(column == value)
        with self._read("reading history") as conn:
            rows = conn.execute(query).all()
            env_ids = {row[5] for row in rows}
            envs: dict[str, tuple[str, str]] = {}
            if env_ids:
                for env_id, key, data in conn.execute(
                    sa.select(e.c.env_id, e.c.env_key, e.c.data).where(e.c.env_id.in_(sorted(env_ids)))
                ):
                    envs[env_id] = (key, _environment(data).fingerprint)
        loads = json.loads
        return [
            SeriesRow(
                run_id,
                sha,
                row_branch,
                row_tier,
                row_project,
                envs[env_id][0],
                started_at,
                committed_at,
                subject,
                row_test,
                row_metric,
                value,
                unit,
                higher_is_better,
                tuple(loads(samples)),
                iqr,
                support,
                envs[env_id][1],
            )
            for (
                run_id,
                sha,
                row_branch,
                row_tier,
                row_project,
                env_id,
                started_at,
                committed_at,
                subject,
                row_test,
                row_metric,
                value,
                unit,
                higher_is_better,
                samples,
                iqr,
                support,
            ) in rows
        ]

    def first_parent_links(self) -> dict[str, str]:
        with self._read("reading commit history") as conn:
            return {row.sha: row.first_parent for row in conn.execute(sa.select(links_t))}

    def add_acknowledgement(self, ack: Acknowledgement) -> None:
        row = {"target": ack.target, "reason": ack.reason, "who": ack.who, "at": ack.at}
        with self._tx(f"acknowledging {ack.target}") as conn:
            self._upsert(conn, acks_t, [row], update=True)

    def acknowledgements(self) -> list[Acknowledgement]:
        with self._read("reading acknowledgements") as conn:
            rows = conn.execute(sa.select(acks_t).order_by(acks_t.c.at, acks_t.c.target)).all()
        return [Acknowledgement(r.target, r.reason, r.who, r.at) for r in rows]

    # ------------------------------------------------------------------ sinks
    def mark_delivered(self, sink: str, run_ids: Sequence[str], delivered_at: str) -> None:
        rows = [{"sink": sink, "run_id": run_id, "delivered_at": delivered_at} for run_id in dict.fromkeys(run_ids)]
        with self._tx(f"marking runs delivered to {sink}") as conn:
            wanted = [row["run_id"] for row in rows]
            known: set[str] = set()
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                known.update(conn.execute(sa.select(runs_t.c.run_id).where(runs_t.c.run_id.in_(chunk))).scalars())
            missing = [run_id for run_id in wanted if run_id not in known]
            if missing:  # SQLite does not enforce the foreign key: refuse it here, like PostgreSQL
                raise StoreError(f"marking runs delivered to {sink} failed on {self.url}: no run {missing[0]!r}")
            self._upsert(conn, deliveries_t, rows, update=False)

    def deliveries(self, sink: str) -> dict[str, str]:
        query = sa.select(deliveries_t.c.run_id, deliveries_t.c.delivered_at).where(deliveries_t.c.sink == sink)
        with self._read(f"reading deliveries to {sink}") as conn:
            return {row.run_id: row.delivered_at for row in conn.execute(query)}

    def pending_runs(self, sink: str, *, project: str | None = None, limit: int = 1000) -> list[Run]:
        delivered = sa.select(deliveries_t.c.run_id).where(
            deliveries_t.c.sink == sink, deliveries_t.c.run_id == runs_t.c.run_id
        )
        query = (
            self._run_query()
            .where(runs_t.c.status != "running", ~delivered.exists())
            .order_by(runs_t.c.started_at, runs_t.c.run_id)
            .limit(limit)
        )
        if project is not None:
            query = query.where(runs_t.c.project == project)
        with self._read(f"reading runs queued for {sink}") as conn:
            return [self._to_run(row) for row in conn.execute(query)]


def _sqlite_engine(url: str, shown: str, root: Path) -> sa.Engine:
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
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below decides how to begin
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout = 60000")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # with WAL: a kill -9 loses nothing committed
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front, so two writers never deadlock upgrading a read lock;
        # readers begin deferred and never block writers (WAL).
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("mltest_read") else "BEGIN IMMEDIATE")

    return engine
