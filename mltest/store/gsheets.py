"""Google Sheets as a results destination (``gsheets://SPREADSHEET_KEY[/WORKSHEET]``), through gspread.

The SQL store stays the source of truth; the sheet is a view kept in step with it. Finished runs
that a sheet has not received are *pending*: the store's ``deliveries`` table says which runs each
sink has. :func:`sync_runs` sends the pending runs, one ``values.append`` (``valueInputOption=RAW``:
text such as ``=IMPORTXML(...)`` stays text) per batch of whole runs, throttled by a token bucket
and retried with exponential backoff and jitter on 429, 5xx, timeouts and dropped connections.

No row is lost or written twice: a run is marked delivered only after its append succeeded, and the
run-id column of the sheet is read at the start of every sync and again before re-sending after an
uncertain failure (a write that may have landed although its response was lost); runs already there
are skipped and marked delivered.

Columns are :data:`COLUMNS`, in that order; later versions only ever add columns at the end. An
existing sheet with an older, shorter header gets the missing columns appended to its header, and
rows are written in the sheet's own header order (columns it has that mltest does not know stay
empty).

Credentials (a service-account key) are never printed: every message that leaves this module is
scrubbed of the private key and the access token.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from mltest.errors import BackendUnavailable, ConfigError, MissingExtraError, StoreError
from mltest.model import Measurement, Run, utc_now

if TYPE_CHECKING:
    import requests

    from mltest.store import Store

__all__ = [
    "COLUMNS",
    "COMPARED_COLUMNS",
    "CREDENTIALS_JSON_ENV",
    "DEFAULT_WORKSHEET",
    "ENDPOINT_ENV",
    "Baseline",
    "CheckResult",
    "RetryPolicy",
    "SheetSink",
    "SheetTarget",
    "SheetsError",
    "SheetsUnavailable",
    "SyncResult",
    "TokenBucket",
    "check_sheet",
    "load_credentials",
    "open_sheet",
    "parse_sheets_url",
    "sheet_rows",
    "sync_runs",
]

Cell = str | float | int | bool
Row = dict[str, Cell]

DEFAULT_WORKSHEET = "mltest"
CREDENTIALS_JSON_ENV = "MLTEST_SHEETS_CREDENTIALS_JSON"
"""An environment variable holding the service-account key's JSON itself (CI secrets)."""
ENDPOINT_ENV = "MLTEST_SHEETS_ENDPOINT"
"""For testing: send Sheets API calls to this base URL (``http://127.0.0.1:PORT``) instead of Google."""
SHEETS_API = "https://sheets.googleapis.com/"

COLUMNS: tuple[tuple[str, str], ...] = (
    ("date", "when the run started, UTC, YYYY-MM-DD HH:MM:SS"),
    ("commit", "the commit's short SHA (10 characters)"),
    ("commit_url", "the commit's web page, when the repository URL is known (else empty)"),
    ("subject", "the commit's subject line"),
    ("branch", "the branch the run tested"),
    ("tier", "unit or integration"),
    ("test", "the test's node id"),
    ("metric", "the metric's name"),
    ("value", "the measured value (a number)"),
    ("unit", "the metric's unit (may be empty)"),
    ("baseline", "median of the recent baseline-branch runs in the same environment when sent (else empty)"),
    ("delta_pct", "(value - baseline) / |baseline| x 100 (else empty)"),
    ("regression", "TRUE when the change is a significant regression beyond the metric's tolerance"),
    ("gpu", "the environment key: GPU model x count, or cpu: MODEL x cores"),
    ("torch", "the torch version (empty without torch)"),
    ("run_id", "the run's id: identifies every row of the run"),
    ("ci_url", "the CI job that ran it (may be empty)"),
)
"""The sheet's columns, in order, with what each holds. New columns are only ever appended."""
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)
DERIVED_COLUMNS = ("commit_url", "baseline", "delta_pct", "regression")
"""Computed when a run is sent (from settings and the history then): a snapshot, not a stored fact."""
COMPARED_COLUMNS: tuple[str, ...] = tuple(n for n in COLUMN_NAMES if n not in DERIVED_COLUMNS)
"""What ``mltest sync --check`` compares between the sheet and the store."""


# ----------------------------------------------------------------------------- errors
class SheetsError(StoreError):
    """The sheet refused an operation (bad key, no access, bad request); the message is one line."""


class SheetsUnavailable(SheetsError, BackendUnavailable):
    """The sheet could not be reached or kept failing after retries; unsent runs stay queued."""


# ----------------------------------------------------------------------------- the destination
@dataclass(frozen=True)
class SheetTarget:
    key: str
    worksheet: str = DEFAULT_WORKSHEET

    @property
    def url(self) -> str:
        """The canonical URL: the sink's name in the store's ``deliveries`` table."""
        return f"gsheets://{self.key}/{quote(self.worksheet, safe='')}"


def parse_sheets_url(url: str) -> SheetTarget:
    """``gsheets://SPREADSHEET_KEY[/WORKSHEET]`` (a worksheet name may be %-encoded: ``Nightly%20runs``)."""
    hint = (
        "use gsheets://SPREADSHEET_KEY[/WORKSHEET], where the key is the part after /d/ in the sheet's "
        "address (https://docs.google.com/spreadsheets/d/KEY/edit)"
    )
    scheme, sep, rest = url.strip().partition("://")
    if scheme.lower() != "gsheets" or not sep:
        raise ConfigError(f"sheets URL {url!r} is not a gsheets:// URL: {hint}")
    key, _, worksheet = rest.partition("/")
    if not key or not all(c.isalnum() or c in "-_" for c in key):
        raise ConfigError(f"sheets URL {url!r} has no valid spreadsheet key: {hint}")
    worksheet = unquote(worksheet.rstrip("/"))
    if "/" in worksheet or any(c in worksheet for c in "[]*?:\\"):
        raise ConfigError(f"sheets URL {url!r}: a worksheet name cannot contain / [ ] * ? : or \\; {hint}")
    return SheetTarget(key, worksheet or DEFAULT_WORKSHEET)


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Baseline:
    """What one measurement is compared with when it is sent."""

    value: float
    regression: bool | None = None
    """None when no verdict is possible (too few baseline runs, or unknown direction)."""


def _date(started_at: str) -> str:
    return started_at[:19].replace("T", " ")


def sheet_rows(
    run: Run,
    measurements: Iterable[Measurement],
    *,
    repo_url: str | None = None,
    baselines: Mapping[tuple[str, str], Baseline] | None = None,
) -> list[Row]:
    """One row per measurement of ``run`` (keyed by column name; see :data:`COLUMNS`)."""
    rows: list[Row] = []
    commit_url = f"{repo_url.rstrip('/')}/commit/{run.commit.sha}" if repo_url else ""
    for m in measurements:
        base = (baselines or {}).get((m.test, m.metric))
        delta: Cell = ""
        if base is not None and math.isfinite(base.value) and base.value != 0:
            delta = round((m.value - base.value) / abs(base.value) * 100, 6)
        rows.append(
            {
                "date": _date(run.started_at),
                "commit": run.commit.short,
                "commit_url": commit_url,
                "subject": run.commit.subject or "",
                "branch": run.commit.branch or "",
                "tier": run.tier,
                "test": m.test,
                "metric": m.metric,
                "value": float(m.value),
                "unit": m.unit or "",
                "baseline": float(base.value) if base is not None and math.isfinite(base.value) else "",
                "delta_pct": delta,
                "regression": base.regression if base is not None and base.regression is not None else "",
                "gpu": run.environment.key,
                "torch": run.environment.torch or "",
                "run_id": run.run_id,
                "ci_url": run.ci_url or "",
            }
        )
    return rows


# ----------------------------------------------------------------------------- credentials
def load_credentials(path: str | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The service-account key: the ``sheets_credentials`` file, else the JSON in
    ``MLTEST_SHEETS_CREDENTIALS_JSON``, else the file ``GOOGLE_APPLICATION_CREDENTIALS`` names.

    Errors say which source was at fault and never quote its content."""
    if path:
        where, text = f"the credentials file {path} (sheets_credentials)", _read(path, "sheets_credentials")
    elif environ.get(CREDENTIALS_JSON_ENV, "").strip():
        where, text = f"the environment variable {CREDENTIALS_JSON_ENV}", environ[CREDENTIALS_JSON_ENV]
    elif environ.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip():
        gac = environ["GOOGLE_APPLICATION_CREDENTIALS"].strip()
        where, text = (
            f"the credentials file {gac} (GOOGLE_APPLICATION_CREDENTIALS)",
            _read(gac, "GOOGLE_APPLICATION_CREDENTIALS"),
        )
    else:
        raise ConfigError(
            "the Google Sheet needs service-account credentials: set sheets_credentials = PATH to the key "
            f"file, or put the key's JSON in {CREDENTIALS_JSON_ENV}, or set GOOGLE_APPLICATION_CREDENTIALS"
        )
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}): give the service account's "
            "JSON key as downloaded from the Google Cloud console"
        ) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(
            f'{where} is not a service-account key (its "type" is not "service_account"): create a JSON key '
            "for a service account in the Google Cloud console"
        )
    for needed in ("client_email", "private_key", "token_uri"):
        if not isinstance(info.get(needed), str) or not info[needed]:
            raise ConfigError(f"{where} is not a complete service-account key: it has no {needed!r}")
    return info


def _read(path: str, setting: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"cannot read the credentials file {path} ({setting}): {reason}") from None


# ----------------------------------------------------------------------------- throttling and retries
class TokenBucket:
    """At most ``burst`` calls at once and ``per_minute`` a minute on average; ``acquire`` sleeps
    (through the injected ``sleep``, on the injected ``clock``) until a token is there."""

    def __init__(
        self,
        per_minute: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs per_minute > 0 and burst >= 1; got {per_minute}, {burst}")
        self.rate = per_minute / 60.0
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._at = clock()

    def acquire(self) -> float:
        """Take one token; returns how long it waited."""
        waited = 0.0
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1 - 1e-9:  # rounding must not leave it waiting for 1e-16 of a token
                self._tokens = max(0.0, self._tokens - 1)
                return waited
            wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``n`` (1-based) waits uniform(base, min(cap, base*2**n))."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * 2**attempt)
        delay = self.rng.uniform(min(self.base, ceiling), ceiling)
        return max(delay, retry_after or 0.0)


class _Failure(Exception):
    """A call that may succeed if repeated. ``uncertain``: a write may have landed nonetheless."""

    def __init__(self, message: str, *, uncertain: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.uncertain = uncertain
        self.retry_after = retry_after


# ----------------------------------------------------------------------------- the sheet
class SheetSink:
    """One worksheet, through gspread's HTTP client (``http_client``: a :class:`gspread.HTTPClient`)."""

    def __init__(
        self,
        target: SheetTarget,
        http_client: Any,
        *,
        secrets: Sequence[str] = (),
        retry: RetryPolicy | None = None,
        reads: TokenBucket | None = None,
        writes: TokenBucket | None = None,
        account: str | None = None,
    ) -> None:
        self.target = target
        self.url = target.url
        self._http = http_client
        self._secrets = [s for s in secrets if s]
        self.retry = retry or RetryPolicy()
        # Google's quota is 60 reads and 60 writes per minute per user: stay under it in any minute.
        self.reads = reads or TokenBucket(54, 5)
        self.writes = writes or TokenBucket(54, 5)
        self._account = account
        self._header: list[str] | None = None
        self.appends = 0
        """Append requests sent (retries included): what the tests count."""

    # ------------------------------------------------------------------ plumbing
    def scrub(self, text: str) -> str:
        """``text`` without the private key, its id or the current access token."""
        token = getattr(getattr(self._http, "auth", None), "token", None)
        for secret in [*self._secrets, *([token] if isinstance(token, str) else [])]:
            if secret:
                text = text.replace(secret, "***")
                for line in secret.splitlines():
                    if len(line) > 16:
                        text = text.replace(line, "***")
        return text

    def _range(self, cells: str = "") -> str:
        name = "'" + self.target.worksheet.replace("'", "''") + "'"
        return f"{name}!{cells}" if cells else name

    def _call(self, what: str, write: bool, call: Callable[[], Any]) -> Any:
        """One API call, throttled; transient failures become :class:`_Failure`, others SheetsError."""
        import google.auth.exceptions
        import gspread
        import requests

        (self.writes if write else self.reads).acquire()
        try:
            return call()
        except gspread.exceptions.APIError as exc:
            code = int(exc.code)
            message = self.scrub(_api_message(exc))
            if code == 429 or code == 408 or code >= 500:
                retry_after = _retry_after(exc)
                raise _Failure(
                    f"{what}: HTTP {code} {message}", uncertain=code != 429, retry_after=retry_after
                ) from None
            raise SheetsError(f"{what} failed on {self.url}: HTTP {code} {message}{self._hint(code)}") from None
        except requests.exceptions.Timeout:
            raise _Failure(f"{what}: timed out", uncertain=True) from None
        except requests.exceptions.ConnectionError as exc:
            raise _Failure(f"{what}: connection failed ({self.scrub(_first_line(exc))})", uncertain=True) from None
        except google.auth.exceptions.RefreshError as exc:
            reason = self.scrub(str(exc.args[0]) if exc.args else type(exc).__name__)
            if getattr(exc, "retryable", False):
                raise _Failure(f"{what}: token request failed ({reason})", uncertain=False) from None
            raise SheetsError(
                f"the service account {self._account or ''} was refused a token for {self.url}: {reason}; check "
                "that the key is current and the Sheets API is enabled"
            ) from None
        except google.auth.exceptions.TransportError as exc:
            raise _Failure(f"{what}: token request failed ({self.scrub(_first_line(exc))})", uncertain=False) from None

    def _hint(self, code: int) -> str:
        if code in (401, 403):
            who = f" ({self._account})" if self._account else ""
            return f": share the spreadsheet with the service account{who} as an editor"
        if code == 404:
            return ": check the spreadsheet key in sheets_url"
        return ""

    def _retrying(self, what: str, write: bool, call: Callable[[], Any]) -> Any:
        """For calls that are safe to repeat (reads, header writes)."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return self._call(what, write, call)
            except _Failure as failure:
                if attempt == self.retry.attempts:
                    raise SheetsUnavailable(
                        f"cannot reach the sheet {self.url} after {attempt} tries: {failure.message}"
                    ) from None
                self.retry.sleep(self.retry.delay(attempt, failure.retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ the worksheet
    def header(self) -> list[str]:
        """The worksheet's header, after creating the worksheet, the header row or missing columns."""
        if self._header is not None:
            return self._header
        key = self.target.key
        meta = self._retrying("reading the spreadsheet", False, lambda: self._http.fetch_sheet_metadata(key))
        sheets = {s["properties"]["title"]: s["properties"] for s in meta.get("sheets", [])}
        props = sheets.get(self.target.worksheet)
        if props is None:
            body = {
                "requests": [
                    {
                        "addSheet": {
                            "properties": {
                                "title": self.target.worksheet,
                                "gridProperties": {"rowCount": 1000, "columnCount": max(26, len(COLUMNS))},
                            }
                        }
                    }
                ]
            }
            reply = self._retrying_add_sheet(body)
            props = reply
        got = self._retrying(
            "reading the header",
            False,
            lambda: self._http.values_get(key, self._range("1:1"), params={"valueRenderOption": "UNFORMATTED_VALUE"}),
        )
        values = got.get("values") or [[]]
        header = [str(v) for v in values[0]]
        while header and header[-1] == "":
            header.pop()
        missing = [name for name in COLUMN_NAMES if name not in header]
        if missing:
            new_header = header + missing
            columns = int(props.get("gridProperties", {}).get("columnCount", 26))
            if len(new_header) > columns:
                grow = {
                    "requests": [
                        {
                            "appendDimension": {
                                "sheetId": props.get("sheetId", 0),
                                "dimension": "COLUMNS",
                                "length": len(new_header) - columns,
                            }
                        }
                    ]
                }
                self._retrying("widening the worksheet", True, lambda: self._http.batch_update(key, grow))
            self._retrying(
                "writing the header",
                True,
                lambda: self._http.values_update(
                    key, self._range("A1"), params={"valueInputOption": "RAW"}, body={"values": [new_header]}
                ),
            )
            header = new_header
        self._header = header
        return header

    def _retrying_add_sheet(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self.target.key
        try:
            reply = self._retrying("adding the worksheet", True, lambda: self._http.batch_update(key, body))
            props: dict[str, Any] = reply["replies"][0]["addSheet"]["properties"]
            return props
        except SheetsError:
            # A lost reply of a successful addSheet makes the retry fail (the title exists): look again.
            meta = self._retrying("reading the spreadsheet", False, lambda: self._http.fetch_sheet_metadata(key))
            for sheet in meta.get("sheets", []):
                if sheet["properties"]["title"] == self.target.worksheet:
                    found: dict[str, Any] = sheet["properties"]
                    return found
            raise

    def _column(self, name: str) -> str:
        return _column_letter(self.header().index(name))

    def run_ids(self) -> Counter[str]:
        """How many rows each run id has in the sheet."""
        column = self._column("run_id")
        got = self._retrying(
            "reading the run ids",
            False,
            lambda: self._http.values_get(
                self.target.key,
                self._range(f"{column}2:{column}"),
                params={"valueRenderOption": "UNFORMATTED_VALUE"},
            ),
        )
        return Counter(str(row[0]) for row in got.get("values", []) if row and row[0] != "")

    def rows(self) -> list[Row]:
        """Every data row, keyed by the header's names."""
        header = self.header()
        got = self._retrying(
            "reading the rows",
            False,
            lambda: self._http.values_get(
                self.target.key,
                self._range("A2:" + _column_letter(len(header) - 1)),
                params={"valueRenderOption": "UNFORMATTED_VALUE"},
            ),
        )
        out = []
        for values in got.get("values", []):
            if not any(v != "" for v in values):
                continue
            out.append({name: (values[i] if i < len(values) else "") for i, name in enumerate(header)})
        return out

    def append_runs(self, runs: Sequence[tuple[str, Sequence[Row]]]) -> list[str]:
        """Append the rows of these runs in one request; returns the run ids now in the sheet.

        On an uncertain failure the run-id column is read again before re-sending, and runs already
        there are not sent again."""
        header = self.header()
        remaining = [(run_id, rows) for run_id, rows in runs if rows]
        uncertain = False
        for attempt in range(1, self.retry.attempts + 1):
            try:
                if uncertain:
                    present = self.run_ids()
                    remaining = [(run_id, rows) for run_id, rows in remaining if run_id not in present]
                if remaining:
                    values = [[row.get(name, "") for name in header] for _, rows in remaining for row in rows]
                    self.appends += 1
                    self._call(
                        "appending rows",
                        True,
                        lambda: self._http.values_append(
                            self.target.key,
                            self._range("A1"),
                            params={"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"},
                            body={"majorDimension": "ROWS", "values": values},  # noqa: B023 - called at once
                        ),
                    )
                return [run_id for run_id, _ in runs]
            except _Failure as failure:
                uncertain = uncertain or failure.uncertain
                if attempt == self.retry.attempts:
                    raise SheetsUnavailable(
                        f"cannot write to the sheet {self.url} after {attempt} tries: {failure.message}"
                    ) from None
                self.retry.sleep(self.retry.delay(attempt, failure.retry_after))
            except SheetsUnavailable:
                if attempt == self.retry.attempts:
                    raise
        raise SheetsUnavailable(f"cannot write to the sheet {self.url}")  # pragma: no cover


def _column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _api_message(exc: Any) -> str:
    error = getattr(exc, "error", None)
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"]).splitlines()[0]
    return _first_line(exc)


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------- opening
def open_sheet(
    url: str,
    *,
    credentials_path: str | None,
    environ: Mapping[str, str],
    session: requests.Session | None = None,
    timeout: float = 30.0,
    retry: RetryPolicy | None = None,
    reads: TokenBucket | None = None,
    writes: TokenBucket | None = None,
) -> SheetSink:
    """The sink for ``url``, authenticated with the service account (see :func:`load_credentials`).

    ``session``: an already-authorized :class:`requests.Session` to use instead (credentials are then
    not read). ``MLTEST_SHEETS_ENDPOINT`` in ``environ`` (for testing) sends the API calls to another
    base URL; the key's ``token_uri`` says where tokens come from.
    """
    target = parse_sheets_url(url)
    if importlib.util.find_spec("gspread") is None:
        raise MissingExtraError("the Google Sheets destination", "gsheets", "gspread")
    import gspread

    secrets: list[str] = []
    account = None
    if session is None:
        info = load_credentials(credentials_path, environ)
        secrets = [info["private_key"], str(info.get("private_key_id", ""))]
        account = info["client_email"]
        from google.auth.transport.requests import AuthorizedSession
        from google.oauth2.service_account import Credentials

        try:
            credentials = Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=["https://www.googleapis.com/auth/spreadsheets"]
            )
        except (ValueError, TypeError):
            raise ConfigError(
                f"the service-account key of {account} has a private_key that cannot be read: download a new key"
            ) from None
        session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        endpoint = environ.get(ENDPOINT_ENV, "").strip()
        if endpoint:
            session.mount(SHEETS_API, _redirect(endpoint))
        http_client = gspread.HTTPClient(credentials, session)
        http_client.auth = credentials
    else:
        http_client = gspread.HTTPClient(None, session)  # type: ignore[arg-type]  # gspread's documented form
    http_client.set_timeout(timeout)
    return SheetSink(target, http_client, secrets=secrets, retry=retry, reads=reads, writes=writes, account=account)


def _redirect_adapter() -> type:
    from requests.adapters import HTTPAdapter

    class Redirect(HTTPAdapter):
        def __init__(self, endpoint: str) -> None:
            super().__init__()
            self.endpoint = endpoint.rstrip("/") + "/"

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if request.url.startswith(SHEETS_API):
                request.url = self.endpoint + request.url[len(SHEETS_API) :]
            return super().send(request, *args, **kwargs)

    return Redirect


def _redirect(endpoint: str) -> Any:
    """A requests adapter sending Sheets API calls to ``endpoint`` (the class is made on first use)."""
    return _redirect_adapter()(endpoint)


# ----------------------------------------------------------------------------- syncing
@dataclass(frozen=True)
class SyncResult:
    """What one sync did. ``pending``: runs still queued afterwards (0 after a full success)."""

    sink: str
    sent_runs: int = 0
    sent_rows: int = 0
    already_there: int = 0
    """Runs found in the sheet already (an earlier write whose reply was lost) and marked delivered."""
    pending: int = 0
    error: str | None = None

    def line(self) -> str:
        text = (
            f"sent {self.sent_runs} run(s), {self.sent_rows} row(s) to {self.sink}"
            + (f"; {self.already_there} run(s) were already there" if self.already_there else "")
            + (f"; {self.pending} run(s) still queued" if self.pending else "")
        )
        return text + (f" ({self.error})" if self.error else "")


RowsFor = Callable[[Run], Sequence[Row]]


def sync_runs(
    store: Store,
    sink: SheetSink,
    rows_for: RowsFor,
    *,
    project: str | None = None,
    max_rows: int = 2000,
    limit: int = 100_000,
) -> SyncResult:
    """Send the runs pending for ``sink``, marking each delivered once the sheet has it.

    Raises :class:`SheetsError` (or ``SheetsUnavailable``) when the sheet fails; what was sent
    before the failure stays marked, the rest stays queued."""
    pending = store.pending_runs(sink.url, project=project, limit=limit)
    if not pending:
        return SyncResult(sink.url)
    present = sink.run_ids()
    there = [r.run_id for r in pending if r.run_id in present]
    if there:
        store.mark_delivered(sink.url, there, utc_now())
    sent_runs = sent_rows = 0
    batch: list[tuple[str, Sequence[Row]]] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size, sent_runs, sent_rows
        if not batch:
            return
        delivered = sink.append_runs(batch)
        store.mark_delivered(sink.url, delivered, utc_now())
        sent_runs += len(batch)
        sent_rows += size
        batch, size = [], 0

    try:
        for run in pending:
            if run.run_id in present:
                continue
            rows = list(rows_for(run))
            if batch and size + len(rows) > max_rows:
                flush()
            batch.append((run.run_id, rows))
            size += len(rows)
        flush()
    except SheetsError as exc:
        queued = len(store.pending_runs(sink.url, project=project, limit=limit))
        raise type(exc)(f"{exc} ({queued} run(s) stay queued: `mltest sync` sends them)") from None
    return SyncResult(sink.url, sent_runs, sent_rows, len(there), 0)


# ----------------------------------------------------------------------------- checking
@dataclass(frozen=True)
class CheckResult:
    """How the sheet and the store differ, per run id. Empty lists: they agree."""

    sink: str
    runs_checked: int = 0
    missing: tuple[str, ...] = ()
    """Delivered runs (or rows of them) that the sheet lacks."""
    extra: tuple[str, ...] = ()
    """Rows in the sheet that the store does not have (unknown runs or measurements)."""
    duplicates: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    queued: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.duplicates or self.changed)

    def lines(self) -> list[str]:
        if self.ok:
            queued = f"; {self.queued} run(s) queued, not sent yet" if self.queued else ""
            return [f"the sheet {self.sink} agrees with the store: {self.runs_checked} run(s) checked{queued}"]
        out = [
            f"the sheet {self.sink} differs from the store: {len(self.missing)} missing, {len(self.extra)} extra, "
            f"{len(self.duplicates)} duplicated, {len(self.changed)} changed"
        ]
        for label, items in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("duplicate", self.duplicates),
            ("changed", self.changed),
        ):
            out.extend(f"  {label}: {item}" for item in items)
        return out


def _same(a: Cell, b: Cell) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool | str):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return str(a) == str(b)


def check_sheet(store: Store, sink: SheetSink, rows_for: RowsFor, *, project: str | None = None) -> CheckResult:
    """Compare every run in the sheet, and every run the store marked delivered, row by row."""
    delivered = store.deliveries(sink.url)
    by_run: dict[str, list[Row]] = {}
    for row in sink.rows():
        by_run.setdefault(str(row.get("run_id", "")), []).append(row)
    missing: list[str] = []
    extra: list[str] = []
    duplicates: list[str] = []
    changed: list[str] = []
    for run_id in sorted(set(delivered) | set(by_run)):
        sheet = by_run.get(run_id, [])
        run = store.get_run(run_id) if run_id else None
        if run is None:
            extra.append(f"run {run_id or '(no run id)'}: {len(sheet)} row(s) of a run the store does not have")
            continue
        expected = {(str(r["test"]), str(r["metric"])): r for r in rows_for(run)}
        seen: Counter[tuple[str, str]] = Counter((str(r.get("test", "")), str(r.get("metric", ""))) for r in sheet)
        if not sheet and expected:
            missing.append(f"run {run_id}: all {len(expected)} row(s)")
            continue
        for key, count in sorted(seen.items()):
            if key not in expected:
                extra.append(f"run {run_id}: {key[0]} {key[1]} is not in the store")
            elif count > 1:
                duplicates.append(f"run {run_id}: {key[0]} {key[1]} appears {count} times")
        lacking = [key for key in expected if key not in seen]
        if lacking:
            missing.append(
                f"run {run_id}: {len(lacking)} of {len(expected)} row(s), e.g. {lacking[0][0]} {lacking[0][1]}"
            )
        for r in sheet:
            key = (str(r.get("test", "")), str(r.get("metric", "")))
            want = expected.get(key)
            if want is None:
                continue
            diffs = [c for c in COMPARED_COLUMNS if c in r and not _same(r[c], want[c])]
            if diffs:
                changed.append(
                    f"run {run_id}: {key[0]} {key[1]}: "
                    + ", ".join(f"{c} is {r[c]!r} in the sheet, {want[c]!r} in the store" for c in diffs)
                )
    checked = len(set(delivered) | set(by_run))
    queued = len([r for r in store.pending_runs(sink.url, project=project) if r.run_id not in by_run])
    return CheckResult(sink.url, checked, tuple(missing), tuple(extra), tuple(duplicates), tuple(changed), queued)
