"""Google Sheets sync: HTTP requests and time per synced run, against one request per row (issue 6).

Usage (from the repository root)::

    python -m benchmarks --only sheets [--quick] [--write]    # as part of the suite
    python -m benchmarks.sheets [--quick] [--write]

Google's servers are not reachable from CI, so the sheet is the test suite's local stand-in for the
Sheets v4 API (``tests/store/sheets_server.py``: a loopback HTTP server, gspread unmodified, a
service-account key it trusts and the JWT exchange at its ``/token``). Every HTTP request is counted
at the server, and the time the server spends on each is summed there (its handler threads). The
server sets TCP_NODELAY on its connections: without it the stand-in would add about 40 ms to every
request (Nagle's algorithm and delayed ACKs on loopback), which would swamp what is measured.

Setup: a real SQLite store in a temporary project with N finished runs of 20 tests x 5 metrics = 100
measurements each, one per commit of ``main`` (``benchmarks/store.py``'s insert workload; N = 200,
20 with ``--quick``), and ``sheets_url`` pointing at a spreadsheet whose worksheet does not exist yet.
Each sync is :func:`mltest.cli.sheets_sync.sync_sheets`, what ``mltest sync`` calls: it opens the
store from the settings, builds the rows with their baselines, authenticates with the service
account and sends. The write and read token buckets are the sink's defaults (their rate and burst
are read from a default :class:`~mltest.store.gsheets.SheetSink`), on the real clock: the waits are
real and reported. Three syncs, each as a fresh ``mltest sync`` would be (new buckets, new token):

1. *backlog*: the N runs into the new worksheet (it creates the worksheet and its header);
2. *again*: a second sync with nothing new;
3. *nightly*: one more run (100 measurements) recorded, then synced. Measured in this (warm) process;
   a nightly job runs ``mltest sync`` as a fresh process, so the wall time of a fresh interpreter
   importing what it needs (the CLI, the SQL store, gspread, google-auth) is measured in a subprocess
   and added to its client time.

Comparison, in the same run on the same server: the naive gspread way, one ``Worksheet.append_row``
per measurement row (the very cells mltest sent), for the first k runs (k = 3, 1 with ``--quick``),
extrapolated linearly to N runs (labelled so). Google's write quota is 60 requests a minute per user
per project, so R write requests cost at least R / 60 minutes of real time, whatever the client does.

Targets:

* *at most 1 append request per run* in the backlog (the worksheet's one-off creation, ``addSheet``
  and the header, is reported beside it), and *exactly 1 write request* for the nightly run into the
  existing sheet: the quota counts requests, not rows, and one ``values.append`` per run is the least a
  run sent alone can cost; batching whole runs together only does better;
* *0 write requests* for a sync with nothing new: a repeated ``mltest sync`` (a CI retry, the automatic
  sync after ``mltest run`` followed by the nightly one) must cost no quota and duplicate nothing;
* the nightly sync *within the quota* (at most 60 writes and 60 reads) and *under 2 s of client time*
  (wall time less the server's time and the token bucket's waits): it runs at the end of every nightly
  job, where a couple of seconds is noise and more would be the sync, not Google, being slow;
* every row of the backlog and of the nightly run in the sheet exactly once.

A missed target is reported as missed; the targets are not tuned to the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks import store as store_bench
from benchmarks._common import BENCHMARKS_MD, ROOT, Outcome, Row, emit, machine, met_text, table

NAME = "sheets"
HEADING = "## Google Sheets sync (issue 6)"
START, END = f"<!-- {NAME}:start -->", f"<!-- {NAME}:end -->"

QUOTA_PER_MINUTE = 60
"""Google's Sheets API limit: write (and, separately, read) requests per minute per user per project."""
NIGHTLY_CLIENT_TARGET_S = 2.0
"""The nightly sync (1 run x 100 measurements), client time: less than this."""
WRITES_PER_RUN_TARGET = 1.0
TESTS = 20
MEASUREMENTS_PER_RUN = TESTS * len(store_bench.METRICS)
WORKSHEET = "results"
NAIVE_WORKSHEET = "naive"
SHEETS_API = "https://sheets.googleapis.com/"
WRITE_OPERATIONS = ("append", "values_update", "batch_update")
READ_OPERATIONS = ("metadata", "values_get")


@dataclass(frozen=True)
class Sizes:
    runs: int
    """Finished runs in the store before the first sync (the backlog)."""
    naive_runs: int
    """Runs sent the naive way (one request per row), then extrapolated to ``runs``."""


FULL = Sizes(runs=200, naive_runs=3)
QUICK = Sizes(runs=20, naive_runs=1)


# ----------------------------------------------------------------------------- the local server


def sheets_server() -> ModuleType:
    """``tests/store/sheets_server.py`` (the test suite's local Sheets API), imported from the repository."""
    where = str(ROOT / "tests" / "store")
    if where not in sys.path:
        sys.path.insert(0, where)
    return importlib.import_module("sheets_server")


@dataclass
class Traffic:
    """Every HTTP request the server answered: its path, and the server's time on it."""

    paths: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, seconds: float) -> None:
        with self.lock:
            self.paths.append(path)
            self.seconds += seconds


@contextmanager
def counted(module: ModuleType) -> Iterator[Traffic]:
    """Count and time the requests the server's handler serves (its ``_serve``, wrapped while the
    block runs): the server's own ``calls`` list only holds authorized API calls, not ``/token``."""
    handler = module._Handler
    if not handler.disable_nagle_algorithm:
        raise RuntimeError("the Sheets stand-in must set TCP_NODELAY, or each request waits ~40 ms on loopback")
    original = handler._serve
    traffic = Traffic()

    def serve(self: Any, method: str) -> None:
        t0 = time.perf_counter()
        try:
            original(self, method)
        finally:
            traffic.add(urllib.parse.urlsplit(self.path).path, time.perf_counter() - t0)

    handler._serve = serve
    try:
        yield traffic
    finally:
        handler._serve = original


# ----------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Sync:
    """One ``sync_sheets`` call, as the server and the clock saw it."""

    label: str
    sent_runs: int
    sent_rows: int
    writes: int
    """Write requests: ``values.append`` + the worksheet's creation (``addSheet``, header ``values.update``)."""
    appends: int
    """Of which ``values.append`` (the rows)."""
    reads: int
    tokens: int
    http: int
    """Every HTTP request: writes + reads + token requests (+ any refused)."""
    wall_s: float
    server_s: float
    waited_s: float
    """Time the token buckets slept."""

    @property
    def client_s(self) -> float:
        """Wall time less the server's time and the buckets' waits: mltest, gspread, the store, the wire."""
        return max(0.0, self.wall_s - self.server_s - self.waited_s)


@dataclass(frozen=True)
class Naive:
    """``append_row`` per measurement row, for ``runs`` runs."""

    runs: int
    rows: int
    writes: int
    reads: int
    wall_s: float
    server_s: float

    def writes_for(self, runs: int) -> float:
        """Linear extrapolation to ``runs`` runs."""
        return self.writes / self.runs * runs

    def seconds_for(self, runs: int) -> float:
        return self.wall_s / self.runs * runs


@dataclass(frozen=True)
class Result:
    sizes: Sizes
    backlog: Sync
    again: Sync
    nightly: Sync
    naive: Naive
    rows_in_sheet: int
    """Data rows in mltest's worksheet after the three syncs."""
    duplicated: int
    """(run, test, metric) keys found more than once in the sheet."""
    expected_rows: int
    bucket: str
    """The default write bucket, in words."""
    startup_s: float
    """A fresh process importing what ``mltest sync`` imports (median of :data:`STARTUP_REPEATS`)."""


def _project(root: Path, url: str) -> None:
    (root / "pyproject.toml").write_text(
        "[tool.mltest]\n"
        'store_url = "sqlite:///results.db"\n'
        f'project = "{store_bench.PROJECT}"\n'
        f'sheets_url = "{url}"\n'
        'repo_url = "https://github.com/acme/train"\n',
        encoding="utf-8",
    )


def default_bucket() -> tuple[float, int]:
    """(per minute, burst) of the write bucket a :class:`SheetSink` gets when given none (what
    ``mltest sync`` uses)."""
    from mltest.store.gsheets import SheetSink, SheetTarget

    bucket = SheetSink(SheetTarget("probe"), None).writes
    return bucket.rate * 60.0, bucket.burst


def _sync(label: str, settings: Any, environ: dict[str, str], server: Any, traffic: Traffic) -> Sync:
    """``sync_sheets`` (what ``mltest sync`` calls) with fresh default-sized buckets on the real clock,
    their sleeps recorded."""
    from mltest.cli.sheets_sync import sync_sheets
    from mltest.store.gsheets import TokenBucket

    per_minute, burst = default_bucket()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    calls, paths, server_s = len(server.calls), len(traffic.paths), traffic.seconds
    t0 = time.perf_counter()
    result = sync_sheets(
        settings,
        environ=environ,
        reads=TokenBucket(per_minute, burst, sleep=sleep),
        writes=TokenBucket(per_minute, burst, sleep=sleep),
    )
    wall = time.perf_counter() - t0
    ops = Counter(op for op, _, _ in server.calls[calls:])
    new_paths = traffic.paths[paths:]
    return Sync(
        label,
        result.sent_runs,
        result.sent_rows,
        writes=sum(ops[op] for op in WRITE_OPERATIONS),
        appends=ops["append"],
        reads=sum(ops[op] for op in READ_OPERATIONS),
        tokens=sum(1 for p in new_paths if p == "/token"),
        http=len(new_paths),
        wall_s=wall,
        server_s=traffic.seconds - server_s,
        waited_s=sum(slept),
    )


def _redirecting(base_url: str) -> Any:
    """A requests adapter sending Sheets API calls to the local server."""
    from requests.adapters import HTTPAdapter

    class Local(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if request.url.startswith(SHEETS_API):
                request.url = base_url.rstrip("/") + "/" + request.url[len(SHEETS_API) :]
            return super().send(request, *args, **kwargs)

    return Local()


def naive_sync(
    server: Any, traffic: Traffic, info: dict[str, Any], key: str, values: Sequence[Sequence[Any]], runs: int
) -> Naive:
    """What a user would write with gspread alone: ``worksheet.append_row(row)`` per row (RAW, as mltest)."""
    import gspread
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2.service_account import Credentials

    server.add_spreadsheet(key, NAIVE_WORKSHEET)
    credentials = Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=["https://www.googleapis.com/auth/spreadsheets"]
    )
    session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    session.mount(SHEETS_API, _redirecting(server.base_url))
    calls, server_s = len(server.calls), traffic.seconds
    try:
        t0 = time.perf_counter()
        worksheet = gspread.Client(credentials, session=session).open_by_key(key).worksheet(NAIVE_WORKSHEET)
        for row in values:
            worksheet.append_row(list(row), value_input_option="RAW")
        wall = time.perf_counter() - t0
    finally:
        session.close()
    ops = Counter(op for op, _, _ in server.calls[calls:])
    return Naive(
        runs,
        len(values),
        writes=sum(ops[op] for op in WRITE_OPERATIONS),
        reads=sum(ops[op] for op in READ_OPERATIONS),
        wall_s=wall,
        server_s=traffic.seconds - server_s,
    )


STARTUP_IMPORTS = (
    "import mltest.cli, mltest.cli.sheets_sync, mltest.store.sql, gspread, google.oauth2.service_account, "
    "google.auth.transport.requests"
)
STARTUP_REPEATS = 3


def startup_seconds(repeats: int = STARTUP_REPEATS) -> float:
    """Wall time of a fresh Python process importing what ``mltest sync`` needs (the CLI, the SQL store,
    gspread and google-auth): what a nightly job pays before the sync itself, median of ``repeats``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", STARTUP_IMPORTS], check=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(sizes: Sizes, log: Callable[[str], None] = lambda _: None) -> Result:
    """The three syncs and the naive comparison, on a fresh project, store and server."""
    from mltest.config import load_settings
    from mltest.store import open_store
    from mltest.store.gsheets import CREDENTIALS_JSON_ENV, ENDPOINT_ENV

    module = sheets_server()
    key = module.SPREADSHEET
    workload = store_bench.insert_workload(store_bench.Sizes(runs=sizes.runs + 1, tests=TESTS, history=0), "sheets")
    per_minute, burst = default_bucket()
    with tempfile.TemporaryDirectory() as tmp, module.running_server() as server, counted(module) as traffic:
        root = Path(tmp)
        server.add_spreadsheet(key, "Sheet1")
        info, public = module.make_service_account(server.base_url + "/token")
        server.public_keys.append(public)
        environ = {CREDENTIALS_JSON_ENV: json.dumps(info), ENDPOINT_ENV: server.base_url}
        _project(root, f"gsheets://{key}/{WORKSHEET}")
        settings = load_settings(root, environ=environ)

        def record(runs: Sequence[store_bench.RunWrites]) -> None:
            store = open_store(settings.store_url, root=root)
            try:
                store_bench.write_runs(store, runs, batched=True)
            finally:
                store.close()

        log(f"recording {sizes.runs} runs x {MEASUREMENTS_PER_RUN} measurements")
        record(workload[:-1])
        log("sync: the backlog")
        backlog = _sync("backlog", settings, environ, server, traffic)
        log("sync: nothing new")
        again = _sync("again", settings, environ, server, traffic)
        record(workload[-1:])
        log("sync: the nightly run")
        nightly = _sync("nightly", settings, environ, server, traffic)

        sheet = server.worksheet(key, WORKSHEET)
        header = sheet.rows[0]
        columns = [header.index(c) for c in ("run_id", "test", "metric")]
        data = sheet.data_rows()
        keys = Counter(tuple(row[c] for c in columns) for row in data)
        expected = {(w.run.run_id, t.test, m.metric) for w in workload for t, ms in w.tests for m in ms}
        duplicated = sum(1 for n in keys.values() if n > 1) + len(set(keys) ^ expected)

        log(f"naive: append_row per row, {sizes.naive_runs} run(s)")
        naive = naive_sync(
            server, traffic, info, key, data[: sizes.naive_runs * MEASUREMENTS_PER_RUN], sizes.naive_runs
        )
    return Result(
        sizes,
        backlog,
        again,
        nightly,
        naive,
        rows_in_sheet=len(data),
        duplicated=duplicated,
        expected_rows=len(expected),
        bucket=f"{per_minute:g} a minute, burst {burst}",
        startup_s=startup_seconds(),
    )


# ----------------------------------------------------------------------------- rows and report


def _n(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def _minutes(requests: float) -> str:
    minutes = requests / QUOTA_PER_MINUTE
    return f"{minutes / 60:.1f} h" if minutes >= 120 else f"{minutes:.1f} min"


def _quota(writes: int) -> str:
    """The least real time the write quota allows ``writes`` requests."""
    return "< 1 min" if writes <= QUOTA_PER_MINUTE else f"≥ {_minutes(writes)}"


def rows(r: Result) -> list[Row]:
    runs = r.sizes.runs
    b, again, nightly, naive = r.backlog, r.again, r.nightly, r.naive
    per_run = b.appends / max(runs, 1)
    setup = b.writes - b.appends
    naive_writes = naive.writes_for(runs)
    naive_per_run = naive.writes / naive.runs
    nightly_client = r.startup_s + nightly.client_s
    nightly_ok = nightly_client < NIGHTLY_CLIENT_TARGET_S and max(nightly.writes, nightly.reads) <= QUOTA_PER_MINUTE
    extrapolated = f"extrapolated from {naive.runs} run(s)"
    return [
        Row(
            benchmark=NAME,
            case=f"backlog of {runs} runs x {MEASUREMENTS_PER_RUN}: append requests per run",
            value=per_run,
            unit="requests/run",
            shown=f"{per_run:.3f} ({b.appends} append{'' if b.appends == 1 else 's'}"
            + (f"; + {setup} to create the worksheet)" if setup else ")"),
            comparison=f"append_row per row: {_n(naive_per_run)}/run ({_n(naive_writes)} writes, {extrapolated})",
            ratio=f"{naive_writes / max(b.writes, 1):,.0f}x fewer",
            target=f"≤ {WRITES_PER_RUN_TARGET:g}",
            met=per_run <= WRITES_PER_RUN_TARGET,
            higher_is_better=False,
            metric="backlog_appends_per_run",
        ),
        Row(
            benchmark=NAME,
            case=f"backlog + nightly: rows in the sheet ({r.expected_rows:,} expected)",
            value=float(r.rows_in_sheet),
            unit="rows",
            shown=f"{r.rows_in_sheet:,}" + (f", {r.duplicated} wrong or twice" if r.duplicated else ""),
            comparison=f"sent {b.sent_rows + nightly.sent_rows:,} rows in {b.writes + nightly.writes} writes",
            target="every row once",
            met=r.rows_in_sheet == r.expected_rows and r.duplicated == 0,
            metric="rows_in_sheet",
        ),
        Row(
            benchmark=NAME,
            case=f"backlog of {runs} runs: wall time",
            value=b.wall_s,
            unit="s",
            shown=f"{b.wall_s:.2f} s",
            comparison=f"append_row per row: {naive.seconds_for(runs):.1f} s here ({extrapolated}); at "
            f"{QUOTA_PER_MINUTE} writes/min: mltest {_quota(b.writes)}, append_row ≥ {_minutes(naive_writes)}",
            ratio=f"{naive.seconds_for(runs) / max(b.wall_s, 1e-9):.1f}x faster here",
            higher_is_better=False,
            metric="backlog_wall_time",
        ),
        Row(
            benchmark=NAME,
            case=f"nightly run (1 x {MEASUREMENTS_PER_RUN}): write requests",
            value=float(nightly.writes),
            unit="requests",
            shown=f"{nightly.writes}",
            comparison=f"append_row per row: {_n(naive_per_run)}",
            ratio=f"{naive_per_run / max(nightly.writes, 1):.0f}x fewer",
            target="= 1",
            met=nightly.writes == 1,
            higher_is_better=False,
            metric="nightly_writes",
        ),
        Row(
            benchmark=NAME,
            case=f"nightly run (1 x {MEASUREMENTS_PER_RUN}): client time of `mltest sync`, excluding the server",
            value=nightly_client,
            unit="s",
            shown=f"{nightly_client:.3f} s",
            comparison=f"{r.startup_s:.3f} s process start and imports + {nightly.client_s:.3f} s sync (wall "
            f"{nightly.wall_s:.3f} s, server {nightly.server_s:.3f} s, bucket waits {nightly.waited_s:.1f} s); "
            f"{nightly.writes} write(s), {nightly.reads} reads",
            ratio=f"{nightly_client / NIGHTLY_CLIENT_TARGET_S:.2f} of the target",
            target=f"< {NIGHTLY_CLIENT_TARGET_S:g} s, ≤ {QUOTA_PER_MINUTE} writes and reads",
            met=nightly_ok,
            higher_is_better=False,
            metric="nightly_client_time",
        ),
        Row(
            benchmark=NAME,
            case="second sync, nothing new: write requests",
            value=float(again.writes),
            unit="requests",
            shown=f"{again.writes}",
            comparison=f"{again.reads} reads, {again.http} HTTP requests in all, {again.wall_s * 1000:.0f} ms",
            target="= 0",
            met=again.writes == 0,
            higher_is_better=False,
            metric="resync_writes",
        ),
    ]


def _sync_line(s: Sync) -> list[str]:
    return [
        s.label,
        f"{s.sent_runs:,}",
        f"{s.sent_rows:,}",
        f"{s.http} ({s.tokens} / {s.reads} / {s.writes})",
        f"{s.wall_s:.3f} s",
        f"{s.server_s:.3f} s",
        f"{s.waited_s:.1f} s",
        f"{s.client_s:.3f} s",
        _quota(s.writes),
    ]


def report(r: Result, command: str) -> str:
    rs = rows(r)
    naive = r.naive
    syncs = table(
        [
            "sync",
            "runs sent",
            "rows sent",
            "HTTP requests (token / reads / writes)",
            "wall",
            "server",
            "bucket waits",
            "client",
            "write quota time",
        ],
        [_sync_line(s) for s in (r.backlog, r.again, r.nightly)],
    )
    summary = table(
        ["case", "mltest", "compared with (same run)", "ratio", "target", "met?"],
        [[x.case, x.shown, x.comparison, x.ratio, x.target, met_text(x.met)] for x in rs],
    )
    return f"""{HEADING}

{START}
`{command}` on {dt.date.today().isoformat()}. Machine: {machine()}.

A SQLite store with {r.sizes.runs} finished runs x {MEASUREMENTS_PER_RUN} measurements (20 tests x 5
metrics) synced by `sync_sheets` (what `mltest sync` calls) to the test suite's local Sheets API
(`tests/store/sheets_server.py`, loopback HTTP, gspread unmodified); requests counted and timed at the
server. Token buckets as configured by default ({r.bucket}), real clock. Client time: wall less the
server's time and the buckets' waits (the backlog's includes this process's first import of gspread and
google-auth). Write quota time: Google allows {QUOTA_PER_MINUTE} write requests a minute, so R writes take
at least R / {QUOTA_PER_MINUTE} minutes. The stand-in's sockets have TCP_NODELAY (without it each request
waits ~40 ms on Nagle and delayed ACK, an artefact of the stand-in). A fresh process importing what
`mltest sync` needs: {r.startup_s:.2f} s (median of {STARTUP_REPEATS}; added to the nightly client time).

{syncs}

Naive gspread, measured on the same server: `append_row` per measurement row for the first
{naive.runs} run(s): {naive.writes:,} writes and {naive.reads} reads for {naive.rows:,} rows in
{naive.wall_s:.2f} s (server {naive.server_s:.2f} s); for {r.sizes.runs} runs, extrapolated linearly:
{_n(naive.writes_for(r.sizes.runs))} writes, at least {_minutes(naive.writes_for(r.sizes.runs))} at the quota.

{summary}
{END}
"""


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def run(quick: bool) -> Outcome:
    result = measure(QUICK if quick else FULL, _log)
    command = "python -m benchmarks --only sheets" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(result), report(result, command), START, END)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.runs} runs in the backlog (default {FULL.runs})")
    parser.add_argument("--write", action="store_true", help=f"replace the sheets section of {BENCHMARKS_MD.name}")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = measure(QUICK if args.quick else FULL, _log)
    section = report(result, "python -m benchmarks.sheets" + (" --quick" if args.quick else "") + " --write")
    emit(section, START, END, args.write)
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 1 if any(r.met is False for r in rows(result)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
