"""``mltest runs``, ``mltest history``, ``mltest export`` and ``mltest sync``: reading and settling the store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltest.cli.options import add_store_flags, store_settings
from mltest.cli.sheets_sync import add_sheets_flags, check_sheets, sheets_settings, sync_sheets
from mltest.config import Settings
from mltest.errors import ConfigError, MissingExtraError
from mltest.recorder import open_store_recovered, reap_dead_runs, recover_spool, spool_dir
from mltest.report.fmt import clean_lines
from mltest.store import open_store
from mltest.store.history import history_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["add_parsers", "csv_safe", "export", "history_table", "runs_table", "sync", "sync_sheets"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a CSV cell as a formula (OWASP, "CSV Injection")."""


def add_parsers(commands: Any) -> None:
    runs = commands.add_parser("runs", help="list recent runs with their status and commit")
    runs.add_argument("--branch", default=None, help="only this branch (default: all)")
    runs.add_argument("--limit", type=int, default=20, help="how many runs (default: 20)")
    runs.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    add_store_flags(runs)
    runs.set_defaults(handler=_runs)

    hist = commands.add_parser("history", help="one test's metric over the commit history")
    hist.add_argument("test", help="the test's node id, e.g. tests/test_train.py::test_converges")
    hist.add_argument("metric", help="the metric's name, e.g. accuracy or step_time")
    hist.add_argument("--branch", default=None, help="only this branch (default: all)")
    hist.add_argument("--last", type=int, default=None, metavar="N", help="only the last N commits (default: all)")
    hist.add_argument("--tier", default=None, help="only this tier (default: all)")
    hist.add_argument("--env", default=None, dest="env_key", help="only this environment key (default: all)")
    hist.add_argument("--json", action="store_true", help="print JSON records (default: a table)")
    add_store_flags(hist)
    hist.set_defaults(handler=_history)

    exp = commands.add_parser("export", help="export every measurement, in commit order")
    exp.add_argument("--format", choices=("csv", "parquet", "json"), default="csv", help="file format (default: csv)")
    exp.add_argument("--out", type=Path, default=None, help="output file (default: stdout; parquet needs --out)")
    exp.add_argument("--branch", default=None, help="only this branch (default: all)")
    exp.add_argument("--test", default=None, help="only this test (default: all)")
    exp.add_argument("--metric", default=None, help="only this metric (default: all)")
    exp.add_argument(
        "--raw",
        action="store_true",
        help="csv: write text cells exactly as stored, for programs rather than spreadsheets (default: a text cell "
        "starting with = + - @, a tab or a carriage return gets a leading ' so no spreadsheet runs it as a formula)",
    )
    add_store_flags(exp)
    exp.set_defaults(handler=_export)

    syn = commands.add_parser(
        "sync",
        help="send records that crashed or offline runs left in the local spool, mark dead runs aborted, and send "
        "finished runs to the Google Sheet when sheets_url is set",
    )
    add_store_flags(syn)
    add_sheets_flags(syn)
    syn.add_argument(
        "--check",
        action="store_true",
        help="only compare the Google Sheet with the store, per run id; exit 1 when they differ (default: send)",
    )
    syn.set_defaults(handler=_sync)


def runs_table(settings: Settings, *, branch: str | None, limit: int, as_json: bool) -> str:
    store = open_store_recovered(settings)
    try:
        runs = store.runs(branch=branch, limit=limit)
    finally:
        store.close()
    if as_json:
        return json.dumps(
            [
                {
                    "run_id": r.run_id,
                    "status": r.status,
                    "tier": r.tier,
                    "project": r.project,
                    "sha": r.commit.sha,
                    "branch": r.commit.branch,
                    "subject": r.commit.subject,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "env_key": r.environment.key,
                    "ci_url": r.ci_url,
                }
                for r in runs
            ],
            indent=2,
        )
    if not runs:
        return f"no runs recorded in {store.url}"
    lines = [f"{'run':12}  {'status':8}  {'started (UTC)':19}  {'tier':11}  {'branch':14}  {'commit':10}  subject"]
    for r in runs:
        lines.append(
            f"{r.run_id[:12]:12}  {r.status:8}  {r.started_at[:19].replace('T', ' '):19}  {r.tier:11}  "
            f"{(r.commit.branch or '-')[:14]:14}  {r.commit.short:10}  {(r.commit.subject or '')[:60]}"
        )
    return clean_lines("\n".join(lines))  # commit subjects: no escape sequence reaches the terminal


def history_table(settings: Settings, args: argparse.Namespace) -> str:
    store = open_store(settings.store_url, root=settings.project_root)
    try:
        frame = history_frame(
            store,
            test=args.test,
            metric=args.metric,
            branch=args.branch,
            tier=args.tier,
            env_key=args.env_key,
            last=args.last,
        )
    finally:
        store.close()
    if args.json:
        return str(frame.drop(columns=["samples"]).to_json(orient="records", indent=2))
    if frame.empty:
        return f"no measurements of {args.metric!r} for {args.test!r} in {store.url}"
    unit = frame["unit"].dropna().iloc[0] if frame["unit"].notna().any() else ""
    lines = [
        f"{args.test}  {args.metric}" + (f" [{unit}]" if unit else ""),
        f"{'#':>4}  {'commit':10}  {'branch':14}  {'value':>14}  {'n':>4}  {'iqr':>10}  subject",
    ]
    for row in frame.to_dict("records"):
        iqr = row["iqr"]
        shown_iqr = f"{iqr:.4g}" if isinstance(iqr, float) and iqr == iqr else "-"
        lines.append(
            f"{row['position']:>4}  {str(row['sha'])[:10]:10}  {str(row['branch'] or '-')[:14]:14}  "
            f"{row['value']:>14.6g}  {row['n']:>4}  {shown_iqr:>10}  {str(row['subject'] or '')[:50]}"
        )
    return clean_lines("\n".join(lines))


def export(settings: Settings, *, fmt: str, out: Path | None, raw: bool = False, **filters: Any) -> str | None:
    """Every measurement matching ``filters`` as ``fmt`` (csv, parquet or json), written to ``out`` or
    returned. CSV text cells are neutralised with :func:`csv_safe` unless ``raw``; parquet and JSON
    are typed and always written as stored."""
    store = open_store(settings.store_url, root=settings.project_root)
    try:
        frame = history_frame(store, **filters)
    finally:
        store.close()
    if fmt == "parquet":
        if out is None:
            raise ConfigError("--format parquet writes a binary file: give --out PATH")
        try:
            frame.to_parquet(out, index=False)
        except ImportError:
            raise MissingExtraError("parquet export", "parquet", "pyarrow") from None
        return None
    if fmt == "csv":
        text = (frame if raw else csv_safe(frame)).to_csv(index=False)
    else:
        text = frame.to_json(orient="records", indent=2)
    if out is None:
        return str(text)
    out.write_text(str(text), encoding="utf-8")
    return None


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot run as spreadsheet formulas.

    Commit subjects, test ids and branch names come from whoever pushes a commit: a subject such as
    ``=HYPERLINK("http://evil", "x")`` would become a live formula when the CSV is opened in Excel,
    LibreOffice or Google Sheets. Every string cell starting with one of :data:`FORMULA_START` gets a
    leading ``'`` (OWASP's advice), which spreadsheets show as text. Only strings change: numeric and
    boolean columns (``value``, ``iqr``, ...) are left alone, so ``-0.5`` stays a number.
    """
    import pandas as pd

    out: pd.DataFrame = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        out[column] = series.map(_neutralised)
    return out


def _neutralised(cell: Any) -> Any:
    return "'" + cell if isinstance(cell, str) and cell.startswith(FORMULA_START) else cell


def sync(settings: Settings) -> str:
    store = open_store(settings.store_url, root=settings.project_root)
    try:
        replayed = recover_spool(store, spool_dir(settings))
        aborted = reap_dead_runs(store)
    finally:
        store.close()
    return f"sent {len(replayed)} spooled run(s), marked {len(aborted)} dead run(s) aborted -> {store.url}"


def _runs(args: argparse.Namespace, extra: list[str]) -> int:
    print(runs_table(store_settings(args), branch=args.branch, limit=args.limit, as_json=args.json))
    return 0


def _history(args: argparse.Namespace, extra: list[str]) -> int:
    print(history_table(store_settings(args), args))
    return 0


def _export(args: argparse.Namespace, extra: list[str]) -> int:
    text = export(
        store_settings(args),
        fmt=args.format,
        out=args.out,
        raw=args.raw,
        branch=args.branch,
        test=args.test,
        metric=args.metric,
    )
    if text is not None:
        sys.stdout.write(text)
    return 0


def _sync(args: argparse.Namespace, extra: list[str]) -> int:
    settings = sheets_settings(args)
    if args.check:
        result = check_sheets(settings)
        print(clean_lines("\n".join(result.lines())))  # names read from the sheet
        return 0 if result.ok else 1
    print(sync(settings))
    if settings.sheets_url:
        print(sync_sheets(settings).line())
    return 0
