"""Commit order from recorded first-parent history, and the history DataFrame.

Order is the recorded first-parent history, not timestamps: each run stores the first-parent chain
its checkout knew, so a later shallow clone still lands in the right place. Where no recorded link
connects two commits (a force-push, a clone too shallow), commit time decides, then run time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mltest.model import Series, SeriesPoint
from mltest.store import SeriesRow, Store

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HISTORY_COLUMNS", "commit_order", "history", "history_frame", "load_series"]

MAX_WALK = 100_000

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
    for sha in commits:
        parent = links.get(sha)
        seen = {sha}  # a cycle of unrecorded links (rewritten history) ends the walk at once
        while parent is not None and parent not in commits and parent not in seen and len(seen) <= MAX_WALK:
            seen.add(parent)
            parent = links.get(parent)
        if parent is not None and parent in commits and parent != sha:
            before[sha] = parent
    children: dict[str, list[str]] = {}
    for child, parent in before.items():
        children.setdefault(parent, []).append(child)
    ready = [(commits[sha], sha) for sha in commits if sha not in before]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, sha = heapq.heappop(ready)
        order.append(sha)
        for child in children.get(sha, ()):
            heapq.heappush(ready, (commits[child], child))
    if len(order) < len(commits):  # a cycle in recorded links (rewritten history): fall back to the key
        seen = set(order)
        order += sorted((s for s in commits if s not in seen), key=lambda s: (commits[s], s))
    return order


def ordered_rows(rows: Iterable[SeriesRow], links: Mapping[str, str]) -> list[tuple[int, SeriesRow]]:
    rows = list(rows)
    keys: dict[str, str] = {}
    for row in rows:
        key = row.committed_at or row.started_at
        keys[row.sha] = min(keys.get(row.sha, key), key)
    position = {sha: i for i, sha in enumerate(commit_order(keys, links))}
    ranked = sorted(rows, key=lambda r: (position[r.sha], r.started_at, r.run_id, r.test, r.metric))
    return [(position[r.sha], r) for r in ranked]


def load_series(store: Store, **filters: Any) -> list[Series]:
    """Every test x metric x environment-key series matching ``filters`` (test, metric, branch, tier,
    env_key, project), one point per commit and fingerprint, in commit order.

    Several runs at one commit (repeats, a bisect, a re-run) become one point: the median of their
    values, with all their repeats as samples.
    """
    ranked = ordered_rows(store.series(**filters), store.first_parent_links())
    grouped: dict[tuple[str, str, str], dict[tuple[str, str], list[SeriesRow]]] = {}
    for _, row in ranked:
        points = grouped.setdefault((row.test, row.metric, row.env_key), {})
        points.setdefault((row.sha, row.fingerprint), []).append(row)
    out = []
    for (test, metric, env_key), points in grouped.items():
        built = []
        for (sha, fingerprint), rows in points.items():
            values = sorted(r.value for r in rows)
            mid = len(values) // 2
            value = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
            samples = tuple(x for r in rows for x in (r.samples or (r.value,))) if len(rows) > 1 else rows[0].samples
            supports = [r.support for r in rows if r.support]
            built.append(
                SeriesPoint(
                    sha=sha,
                    value=value,
                    samples=samples,
                    support=max(supports) if supports else None,  # one test set, measured again
                    fingerprint=fingerprint,
                    subject=rows[0].subject,
                    runs=len(rows),
                    committed_at=rows[0].committed_at,
                )
            )
        last = next(reversed(next(reversed(points.values()))))
        directions = {r.higher_is_better for rows in points.values() for r in rows} - {None}
        out.append(
            Series(
                test=test,
                metric=metric,
                env_key=env_key,
                points=tuple(built),
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
    ranked = ordered_rows(store.series(**filters), store.first_parent_links())
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
