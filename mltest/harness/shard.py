"""Deterministic sharding of the selected tests across N CI runners, balanced by recorded durations.

Every runner computes the split on its own, so the split must depend only on what every runner sees
alike: the set of selected node ids and the durations read from the results store. The durations are
the median of each test's passed results in the last :data:`DURATION_RUNS` finished runs of the same
tier on the main branch, leaving out runs at the commit under test: a shard that finishes and records
early (or a re-run of one failed shard) cannot change the split of its siblings.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mltest.errors import MltestError

if TYPE_CHECKING:
    from mltest.config import Settings

__all__ = [
    "DURATION_RUNS",
    "FALLBACK_SECONDS",
    "Durations",
    "ShardPlan",
    "assign_shards",
    "fmt_seconds",
    "load_durations",
    "plan_shards",
]

DURATION_RUNS = 20
"""How many recent finished runs of the main branch the durations come from (a sharded nightly records
one run per shard: 20 runs of a 4-shard nightly are 5 nights, about 5 samples per test)."""
FALLBACK_SECONDS = 1.0
"""What a test weighs when no test of the selection has a recorded duration."""


def assign_shards(
    nodeids: Sequence[str],
    total: int,
    durations: Mapping[str, float] | None = None,
    default_duration: float = FALLBACK_SECONDS,
) -> list[int]:
    """The 0-based shard of each node id, so that every test lands in exactly one shard.

    Longest-processing-time first: tests sorted by (duration descending, node id) go one by one to
    the shard with the least expected time (lowest index on ties). With no durations every test
    weighs the same and this is a round-robin over the sorted node ids. The result depends only on
    the set of node ids (and their durations), never on collection order, so every runner (and every
    xdist worker) computes the same split.
    """
    if total < 1:
        raise ValueError(f"shard count must be >= 1, got {total}")
    durations = durations or {}
    weight = {nid: durations.get(nid, default_duration) for nid in nodeids}
    order = sorted(set(nodeids), key=lambda nid: (-weight[nid], nid))
    heap = [(0.0, index) for index in range(total)]
    shard_of: dict[str, int] = {}
    for nid in order:
        load, index = heapq.heappop(heap)
        shard_of[nid] = index
        heapq.heappush(heap, (load + weight[nid], index))
    return [shard_of[nid] for nid in nodeids]


@dataclass(frozen=True)
class Durations:
    """Recorded durations for sharding, and where they came from (or why there are none)."""

    seconds: Mapping[str, float]
    source: str
    """For the summary: ``the last 20 runs of main (integration tier)``."""
    warning: str | None = None
    """Set when the store could not be read: the split falls back to counting tests."""


@dataclass(frozen=True)
class ShardPlan:
    """The split of one selection into ``total`` shards, with the expected time of each."""

    assignment: tuple[int, ...]
    """0-based shard of each node id, in the order they were given."""
    loads: tuple[float, ...]
    """Expected seconds of each shard."""
    counts: tuple[int, ...]
    known: int
    """How many of the selected tests have a recorded duration."""
    fallback: float
    """Seconds assumed for each test without one: the median of the known ones, else 1 s."""


def plan_shards(nodeids: Sequence[str], total: int, durations: Mapping[str, float]) -> ShardPlan:
    """:func:`assign_shards` over ``durations``; a test without a recorded duration weighs the median of
    the recorded durations of the selection (1 s when none is known)."""
    unique = sorted(set(nodeids))
    known = [durations[nid] for nid in unique if nid in durations]
    fallback = float(statistics.median(known)) if known else FALLBACK_SECONDS
    assignment = assign_shards(nodeids, total, durations, fallback)
    shard_of = dict(zip(nodeids, assignment, strict=True))
    loads = [0.0] * total
    counts = [0] * total
    for nid in unique:  # summed in one order: the same floats on every runner
        loads[shard_of[nid]] += durations.get(nid, fallback)
        counts[shard_of[nid]] += 1
    return ShardPlan(tuple(assignment), tuple(loads), tuple(counts), len(known), fallback)


def fmt_seconds(seconds: float) -> str:
    """``45s``, ``4m12s``, ``1h02m``: expected times, rounded to the second."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def load_durations(settings: Settings, environ: Mapping[str, str]) -> Durations:
    """The recorded durations of the tests of ``settings.tier`` on the main branch; never raises: an
    unreadable store gives no durations and a one-line warning (the split then counts tests)."""
    from mltest.gitinfo import current_commit
    from mltest.store import open_store

    tier = None if settings.tier == "all" else settings.tier
    source = f"the last {DURATION_RUNS} runs of {settings.main_branch}" + (f" ({tier} tier)" if tier else "")
    try:
        sha = current_commit(settings.project_root, environ).commit.sha
        store = open_store(settings.store_url, root=settings.project_root)
        try:
            seconds = store.test_durations(
                project=settings.project_name,
                tier=tier,
                branch=settings.main_branch,
                runs=DURATION_RUNS,
                exclude_sha=sha,
            )
        finally:
            store.close()
    except MltestError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Durations({}, source, f"shard durations not read ({first}); shards split by test count")
    return Durations(seconds, source)
