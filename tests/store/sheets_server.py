"""A local stand-in for the Google Sheets v4 API and Google's OAuth token endpoint, for gspread unmodified.

It implements what mltest's sheet sink (through gspread's ``HTTPClient``) calls: spreadsheet metadata,
``values`` get / update / append, ``batchUpdate`` (``addSheet``, ``appendDimension``), and the
service-account JWT exchange at ``/token`` (the signature is checked against the test key). Calls
without the issued bearer token get 401. Cells are kept as JSON values; ``valueInputOption=USER_ENTERED``
is emulated for what matters here (a text starting with ``=`` becomes a formula, numeric text a number),
so a test can tell RAW from USER_ENTERED. Grid limits are enforced like Google's (a write beyond the
sheet's columns is a 400).

Fault injection: :meth:`SheetsServer.fail` queues faults for an operation (``append``, ``values_get``,
``values_update``, ``metadata``, ``batch_update``, ``token``):

* ``"429"``: a quota error, nothing applied;
* ``"500"``: a server error, nothing applied;
* ``"500-applied"``: the write is applied, then a 503 is answered;
* ``"slow"``: the write is applied, then the reply waits ``delay`` seconds (past the client's timeout);
* ``"drop"``: the write is applied, then the connection is closed without a reply.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["SPREADSHEET", "FakeClock", "Formula", "SheetsServer", "Worksheet", "make_service_account", "running_server"]

SPREADSHEET = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-"


class FakeClock:
    """``clock()`` and ``sleep(seconds)`` on fake time; ``sleeps`` lists every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(frozen=True)
class Formula:
    """A cell that USER_ENTERED input turned into a formula (what RAW must prevent)."""

    text: str


@dataclass
class Worksheet:
    title: str
    sheet_id: int
    rows: list[list[Any]] = field(default_factory=list)
    row_count: int = 1000
    column_count: int = 26

    def props(self, index: int) -> dict[str, Any]:
        return {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": index,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": self.row_count, "columnCount": self.column_count},
        }

    def data_rows(self) -> list[list[Any]]:
        """The rows below the header (what the tests inspect), trailing empty cells kept."""
        return self.rows[1:]


def make_service_account(token_uri: str) -> tuple[dict[str, Any], rsa.RSAPublicKey]:
    """A service-account key (JSON info) with a fresh RSA key, and its public half for the server."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "mltest-local",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": "mltest-sync@mltest-local.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    return info, key.public_key()


_CELL = re.compile(r"^([A-Z]*)(\d*)$")


def _col_index(letters: str) -> int:
    n = 0
    for c in letters:
        n = n * 26 + ord(c) - 64
    return n - 1


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SheetsServer:
    """State and faults; :func:`running_server` serves it on 127.0.0.1."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spreadsheets: dict[str, dict[str, Worksheet]] = {}
        self.public_keys: list[rsa.RSAPublicKey] = []
        self.tokens: set[str] = set()
        self.faults: dict[str, list[tuple[str, float]]] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        """(operation, range, query) of every API call, in order."""
        self.base_url = ""
        self._next_id = 100

    # ------------------------------------------------------------------ test helpers
    def add_spreadsheet(self, key: str, *worksheets: str) -> None:
        with self.lock:
            sheets = self.spreadsheets.setdefault(key, {})
            for title in worksheets or ("Sheet1",):
                sheets[title] = Worksheet(title, self._new_id())

    def worksheet(self, key: str, title: str) -> Worksheet:
        return self.spreadsheets[key][title]

    def fail(self, operation: str, kind: str, times: int = 1, delay: float = 1.0) -> None:
        with self.lock:
            self.faults.setdefault(operation, []).extend([(kind, delay)] * times)

    def count(self, operation: str) -> int:
        return sum(1 for op, _, _ in self.calls if op == operation)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _fault(self, operation: str) -> tuple[str, float] | None:
        with self.lock:
            queue = self.faults.get(operation)
            return queue.pop(0) if queue else None

    # ------------------------------------------------------------------ ranges
    def _locate(self, key: str, a1: str) -> tuple[Worksheet, int, int, int | None, int | None]:
        """(sheet, first row, first column, last row, last column), 0-based, None = open-ended."""
        sheets = self.spreadsheets[key]
        if "!" in a1:
            name, cells = a1.rsplit("!", 1)
        else:
            name, cells = a1, ""
        if name.startswith("'") and name.endswith("'"):
            name = name[1:-1].replace("''", "'")
        if name not in sheets:
            raise _ApiError(400, f"Unable to parse range: {a1}")
        sheet = sheets[name]
        if not cells:
            return sheet, 0, 0, None, None
        start, _, end = cells.partition(":")
        end = end or start
        m1, m2 = _CELL.match(start), _CELL.match(end)
        if not m1 or not m2:
            raise _ApiError(400, f"Unable to parse range: {a1}")
        r1 = int(m1.group(2)) - 1 if m1.group(2) else 0
        c1 = _col_index(m1.group(1)) if m1.group(1) else 0
        r2 = int(m2.group(2)) - 1 if m2.group(2) else None
        c2 = _col_index(m2.group(1)) if m2.group(1) else None
        return sheet, r1, c1, r2, c2

    @staticmethod
    def _input(value: Any, option: str) -> Any:
        if option == "USER_ENTERED" and isinstance(value, str):
            if value.startswith("="):
                return Formula(value)
            try:
                return float(value)
            except ValueError:
                return value
        if option not in ("RAW", "USER_ENTERED"):
            raise _ApiError(400, f"Invalid valueInputOption: {option}")
        return value

    @staticmethod
    def _render(value: Any, option: str) -> Any:
        if isinstance(value, Formula):
            return "#NAME?"
        if option == "UNFORMATTED_VALUE":
            return value
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return value if isinstance(value, str) else str(value)

    def _write(self, sheet: Worksheet, row: int, col: int, values: list[list[Any]], option: str) -> None:
        for i, values_row in enumerate(values):
            if col + len(values_row) > sheet.column_count:
                raise _ApiError(
                    400,
                    f"Range ('{sheet.title}'!R{row + i + 1}) exceeds grid limits. Max rows: {sheet.row_count}, "
                    f"max columns: {sheet.column_count}",
                )
        for i, values_row in enumerate(values):
            r = row + i
            while len(sheet.rows) <= r:
                sheet.rows.append([])
            target = sheet.rows[r]
            while len(target) < col + len(values_row):
                target.append("")
            for j, value in enumerate(values_row):
                if value is not None:  # null leaves the cell as it is
                    target[col + j] = self._input(value, option)

    # ------------------------------------------------------------------ operations
    def handle(self, method: str, path: str, query: dict[str, Any], body: Any) -> tuple[str, Any]:
        """(operation, reply body) for an authorized API call; raises _ApiError."""
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(?::batchUpdate|/values/([^:]+)(:append)?)?", path)
        if not m:
            raise _ApiError(404, f"no such endpoint: {method} {path}")
        key = m.group(1)
        if key not in self.spreadsheets:
            raise _ApiError(404, "Requested entity was not found.")
        a1 = urllib.parse.unquote(m.group(2)) if m.group(2) else ""
        if path.endswith(":batchUpdate") and method == "POST":
            return "batch_update", lambda: self._batch_update(key, body)
        if m.group(3) and method == "POST":
            return "append", lambda: self._append(key, a1, query, body)
        if a1 and method == "GET":
            return "values_get", lambda: self._get(key, a1, query)
        if a1 and method == "PUT":
            return "values_update", lambda: self._update(key, a1, query, body)
        if not a1 and method == "GET":
            return "metadata", lambda: self._metadata(key)
        raise _ApiError(404, f"no such endpoint: {method} {path}")

    def _metadata(self, key: str) -> dict[str, Any]:
        sheets = self.spreadsheets[key]
        return {
            "spreadsheetId": key,
            "properties": {"title": f"results {key}", "locale": "en_US", "timeZone": "Etc/UTC"},
            "sheets": [{"properties": s.props(i)} for i, s in enumerate(sheets.values())],
        }

    def _batch_update(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        replies: list[dict[str, Any]] = []
        sheets = self.spreadsheets[key]
        for request in body.get("requests", []):
            if "addSheet" in request:
                props = request["addSheet"].get("properties", {})
                title = props.get("title") or f"Sheet{len(sheets) + 1}"
                if title in sheets:
                    raise _ApiError(
                        400, f'Invalid requests[0].addSheet: A sheet with the name "{title}" already exists.'
                    )
                grid = props.get("gridProperties", {})
                sheet = Worksheet(title, self._new_id(), [], grid.get("rowCount", 1000), grid.get("columnCount", 26))
                sheets[title] = sheet
                replies.append({"addSheet": {"properties": sheet.props(len(sheets) - 1)}})
            elif "appendDimension" in request:
                spec = request["appendDimension"]
                sheet = next(s for s in sheets.values() if s.sheet_id == spec["sheetId"])
                if spec["dimension"] == "COLUMNS":
                    sheet.column_count += int(spec["length"])
                else:
                    sheet.row_count += int(spec["length"])
                replies.append({})
            else:
                raise _ApiError(400, f"unsupported request: {sorted(request)}")
        return {"spreadsheetId": key, "replies": replies}

    def _get(self, key: str, a1: str, query: dict[str, Any]) -> dict[str, Any]:
        sheet, r1, c1, r2, c2 = self._locate(key, a1)
        option = query.get("valueRenderOption", "FORMATTED_VALUE")
        out = []
        last = len(sheet.rows) - 1 if r2 is None else min(r2, len(sheet.rows) - 1)
        for r in range(r1, last + 1):
            row = sheet.rows[r]
            stop = len(row) if c2 is None else min(c2 + 1, len(row))
            cells = [self._render(v, option) for v in row[c1:stop]]
            while cells and cells[-1] == "":
                cells.pop()
            out.append(cells)
        while out and not out[-1]:
            out.pop()
        reply: dict[str, Any] = {"range": a1, "majorDimension": "ROWS"}
        if out:
            reply["values"] = out
        return reply

    def _update(self, key: str, a1: str, query: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        sheet, r1, c1, _, _ = self._locate(key, a1)
        values = body.get("values", [])
        self._write(sheet, r1, c1, values, query.get("valueInputOption", ""))
        return {"spreadsheetId": key, "updatedRange": a1, "updatedRows": len(values)}

    def _append(self, key: str, a1: str, query: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        sheet, _, c1, _, _ = self._locate(key, a1)
        values = body.get("values", [])
        last = max((i for i, row in enumerate(sheet.rows) if any(v != "" for v in row)), default=-1)
        if query.get("insertDataOption") == "INSERT_ROWS" or last + 1 + len(values) > sheet.row_count:
            sheet.row_count = max(sheet.row_count, last + 1 + len(values))
        self._write(sheet, last + 1, c1, values, query.get("valueInputOption", ""))
        return {"spreadsheetId": key, "tableRange": a1, "updates": {"updatedRows": len(values)}}

    def issue_token(self, form: dict[str, list[str]]) -> dict[str, Any]:
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            raise _ApiError(400, "unsupported_grant_type")
        head, payload, signature = form["assertion"][0].split(".")
        for public in self.public_keys:
            try:
                public.verify(_b64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
                break
            except Exception:
                continue
        else:
            raise _ApiError(400, "invalid_grant: Invalid JWT Signature.")
        claims = json.loads(_b64(payload))
        if "spreadsheets" not in claims.get("scope", ""):
            raise _ApiError(400, "invalid_scope")
        token = "ya29.local-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}


class _ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: a reply's headers and body go out in two sends, and without it Nagle's algorithm
    # holds the body until the client's delayed ACK, about 40 ms a request on Linux loopback.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        status = _STATUS.get(code, "INTERNAL" if code >= 500 else "FAILED_PRECONDITION")
        self._reply(code, {"error": {"code": code, "message": message, "status": status}}, headers)

    def _drop(self) -> None:
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _serve(self, method: str) -> None:
        state = self.server.state
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if parsed.path == "/token":
            fault = state._fault("token")
            if fault is not None and fault[0] in ("500", "429"):
                self._error(int(fault[0]), "token endpoint unavailable")
                return
            try:
                self._reply(200, state.issue_token(urllib.parse.parse_qs(raw.decode())))
            except _ApiError as exc:
                error, _, description = exc.message.partition(": ")
                self._reply(exc.code, {"error": error, "error_description": description})
            return
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer ") :] not in state.tokens:
            self._error(401, "Request is missing required authentication credential.")
            return
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        body = json.loads(raw) if raw else {}
        try:
            with state.lock:
                operation, apply = state.handle(method, parsed.path, query, body)
                state.calls.append((operation, self.path, query))
            fault = state._fault(operation)
            if fault is not None and fault[0] in ("429", "500"):
                code = int(fault[0])
                message = "Quota exceeded for quota metric 'Write requests'" if code == 429 else "Internal error"
                self._error(code, message, {"Retry-After": "0"} if code == 429 else None)
                return
            with state.lock:
                reply = apply()
            if fault is None:
                self._reply(200, reply)
            elif fault[0] == "500-applied":
                self._error(503, "The service is currently unavailable.")
            elif fault[0] == "slow":
                time.sleep(fault[1])
                self._drop()
            elif fault[0] == "drop":
                self._drop()
            else:  # pragma: no cover - a typo in a test
                raise AssertionError(f"unknown fault {fault}")
        except _ApiError as exc:
            self._error(exc.code, exc.message)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    state: SheetsServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) leaves a broken pipe: expected here


@contextmanager
def running_server() -> Iterator[SheetsServer]:
    """Serve a fresh :class:`SheetsServer` on 127.0.0.1 (a free port) until the block ends; the
    server answers before this yields (readiness poll on its socket)."""
    state = SheetsServer()
    httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = state
    host, port = httpd.server_address[:2]
    state.base_url = f"http://{host}:{port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((str(host), int(port)), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("the local Sheets server did not start") from None
            time.sleep(0.02)
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
