"""Sharding: every selected test runs in exactly one shard."""

from __future__ import annotations

import re

import pytest

from mltest.harness.shard import assign_shards


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
        result.stdout.fnmatch_lines([f"shard {index}/3: * of 32 selected tests; the rest run in the other shards"])
        shards.append(_ran(result))
    assert set().union(*shards) == everything
    assert sum(len(s) for s in shards) == len(everything)
    assert all(10 <= len(s) <= 11 for s in shards)


def test_bad_shard_value_names_the_value(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_a():\n    pass\n")
    result = pytester.runpytest("--mltest-shard=4/3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mltest-shard: expected I/N with 1 <= I <= N, for example 2/4; got '4/3'*"])
