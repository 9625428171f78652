"""Sharding balance (issue 10): the longest shard against the ideal split, and against pytest-split.

Usage (from the repository root)::

    python -m benchmarks --only sharding [--quick] [--write]    # as part of the suite
    python -m benchmarks.sharding [--quick] [--write]

Durations are synthetic and seeded, shaped like a real ML suite: a few hundred tests with lognormal
durations (median 2 s, a long tail to a minute or two) plus three very long ones (training runs),
in collection order (files in order, tests in file order). Each case splits them into N shards with
mltest's :func:`~mltest.harness.shard.plan_shards` and with pytest-split's two algorithms on the same
durations: ``least_duration`` (greedy, longest first) and ``duration_based_chunks`` (consecutive
chunks of the collection order). pytest-split 0.11.0 is installed on first use with
``pip install --no-deps --target .bench/pytest-split`` and imported from there (it is a pytest plugin:
installed into the environment it would load into every pytest run).

The measure is the longest shard (the wall time of the CI job) over the ideal, ``max(total / N,
longest test)``: no split can beat either. Target: within 10 % of it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from benchmarks._common import BENCHMARKS_MD, ROOT, Outcome, Row, emit, machine, met_text, table
from mltest.harness.shard import fmt_seconds, plan_shards

NAME = "sharding"
START, END = "<!-- sharding:start -->", "<!-- sharding:end -->"
HEADING = "## Sharding balance (issue 10)"
TARGET = 0.10
"""The longest shard is at most 10 % over the ideal split."""
PYTEST_SPLIT_VERSION = "0.11.0"
PYTEST_SPLIT_DIR = ROOT / ".bench" / "pytest-split"
LONG_TESTS = (240.0, 150.0, 90.0)
SEEDS_FULL, SEEDS_QUICK = 10, 3


@dataclass(frozen=True)
class Case:
    tests: int
    shards: int

    @property
    def label(self) -> str:
        return f"{self.tests} tests + {len(LONG_TESTS)} long, {self.shards} shards"


CASES = (Case(300, 2), Case(300, 4), Case(300, 8), Case(600, 4), Case(600, 8))


def suite(seed: int, tests: int) -> dict[str, float]:
    """node id -> seconds, in collection order: lognormal durations, and the long tests in one file."""
    rng = np.random.default_rng(seed)
    seconds = rng.lognormal(np.log(2.0), 1.3, tests)
    durations = {f"tests/test_m{i // 20:02d}.py::test_{i}": float(s) for i, s in enumerate(seconds)}
    durations.update({f"tests/test_train.py::test_long_{i}": s for i, s in enumerate(LONG_TESTS)})
    return durations


def ideal(durations: dict[str, float], shards: int) -> float:
    return max(sum(durations.values()) / shards, max(durations.values()))


class _Item(NamedTuple):
    nodeid: str


def pytest_split() -> ModuleType:
    """pytest-split's algorithms module, from ``.bench/pytest-split`` (installed there on first use)."""
    marker = PYTEST_SPLIT_DIR / f"pytest_split-{PYTEST_SPLIT_VERSION}.dist-info"
    if not marker.is_dir():
        print(f"installing pytest-split=={PYTEST_SPLIT_VERSION} into {PYTEST_SPLIT_DIR} ...", file=sys.stderr)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade"]
        subprocess.run([*pip, "--target", str(PYTEST_SPLIT_DIR), f"pytest-split=={PYTEST_SPLIT_VERSION}"], check=True)
    sys.path.insert(0, str(PYTEST_SPLIT_DIR))
    try:
        return importlib.import_module("pytest_split.algorithms")
    finally:
        sys.path.remove(str(PYTEST_SPLIT_DIR))


def ours(durations: dict[str, float], shards: int) -> list[float]:
    return list(plan_shards(list(durations), shards, durations).loads)


def theirs(algorithms: ModuleType, name: str) -> Callable[[dict[str, float], int], list[float]]:
    algorithm = algorithms.Algorithms[name].value

    def split(durations: dict[str, float], shards: int) -> list[float]:
        groups = algorithm(shards, [_Item(nid) for nid in durations], durations)
        return [sum(durations[item.nodeid] for item in g.selected) for g in groups]

    return split


@dataclass(frozen=True)
class Result:
    case: Case
    seeds: int
    over: dict[str, list[float]]
    """Tool -> (longest shard / ideal) - 1, per seed."""
    example: dict[str, list[float]]
    """Tool -> the shard loads of the first seed."""
    example_ideal: float
    seconds: dict[str, float]
    """Tool -> total time spent splitting."""

    def worst(self, tool: str) -> float:
        return max(self.over[tool])

    def mean(self, tool: str) -> float:
        return float(np.mean(self.over[tool]))


TOOLS = ("mltest", "least_duration", "duration_based_chunks")


def measure(cases: Sequence[Case] = CASES, seeds: int = SEEDS_FULL) -> list[Result]:
    algorithms = pytest_split()
    splitters = {
        "mltest": ours,
        "least_duration": theirs(algorithms, "least_duration"),
        "duration_based_chunks": theirs(algorithms, "duration_based_chunks"),
    }
    results = []
    for case in cases:
        over: dict[str, list[float]] = {t: [] for t in TOOLS}
        example: dict[str, list[float]] = {}
        spent = dict.fromkeys(TOOLS, 0.0)
        first_ideal = 0.0
        for seed in range(seeds):
            durations = suite(seed, case.tests)
            best = ideal(durations, case.shards)
            first_ideal = first_ideal or best
            for tool, split in splitters.items():
                t0 = time.perf_counter()
                loads = split(durations, case.shards)
                spent[tool] += time.perf_counter() - t0
                assert abs(sum(loads) - sum(durations.values())) < 1e-6, (tool, case)  # every test, once
                over[tool].append(max(loads) / best - 1)
                example.setdefault(tool, loads)
        results.append(Result(case, seeds, over, example, first_ideal, spent))
    return results


def _pct(x: float) -> str:
    return f"+{100 * x:.2f}%"


def rows(results: Sequence[Result]) -> list[Row]:
    out = []
    for r in results:
        worst = r.worst("mltest")
        out.append(
            Row(
                benchmark=NAME,
                case=f"{r.case.label}: longest shard over ideal (worst of {r.seeds} suites)",
                value=worst,
                unit="ratio",
                shown=_pct(worst),
                comparison=f"pytest-split least_duration {_pct(r.worst('least_duration'))}, "
                f"duration_based_chunks {_pct(r.worst('duration_based_chunks'))}",
                ratio=f"{(1 + worst) / (1 + r.worst('duration_based_chunks')):.2f}x of chunks",
                target=f"<= +{100 * TARGET:.0f}%",
                met=worst <= TARGET,
                higher_is_better=False,
                metric=f"over_ideal_{r.case.tests}_tests_{r.case.shards}_shards",
            )
        )
    return out


def report(results: Sequence[Result], command: str) -> str:
    detail = table(
        ["case", "ideal (seed 0)", *(f"{t}: worst / mean over ideal" for t in TOOLS), "met?"],
        [
            [
                r.case.label,
                fmt_seconds(r.example_ideal),
                *(f"{_pct(r.worst(t))} / {_pct(r.mean(t))}" for t in TOOLS),
                met_text(r.worst("mltest") <= TARGET),
            ]
            for r in results
        ],
    )
    example = results[0]
    shards = table(
        ["tool", f"shard times, {example.case.label}, seed 0 (ideal {fmt_seconds(example.example_ideal)})"],
        [[t, " ".join(fmt_seconds(x) for x in example.example[t])] for t in TOOLS],
    )
    return f"""{HEADING}

{START}
`{command}` on {dt.date.today().isoformat()}. Machine: {machine()}.

Durations: lognormal (median 2 s, sigma 1.3) plus {len(LONG_TESTS)} long tests
({", ".join(fmt_seconds(s) for s in LONG_TESTS)}), {results[0].seeds} seeded suites per case. Ideal:
max(total / N, longest test). Compared with pytest-split {PYTEST_SPLIT_VERSION}'s algorithms on the
same durations and order. Target: the longest mltest shard within +{100 * TARGET:.0f}% of the ideal.

{detail}

{shards}
{END}
"""


def run(quick: bool) -> Outcome:
    results = measure(seeds=SEEDS_QUICK if quick else SEEDS_FULL)
    command = "python -m benchmarks" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(results), report(results, command), START, END)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{SEEDS_QUICK} suites per case (default {SEEDS_FULL})")
    parser.add_argument("--write", action="store_true", help=f"replace the sharding section of {BENCHMARKS_MD.name}")
    args: Any = parser.parse_args(argv)
    results = measure(seeds=SEEDS_QUICK if args.quick else SEEDS_FULL)
    section = report(results, "python -m benchmarks.sharding" + (" --quick" if args.quick else "") + " --write")
    emit(section, START, END, args.write)


if __name__ == "__main__":
    main()
