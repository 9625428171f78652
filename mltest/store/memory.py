"""An in-memory store with the same behaviour as the SQL ones: for tests and dry runs (``memory://``)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from mltest.errors import StoreError
from mltest.model import SCHEMA_VERSION, Acknowledgement, Measurement, Run, RunStatus, TestResult, utc_now
from mltest.store import SeriesRow, median_durations

__all__ = ["MemoryStore"]


class MemoryStore:
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._heartbeat: dict[str, str] = {}
        self._results: dict[tuple[str, str, int], TestResult] = {}
        self._measurements: dict[tuple[str, str, str], Measurement] = {}
        self._links: dict[str, str] = {}
        self._acks: dict[str, Acknowledgement] = {}
        self._deliveries: dict[tuple[str, str], str] = {}
        self._states: dict[str, str] = {}

    def begin_run(self, run: Run) -> None:
        with self._lock:
            # Like the SQL stores: the ancestry is kept as links, not on the run's commit.
            self._runs.setdefault(run.run_id, replace(run, commit=replace(run.commit, ancestry=())))
            chain = (run.commit.sha, *run.commit.ancestry)
            for child, parent in itertools.pairwise(chain):
                self._links.setdefault(child, parent)
            if len(chain) == 1 and run.commit.parents:
                self._links.setdefault(run.commit.sha, run.commit.parents[0])

    def add_results(self, run_id: str, results: Sequence[TestResult], measurements: Sequence[Measurement]) -> None:
        with self._lock:
            for r in results:
                self._results[(run_id, r.test, r.attempt)] = r
            for m in measurements:
                self._measurements[(run_id, m.test, m.metric)] = m
            self._heartbeat[run_id] = utc_now()

    def _replace_status(self, run_id: str, status: RunStatus, finished_at: str) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            self._runs[run_id] = replace(run, status=status, finished_at=finished_at)

    def finish_run(self, run_id: str, status: RunStatus, finished_at: str) -> None:
        with self._lock:
            self._replace_status(run_id, status, finished_at)

    def mark_aborted(self, run_ids: Sequence[str], finished_at: str) -> None:
        with self._lock:
            for run_id in run_ids:
                run = self._runs.get(run_id)
                if run is not None and run.status == "running":
                    self._replace_status(run_id, "aborted", finished_at)

    def runs(self, *, branch: str | None = None, project: str | None = None, limit: int = 50) -> list[Run]:
        with self._lock:
            runs = [
                r
                for r in self._runs.values()
                if (branch is None or r.commit.branch == branch) and (project is None or r.project == project)
            ]
        runs.sort(key=lambda r: r.run_id)
        runs.sort(key=lambda r: r.started_at, reverse=True)
        return runs[:limit]

    def get_run(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def results(self, run_id: str) -> list[TestResult]:
        with self._lock:
            found = [r for (rid, _, _), r in self._results.items() if rid == run_id]
        return sorted(found, key=lambda r: (r.test, r.attempt))

    def run_measurements(self, run_id: str) -> list[Measurement]:
        with self._lock:
            found = [m for (rid, _, _), m in self._measurements.items() if rid == run_id]
        return sorted(found, key=lambda m: (m.test, m.metric))

    def test_durations(
        self,
        *,
        project: str,
        tier: str | None = None,
        branch: str | None = None,
        runs: int = 20,
        exclude_sha: str | None = None,
    ) -> dict[str, float]:
        with self._lock:
            recent = [
                r
                for r in self._runs.values()
                if r.project == project
                and r.status != "running"
                and (tier is None or r.tier == tier)
                and (branch is None or r.commit.branch == branch)
                and (exclude_sha is None or r.commit.sha != exclude_sha)
            ]
            recent.sort(key=lambda r: r.run_id)
            recent.sort(key=lambda r: r.started_at, reverse=True)
            keep = {r.run_id for r in recent[: max(runs, 0)]}
            rows = [
                (r.test, r.duration)
                for (run_id, _, _), r in self._results.items()
                if run_id in keep and r.outcome == "passed"
            ]
        return median_durations(rows)

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
        rows = []
        with self._lock:
            for (run_id, _, _), m in self._measurements.items():
                run = self._runs[run_id]
                wanted = (
                    (test, m.test),
                    (metric, m.metric),
                    (branch, run.commit.branch),
                    (tier, run.tier),
                    (env_key, run.environment.key),
                    (project, run.project),
                )
                if any(want is not None and want != have for want, have in wanted):
                    continue
                rows.append(
                    SeriesRow(
                        run_id,
                        run.commit.sha,
                        run.commit.branch,
                        run.tier,
                        run.project,
                        run.environment.key,
                        run.started_at,
                        run.commit.committed_at,
                        run.commit.subject,
                        m.test,
                        m.metric,
                        m.value,
                        m.unit,
                        m.higher_is_better,
                        m.samples,
                        m.iqr,
                        m.support,
                        run.environment.fingerprint,
                    )
                )
        return rows

    def first_parent_links(self, shas: Collection[str] | None = None) -> dict[str, str]:
        with self._lock:
            return dict(self._links)  # every link: a superset of what ``shas`` needs

    def detection_states(self, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {key: self._states[key] for key in keys if key in self._states}

    def save_detection_states(self, states: Mapping[str, str]) -> None:
        checked = {}
        for key, state in states.items():  # all checked first: a bad one changes nothing, like a transaction
            if not isinstance(key, str):
                raise StoreError(f"a detection state key must be text, got {key!r:.100}")
            if not isinstance(state, str):
                raise StoreError(f"the detection state of {key!r:.100} must be text, got {type(state).__name__}")
            checked[key] = state
        with self._lock:
            self._states.update(checked)

    def clear_detection_states(self) -> None:
        with self._lock:
            self._states.clear()

    def add_acknowledgement(self, ack: Acknowledgement) -> None:
        with self._lock:
            self._acks[ack.target] = ack

    def acknowledgements(self) -> list[Acknowledgement]:
        with self._lock:
            return sorted(self._acks.values(), key=lambda a: (a.at, a.target))

    def mark_delivered(self, sink: str, run_ids: Sequence[str], delivered_at: str) -> None:
        with self._lock:
            for run_id in run_ids:
                if run_id not in self._runs:
                    raise StoreError(f"marking runs delivered to {sink} failed on {self.url}: no run {run_id!r}")
            for run_id in run_ids:
                self._deliveries.setdefault((sink, run_id), delivered_at)

    def deliveries(self, sink: str) -> dict[str, str]:
        with self._lock:
            return {run_id: at for (s, run_id), at in self._deliveries.items() if s == sink}

    def pending_runs(self, sink: str, *, project: str | None = None, limit: int = 1000) -> list[Run]:
        with self._lock:
            runs = [
                r
                for r in self._runs.values()
                if r.status != "running"
                and (sink, r.run_id) not in self._deliveries
                and (project is None or r.project == project)
            ]
        runs.sort(key=lambda r: (r.started_at, r.run_id))
        return runs[:limit]

    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def close(self) -> None:
        pass
