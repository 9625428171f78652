"""Fixtures of the Google Sheets tests: the local Sheets API server (tests/store/sheets_server.py), a
service account it trusts, and a fake clock for throttling and backoff."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sheets_server import SPREADSHEET, FakeClock, SheetsServer, make_service_account, running_server


@pytest.fixture
def sheets() -> Iterator[SheetsServer]:
    """A running local Sheets API with one spreadsheet (key SPREADSHEET, worksheet Sheet1)."""
    with running_server() as server:
        server.add_spreadsheet(SPREADSHEET, "Sheet1")
        yield server


@pytest.fixture
def service_account(sheets: SheetsServer) -> dict[str, Any]:
    """A service-account key whose token_uri is the local server, which trusts its public key."""
    info, public = make_service_account(sheets.base_url + "/token")
    sheets.public_keys.append(public)
    return info


@pytest.fixture
def sheets_env(sheets: SheetsServer, service_account: dict[str, Any]) -> dict[str, str]:
    """The environment a sync reads: the key's JSON, and the local endpoint."""
    return {
        "MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps(service_account),
        "MLTEST_SHEETS_ENDPOINT": sheets.base_url,
    }


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
