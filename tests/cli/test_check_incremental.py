"""`mltest check` keeps a detection state per series in the store: a second check with nothing new scans
nothing, one new commit rescans only the tail, and the verdict is the same as a check from scratch."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import mltest.detect.incremental as incremental
from mltest.cli import main
from mltest.errors import StoreError
from mltest.model import Commit, Environment, Measurement, Run
from mltest.store import open_store

PROJECT = "proj"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
ENV = Environment("3.11", "linux-x86_64", "runner-1", "Xeon", 16, "0.1.0", gpu_model="A100", gpu_count=1)
TESTS = ("tests/test_a.py::test_train", "tests/test_b.py::test_infer")


def _sha(i: int) -> str:
    return hashlib.sha1(f"main:{i}".encode()).hexdigest()


def _values(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    out = {}
    for test in TESTS:
        x = 0.100 + 0.001 * rng.normal(size=n)
        if test == TESTS[0]:
            x[250:] *= 1.3  # a 30 % slowdown at commit 250
        out[test] = x
    return out


def _record(root: Path, commits: range, values: dict[str, np.ndarray]) -> None:
    store = open_store(f"sqlite:///{root}/results.db", root=root)
    try:
        for i in commits:
            when = (T0 + timedelta(hours=i)).isoformat()
            ancestry = tuple(_sha(j) for j in range(i - 1, max(i - 60, 0) - 1, -1))
            commit = Commit(
                _sha(i), "main", parents=ancestry[:1], subject=f"commit {i}", committed_at=when, ancestry=ancestry
            )
            run = Run(f"run-{i}", PROJECT, "integration", commit, ENV, started_at=when)
            store.begin_run(run)
            store.add_results(
                run.run_id,
                [],
                [Measurement(t, "step_time", float(v[i]), "s", False, (float(v[i]),)) for t, v in values.items()],
            )
            store.finish_run(run.run_id, "passed", when)
    finally:
        store.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.mltest]\nproject = "{PROJECT}"\nstore_url = "sqlite:///results.db"\n', encoding="utf-8"
    )
    return tmp_path


def _check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["check", "--json", "--project-dir", str(root)])
    report = json.loads(capsys.readouterr().out)
    del report["generated_at"]
    return code, report


def _stored_states(root: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(root / "results.db")) as db:
        return dict(db.execute("SELECT key, state FROM detection_states").fetchall())


def test_check_reuses_and_extends_its_states(
    project: Path, capsys: pytest.CaptureFixture[str], incremental_scans: list[int]
) -> None:
    values = _values(320)
    _record(project, range(300), values)
    code, first = _check(project, capsys)
    assert code == 1
    assert first["counts"]["new"] == 1  # type: ignore[index]
    assert sorted(incremental_scans) == [300, 300]  # one full scan per series
    states = _stored_states(project)
    assert len(states) == 2
    assert all(json.loads(s)["length"] == 300 for s in states.values())

    incremental_scans.clear()
    code, again = _check(project, capsys)
    assert (code, again) == (1, first)
    assert incremental_scans == []  # nothing new: no scan at all

    _record(project, range(300, 301), values)
    code, after_one = _check(project, capsys)
    assert code == 1
    assert len(incremental_scans) == 2
    assert max(incremental_scans) <= incremental.WINDOW + 1  # the tail only
    assert all(json.loads(s)["length"] == 301 for s in _stored_states(project).values())

    incremental_scans.clear()
    store = open_store(f"sqlite:///{project}/results.db", root=project)
    store.clear_detection_states()
    store.close()
    code, from_scratch = _check(project, capsys)
    assert sorted(incremental_scans) == [301, 301]
    assert (code, from_scratch) == (1, after_one)  # the same verdict, entries and numbers


def test_a_store_that_cannot_keep_states_still_checks(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _record(project, range(300), _values(300))
    from mltest.store.sql import SqlStore

    def refuse(self, states):  # type: ignore[no-untyped-def]
        raise StoreError("attempt to write a readonly database")

    monkeypatch.setattr(SqlStore, "save_detection_states", refuse)
    code, report = _check(project, capsys)
    assert code == 1
    assert report["counts"]["new"] == 1  # type: ignore[index]
    assert _stored_states(project) == {}


def test_the_report_draws_the_change_points_detection_found(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One detection pass: the charts' change points are the analysis' own, not a second scan."""
    _record(project, range(300), _values(300))

    def second_pass(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the report scanned a series again")

    monkeypatch.setattr("mltest.cli.report_cmd.change_points", second_pass)
    assert main(["report", "--format", "json", "--project-dir", str(project)]) == 0
    report = json.loads(capsys.readouterr().out)
    by_test = {s["test"]: s for s in report["series"]}
    slow = by_test[TESTS[0]]
    assert slow["change_points"] == [250]
    assert [(seg["start"], seg["end"]) for seg in slow["segments"]] == [(0, 250), (250, 300)]
    assert by_test[TESTS[1]]["change_points"] == []
