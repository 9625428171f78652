"""Post the new regressions of a report to a webhook (Slack incoming webhook, or a generic JSON receiver).

Only :attr:`Report.new <mltest.report.model.Report.new>` is posted: open regressions nobody acknowledged.
When there are none, nothing is sent. Transient failures (connection errors, timeouts, HTTP 429 and
5xx) are retried with exponential backoff; any other HTTP error fails at once.

Webhook URLs are secrets (whoever has one can post to the channel): no message, exception or result
carries one. Messages say ``the webhook`` and show at most the scheme and host (:func:`redact_webhook`).

Untrusted text in Slack messages (Slack's mrkdwn has no escape for its formatting characters): every
field is stripped of control characters, cut, and has ``&``, ``<`` and ``>`` as entities (so
``<!channel>``, ``<@U123>`` and ``<url|text>`` from data stay inert); every backtick becomes its
look-alike U+02CB (modifier letter grave accent). Then one of two rules applies:

* identifiers (project, branch, test id, metric) are inline code spans (a backtick on each side):
  Slack applies no formatting inside one, and no backtick is left that could close it early;
* free text (commit subjects, units, dates, SHAs in a link) gets a zero-width space (U+200B) on both
  sides of every ``*``, ``_`` and ``~``: such a mark can neither open nor close bold, italic or
  strikethrough, and the text reads (and copies, but for the invisible spaces) as it was.

Only the links mltest makes itself (``<https://...|sha>``, http(s) URLs only) are Slack markup.

Example (what ``mltest notify --webhook URL [--kind slack|json]`` does)::

    import os
    from mltest.report.notify import NotifyError, notify

    try:
        result = notify(report, os.environ["MLTEST_WEBHOOK"], kind="slack")
    except NotifyError as exc:  # an MltestError: the CLI prints it as one line
        raise SystemExit(f"error: {exc}")
    print(result.reason)  # "posted 1 new regression to https://hooks.slack.com/*** (HTTP 200)"
                          # or "no new regressions: nothing posted"
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import math
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from mltest.errors import MltestError
from mltest.report.fmt import clean_text
from mltest.report.model import EntryView, FindingView, Report

__all__ = [
    "JSON_SCHEMA",
    "NotifyError",
    "NotifyKind",
    "NotifyResult",
    "json_payload",
    "notify",
    "payload",
    "redact_webhook",
    "slack_payload",
]

JSON_SCHEMA = "mltest.notify/1"
"""``schema`` of the generic JSON payload; bumped on incompatible changes."""

NotifyKind = Literal["slack", "json"]

MAX_DELAY = 60.0
"""Cap, in seconds, on one wait between attempts (backoff or ``Retry-After``)."""

SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 3000
SLACK_MAX_HEADER = 150

_MAX_SUBJECT = 200
_MAX_NAME = 200
"""Untrusted fields are cut to this many characters before escaping, so one line stays short."""
_MAX_URL = 500
"""Longer commit URLs are not linked (the short SHA is shown alone)."""
_MAX_BODY_SHOWN = 200
"""At most this much of an error response's body is quoted in a message."""


class NotifyError(MltestError):
    """Posting to the webhook failed, or the webhook URL or options are unusable.

    The message never contains the webhook URL (at most its scheme and host).
    """

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True)
class NotifyResult:
    sent: bool
    """Whether a payload was posted (and accepted with a 2xx)."""
    attempts: int
    """HTTP attempts made (0 when nothing needed posting)."""
    status: int | None
    """The final HTTP status, None when nothing was posted."""
    regressions: int
    """New regressions in the report (posted when ``sent``)."""
    reason: str
    """One line saying what happened, for the CLI to print."""


# --------------------------------------------------------------------------------------------------
# URLs


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}")


def redact_webhook(url: str) -> str:
    """``url`` with everything but the scheme and host replaced: ``https://hooks.slack.com/***``.

    User info (``user:token@``), the path, the query and the fragment all go: any of them may hold the
    secret. Works on the text, so it never fails; something that does not look like a URL becomes
    ``***``.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return "***"
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    host = _strip_controls(host).replace(" ", "")
    if not host or len(host) > 255:
        return f"{scheme.lower()}://***"
    return f"{scheme.lower()}://{host}/***"


def _check_url(url: str) -> str:
    scheme, sep, _ = url.strip().partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise NotifyError("the webhook URL is not a URL: expected https://HOST/PATH (or http://)")
    if scheme.lower() not in ("http", "https"):
        raise NotifyError(f"the webhook URL has scheme {scheme.lower()!r}: only http:// and https:// are supported")
    url = url.strip()
    shown = redact_webhook(url)
    if re.search(r"[\x00-\x20\x7f-\x9f]", url):
        raise NotifyError(f"the webhook URL {shown} contains spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise NotifyError(f"the webhook URL {shown} is malformed (bad host or port)") from None
    if not parts.hostname:
        raise NotifyError(f"the webhook URL {shown} has no host")
    return url


def _scrub(text: str, url: str) -> str:
    """``text`` as one short line, with the URL (and its path) replaced by the redacted form."""
    shown = redact_webhook(url)
    for secret in sorted({url, url.strip(), *_url_secrets(url)}, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, shown if secret in (url, url.strip()) else "***")
    return " ".join(_strip_controls(text).split())


def _url_secrets(url: str) -> list[str]:
    rest = url.strip().partition("://")[2]
    authority, slash, tail = rest.partition("/")
    secrets = [slash + tail] if tail else []
    userinfo, at, _ = authority.rpartition("@")
    if at:
        secrets.append(userinfo)
    return [s for s in secrets if s.strip("/")]


# --------------------------------------------------------------------------------------------------
# Text


def _strip_controls(text: str) -> str:
    """Terminal escape sequences and control (and bidi override) characters removed; tabs and newlines
    become spaces (:func:`mltest.report.fmt.clean_text`)."""
    return clean_text(text)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_BACKTICK_LOOKALIKE = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT: looks like ` but ends no code span
_ZWSP = "\u200b"
_FORMAT_MARK = re.compile(r"[*_~]")


def _prepare(text: str | None, limit: int) -> str:
    """Untrusted ``text`` with controls stripped, cut to ``limit``, ``&<>`` as entities, no backtick."""
    if not text:
        return ""
    text = _cut(_strip_controls(text).strip(), limit).replace("`", _BACKTICK_LOOKALIKE)
    return _slack_escape(text)


def _text(text: str | None, limit: int = _MAX_NAME) -> str:
    """Untrusted free ``text`` for Slack mrkdwn, inert: :func:`_prepare`, then a zero-width space on
    both sides of every ``*``, ``_`` and ``~`` so none of them opens or closes any formatting."""
    return _FORMAT_MARK.sub(lambda m: _ZWSP + m.group() + _ZWSP, _prepare(text, limit))


def _code(text: str | None, limit: int = _MAX_NAME) -> str:
    """An untrusted identifier (test id, metric, branch, project) as a Slack inline code span, inside
    which no formatting applies; empty when there is no text."""
    prepared = _prepare(text, limit)
    return f"`{prepared}`" if prepared else ""


def _slack_escape(text: str) -> str:
    """Slack's three control characters as entities: ``<!channel>`` or ``<http://x|y>`` become inert."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str | None, text: str) -> str:
    """``text`` (already escaped) as a Slack link to ``url`` when that is an http(s) URL, else as is."""
    if not url:
        return text
    url = _strip_controls(url).strip()
    if len(url) > _MAX_URL or not re.match(r"(?i)https?://[^\s/?#]", url) or " " in url:
        return text
    # Inside <url|text>, a raw '|' or '>' would end the URL: percent-encode them (and '<').
    url = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace("&", "&amp;")
    return f"<{url}|{text}>"


def _number(value: float, unit: str | None) -> str:
    if math.isnan(value):
        return "n/a"
    text = "∞" if math.isinf(value) and value > 0 else "-∞" if math.isinf(value) else f"{value:.4g}"
    return f"{text} {_text(unit, 40)}" if unit else text


def _percent(value: float, *, signed: bool) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "+∞ %" if value > 0 else "-∞ %"
    return f"{value * 100:+.1f} %" if signed else f"{value * 100:.1f} %"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --------------------------------------------------------------------------------------------------
# Payloads


def slack_payload(report: Report) -> dict[str, Any]:
    """A Slack incoming-webhook payload (``text`` fallback and Block Kit ``blocks``) for ``report.new``.

    Capped to Slack's limits: at most 50 blocks and 3000 characters per text field, with a note saying
    what was left out. Every untrusted field is stripped of control characters and escaped, and shows
    no mrkdwn formatting: identifiers as inline code, free text with its formatting marks neutralised
    (the module's docstring has the rule).
    """
    new = report.new
    # The header is plain_text and the fallback a notification preview: no code spans there.
    project = _text(report.project, 80) or "(unnamed project)"
    branch = _text(report.branch, 80)
    title = f"{_plural(len(new), 'new regression')} in {project}" + (f" ({branch})" if branch else "")
    where = (_code(report.project, 80) or "(unnamed project)") + (
        f" · branch {_code(report.branch, 80)}" if branch else ""
    )
    context = f"{where} · {_text(report.generated_at, 40)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, SLACK_MAX_HEADER), "emoji": False}},
        {"type": "context", "elements": [_mrkdwn(context)]},
    ]
    room = SLACK_MAX_BLOCKS - len(blocks)
    shown = new if len(new) <= room else new[: room - 1]
    blocks.extend({"type": "section", "text": _mrkdwn(_entry_text(report, entry))} for entry in shown)
    if len(shown) < len(new):
        more = len(new) - len(shown)
        note = f"_… and {_plural(more, 'more new regression')} not shown (Slack allows {SLACK_MAX_BLOCKS} blocks)_"
        blocks.append({"type": "context", "elements": [_mrkdwn(note)]})
    return {"text": _cut(f"mltest: {title}", SLACK_MAX_TEXT), "blocks": blocks}


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not auto-link URLs, channel names or mentions in the text (ours are explicit).
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _entry_text(report: Report, entry: EntryView) -> str:
    good, bad, commits = entry.range
    culprit = entry.culprit
    if culprit is not None:
        commit = report.commit(culprit)
        head = f"*Culprit {_link(commit.url, _text(commit.short))}*"
        subject = _text(commit.subject, _MAX_SUBJECT)
        if subject:
            head += f" {subject}"
    else:
        bad_view = report.commit(bad)
        bad_link = _link(bad_view.url, _text(bad_view.short))
        if good is not None:
            good_view = report.commit(good)
            good_link = _link(good_view.url, _text(good_view.short))
            head = f"*Range {good_link}..{bad_link}* ({_plural(len(commits), 'commit')})"
        else:
            head = f"*First bad commit {bad_link}* ({_plural(len(commits), 'commit')} in range)"
    lines = [_finding_line(f) for f in entry.findings]
    return _fit(head, lines, SLACK_MAX_TEXT)


def _finding_line(f: FindingView) -> str:
    where = f"{_code(f.test)} · {_code(f.metric)}"
    change = f"{_number(f.before, f.unit)} → {_number(f.after, f.unit)}"
    stats = f"Δ {_percent(f.rel_change, signed=True)}, confidence {_percent(f.confidence, signed=False)}"
    return f"• {where}: {change} ({stats})"


def _fit(head: str, lines: list[str], limit: int) -> str:
    """``head`` and as many whole ``lines`` as fit in ``limit`` characters, then a note on the rest."""
    text = head
    for i, line in enumerate(lines):
        rest = len(lines) - i
        note = f"\n_… and {_plural(rest - 1, 'more finding')} not shown_" if rest > 1 else ""
        if len(text) + 1 + len(line) + len(note) > limit:
            note = f"\n_… and {_plural(rest, 'more finding')} not shown_"
            return _cut(text, limit - len(note)) + note
        text += "\n" + line
    return _cut(text, limit)


def json_payload(report: Report) -> dict[str, Any]:
    """The generic JSON payload (schema ``mltest.notify/1``) for ``report.new``; NaN and infinities
    become null. Text is passed through as it is (JSON encoding escapes control characters)."""
    regressions = []
    for entry in report.new:
        good, bad, commits = entry.range
        culprit = entry.culprit
        regressions.append(
            {
                "id": entry.id,
                "culprit": culprit,
                "range": {"good": good, "bad": bad, "commits": list(commits)},
                "subject": report.commit(culprit).subject if culprit is not None else None,
                "findings": [
                    {
                        "test": f.test,
                        "metric": f.metric,
                        "before": _finite(f.before),
                        "after": _finite(f.after),
                        "rel_change": _finite(f.rel_change),
                        "confidence": _finite(f.confidence),
                        "env_key": f.env_key,
                        "unit": f.unit,
                    }
                    for f in entry.findings
                ],
            }
        )
    return {
        "schema": JSON_SCHEMA,
        "project": report.project,
        "branch": report.branch,
        "generated_at": report.generated_at,
        "regressions": regressions,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def payload(report: Report, kind: NotifyKind = "slack") -> dict[str, Any]:
    """What :func:`notify` posts for ``kind`` (for a dry run or ``--print``)."""
    if kind == "slack":
        return slack_payload(report)
    if kind == "json":
        return json_payload(report)
    raise NotifyError(f"unknown notification kind {str(kind)[:20]!r}: use 'slack' or 'json'")


# --------------------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status: int | None
    reason: str
    retryable: bool
    retry_after: float | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Webhooks answer directly; a redirect is reported, not followed (a POST would turn into a GET)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _user_agent() -> str:
    from mltest import __version__  # lazy: no import cycle should the facade ever import this module

    return f"mltest/{__version__}"


def _retry_after(raw: str | None) -> float | None:
    """A ``Retry-After`` value in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_DELAY)


def _body_snippet(fp: Any) -> str:
    try:
        raw = fp.read(4096) if fp is not None else b""
    except (OSError, http.client.HTTPException):
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    return _cut(" ".join(_strip_controls(text).split()), _MAX_BODY_SHOWN)


def _attempt(opener: urllib.request.OpenerDirector, url: str, body: bytes, timeout: float, user_agent: str) -> _Outcome:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": user_agent},
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            status = int(response.status)
            # The status is the answer: a body that fails to arrive must not cause a second post.
            with contextlib.suppress(OSError, http.client.HTTPException):
                response.read(65536)
    except urllib.error.HTTPError as exc:
        with exc:
            status = exc.code
            snippet = _body_snippet(exc.fp)
            text = f"HTTP {status} {exc.reason}".rstrip() if isinstance(exc.reason, str) else f"HTTP {status}"
            if snippet:
                text += f" ({snippet})"
            retryable = status == 429 or 500 <= status <= 599
            if 300 <= status <= 399:
                text += ": the webhook redirects, which is not followed; use the URL it redirects to"
            return _Outcome(
                False,
                status,
                text,
                retryable,
                _retry_after(exc.headers.get("Retry-After") if exc.headers is not None else None)
                if retryable
                else None,
            )
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return _Outcome(False, None, f"timed out after {timeout:g} s", True)
        return _Outcome(False, None, f"connection failed: {reason}", True)
    except TimeoutError:
        return _Outcome(False, None, f"timed out after {timeout:g} s", True)
    except (http.client.InvalidURL, ValueError, OverflowError) as exc:
        # Its text may quote the URL: name the kind of error only.
        return _Outcome(False, None, f"the webhook URL is malformed ({type(exc).__name__})", False)
    except (OSError, http.client.HTTPException) as exc:
        return _Outcome(False, None, f"connection failed: {type(exc).__name__}: {exc}".rstrip(": "), True)
    if 200 <= status <= 299:
        return _Outcome(True, status, f"HTTP {status}", False)
    # 1xx or 3xx handed back without an error (a custom opener): not a success, not worth retrying.
    return _Outcome(False, status, f"HTTP {status}: not a success", False)


def _delay(attempt: int, backoff: float, retry_after: float | None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
    if retry_after is not None:
        return min(retry_after, MAX_DELAY)
    base = backoff * 2.0 ** min(attempt, 32)
    return min(base * random.uniform(0.8, 1.2), MAX_DELAY)


def notify(
    report: Report,
    url: str,
    *,
    kind: NotifyKind = "slack",
    timeout: float = 10,
    retries: int = 5,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    opener: urllib.request.OpenerDirector | None = None,
) -> NotifyResult:
    """Post the new (open, unacknowledged) regressions of ``report`` to the webhook at ``url``.

    ``kind``: ``slack`` (an incoming-webhook Block Kit payload) or ``json`` (schema ``mltest.notify/1``).
    ``retries`` is the total number of attempts; between attempts it waits ``backoff * 2**n`` seconds
    (±20 % jitter, at most 60 s) or what a ``Retry-After`` header asks. Connection errors, timeouts,
    429 and 5xx are retried; any other HTTP error fails at once. ``sleep`` and ``opener`` exist for tests.

    Returns a :class:`NotifyResult` (``sent=False`` when there was nothing new to post); raises
    :class:`NotifyError`, whose message never holds the URL, when the URL is unusable or posting failed::

        result = notify(report, "https://hooks.slack.com/services/T000/B000/XXXX")
        print(result.reason)
    """
    if not isinstance(url, str):
        raise NotifyError("the webhook URL must be a string")
    url = _check_url(url)
    if kind not in ("slack", "json"):
        raise NotifyError(f"unknown notification kind {str(kind)[:20]!r}: use 'slack' or 'json'")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        raise NotifyError(f"retries must be a whole number of attempts, at least 1 (got {retries!r})")
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise NotifyError(f"timeout must be a positive number of seconds (got {timeout!r})")
    if not (isinstance(backoff, (int, float)) and math.isfinite(backoff) and backoff >= 0):
        raise NotifyError(f"backoff must be a number of seconds, 0 or more (got {backoff!r})")

    new = report.new
    if not new:
        return NotifyResult(False, 0, None, 0, "no new regressions: nothing posted")

    body = json.dumps(payload(report, kind), allow_nan=False, ensure_ascii=True).encode("utf-8")
    opener = opener or urllib.request.build_opener(_NoRedirect())
    user_agent = _user_agent()
    shown = redact_webhook(url)
    outcome: _Outcome | None = None
    for attempt in range(retries):
        outcome = _attempt(opener, url, body, timeout, user_agent)
        attempts = attempt + 1
        if outcome.ok:
            tries = f" after {_plural(attempts, 'attempt')}" if attempts > 1 else ""
            reason = f"posted {_plural(len(new), 'new regression')} to {shown} ({outcome.reason}{tries})"
            return NotifyResult(True, attempts, outcome.status, len(new), reason)
        if not outcome.retryable:
            what = "refused the post" if outcome.status is not None else "cannot be posted to"
            raise NotifyError(
                _scrub(f"notify: the webhook {shown} {what}: {outcome.reason} (not retried)", url),
                status=outcome.status,
                attempts=attempts,
            )
        if attempts < retries:
            sleep(_delay(attempt, backoff, outcome.retry_after))
    assert outcome is not None
    raise NotifyError(
        _scrub(f"notify: the webhook {shown} failed after {_plural(retries, 'attempt')}: {outcome.reason}", url),
        status=outcome.status,
        attempts=retries,
    )
