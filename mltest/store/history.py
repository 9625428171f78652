"""Commit order from recorded first-parent history, and the history DataFrame.

Order is the recorded first-parent history, not timestamps: each run stores the first-parent chain
its checkout knew, so a later shallow clone still lands in the right place. Where no recorded link
connects two commits (a force-push, a clone too shallow), commit time decides, then run time.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from mltest.model import Series, SeriesPoint
from mltest.store import MAX_WALK, SeriesRow, Store

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HISTORY_COLUMNS", "commit_order", "history", "history_frame", "load_series"]

HISTORY_COLUMNS = (
    "position",
    "sha",
    "subject",
    "committed_at",
    "branch",
    "tier",
    "env_key",
    "run_id",
    "started_at",
    "test",
    "metric",
    "value",
    "unit",
    "higher_is_better",
    "n",
    "iqr",
    "support",
    "samples",
)


def commit_order(commits: Mapping[str, str], links: Mapping[str, str]) -> list[str]:
    """``commits`` (sha -> sort key, e.g. commit time) in history order, oldest first.

    An edge A -> B exists when walking B's first-parent links reaches A before any other commit of
    ``commits``. Kahn's algorithm over those edges, with ties broken by the sort key, then sha.
    """
    before: dict[str, str] = {}
    get = links.get
    for sha in commits:
        parent = get(sha)
        if parent is None:
            continue
        if parent in commits:  # the common case: the parent was measured too
            if parent != sha:
                before[sha] = parent
            continue
        seen = {sha}  # a cycle of unrecorded links (rewritten history) ends the walk at once
        while parent is not None and parent not in commits and parent not in seen and len(seen) <= MAX_WALK:
            seen.add(parent)
            parent = get(parent)
        if parent is not None and parent in commits and parent != sha:
            before[sha] = parent
    children: dict[str, list[str]] = {}
    for child, parent in before.items():
        kids = children.get(parent)
        if kids is None:
            children[parent] = [child]
        else:
            kids.append(child)
    ready = [(commits[sha], sha) for sha in commits if sha not in before]
    heapq.heapify(ready)
    order: list[str] = []
    append, push, pop = order.append, heapq.heappush, heapq.heappop
    while ready:
        _, sha = pop(ready)
        while True:
            append(sha)
            kids = children.get(sha)
            if kids is None:
                break
            if len(kids) == 1 and not ready:  # a chain: its one child is next, no heap needed
                sha = kids[0]
                continue
            for child in kids:
                push(ready, (commits[child], child))
            break
    if len(order) < len(commits):  # a cycle in recorded links (rewritten history): fall back to the key
        seen = set(order)
        order += sorted((s for s in commits if s not in seen), key=lambda s: (commits[s], s))
    return order


def _fields(*names: str) -> itemgetter[Any]:
    """A getter of these fields of a SeriesRow that runs in C, for the passes over every row."""
    return itemgetter(*(SeriesRow._fields.index(name) for name in names))


_SHA = _fields("sha")
_ORDER_AT_ONE_COMMIT = _fields("started_at", "run_id", "test", "metric")
_SERIES_KEY = _fields("test", "metric", "env_key")
_DIRECTION = _fields("higher_is_better")


def _commit_keys(rows: Sequence[SeriesRow]) -> dict[str, str]:
    """sha -> its sort key: the commit time, else its earliest run's start."""
    keys = dict(zip(map(_SHA, rows), [r.committed_at or r.started_at for r in rows], strict=True))
    if len(keys) == len(rows):
        return keys
    keys = {}
    for row in rows:  # several rows at one commit: the smallest key
        key = row.committed_at or row.started_at
        known = keys.get(row.sha)
        if known is None or key < known:
            keys[row.sha] = key
    return keys


def _in_commit_order(
    rows: Sequence[SeriesRow], links_of: Callable[[Collection[str]], Mapping[str, str]]
) -> tuple[list[SeriesRow], dict[str, int]]:
    """``rows`` by commit position, then run start, run id, test and metric; and sha -> position.

    ``links_of(shas)`` gives the first-parent links that order those commits."""
    keys = _commit_keys(rows)
    order = commit_order(keys, links_of(keys))
    position = {sha: i for i, sha in enumerate(order)}
    if len(keys) < len(rows):  # several rows at one commit: their order is the tie-break's
        rows = sorted(rows, key=_ORDER_AT_ONE_COMMIT)
    ranks = list(map(position.__getitem__, map(_SHA, rows)))
    return list(map(rows.__getitem__, sorted(range(len(rows)), key=ranks.__getitem__))), position


def _points(rows: list[SeriesRow]) -> tuple[tuple[SeriesPoint, ...], SeriesRow]:
    """One series' rows (in commit order) as points, one per commit and fingerprint; and the last row."""
    point = SeriesPoint
    if len(set(map(_SHA, rows))) == len(rows):  # one run per commit, the common case: a point per row
        built = [
            point(r.sha, r.value, r.samples, r.support or None, r.fingerprint, r.subject, 1, r.committed_at)
            for r in rows
        ]
        return tuple(built), rows[-1]
    points: dict[tuple[str, str], list[SeriesRow]] = {}
    for row in rows:
        points.setdefault((row.sha, row.fingerprint), []).append(row)
    built = []
    for (sha, fingerprint), runs in points.items():
        first = runs[0]
        values = sorted(r.value for r in runs)
        mid = len(values) // 2
        value = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
        samples = tuple(x for r in runs for x in (r.samples or (r.value,))) if len(runs) > 1 else first.samples
        supports = [r.support for r in runs if r.support]
        built.append(
            point(
                sha,
                value,
                samples,
                max(supports) if supports else None,  # one test set, measured again
                fingerprint,
                first.subject,
                len(runs),
                first.committed_at,
            )
        )
    return tuple(built), next(reversed(next(reversed(points.values()))))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a history read builds its rows and points.

    A long history is tens of thousands of new tuples and points that all survive the read; each
    700 allocations start a collection, and the survivors soon trigger full ones, which walk every
    object in the process (a process that imported torch or pandas holds millions). None of these
    objects can be part of a cycle, so the collections find nothing: pausing them reads a
    10,000-commit series in about 30 % less time (BENCHMARKS.md, store). Reference counting still
    frees everything; the collector is back on (if it was on) when the read ends, even by an error.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def load_series(store: Store, **filters: Any) -> list[Series]:
    """Every test x metric x environment-key series matching ``filters`` (test, metric, branch, tier,
    env_key, project), one point per commit and fingerprint, in commit order.

    Several runs at one commit (repeats, a bisect, a re-run) become one point: the median of their
    values, with all their repeats as samples.
    """
    with _collector_paused():
        return _load_series(store, filters)


def _load_series(store: Store, filters: Mapping[str, Any]) -> list[Series]:
    rows = store.series(**filters)
    if not rows:
        return []
    ranked, _ = _in_commit_order(rows, store.first_parent_links)
    keys = list(map(_SERIES_KEY, ranked))
    grouped: dict[tuple[str, str, str], list[SeriesRow]] = {}
    if len(set(keys)) == 1:
        grouped[keys[0]] = ranked
    else:
        for key, row in zip(keys, ranked, strict=True):
            group = grouped.get(key)
            if group is None:
                grouped[key] = [row]
            else:
                group.append(row)
    out = []
    for (test, metric, env_key), series_rows in grouped.items():
        points, last = _points(series_rows)
        directions = set(map(_DIRECTION, series_rows)) - {None}
        out.append(
            Series(
                test=test,
                metric=metric,
                env_key=env_key,
                points=points,
                unit=last.unit,
                higher_is_better=directions.pop() if len(directions) == 1 else None,
            )
        )
    out.sort(key=lambda s: (s.test, s.metric, s.env_key))
    return out


def history_frame(store: Store, **filters: Any) -> pd.DataFrame:
    """Measurements matching ``filters`` (test, metric, branch, tier, env_key, project) in commit order.

    ``last=N`` keeps the last N commits; ``since``/``until`` (SHA prefixes) cut the commit range.
    """
    import pandas as pd

    last = filters.pop("last", None)
    since = filters.pop("since", None)
    until = filters.pop("until", None)
    with _collector_paused():
        rows, position = _in_commit_order(store.series(**filters), store.first_parent_links)
    ranked = [(position[r.sha], r) for r in rows]
    records = [
        {
            "position": pos,
            "sha": r.sha,
            "subject": r.subject,
            "committed_at": r.committed_at,
            "branch": r.branch,
            "tier": r.tier,
            "env_key": r.env_key,
            "run_id": r.run_id,
            "started_at": r.started_at,
            "test": r.test,
            "metric": r.metric,
            "value": r.value,
            "unit": r.unit,
            "higher_is_better": r.higher_is_better,
            "n": len(r.samples) or 1,
            "iqr": r.iqr,
            "support": r.support,
            "samples": list(r.samples),
        }
        for pos, r in ranked
    ]
    frame = pd.DataFrame.from_records(records, columns=list(HISTORY_COLUMNS))
    if since is not None:
        start = frame.loc[frame["sha"].str.startswith(since), "position"]
        frame = frame[frame["position"] >= (start.min() if len(start) else len(frame) + 1)]
    if until is not None:
        end = frame.loc[frame["sha"].str.startswith(until), "position"]
        frame = frame[frame["position"] <= (end.max() if len(end) else -1)]
    if last is not None:
        keep = sorted(frame["position"].unique())[-int(last) :] if int(last) > 0 else []
        frame = frame[frame["position"].isin(keep)]
    result: pd.DataFrame = frame.reset_index(drop=True)
    return result


def history(
    test: str | None = None,
    metric: str | None = None,
    *,
    branch: str | None = None,
    tier: str | None = None,
    env_key: str | None = None,
    project: str | None = None,
    since: str | None = None,
    until: str | None = None,
    last: int | None = None,
    store: str | None = None,
    project_dir: str | None = None,
) -> pd.DataFrame:
    """The recorded measurements as a pandas DataFrame, in commit order (see :data:`HISTORY_COLUMNS`).

    Filters are exact matches; ``since``/``until`` are SHA prefixes bounding the commit range; ``last``
    keeps the last N commits. The store is the configured one (``store`` overrides its URL).
    """
    import os
    from pathlib import Path

    from mltest.config import load_settings
    from mltest.store import open_store

    root = Path(project_dir).resolve() if project_dir is not None else Path.cwd()
    settings = load_settings(root, environ=os.environ, cli={"store_url": store})
    opened = open_store(settings.store_url, root=settings.project_root)
    try:
        return history_frame(
            opened,
            test=test,
            metric=metric,
            branch=branch,
            tier=tier,
            env_key=env_key,
            project=project,
            since=since,
            until=until,
            last=last,
        )
    finally:
        opened.close()
