"""The pytest plugin's overhead and the parallel unit tier (issue 6).

Usage (from the repository root)::

    python -m benchmarks --only harness [--quick] [--write]   # as part of the suite
    python -m benchmarks.harness [--quick] [--write]

Two rows of the spec, both measured on generated projects in a temporary directory (a git repository
with one commit, and a ``pyproject.toml`` whose ``[tool.mltest]`` table records into SQLite):

- **Overhead.** 2,000 trivial tests (20 files of 100 ``def test_i(): assert True``), run as bare
  pytest (``-p no:mltest``, loading an empty plugin instead: see :data:`MODES`), with the plugin but
  recording off (``--mltest-no-record``) and with recording on, each serial and with ``-n 2``.
  Target, recording on: at most 3 % more wall time than bare pytest and at most 0.2 ms per test. The
  same three modes on a 1-test project give the fixed per-session cost (waiting for the store, git,
  the environment), and from the two the cost per test.
- **Parallel unit tier.** CPU-bound tests (pure Python, each burning a fixed amount of CPU time),
  ``-n 2`` against serial with recording on. Target: at least 1.7x. Bare pytest-xdist's speed-up on
  the same suite, in the same run, is the comparison.

Every configuration is a fresh ``python -m pytest`` process, timed from outside (interpreter start-up
and imports included: that is what a CI job pays). Rounds are interleaved (each round runs every
configuration once, in a rotated order) after one untimed warm-up round; each row uses the fastest
run of each configuration. Other processes only ever add time to a run, and the plugin's cost is the
same work every run, so the fastest runs compare the work itself: on this 2-core VM, medians of 5
runs moved by more than the 3 % target between two runs of the benchmark (bare pytest's own runs spread by
about 7 %).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import BENCHMARKS_MD, Outcome, Row, emit, machine, met_text, table

NAME = "harness"
START, END = "<!-- harness:start -->", "<!-- harness:end -->"
HEADING = "## Harness overhead and the parallel unit tier (issue 6)"

TARGET_OVERHEAD = 0.03
"""Recording on: at most 3 % more wall time than bare pytest ..."""
TARGET_MS_PER_TEST = 0.2
"""... and at most 0.2 ms per test."""
TARGET_SPEEDUP = 1.7
WORKERS = 2

NOOP_PLUGIN = "bench_noop_plugin"
"""An empty module in each generated project, which bare pytest loads with ``-p``."""

MODES: Mapping[str, tuple[str, ...]] = {
    "bare": ("-p", "no:mltest", "-p", NOOP_PLUGIN),
    "no-record": ("-p", "mltest", "--mltest-no-record"),
    "record": ("-p", "mltest"),
}
"""The only difference between configurations. Plugin autoload is off in every run
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``), so no other installed plugin (hypothesis, timeout, ...) loads.
With autoload off, ``-p mltest`` makes pytest search every installed distribution's entry points for
the name (a few milliseconds): work that a normal run (autoload on) does once for all plugins, with
or without mltest. Bare pytest loads an empty plugin with ``-p`` too, so that search is in every mode
and the plugin itself is the difference."""
MODE_TEXT = {"bare": "bare pytest", "no-record": "mltest, recording off", "record": "mltest, recording on"}

PYPROJECT = """\
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.mltest]
project = "harness-bench"
store_url = "sqlite:///.mltest/results.db"
tier = "unit"
"""

TRIVIAL_TEST = "def test_{i}():\n    assert True\n"
CPU_PRELUDE = '''\
import time


def burn(seconds):
    """Pure-Python work until this process has used ``seconds`` of CPU time."""
    end = time.process_time() + seconds
    total = 0
    while time.process_time() < end:
        total += sum(i * i for i in range(1000))
    assert total > 0
'''
CPU_TEST = "def test_{i}():\n    burn({seconds!r})\n"
GIT_IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false")


# ----------------------------------------------------------------------------- the generated projects


def write_project(root: Path, tests: int, *, per_file: int = 100, cpu_seconds: float | None = None) -> int:
    """Write a project with ``tests`` tests into ``root`` (files of ``per_file`` tests); returns ``tests``.

    Trivial tests (``assert True``) by default; with ``cpu_seconds`` each test burns that much CPU time.
    The project is a git repository with one commit when git is available (mltest records the commit).
    """
    if tests < 1 or per_file < 1:
        raise ValueError(f"need at least one test and one test per file; got {tests} and {per_file}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / f"{NOOP_PLUGIN}.py").write_text('"""Loaded by bare pytest (-p): see MODES."""\n', encoding="utf-8")
    test_dir = root / "tests"
    test_dir.mkdir(exist_ok=True)
    files = (tests + per_file - 1) // per_file
    for f in range(files):
        first, last = f * per_file, min(tests, (f + 1) * per_file)
        if cpu_seconds is None:
            bodies = [TRIVIAL_TEST.format(i=i) for i in range(first, last)]
        else:
            bodies = [CPU_PRELUDE, *(CPU_TEST.format(i=i, seconds=cpu_seconds) for i in range(first, last))]
        (test_dir / f"test_gen_{f:03d}.py").write_text("\n\n".join(bodies), encoding="utf-8")
    if shutil.which("git"):
        for args in (
            ("init", "-q"),
            ("add", "-A"),
            (*GIT_IDENTITY, "commit", "-q", "-m", "generated suite"),
        ):
            subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return tests


def child_env(pycache: Path) -> dict[str, str]:
    """This environment without anything that changes what pytest or mltest does, plus plugin autoload
    off and bytecode caching on (into ``pycache``: an editable install otherwise recompiles mltest on
    every start when ``PYTHONDONTWRITEBYTECODE`` is set, which a user's install does not)."""
    drop = ("MLTEST_", "PYTEST_", "GITHUB_", "GITLAB_", "CI_", "COV_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


# ----------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Config:
    suite: str
    """Which generated project: ``trivial``, ``one`` (a single trivial test) or ``cpu``."""
    mode: str
    """A key of :data:`MODES`."""
    workers: int
    """0: serial (xdist not loaded); N: ``-p xdist -n N``."""


def command(config: Config) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODES[config.mode]]
    if config.workers:
        cmd += ["-p", "xdist", "-n", str(config.workers)]
    return cmd


def time_once(config: Config, root: Path, env: Mapping[str, str], expected: int) -> float:
    """Wall time of one run, after checking that it ran ``expected`` tests and recorded iff it should."""
    t0 = time.perf_counter()
    proc = subprocess.run(command(config), cwd=root, env=dict(env), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    passed = re.search(r"(\d+) passed", out)
    recorded = "recorded run " in out
    if proc.returncode != 0 or passed is None or int(passed.group(1)) != expected:
        raise RuntimeError(f"{config}: exit {proc.returncode}, expected {expected} passed tests:\n{out[-3000:]}")
    if recorded != (config.mode == "record"):
        raise RuntimeError(f"{config}: recorded={recorded}, which is wrong for this mode:\n{out[-3000:]}")
    return seconds


def interleaved(
    configs: Sequence[Config],
    roots: Mapping[str, Path],
    counts: Mapping[str, int],
    env: Mapping[str, str],
    rounds: int,
    *,
    warmup: bool = True,
) -> dict[Config, list[float]]:
    """Times of every configuration over ``rounds`` rounds. Round r starts at configuration r (the order
    is rotated), so a slow spell of the machine is shared out and no configuration always runs first."""
    if warmup:  # bytecode caches, the store's schema, the OS page cache: paid once, not timed
        for c in configs:
            time_once(c, roots[c.suite], env, counts[c.suite])
    times: dict[Config, list[float]] = {c: [] for c in configs}
    for r in range(rounds):
        for c in [*configs[r % len(configs) :], *configs[: r % len(configs)]]:
            times[c].append(time_once(c, roots[c.suite], env, counts[c.suite]))
        print(f"   round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return times


# ----------------------------------------------------------------------------- results and rows


@dataclass(frozen=True)
class Overhead:
    """Wall times (s, the fastest run) of one project in the three modes, at one worker count."""

    tests: int
    workers: int
    bare: float
    no_record: float
    record: float

    def seconds(self, mode: str) -> float:
        return {"bare": self.bare, "no-record": self.no_record, "record": self.record}[mode]

    def extra(self, mode: str) -> float:
        """Seconds over bare pytest."""
        return self.seconds(mode) - self.bare

    def fraction(self, mode: str) -> float:
        """Extra wall time as a fraction of bare pytest's."""
        return self.extra(mode) / self.bare

    def ms_per_test(self, mode: str) -> float:
        return self.extra(mode) / self.tests * 1000


@dataclass(frozen=True)
class Results:
    overhead: Sequence[Overhead]
    """The big trivial project (``tests`` tests) at 0 and WORKERS workers."""
    fixed: Sequence[Overhead]
    """The 1-test project at 0 and WORKERS workers: the per-session cost."""
    cpu: Sequence[Overhead]
    """The CPU-bound project at 0 and WORKERS workers (bare and recording on; no_record is NaN)."""
    cpu_seconds: float
    """CPU time each test of the CPU-bound project burns."""
    rounds: int
    spread: Mapping[str, str]
    """Config label -> the range (fastest to slowest) of its timed runs, for the detail section."""
    load: tuple[float, float]
    """1-minute load average before and after the measurement (another job on the machine shows here)."""


def label(config: Config) -> str:
    return f"{config.suite}/{config.mode}/{config.workers}"


def _workers_text(workers: int) -> str:
    return f"-n {workers}" if workers else "serial"


def speedup(cpu: Sequence[Overhead], mode: str) -> float:
    serial = next(o for o in cpu if o.workers == 0)
    parallel = next(o for o in cpu if o.workers != 0)
    return serial.seconds(mode) / parallel.seconds(mode)


def rows(results: Results) -> list[Row]:
    """The summary rows, from the measured times only (no timing here)."""
    out: list[Row] = []
    for o in results.overhead:
        where = _workers_text(o.workers)
        frac, ms = o.fraction("record"), o.ms_per_test("record")
        out.append(
            Row(
                NAME,
                f"overhead, recording on (SQLite), {where}, {o.tests} trivial tests",
                frac * 100,
                "%",
                f"{frac:+.1%} ({ms:+.3f} ms/test)",
                f"bare pytest {o.bare:.2f} s, mltest {o.record:.2f} s",
                f"{o.record / o.bare:.3f}",
                f"≤ {TARGET_OVERHEAD:.0%} and ≤ {TARGET_MS_PER_TEST} ms/test",
                frac <= TARGET_OVERHEAD and ms <= TARGET_MS_PER_TEST,
                False,
                f"overhead_record_{'serial' if not o.workers else f'n{o.workers}'}_pct",
            )
        )
    for o in results.overhead:
        where = _workers_text(o.workers)
        frac, ms = o.fraction("no-record"), o.ms_per_test("no-record")
        out.append(
            Row(
                NAME,
                f"overhead, recording off, {where}, {o.tests} trivial tests",
                frac * 100,
                "%",
                f"{frac:+.1%} ({ms:+.3f} ms/test)",
                f"bare pytest {o.bare:.2f} s, mltest {o.no_record:.2f} s",
                f"{o.no_record / o.bare:.3f}",
                "",
                None,
                False,
                f"overhead_norecord_{'serial' if not o.workers else f'n{o.workers}'}_pct",
            )
        )
    serial = next(o for o in results.cpu if o.workers == 0)
    parallel = next(o for o in results.cpu if o.workers != 0)
    ratio, bare_ratio = speedup(results.cpu, "record"), speedup(results.cpu, "bare")
    out.append(
        Row(
            NAME,
            f"unit tier -n {parallel.workers} vs serial, recording on, "
            f"{serial.tests} tests x {results.cpu_seconds * 1000:.0f} ms CPU",
            ratio,
            "x",
            f"{ratio:.2f}x ({serial.record:.2f} s → {parallel.record:.2f} s)",
            f"bare pytest-xdist {bare_ratio:.2f}x ({serial.bare:.2f} s → {parallel.bare:.2f} s)",
            f"{ratio / bare_ratio:.2f}",
            f"≥ {TARGET_SPEEDUP}x",
            ratio >= TARGET_SPEEDUP,
            True,
            f"speedup_n{parallel.workers}",
        )
    )
    return out


def fixed_and_marginal(big: Overhead, one: Overhead, mode: str) -> tuple[float, float]:
    """(fixed seconds per session, marginal ms per test) of ``mode`` over bare pytest: the 1-test
    project's extra time is the fixed part; what the big project adds beyond it, per test, the rest."""
    fixed = one.extra(mode)
    return fixed, (big.extra(mode) - fixed) / (big.tests - one.tests) * 1000


# ----------------------------------------------------------------------------- the measurement


def measure(
    tests: int = 2000,
    *,
    rounds: int = 5,
    cpu_tests: int = 40,
    cpu_seconds: float = 0.05,
    cpu_rounds: int | None = None,
    warmup: bool = True,
) -> Results:
    """Generate the three projects in a temporary directory and time every configuration."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mltest-harness-bench-") as tmp:
        base = Path(tmp)
        counts = {
            "trivial": write_project(base / "trivial", tests),
            "one": write_project(base / "one", 1),
            "cpu": write_project(base / "cpu", cpu_tests, per_file=10, cpu_seconds=cpu_seconds),
        }
        roots = {name: base / name for name in counts}
        env = child_env(base / "pycache")
        small = [Config(s, m, w) for s in ("trivial", "one") for w in (0, WORKERS) for m in MODES]
        times = interleaved(small, roots, counts, env, rounds, warmup=warmup)
        cpu = [Config("cpu", m, w) for w in (0, WORKERS) for m in ("bare", "record")]
        # No warm-up round here: the caches are warm by now, and these runs are long.
        times.update(interleaved(cpu, roots, counts, env, cpu_rounds or rounds, warmup=False))
    med = {c: min(t) for c, t in times.items()}

    def overhead(suite: str, workers: int) -> Overhead:
        def get(mode: str) -> float:
            return med.get(Config(suite, mode, workers), float("nan"))

        return Overhead(counts[suite], workers, get("bare"), get("no-record"), get("record"))

    return Results(
        overhead=[overhead("trivial", w) for w in (0, WORKERS)],
        fixed=[overhead("one", w) for w in (0, WORKERS)],
        cpu=[overhead("cpu", w) for w in (0, WORKERS)],
        cpu_seconds=cpu_seconds,
        rounds=rounds,
        spread={label(c): f"{min(t):.2f} to {max(t):.2f}" for c, t in times.items()},
        load=(load_before, os.getloadavg()[0]),
    )


# ----------------------------------------------------------------------------- the report


def _times_table(results: Results) -> str:
    lines = []
    for title, group, modes in (
        ("trivial", results.overhead, tuple(MODES)),
        ("one", results.fixed, tuple(MODES)),
        ("cpu", results.cpu, ("bare", "record")),
    ):
        for o in group:
            for mode in modes:
                extra = "" if mode == "bare" else f"{o.fraction(mode):+.1%} / {o.extra(mode) * 1000:+.0f} ms"
                lines.append(
                    [
                        f"{o.tests} {'CPU-bound' if title == 'cpu' else 'trivial'} test{'s' if o.tests > 1 else ''}",
                        _workers_text(o.workers),
                        MODE_TEXT[mode],
                        f"{o.seconds(mode):.3f} s",
                        results.spread.get(f"{title}/{mode}/{o.workers}", "") + " s",
                        extra,
                    ]
                )
    return table(["project", "workers", "mode", "fastest wall time", "range", "vs bare pytest"], lines)


def _costs_table(results: Results) -> str:
    lines = []
    for big, one in zip(results.overhead, results.fixed, strict=True):
        for mode in ("no-record", "record"):
            fixed, marginal = fixed_and_marginal(big, one, mode)
            lines.append(
                [_workers_text(big.workers), MODE_TEXT[mode], f"{fixed * 1000:+.0f} ms", f"{marginal:+.3f} ms"]
            )
    return table(["workers", "mode", "fixed, per session (1-test project)", "per test beyond it"], lines)


def report(results: Results, command_line: str) -> str:
    summary = table(
        ["measure", "mltest", "compared with (same run)", "ratio", "target", "met?"],
        [[r.case, r.shown, r.comparison, r.ratio, r.target, met_text(r.met)] for r in rows(results)],
    )
    big = results.overhead[0]
    return f"""{HEADING}

{START}
Reproduce from the repository root: `{command_line}`. Generated projects in a temporary directory,
each a git repository with one commit and a `pyproject.toml` whose `[tool.mltest]` table sets
`tier = "unit"` and `store_url = "sqlite:///.mltest/results.db"`: {big.tests} trivial tests (files of
100 `def test_i(): assert True`), a 1-test project, and {results.cpu[0].tests} CPU-bound tests (each
burns {results.cpu_seconds * 1000:.0f} ms of process CPU time in pure Python).

- Date: {dt.date.today().isoformat()}
- Machine: {machine()}; 1-minute load average {results.load[0]:.2f} before, {results.load[1]:.2f} after
  (above 0 means another job shared the cores: the numbers are then noisier, and `-n {WORKERS}` gets less
  than {WORKERS} cores)
- Python {sys.version.split()[0]}; each configuration is a fresh `python -m pytest -q -p no:cacheprovider`
  process timed from outside, so **wall time includes interpreter start-up and imports**; nothing is
  subtracted. Plugin autoload is off (`PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`): bare pytest runs with
  `-p no:mltest -p {NOOP_PLUGIN}` (an empty plugin: `-p NAME` costs pytest a search of every installed
  package's entry points, which a normal run with autoload on does anyway, mltest or not), the plugin
  with `-p mltest` (recording off: `--mltest-no-record`), and parallel runs add `-p xdist -n {WORKERS}`
  in every mode, so the mltest plugin is the only difference. Bytecode is cached (in a private
  `PYTHONPYCACHEPREFIX`) as in a normal install.
- One untimed warm-up round, then {results.rounds} interleaved rounds (every configuration once per
  round, order rotated); the fastest run of each configuration (other processes only add time; the
  medians moved by more than the target between two runs). The store keeps every recorded run, so it grows
  during the measurement as it does in a project.

{summary}

All configurations (fastest and range of the timed runs):

{_times_table(results)}

Where recording's cost goes: the 1-test project's extra time over bare pytest is the fixed cost of a
session (importing the plugin; with recording on, the session waits before its first test until the
writer process has the run in the store, which takes it a few hundred milliseconds: importing
SQLAlchemy, opening the store, git, the environment, the run row; and at the end until it has stored
the rest and closed the store). With many tests, collecting them hides most of the first wait. The
{big.tests}-test project's extra beyond that, per test, is the marginal cost (the plugin's hooks and
the journal line of each result; the writer process stores them on another core).

{_costs_table(results)}
{END}
"""


def measure_for(quick: bool) -> Results:
    """The spec's sizes: 10 rounds, 100 CPU-bound tests of 100 ms in 3 rounds (``quick``: 2 rounds,
    40 tests of 50 ms, where xdist's start-up weighs more against 2 s of work)."""
    if quick:
        return measure(2000, rounds=2, cpu_tests=40, cpu_seconds=0.05)
    return measure(2000, rounds=10, cpu_tests=100, cpu_seconds=0.1, cpu_rounds=3)


def run(quick: bool) -> Outcome:
    """For ``python -m benchmarks``."""
    results = measure_for(quick)
    command_line = "python -m benchmarks" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(results), report(results, command_line), START, END)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds instead of 5: a smoke test")
    parser.add_argument("--write", action="store_true", help=f"replace the harness section of {BENCHMARKS_MD.name}")
    args = parser.parse_args(None if argv is None else list(argv))
    results = measure_for(args.quick)
    section = report(results, "python -m benchmarks.harness" + (" --quick" if args.quick else "") + " --write")
    emit(section, START, END, args.write)


if __name__ == "__main__":
    main()
