"""The terminal report: new regressions first, per culprit or range, then the rest.

Sections, each only when it has entries: new regressions, acknowledged regressions, recovered
regressions, improvements, environment changes (and entries of any other kind). An entry shows its
culprit (or its range and the range's commits), then its findings grouped by test and environment,
one line per metric: before → after, relative change, confidence.

Colour (plain ANSI SGR codes) only with ``color=True``: new regressions red, acknowledged yellow,
recovered dim, improvements green. Untrusted text goes through
:func:`~mltest.report.fmt.clean_text` first, so a commit subject cannot move the cursor, change
colours, set the window title or emit a hyperlink; lines are cut to ``width`` before colouring.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from mltest.report.fmt import (
    clean_text,
    count_phrases,
    ellipsize,
    fmt_confidence,
    fmt_pct,
    fmt_value,
    plural,
    short_sha,
    status_counts,
)
from mltest.report.model import EntryView, FindingView, Report

__all__ = ["render_text"]

MIN_WIDTH = 40
MAX_RANGE_COMMITS = 20

_RESET = "\x1b[0m"
_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}

# (title, style, which entries): the sections in order.
_SECTIONS: tuple[tuple[str, str, Callable[[EntryView], bool]], ...] = (
    ("NEW REGRESSIONS", "red", lambda e: e.status == "new"),
    ("ACKNOWLEDGED REGRESSIONS", "yellow", lambda e: e.status == "acknowledged"),
    ("RECOVERED REGRESSIONS", "dim", lambda e: e.status == "recovered"),
    ("IMPROVEMENTS", "green", lambda e: e.status == "open" and e.kind == "improvement"),
    ("ENVIRONMENT CHANGES", "cyan", lambda e: e.status == "open" and e.kind == "environment"),
    (
        "OTHER",
        "",
        lambda e: e.status not in ("new", "acknowledged", "recovered") and e.kind not in ("improvement", "environment"),
    ),
)


class _Out:
    """Lines cut to ``width`` (before colouring, so escape codes never count or get cut)."""

    def __init__(self, width: int, color: bool) -> None:
        self.width, self.color = width, color
        self.lines: list[str] = []

    def paint(self, text: str, *styles: str) -> str:
        codes = ";".join(_SGR[s] for s in styles if s)
        return f"\x1b[{codes}m{text}{_RESET}" if self.color and codes and text else text

    def add(self, text: str = "", *styles: str) -> None:
        self.lines.append(self.paint(ellipsize(text, self.width), *styles))

    def add_parts(self, parts: list[tuple[str, tuple[str, ...]]]) -> None:
        """One line from (text, styles) parts, cut to ``width`` as a whole."""
        room, out = self.width, []
        for text, styles in parts:
            if len(text) > room:
                out.append(self.paint(ellipsize(text, room), *styles) if room > 0 else "")
                break
            out.append(self.paint(text, *styles))
            room -= len(text)
        self.lines.append("".join(out).rstrip())

    def add_wrapped(self, text: str, *styles: str) -> None:
        for line in textwrap.wrap(text, self.width, subsequent_indent="    ", break_on_hyphens=False) or [""]:
            self.add(line, *styles)


def _subject(report: Report, sha: str | None) -> str:
    subject = report.commit(sha).subject if sha else None
    return clean_text(subject) if subject else ""


def _entry_head(report: Report, entry: EntryView, out: _Out, style: str) -> None:
    label = clean_text(entry.id, 40)
    if not entry.findings:
        out.add_parts([(label, ("bold", style)), ("  no findings", ())])
        return
    if entry.culprit:
        subject = _subject(report, entry.culprit)
        out.add_parts(
            [
                (label, ("bold", style)),
                (f"  culprit {short_sha(entry.culprit)}", ("bold",)),
                (f"  {subject}" if subject else "", ()),
            ]
        )
        return
    good, bad, commits = entry.range
    where = f"  between {short_sha(good)} (last good) and {short_sha(bad)} (first bad)"
    count = f": {plural(len(commits), 'commit')}" if commits else "; its commits are not in the recorded history"
    out.add_parts([(label, ("bold", style)), (where, ("bold",)), (count, ())])
    for sha in commits[:MAX_RANGE_COMMITS]:
        subject = _subject(report, sha)
        out.add_parts([(f"      {short_sha(sha)}", ("dim",)), (f"  {subject}" if subject else "", ())])
    if len(commits) > MAX_RANGE_COMMITS:
        out.add(f"      … and {len(commits) - MAX_RANGE_COMMITS} more", "dim")


def _findings(report: Report, entry: EntryView, out: _Out, style: str) -> None:
    """Findings grouped by test and environment, one aligned line per metric."""
    groups: dict[tuple[str, str], list[FindingView]] = {}
    for f in entry.findings:
        groups.setdefault((f.test, f.env_key), []).append(f)

    def values(f: FindingView) -> str:
        return f"{clean_text(fmt_value(f.before, f.unit), 30)} → {clean_text(fmt_value(f.after, f.unit), 30)}"

    values_w = max((len(values(f)) for f in entry.findings), default=0)
    # indent, metric, 2, values, 2, change (7), confidence: the metric column gets what is left.
    fixed = 6 + 2 + values_w + 2 + 7 + len("  confidence >99.9%")
    metric_w = min(max((len(clean_text(f.metric)) for f in entry.findings), default=0), 40)
    metric_w = min(metric_w, max(out.width - fixed, 12))
    for (test, env), findings in groups.items():
        env_text = f"  [{clean_text(env, 60)}]"
        room = out.width - 4 - len(env_text)
        out.add_parts([("    " + ellipsize(clean_text(test), max(room, 20), keep_end=True), ()), (env_text, ("dim",))])
        for f in findings:
            metric = ellipsize(clean_text(f.metric), metric_w)
            out.add_parts(
                [
                    (f"      {metric:<{metric_w}}  {values(f):<{values_w}}  ", ()),
                    (f"{fmt_pct(f.rel_change):>7}", ("bold", style)),
                    (f"  confidence {fmt_confidence(f.confidence)}", ()),
                ]
            )
            if f.status == "recovered":
                out.add("        recovered" + (f" at {short_sha(f.fixed_by)}" if f.fixed_by else ""), "dim")
            if f.note:
                out.add(f"        {clean_text(f.note)}", "dim")


def render_text(report: Report, *, color: bool = False, width: int = 100) -> str:
    """The report for a terminal: at most ``width`` characters a line (escape codes not counted);
    ANSI colours only when ``color``."""
    out = _Out(max(width, MIN_WIDTH), color)
    where = f"branch {clean_text(report.branch, 60)}" if report.branch else "all branches"
    commits = sum(1 for c in report.commits if c.position >= 0)
    out.add(
        f"mltest report: {clean_text(report.project, 60)}, {where}: {len(report.series)} series over "
        f"{plural(commits, 'commit')}" + (f" since {clean_text(report.since, 40)}" if report.since else ""),
        "bold",
    )
    new = status_counts(report)["new"]
    verdict = plural(new, "new regression") if new else "no new regressions"
    counts = ", ".join(count_phrases(report))
    if len(verdict) + len(counts) + 2 <= out.width:
        out.add_parts([(verdict, ("bold", "red" if new else "green")), (f": {counts}", ())])
    else:
        out.add(verdict, "bold", "red" if new else "green")
        out.add_wrapped("    " + counts)
    for title, style, wanted in _SECTIONS:
        entries = [e for e in report.entries if wanted(e)]
        if not entries:
            continue
        out.add()
        out.add(f"{title} ({len(entries)})", "bold", style)
        for entry in entries:
            out.add()
            _entry_head(report, entry, out, style)
            _findings(report, entry, out, style)
            if entry.acknowledged:
                out.add(f"    acknowledged: {clean_text(entry.acknowledged)}", "dim")
            elif entry.status == "new":
                out.add(f'    if this is expected: mltest ack {clean_text(entry.id, 40)} --reason "..."', "dim")
    if report.undirected:
        out.add()
        out.add_wrapped(
            "skipped (direction unknown; set higher_is_better in [tool.mltest.metrics.NAME]): "
            + ", ".join(clean_text(m, 60) for m in report.undirected)
        )
    for note in report.notes:
        out.add()
        out.add_wrapped(clean_text(note), "dim")
    out.add(f"generated {clean_text(report.generated_at, 40)}", "dim")
    return "\n".join(out.lines) + "\n"
