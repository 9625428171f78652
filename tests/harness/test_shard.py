"""Sharding: every selected test runs in exactly one shard."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from gitrepo import git, isolate_git

from mltest.harness.shard import assign_shards, fmt_seconds, plan_shards
from mltest.model import Commit, Environment, Run, TestResult
from mltest.store import open_store


def test_assignment_is_balanced_and_independent_of_order() -> None:
    ids = [f"t{i:03d}" for i in range(101)]
    shards = assign_shards(ids, 4)
    sizes = [shards.count(k) for k in range(4)]
    assert sorted(sizes) == [25, 25, 25, 26]
    shuffled = list(reversed(ids))
    again = dict(zip(shuffled, assign_shards(shuffled, 4), strict=True))
    assert again == dict(zip(ids, shards, strict=True))


def test_durations_balance_the_load() -> None:
    durations = {"a": 10.0, "b": 6.0, "c": 4.0, "d": 3.0, "e": 3.0}
    shards = assign_shards(list(durations), 2, durations)
    loads = [sum(d for nid, d in durations.items() if shards[list(durations).index(nid)] == k) for k in range(2)]
    assert sorted(loads) == [13.0, 13.0]


def test_bad_total_is_refused() -> None:
    with pytest.raises(ValueError, match="shard count must be >= 1"):
        assign_shards(["a"], 0)


def _ran(result: pytest.RunResult) -> set[str]:
    return {m.group(1) for line in result.outlines if (m := re.match(r"PASSED (\S+)", line))}


def test_union_of_shards_is_the_selected_suite_without_overlap(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\n")
    body = "import pytest\n" + "".join(f"def test_{i}():\n    pass\n" for i in range(23))
    body += "@pytest.mark.integration\ndef test_integration_not_in_unit_shards():\n    pass\n"
    pytester.makepyfile(
        test_many=body, test_more="import pytest\n@pytest.mark.parametrize('x', range(9))\ndef test_p(x):\n    pass\n"
    )
    everything = _ran(pytester.runpytest("-rA"))
    assert len(everything) == 32
    shards = []
    for index in (1, 2, 3):
        result = pytester.runpytest("-rA", f"--mltest-shard={index}/3")
        result.stdout.fnmatch_lines(
            [f"shard {index}/3: * of 32 selected tests, expected *s (shards: 1?s 1?s 1?s); the rest run in the other *"]
        )
        shards.append(_ran(result))
    assert set().union(*shards) == everything
    assert sum(len(s) for s in shards) == len(everything)
    assert all(10 <= len(s) <= 11 for s in shards)


def test_bad_shard_value_names_the_value(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_a():\n    pass\n")
    result = pytester.runpytest("--mltest-shard=4/3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mltest-shard: expected I/N with 1 <= I <= N, for example 2/4; got '4/3'*"])


# ----------------------------------------------------------------------------- recorded durations
def realistic_durations(seed: int, n: int = 400, long: tuple[float, ...] = (240.0, 180.0, 150.0)) -> dict[str, float]:
    """Heavy-tailed test durations: lognormal around 2 s (a few at a minute), plus a few very long tests."""
    rng = np.random.default_rng(seed)
    durations = {f"tests/test_m{i % 37}.py::test_{i}": float(d) for i, d in enumerate(rng.lognormal(0.7, 1.2, n))}
    durations.update({f"tests/test_long.py::test_{i}": d for i, d in enumerate(long)})
    return durations


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("total", [2, 4, 8, 16])
def test_the_longest_shard_is_within_10_percent_of_the_ideal_split(seed: int, total: int) -> None:
    durations = realistic_durations(seed)
    ids = list(durations)
    plan = plan_shards(ids, total, durations)
    everything = sum(durations.values())
    ideal = max(everything / total, max(durations.values()))  # no split beats the longest test
    assert sum(plan.loads) == pytest.approx(everything)
    assert max(plan.loads) <= 1.10 * ideal, (max(plan.loads), ideal)
    assert sum(plan.counts) == len(ids)
    assert plan.known == len(ids)


def test_the_plan_is_deterministic_whatever_the_order() -> None:
    durations = realistic_durations(7)
    ids = list(durations)
    first = plan_shards(ids, 4, durations)
    shuffled = list(np.random.default_rng(0).permutation(ids))
    reordered = {nid: durations[nid] for nid in reversed(ids)}  # the mapping's order does not matter either
    again = plan_shards(shuffled, 4, reordered)
    assert dict(zip(shuffled, again.assignment, strict=True)) == dict(zip(ids, first.assignment, strict=True))
    assert again.loads == first.loads
    assert plan_shards(ids, 4, durations) == first


def test_unknown_tests_weigh_the_median_of_the_known_ones_else_one_second() -> None:
    plan = plan_shards(["a", "b", "c", "new1", "new2"], 2, {"a": 1.0, "b": 3.0, "c": 8.0, "gone": 100.0})
    assert plan.known == 3
    assert plan.fallback == 3.0  # the median of the selection's known durations ("gone" is not selected)
    assert sorted(plan.loads) == [9.0, 9.0]  # c+a on one shard, b+new1+new2 (3+3) on the other
    none = plan_shards(["a", "b", "c"], 2, {})
    assert (none.known, none.fallback, sorted(none.loads), sorted(none.counts)) == (0, 1.0, [1.0, 2.0], [1, 2])
    assert plan_shards([], 3, {}).loads == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (45.2, "45s"), (60, "1m00s"), (252, "4m12s"), (3719, "1h01m"), (90000, "25h00m")],
)
def test_expected_times_are_short(seconds: float, shown: str) -> None:
    assert fmt_seconds(seconds) == shown


SUITE = "".join(f"def test_{i}():\n    pass\n" for i in range(12))
IDS = [f"test_suite.py::test_{i}" for i in range(12)]
RECORDED = {nid: (20.0 if i == 0 else 6.0 if i < 3 else 1.0 + i / 10) for i, nid in enumerate(IDS)}


def _project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, store: str = "sqlite:///results.db") -> Path:
    """A git repository on main with [tool.mltest] and one recorded unit run of main at an older commit."""
    root = pytester.path
    isolate_git(monkeypatch, root.parent)
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CI_")):
            monkeypatch.delenv(name)
    pytester.makepyprojecttoml(f'[tool.mltest]\nproject = "p"\nstore_url = "{store}"\n')
    pytester.makepyfile(test_suite=SUITE)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "tests")
    return root


def _seed(root: Path, durations: dict[str, float], *, runs: int = 1) -> None:
    db = open_store(f"sqlite:///{root}/results.db", root=root)
    try:
        env = Environment("3.11", "linux", "h", "cpu", 2, "0.1.0")
        for k in range(runs):
            run = Run(f"old-{k}", "p", "unit", Commit("f" * 40, "main"), env, started_at=f"2024-01-0{k + 1}T00:00:00")
            db.begin_run(run)
            db.add_results(run.run_id, [TestResult(t, "passed", d) for t, d in durations.items()], [])
            db.finish_run(run.run_id, "passed", run.started_at)
    finally:
        db.close()


def test_shards_split_by_durations_from_a_real_store_cover_every_test_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(pytester, monkeypatch)
    _seed(root, RECORDED)
    expected = plan_shards(IDS, 3, RECORDED)
    shards = []
    for index in (1, 2, 3):
        # Each shard records its own run at this commit (near-zero durations): the split must not move.
        result = pytester.runpytest("-rA", f"--mltest-shard={index}/3")
        loads = " ".join(fmt_seconds(x) for x in expected.loads)
        result.stdout.fnmatch_lines(
            [
                f"shard {index}/3: {expected.counts[index - 1]} of 12 selected tests, expected "
                f"{fmt_seconds(expected.loads[index - 1])} (shards: {loads}); the rest run in the other shards",
                "shard durations: 12 of 12 tests timed by the last 20 runs of main (unit tier)",
            ]
        )
        shards.append(_ran(result))
    assert [sorted(s) for s in shards] == [
        sorted(nid for nid, k in zip(IDS, expected.assignment, strict=True) if k == index) for index in range(3)
    ]
    assert set().union(*shards) == set(IDS)
    assert sum(len(s) for s in shards) == len(IDS)
    assert shards[0] == {"test_suite.py::test_0"}  # 20 s: a shard of its own; the rest share the others
    db = open_store(f"sqlite:///{root}/results.db", root=root)
    try:
        assert len(db.runs(branch="main")) == 4  # the seeded run and one per shard
    finally:
        db.close()


def test_new_tests_weigh_the_median_of_the_recorded_ones(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(pytester, monkeypatch)
    _seed(root, {nid: d for nid, d in RECORDED.items() if nid != IDS[11]})
    result = pytester.runpytest("--mltest-shard=2/2", "--mltest-no-record")
    result.stdout.fnmatch_lines(
        [
            "shard durations: 11 of 12 tests timed by the last 20 runs of main (unit tier); "
            "1 new, counted at 1.8 s (the median)"
        ]
    )


def test_an_unreachable_store_splits_by_count_with_one_warning(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(pytester, monkeypatch, store="sqlite:///adir")
    (root / "adir").mkdir()
    shards = []
    for index in (1, 2):
        result = pytester.runpytest("-rA", f"--mltest-shard={index}/2", "--mltest-no-record")
        assert result.ret == 0
        result.stdout.fnmatch_lines(
            [
                f"shard {index}/2: 6 of 12 selected tests, expected 6s (shards: 6s 6s); the rest run in the other *",
                "WARNING: shard durations not read (store URL * points at the directory *); shards split by test count",
            ]
        )
        assert sum("shard durations" in line for line in result.outlines) == 1
        shards.append(_ran(result))
    assert shards[0] | shards[1] == set(IDS)
    assert not shards[0] & shards[1]


@pytest.mark.integration  # starts xdist workers
def test_xdist_workers_use_the_controllers_durations(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(pytester, monkeypatch)
    _seed(root, RECORDED)
    expected = plan_shards(IDS, 2, RECORDED)
    result = pytester.runpytest("-rA", "-n", "2", "--mltest-shard=1/2", "--mltest-no-record")
    result.assert_outcomes(passed=expected.counts[0])
    result.stdout.fnmatch_lines([f"shard 1/2: {expected.counts[0]} of 12 selected tests, expected *"])
    assert _ran(result) == {nid for nid, k in zip(IDS, expected.assignment, strict=True) if k == 0}
