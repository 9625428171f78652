"""The harness benchmark (benchmarks/harness.py): its generated projects, its rows, one tiny real run."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

BENCHMARK = "harness"  # the module the shared ``bench`` fixture (tests/conftest.py) imports


def _collected(bench: ModuleType, root: Path) -> int:
    """How many tests pytest collects in ``root``, with the environment the benchmark's runs get."""
    env = bench.child_env(root / ".pycache")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:mltest"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"(\d+) tests? collected", proc.stdout)
    assert found is not None, proc.stdout + proc.stderr
    return int(found.group(1))


def test_trivial_project_has_the_asked_number_of_tests(bench: ModuleType, tmp_path: Path) -> None:
    assert bench.write_project(tmp_path, 50, per_file=20) == 50
    files = sorted((tmp_path / "tests").glob("test_gen_*.py"))
    assert [len(re.findall(r"^def test_", f.read_text(), re.M)) for f in files] == [20, 20, 10]
    assert "[tool.mltest]" in (tmp_path / "pyproject.toml").read_text()
    assert (tmp_path / f"{bench.NOOP_PLUGIN}.py").is_file()  # what bare pytest loads with -p
    assert _collected(bench, tmp_path) == 50


def test_cpu_project_burns_the_asked_cpu_time(bench: ModuleType, tmp_path: Path) -> None:
    bench.write_project(tmp_path, 3, per_file=2, cpu_seconds=0.02)
    assert _collected(bench, tmp_path) == 3
    namespace: dict[str, object] = {}
    exec((tmp_path / "tests" / "test_gen_000.py").read_text(), namespace)
    before = time.process_time()
    namespace["test_0"]()  # type: ignore[operator]
    assert time.process_time() - before >= 0.02


def test_project_is_a_git_repository_with_one_commit(bench: ModuleType, tmp_path: Path) -> None:
    bench.write_project(tmp_path, 1)
    log = subprocess.run(["git", "log", "--format=%s"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert log.stdout.splitlines() == ["generated suite"]


def test_bad_sizes_are_refused(bench: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one test"):
        bench.write_project(tmp_path, 0)


def test_child_env_isolates_the_runs(bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTEST_STORE_URL", "memory://")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-x")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")  # would turn recording off
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = bench.child_env(tmp_path)
    assert not {"MLTEST_STORE_URL", "PYTEST_ADDOPTS", "GITHUB_EVENT_NAME", "PYTHONDONTWRITEBYTECODE"} & set(env)
    assert env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert env["PYTHONPYCACHEPREFIX"] == str(tmp_path)
    assert env["PATH"] == os.environ["PATH"]


def test_commands_differ_only_in_the_mltest_plugin(bench: ModuleType) -> None:
    serial = {mode: bench.command(bench.Config("trivial", mode, 0)) for mode in bench.MODES}
    parallel = {mode: bench.command(bench.Config("trivial", mode, 2)) for mode in bench.MODES}
    # bare pytest loads an empty plugin by name too: pytest's search for a -p name is in every mode
    assert serial["bare"][-4:] == ["-p", "no:mltest", "-p", bench.NOOP_PLUGIN]
    assert serial["record"][-2:] == ["-p", "mltest"]
    assert serial["no-record"][-3:] == ["-p", "mltest", "--mltest-no-record"]
    for mode in bench.MODES:
        assert parallel[mode] == [*serial[mode], "-p", "xdist", "-n", "2"]


def _results(
    bench: ModuleType,
    *,
    serial: float,
    parallel: float,
    cpu: tuple[float, float, float, float],
    bare: tuple[float, float] = (1.0, 2.0),
) -> object:
    """Results for 2000 trivial tests: bare pytest at ``bare`` (serial, -n 2), recording off 1 % over
    it, recording on at ``serial`` / ``parallel``; ``cpu``: bare and recording on, serial then -n 2."""
    o = bench.Overhead
    return bench.Results(
        overhead=[o(2000, 0, bare[0], bare[0] * 1.01, serial), o(2000, 2, bare[1], bare[1] * 1.01, parallel)],
        fixed=[o(1, 0, 0.4, 0.45, 0.6), o(1, 2, 1.2, 1.25, 1.4)],
        cpu=[o(40, 0, cpu[0], math.nan, cpu[1]), o(40, 2, cpu[2], math.nan, cpu[3])],
        cpu_seconds=0.05,
        rounds=5,
        spread={},
        load=(0.0, 0.0),
    )


def test_rows_meet_the_targets_on_good_numbers(bench: ModuleType) -> None:
    # +2 % and 0.1 ms/test serially; +1 % and 0.1 ms/test with -n 2; 4.0 s -> 2.2 s is 1.82x.
    rows = bench.rows(_results(bench, serial=1.02, parallel=2.02, cpu=(4.0, 4.0, 2.1, 2.2)))
    by_metric = {r.metric: r for r in rows}
    assert list(by_metric) == [
        "overhead_record_serial_pct",
        "overhead_record_n2_pct",
        "overhead_norecord_serial_pct",
        "overhead_norecord_n2_pct",
        "speedup_n2",
    ]
    serial = by_metric["overhead_record_serial_pct"]
    assert serial.value == pytest.approx(2.0)
    assert serial.unit == "%"
    assert serial.met is True
    assert serial.higher_is_better is False
    assert "+0.010 ms/test" in serial.shown
    assert by_metric["overhead_record_n2_pct"].met is True
    assert by_metric["overhead_norecord_serial_pct"].value == pytest.approx(1.0)
    assert by_metric["overhead_norecord_serial_pct"].met is None  # informational
    speed = by_metric["speedup_n2"]
    assert speed.value == pytest.approx(4.0 / 2.2)
    assert speed.met is True
    assert speed.higher_is_better is True
    assert "1.90x" in speed.comparison  # bare pytest-xdist: 4.0 / 2.1
    assert all(r.benchmark == "harness" for r in rows)


def test_each_overhead_target_can_fail_on_its_own(bench: ModuleType) -> None:
    # 4 % of 1 s is 0.02 ms/test: the percentage misses, the per-test cost does not.
    pct_only = {r.metric: r for r in bench.rows(_results(bench, serial=1.04, parallel=2.0, cpu=(4, 4, 2, 2)))}
    assert pct_only["overhead_record_serial_pct"].met is False
    assert pct_only["overhead_record_n2_pct"].met is True
    # 2000 tests on a 20 s bare run: +0.5 s is 2.5 % but 0.25 ms/test, the per-test cost misses.
    slow = bench.rows(_results(bench, serial=20.5, parallel=40.0, cpu=(4, 4, 2, 2), bare=(20.0, 40.0)))
    ms_only = {r.metric: r for r in slow}
    assert ms_only["overhead_record_serial_pct"].value == pytest.approx(2.5)
    assert "+0.250 ms/test" in ms_only["overhead_record_serial_pct"].shown
    assert ms_only["overhead_record_serial_pct"].met is False
    assert ms_only["overhead_record_n2_pct"].met is True


def test_speedup_below_the_target_is_missed(bench: ModuleType) -> None:
    rows = {r.metric: r for r in bench.rows(_results(bench, serial=1.0, parallel=2.0, cpu=(4.0, 4.0, 2.5, 2.5)))}
    assert rows["speedup_n2"].value == pytest.approx(1.6)
    assert rows["speedup_n2"].met is False


def test_fixed_and_marginal_cost(bench: ModuleType) -> None:
    big = bench.Overhead(2001, 0, 1.0, 1.0, 1.5)
    one = bench.Overhead(1, 0, 0.4, 0.4, 0.6)
    fixed, marginal = bench.fixed_and_marginal(big, one, "record")
    assert fixed == pytest.approx(0.2)
    assert marginal == pytest.approx(0.3 / 2000 * 1000)


def test_report_has_the_markers_and_every_configuration(bench: ModuleType) -> None:
    text = bench.report(_results(bench, serial=1.02, parallel=2.02, cpu=(4.0, 4.0, 2.1, 2.2)), "CMD")
    assert text.startswith(bench.HEADING)
    assert text.count(bench.START) == 1
    assert text.rstrip().endswith(bench.END)
    assert "`CMD`" in text
    assert "interpreter start-up" in text
    assert "2000 trivial tests | serial | mltest, recording on | 1.020 s" in text
    assert "40 CPU-bound tests | -n 2 | bare pytest | 2.100 s" in text


def test_a_tiny_real_measurement(bench: ModuleType) -> None:
    results = bench.measure(20, rounds=1, cpu_tests=2, cpu_seconds=0.01, warmup=False)
    for group, tests in ((results.overhead, 20), (results.fixed, 1), (results.cpu, 2)):
        assert [(o.tests, o.workers) for o in group] == [(tests, 0), (tests, 2)]
        for o in group:
            assert o.bare > 0
            assert o.record > 0
    assert all(o.no_record > 0 for o in (*results.overhead, *results.fixed))
    assert len(results.spread) == 16  # 2 projects x 3 modes x 2 worker counts, and 4 CPU-bound
    rows = bench.rows(results)
    assert len(rows) == 5
    assert all(math.isfinite(r.value) for r in rows)
    assert rows[-1].value > 0
    section = bench.report(results, "python -m benchmarks.harness")
    assert bench.START in section
    assert bench.END in section
