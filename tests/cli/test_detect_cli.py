"""`mltest check`, `mltest ack` and `mltest compare` against a real SQLite store filled through the store API.

Every history is synthetic and seeded (numpy ``default_rng``): commits ``commit 0 .. commit N-1`` on a
first-parent chain (each run records its whole ancestry, so the store orders commits by history), runs
on one A100 with driver 550 unless a test says otherwise. The commands run in-process through
``mltest.cli.main``; assertions cover the exit code and what the user reads (text or ``--json``).
``mltest check`` prints the report of ``mltest report`` (one model, one terminal renderer, the report
JSON with ``--json``): its text and JSON are compared with the renderers' output here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from mltest.cli import main
from mltest.cli.detect_cmds import analyze
from mltest.cli.report_cmd import build_report, terminal
from mltest.config import load_settings
from mltest.model import Commit, Environment, Measurement, Run
from mltest.report.jsonout import render_json, report_schema
from mltest.report.text import render_text
from mltest.store import open_store

PROJECT = "proj"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
Measure = Callable[[int], Sequence[Measurement]]


# ----------------------------------------------------------------------------- helpers


def environment(driver: str = "550") -> Environment:
    return Environment(
        "3.11", "linux-x86_64", "runner-1", "Xeon", 16, "0.1.0", gpu_model="A100", gpu_count=1, driver=driver
    )


def sha(i: int, branch: str = "main") -> str:
    return hashlib.sha1(f"{branch}:{i}".encode()).hexdigest()


def store_url(root: Path) -> str:
    return f"sqlite:///{root}/results.db"


def record_history(
    root: Path,
    n: int,
    measure: Measure,
    *,
    every: int = 1,
    branch: str = "main",
    start: int = 0,
    base: Sequence[str] = (),
    driver: Callable[[int], str] = lambda i: "550",
    project: str = PROJECT,
) -> list[str]:
    """Commits ``start .. n-1`` of ``branch`` on top of ``base`` (older shas, oldest first); a run at
    every ``every``-th commit, but the ancestry of each run covers every commit. Returns the chain."""
    store = open_store(store_url(root), root=root)
    chain = list(base)
    try:
        for i in range(start, n):
            ancestry = tuple(reversed(chain))
            chain.append(sha(i, branch))
            if i % every:
                continue
            when = (T0 + timedelta(hours=i)).isoformat()
            commit = Commit(
                sha(i, branch),
                branch,
                parents=ancestry[:1],
                subject=f"commit {i}",
                committed_at=when,
                ancestry=ancestry,
            )
            run = Run(f"{branch}-{i}", project, "integration", commit, environment(driver(i)), started_at=when)
            store.begin_run(run)
            store.add_results(run.run_id, [], list(measure(i)))
            store.finish_run(run.run_id, "passed", when)
    finally:
        store.close()
    return chain


def timing(
    rng: np.random.Generator, test: str, level: float, *, metric: str = "step_time", sd: float = 0.02
) -> Measurement:
    """A step time of five repeats around ``level`` (relative noise ``sd``), lower is better by its unit."""
    samples = tuple(float(v) for v in level * (1 + sd * rng.standard_normal(5)))
    return Measurement(test, metric, float(np.median(samples)), "s", None, samples)


def accuracy(rng: np.random.Generator, test: str, level: float, support: int = 10_000) -> Measurement:
    value = float(rng.binomial(support, level) / support)
    return Measurement(test, "accuracy", value, None, True, (value,), support=support)


def write_config(root: Path, extra: str = "") -> None:
    (root / "pyproject.toml").write_text(
        f'[tool.mltest]\nproject = "{PROJECT}"\nstore_url = "sqlite:///results.db"\n{extra}', encoding="utf-8"
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory (the cwd) with ``[tool.mltest]``; no git repository around it."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path)
    return tmp_path


def cli(root: Path, command: str, *args: str) -> int:
    return main([command, *args, "--project-dir", str(root)])


def check_json(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    """``mltest check --json``: the report JSON, valid against the report's schema."""
    import jsonschema  # a test dependency (pyproject: test extra): never skipped

    code = cli(root, "check", "--json", *args)
    data = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    return code, data


def check_text(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """``mltest check``'s exit code and lines (plain: the output is not a terminal)."""
    code = cli(root, "check", *args)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    return code, out.splitlines()


def block(lines: list[str], head: str) -> list[str]:
    """The lines of the entry whose first line starts with ``head``, up to the next blank line."""
    start = next(i for i, line in enumerate(lines) if line.startswith(head))
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def pairs(entry: dict) -> set[tuple[str, str]]:
    return {(f["test"], f["metric"]) for f in entry["findings"]}


# ----------------------------------------------------------------------------- check


def test_check_clean_history_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(11)
    record_history(
        project,
        60,
        lambda i: [timing(rng, "t.py::a", 0.1), timing(rng, "t.py::b", 0.25), accuracy(rng, "t.py::eval", 0.9)],
    )
    code, lines = check_text(project, capsys)
    assert code == 0
    assert lines[0] == "mltest check: proj, branch main: 3 series over 60 commits"
    assert lines[1] == "no new regressions: 0 new, 0 acknowledged, 0 recovered, 0 improvements, 0 environment changes"
    assert not any("REGRESSIONS (" in line for line in lines)
    code, report = check_json(project, capsys)
    assert code == 0
    assert report["counts"]["new"] == 0
    assert report["counts"]["series"] == 3
    assert report["entries"] == []


def _step_at_40(rng: np.random.Generator) -> Measure:
    def measure(i: int) -> list[Measurement]:
        slow = 1.3 if i >= 40 else 1.0
        throughput = 1000 / slow * (1 + 0.02 * rng.standard_normal())
        return [
            timing(rng, "t.py::a", 0.1 * slow),
            Measurement("t.py::a", "throughput", float(throughput), "items/s", True),
            timing(rng, "t.py::b", 0.2 * slow),
        ]

    return measure


def test_check_one_culprit_is_one_entry_listing_every_affected_metric(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_history(project, 60, _step_at_40(np.random.default_rng(1)))
    code, lines = check_text(project, capsys)
    assert code == 1
    assert lines[1].startswith("1 new regression: 1 new, 0 acknowledged,")
    assert lines[3] == "NEW REGRESSIONS (1)"
    headers = [line for line in lines if line.startswith("r-")]
    assert len(headers) == 1
    assert headers[0].endswith(f"  culprit {sha(40)[:10]}  commit 40")
    rid = headers[0].split()[0]
    entry_lines = block(lines, rid)
    # grouped by test (and environment key), one row per metric
    assert entry_lines[1] == "    t.py::a  [A100 x1]"
    assert entry_lines[2].startswith("      step_time ")
    assert entry_lines[3].startswith("      throughput ")
    assert entry_lines[4] == "    t.py::b  [A100 x1]"
    assert entry_lines[5].startswith("      step_time ")
    assert " ms → " in entry_lines[2]
    assert "%  confidence " in entry_lines[2]
    assert entry_lines[-1] == f'    if this is expected: mltest ack {rid} --reason "..."'

    code, report = check_json(project, capsys)
    assert code == 1
    assert report["counts"]["new"] == 1
    [entry] = report["entries"]
    assert entry["id"] == rid
    assert (entry["kind"], entry["status"]) == ("regression", "new")
    assert (entry["good"], entry["bad"], entry["culprit"]) == (sha(39), sha(40), sha(40))
    assert entry["commits"] == [sha(40)]
    assert pairs(entry) == {("t.py::a", "step_time"), ("t.py::a", "throughput"), ("t.py::b", "step_time")}
    changes = {(f["test"], f["metric"]): f["rel_change"] for f in entry["findings"]}
    assert changes[("t.py::a", "step_time")] == pytest.approx(0.3, abs=0.03)
    assert changes[("t.py::b", "step_time")] == pytest.approx(0.3, abs=0.03)
    assert changes[("t.py::a", "throughput")] == pytest.approx(1 / 1.3 - 1, abs=0.03)
    assert all(f["kind"] == "regression" and f["status"] == "open" for f in entry["findings"])


def test_check_sparse_runs_report_the_range_from_first_parent_history(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2)
    record_history(project, 80, lambda i: [timing(rng, "t.py::a", 0.1 * (1.3 if i >= 42 else 1.0))], every=4)
    code, report = check_json(project, capsys)
    assert code == 1
    [entry] = report["entries"]
    assert (entry["good"], entry["bad"], entry["culprit"]) == (sha(40), sha(44), None)
    assert entry["commits"] == [sha(i) for i in (41, 42, 43, 44)]

    code, lines = check_text(project, capsys)
    assert code == 1
    assert lines[0] == "mltest check: proj, branch main: 1 series over 20 commits"
    at = next(i for i, line in enumerate(lines) if line.startswith(entry["id"]))
    assert lines[at] == (f"{entry['id']}  between {sha(40)[:10]} (last good) and {sha(44)[:10]} (first bad): 4 commits")
    # Only the measured commit's subject is known (no git here): the others are listed by sha.
    assert lines[at + 1 : at + 5] == [
        f"      {sha(41)[:10]}",
        f"      {sha(42)[:10]}",
        f"      {sha(43)[:10]}",
        f"      {sha(44)[:10]}  commit 44",
    ]


def test_check_recovered_regression_names_the_fix_and_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(project, "[tool.mltest.metrics.accuracy]\ntolerance_abs = 0.005\n")
    rng = np.random.default_rng(3)
    record_history(project, 60, lambda i: [accuracy(rng, "t.py::eval", 0.88 if 30 <= i < 40 else 0.90)])
    code, report = check_json(project, capsys)
    assert code == 0
    assert report["counts"]["new"] == 0
    [entry] = report["entries"]
    assert (entry["kind"], entry["status"], entry["culprit"]) == ("regression", "recovered", sha(30))
    [finding] = entry["findings"]
    assert (finding["status"], finding["fixed_after"], finding["fixed_by"]) == ("recovered", sha(39), sha(40))
    assert finding["before"] == pytest.approx(0.90, abs=0.003)
    assert finding["after"] == pytest.approx(0.88, abs=0.003)

    code, lines = check_text(project, capsys)
    assert code == 0
    assert lines[1].startswith("no new regressions: 0 new, 0 acknowledged, 1 recovered,")
    assert not any("REGRESSIONS (" in line for line in lines)
    assert "(1 recovered, improvement and environment entries not shown: --all shows them)" in lines
    code, lines = check_text(project, capsys, "--all")
    assert code == 0
    assert "RECOVERED REGRESSIONS (1)" in lines
    entry_lines = block(lines, entry["id"])
    assert entry_lines[0] == f"{entry['id']}  culprit {sha(30)[:10]}  commit 30"
    assert entry_lines[-1] == f"        recovered at {sha(40)[:10]}"
    assert not any("not shown" in line for line in lines)


def test_check_drift_of_small_steps_is_reported_once_beyond_tolerance(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, "[tool.mltest.metrics.step_time]\ntolerance = 0.05\n")
    rng = np.random.default_rng(4)
    record_history(project, 80, lambda i: [timing(rng, "t.py::a", 0.1 * 1.03 ** (i // 20), sd=0.003)])
    code, report = check_json(project, capsys)
    assert code == 1
    [entry] = report["entries"]  # no single step is a regression
    assert (entry["kind"], entry["status"]) == ("drift", "new")
    # From the first +3 % step (commit 20) to the one that took the total past 5 % (commit 40).
    assert (entry["good"], entry["bad"], entry["culprit"]) == (sha(19), sha(40), None)
    assert entry["commits"] == [sha(i) for i in range(20, 41)]
    [finding] = entry["findings"]
    assert finding["steps"] == 2
    assert finding["rel_change"] == pytest.approx(1.03**2 - 1, abs=0.01)

    code, lines = check_text(project, capsys)
    assert code == 1
    entry_lines = block(lines, entry["id"])
    assert entry_lines[0] == (
        f"{entry['id']}  drift  between {sha(19)[:10]} (last good) and {sha(40)[:10]} (first bad): 21 commits"
    )
    step = entry_lines.index("    t.py::a  [A100 x1]")
    assert entry_lines[step + 1].startswith("      step_time  ")
    assert entry_lines[step + 2] == f"        2 steps at {sha(20)[:10]}, {sha(40)[:10]}"


def test_check_environment_change_is_not_blamed_on_the_commit(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(5)
    record_history(
        project,
        60,
        lambda i: [timing(rng, "t.py::a", 0.1 * (1.2 if i >= 30 else 1.0))],
        driver=lambda i: "560" if i >= 30 else "550",
    )
    code, report = check_json(project, capsys)
    assert code == 0
    assert report["counts"]["new"] == 0
    [entry] = report["entries"]
    assert (entry["kind"], entry["status"]) == ("environment", "open")
    assert entry["bad"] == sha(30)
    [finding] = entry["findings"]
    assert finding["kind"] == "environment"
    assert finding["note"] == "A100 x1, driver 550 -> A100 x1, driver 560"
    assert finding["rel_change"] == pytest.approx(0.2, abs=0.04)

    code, lines = check_text(project, capsys)
    assert code == 0
    assert lines[1] == "no new regressions: 0 new, 0 acknowledged, 0 recovered, 0 improvements, 1 environment change"
    assert not any("REGRESSIONS (" in line for line in lines)
    code, lines = check_text(project, capsys, "--all")
    assert code == 0
    assert "ENVIRONMENT CHANGES (1)" in lines
    entry_lines = block(lines, entry["id"])
    assert entry_lines[0] == f"{entry['id']}  culprit {sha(30)[:10]}  commit 30"
    assert entry_lines[-1] == "        A100 x1, driver 550 -> A100 x1, driver 560"


def test_check_improvement_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(6)
    record_history(project, 60, lambda i: [timing(rng, "t.py::a", 0.1 * (0.7 if i >= 30 else 1.0))])
    code, report = check_json(project, capsys)
    assert code == 0
    [entry] = report["entries"]
    assert (entry["kind"], entry["status"], entry["culprit"]) == ("improvement", "open", sha(30))
    assert entry["findings"][0]["rel_change"] == pytest.approx(-0.3, abs=0.03)
    code, lines = check_text(project, capsys)
    assert code == 0
    assert lines[1] == "no new regressions: 0 new, 0 acknowledged, 0 recovered, 1 improvement, 0 environment changes"
    code, lines = check_text(project, capsys, "--all")
    assert code == 0
    assert "IMPROVEMENTS (1)" in lines
    row = block(lines, entry["id"])[2]
    assert re.fullmatch(r" {6}step_time  \d+(\.\d+)? ms → \d+(\.\d+)? ms +-[23]\d\.\d%  confidence >?\d+\.\d%", row)


def test_check_branch_filter_ignores_other_branches(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(7)
    main_chain = record_history(project, 40, lambda i: [timing(rng, "t.py::a", 0.1)])
    record_history(
        project,
        40,
        lambda i: [timing(rng, "t.py::a", 0.1 * (1.3 if i >= 20 else 1.0))],
        branch="feature",
        base=main_chain[:31],
    )
    code, lines = check_text(project, capsys, "--branch", "main")
    assert code == 0
    assert lines[:2] == ["mltest check: proj, branch main: 1 series over 40 commits", lines[1]]
    assert lines[1].startswith("no new regressions: 0 new")
    # The feature branch itself does have the regression.
    code, report = check_json(project, capsys, "--branch", "feature")
    assert code == 1
    assert report["branch"] == "feature"
    [entry] = report["entries"]
    assert entry["culprit"] == sha(20, "feature")


def test_check_of_an_empty_store_passes_and_says_so(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(project, "check") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("mltest check: proj, branch main: 0 series over 0 commits\nno new regressions")
    assert "nothing recorded in sqlite:///results.db yet" in captured.err


def test_check_of_a_project_with_no_runs_is_an_error_naming_the_recorded_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt project name must not pass every check with "0 series"."""
    rng = np.random.default_rng(3)
    record_history(project, 12, lambda i: [timing(rng, "t.py::a", 0.1)], project="other")
    record_history(project, 12, lambda i: [timing(rng, "t.py::a", 0.1)], project="third", branch="x")
    assert cli(project, "check") == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "mltest: error: no runs of project 'proj' in sqlite:///results.db; it holds 'other', 'third': "
        "set `project` in [tool.mltest] or run from that project"
    )


def test_check_of_a_branch_with_no_runs_is_an_error_naming_the_recorded_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    record_history(project, 12, lambda i: [timing(rng, "t.py::a", 0.1)], branch="master")
    assert cli(project, "check") == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "mltest: error: no runs of project 'proj' on branch 'main'; recorded branches: master "
        "(choose one with --branch)"
    )
    assert cli(project, "check", "--branch", "master") == 0


@pytest.mark.parametrize("configured", [False, True])
def test_check_skips_metrics_of_unknown_direction(
    project: Path, capsys: pytest.CaptureFixture[str], configured: bool
) -> None:
    if configured:
        write_config(project, "[tool.mltest.metrics.foo_metric]\nhigher_is_better = true\n")
    rng = np.random.default_rng(8)

    def measure(i: int) -> list[Measurement]:
        foo = float(rng.normal(1.0, 0.01) * (0.5 if i >= 30 else 1.0))
        return [timing(rng, "t.py::a", 0.1), Measurement("t.py::a", "foo_metric", foo)]

    record_history(project, 60, measure)
    code = cli(project, "check")
    out = capsys.readouterr().out
    skipped = "skipped (direction unknown; set higher_is_better in [tool.mltest.metrics.NAME]): foo_metric"
    if configured:
        assert code == 1  # halving a higher-is-better metric
        assert skipped not in out
        assert f"  culprit {sha(30)[:10]}  commit 30" in out
    else:
        assert code == 0
        assert skipped in out.splitlines()


def test_check_bad_store_scheme_is_a_one_line_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(project, "check", "--store", "ftp://host/results.db") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("mltest: error: unsupported store URL scheme 'ftp'")


def test_check_refuses_a_store_of_a_newer_schema(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(9)
    record_history(project, 10, lambda i: [timing(rng, "t.py::a", 0.1)])
    engine = sa.create_engine(f"sqlite:///{project}/results.db")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE meta SET value='99' WHERE key='schema_version'")
    finally:
        engine.dispose()
    for command in (["check"], ["compare"], ["ack", "r-00000000", "--reason", "x"]):
        assert cli(project, *command) == 2, command
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1
        assert "has schema version 99, written by a newer mltest" in captured.err
        assert "upgrade mltest" in captured.err
    # Refusing it did not touch it.
    engine = sa.create_engine(f"sqlite:///{project}/results.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT value FROM meta WHERE key='schema_version'").scalar() == "99"
    finally:
        engine.dispose()


class _Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


SGR = re.compile(r"\x1b\[[0-9;]*m")


def test_check_prints_the_report_of_mltest_report(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One model, one terminal renderer: ``mltest check`` prints ``render_text`` of the report model
    (titled ``mltest check``) and, with ``--json``, ``render_json`` of it."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CI_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr("mltest.cli.report_cmd.utc_now", lambda: "2026-02-01T00:00:00+00:00")
    write_config(project, "[tool.mltest.metrics.accuracy]\ntolerance_abs = 0.005\n")
    rng = np.random.default_rng(3)
    step = _step_at_40(rng)
    record_history(project, 60, lambda i: [*step(i), accuracy(rng, "t.py::eval", 0.88 if 10 <= i < 20 else 0.90)])
    settings = load_settings(project, environ={})
    store = open_store(settings.store_url, root=project)
    try:
        analysis = analyze(settings, store, branch="main")
        report = build_report(settings, store, analysis)
    finally:
        store.close()
    assert [e.status for e in report.entries] == ["new", "recovered"]

    assert cli(project, "check") == 1
    out = capsys.readouterr().out
    assert out == render_text(report, title="mltest check", width=240, show_all=False)
    assert "RECOVERED" not in out
    assert cli(project, "check", "--all") == 1
    out = capsys.readouterr().out
    assert out == render_text(report, title="mltest check", width=240)
    assert "RECOVERED REGRESSIONS (1)" in out
    assert cli(project, "check", "--json") == 1
    assert capsys.readouterr().out == render_json(report)
    assert cli(project, "report", "--format", "json") == 0
    assert capsys.readouterr().out == render_json(report)
    assert any(s.change_points for s in report.series)
    assert cli(project, "report") == 0
    assert capsys.readouterr().out == render_text(report, width=240)


def test_check_colours_a_terminal_unless_no_color(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record_history(project, 60, _step_at_40(np.random.default_rng(1)))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "90")  # the terminal's width (shutil.get_terminal_size reads it first)

    def run(*args: str) -> tuple[int, str]:
        tty = _Terminal()
        monkeypatch.setattr(sys, "stdout", tty)
        code = cli(project, "check", *args)
        monkeypatch.setattr(sys, "stdout", sys.__stdout__)
        return code, tty.getvalue()

    code, out = run()
    assert code == 1
    assert "\x1b[1;31mNEW REGRESSIONS (1)\x1b[0m" in out.splitlines()
    assert "\x1b[1;31m1 new regression\x1b[0m" in out
    assert max(len(SGR.sub("", line)) for line in out.splitlines()) <= 90
    code, out = run("--json")
    assert code == 1
    assert "\x1b" not in out
    assert json.loads(out)["counts"]["new"] == 1
    monkeypatch.setenv("NO_COLOR", "1")
    code, out = run()
    assert code == 1
    assert "\x1b" not in out
    assert "NEW REGRESSIONS (1)" in out.splitlines()


def test_terminal_colour_and_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "132")
    assert terminal(io.StringIO(), {}) == (False, 240)  # a file or a CI log: wide, plain
    assert terminal(_Terminal(), {}) == (True, 132)
    assert terminal(_Terminal(), {"NO_COLOR": "1"}) == (False, 132)
    assert terminal(_Terminal(), {"NO_COLOR": ""}) == (True, 132)  # empty is unset (no-color.org)


# ----------------------------------------------------------------------------- ack


def test_ack_makes_check_pass_and_survives_reopening(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record_history(project, 60, _step_at_40(np.random.default_rng(1)))
    _, report = check_json(project, capsys)
    rid = report["entries"][0]["id"]

    assert cli(project, "ack", rid, "--reason", "bigger model", "--by", "alice") == 0
    assert capsys.readouterr().out == f"acknowledged {rid} (REGRESSION at {sha(40)[:10]}): bigger model\n"

    store = open_store(store_url(project), root=project)
    try:
        [ack] = [a for a in store.acknowledgements() if a.target == rid]
    finally:
        store.close()
    assert (ack.target, ack.reason, ack.who) == (rid, "bigger model", "alice")

    code, lines = check_text(project, capsys)
    assert code == 0
    assert lines[1].startswith("no new regressions: 0 new, 1 acknowledged,")
    assert "ACKNOWLEDGED REGRESSIONS (1)" in lines
    entry_lines = block(lines, rid)
    assert entry_lines[0] == f"{rid}  culprit {sha(40)[:10]}  commit 40"
    assert entry_lines[-1] == f"    acknowledged: bigger model (alice, {ack.at[:10]})"
    assert not any("mltest ack" in line for line in lines)
    code, report = check_json(project, capsys)
    assert code == 0
    [entry] = report["entries"]
    assert entry["status"] == "acknowledged"
    assert entry["acknowledged"].startswith("bigger model (alice, ")


def test_ack_of_the_finding_of_a_single_finding_entry(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(12)
    record_history(project, 50, lambda i: [timing(rng, "t.py::a", 0.1 * (1.3 if i >= 25 else 1.0))])
    _, report = check_json(project, capsys)
    [entry] = report["entries"]
    [finding] = entry["findings"]
    assert finding["id"].startswith("f-")
    assert cli(project, "ack", finding["id"], "--reason", "expected", "--by", "bob") == 0
    assert capsys.readouterr().out.startswith(f"acknowledged {finding['id']} (REGRESSION at {sha(25)[:10]})")
    code, lines = check_text(project, capsys)
    assert code == 0
    assert "ACKNOWLEDGED REGRESSIONS (1)" in lines
    assert block(lines, entry["id"])[-1].startswith("    acknowledged: expected (bob, ")


def test_ack_of_one_finding_of_a_group_leaves_the_entry_failing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An entry is acknowledged when it, or every one of its findings, is."""
    record_history(project, 60, _step_at_40(np.random.default_rng(1)))
    _, report = check_json(project, capsys)
    [entry] = report["entries"]
    first, *rest = (f["id"] for f in entry["findings"])
    assert cli(project, "ack", first, "--reason", "expected", "--by", "bob") == 0
    capsys.readouterr()
    code, lines = check_text(project, capsys)
    assert code == 1
    assert lines[lines.index("NEW REGRESSIONS (1)") + 2].startswith(entry["id"])
    for fid in rest:
        assert cli(project, "ack", fid, "--reason", "expected", "--by", "bob") == 0
    capsys.readouterr()
    code, lines = check_text(project, capsys)
    assert code == 0
    assert lines[lines.index("ACKNOWLEDGED REGRESSIONS (1)") + 2].startswith(entry["id"])


def test_ack_unknown_id_lists_the_open_ones(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record_history(project, 60, _step_at_40(np.random.default_rng(1)))
    _, report = check_json(project, capsys)
    rid = report["entries"][0]["id"]
    assert cli(project, "ack", "r-nope", "--reason", "bigger model") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"mltest: error: no regression or finding with id 'r-nope' on main: {rid}\n"


@pytest.mark.parametrize("reason", ["", "   "])
def test_ack_needs_a_reason(project: Path, capsys: pytest.CaptureFixture[str], reason: str) -> None:
    record_history(project, 60, _step_at_40(np.random.default_rng(1)))
    _, report = check_json(project, capsys)
    rid = report["entries"][0]["id"]
    assert cli(project, "ack", rid, "--reason", reason) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--reason is empty" in err
    assert cli(project, "check") == 1  # nothing was stored
    capsys.readouterr()


def test_ack_survives_new_points_inside_the_acknowledged_range(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2)

    def measure(i: int) -> list[Measurement]:
        return [timing(rng, "t.py::a", 0.1 * (1.3 if i >= 42 else 1.0))]

    chain = record_history(project, 60, measure, every=4)
    _, report = check_json(project, capsys)
    rid = report["entries"][0]["id"]
    assert cli(project, "ack", rid, "--reason", "bigger model", "--by", "alice") == 0
    assert cli(project, "check") == 0
    # A bisect measures commits 41 and 42 inside the acknowledged range 40..44.
    for i in (41, 42):
        record_history(project, i + 1, measure, start=i, base=chain[:i])
    capsys.readouterr()
    assert cli(project, "check") == 0, capsys.readouterr().out


# ----------------------------------------------------------------------------- compare


def _record_run(root: Path, run_id: str, commit: Commit, measurements: Sequence[Measurement], hour: int) -> None:
    store = open_store(store_url(root), root=root)
    when = (T0 + timedelta(hours=hour)).isoformat()
    try:
        store.begin_run(Run(run_id, PROJECT, "integration", commit, environment(), started_at=when))
        store.add_results(run_id, [], list(measurements))
        store.finish_run(run_id, "passed", when)
    finally:
        store.close()


@pytest.fixture
def baseline(project: Path) -> Path:
    """Ten main runs of t.py::a step_time (0.1 s) and accuracy (0.9); t.py::b only in the last two."""
    rng = np.random.default_rng(21)

    def measure(i: int) -> list[Measurement]:
        found = [timing(rng, "t.py::a", 0.1), accuracy(rng, "t.py::a", 0.9)]
        return [*found, timing(rng, "t.py::b", 0.5)] if i >= 8 else found

    record_history(project, 10, measure)
    return project


def feature_commit(i: int) -> Commit:
    parent = sha(9) if i == 0 else sha(i - 1, "feature")
    return Commit(sha(i, "feature"), "feature", parents=(parent,), subject=f"feature {i}")


def candidate(step_time: float) -> list[Measurement]:
    return [
        Measurement("t.py::a", "step_time", step_time, "s", None, (step_time,) * 5),
        Measurement("t.py::a", "accuracy", 0.9005, None, True, (0.9005,), support=10_000),
        Measurement("t.py::b", "step_time", 0.5, "s", None, (0.5,) * 5),
    ]


def _rows(out: str) -> dict[tuple[str, str], list[str]]:
    """The table's rows by (test, metric): the cells, split on runs of two or more spaces."""
    import re

    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[1].strip()) == ["test", "metric", "old", "new", "delta", "verdict"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[2:-1]]
    return {(r[0], r[1]): r[2:] for r in rows}


def test_compare_flags_a_slower_branch_run(baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record_run(baseline, "cand-slow", feature_commit(0), candidate(0.13), hour=100)
    assert cli(baseline, "compare") == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"mltest compare: run cand-slow at {sha(0, 'feature')[:10]} (feature) against the recent runs of main on "
        "A100 x1"
    )
    rows = _rows(out)
    old, new, delta, verdict = rows[("t.py::a", "step_time")]
    assert float(old.removesuffix(" ms")) == pytest.approx(100, rel=0.02)  # seconds shown with a readable prefix
    assert (new, verdict.split()[0]) == ("130 ms", "regression")
    assert float(delta.removesuffix("%")) == pytest.approx(30, abs=3)
    assert verdict.endswith("n=10)")
    assert rows[("t.py::a", "accuracy")][-1].startswith("unchanged")
    assert rows[("t.py::b", "step_time")][-1] == "no baseline"
    assert out.splitlines()[-1] == "1 regression, 0 improvements"

    assert cli(baseline, "compare", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["run_id"], report["sha"], report["baseline"]) == ("cand-slow", sha(0, "feature"), "main")
    metrics = {(m["test"], m["metric"]): m for m in report["metrics"]}
    step = metrics[("t.py::a", "step_time")]
    assert step["old"] == pytest.approx(0.1, rel=0.02)
    assert step["new"] == 0.13
    assert step["rel_change"] == pytest.approx(0.3, abs=0.03)
    assert (step["verdict"], step["baseline_runs"]) == ("regression", 10)
    assert step["p_value"] < 0.01
    assert metrics[("t.py::a", "accuracy")]["verdict"] == "unchanged"
    few = metrics[("t.py::b", "step_time")]
    assert (few["verdict"], few["baseline_runs"], few["p_value"]) == ("no baseline", 2, None)
    assert few["old"] == pytest.approx(0.5, rel=0.05)


def test_compare_within_noise_is_unchanged(baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record_run(baseline, "cand-ok", feature_commit(0), candidate(0.1005), hour=100)
    assert cli(baseline, "compare") == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows[("t.py::a", "step_time")][-1].startswith("unchanged")
    assert rows[("t.py::a", "accuracy")][-1].startswith("unchanged")
    assert out.splitlines()[-1] == "0 regressions, 0 improvements"


def test_compare_commit_and_run_pick_the_run(baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record_run(baseline, "cand-slow", feature_commit(0), candidate(0.13), hour=100)
    _record_run(baseline, "cand-ok", feature_commit(1), candidate(0.1005), hour=101)
    assert cli(baseline, "compare") == 0  # the latest run
    assert "run cand-ok at" in capsys.readouterr().out
    assert cli(baseline, "compare", "--commit", sha(0, "feature")[:8]) == 1
    assert "run cand-slow at" in capsys.readouterr().out
    assert cli(baseline, "compare", "--run", "cand-s", "--json") == 1  # a unique prefix
    assert json.loads(capsys.readouterr().out)["run_id"] == "cand-slow"

    assert cli(baseline, "compare", "--run", "nope") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "mltest: error: no single run matches 'nope': see `mltest runs`\n"
    assert cli(baseline, "compare", "--commit", "ffffffff") == 2
    assert "no finished run at commit 'ffffffff'" in capsys.readouterr().err


def test_compare_does_not_guess_the_direction_of_a_metric(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(22)
    record_history(project, 10, lambda i: [Measurement("t.py::a", "foo_metric", float(rng.normal(1.0, 0.01)))])
    _record_run(project, "cand", feature_commit(0), [Measurement("t.py::a", "foo_metric", 0.5)], hour=100)
    assert cli(project, "check", "--branch", "main") == 0
    assert "skipped (direction unknown" in capsys.readouterr().out
    code = cli(project, "compare", "--json")
    [row] = json.loads(capsys.readouterr().out)["metrics"]
    assert row["verdict"] not in ("regression", "improvement")
    assert code == 0


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.0004724, "s", "472.4 µs"),
        (1.5, "s", "1.5 s"),
        (0.25, "s", "250 ms"),
        (3e-10, "s", "0.3 ns"),
        (0.0, "s", "0 s"),
        (350e6, "bytes", "333.8 MiB"),
        (3 * 2**30, "bytes", "3 GiB"),
        (12, "bytes", "12 bytes"),
        (270_000.0, "samples/s", "270,000 samples/s"),
        (0.91, None, "0.91"),
        (float("inf"), "s", "inf s"),
    ],
)
def test_values_are_shown_with_readable_units(value: float, unit: str | None, text: str) -> None:
    from mltest.report.fmt import fmt_value

    assert fmt_value(value, unit) == text


def test_compare_markdown_is_the_pr_check_view(baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(baseline, 'repo_url = "https://github.com/acme/model"\n')
    _record_run(baseline, "cand-slow", feature_commit(0), candidate(0.13), hour=100)
    assert cli(baseline, "compare", "--format", "markdown") == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "## mltest compare"
    assert lines[2].startswith("❌ **1 regression** in run <code>cand-slow</code> at [<code>")
    assert f"(https://github.com/acme/model/commit/{sha(0, 'feature')})" in lines[2]
    header = "| Verdict | Test | Metric | Baseline | This run | Δ | p | Baseline runs |"
    assert lines[4] == header
    rows = [line for line in lines[6:] if line.startswith("| ")]
    assert rows[0].startswith("| ❌ regression | <code>t.py\\:\\:a</code> | <code>step\\_time</code> | 100")
    assert " ms | 130 ms | +" in rows[0]
    assert all(row.count(" | ") == header.count(" | ") for row in rows)
    assert cli(baseline, "compare", "--format", "json") == 1
    assert json.loads(capsys.readouterr().out)["run_id"] == "cand-slow"
