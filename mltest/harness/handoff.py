"""Per-test data from the process that ran the test to the process that reports (the xdist controller).

A fixture or hook in the test's process calls :func:`add`; the plugin attaches what is pending to
each phase's ``TestReport`` as the JSON-safe attribute ``mltest_data``. pytest-xdist serialises the
report (``TestReport`` keeps unknown attributes), and ``pytest_runtest_logreport`` on the controller
hands every entry to the receivers registered with :func:`add_receiver`. Without xdist the same path
runs in one process. Entries reach the controller as each phase ends, so a killed worker loses at
most the test in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

__all__ = ["REPORT_ATTR", "Entry", "Receiver", "add", "add_receiver", "attach", "deliver", "pending", "queue"]

Entry = dict[str, Any]
Receiver = Callable[[str, Entry], None]
"""Called on the reporting process with (nodeid, entry) for every entry of every test."""

REPORT_ATTR = "mltest_data"
_PENDING = pytest.StashKey[dict[str, list[Entry]]]()
_RECEIVERS = pytest.StashKey[list[Receiver]]()
_JSON_SCALARS = (str, int, float, bool, type(None))


def _check_json_safe(value: object, path: str) -> None:
    if isinstance(value, _JSON_SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json_safe(v, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"hand-off entry key {path}.{k!r} must be a string")
            _check_json_safe(v, f"{path}.{k}")
        return
    raise TypeError(f"hand-off entry value {path} is a {type(value).__name__}; use str, int, float, bool, list or dict")


def pending(config: pytest.Config) -> dict[str, list[Entry]]:
    """The entries waiting for their test's next report, by node id: one dict per session, empty unless
    a test added some, so the plugin skips :func:`attach` with one look."""
    return config.stash.setdefault(_PENDING, {})


def queue(waiting: dict[str, list[Entry]], nodeid: str, kind: str, payload: Mapping[str, Any]) -> None:
    """Queue ``payload`` (JSON-safe values only), tagged with ``kind``, for test ``nodeid``'s next report."""
    entry: Entry = {"kind": kind, **payload}
    _check_json_safe(entry, kind)
    waiting.setdefault(nodeid, []).append(entry)


def add(item: pytest.Item, kind: str, payload: Mapping[str, Any]) -> None:
    """Queue ``payload`` (JSON-safe values only) for the reporting process, tagged with ``kind``."""
    queue(pending(item.config), item.nodeid, kind, payload)


def attach(report: pytest.TestReport, waiting: dict[str, list[Entry]]) -> None:
    """Move the entries waiting for ``report``'s test onto it (called for each phase's report, in the
    process that ran the test, before anything else sees the report)."""
    entries = waiting.pop(report.nodeid, None)
    if entries:
        setattr(report, REPORT_ATTR, entries)


def add_receiver(config: pytest.Config, receiver: Receiver) -> None:
    config.stash.setdefault(_RECEIVERS, []).append(receiver)


def deliver(config: pytest.Config, report: pytest.TestReport) -> None:
    """On the reporting process: hand the report's entries to every receiver."""
    entries = getattr(report, REPORT_ATTR, None)
    if not entries:
        return
    for receiver in config.stash.get(_RECEIVERS, []):
        for entry in entries:
            receiver(report.nodeid, entry)
