"""The store contract: memory, a SQLite file and a real PostgreSQL server behave the same.

One suite, parametrized over the backends; then what only the SQL backends have (schema versions and
migrations, foreign databases), URL errors, and concurrent writers from several processes.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pgserver
import pytest
import sqlalchemy as sa

from mltest.errors import BackendUnavailable, StoreError
from mltest.model import SCHEMA_VERSION, Acknowledgement, Commit, Environment, Measurement, Run, TestResult, utc_now
from mltest.store import SeriesRow, Store, open_store, redact_url
from mltest.store.history import commit_order, history_frame
from mltest.store.sql import MIGRATIONS, env_id

BACKENDS = ["memory", "sqlite", "postgresql"]
SQL_BACKENDS = ["sqlite", "postgresql"]


# ----------------------------------------------------------------------------- factories
def sha(char: str) -> str:
    """A 40-character SHA made of one repeated hex digit: readable, and unique by its first character."""
    return char * 40


def ts(day: int, second: int = 0) -> str:
    """An ISO 8601 UTC timestamp in January 2024 (sorts as text, like utc_now)."""
    return f"2024-01-{day:02d}T00:00:{second:02d}.000000+00:00"


def make_env(**overrides: Any) -> Environment:
    fields: dict[str, Any] = {
        "python": "3.11",
        "platform": "linux-x86_64",
        "hostname": "h",
        "cpu_model": "cpu",
        "cpu_count": 2,
        "mltest_version": "0.1.0",
        "flags": (("seed", "0"),),
    }
    fields.update(overrides)
    return Environment(**fields)


def make_run(
    run_id: str,
    commit_sha: str = sha("a"),
    *,
    branch: str | None = "main",
    parents: tuple[str, ...] = (),
    ancestry: tuple[str, ...] = (),
    committed_at: str | None = None,
    subject: str | None = None,
    started_at: str | None = None,
    project: str = "proj",
    tier: str = "integration",
    environment: Environment | None = None,
    **run_fields: Any,
) -> Run:
    commit = Commit(
        sha=commit_sha,
        branch=branch,
        parents=parents,
        ancestry=ancestry,
        committed_at=committed_at,
        subject=subject,
    )
    return Run(
        run_id=run_id,
        project=project,
        tier=tier,
        commit=commit,
        environment=environment or make_env(),
        started_at=started_at or utc_now(),
        **run_fields,
    )


def raw_engine(url: str) -> sa.Engine:
    """A plain SQLAlchemy engine on a store URL, bypassing mltest (to build or tamper with databases)."""
    if url.startswith("postgresql://"):
        return sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    return sa.create_engine(url)


def execute(url: str, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
    engine = raw_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params or [{}])
    finally:
        engine.dispose()


def open_refused(url: str, root: Path) -> StoreError:
    """Open a store that must be refused, and return the StoreError (warnings stay errors here:
    a refused open that leaked a connection would surface as a ResourceWarning)."""
    with pytest.raises(StoreError) as caught:
        open_store(url, root=root)
    gc.collect()
    return caught.value


# ----------------------------------------------------------------------------- fixtures
def url_for(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"  # sqlite:////abs/path.db: a real file
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(backend, request, tmp_path)


@pytest.fixture
def store(url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(url, root=tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(str(request.param), request, tmp_path)


# ============================================================================= the contract
def test_begin_run_then_get_run_round_trips_the_run(store: Store) -> None:
    environment = make_env(
        torch="2.3.0",
        cuda="12.1",
        cudnn="8902",
        gpu_model="NVIDIA A100-SXM4-80GB",
        gpu_count=2,
        driver="550.54",
        container_image="ghcr.io/acme/train:1",
        flags=(("CUBLAS_WORKSPACE_CONFIG", ":4096:8"), ("seed", "0")),
    )
    commit = Commit(
        sha=sha("a"),
        branch="main",
        parents=(sha("b"), sha("c")),
        author="Ada <ada@example.com>",
        authored_at="2024-01-01T10:00:00+01:00",
        committed_at="2024-01-01T10:05:00+01:00",
        subject="train faster",
    )
    run = Run(
        run_id="r1",
        project="proj",
        tier="integration",
        commit=commit,
        environment=environment,
        started_at=utc_now(),
        ci_url="https://ci.example/jobs/1",
        hostname="runner-1",
        pid=4242,
    )
    store.begin_run(run)
    got = store.get_run("r1")
    assert got == run
    assert got is not None
    assert got.status == "running"
    assert got.finished_at is None
    assert got.environment.flags == (("CUBLAS_WORKSPACE_CONFIG", ":4096:8"), ("seed", "0"))
    assert got.environment.key == "NVIDIA A100-SXM4-80GB x2"
    assert store.runs() == [run]
    assert store.get_run("no-such-run") is None


def test_ancestry_is_stored_as_links_not_on_the_run(store: Store) -> None:
    """Every backend returns the run's commit without ``ancestry``: that chain lives in the links."""
    run = make_run("r1", sha("d"), parents=(sha("c"),), ancestry=(sha("c"), sha("b")))
    store.begin_run(run)
    got = store.get_run("r1")
    assert got is not None
    assert got.commit == dataclasses.replace(run.commit, ancestry=())
    assert store.first_parent_links() == {sha("d"): sha("c"), sha("c"): sha("b")}


def test_begin_run_is_idempotent_and_a_replay_changes_nothing(store: Store) -> None:
    run = make_run("r1", started_at=ts(1))
    store.begin_run(run)
    store.begin_run(run)
    assert store.runs() == [run]
    store.finish_run("r1", "passed", ts(2))
    store.begin_run(run)  # a replayed journal must not reopen a finished run
    store.begin_run(dataclasses.replace(run, hostname="elsewhere", pid=1))
    runs = store.runs()
    assert len(runs) == 1
    assert runs[0] == dataclasses.replace(run, status="passed", finished_at=ts(2))


RESULTS = [
    TestResult("t.py::test_b", "passed", 0.5),
    TestResult("t.py::test_a", "failed", 1.25, attempt=0),
    TestResult("t.py::test_a", "passed", 0.75, attempt=1, flaky=True),
]
MEASUREMENTS = [
    Measurement("t.py::test_b", "loss", 0.3, higher_is_better=None, samples=(0.3,)),
    Measurement(
        "t.py::test_a", "step_time", 0.012, unit="s", higher_is_better=False, samples=(0.011, 0.012, 0.014), iqr=0.0015
    ),
    Measurement("t.py::test_a", "accuracy", 0.91, higher_is_better=True, support=1000),
]


def test_add_results_upserts_and_orders(store: Store) -> None:
    store.begin_run(make_run("r1"))
    store.begin_run(make_run("r2"))
    store.add_results("r1", RESULTS, MEASUREMENTS)
    store.add_results("r1", RESULTS, MEASUREMENTS)  # the same rows again: still one row each
    by_test_attempt = [RESULTS[1], RESULTS[2], RESULTS[0]]
    by_test_metric = [MEASUREMENTS[2], MEASUREMENTS[1], MEASUREMENTS[0]]
    assert store.results("r1") == by_test_attempt
    assert store.run_measurements("r1") == by_test_metric
    assert store.results("r2") == []
    assert store.run_measurements("r2") == []

    # Rewritten with new values: the new values replace the old rows.
    rerun = TestResult("t.py::test_a", "failed", 2.0, attempt=1, flaky=False)
    better = dataclasses.replace(MEASUREMENTS[2], value=0.93, support=2000)
    store.add_results("r1", [rerun], [better])
    assert store.results("r1") == [RESULTS[1], rerun, RESULTS[0]]
    assert store.run_measurements("r1") == [better, MEASUREMENTS[1], MEASUREMENTS[0]]


def test_measurement_fields_round_trip(store: Store) -> None:
    store.begin_run(make_run("r1"))
    store.add_results("r1", [], MEASUREMENTS)
    got = {m.metric: m for m in store.run_measurements("r1")}
    assert got["step_time"].samples == (0.011, 0.012, 0.014)
    assert isinstance(got["step_time"].samples, tuple)
    assert got["step_time"].iqr == 0.0015
    assert got["step_time"].unit == "s"
    assert got["step_time"].higher_is_better is False
    assert got["accuracy"].higher_is_better is True
    assert got["accuracy"].support == 1000
    assert got["accuracy"].samples == ()
    assert got["accuracy"].unit is None
    assert got["loss"].higher_is_better is None
    assert got["loss"].iqr is None
    assert got["loss"].support is None
    flaky = {(r.test, r.attempt): r.flaky for r in store.results("r1")}
    assert flaky == {}
    store.add_results("r1", RESULTS, [])
    assert [type(r.flaky) for r in store.results("r1")] == [bool, bool, bool]
    assert [r.flaky for r in store.results("r1")] == [False, True, False]


def test_add_results_with_a_row_repeated_in_one_batch_keeps_the_last(store: Store) -> None:
    store.begin_run(make_run("r1"))
    first, last = RESULTS[0], dataclasses.replace(RESULTS[0], outcome="failed", duration=9.0)
    m_first, m_last = MEASUREMENTS[0], dataclasses.replace(MEASUREMENTS[0], value=0.1)
    store.add_results("r1", [first, last], [m_first, m_last])
    assert store.results("r1") == [last]
    assert store.run_measurements("r1") == [m_last]


def test_finish_run_and_mark_aborted(store: Store) -> None:
    for run_id in ("r1", "r2", "r3", "r4"):
        store.begin_run(make_run(run_id, started_at=ts(1)))
    store.finish_run("r1", "passed", ts(2))
    store.finish_run("r4", "failed", ts(3))
    first = store.get_run("r1")
    assert first is not None
    assert (first.status, first.finished_at) == ("passed", ts(2))

    store.mark_aborted(["r1", "r2", "r4", "no-such-run"], ts(5))
    store.mark_aborted([], ts(6))
    state = {run.run_id: (run.status, run.finished_at) for run in store.runs()}
    assert state == {
        "r1": ("passed", ts(2)),  # finished: untouched
        "r2": ("aborted", ts(5)),  # was running: aborted
        "r3": ("running", None),  # not named: untouched
        "r4": ("failed", ts(3)),
    }


def test_runs_filters_by_branch_and_project_newest_first_with_limit(store: Store) -> None:
    layout = [  # run_id, branch, project, started_at
        ("m1", "main", "p1", ts(1)),
        ("d1", "dev", "p1", ts(2)),
        ("m2", "main", "p2", ts(3)),
        ("m3", "main", "p1", ts(4)),
        ("m4", "main", "p1", ts(4)),  # same start as m3: run_id breaks the tie
        ("n1", None, "p1", ts(5)),
    ]
    for run_id, branch, project, started in layout:
        store.begin_run(make_run(run_id, branch=branch, project=project, started_at=started))

    def ids(**kwargs: Any) -> list[str]:
        return [run.run_id for run in store.runs(**kwargs)]

    assert ids() == ["n1", "m3", "m4", "m2", "d1", "m1"]
    assert ids(branch="main") == ["m3", "m4", "m2", "m1"]
    assert ids(branch="dev") == ["d1"]
    assert ids(project="p2") == ["m2"]
    assert ids(branch="main", project="p1") == ["m3", "m4", "m1"]
    assert ids(branch="nope") == []
    assert ids(limit=2) == ["n1", "m3"]
    assert ids(branch="main", limit=1) == ["m3"]


def test_series_filters_and_joins_commit_and_environment(store: Store) -> None:
    gpu = make_env(gpu_model="H100", gpu_count=1)
    runs = [
        make_run("r1", sha("1"), committed_at=ts(1), subject="one", started_at=ts(1, 1)),
        make_run("r2", sha("2"), committed_at=ts(2), subject="two", started_at=ts(2, 1), environment=gpu),
        make_run("r3", sha("3"), branch="dev", subject="three", started_at=ts(3, 1)),
        make_run("r4", sha("4"), tier="unit", started_at=ts(4, 1)),
        make_run("r5", sha("5"), project="other", started_at=ts(5, 1)),
    ]
    for run in runs:
        store.begin_run(run)
        store.add_results(
            run.run_id,
            [],
            [
                Measurement("t::train", "accuracy", 0.9, higher_is_better=True, support=100),
                Measurement("t::train", "step_time", 0.2, unit="s", samples=(0.1, 0.2, 0.3), iqr=0.1),
                Measurement("t::eval", "accuracy", 0.8),
            ],
        )

    def keys(**filters: Any) -> set[tuple[str, str, str]]:
        return {(row.run_id, row.test, row.metric) for row in store.series(**filters)}

    assert len(store.series()) == 15
    assert keys(test="t::eval") == {(r, "t::eval", "accuracy") for r in ("r1", "r2", "r3", "r4", "r5")}
    assert keys(metric="step_time") == {(r, "t::train", "step_time") for r in ("r1", "r2", "r3", "r4", "r5")}
    assert keys(test="t::train", metric="accuracy", branch="dev") == {("r3", "t::train", "accuracy")}
    assert {k[0] for k in keys(branch="main")} == {"r1", "r2", "r4", "r5"}
    assert {k[0] for k in keys(tier="unit")} == {"r4"}
    assert {k[0] for k in keys(env_key="H100 x1")} == {"r2"}
    assert {k[0] for k in keys(env_key="cpu: cpu x2")} == {"r1", "r3", "r4", "r5"}
    assert {k[0] for k in keys(project="other")} == {"r5"}
    assert {k[0] for k in keys(project="proj", branch="main", tier="integration")} == {"r1", "r2"}
    assert keys(test="t::nope") == set()

    [row] = store.series(test="t::train", metric="step_time", env_key="H100 x1")
    assert row == SeriesRow(
        run_id="r2",
        sha=sha("2"),
        branch="main",
        tier="integration",
        project="proj",
        env_key="H100 x1",
        started_at=ts(2, 1),
        committed_at=ts(2),
        subject="two",
        test="t::train",
        metric="step_time",
        value=0.2,
        unit="s",
        higher_is_better=None,
        samples=(0.1, 0.2, 0.3),
        iqr=0.1,
        support=None,
        fingerprint="H100 x1",
    )
    [acc] = store.series(test="t::train", metric="accuracy", branch="dev")
    assert (acc.subject, acc.committed_at, acc.higher_is_better, acc.support) == ("three", None, True, 100)


def test_acknowledgements_are_stored_replaced_and_listed(store: Store) -> None:
    assert store.acknowledgements() == []
    first = Acknowledgement("r-1", "bigger model", "alice", ts(1))
    store.add_acknowledgement(first)
    store.add_acknowledgement(Acknowledgement("r-2", "known flake", "bob", ts(2)))
    store.add_acknowledgement(first)  # idempotent
    assert store.acknowledgements() == [first, Acknowledgement("r-2", "known flake", "bob", ts(2))]
    replaced = Acknowledgement("r-1", "bigger model, confirmed", "carol", ts(3))
    store.add_acknowledgement(replaced)
    assert {a.target: a for a in store.acknowledgements()}["r-1"] == replaced


def test_first_parent_links_from_ancestry_or_parents(store: Store) -> None:
    assert store.first_parent_links() == {}
    store.begin_run(make_run("r1", sha("d"), parents=(sha("c"), sha("9")), ancestry=(sha("c"), sha("b"), sha("a"))))
    store.begin_run(make_run("r2", sha("f"), parents=(sha("e"), sha("8"))))  # no ancestry: first parent only
    store.begin_run(make_run("r3", sha("7")))  # neither: no link
    assert store.first_parent_links() == {
        sha("d"): sha("c"),
        sha("c"): sha("b"),
        sha("b"): sha("a"),
        sha("f"): sha("e"),
    }


def test_first_parent_links_of_some_commits_cover_their_paths(store: Store) -> None:
    """With shas: at least each one's first-parent path back to the nearest other one of them; the
    order commit_order makes of them is the one all the links give."""
    chain = [sha(c) for c in "0123456789ab"]  # oldest first
    store.begin_run(make_run("r1", chain[-1], ancestry=tuple(reversed(chain[:-1]))))
    store.begin_run(make_run("loop", sha("c"), parents=(sha("d"),)))
    store.begin_run(make_run("loop2", sha("d"), parents=(sha("c"),)))  # a cycle: rewritten history
    everything = store.first_parent_links()
    for wanted in (
        {chain[11], chain[8], chain[2]},  # walks through unmeasured commits
        set(chain),
        {chain[5]},  # alone: its path back to the first recorded commit
        {chain[11], sha("c"), sha("e")},  # a cycle, and a commit without links
        set(),
    ):
        got = store.first_parent_links(wanted)
        assert got.items() <= everything.items()
        keys = {s: "t" for s in wanted}
        assert commit_order(keys, got) == commit_order(keys, everything)
        for start in wanted:  # every link on the path is there
            step = everything.get(start)
            seen = {start}
            while step is not None and step not in wanted and step not in seen:
                assert step in got or everything.get(step) is None
                seen.add(step)
                step = everything.get(step)


SAMPLES = [
    (),
    (0.1,),
    (1e-300, 5e-324, -0.0, 1.7976931348623157e308, 0.1 + 0.2),
    (float("nan"), float("inf"), float("-inf")),
    tuple(float(i) / 7 for i in range(1000)),
]


@pytest.mark.parametrize("samples", SAMPLES, ids=["none", "one", "extremes", "non-finite", "a-thousand"])
def test_samples_round_trip_exactly(store: Store, samples: tuple[float, ...]) -> None:
    store.begin_run(make_run("r1"))
    store.add_results("r1", [], [Measurement("t::a", "m", 1.0, samples=samples)])
    [stored] = store.run_measurements("r1")
    [row] = store.series(test="t::a")
    for got in (stored.samples, row.samples):
        assert isinstance(got, tuple)
        assert [struct_bits(x) for x in got] == [struct_bits(x) for x in samples]  # bit for bit (NaN too)


def struct_bits(value: float) -> bytes:
    return struct.pack(">d", value)


def test_whole_number_samples_come_back_as_the_same_numbers(store: Store) -> None:
    store.begin_run(make_run("r1"))
    store.add_results("r1", [], [Measurement("t::a", "m", 2, samples=(1, 2, 3))])  # type: ignore[arg-type]
    [stored] = store.run_measurements("r1")
    assert stored.samples == (1, 2, 3)
    assert stored.value == 2


# ----------------------------------------------------------------------------- detection state
def test_detection_states_round_trip_and_missing_keys_are_absent(store: Store) -> None:
    assert store.detection_states([]) == {}
    assert store.detection_states(["t::a|loss|cpu"]) == {}
    store.save_detection_states({"t::a|loss|cpu": '{"length": 3}', "t::b|loss|cpu": "two"})
    assert store.detection_states(["t::a|loss|cpu", "t::b|loss|cpu", "t::c|loss|cpu"]) == {
        "t::a|loss|cpu": '{"length": 3}',
        "t::b|loss|cpu": "two",
    }
    assert store.detection_states(["t::b|loss|cpu", "t::b|loss|cpu"]) == {"t::b|loss|cpu": "two"}
    store.save_detection_states({})  # nothing to save: nothing changes
    assert store.detection_states(["t::a|loss|cpu"]) == {"t::a|loss|cpu": '{"length": 3}'}


def test_save_detection_states_overwrites(store: Store) -> None:
    store.save_detection_states({"a": "1", "b": "2"})
    store.save_detection_states({"a": "3", "c": "4", "": "the empty key"})
    assert store.detection_states(["a", "b", "c", ""]) == {"a": "3", "b": "2", "c": "4", "": "the empty key"}
    store.save_detection_states({"a": ""})
    assert store.detection_states(["a"]) == {"a": ""}


def test_a_thousand_detection_states_in_one_call(store: Store) -> None:
    states = {
        f"tests/test_{i:04d}.py::test_case[{i}]|step_time|cpu: x86 x16": json.dumps([i] * 50) for i in range(1000)
    }
    store.save_detection_states(states)
    assert store.detection_states(list(states)) == states
    some = list(states)[::97]
    assert store.detection_states([*some, "no such key"]) == {key: states[key] for key in some}
    store.save_detection_states({key: "again" for key in states})
    assert set(store.detection_states(list(states)).values()) == {"again"}


HOSTILE_KEYS = [
    "'; DROP TABLE detection_states; --",
    'tests/test_x.py::test_y["quoted", \\backslash]',
    "ünïcødé ✓ 测试 🚀 \u202e",
    "tab\tnew\nline\r\x1b[31mred\x1b[0m \x85\u2028",
    "%s %(name)s ? ?1 :name $1 {}",
    "x" * 5000,
    "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000)),  # 9 kB of UTF-8 that does not compress
]


def test_detection_state_keys_and_states_may_be_any_text(store: Store) -> None:
    states = {key: f"state of {key}" * 2 for key in HOSTILE_KEYS}
    store.save_detection_states(states)
    assert store.detection_states(HOSTILE_KEYS) == states
    assert store.detection_states(["'; DROP TABLE detection_states; --", "x" * 4999]) == {
        "'; DROP TABLE detection_states; --": states["'; DROP TABLE detection_states; --"]
    }


def test_clear_detection_states(store: Store) -> None:
    store.clear_detection_states()  # nothing saved yet: fine
    store.save_detection_states({"a": "1", "b": "2"})
    store.clear_detection_states()
    assert store.detection_states(["a", "b"]) == {}
    store.save_detection_states({"a": "3"})
    assert store.detection_states(["a", "b"]) == {"a": "3"}


def test_a_batch_with_a_bad_state_saves_nothing(store: Store) -> None:
    store.save_detection_states({"a": "1"})
    with pytest.raises(StoreError, match="must be text"):
        store.save_detection_states({"a": "2", "b": None})  # type: ignore[dict-item]
    with pytest.raises(StoreError, match="must be text"):
        store.save_detection_states({"a": "2", 3: "x"})  # type: ignore[dict-item]
    assert store.detection_states(["a", "b"]) == {"a": "1"}


def test_test_durations_are_medians_of_passed_results_in_the_last_finished_runs(store: Store) -> None:
    layout = [  # run_id, sha, branch, tier, project, started day, status, {test: (outcome, duration)}
        ("m1", "1", "main", "integration", "proj", 1, "passed", {"t::a": ("passed", 100.0)}),  # beyond runs=3
        ("m2", "2", "main", "integration", "proj", 2, "failed", {"t::a": ("passed", 2.0), "t::b": ("failed", 9.0)}),
        ("m3", "3", "main", "integration", "proj", 3, "passed", {"t::a": ("passed", 4.0), "t::b": ("passed", 1.0)}),
        ("m4", "4", "main", "integration", "proj", 4, "passed", {"t::a": ("passed", 3.0), "t::c": ("skipped", 0.0)}),
        ("run", "5", "main", "integration", "proj", 5, "running", {"t::a": ("passed", 50.0)}),  # not finished
        ("dev", "6", "dev", "integration", "proj", 6, "passed", {"t::a": ("passed", 60.0)}),
        ("unit", "7", "main", "unit", "proj", 6, "passed", {"t::a": ("passed", 70.0)}),
        ("other", "8", "main", "integration", "p2", 6, "passed", {"t::a": ("passed", 80.0)}),
        ("head", "9", "main", "integration", "proj", 7, "passed", {"t::a": ("passed", 90.0)}),  # excluded commit
    ]
    for run_id, char, branch, tier, project, day, status, results in layout:
        store.begin_run(make_run(run_id, sha(char), branch=branch, tier=tier, project=project, started_at=ts(day)))
        store.add_results(run_id, [TestResult(t, outcome, d) for t, (outcome, d) in results.items()], [])
        if status != "running":
            store.finish_run(run_id, status, ts(day, 30))

    def durations(**kwargs: Any) -> dict[str, float]:
        query = {"project": "proj", "tier": "integration", "branch": "main", "runs": 3, "exclude_sha": sha("9")}
        return store.test_durations(**{**query, **kwargs})

    # m2..m4: t::a passed in all three (median 3), t::b passed once, t::c only skipped (absent)
    assert durations() == {"t::a": 3.0, "t::b": 1.0}
    assert durations(runs=1) == {"t::a": 3.0}
    assert durations(runs=4) == {"t::a": 3.5, "t::b": 1.0}  # the median of 100, 2, 4, 3
    assert durations(runs=0) == {}
    assert durations(exclude_sha=None, runs=1) == {"t::a": 90.0}
    assert durations(branch="dev") == {"t::a": 60.0}
    assert durations(tier="unit") == {"t::a": 70.0}
    assert durations(project="p2") == {"t::a": 80.0}
    assert durations(project="nope") == {}
    assert durations(tier=None, branch=None, exclude_sha=None, runs=2) == {"t::a": 75.0}  # head, dev (run id order)
    assert durations(tier=None, branch=None, exclude_sha=None, runs=100)["t::a"] == 60.0


# ----------------------------------------------------------------------------- history order
def _record(store: Store, run: Run, value: float, test: str = "t::train", metric: str = "accuracy") -> None:
    store.begin_run(run)
    store.add_results(run.run_id, [TestResult(test, "passed", 1.0)], [Measurement(test, metric, value)])
    store.add_results(run.run_id, [], [Measurement(test, "other_metric", -value)])
    store.finish_run(run.run_id, "passed", run.started_at)


@pytest.fixture
def rebased_history(store: Store) -> Store:
    """main: A -> B -> C -> D, where C was rebased and carries the oldest commit time of all.

    Only D's run knows the first-parent chain (its ancestry); the others record no links at all.
    """
    a, b, c, d = sha("a"), sha("b"), sha("c"), sha("d")
    _record(store, make_run("ra", a, committed_at=ts(10), subject="A", started_at=ts(20)), 1.0)
    _record(store, make_run("rb", b, committed_at=ts(11), subject="B", started_at=ts(21)), 2.0)
    _record(store, make_run("rb2", b, committed_at=ts(11), subject="B", started_at=ts(22)), 2.5)  # a rerun of B
    _record(store, make_run("rc", c, committed_at=ts(1), subject="C", started_at=ts(23)), 3.0)
    _record(store, make_run("rd", d, committed_at=ts(13), subject="D", started_at=ts(24), ancestry=(c, b, a)), 4.0)
    _record(store, make_run("rx", sha("e"), branch="dev", committed_at=ts(12), started_at=ts(25)), 9.0)  # not main
    return store


def test_history_follows_recorded_first_parent_links_not_timestamps(rebased_history: Store) -> None:
    frame = history_frame(rebased_history, test="t::train", metric="accuracy", branch="main")
    assert list(frame["sha"]) == [sha("a"), sha("b"), sha("b"), sha("c"), sha("d")]
    assert list(frame["run_id"]) == ["ra", "rb", "rb2", "rc", "rd"]
    assert list(frame["position"]) == [0, 1, 1, 2, 3]
    assert list(frame["value"]) == [1.0, 2.0, 2.5, 3.0, 4.0]
    assert list(frame["subject"]) == ["A", "B", "B", "C", "D"]
    assert set(frame["metric"]) == {"accuracy"}


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"last": 2}, ["rc", "rd"]),
        ({"last": 3}, ["rb", "rb2", "rc", "rd"]),
        ({"last": 0}, []),
        ({"since": "bbbb"}, ["rb", "rb2", "rc", "rd"]),
        ({"until": "cccc"}, ["ra", "rb", "rb2", "rc"]),
        ({"since": "bbbb", "until": "cccc"}, ["rb", "rb2", "rc"]),
        ({"since": "bbbb", "last": 1}, ["rd"]),
        ({"since": "ffff"}, []),
        ({"until": "ffff"}, []),
    ],
)
def test_history_last_since_until(rebased_history: Store, window: dict[str, Any], expected: list[str]) -> None:
    frame = history_frame(rebased_history, test="t::train", metric="accuracy", branch="main", **window)
    assert list(frame["run_id"]) == expected


def test_history_falls_back_to_time_without_links(store: Store) -> None:
    # No run records ancestry or parents: nothing connects these commits, so commit time decides,
    # and a commit without a commit time sorts by its run's start.
    _record(store, make_run("rx", sha("1"), committed_at=ts(12), started_at=ts(20)), 1.0)
    _record(store, make_run("ry", sha("2"), committed_at=ts(11), started_at=ts(21)), 2.0)
    _record(store, make_run("rz", sha("3"), committed_at=None, started_at=ts(5)), 3.0)
    frame = history_frame(store, test="t::train", metric="accuracy", branch="main")
    assert list(frame["run_id"]) == ["rz", "ry", "rx"]
    assert list(frame["position"]) == [0, 1, 2]


# ============================================================================= SQL only
def test_fresh_store_has_the_current_schema_version(sql_url: str, tmp_path: Path) -> None:
    store = open_store(sql_url, root=tmp_path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        store.close()
    reopened = open_store(sql_url, root=tmp_path)  # reopening migrates nothing and loses nothing
    try:
        assert reopened.schema_version() == SCHEMA_VERSION
    finally:
        reopened.close()


def _build_v1_store(url: str) -> Run:
    """A database exactly as schema version 1 left it, with one finished run in the v1 shape."""
    step, statements = MIGRATIONS[0]
    assert step == 1
    environment = make_env()
    run = make_run(
        "old-run",
        sha("a"),
        parents=(sha("9"),),
        committed_at=ts(1),
        subject="before the migration",
        started_at=ts(1, 5),
        status="passed",
        finished_at=ts(1, 9),
        ci_url="https://ci.example/old",
        hostname="old-host",
        pid=7,
        environment=environment,
    )
    engine = raw_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
            conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '1')"))
            conn.execute(
                sa.text(
                    "INSERT INTO commits (sha, parents, author, authored_at, committed_at, subject) "
                    "VALUES (:sha, :parents, NULL, NULL, :committed_at, :subject)"
                ),
                {"sha": sha("a"), "parents": sha("9"), "committed_at": ts(1), "subject": "before the migration"},
            )
            conn.execute(
                sa.text("INSERT INTO environments (env_id, env_key, data) VALUES (:id, :key, :data)"),
                {
                    "id": env_id(environment),
                    "key": environment.key,
                    "data": json.dumps(dataclasses.asdict(environment), sort_keys=True),
                },
            )
            conn.execute(
                sa.text(
                    "INSERT INTO runs (run_id, project, tier, status, sha, branch, env_id, ci_url, started_at, "
                    "finished_at, hostname, pid) VALUES ('old-run', 'proj', 'integration', 'passed', :sha, 'main', "
                    ":env, 'https://ci.example/old', :started, :finished, 'old-host', 7)"
                ),
                {"sha": sha("a"), "env": env_id(environment), "started": ts(1, 5), "finished": ts(1, 9)},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO test_results (run_id, test, attempt, outcome, duration, flaky) "
                    "VALUES ('old-run', 't::train', 0, 'passed', 1.5, :flaky)"
                ),
                {"flaky": False},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO measurements (run_id, test, metric, value, unit, higher_is_better, samples, iqr, "
                    "support) VALUES ('old-run', 't::train', 'accuracy', 0.875, NULL, :hib, '[0.87, 0.875, 0.88]', "
                    "0.005, 64)"
                ),
                {"hib": True},
            )
    finally:
        engine.dispose()
    return run


def test_version_1_store_is_migrated_and_keeps_its_data(sql_url: str, tmp_path: Path) -> None:
    old_run = _build_v1_store(sql_url)
    store = open_store(sql_url, root=tmp_path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.get_run("old-run") == old_run
        assert store.runs() == [old_run]
        assert store.results("old-run") == [TestResult("t::train", "passed", 1.5, 0, False)]
        assert store.run_measurements("old-run") == [
            Measurement("t::train", "accuracy", 0.875, None, True, (0.87, 0.875, 0.88), 0.005, 64)
        ]
        [row] = store.series(test="t::train")
        assert (row.sha, row.subject, row.value) == (sha("a"), "before the migration", 0.875)
        assert store.first_parent_links() == {}  # v1 recorded no links
        # The v2 parts work on the migrated store: links, and the heartbeat column.
        store.begin_run(make_run("new-run", sha("b"), ancestry=(sha("a"),), started_at=ts(2)))
        store.add_results("new-run", [TestResult("t::train", "passed", 1.0)], [])
        assert store.first_parent_links() == {sha("b"): sha("a")}
        assert [r.run_id for r in store.runs()] == ["new-run", "old-run"]
    finally:
        store.close()
    engine = raw_engine(sql_url)
    try:
        with engine.connect() as conn:
            heartbeat = conn.execute(sa.text("SELECT heartbeat_at FROM runs WHERE run_id = 'new-run'")).scalar()
            version = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
    finally:
        engine.dispose()
    assert heartbeat is not None
    assert version == str(SCHEMA_VERSION)


V4_SAMPLES = {  # measurement -> its samples as versions 1 to 4 stored them (json.dumps) -> as read back
    "plain": ("[0.87, 0.875, 0.88]", (0.87, 0.875, 0.88)),
    "none": ("[]", ()),
    "whole": ("[1, 2, 3]", (1.0, 2.0, 3.0)),
    "non-finite": (
        "[NaN, Infinity, -Infinity, -0.0, 5e-324]",
        (float("nan"), float("inf"), float("-inf"), -0.0, 5e-324),
    ),
    "many": (json.dumps([i / 7 for i in range(1000)]), tuple(i / 7 for i in range(1000))),
}


def _build_v4_store(url: str) -> Run:
    """A database exactly as schema version 4 left it: one finished run with measurements whose samples
    are JSON text, links, an acknowledgement and a delivery."""
    environment = make_env(gpu_model="A100", gpu_count=1, driver="550")
    run = make_run(
        "v4-run",
        sha("b"),
        parents=(sha("a"),),
        committed_at=ts(1),
        subject="before v5",
        started_at=ts(1, 5),
        status="passed",
        finished_at=ts(1, 9),
        environment=environment,
    )
    engine = raw_engine(url)
    try:
        with engine.begin() as conn:
            for _, statements in MIGRATIONS[:4]:
                for statement in statements:
                    assert isinstance(statement, str)
                    conn.exec_driver_sql(statement)
            conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '4')"))
            conn.execute(
                sa.text("INSERT INTO commits (sha, parents, committed_at, subject) VALUES (:sha, :p, :at, :s)"),
                {"sha": sha("b"), "p": sha("a"), "at": ts(1), "s": "before v5"},
            )
            conn.execute(
                sa.text("INSERT INTO environments (env_id, env_key, data) VALUES (:id, :key, :data)"),
                {
                    "id": env_id(environment),
                    "key": environment.key,
                    "data": json.dumps(dataclasses.asdict(environment), sort_keys=True),
                },
            )
            conn.execute(
                sa.text(
                    "INSERT INTO runs (run_id, project, tier, status, sha, branch, env_id, started_at, finished_at, "
                    "heartbeat_at) VALUES ('v4-run', 'proj', 'integration', 'passed', :sha, 'main', :env, :started, "
                    ":finished, :started)"
                ),
                {"sha": sha("b"), "env": env_id(environment), "started": ts(1, 5), "finished": ts(1, 9)},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO measurements (run_id, test, metric, value, unit, higher_is_better, samples, iqr, "
                    "support) VALUES ('v4-run', 't::train', :metric, 0.5, 's', :hib, :samples, NULL, 8)"
                ),
                [{"metric": name, "hib": False, "samples": text} for name, (text, _) in V4_SAMPLES.items()],
            )
            conn.execute(
                sa.text("INSERT INTO commit_links (sha, first_parent) VALUES (:b, :a)"), {"b": sha("b"), "a": sha("a")}
            )
            conn.execute(sa.text("INSERT INTO acknowledgements VALUES ('r-1', 'known', 'ada', :at)"), {"at": ts(2)})
            conn.execute(sa.text("INSERT INTO deliveries VALUES ('gsheets://k/s', 'v4-run', :at)"), {"at": ts(3)})
    finally:
        engine.dispose()
    return run


def test_version_4_store_is_migrated_keeping_its_samples_exactly(sql_url: str, tmp_path: Path) -> None:
    old_run = _build_v4_store(sql_url)
    store = open_store(sql_url, root=tmp_path)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 5
        assert store.get_run("v4-run") == old_run
        measured = {m.metric: m for m in store.run_measurements("v4-run")}
        rows = {row.metric: row for row in store.series(test="t::train", branch="main")}
        assert set(measured) == set(rows) == set(V4_SAMPLES)
        for name, (_, samples) in V4_SAMPLES.items():
            for got in (measured[name].samples, rows[name].samples):
                assert [struct_bits(x) for x in got] == [struct_bits(x) for x in samples], name
        assert (measured["plain"].value, measured["plain"].unit, measured["plain"].support) == (0.5, "s", 8)
        assert measured["plain"].higher_is_better is False
        assert rows["plain"].fingerprint == "A100 x1, driver 550"
        assert store.first_parent_links() == {sha("b"): sha("a")}
        assert store.acknowledgements() == [Acknowledgement("r-1", "known", "ada", ts(2))]
        assert store.deliveries("gsheets://k/s") == {"v4-run": ts(3)}
        # What v5 adds works on the migrated store, and so does recording.
        store.save_detection_states({"t::train|plain|A100 x1": "{}"})
        assert store.detection_states(["t::train|plain|A100 x1"]) == {"t::train|plain|A100 x1": "{}"}
        store.begin_run(make_run("v5-run", sha("c"), ancestry=(sha("b"), sha("a")), started_at=ts(4)))
        store.add_results("v5-run", [], [Measurement("t::train", "plain", 0.25, samples=(0.2, 0.3))])
        assert [r.value for r in store.series(test="t::train", metric="plain", branch="main")] in (
            [0.5, 0.25],
            [0.25, 0.5],
        )
    finally:
        store.close()
    reopened = open_store(sql_url, root=tmp_path)  # migrated once: reopening changes nothing
    try:
        assert reopened.schema_version() == SCHEMA_VERSION
        assert len(reopened.run_measurements("v4-run")) == len(V4_SAMPLES)
        assert reopened.detection_states(["t::train|plain|A100 x1"]) == {"t::train|plain|A100 x1": "{}"}
    finally:
        reopened.close()
    if sql_url.startswith("sqlite"):  # the v5 layout: measurements clustered by run, no (test, metric) index
        engine = raw_engine(sql_url)
        try:
            with engine.connect() as conn:
                ddl = dict(conn.execute(sa.text("SELECT name, sql FROM sqlite_master")).all())
        finally:
            engine.dispose()
        assert "WITHOUT ROWID" in ddl["measurements"]
        assert "samples BLOB" in ddl["measurements"]
        assert "ix_measurements_series" not in ddl
        assert {"ix_runs_series", "ix_commits_series", "detection_states"} <= ddl.keys()


def test_a_failed_migration_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """Samples that are not a JSON list of numbers stop the v5 migration; the store stays at v4."""
    url = f"sqlite:///{tmp_path / 'results.db'}"
    _build_v4_store(url)
    execute(url, "UPDATE measurements SET samples = '{\"not\": \"a list\"}' WHERE metric = 'plain'")
    message = str(open_refused(url, tmp_path))
    assert "\n" not in message
    engine = raw_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == "4"
            assert conn.execute(sa.text("SELECT COUNT(*) FROM measurements")).scalar() == len(V4_SAMPLES)
    finally:
        engine.dispose()


def test_samples_that_are_not_numbers_are_a_store_error(sql_url: str, tmp_path: Path) -> None:
    store = open_store(sql_url, root=tmp_path)
    try:
        store.begin_run(make_run("r1"))
        with pytest.raises(StoreError, match="samples must be numbers"):
            store.add_results("r1", [], [Measurement("t::a", "m", 1.0, samples=("fast",))])  # type: ignore[arg-type]
        assert store.run_measurements("r1") == []
    finally:
        store.close()


def test_newer_schema_version_is_refused(sql_url: str, tmp_path: Path) -> None:
    open_store(sql_url, root=tmp_path).close()
    execute(sql_url, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    message = str(open_refused(sql_url, tmp_path))
    assert "newer mltest" in message
    assert "99" in message
    assert "\n" not in message
    # Refused means untouched: the version is still 99.
    engine = raw_engine(sql_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == "99"
    finally:
        engine.dispose()


def test_foreign_database_with_a_runs_table_is_refused(sql_url: str, tmp_path: Path) -> None:
    execute(sql_url, "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
    assert "not an mltest store" in str(open_refused(sql_url, tmp_path))


def test_a_refused_open_closes_its_connections(pg_url: str, pg_server: str, tmp_path: Path) -> None:
    open_store(pg_url, root=tmp_path).close()
    execute(pg_url, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    database = pg_url.rsplit("/", 1)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            with pytest.raises(StoreError, match="newer mltest"):
                open_store(pg_url, root=tmp_path)
            engine = raw_engine(pg_server + "/postgres")
            try:
                with engine.connect() as conn:
                    still_open = conn.execute(
                        sa.text("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = :db"), {"db": database}
                    ).scalar_one()
            finally:
                engine.dispose()
        finally:
            gc.collect()
    assert still_open == 0


def test_a_file_that_is_not_sqlite_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20, encoding="utf-8")
    message = str(open_refused(f"sqlite:///{path}", tmp_path))
    assert "\n" not in message
    assert str(path) in message
    assert path.read_text(encoding="utf-8").startswith("these are my notes")  # and it was left alone


def test_relative_sqlite_path_is_anchored_at_root(tmp_path: Path) -> None:
    store = open_store("sqlite:///.mltest/results.db", root=tmp_path)
    try:
        store.begin_run(make_run("r1"))
        assert store.get_run("r1") is not None
    finally:
        store.close()
    assert (tmp_path / ".mltest" / "results.db").is_file()


def test_postgres_scheme_alias_opens_the_same_database(pg_url: str, tmp_path: Path) -> None:
    first = open_store(pg_url, root=tmp_path)
    try:
        first.begin_run(make_run("r1", started_at=ts(1)))
    finally:
        first.close()
    alias = open_store("postgres://" + pg_url.split("://", 1)[1], root=tmp_path)
    try:
        assert [r.run_id for r in alias.runs()] == ["r1"]
    finally:
        alias.close()


# ----------------------------------------------------------------------------- URLs
@pytest.mark.parametrize(
    ("bad_url", "expected"),
    [
        ("mysql://x/y", "'mysql'"),
        ("results.db", "no scheme"),
        ("sqlite://", "names no file"),
        ("sqlite:///", "names no file"),
        ("sqlite:///:memory:", "names no file"),
    ],
)
def test_bad_store_urls_are_store_errors(bad_url: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(bad_url, root=tmp_path)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_sqlite_url_naming_a_directory_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    with pytest.raises(StoreError, match="directory"):
        open_store(f"sqlite:///{tmp_path / 'results'}", root=tmp_path)


def test_unreachable_postgresql_is_a_one_line_error_without_the_password(tmp_path: Path) -> None:
    port = pgserver.free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        open_store(f"postgresql://u:s3cret@127.0.0.1:{port}/db", root=tmp_path)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert isinstance(caught.value, BackendUnavailable)
    assert "\n" not in message
    assert "s3cret" not in message
    assert f"postgresql://u:***@127.0.0.1:{port}/db" in message


@pytest.mark.parametrize("bad_port", ["notaport", "99999"])
def test_postgresql_url_with_a_bad_port_is_a_store_error(bad_port: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        open_store(f"postgresql://u:s3cret@127.0.0.1:{bad_port}/db", root=tmp_path)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://u:s3cret@db.example:5432/results", "postgresql://u:***@db.example:5432/results"),
        ("postgresql://u:s3cret@db.example/results", "postgresql://u:***@db.example/results"),
        (
            "postgresql+psycopg://u:s3cret@db.example/results?sslmode=require",
            "postgresql+psycopg://u:***@db.example/results?sslmode=require",
        ),
        ("postgresql://u@db.example/results", "postgresql://u@db.example/results"),
        ("sqlite:////tmp/results.db", "sqlite:////tmp/results.db"),
        ("memory://", "memory://"),
    ],
)
def test_redact_url_removes_the_password(given: str, shown: str) -> None:
    assert redact_url(given) == shown
    assert "s3cret" not in redact_url(given)


def test_redact_url_keeps_an_ipv6_host_valid() -> None:
    assert redact_url("postgresql://u:s3cret@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"


def test_redact_url_removes_a_password_query_parameter() -> None:
    assert "s3cret" not in redact_url("postgresql://u@db.example/results?password=s3cret")


# ============================================================================= the server fixture
def test_missing_service_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLTEST_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        pgserver.service_missing(pgserver.MISSING_MESSAGE)
    monkeypatch.setenv("MLTEST_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install postgresql"):
        pgserver.service_missing(pgserver.MISSING_MESSAGE)


@pytest.mark.parametrize(("required", "outcome"), [(None, {"skipped": 1}), ("1", {"errors": 1})])
def test_pg_fixtures_without_server_binaries(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str | None, outcome: dict[str, int]
) -> None:
    monkeypatch.setattr(pgserver, "BIN_DIR", pytester.path / "no-postgresql-here")
    if required is None:
        monkeypatch.delenv("MLTEST_REQUIRE_SERVICES", raising=False)
    else:
        monkeypatch.setenv("MLTEST_REQUIRE_SERVICES", required)
    pytester.makeconftest(Path(__file__).parents[1].joinpath("pgfixtures.py").read_text(encoding="utf-8"))
    pytester.makepyfile(test_needs_pg="def test_it(pg_url):\n    raise AssertionError('never runs')\n")
    result = pytester.runpytest("-rsE", "-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines(["*PostgreSQL 15 server binaries not found: apt-get install postgresql*"])


def test_pg_url_is_a_fresh_database_on_a_loopback_server(pg_server: str, pg_url: str) -> None:
    assert pg_server.startswith("postgresql://postgres@127.0.0.1:")
    assert pg_url.startswith(pg_server + "/t_")
    engine = raw_engine(pg_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalar_one()
            listening = conn.execute(sa.text("SELECT current_setting('listen_addresses')")).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0
    assert listening == "127.0.0.1"


# ============================================================================= concurrency
WRITER = """
import sys, time
from pathlib import Path
from mltest.model import Commit, Environment, Measurement, Run, TestResult, utc_now
from mltest.store import open_store

url, worker, count, signals = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
store = open_store(url)  # concurrent first opens: the store may not exist yet
(signals / f"ready-{worker}").touch()
deadline = time.monotonic() + 60
while not (signals / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("no go signal within 60 s")
    time.sleep(0.005)
environment = Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0", flags=(("seed", "0"),))
try:
    for i in range(count):
        run_id = f"w{worker}-{i:03d}"
        # Every writer shares the commits and the environment: their upserts collide on purpose.
        commit = Commit(sha=f"{i % 10:040x}", branch="main", ancestry=(f"{(i % 10) + 1:040x}",))
        store.begin_run(Run(run_id, "proj", "integration", commit, environment, utc_now(), pid=worker))
        store.add_results(
            run_id,
            [TestResult(f"t.py::test_{k}", "passed", 0.01 * k) for k in range(3)],
            [Measurement(f"t.py::test_{k}", "accuracy", 0.9 + k / 100, samples=(0.9, 0.91)) for k in range(3)],
        )
        store.finish_run(run_id, "passed", utc_now())
finally:
    store.close()
"""
WRITERS, RUNS_EACH = 4, 100


@pytest.mark.integration
def test_concurrent_writers_lose_nothing(sql_url: str, tmp_path: Path) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, sql_url, str(worker), str(RUNS_EACH), str(signals)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(WRITERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(signals.glob("ready-*"))) < WRITERS and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.01)
        (signals / "go").touch()  # all writers start writing at once
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for worker, (proc, (_, stderr)) in enumerate(zip(procs, outputs, strict=True)):
        assert "database is locked" not in stderr, f"writer {worker}:\n{stderr}"
        assert proc.returncode == 0, f"writer {worker} exited {proc.returncode}:\n{stderr}"

    engine = raw_engine(sql_url)
    try:
        with engine.connect() as conn:

            def count(query: str) -> int:
                return int(conn.execute(sa.text(query)).scalar_one())

            assert count("SELECT COUNT(*) FROM runs") == WRITERS * RUNS_EACH
            assert count("SELECT COUNT(*) FROM test_results") == WRITERS * RUNS_EACH * 3
            assert count("SELECT COUNT(*) FROM measurements") == WRITERS * RUNS_EACH * 3
            assert count("SELECT COUNT(*) FROM runs WHERE status = 'running'") == 0
            assert count("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL") == 0
            assert count("SELECT COUNT(*) FROM commits") == 10
            assert count("SELECT COUNT(*) FROM environments") == 1
            assert count("SELECT COUNT(*) FROM commit_links") == 10
            assert count("SELECT COUNT(*) FROM meta WHERE key = 'schema_version'") == 1
    finally:
        engine.dispose()
    store = open_store(sql_url, root=tmp_path)
    try:
        runs = store.runs(limit=10_000)
        assert len(runs) == WRITERS * RUNS_EACH
        assert {run.status for run in runs} == {"passed"}
        assert len(store.series(metric="accuracy")) == WRITERS * RUNS_EACH * 3
    finally:
        store.close()
