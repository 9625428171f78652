"""Sending runs to the Google Sheet (``sheets_url``) and checking it: ``mltest sync`` and ``mltest sync --check``.

:func:`sync_sheets` is what ``mltest sync``, ``mltest run`` (after an integration run) and a nightly CI
command call; the sheet's rows are built here, where the baselines come from detection (the store
package never imports detect).
"""

from __future__ import annotations

import argparse
import bisect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from mltest.cli.detect_cmds import direction_of
from mltest.cli.report_cmd import repo_url_from
from mltest.config import OPTIONS_BY_NAME, Settings, load_settings
from mltest.detect.compare import compare_values
from mltest.detect.regressions import Tolerance, binomial_noise
from mltest.errors import ConfigError, MltestError
from mltest.model import Measurement, Run, SeriesPoint
from mltest.store import SeriesRow, Store, open_store
from mltest.store.gsheets import (
    Baseline,
    CheckResult,
    RetryPolicy,
    Row,
    SheetSink,
    SyncResult,
    check_sheet,
    open_sheet,
    sheet_rows,
    sync_runs,
)

__all__ = [
    "BASELINE_BRANCH",
    "BASELINE_RUNS",
    "add_sheets_flags",
    "check_sheets",
    "open_configured_sheet",
    "rows_builder",
    "sheets_settings",
    "sync_after_run",
    "sync_sheets",
]

BASELINE_BRANCH = "main"
"""The baseline column compares with the recent runs of this branch (the ``main_branch`` setting where
there is one; like ``mltest compare``'s default)."""
BASELINE_RUNS = 20


def open_configured_sheet(settings: Settings, environ: Mapping[str, str] | None = None, **options: Any) -> SheetSink:
    if not settings.sheets_url:
        raise ConfigError("no Google Sheet is configured: set sheets_url = 'gsheets://SPREADSHEET_KEY[/WORKSHEET]'")
    return open_sheet(
        settings.sheets_url,
        credentials_path=settings.sheets_credentials,
        environ=os.environ if environ is None else environ,
        **options,
    )


class _Baselines(NamedTuple):
    """One environment's runs of the baseline branch, indexed for :func:`rows_builder`."""

    starts: list[tuple[str, str]]
    """(started_at, run_id) of each run, in that order."""
    rows: dict[str, list[tuple[int, SeriesRow]]]
    """run_id -> its rows, each with its position in the store's answer (values keep that order)."""


def rows_builder(
    settings: Settings, store: Store, environ: Mapping[str, str], *, baselines: bool = True
) -> Callable[[Run], Sequence[Row]]:
    """``run -> rows``: the run's measurements, with baselines from the earlier runs of ``main``.

    The baseline branch's history is read once per project and environment key and indexed once per
    fingerprint, so a backlog of N runs costs one read and N binary searches (not N passes over the
    whole history)."""
    repo_url = repo_url_from(settings, environ)
    baseline_branch = str(getattr(settings, "main_branch", None) or BASELINE_BRANCH)
    history: dict[tuple[str, str], list[SeriesRow]] = {}
    indexed: dict[tuple[str, str, str], _Baselines] = {}

    def index_of(run: Run) -> _Baselines:
        key = (run.project, run.environment.key)
        fingerprint = run.environment.fingerprint
        found = indexed.get((run.project, run.environment.key, fingerprint))
        if found is not None:
            return found
        if key not in history:
            history[key] = store.series(branch=baseline_branch, env_key=run.environment.key, project=run.project)
        by_run: dict[str, list[tuple[int, SeriesRow]]] = {}
        started: dict[str, str] = {}
        for i, r in enumerate(history[key]):
            if r.fingerprint == fingerprint:
                by_run.setdefault(r.run_id, []).append((i, r))
                started[r.run_id] = r.started_at
        found = _Baselines(sorted((at, run_id) for run_id, at in started.items()), by_run)
        indexed[(run.project, run.environment.key, fingerprint)] = found
        return found

    def baseline_of(run: Run, measurements: Sequence[Measurement]) -> dict[tuple[str, str], Baseline]:
        index = index_of(run)
        # The last BASELINE_RUNS runs that started before this one (a run never precedes itself).
        end = bisect.bisect_left(index.starts, (run.started_at, ""))
        recent = index.starts[max(0, end - BASELINE_RUNS) : end]
        values: dict[tuple[str, str], list[float]] = {}
        for _, r in sorted(pair for _, run_id in recent for pair in index.rows[run_id]):
            values.setdefault((r.test, r.metric), []).append(r.value)
        out = {}
        for m in measurements:
            base = values.get((m.test, m.metric))
            if not base:
                continue
            noise = binomial_noise([SeriesPoint(run.commit.sha, m.value, support=m.support)], m.unit)
            comparison = compare_values(
                m.test,
                m.metric,
                base,
                m.value,
                tolerance=Tolerance.of(settings.metrics.get(m.metric)),
                higher_is_better=direction_of(settings, m.metric, m.unit, m.higher_is_better),
                noise=noise[0] if noise else None,
                unit=m.unit,
            )
            verdict = comparison.verdict
            flag = None if verdict in ("no baseline", "changed") else verdict == "regression"
            out[(m.test, m.metric)] = Baseline(comparison.old, flag)
        return out

    def rows_for(run: Run) -> Sequence[Row]:
        measurements = store.run_measurements(run.run_id)
        return sheet_rows(
            run,
            measurements,
            repo_url=repo_url,
            baselines=baseline_of(run, measurements) if baselines else None,
        )

    return rows_for


def sync_sheets(
    settings: Settings, *, environ: Mapping[str, str] | None = None, store: Store | None = None, **options: Any
) -> SyncResult:
    """Send every finished run of the project that the configured sheet has not received.

    Raises :class:`~mltest.errors.ConfigError` when no sheet is configured or the credentials are
    wrong, and :class:`~mltest.store.gsheets.SheetsError` when the sheet fails (the unsent runs stay
    queued). ``options`` go to :func:`mltest.store.gsheets.open_sheet` (``session``, ``timeout``,
    ``retry``, ``reads``, ``writes``)."""
    environ = os.environ if environ is None else environ
    sink = open_configured_sheet(settings, environ, **options)
    own = store is None
    opened = open_store(settings.store_url, root=settings.project_root) if store is None else store
    try:
        return sync_runs(opened, sink, rows_builder(settings, opened, environ), project=settings.project_name)
    finally:
        if own:
            opened.close()


def check_sheets(
    settings: Settings, *, environ: Mapping[str, str] | None = None, store: Store | None = None, **options: Any
) -> CheckResult:
    """Compare the sheet with the store, per run id (row counts and values); sends nothing."""
    environ = os.environ if environ is None else environ
    sink = open_configured_sheet(settings, environ, **options)
    own = store is None
    opened = open_store(settings.store_url, root=settings.project_root) if store is None else store
    try:
        rows_for = rows_builder(settings, opened, environ, baselines=False)
        return check_sheet(opened, sink, rows_for, project=settings.project_name)
    finally:
        if own:
            opened.close()


# ----------------------------------------------------------------------------- wiring (mltest sync)
def add_sheets_flags(parser: argparse.ArgumentParser) -> None:
    """``--sheets-url`` and ``--sheets-credentials`` (the shared setting declarations)."""
    for name in ("sheets_url", "sheets_credentials"):
        spec = OPTIONS_BY_NAME[name]
        parser.add_argument(
            spec.cli_flag,
            type=spec.argparse_type,
            default=None,
            dest="sheets_" + name,
            metavar=spec.metavar,
            help=spec.help_with_default,
        )


def sheets_settings(args: argparse.Namespace) -> Settings:
    """Settings for a command wired with ``add_store_flags`` and :func:`add_sheets_flags`."""
    start = args.project_dir if args.project_dir is not None else Path.cwd()
    cli = {
        "store_url": getattr(args, "setting_store_url", None),
        "sheets_url": getattr(args, "sheets_sheets_url", None),
        "sheets_credentials": getattr(args, "sheets_sheets_credentials", None),
    }
    return load_settings(start.resolve(), environ=os.environ, cli=cli, cli_flag=lambda spec: spec.cli_flag)


def sync_after_run(
    tier: str, settings: Settings, environ: Mapping[str, str] | None = None, **options: Any
) -> str | None:
    """After ``mltest run`` of an integration tier: send the queued runs to the sheet, if one is
    configured. Never raises: returns one warning line when the sheet could not be reached (the runs
    stay queued), else None."""
    if tier not in ("integration", "all") or not settings.sheets_url or not settings.record:
        return None
    options.setdefault("retry", RetryPolicy(attempts=3))  # a test run should not wait long for a sheet
    try:
        sync_sheets(settings, environ=environ, **options)
    except MltestError as exc:
        return f"mltest: warning: results not sent to the Google Sheet (they stay queued for `mltest sync`): {exc}"
    return None
