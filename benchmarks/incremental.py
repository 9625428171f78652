"""Incremental detection: appending one commit to a long series, against a full rescan (issue 4, item 7).

Usage (from the repository root)::

    python -m benchmarks --only incremental [--quick] [--write]
    python -m benchmarks.incremental [--quick] [--write]

1. *Speed*: a series of L commits (Gaussian noise, a step every 1,500 commits of 2-4 sd), its state kept
   from L - 1 commits; time to get the change points after appending the L-th commit, incremental
   (``mltest.detect.incremental.change_points_incremental``) against a full ``change_points``, both the
   minimum of several repeats in the same process. Also the cost of asking again with nothing new
   (a second ``mltest check`` after a nightly run): a digest of the series.
2. *Quality*: the way a nightly pipeline sees a series: 300-commit series with 0-3 steps (2 or 3 sd,
   random sign, positions uniform in [25, 290]), detected after every commit from 150 on, the state
   carried from one commit to the next. Reported: the share of those detections whose change points
   equal a full rescan's, and F1 of the final change points against the true ones (within 5
   commits), incremental against full.

Targets: appending to a 10,000-commit series costs at most 10 % of a full rescan; the incremental
result is as good as the full one (F1 at most 0.01 lower).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks._common import BENCHMARKS_MD, Outcome, Row, emit, machine, met_text, table
from mltest.detect import change_points
from mltest.detect.incremental import SETTLE, WINDOW, change_points_incremental

NAME = "incremental"
HEADING = "## Incremental detection (issue 4)"
START, END = f"<!-- {NAME}:start -->", f"<!-- {NAME}:end -->"

SPEED_TARGET = 0.10
"""Appending to a 10,000-commit series: incremental time / full rescan time, at most."""
F1_SLACK = 0.01
LENGTHS = (1_000, 10_000)
REPEATS = 7
SERIES_FULL, SERIES_QUICK = 200, 40
QUALITY_N, QUALITY_FROM, TOLERANCE = 300, 150, 5


@dataclass(frozen=True)
class Speed:
    length: int
    full_ms: float
    append_ms: float
    again_ms: float

    @property
    def ratio(self) -> float:
        return self.append_ms / self.full_ms


@dataclass(frozen=True)
class Quality:
    series: int
    detections: int
    same: int
    f1_incremental: float
    f1_full: float


def long_series(length: int, seed: int = 0) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    x = 100.0 + rng.normal(size=length)
    for k in range(1_500, length, 1_500):
        x[k:] += rng.choice([-1, 1]) * rng.uniform(2, 4)
    return x


def _best_ms(fn: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def measure_speed(length: int, repeats: int = REPEATS) -> Speed:
    x = long_series(length)
    _, state = change_points_incremental(x[:-1])
    full = _best_ms(lambda: change_points(x), repeats)
    append = _best_ms(lambda: change_points_incremental(x, state=state), repeats)
    _, now = change_points_incremental(x, state=state)
    again = _best_ms(lambda: change_points_incremental(x, state=now), repeats)
    found, _ = change_points_incremental(x, state=state)
    if [c.index for c in found] != [c.index for c in change_points(x)]:
        raise AssertionError(f"{length} commits: incremental and full change points differ")
    return Speed(length, full, append, again)


def quality_corpus(count: int) -> list[tuple[np.ndarray[Any, Any], list[int]]]:
    rng = np.random.default_rng(20261130)
    out = []
    for _ in range(count):
        x = 100.0 + rng.normal(size=QUALITY_N)
        truth = sorted({int(k) for k in rng.integers(25, QUALITY_N - 10, size=int(rng.integers(0, 4)))})
        truth = [k for i, k in enumerate(truth) if i == 0 or k - truth[i - 1] >= 25]
        for k in truth:
            x[k:] += rng.choice([-1, 1]) * rng.choice([2.0, 3.0])
        out.append((x, truth))
    return out


def f1(found: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]) -> float:
    tp = fp = fn = 0
    for got, true in zip(found, truth, strict=True):
        left = list(true)
        for g in got:
            near = [t for t in left if abs(t - g) <= TOLERANCE]
            if near:
                left.remove(min(near, key=lambda t: abs(t - g)))
                tp += 1
            else:
                fp += 1
        fn += len(left)
    return 2 * tp / (2 * tp + fp + fn) if tp else (1.0 if not fp and not fn else 0.0)


def measure_quality(count: int) -> Quality:
    same = detections = 0
    inc_final, full_final, truths = [], [], []
    for x, truth in quality_corpus(count):
        state = None
        for m in range(QUALITY_FROM, len(x) + 1):
            found, state = change_points_incremental(x[:m], state=state)
            full = change_points(x[:m])
            detections += 1
            same += [c.index for c in found] == [c.index for c in full]
        inc_final.append([c.index for c in found])
        full_final.append([c.index for c in full])
        truths.append(truth)
    return Quality(count, detections, same, f1(inc_final, truths), f1(full_final, truths))


def rows(speeds: Sequence[Speed], quality: Quality) -> list[Row]:
    out = []
    for s in speeds:
        target = s.length == max(LENGTHS)
        out.append(
            Row(
                benchmark=NAME,
                case=f"append 1 commit to a {s.length:,}-commit series",
                value=s.append_ms,
                unit="ms",
                shown=f"{s.append_ms:.2f} ms",
                comparison=f"full rescan {s.full_ms:.2f} ms; asked again with nothing new {s.again_ms:.2f} ms",
                ratio=f"{s.ratio:.3f}",
                target=f"≤ {SPEED_TARGET:.0%} of a full rescan" if target else "",
                met=(s.ratio <= SPEED_TARGET) if target else None,
                higher_is_better=False,
            )
        )
    out.append(
        Row(
            benchmark=NAME,
            case=f"F1 after appending commits {QUALITY_FROM}-{QUALITY_N} one by one ({quality.series} series)",
            value=quality.f1_incremental,
            unit="ratio",
            shown=f"{quality.f1_incremental:.3f}",
            comparison=f"full rescan {quality.f1_full:.3f}; identical change points in "
            f"{quality.same / quality.detections:.1%} of {quality.detections:,} detections",
            ratio=f"{quality.f1_incremental - quality.f1_full:+.3f}",
            target=f"≥ full rescan - {F1_SLACK}",
            met=quality.f1_incremental >= quality.f1_full - F1_SLACK,
            higher_is_better=True,
        )
    )
    return out


def report(speeds: Sequence[Speed], quality: Quality, command: str) -> str:
    rs = rows(speeds, quality)
    body = table(
        ["case", "incremental", "compared with (same run)", "ratio", "target", "met?"],
        [[r.case, r.shown, r.comparison, r.ratio, r.target, met_text(r.met)] for r in rs],
    )
    return f"""{HEADING}

{START}
`{command}` on {dt.date.today().isoformat()}. Machine: {machine()}.

State kept per series: its length, a digest of its points and the change points. Settled: a change
point with {SETTLE}+ points after it; rescanned: from the newest settled one, at most {WINDOW} points
before the old end. Times are the minimum of {REPEATS} repeats; the appended result is checked equal to
a full rescan's.

{body}
{END}
"""


def measure_all(quick: bool) -> tuple[list[Speed], Quality]:
    return [measure_speed(n) for n in LENGTHS], measure_quality(SERIES_QUICK if quick else SERIES_FULL)


def run(quick: bool) -> Outcome:
    speeds, quality = measure_all(quick)
    command = "python -m benchmarks --only incremental" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(speeds, quality), report(speeds, quality, command), START, END)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{SERIES_QUICK} series (default {SERIES_FULL})")
    parser.add_argument("--write", action="store_true", help=f"replace the incremental section of {BENCHMARKS_MD.name}")
    args: Any = parser.parse_args(argv)
    speeds, quality = measure_all(args.quick)
    command = "python -m benchmarks.incremental" + (" --quick" if args.quick else "") + " --write"
    section = report(speeds, quality, command)
    emit(section, START, END, args.write)


if __name__ == "__main__":
    main()
