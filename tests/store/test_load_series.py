"""load_series against a plain reference (the algorithm it had before its fast paths), on seeded random
histories: several runs at one commit, two fingerprints and environment keys, unmeasured commits,
commits without links, rewritten history (a cycle), ties of time. Every backend; SQL reads only the
links its commits need (``first_parent_links(shas)``), the reference all of them."""

from __future__ import annotations

import gc
import heapq
import random
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from mltest.model import Commit, Environment, Measurement, Run, Series, SeriesPoint, TestResult
from mltest.store import SeriesRow, Store, open_store
from mltest.store.history import commit_order, history_frame, load_series


# ----------------------------------------------------------------------------- the reference
def reference_order(commits: Mapping[str, str], links: Mapping[str, str]) -> list[str]:
    before: dict[str, str] = {}
    for sha in commits:
        parent = links.get(sha)
        seen = {sha}
        while parent is not None and parent not in commits and parent not in seen:
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
    if len(order) < len(commits):
        seen = set(order)
        order += sorted((s for s in commits if s not in seen), key=lambda s: (commits[s], s))
    return order


def reference_load(rows: list[SeriesRow], links: Mapping[str, str]) -> list[Series]:
    keys: dict[str, str] = {}
    for row in rows:
        key = row.committed_at or row.started_at
        keys[row.sha] = min(keys.get(row.sha, key), key)
    position = {sha: i for i, sha in enumerate(reference_order(keys, links))}
    ranked = sorted(rows, key=lambda r: (position[r.sha], r.started_at, r.run_id, r.test, r.metric))
    grouped: dict[tuple[str, str, str], dict[tuple[str, str], list[SeriesRow]]] = {}
    for row in ranked:
        grouped.setdefault((row.test, row.metric, row.env_key), {}).setdefault((row.sha, row.fingerprint), []).append(
            row
        )
    out = []
    for (test, metric, env_key), points in grouped.items():
        built = []
        for (sha, fingerprint), runs in points.items():
            values = sorted(r.value for r in runs)
            mid = len(values) // 2
            value = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
            samples = tuple(x for r in runs for x in (r.samples or (r.value,))) if len(runs) > 1 else runs[0].samples
            supports = [r.support for r in runs if r.support]
            built.append(
                SeriesPoint(
                    sha=sha,
                    value=value,
                    samples=samples,
                    support=max(supports) if supports else None,
                    fingerprint=fingerprint,
                    subject=runs[0].subject,
                    runs=len(runs),
                    committed_at=runs[0].committed_at,
                )
            )
        last = next(reversed(next(reversed(points.values()))))
        directions = {r.higher_is_better for runs in points.values() for r in runs} - {None}
        out.append(
            Series(test, metric, env_key, tuple(built), last.unit, directions.pop() if len(directions) == 1 else None)
        )
    out.sort(key=lambda s: (s.test, s.metric, s.env_key))
    return out


# ----------------------------------------------------------------------------- random histories
ENVIRONMENTS = [
    Environment("3.11", "linux", "h1", "cpu", 8, "0.1", gpu_model="A100", gpu_count=1, driver="535"),
    Environment("3.11", "linux", "h2", "cpu", 8, "0.1", gpu_model="A100", gpu_count=1, driver="550"),  # same key
    Environment("3.11", "linux", "h3", "cpu", 8, "0.1"),  # another key
]


def random_history(store: Store, seed: int, commits: int = 40) -> None:
    rng = random.Random(seed)
    shas = [f"{seed:04d}{i:036d}" for i in range(commits)]
    for i, sha in enumerate(shas):
        if rng.random() < 0.3:  # not measured: its children's ancestry walks through it
            continue
        for repeat in range(rng.choice([1, 1, 1, 2, 3]) if seed % 2 else 1):  # even seeds: one run per commit
            depth = rng.choice([0, 1, 3, 50])
            ancestry = tuple(reversed(shas[max(0, i - depth) : i]))
            if seed % 5 == 0 and i == commits - 1:
                ancestry = (shas[i - 2], sha)  # rewritten history: a link back to itself through another
            commit = Commit(
                sha,
                rng.choice(["main", "main", "main", "dev"]),
                parents=(shas[i - 1],) if i and rng.random() < 0.5 else (),
                committed_at=None if rng.random() < 0.2 else f"2024-01-{1 + i % 28:02d}T{rng.randint(0, 1):02d}:00",
                subject=rng.choice(["fix", "feat", None]),
                ancestry=ancestry,
            )
            run_id = f"run-{seed}-{i}-{repeat}"
            run = Run(run_id, "proj", "integration", commit, rng.choice(ENVIRONMENTS), f"2024-02-{1 + i % 3:02d}")
            store.begin_run(run)
            measurements = [
                Measurement(
                    test,
                    metric,
                    rng.gauss(1, 0.1),
                    unit=rng.choice(["s", None]),
                    higher_is_better=rng.choice([None, False, False]),
                    samples=tuple(rng.gauss(1, 0.1) for _ in range(rng.choice([0, 1, 3]))),
                    support=rng.choice([None, 0, 100, 200]),
                )
                for test in ("t::a", "t::b")
                for metric in ("step_time", "loss")
                if rng.random() < 0.8
            ]
            store.add_results(run_id, [TestResult("t::a", "passed", 1.0)], measurements)
            store.finish_run(run_id, "passed", "2024-03-01")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store("memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'r.db'}")
    try:
        yield opened
    finally:
        opened.close()


FILTERS = [
    {},
    {"branch": "main"},
    {"test": "t::a", "metric": "step_time", "branch": "main"},
    {"test": "t::b", "metric": "loss", "branch": "dev"},
    {"test": "t::a"},
    {"env_key": "A100 x1", "branch": "main"},
]


@pytest.mark.parametrize("seed", range(12))
def test_load_series_is_the_reference(store: Store, seed: int) -> None:
    random_history(store, seed)
    links = store.first_parent_links()
    for filters in FILTERS:
        assert load_series(store, **filters) == reference_load(store.series(**filters), links), filters


@pytest.mark.parametrize("seed", range(6))
def test_history_frame_is_in_the_reference_order(store: Store, seed: int) -> None:
    random_history(store, seed)
    links = store.first_parent_links()
    rows = store.series(branch="main")
    keys: dict[str, str] = {}
    for row in rows:
        key = row.committed_at or row.started_at
        keys[row.sha] = min(keys.get(row.sha, key), key)
    position = {sha: i for i, sha in enumerate(reference_order(keys, links))}
    want = sorted(rows, key=lambda r: (position[r.sha], r.started_at, r.run_id, r.test, r.metric))
    frame = history_frame(store, branch="main")
    assert list(frame["run_id"]) == [r.run_id for r in want]
    assert list(frame["position"]) == [position[r.sha] for r in want]


@pytest.mark.parametrize("seed", range(40))
def test_commit_order_is_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    shas = [f"c{i:03d}" for i in range(30)]
    links = {child: parent for child, parent in zip(shas[1:], shas, strict=False) if rng.random() < 0.8}
    for _ in range(rng.randint(0, 4)):  # branches off the chain, and now and then a cycle
        links[f"x{rng.randint(0, 99):03d}"] = rng.choice(shas)
        if rng.random() < 0.3:
            a, b = rng.sample(shas, 2)
            links[a] = b
    commits = {s: rng.choice(["k1", "k2", "k3"]) for s in rng.sample([*shas, *links], rng.randint(0, 35))}
    assert commit_order(commits, links) == reference_order(commits, links)


class _FailingStore:
    """A store whose series read fails (what a connection lost mid-read looks like)."""

    def series(self, **_filters: object) -> list[SeriesRow]:
        raise OSError("connection lost")


def test_the_collector_is_paused_only_while_reading(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    random_history(store, 0)
    seen: list[bool] = []
    real = store.series

    def spy(**filters: object) -> list[SeriesRow]:
        seen.append(gc.isenabled())
        return real(**filters)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "series", spy)
    assert gc.isenabled()
    assert load_series(store, branch="main")
    history_frame(store, branch="main")
    assert seen == [False, False]  # paused while the rows are built
    assert gc.isenabled()  # and on again after
    with pytest.raises(OSError, match="connection lost"):
        load_series(_FailingStore())  # type: ignore[arg-type]
    assert gc.isenabled()  # on again after an error too
    gc.disable()
    try:
        load_series(store, branch="main")
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()
