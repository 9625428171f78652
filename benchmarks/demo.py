"""`mltest demo`: wall time and detection outcome over repeated runs with different seeds (issue 5).

Usage (from the repository root)::

    python -m benchmarks --only demo [--quick] [--write]     # as part of the suite (quick: 2 seeds)
    python -m benchmarks.demo [--seeds 10] [--commits 12] [--write]

Each seed runs the whole demo in a fresh process (``python -m mltest demo --seed S --device cpu
--workdir DIR``), exactly what a user runs, and reads the outcome back from the kept store by
running detection again: are both planted commits named as culprits, and is any neutral commit
flagged? Prints a markdown section; ``--write`` replaces the demo section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import BENCHMARKS_MD, ROOT, Outcome, Row, emit, machine, table
from mltest.cli.demo_cmd import INTEGRATION_TEST
from mltest.cli.detect_cmds import analyze
from mltest.config import load_settings
from mltest.demo import MIN_COMMITS, history
from mltest.store import open_store

START, END = "<!-- demo:start -->", "<!-- demo:end -->"
HEADING = "## `mltest demo` (issue 5)"
TARGET_SECONDS = 180.0


@dataclass(frozen=True)
class DemoRun:
    seed: int
    seconds: float
    exit_code: int
    slowdown_found: bool
    accuracy_found: bool
    false_flags: int
    step_change: float
    """Relative change of the step time at the slowdown commit (as detected)."""
    accuracy_points: float
    """Accuracy change at the accuracy commit, in points (as detected)."""


def run_one(seed: int, commits: int, workdir: Path) -> DemoRun:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "mltest", "demo", "--seed", str(seed), "--commits", str(commits)),
            *("--device", "cpu", "--workdir", str(workdir)),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - t0
    repo = workdir / "tinyclf"
    if not (repo / ".mltest").is_dir():
        raise SystemExit(f"seed {seed}: the demo did not get as far as a store:\n{proc.stdout}\n{proc.stderr}")
    # The verdict, recomputed from what the demo left behind: git history + store.
    settings = load_settings(repo, environ={})
    store = open_store(settings.store_url, root=repo)
    analysis = analyze(settings, store, branch="main")
    subjects = subprocess.run(
        ["git", "log", "--reverse", "--format=%H %s"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    planted = {step.subject: step for step in history(commits) if step.planted}
    sha_of = {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in subjects}
    found: dict[str, set[str]] = {}
    false_flags = 0
    step_change = accuracy_points = float("nan")
    for reg in analysis.regressions:
        for f in reg.findings:
            if f.kind == "environment":
                continue
            blamed = {f.range.culprit} if f.range.culprit else set(f.range.commits or (f.range.bad,))
            for subject, step in planted.items():
                if f.range.culprit == sha_of[subject]:
                    found.setdefault(step.planted or "", set()).add(f.metric)
                    if f.metric == "step_time" and f.test == INTEGRATION_TEST:
                        step_change = f.rel_change
                    if f.metric == "accuracy":
                        accuracy_points = (f.after - f.before) * 100
            planted_shas = {sha_of[s] for s in planted}
            false_flags += len(blamed - planted_shas)
    return DemoRun(
        seed=seed,
        seconds=seconds,
        exit_code=proc.returncode,
        slowdown_found={"step_time", "train_samples_per_s"} <= found.get("slowdown", set()),
        accuracy_found="accuracy" in found.get("accuracy", set()),
        false_flags=false_flags,
        step_change=step_change,
        accuracy_points=accuracy_points,
    )


PER_SEED = [
    "seed",
    "wall time",
    "slowdown named",
    "step time Δ",
    "accuracy loss named",
    "accuracy Δ (points)",
    "neutral commits flagged",
    "exit code",
]


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def report(runs: Sequence[DemoRun], commits: int, command: str) -> str:
    rows = [
        [
            str(r.seed),
            f"{r.seconds:.0f} s",
            "yes" if r.slowdown_found else "**no**",
            f"{r.step_change:+.0%}",
            "yes" if r.accuracy_found else "**no**",
            f"{r.accuracy_points:+.1f}",
            str(r.false_flags),
            str(r.exit_code),
        ]
        for r in runs
    ]
    times = [r.seconds for r in runs]
    both = sum(r.slowdown_found and r.accuracy_found for r in runs)
    false_total = sum(r.false_flags for r in runs)
    worst = max(times)
    checks = [
        [
            f"wall time of one demo ({commits} commits), median / worst",
            f"{statistics.median(times):.0f} s / {worst:.0f} s",
            f"at most {TARGET_SECONDS:.0f} s",
            _met(worst <= TARGET_SECONDS),
        ],
        ["runs naming both planted commits exactly", f"{both} of {len(runs)}", "all", _met(both == len(runs))],
        [
            "neutral commits flagged, over all runs",
            f"{false_total} of {len(runs) * (commits - 3)}",
            "0",
            _met(false_total == 0),
        ],
    ]
    summary = table(["measure", "value", "target", "met?"], checks)
    return f"""{HEADING}

{START}
Reproduce from the repository root: `{command}`. Each seed is one whole `mltest demo --seed S
--commits {commits} --device cpu` in a fresh process (the README's command, with a seed); the verdict
is recomputed from the repository and store it leaves behind.

- Date: {dt.date.today().isoformat()}
- Machine: {machine()}
- Python {sys.version.split()[0]}; each commit runs `mltest run unit` and `mltest run integration` as
  separate processes (the integration test trains 300 steps, then times 100 steps with `record.time`)

{summary}

Per seed (Δ as detected: the step time at the slowdown commit, accuracy points at the accuracy commit):

{table(PER_SEED, rows)}
{END}
"""


def run_seeds(seeds: int, commits: int) -> list[DemoRun]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="mltest-demo-bench-") as tmp:
        for seed in range(seeds):
            run = run_one(seed, commits, Path(tmp) / f"seed-{seed}")
            print(
                f"seed {seed}: {run.seconds:.0f} s, slowdown {'found' if run.slowdown_found else 'MISSED'}, "
                f"accuracy {'found' if run.accuracy_found else 'MISSED'}, {run.false_flags} false flags",
                file=sys.stderr,
            )
            runs.append(run)
    return runs


def rows(runs: Sequence[DemoRun], commits: int) -> list[Row]:
    worst = max(r.seconds for r in runs)
    both = sum(r.slowdown_found and r.accuracy_found for r in runs)
    false_total = sum(r.false_flags for r in runs)
    neutral = len(runs) * (commits - 3)
    return [
        Row(
            "demo",
            f"wall time, {commits} commits (worst of {len(runs)})",
            worst,
            "s",
            f"{worst:.0f} s",
            f"median {statistics.median(r.seconds for r in runs):.0f} s",
            "",
            f"≤ {TARGET_SECONDS:.0f} s",
            worst <= TARGET_SECONDS,
            False,
            "wall_time",
        ),
        Row(
            "demo",
            "both planted commits named",
            both / len(runs),
            "ratio",
            f"{both} of {len(runs)} seeds",
            "",
            "",
            "all",
            both == len(runs),
            True,
            "planted_found",
        ),
        Row(
            "demo",
            "neutral commits flagged",
            false_total,
            "commits",
            f"{false_total} of {neutral}",
            "",
            "",
            "0",
            false_total == 0,
            False,
            "false_flags",
        ),
    ]


def run(quick: bool) -> Outcome:
    """For ``python -m benchmarks``: 10 seeds (2 with ``quick``)."""
    seeds = 2 if quick else 10
    runs = run_seeds(seeds, MIN_COMMITS)
    command = "python -m benchmarks" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(runs, MIN_COMMITS), report(runs, MIN_COMMITS, command), START, END)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds (0, 1, ...), default 10")
    parser.add_argument("--commits", type=int, default=MIN_COMMITS, help=f"commits per demo (default {MIN_COMMITS})")
    parser.add_argument("--write", action="store_true", help=f"replace the demo section of {BENCHMARKS_MD.name}")
    args = parser.parse_args(argv)
    runs = run_seeds(args.seeds, args.commits)
    command = f"python -m benchmarks.demo --seeds {args.seeds}" + (
        f" --commits {args.commits}" if args.commits != MIN_COMMITS else ""
    )
    section = report(runs, args.commits, command + " --write")
    emit(section, START, END, args.write)


if __name__ == "__main__":
    main()
