"""Results stores, chosen by URL scheme: ``sqlite:///PATH`` (embedded default), ``postgresql://...``
(teams), ``memory://`` (tests). One small protocol; drivers are imported lazily."""

from __future__ import annotations

import re
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from mltest.errors import StoreError
from mltest.model import Acknowledgement, Measurement, Run, RunStatus, TestResult

__all__ = ["MAX_WALK", "SeriesRow", "Store", "median_durations", "open_store", "redact_url"]

MAX_WALK = 100_000
"""The most first-parent links followed back from one commit (a bound against corrupt histories)."""


class SeriesRow(NamedTuple):
    """One stored measurement joined with its run, commit and environment (what history reads).

    A named tuple, not a dataclass: a series read builds one per measurement (10,000 for a long
    history), and a tuple is built in a fraction of the time."""

    run_id: str
    sha: str
    branch: str | None
    tier: str
    project: str
    env_key: str
    started_at: str
    committed_at: str | None
    subject: str | None
    test: str
    metric: str
    value: float
    unit: str | None
    higher_is_better: bool | None
    samples: tuple[float, ...]
    iqr: float | None
    support: int | None
    fingerprint: str = ""
    """The run's :attr:`~mltest.model.Environment.fingerprint` (hardware, driver, image)."""


class Store(Protocol):
    """What every backend does. Writes are idempotent per run id (a replayed write changes nothing)."""

    url: str
    """The URL with any password removed: safe to print."""

    def begin_run(self, run: Run) -> None: ...

    def add_results(self, run_id: str, results: Sequence[TestResult], measurements: Sequence[Measurement]) -> None:
        """Store test outcomes and measurements in one transaction, and refresh the run's heartbeat."""

    def finish_run(self, run_id: str, status: RunStatus, finished_at: str) -> None: ...

    def mark_aborted(self, run_ids: Sequence[str], finished_at: str) -> None:
        """Runs still 'running' among ``run_ids`` become 'aborted' (their process is gone)."""

    def runs(self, *, branch: str | None = None, project: str | None = None, limit: int = 50) -> list[Run]:
        """Most recent first."""

    def get_run(self, run_id: str) -> Run | None: ...

    def results(self, run_id: str) -> list[TestResult]: ...

    def run_measurements(self, run_id: str) -> list[Measurement]: ...

    def test_durations(
        self,
        *,
        project: str,
        tier: str | None = None,
        branch: str | None = None,
        runs: int = 20,
        exclude_sha: str | None = None,
    ) -> dict[str, float]:
        """test -> the median duration (seconds) of its passed results in the last ``runs`` finished runs
        (newest by start) of ``project`` on ``tier`` and ``branch`` (None: any), leaving out the runs at
        commit ``exclude_sha``. What sharding balances by; a test with no passed result is absent."""

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
        """Matching measurements, unordered (ordering by history is :mod:`mltest.store.history`'s job)."""

    def first_parent_links(self, shas: Collection[str] | None = None) -> dict[str, str]:
        """sha -> first parent, for every link ever recorded.

        With ``shas``: at least the links on the first-parent path from each of them back to the
        nearest other member of ``shas`` (or as far as recorded, at most :data:`MAX_WALK` links):
        what :func:`mltest.store.history.commit_order` needs to order them. More may come back."""

    def add_acknowledgement(self, ack: Acknowledgement) -> None:
        """Store (or replace) the acknowledgement of ``ack.target``."""

    def acknowledgements(self) -> list[Acknowledgement]: ...

    def detection_states(self, keys: Sequence[str]) -> dict[str, str]:
        """key -> state, for those of ``keys`` that have a saved state (what incremental detection kept)."""

    def save_detection_states(self, states: Mapping[str, str]) -> None:
        """Store each key's state, replacing an earlier one, in one transaction."""

    def clear_detection_states(self) -> None:
        """Forget every saved detection state."""

    def mark_delivered(self, sink: str, run_ids: Sequence[str], delivered_at: str) -> None:
        """Record that ``sink`` (a destination such as ``gsheets://KEY/WORKSHEET``) has these runs.

        Idempotent: a run marked twice keeps its first ``delivered_at``."""

    def deliveries(self, sink: str) -> dict[str, str]:
        """run id -> delivered_at, for every run marked delivered to ``sink``."""

    def pending_runs(self, sink: str, *, project: str | None = None, limit: int = 1000) -> list[Run]:
        """Finished runs (any status but 'running') not yet delivered to ``sink``, oldest first."""

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


def median_durations(rows: Iterable[tuple[str, float]]) -> dict[str, float]:
    """test -> the median of its durations, from (test, duration) rows (shared by the backends)."""
    by_test: dict[str, list[float]] = {}
    for test, duration in rows:
        by_test.setdefault(test, []).append(float(duration))
    return {test: float(statistics.median(values)) for test, values in sorted(by_test.items())}


def redact_url(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` query parameter), for messages.

    Works on the text, so a malformed port or an IPv6 host never makes the redaction itself fail.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # not a URL: perhaps a libpq keyword string (host=... password=...)
        return re.sub(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", r"\1***", url)
    authority, slash, tail = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = userinfo.split(":", 1)[0] + ":***@" + hostport
    tail = re.sub(r"(?i)(\bpassword=)[^&]*", r"\1***", tail)
    return f"{scheme}{sep}{authority}{slash}{tail}"


def open_store(url: str, *, root: Path | None = None) -> Store:
    """Open (creating or migrating as needed) the store at ``url``.

    ``root`` anchors a relative SQLite path (``sqlite:///.mltest/results.db``); default: the cwd.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "memory":
        from mltest.store.memory import MemoryStore

        return MemoryStore(url)
    if scheme in ("sqlite", "postgresql", "postgres") or scheme.startswith(("postgresql+", "sqlite+")):
        from mltest.store.sql import SqlStore

        return SqlStore.open(url, root=root or Path.cwd())
    shown = redact_url(url)
    if not scheme:
        raise StoreError(
            f"store URL {shown!r} has no scheme: use sqlite:///PATH (for example sqlite:///.mltest/results.db) "
            "or postgresql://USER@HOST/DB"
        )
    shown_scheme = shown.split(":", 1)[0].lower()  # from the redacted text: a password may hold a ':'
    raise StoreError(
        f"unsupported store URL scheme {shown_scheme!r} in {shown!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
    )
