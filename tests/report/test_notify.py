"""notify: posting new regressions to a webhook, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sample import HOSTILE_SUBJECT, big_report, sample_report

import mltest
from mltest.errors import MltestError
from mltest.report.model import CommitView, Report
from mltest.report.notify import (
    MAX_DELAY,
    SLACK_MAX_BLOCKS,
    SLACK_MAX_TEXT,
    NotifyError,
    NotifyResult,
    json_payload,
    notify,
    redact_webhook,
    slack_payload,
)

SECRET_PATH = "/services/T000/B000/SECRET"

# What the server does for one request: a status, (status, headers), (status, headers, body), or
# ("sleep", seconds, status) to answer late.
Action = Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body, parse_constant=_no_constants)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"payload holds {name}, which is not JSON")


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins handler threads (they wake on `stop`)

    def __init__(self, script: list[Action], default: Action) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script)
        self.default = default
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out closed its socket before a late answer: expected here

    def next_action(self, received: Received) -> Action:
        with self.lock:
            self.requests.append(received)
            return self.script.pop(0) if self.script else self.default


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        action = self.server.next_action(received)
        if isinstance(action, tuple) and action[0] == "sleep":
            if self.server.stop.wait(action[1]):
                return
            action = action[2]
        if isinstance(action, int):
            status, headers, text = action, {}, b"ok" if action < 300 else b"error"
        else:
            status, headers, *rest = action
            text = rest[0] if rest else b"ok" if status < 300 else b"error"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Webhook:
    server: _Server
    url: str
    delays: list[float] = field(default_factory=list)

    @property
    def requests(self) -> list[Received]:
        return self.server.requests

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def webhook() -> Iterator[Callable[..., Webhook]]:
    """Start a scripted server: ``webhook([500, (429, {"Retry-After": "0"}), 200], default=200)``."""
    started: list[tuple[_Server, threading.Thread]] = []

    def start(script: Sequence[Action] = (), default: Action = 200) -> Webhook:
        server = _Server(list(script), default)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
        port = server.server_address[1]
        return Webhook(server, f"http://127.0.0.1:{port}{SECRET_PATH}")

    yield start
    for server, thread in started:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _without_new(report: Report) -> Report:
    return dataclasses.replace(report, entries=tuple(e for e in report.entries if e.status != "new"))


def _texts(node: Any) -> Iterator[str]:
    """Every string in a payload (block texts, fallback)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


_OUR_LINK = re.compile(r"<https?://[^<>|\s]+\|[0-9a-f]{10}>")


def _assert_inert(payload: dict[str, Any]) -> None:
    """No Slack control sequence in the payload except the commit links we made."""
    for text in _texts(payload):
        rest = _OUR_LINK.sub("", text)
        assert "<" not in rest
        assert ">" not in rest
        assert re.search(r"&(?!amp;|lt;|gt;)", rest) is None, rest
        assert re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text) is None, text


# --------------------------------------------------------------------------------------------------
# Posting and retries


def test_retries_on_500_and_429_then_succeeds(webhook: Callable[..., Webhook]) -> None:
    hook = webhook([500, (429, {"Retry-After": "0"}), 200])
    result = notify(sample_report(), hook.url, sleep=hook.sleep)
    assert result == NotifyResult(sent=True, attempts=3, status=200, regressions=1, reason=result.reason)
    assert len(hook.requests) == 3
    assert len({r.body for r in hook.requests}) == 1  # the same payload every time
    assert 0.8 <= hook.delays[0] <= 1.2  # backoff * 2**0, ±20 %
    assert hook.delays[1] == 0  # Retry-After: 0
    assert "posted 1 new regression" in result.reason
    assert "SECRET" not in result.reason
    assert "3 attempts" in result.reason


def test_request_is_a_json_post_with_user_agent(webhook: Callable[..., Webhook]) -> None:
    hook = webhook()
    result = notify(sample_report(), hook.url, sleep=hook.sleep)
    assert result.sent
    assert result.attempts == 1
    assert hook.delays == []
    (req,) = hook.requests
    assert req.method == "POST"
    assert req.path == SECRET_PATH
    assert req.headers["content-type"].startswith("application/json")
    assert req.headers["user-agent"] == f"mltest/{mltest.__version__}"


def test_slack_payload_structure(webhook: Callable[..., Webhook]) -> None:
    hook = webhook()
    report = sample_report()
    notify(report, hook.url, kind="slack", sleep=hook.sleep)
    payload = hook.requests[0].json()
    assert payload == slack_payload(report)
    assert set(payload) == {"text", "blocks"}
    assert "1 new regression" in payload["text"]
    assert "acme-model" in payload["text"]
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["type"] == "plain_text"
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == len(report.new) == 1
    text = sections[0]["text"]["text"]
    culprit = report.commit(report.new[0].culprit or "")
    assert f"<https://github.com/acme/model/commit/{culprit.sha}|{culprit.short}>" in text
    assert "Validate every training row for NaN/inf before the step" in text
    assert "tests/test_train.py::test_training" in text
    assert "step_time" in text
    assert "0.1 s → 0.13 s" in text
    assert "+30.0 %" in text
    assert "1000 samples/s → 770 samples/s" in text
    assert "-23.0 %" in text
    assert "confidence 99.9 %" in text
    # Acknowledged, recovered, improvements and environment changes are not posted.
    assert "accuracy" not in json.dumps(payload)
    assert "latency" not in json.dumps(payload)
    assert len(blocks) <= SLACK_MAX_BLOCKS
    assert all(len(t) <= SLACK_MAX_TEXT for t in _texts(payload))


def test_slack_without_urls_shows_bare_shas() -> None:
    report = sample_report(repo_url=None)
    text = slack_payload(report)["blocks"][2]["text"]["text"]
    culprit = report.commit(report.new[0].culprit or "")
    assert f"*Culprit {culprit.short}*" in text
    assert "<" not in text


def test_slack_range_and_non_http_links() -> None:
    base = sample_report()
    acked = next(e for e in base.entries if e.status == "acknowledged")
    entry = dataclasses.replace(acked, status="new")
    commits = tuple(
        dataclasses.replace(c, url="javascript:alert(1)") if c.sha == acked.range[1] else c for c in base.commits
    )
    report = dataclasses.replace(base, entries=(entry,), commits=commits)
    text = slack_payload(report)["blocks"][2]["text"]["text"]
    good, bad, range_commits = entry.range
    assert good is not None
    assert f"*Range <https://github.com/acme/model/commit/{good}|{good[:10]}>..{bad[:10]}*" in text
    assert f"({len(range_commits)} commits)" in text
    assert "javascript" not in text


def test_json_payload_structure(webhook: Callable[..., Webhook]) -> None:
    hook = webhook()
    report = sample_report()
    result = notify(report, hook.url, kind="json", sleep=hook.sleep)
    assert result.sent
    payload = hook.requests[0].json()
    assert payload == json_payload(report)
    assert payload["schema"] == "mltest.notify/1"
    assert payload["project"] == "acme-model"
    assert payload["branch"] == "main"
    assert payload["generated_at"] == report.generated_at
    (reg,) = payload["regressions"]
    entry = report.new[0]
    good, bad, commits = entry.range
    assert reg["id"] == entry.id
    assert reg["culprit"] == entry.culprit
    assert reg["range"] == {"good": good, "bad": bad, "commits": list(commits)}
    assert reg["subject"] == "Validate every training row for NaN/inf before the step"
    assert [f["metric"] for f in reg["findings"]] == ["step_time", "samples_per_s"]
    step = reg["findings"][0]
    assert set(step) == {"test", "metric", "before", "after", "rel_change", "confidence", "env_key", "unit"}
    assert step["test"] == "tests/test_train.py::test_training"
    assert step["before"] == 0.10
    assert step["after"] == 0.13
    assert step["rel_change"] == pytest.approx(0.3)
    assert step["confidence"] == pytest.approx(0.999)
    assert step["env_key"] == "A100-SXM4-80GB x1"
    assert step["unit"] == "s"


def test_json_nan_and_inf_become_null(webhook: Callable[..., Webhook]) -> None:
    base = sample_report()
    entry = base.new[0]
    odd = dataclasses.replace(entry.findings[0], before=0.0, rel_change=math.inf, confidence=math.nan)
    report = dataclasses.replace(
        base, entries=(dataclasses.replace(entry, findings=(odd, *entry.findings[1:])), *base.entries[1:])
    )
    hook = webhook()
    notify(report, hook.url, kind="json", sleep=hook.sleep)
    finding = hook.requests[0].json()["regressions"][0]["findings"][0]  # parse_constant refuses NaN/Infinity
    assert finding["rel_change"] is None
    assert finding["confidence"] is None
    assert finding["before"] == 0.0
    # Slack shows them as text.
    text = slack_payload(report)["blocks"][2]["text"]["text"]
    assert "+∞ %" in text
    assert "confidence n/a" in text


def test_nothing_new_posts_nothing(webhook: Callable[..., Webhook]) -> None:
    hook = webhook()
    report = _without_new(sample_report())
    assert report.entries  # acknowledged, recovered, ... are still there
    for kind in ("slack", "json"):
        result = notify(report, hook.url, kind=kind, sleep=hook.sleep)
        assert result == NotifyResult(sent=False, attempts=0, status=None, regressions=0, reason=result.reason)
        assert "no new regressions" in result.reason
    assert hook.requests == []


def test_400_fails_at_once(webhook: Callable[..., Webhook]) -> None:
    hook = webhook([(400, {}, b"invalid_payload")])
    with pytest.raises(NotifyError) as info:
        notify(sample_report(), hook.url, sleep=hook.sleep)
    message = str(info.value)
    assert len(hook.requests) == 1
    assert hook.delays == []
    assert "HTTP 400" in message
    assert "invalid_payload" in message
    assert "not retried" in message
    assert "SECRET" not in message
    assert "/services" not in message
    assert "\n" not in message
    assert info.value.status == 400
    assert info.value.attempts == 1
    assert isinstance(info.value, MltestError)


def test_redirect_is_not_followed(webhook: Callable[..., Webhook]) -> None:
    hook = webhook([(302, {"Location": "http://127.0.0.1:1/elsewhere"})])
    with pytest.raises(NotifyError, match=r"HTTP 302.*redirect") as info:
        notify(sample_report(), hook.url, sleep=hook.sleep)
    assert len(hook.requests) == 1
    assert "SECRET" not in str(info.value)


def test_always_503_gives_up_after_retries_without_the_url(webhook: Callable[..., Webhook]) -> None:
    hook = webhook(default=503)
    with pytest.raises(NotifyError) as info:
        notify(sample_report(), hook.url, retries=4, backoff=0.5, sleep=hook.sleep)
    message = str(info.value)
    assert len(hook.requests) == 4
    assert "HTTP 503" in message
    assert "4 attempts" in message
    assert hook.url not in message
    for secret in ("SECRET", "T000", "B000", "/services"):
        assert secret not in message
    assert redact_webhook(hook.url) in message  # scheme and host only
    assert "\n" not in message
    assert info.value.status == 503
    assert info.value.attempts == 4
    assert info.value.__cause__ is None  # the urllib error (which knows the URL) is not chained
    # No sleep after the last attempt; the waits grow (0.5, 1, 2 with ±20 % jitter).
    assert len(hook.delays) == 3
    assert hook.delays[0] < hook.delays[1] < hook.delays[2]
    for delay, base in zip(hook.delays, (0.5, 1.0, 2.0), strict=True):
        assert base * 0.8 <= delay <= base * 1.2


def test_backoff_and_retry_after_are_capped(webhook: Callable[..., Webhook]) -> None:
    hook = webhook([(429, {"Retry-After": "3600"})], default=503)
    with pytest.raises(NotifyError):
        notify(sample_report(), hook.url, retries=4, backoff=40, sleep=hook.sleep)
    assert hook.delays[0] == MAX_DELAY  # Retry-After, capped
    assert MAX_DELAY < 40 * 2 * 0.8  # so the backoff itself is capped too
    assert hook.delays[1:] == [MAX_DELAY, MAX_DELAY]


def test_timeout_is_retried(webhook: Callable[..., Webhook]) -> None:
    hook = webhook([("sleep", 5.0, 200), 200])
    result = notify(sample_report(), hook.url, timeout=0.2, retries=3, sleep=hook.sleep)
    assert result.sent
    assert result.attempts == 2
    assert len(hook.requests) == 2
    assert len(hook.delays) == 1


def test_timeouts_until_the_end(webhook: Callable[..., Webhook]) -> None:
    hook = webhook(default=("sleep", 5.0, 200))
    with pytest.raises(NotifyError, match=r"failed after 2 attempts: timed out after 0\.2 s") as info:
        notify(sample_report(), hook.url, timeout=0.2, retries=2, sleep=hook.sleep)
    assert info.value.status is None
    assert "SECRET" not in str(info.value)


def test_connection_refused_is_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delays: list[float] = []
    url = f"http://user:hunter2@127.0.0.1:{port}{SECRET_PATH}"
    with pytest.raises(NotifyError, match="failed after 3 attempts: connection failed") as info:
        notify(sample_report(), url, retries=3, backoff=0.01, sleep=delays.append)
    assert len(delays) == 2
    for secret in ("SECRET", "hunter2", "user"):
        assert secret not in str(info.value)


# --------------------------------------------------------------------------------------------------
# Hostile text


def test_hostile_text_is_inert_in_slack(webhook: Callable[..., Webhook]) -> None:
    hook = webhook()
    notify(sample_report(hostile=True), hook.url, sleep=hook.sleep)
    payload = hook.requests[0].json()
    _assert_inert(payload)
    body = json.dumps(payload, ensure_ascii=False)
    assert "<img" not in body
    assert "<script" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "&lt;script&gt;" in body
    assert "\x1b" not in body
    assert "[31m" not in body
    assert "acme &lt;i&gt;model&lt;/i&gt;" in payload["text"]


@pytest.mark.parametrize(
    "subject",
    [
        "<!channel> deploy now",
        "<!here|here> <!everyone>",
        "<http://evil.example|click me> & <@U123>",
        "fix: a > b && c < d",
        "bell\x07 and \x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ and \u202egnp.exe",
    ],
)
def test_slack_injections_are_escaped(subject: str) -> None:
    base = sample_report()
    culprit = base.new[0].culprit
    commits = tuple(dataclasses.replace(c, subject=subject) if c.sha == culprit else c for c in base.commits)
    report = dataclasses.replace(base, commits=commits, project=subject, branch=subject)
    payload = slack_payload(report)
    _assert_inert(payload)
    assert "\u202e" not in json.dumps(payload, ensure_ascii=False)
    section = payload["blocks"][2]["text"]
    assert section["verbatim"] is True  # no automatic mention or channel parsing
    if "<!channel>" in subject:
        assert "&lt;!channel&gt;" in section["text"]
    if "&&" in subject:
        assert "a &gt; b &amp;&amp; c &lt; d" in section["text"]


ZWSP = "\u200b"
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _formatting_free(text: str) -> bool:
    """No Slack mrkdwn formatting can start in ``text``: outside whole code spans, no backtick is
    left and every ``*``, ``_`` and ``~`` has a zero-width space on both sides."""
    rest = _CODE_SPAN.sub("", text)
    if "`" in rest:
        return False
    rest = re.sub(r"\u200b[*_~]\u200b", "", rest)
    return re.search(r"[*_~]", rest) is None


def _with_text(
    *, test: str | None = None, metric: str | None = None, subject: str | None = None, **report: Any
) -> Report:
    """The sample report with its new entry's culprit subject, and its findings' test and metric, replaced."""
    base = sample_report()
    entry = base.new[0]
    findings = tuple(dataclasses.replace(f, test=test or f.test, metric=metric or f.metric) for f in entry.findings)
    commits = tuple(
        dataclasses.replace(c, subject=subject) if subject is not None and c.sha == entry.culprit else c
        for c in base.commits
    )
    return dataclasses.replace(
        base, entries=(dataclasses.replace(entry, findings=findings),), commits=commits, **report
    )


def test_slack_identifiers_are_code_spans_without_formatting() -> None:
    test = "tests/test_model_x.py::test_step_time_fp16[*bold*-~strike~-`tick`]"
    metric = "step_time_*p50*_ms"
    report = _with_text(test=test, metric=metric, project="acme_*model*", branch="feat/_x_~y~`z`")
    payload = slack_payload(report)
    _assert_inert(payload)
    text = payload["blocks"][2]["text"]["text"]
    tick = "\u02cb"
    shown_test = f"`tests/test_model_x.py::test_step_time_fp16[*bold*-~strike~-{tick}tick{tick}]`"
    shown_metric = "`step_time_*p50*_ms`"
    findings = [line for line in text.split("\n") if line.startswith("• ")]
    assert len(findings) == 2
    for line in findings:
        assert line.startswith(f"• {shown_test} · {shown_metric}: ")  # verbatim inside code: no formatting
        assert _formatting_free(line), line
    context = payload["blocks"][1]["elements"][0]["text"]
    assert context.startswith(f"`acme_*model*` · branch `feat/_x_~y~{tick}z{tick}` · ")
    assert _formatting_free(context), context
    for t in _texts(payload):
        assert "`tick`" not in t  # a backtick from data never closes (or opens) a span


@pytest.mark.parametrize(
    ("subject", "shown"),
    [
        (
            "*bold* and _italic_ and ~strike~",
            f"{ZWSP}*{ZWSP}bold{ZWSP}*{ZWSP} and {ZWSP}_{ZWSP}italic{ZWSP}_{ZWSP} and {ZWSP}~{ZWSP}strike{ZWSP}~{ZWSP}",
        ),
        ("use `rm -rf` now", "use \u02cbrm -rf\u02cb now"),
        ("```block```", "\u02cb\u02cb\u02cbblock\u02cb\u02cb\u02cb"),
        ("<!channel> *now*", f"&lt;!channel&gt; {ZWSP}*{ZWSP}now{ZWSP}*{ZWSP}"),
        ("fix snake_case_name", f"fix snake{ZWSP}_{ZWSP}case{ZWSP}_{ZWSP}name"),
    ],
    ids=["emphasis", "backticks", "fence", "channel", "snake_case"],
)
def test_slack_subject_formatting_is_neutralised(subject: str, shown: str) -> None:
    payload = slack_payload(_with_text(subject=subject))
    _assert_inert(payload)
    text = payload["blocks"][2]["text"]["text"]
    head = text.split("\n")[0]
    link, _, rest = head.partition(">* ")  # "*Culprit <url|sha>* SUBJECT": the link still works
    assert _OUR_LINK.search(link + ">")
    assert rest == shown
    assert _formatting_free(rest), rest
    assert rest.replace(ZWSP, "").replace("\u02cb", "`").replace("&lt;", "<").replace("&gt;", ">") == subject


def test_slack_neutralised_text_stays_within_limits() -> None:
    report = _with_text(
        test="t_" * 5000, metric="*" * 5000, subject="*_~`" * 5000, project="_" * 1000, branch="~" * 1000
    )
    payload = slack_payload(report)
    _assert_inert(payload)
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    assert all(len(t) <= SLACK_MAX_TEXT for t in _texts(payload))
    text = payload["blocks"][2]["text"]["text"]
    assert "…" in text
    head, *findings = text.split("\n")
    assert _formatting_free(head.partition(">* ")[2])  # the subject, cut to 200 characters before escaping
    assert findings
    assert all(_formatting_free(line) for line in findings)


def test_json_passes_text_through(webhook: Callable[..., Webhook]) -> None:
    hook = webhook()
    notify(sample_report(hostile=True), hook.url, kind="json", sleep=hook.sleep)
    reg = hook.requests[0].json()["regressions"][0]
    assert reg["subject"] == HOSTILE_SUBJECT  # JSON encoding keeps it inert; the receiver escapes for its medium


# --------------------------------------------------------------------------------------------------
# Slack limits


def test_slack_block_limit_with_a_note() -> None:
    base = sample_report()
    entry = base.new[0]
    entries = tuple(dataclasses.replace(entry, id=f"r-{i}") for i in range(120))
    report = dataclasses.replace(base, entries=entries)
    payload = slack_payload(report)
    blocks = payload["blocks"]
    assert len(blocks) == SLACK_MAX_BLOCKS
    sections = [b for b in blocks if b["type"] == "section"]
    assert "120 new regressions" in blocks[0]["text"]["text"]
    assert f"{120 - len(sections)} more new regressions not shown" in blocks[-1]["elements"][0]["text"]


def test_slack_text_limit_with_a_note() -> None:
    report = big_report(2000, 12)  # one new entry with 200 findings
    (entry,) = report.new
    payload = slack_payload(report)
    text = payload["blocks"][2]["text"]["text"]
    assert len(text) <= SLACK_MAX_TEXT
    shown = text.count("\n• ")
    assert 0 < shown < len(entry.findings)
    assert text.endswith(f"_… and {len(entry.findings) - shown} more findings not shown_")


def test_slack_long_fields_are_cut() -> None:
    base = sample_report()
    culprit = base.new[0].culprit
    commits = tuple(
        dataclasses.replace(c, subject="<" * 10_000, url="https://x.example/" + "a" * 10_000) if c.sha == culprit else c
        for c in base.commits
    )
    report = dataclasses.replace(base, commits=commits, project="p" * 1000)
    payload = slack_payload(report)
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    text = payload["blocks"][2]["text"]["text"]
    assert len(text) <= SLACK_MAX_TEXT
    assert "…" in text
    assert "x.example" not in text  # too long a URL: the SHA is shown unlinked
    _assert_inert(payload)


# --------------------------------------------------------------------------------------------------
# URLs and options


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T000/B000/SECRET", "https://hooks.slack.com/***"),
        ("HTTP://user:token@example.com:8080/hook?key=SECRET#frag", "http://example.com:8080/***"),
        ("https://example.com?token=SECRET", "https://example.com/***"),
        ("https://[::1]:8443/x", "https://[::1]:8443/***"),
        ("https:///SECRET", "https://***"),
        ("hooks.slack.com/services/SECRET", "***"),
        ("", "***"),
        ("not a url at all SECRET", "***"),
    ],
)
def test_redact_webhook(url: str, shown: str) -> None:
    assert redact_webhook(url) == shown


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://example.com/SECRET", "scheme 'ftp'"),
        ("file:///etc/SECRET", "scheme 'file'"),
        ("hooks.slack.com/services/SECRET", "not a URL"),
        ("https:///SECRET", "no host"),
        ("http://127.0.0.1:99999999/SECRET", "malformed"),
        ("http://[::1/SECRET", "malformed"),
        ("https://example.com/a b/SECRET", "spaces or control characters"),
        ("https://example.com/\x1b[2J/SECRET", "spaces or control characters"),
    ],
)
def test_only_http_urls(url: str, match: str) -> None:
    with pytest.raises(NotifyError, match=match) as info:
        notify(sample_report(), url, sleep=lambda s: None)
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"kind": "teams"}, "unknown notification kind"),
        ({"retries": 0}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"backoff": -1}, "backoff"),
    ],
)
def test_bad_options(options: dict[str, Any], match: str) -> None:
    with pytest.raises(NotifyError, match=match):
        notify(sample_report(), "https://example.invalid/hook", sleep=lambda s: None, **options)


def test_url_check_comes_first_even_with_nothing_new() -> None:
    with pytest.raises(NotifyError, match="scheme"):
        notify(_without_new(sample_report()), "ftp://example.com/x")


def test_commit_missing_from_the_report_is_shown_bare() -> None:
    base = sample_report()
    entry = base.new[0]
    report = dataclasses.replace(base, commits=(CommitView("f" * 40),), entries=(entry,))
    text = slack_payload(report)["blocks"][2]["text"]["text"]
    assert f"*Culprit {(entry.culprit or '')[:10]}*" in text
