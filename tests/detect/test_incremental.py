"""Tests of ``mltest.detect.incremental``: appending rescans only the tail, and agrees with a full scan."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mltest.detect.incremental as incremental
from mltest.detect import change_points
from mltest.detect.incremental import DetectionState, change_points_incremental
from mltest.errors import DetectionError
from mltest.model import ChangePoint


def _indices(points: list[ChangePoint] | tuple[ChangePoint, ...]) -> list[int]:
    return [cp.index for cp in points]


def _stepped(seed: int, n: int, steps: dict[int, float]) -> np.ndarray:
    x = 100.0 + np.random.default_rng(seed).normal(size=n)
    for k, size in steps.items():
        x[k:] += size
    return x


def test_appending_one_by_one_matches_a_full_scan() -> None:
    x = _stepped(1, 400, {120: 3.0, 260: -2.5, 330: 4.0})
    state = None
    for m in range(100, len(x) + 1):
        found, state = change_points_incremental(x[:m], state=state)
        assert _indices(found) == _indices(change_points(x[:m])), m
    assert _indices(found) == [120, 260, 330]
    full = change_points(x)
    for got, want in zip(found, full, strict=True):  # levels of the segments, recomputed where they grew
        assert got.before == pytest.approx(want.before)
        assert got.after == pytest.approx(want.after)
        assert (got.n_before, got.n_after) == (want.n_before, want.n_after)
        assert math.copysign(1, got.statistic) == math.copysign(1, want.statistic)


def test_agreement_over_a_seeded_corpus() -> None:
    same = total = 0
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        steps = {int(k): float(rng.choice([-3.0, 3.0])) for k in rng.integers(30, 280, size=int(rng.integers(0, 3)))}
        x = _stepped(seed, 300, steps)
        state = None
        for m in range(150, 301, 3):
            found, state = change_points_incremental(x[:m], state=state)
            same += _indices(found) == _indices(change_points(x[:m]))
            total += 1
    assert same / total >= 0.97, f"{same} of {total}"


def test_a_long_series_rescans_only_its_tail(incremental_scans: list[int]) -> None:
    x = _stepped(2, 5_000, {1_000: 3.0, 3_000: -3.0})
    _, state = change_points_incremental(x[:-1])
    seen = incremental_scans
    seen.clear()  # what the state's own full scan cost is not counted
    found, new_state = change_points_incremental(x, state=state)
    assert seen
    assert max(seen) <= incremental.WINDOW + 1
    assert _indices(found) == [1_000, 3_000]
    assert new_state.length == 5_000
    seen.clear()
    again, same_state = change_points_incremental(x, state=new_state)  # nothing new: no scan at all
    assert seen == []
    assert same_state == new_state
    assert again == found


def test_a_changed_prefix_falls_back_to_a_full_scan(incremental_scans: list[int]) -> None:
    x = _stepped(3, 600, {200: 3.0})
    _, state = change_points_incremental(x[:500])
    seen = incremental_scans
    seen.clear()  # what the state's own full scan cost is not counted
    edited = x.copy()
    edited[100] += 0.5  # a commit re-measured in the middle of the history
    found, _ = change_points_incremental(edited, state=state)
    assert seen == [600]
    assert _indices(found) == _indices(change_points(edited))
    seen.clear()
    change_points_incremental(x[:400], state=state)  # shorter than the state: full scan
    change_points_incremental(x, state=state, alpha=0.001)  # other options: full scan
    change_points_incremental(x, samples=[[v, v + 0.1] for v in x], state=state)  # now with repeats
    assert seen == [400, 600, 600]


def test_state_round_trip_and_rejects() -> None:
    x = _stepped(4, 300, {150: -3.0})
    found, state = change_points_incremental(x)
    assert DetectionState.loads(state.dumps()) == state
    odd = DetectionState(10, "d", (ChangePoint(5, math.nan, math.inf, -math.inf, 1.0, 5, 5),))
    back = DetectionState.loads(odd.dumps())
    assert back is not None
    assert math.isnan(back.change_points[0].before)
    assert back.change_points[0].after == math.inf
    assert back.change_points[0].statistic == -math.inf
    data = json.loads(state.dumps())
    for bad in (
        None,
        "",
        "not json",
        "[]",
        json.dumps({**data, "version": 999}),
        json.dumps({**data, "length": "x"}),
        json.dumps({k: v for k, v in data.items() if k != "digest"}),
        json.dumps({**data, "change_points": [{"index": 1}]}),
        json.dumps({**data, "length": 3}),  # an index beyond the length
        json.dumps({**data, "change_points": data["change_points"] * 2}),  # repeated index
    ):
        assert DetectionState.loads(bad) is None, bad
    assert _indices(found) == [150]


def test_gaps_repeats_and_noise_follow_the_full_scan() -> None:
    x = _stepped(5, 260, {90: 3.0, 200: -3.0})
    x[[10, 95, 240]] = np.nan
    samples = [[v, v + 0.01, v - 0.01] for v in x]
    state = None
    for m in (150, 151, 230, 260):
        found, state = change_points_incremental(x[:m], samples=samples[:m], noise=0.01, state=state)
        assert _indices(found) == _indices(change_points(x[:m], samples=samples[:m], noise=0.01))
    with pytest.raises(DetectionError, match="noise has 3 entries"):
        change_points_incremental(x, noise=[1.0, 2.0, 3.0], state=state)
    with pytest.raises(DetectionError, match="infinity"):
        change_points_incremental([1.0, math.inf, 2.0])


@pytest.mark.parametrize("values", [[], [1.0], [1.0, 2.0], [5.0] * 80])
def test_short_and_constant_series(values: list[float]) -> None:
    found, state = change_points_incremental(values)
    assert found == []
    assert state.length == len(values)
    more, _ = change_points_incremental([*values, 5.0], state=state)
    assert more == change_points([*values, 5.0])


FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(FINITE, min_size=2, max_size=160), st.integers(min_value=2, max_value=160))
def test_any_prefix_state_gives_a_valid_answer(values: list[float], cut: int) -> None:
    cut = min(cut, len(values))
    _, state = change_points_incremental(values[:cut])
    found, new_state = change_points_incremental(values, state=state)
    indices = _indices(found)
    assert indices == sorted(set(indices))
    assert all(0 < i < len(values) for i in indices)
    assert new_state.length == len(values)
    assert DetectionState.loads(new_state.dumps()) == new_state
    if cut == len(values):
        assert indices == _indices(change_points(values))
