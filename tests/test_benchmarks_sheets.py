"""The Google Sheets sync benchmark (benchmarks/sheets.py) on a tiny backlog against the local Sheets API
(tests/store/sheets_server.py): it counts the requests it says, judges its targets both ways and its
section sits between its markers."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.integration  # starts a local HTTP server and a Python subprocess

BENCHMARK = "sheets"  # the module the shared ``bench`` fixture (tests/conftest.py) imports


def test_a_tiny_backlog_end_to_end(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    startup = bench.startup_seconds
    monkeypatch.setattr(bench, "startup_seconds", lambda: startup(1))
    module = bench.sheets_server()
    serve = module._Handler._serve
    result = bench.measure(bench.Sizes(runs=2, naive_runs=1))
    assert module._Handler._serve is serve  # the counting wrapper is taken off again

    backlog, again, nightly, naive = result.backlog, result.again, result.nightly, result.naive
    per_run = bench.MEASUREMENTS_PER_RUN
    # A new worksheet: addSheet + header + one append for both runs; metadata, header and run ids read.
    assert (backlog.sent_runs, backlog.sent_rows) == (2, 2 * per_run)
    assert (backlog.tokens, backlog.reads, backlog.writes, backlog.http) == (1, 3, 3, 7)
    assert (again.sent_runs, again.writes, again.reads, again.http) == (0, 0, 0, 0)
    assert (nightly.sent_runs, nightly.sent_rows) == (1, per_run)
    assert (nightly.tokens, nightly.reads, nightly.writes, nightly.http) == (1, 3, 1, 5)
    assert result.rows_in_sheet == result.expected_rows == 3 * per_run
    assert result.duplicated == 0
    assert (naive.runs, naive.rows, naive.writes) == (1, per_run, per_run)  # one request per row
    assert naive.writes_for(200) == 200 * per_run
    assert 0 < backlog.server_s < backlog.wall_s
    assert backlog.waited_s == 0.0  # 3 writes and 3 reads fit the default burst
    assert result.startup_s > 0
    assert result.bucket == "54 a minute, burst 5"

    rows = bench.rows(result)
    assert [r.metric_name for r in rows] == [
        "backlog_appends_per_run",
        "rows_in_sheet",
        "backlog_wall_time",
        "nightly_writes",
        "nightly_client_time",
        "resync_writes",
    ]
    assert all(math.isfinite(r.value) for r in rows)
    assert [r.met for r in rows] == [True, True, None, True, True, True]
    assert rows[0].value == pytest.approx(0.5)  # 1 append for 2 runs (the worksheet's creation aside)
    assert rows[0].shown == "0.500 (1 append; + 2 to create the worksheet)"
    assert rows[4].value == pytest.approx(result.startup_s + nightly.client_s)


def _result(
    bench: ModuleType, *, writes: int, nightly_writes: int, again_writes: int, client_s: float, rows: int
) -> Any:
    def sync(label: str, runs: int, writes: int, wall_s: float, setup: int = 0) -> Any:
        return bench.Sync(label, runs, runs * 100, writes, writes - setup, 3, 1, writes + 4, wall_s, 0.1, 0.0)

    return bench.Result(
        bench.Sizes(runs=200, naive_runs=3),
        backlog=sync("backlog", 200, writes, 5.0, setup=2),
        again=sync("again", 0, again_writes, 0.05),
        nightly=sync("nightly", 1, nightly_writes, client_s + 0.1),
        naive=bench.Naive(3, 300, 300, 2, 0.3, 0.1),
        rows_in_sheet=rows,
        duplicated=0,
        expected_rows=20_100,
        bucket="54 a minute, burst 5",
        startup_s=0.5,
    )


def test_targets_met(bench: ModuleType) -> None:
    good = _result(bench, writes=12, nightly_writes=1, again_writes=0, client_s=0.3, rows=20_100)
    rows = bench.rows(good)
    assert [r.met for r in rows] == [True, True, None, True, True, True]
    assert rows[0].value == pytest.approx(0.05)  # 10 appends for 200 runs
    assert rows[0].ratio == "1,667x fewer"
    assert "extrapolated from 3 run(s)" in rows[0].comparison
    assert rows[4].value == pytest.approx(0.8)  # startup + (wall - server - waits)
    assert "≥ 5.6 h" in rows[2].comparison  # 20,000 single-row appends at 60 a minute


def test_targets_missed(bench: ModuleType) -> None:
    bad = _result(bench, writes=203, nightly_writes=2, again_writes=1, client_s=1.6, rows=20_000)
    rows = bench.rows(bad)
    assert [r.met for r in rows] == [False, False, None, False, False, False]
    assert rows[4].value == pytest.approx(2.1)
    assert all(math.isfinite(r.value) for r in rows)
    assert "**no**" in bench.report(bad, "cmd")
    quota = bench.Sync("nightly", 1, 100, 61, 61, 3, 1, 65, 0.2, 0.1, 0.0)
    assert bench.rows(bench.Result(**{**bad.__dict__, "nightly": quota}))[4].met is False  # over the quota


def test_the_section_sits_between_its_markers(bench: ModuleType, tmp_path: Path) -> None:
    good = _result(bench, writes=12, nightly_writes=1, again_writes=0, client_s=0.3, rows=20_100)
    section = bench.report(good, "python -m benchmarks.sheets --write")
    assert section.startswith(bench.HEADING)
    assert section.count(bench.START) == section.count(bench.END) == 1
    assert section.index(bench.START) < section.index("| sync |") < section.index(bench.END)
    assert section.rstrip().endswith(bench.END)
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        f"# Benchmarks\n\n{bench.HEADING}\n\n{bench.START}\nold\n{bench.END}\n\n## Next\n", encoding="utf-8"
    )
    importlib.import_module("benchmarks._common").write_section(section, bench.START, bench.END, path)
    text = path.read_text(encoding="utf-8")
    assert "old" not in text
    assert text.count(bench.START) == 1
    assert text.index(bench.START) < text.index("| case | mltest |") < text.index(bench.END) < text.index("## Next")
