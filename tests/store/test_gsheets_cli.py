"""`mltest sync`, `mltest sync --check` and `mltest run`'s automatic send, end to end against a real SQLite
store and the local Sheets API (tests/store/sheets_server.py). Here, next to the server's fixtures
(tests/store/conftest.py), rather than in tests/cli/."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sheets_server import SPREADSHEET, FakeClock, SheetsServer
from test_recording_e2e import make_repo, mltest

from mltest.cli import main
from mltest.cli.sheets_sync import sync_after_run
from mltest.config import load_settings
from mltest.model import Commit, Environment, Measurement, Run, TestResult
from mltest.store import open_store
from mltest.store.gsheets import COLUMN_NAMES, RetryPolicy

ENV = Environment("3.11", "linux-x86_64", "h", "Xeon", 8, "0.1.0", torch="2.13.0", gpu_model="H100", gpu_count=1)
SHEET = f"gsheets://{SPREADSHEET}/nightly"


def fill(root: Path, runs: int = 3, *, start: int = 0) -> None:
    store = open_store("sqlite:///results.db", root=root)
    try:
        for i in range(start, start + runs):
            commit = Commit(f"{i:x}" * 40, "main", subject=f"commit {i}")
            run = Run(f"run{i}", "proj", "integration", commit, ENV, started_at=f"2026-02-0{i + 1}T00:00:00+00:00")
            store.begin_run(run)
            store.add_results(
                run.run_id,
                [TestResult("t.py::test_x", "passed", 1.0)],
                [
                    Measurement("t.py::test_x", "accuracy", 0.90 - i / 100, None, True, (), None, 1000),
                    Measurement("t.py::test_x", "step_time", 0.25, "s", False),
                ],
            )
            store.finish_run(run.run_id, "passed", f"2026-02-0{i + 1}T01:00:00+00:00")
    finally:
        store.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sheets: SheetsServer, sheets_env: dict[str, str]) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.mltest]\nstore_url = "sqlite:///results.db"\nproject = "proj"\nsheets_url = "{SHEET}"\n'
        'repo_url = "https://github.com/org/proj"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    for name, value in sheets_env.items():
        monkeypatch.setenv(name, value)
    fill(tmp_path)
    return tmp_path


def sheet_records(sheets: SheetsServer, title: str = "nightly") -> list[dict[str, Any]]:
    sheet = sheets.worksheet(SPREADSHEET, title)
    return [dict(zip(sheet.rows[0], row, strict=False)) for row in sheet.data_rows()]


def test_sync_sends_the_runs_once_and_check_agrees(
    project: Path, sheets: SheetsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sent 0 spooled run(s), marked 0 dead run(s) aborted")
    assert out[1] == f"sent 3 run(s), 6 row(s) to {SHEET}"
    records = sheet_records(sheets)
    assert sheets.worksheet(SPREADSHEET, "nightly").rows[0] == list(COLUMN_NAMES)
    assert Counter(r["run_id"] for r in records) == {"run0": 2, "run1": 2, "run2": 2}
    first = records[0]
    assert first["commit"] == "0" * 10
    assert first["commit_url"] == "https://github.com/org/proj/commit/" + "0" * 40
    assert first["gpu"] == "H100 x1"
    assert first["torch"] == "2.13.0"
    # run2 is compared with run0 and run1 of main: too few for a verdict, but a baseline and a delta
    run2 = next(r for r in records if r["run_id"] == "run2" and r["metric"] == "accuracy")
    assert run2["baseline"] == pytest.approx(0.895)
    assert run2["delta_pct"] == pytest.approx((0.88 - 0.895) / 0.895 * 100)
    assert run2["regression"] == ""

    assert main(["sync"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == f"sent 0 run(s), 0 row(s) to {SHEET}"
    assert main(["sync", "--check"]) == 0
    assert capsys.readouterr().out.strip() == f"the sheet {SHEET} agrees with the store: 3 run(s) checked"


def test_sync_check_reports_differences_and_exits_1(
    project: Path, sheets: SheetsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync"]) == 0
    sheet = sheets.worksheet(SPREADSHEET, "nightly")
    sheet.rows.append(list(sheet.rows[1]))  # a duplicated row
    sheet.rows[2][sheet.rows[0].index("value")] = 1.5  # a changed value
    fill(project, 1, start=3)  # queued, not a difference
    capsys.readouterr()
    assert main(["sync", "--check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"the sheet {SHEET} differs from the store: 0 missing, 0 extra, 1 duplicated, 1 changed"
    assert out[1].startswith("  duplicate: run run0: t.py::test_x")
    assert out[2].startswith("  changed: run run0: t.py::test_x step_time: value is 1.5 in the sheet, 0.25")


def test_sync_flags_override_the_config(
    project: Path, sheets: SheetsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "--sheets-url", f"gsheets://{SPREADSHEET}/other"]) == 0
    assert len(sheet_records(sheets, "other")) == 6
    assert "nightly" not in sheets.spreadsheets[SPREADSHEET]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {"MLTEST_SHEETS_URL": "gsheets://"}, "environment variable MLTEST_SHEETS_URL: expected gsheets://"),
        ([], {"MLTEST_SHEETS_CREDENTIALS_JSON": ""}, "needs service-account credentials"),
        ([], {"MLTEST_SHEETS_CREDENTIALS_JSON": "{not json"}, "is not valid JSON"),
        (["--sheets-credentials", "/nonexistent/sa.json"], {}, "cannot read the credentials file /nonexistent/sa.json"),
        (["--sheets-url", "gsheets://unknownkey"], {}, "HTTP 404"),
    ],
)
def test_bad_configuration_is_one_line_and_shows_no_secret(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    service_account: dict[str, Any],
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    for name, value in env.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name)
    assert main(["sync", *args]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert expected in err
    assert err.count("\n") == 1
    for secret in (service_account["private_key_id"], *service_account["private_key"].splitlines()[1:-1]):
        assert secret not in captured.out + err


def test_a_bad_sheets_url_flag_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sync", "--sheets-url", "https://docs.google.com/spreadsheets/d/KEY/edit"])
    assert caught.value.code == 2
    assert "--sheets-url: expected gsheets://SPREADSHEET_KEY[/WORKSHEET]" in capsys.readouterr().err


def test_after_a_run_an_unreachable_sheet_is_one_warning_and_the_runs_stay_queued(
    project: Path, sheets: SheetsServer, fake_clock: FakeClock
) -> None:
    sheets.fail("append", "500", times=10)
    settings = load_settings(project, environ={})
    environ = dict(os.environ)
    retry = RetryPolicy(attempts=3, sleep=fake_clock.sleep, rng=random.Random(0))
    warning = sync_after_run("integration", settings, environ, retry=retry)
    assert warning is not None
    assert "\n" not in warning
    assert warning.startswith("mltest: warning: results not sent to the Google Sheet")
    assert "3 run(s) stay queued" in warning
    assert sync_after_run("unit", settings, environ, retry=retry) is None  # the unit tier sends nothing
    sheets.faults.clear()
    assert sync_after_run("integration", settings, environ, retry=retry) is None
    assert len(sheet_records(sheets)) == 6


@pytest.mark.integration  # starts `mltest run` processes
def test_a_recorded_integration_run_lands_in_the_sheet_as_documented(
    tmp_path: Path, sheets: SheetsServer, sheets_env: dict[str, str], service_account: dict[str, Any]
) -> None:
    repo = make_repo(tmp_path, f"sqlite:///{tmp_path / 'results.db'}")
    config = repo / "pyproject.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[tool.mltest]\n", f'[tool.mltest]\nsheets_url = "{SHEET}"\n', 1), encoding="utf-8")
    env = {**sheets_env, "GITHUB_REPOSITORY": "org/proj", "GITHUB_SERVER_URL": "https://github.com"}
    proc = mltest(repo, "run", "integration", "--mltest-device=cpu", "-p", "no:cacheprovider", env=env)
    assert proc.returncode == 1, proc.stdout  # test_fails fails; the sheet changes nothing
    assert "warning" not in proc.stderr
    records = sheet_records(sheets)
    assert sorted((r["test"], r["metric"]) for r in records) == [
        ("test_model.py::test_train", "accuracy"),
        ("test_model.py::test_train", "step_time"),
    ]
    accuracy = next(r for r in records if r["metric"] == "accuracy")
    assert accuracy["value"] == 0.9
    assert accuracy["subject"] == "first model"
    assert accuracy["branch"] == "main"
    assert accuracy["tier"] == "integration"
    assert accuracy["commit_url"].startswith("https://github.com/org/proj/commit/")
    assert accuracy["gpu"].startswith("cpu: ")
    step = next(r for r in records if r["metric"] == "step_time")
    assert step["unit"] == "s"
    assert isinstance(step["value"], float)
    assert len({r["run_id"] for r in records}) == 1
    for secret in (service_account["private_key_id"], *service_account["private_key"].splitlines()[1:-1]):
        assert secret not in proc.stdout + proc.stderr
    # A second run with the sheet down: one warning line, the exit code unchanged, the run queued.
    sheets.fail("append", "500", times=100)
    down = mltest(repo, "run", "integration", "--mltest-device=cpu", "-p", "no:cacheprovider", env=env, check=False)
    assert down.returncode == 1
    warnings = [line for line in down.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "stay queued" in warnings[0]
    sheets.faults.clear()
    synced = mltest(repo, "sync", env=env)
    assert synced.stdout.splitlines()[1] == f"sent 1 run(s), 2 row(s) to {SHEET}"
    assert sorted(Counter(r["run_id"] for r in sheet_records(sheets)).values()) == [2, 2]


@pytest.mark.integration  # the sheet-down half waits out the real retry backoff (about 25 s)
def test_ci_nightly_sends_the_queued_runs_to_the_sheet(
    project: Path, sheets: SheetsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ci", "nightly", "--report-only", "--any-branch", "--device", "cpu", "--artifacts", str(project / "a")]
    code = main(argv)
    out = capsys.readouterr()
    assert f"sheet: sent 3 run(s), 6 row(s) to {SHEET}" in out.out + out.err
    assert Counter(r["run_id"] for r in sheet_records(sheets)) == {"run0": 2, "run1": 2, "run2": 2}
    assert code == 1  # the checkout's commit has no integration run recorded: the report job fails
    sheets.fail("append", "500", times=100)
    fill(project, 1, start=3)
    main(argv)
    err = capsys.readouterr().err
    assert "sheet sync failed, the runs stay queued" in err
    assert len(sheet_records(sheets)) == 6
