"""Headless Chromium for the HTML report's browser tests, driven over the DevTools protocol on a pipe.

One :class:`Chromium` process per page (its own profile directory, the network off), controlled with
``--remote-debugging-pipe`` (JSON messages ending in NUL on file descriptors 3 and 4; stdlib only, no
websocket, no port). :meth:`Chromium.open` loads a page and records everything the checks need: console
messages, uncaught exceptions and browser log entries (CSP violations are those), JavaScript dialogs
(answered, so an ``alert()`` cannot hang the page), and every request the page makes. Chromium's own
console logging on stderr (``--enable-logging=stderr``) is kept too, as a second, independent record.

Why not ``chromium --dump-dom``: the report draws its charts from an IntersectionObserver callback,
which runs after the first rendered frame, and ``--dump-dom --virtual-time-budget`` sometimes dumps the
DOM before that frame (about 1 launch in 10 here, 0 charts drawn); polling the page over the
protocol until the charts are drawn is deterministic.

Also a minimal DOM tree (:func:`parse_html`) and a PNG reader (:func:`png_stats`), both stdlib only.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any

from htmltree import Node, parse_html

__all__ = [
    "MISSING_MESSAGE",
    "BrowserError",
    "Chromium",
    "Node",
    "Page",
    "find_chromium",
    "parse_html",
    "png_stats",
]

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MISSING_MESSAGE = (
    "Chromium not found (looked for chromium, chromium-browser, google-chrome on PATH); "
    "the HTML report's browser tests need it: apt-get install chromium"
)
WIDTH, HEIGHT = 1400, 6000
"""A tall viewport: every chart of a small report is in view, so the lazy drawing starts at once.
(Much taller stops working: at 12,000 px headless Chromium renders no frame, and no chart is drawn.)"""

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={WIDTH},{HEIGHT}",
    # the network is off: every host name fails to resolve and every request goes to a dead proxy
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    # console messages, uncaught errors and CSP violations on stderr, as CONSOLE lines
    "--enable-logging=stderr",
    "--v=0",
    "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    """Chromium did not start, answer or finish in time; the message carries the end of its stderr."""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, or None."""
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


# ----------------------------------------------------------------------------- DOM


# ----------------------------------------------------------------------------- PNG


@dataclasses.dataclass(frozen=True)
class PngStats:
    width: int
    height: int
    varied_rows: int
    """Rows (after the first) that show that the image is not one colour; see :func:`png_stats`."""


def png_stats(data: bytes) -> PngStats:
    """Size of a PNG and how many of its rows vary, read with zlib and struct.

    Decoding every pixel (undoing the Paeth and Average filters) takes seconds in pure Python, so this
    reads the filtered rows instead. In an image of one colour, every row after the first filters to
    zeros after its first pixel (Sub, Up, Average and Paeth all predict that colour exactly) and an
    unfiltered row repeats its first pixel. A row that does neither therefore proves a change of colour
    within the row or from the row above: 0 for a blank page, thousands for a report.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, header, idat = 8, b"", []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    raw = zlib.decompress(b"".join(idat))
    stride = 1 + width * channels
    if len(raw) != stride * height:
        raise ValueError(f"PNG data is {len(raw)} bytes, not {stride} x {height}")
    varied = 0
    for row in range(1, height):
        start = row * stride
        kind = raw[start]
        rest = raw[start + 1 + channels : start + stride]
        if kind == 0:
            first = raw[start + 1 : start + 1 + channels]
            varied += rest != first * (width - 1)
        else:
            varied += rest.count(0) != len(rest)
    return PngStats(width, height, varied)


# ----------------------------------------------------------------------------- the browser


@dataclasses.dataclass
class Page:
    """What one page did while it was open; filled in by :class:`Chromium`."""

    url: str
    session: str
    console: list[str] = dataclasses.field(default_factory=list)
    """Console API calls, uncaught exceptions and browser log entries (CSP violations), as text."""
    dialogs: list[str] = dataclasses.field(default_factory=list)
    requests: list[str] = dataclasses.field(default_factory=list)
    """The URL of every request the page made, the page itself first."""
    failed: list[str] = dataclasses.field(default_factory=list)
    load_s: float = float("nan")


def _remote_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        return str(obj["value"])
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type", "?"))


def _above_9(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Chromium:
    """One headless Chromium process; a context manager. ``stderr_console`` is set when it has ended."""

    def __init__(self, binary: str, workdir: Path, *, timeout: float = 60.0) -> None:
        self.binary = binary
        self.workdir = workdir
        self.timeout = timeout
        self.stderr_path = workdir / "chromium.stderr"
        self.stderr_console: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_browser = self._from_browser = -1
        self._buffer = b""
        self._next_id = 0
        self._pages: dict[str, Page] = {}
        self._events: list[dict[str, Any]] = []

    # -- process
    def __enter__(self) -> Chromium:
        profile = self.workdir / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        cmd_read, self._to_browser = os.pipe()
        self._from_browser, out_write = os.pipe()
        # Chromium reads commands from fd 3 and writes answers to fd 4. The pipe ends are moved above 9
        # (close-on-exec) first, so that putting one on 3 or 4 in the child cannot overwrite the other.
        cmd_read, out_write = _above_9(cmd_read), _above_9(out_write)

        def on_3_and_4() -> None:  # in the child, before exec; dup2 makes 3 and 4 inheritable
            os.dup2(cmd_read, 3)
            os.dup2(out_write, 4)

        args = [*FLAGS, f"--user-data-dir={profile}", "about:blank"]
        with self.stderr_path.open("wb") as stderr:
            self._proc = subprocess.Popen(
                [self.binary, *args],
                # close_fds would close 3 and 4 after preexec_fn (and pass_fds needs them open here,
                # which they are not without pytest's capture); Python opens every other fd
                # non-inheritable, so nothing else reaches the browser
                close_fds=False,
                preexec_fn=on_3_and_4,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: a hung browser is killed with its children
            )
        os.close(cmd_read)
        os.close(out_write)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        with contextlib.suppress(OSError, BrowserError):
            self._send("Browser.close")
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stderr_console = [
            line for line in self.stderr_path.read_text(errors="replace").splitlines() if ":CONSOLE" in line
        ]

    def _stderr_tail(self) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(line for line in lines[-30:] if "dbus" not in line)

    # -- protocol
    def _send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"Chromium did not answer in time\n{self._stderr_tail()}")
            ready, _, _ = select.select([self._from_browser], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed the pipe (crashed?)\n{self._stderr_tail()}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        if "id" not in message:
            self._event(message)
        return message

    def _event(self, message: dict[str, Any]) -> None:
        page = self._pages.get(message.get("sessionId", ""))
        if page is None:
            return
        method, params = message["method"], message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_text(arg) for arg in params.get("args", []))
            page.console.append(f"console.{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            page.console.append(f"uncaught: {_remote_text(details.get('exception', {}))} ({details.get('text')})")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            page.console.append(f"log {entry.get('source')}/{entry.get('level')}: {entry.get('text')}")
        elif method == "Page.javascriptDialogOpening":
            page.dialogs.append(f"{params.get('type')}: {params.get('message')}")
            self._send("Page.handleJavaScriptDialog", {"accept": False}, page.session)
        elif method == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            page.failed.append(f"{params.get('errorText')} {params.get('blockedReason') or ''}".strip())
        else:
            self._events.append(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Sends a command and returns its result (events that come first are recorded)."""
        sent = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == sent:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def _wait_event(self, method: str, session: str, deadline: float) -> dict[str, Any]:
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            self._receive(deadline)

    # -- pages
    def open(self, path: Path) -> Page:
        """Loads ``path`` in a new tab and returns once its load event has fired."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(path.resolve().as_uri(), session)
        self._pages[session] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", {}, session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        started = time.monotonic()
        result = self.call("Page.navigate", {"url": page.url}, session)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {page.url}: {result['errorText']}")
        self._wait_event("Page.loadEventFired", session, started + self.timeout)
        page.load_s = time.monotonic() - started
        return page

    def evaluate(self, page: Page, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools evaluation: not subject to its CSP)."""
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, page.session
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, page: Page, expression: str, timeout: float) -> bool:
        """Polls ``expression`` until it is true (True) or ``timeout`` seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.evaluate(page, expression):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def settle(self, page: Page) -> None:
        """Waits for two rendered frames (observers and timers of the first frames have run)."""
        self.evaluate(page, "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")

    def dom(self, page: Page) -> str:
        """The document as it is now, serialized (what ``--dump-dom`` prints)."""
        return str(self.evaluate(page, "document.documentElement.outerHTML"))

    def screenshot(self, page: Page) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"}, page.session)["data"])

    def mouse_move(self, page: Page, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, page.session)
