"""Formatting shared by the report renderers: values with units, percent changes, SHAs, and text cleaning.

Pure functions, no I/O and nothing medium-specific: each renderer escapes the result for its medium
(Markdown, HTML, terminal). :func:`clean_text` is the first step for every untrusted string (commit
subjects, test ids, metric names, environment keys, acknowledgement text): it removes what no medium
should pass through (terminal escape sequences, control characters, bidirectional overrides) and
folds the text onto one line.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from mltest.report.model import EntryView, FindingView, Report

__all__ = [
    "clean_lines",
    "clean_text",
    "count_phrases",
    "ellipsize",
    "fmt_confidence",
    "fmt_pct",
    "fmt_value",
    "note_text",
    "plural",
    "safe_url",
    "short_sha",
    "status_counts",
]

SHORT_SHA = 10
"""Hex digits shown of a commit SHA (as :attr:`~mltest.report.model.CommitView.short`)."""

_SCALED: dict[str, tuple[tuple[float, str], ...]] = {
    "s": ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")),
    "bytes": ((2.0**40, "TiB"), (2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB"), (1.0, "bytes")),
}


def fmt_value(value: float, unit: str | None) -> str:
    """``value`` with its unit: seconds and bytes scaled to a readable prefix (472.4 µs, 1.2 GiB),
    anything else to 4 significant digits (0.91, 770 samples/s)."""
    if not math.isfinite(value) or value == 0:
        return f"{value:g} {unit}" if unit else f"{value:g}"
    scales = _SCALED.get(unit or "")
    if scales:
        for factor, name in scales:
            if abs(value) >= factor or factor == scales[-1][0]:
                return f"{value / factor:.4g} {name}"
    # Large counts and rates read better whole, with separators: 184,869 samples/s, not 1.849e+05.
    text = f"{value:,.0f}" if 1e4 <= abs(value) < 1e15 else f"{value:.4g}"
    return f"{text} {unit}" if unit else text


def fmt_pct(rel: float) -> str:
    """A relative change as a signed percentage: ``+30.0%``, ``-23.0%``, ``+inf`` (from 0), ``n/a``."""
    if math.isnan(rel):
        return "n/a"
    if math.isinf(rel):
        return "+inf" if rel > 0 else "-inf"
    return f"{rel:+.1%}"


def fmt_confidence(confidence: float) -> str:
    """``1 - p`` as a percentage (``99.9%``); never rounds up to 100% (``>99.9%``); ``n/a`` when unknown."""
    if not math.isfinite(confidence):
        return "n/a"
    text = f"{confidence:.1%}"
    if text == "100.0%" and confidence < 1:
        return ">99.9%"
    return text


def short_sha(sha: str | None) -> str:
    """The first :data:`SHORT_SHA` characters of a commit SHA (``?`` when unknown)."""
    return sha[:SHORT_SHA] if sha else "?"


def plural(n: int, noun: str) -> str:
    """``1 commit``, ``2 commits``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def note_text(f: FindingView) -> str:
    """A finding's note as shown, with the steps of a drift: ``2 steps at 0a1b2c3d4e, 5f6a7b8c9d``
    (untrusted: clean and escape it like any other field)."""
    if f.steps <= 1:
        return f.note
    steps = plural(f.steps, "step")
    if f.note.startswith("steps at "):
        return f"{steps} at {f.note.removeprefix('steps at ')}"
    return f"{steps}: {f.note}" if f.note else steps


# ----------------------------------------------------------------------------- untrusted text
# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings (ESC P/X/^/_ ... ST), any
# other two-character escape, and the 8-bit CSI. What is left of a broken sequence is removed with
# the control characters below.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_NEWLINES = re.compile(r"[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]+")
# C0 and C1 control characters, DEL, and the bidirectional formatting characters that can make text
# display in another order than it reads ("Trojan Source").
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str | None, max_len: int | None = None) -> str:
    """Untrusted text made inert and one line: terminal escape sequences, control characters and
    bidirectional overrides removed, line breaks and tabs turned into spaces, ellipsized to
    ``max_len`` characters. Medium-specific escaping (Markdown, HTML) is still the renderer's job."""
    if not text:
        return ""
    text = _ESCAPES.sub("", text)
    text = _NEWLINES.sub(" ", text)
    text = _CONTROLS.sub("", text)
    text = _SURROGATES.sub("\ufffd", text)  # lone surrogates (undecodable bytes) cannot be encoded
    return ellipsize(text, max_len) if max_len is not None else text


def clean_lines(text: str) -> str:
    """:func:`clean_text` of every line of ``text``, line breaks kept: for terminal output assembled
    from untrusted fields (tables, summaries) that cannot clean each field itself."""
    return "\n".join(clean_text(line) for line in text.split("\n"))


def ellipsize(text: str, max_len: int, *, keep_end: bool = False) -> str:
    """``text`` cut to ``max_len`` characters with ``…``; ``keep_end`` keeps the end instead (test ids)."""
    if len(text) <= max_len:
        return text
    if max_len <= 1:
        return "…"[:max_len]
    return "…" + text[-(max_len - 1) :] if keep_end else text[: max_len - 1] + "…"


def safe_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL with a host and no whitespace or control
    characters, else ``None``: a renderer links only what this returns (never ``javascript:`` and
    the like)."""
    if not url or any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


# ----------------------------------------------------------------------------- counts
def _is_bad(entry: EntryView) -> bool:
    return entry.kind not in ("improvement", "environment")


def status_counts(report: Report) -> dict[str, int]:
    """Entries per headline category: new / acknowledged / recovered regressions, improvements,
    environment changes (an entry of another kind that is open counts nowhere)."""
    entries = report.entries
    return {
        "new": sum(1 for e in entries if e.status == "new"),
        "acknowledged": sum(1 for e in entries if e.status == "acknowledged"),
        "recovered": sum(1 for e in entries if e.status == "recovered" and _is_bad(e)),
        "improvement": sum(1 for e in entries if e.kind == "improvement"),
        "environment change": sum(1 for e in entries if e.kind == "environment"),
    }


def count_phrases(report: Report) -> list[str]:
    """``["1 new", "1 acknowledged", "1 recovered", "2 improvements", "1 environment change"]``."""
    return [
        plural(n, label) if label in ("improvement", "environment change") else f"{n} {label}"
        for label, n in status_counts(report).items()
    ]
