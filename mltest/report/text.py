"""The terminal report (rich): new regressions first, per culprit or range, then the rest.

A verdict comes first (the counts of every category), then sections, each only when it has entries:
new regressions, acknowledged regressions, recovered regressions, improvements, environment changes
(and entries of any other kind). An entry shows its culprit (or its range and the range's commits),
then its findings grouped by test and environment key, one aligned row per metric: before → after,
relative change, confidence; under a row, what else is known (recovered at, the steps of a drift,
an environment change's note). ``mltest report`` and ``mltest check`` both print this.

Drawn with rich on a :class:`~rich.console.Console` that writes to a string: colour (and OSC 8 links
to commits, when the report has their URLs) only with ``color=True``; without it the output holds no
escape sequence at all and no box drawing, so it reads the same in a CI log or a file. Every line
fits ``width`` cells (long fields are cut with ``…``).

Untrusted text (commit subjects, test ids, metric names, environment keys, acknowledgements, notes)
goes through :func:`~mltest.report.fmt.clean_text` and into :class:`~rich.text.Text` objects, never
into markup: rich markup (``[bold]``, ``[link=...]``) and emoji codes in it are printed as they are,
and no escape sequence, control character or bidirectional override from it reaches the terminal.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.style import Style
from rich.table import Column, Table
from rich.text import Text

from mltest.report.fmt import (
    clean_text,
    count_phrases,
    ellipsize,
    fmt_confidence,
    fmt_pct,
    fmt_value,
    note_text,
    plural,
    safe_url,
    short_sha,
    status_counts,
)
from mltest.report.model import EntryView, FindingView, Report

__all__ = ["render_text"]

MIN_WIDTH = 40
MAX_RANGE_COMMITS = 20
METRIC_WIDTH = 40
"""At most this many cells of a metric name are shown."""
CONFIDENCE_WIDTH = len("confidence >99.9%")

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
_KINDS_OF_SECTIONS = ("regression", "improvement", "environment")
"""Kinds the section title names (a regression among REGRESSIONS): others are named at the entry."""
_ALWAYS_SHOWN = ("new", "acknowledged")
"""The statuses listed without ``show_all`` (what a CI check has to act on)."""

Part = tuple[str, str | Style]


class _Out:
    """A rich console writing into a string, with the few line shapes the report is made of."""

    def __init__(self, report: Report, width: int, color: bool) -> None:
        self.report, self.width, self.color = report, width, color
        self.buffer = io.StringIO()
        self.console = Console(
            file=self.buffer,
            width=width,
            height=50,  # both given: the environment (COLUMNS, LINES, TERM=dumb) changes nothing
            force_terminal=color,  # never guessed from the environment (FORCE_COLOR, TTY_COMPATIBLE)
            force_jupyter=False,
            force_interactive=False,
            color_system="standard" if color else None,
            no_color=not color,
            markup=False,
            emoji=False,
            highlight=False,
            legacy_windows=False,
            tab_size=4,
        )

    def text(self) -> str:
        # Grid cells are padded to their column: no line ends in spaces.
        return "\n".join(line.rstrip() for line in self.buffer.getvalue().rstrip("\n").split("\n")) + "\n"

    def print(self, renderable: RenderableType) -> None:
        self.console.print(renderable)

    def blank(self) -> None:
        self.console.print()

    def line(self, *parts: Part | str, style: str = "") -> None:
        """One line of ``parts`` (text already cleaned), cut to the width with ``…``."""
        # console.print joins Text objects into a new one: the cut is its option, not the Text's.
        self.console.print(Text.assemble(*parts, style=style), no_wrap=True, overflow="ellipsis")

    def wrapped(self, text: str, style: str = "") -> None:
        """``text`` (cleaned) over as many lines as it takes, continued lines indented."""
        for part in textwrap.wrap(text, self.width, subsequent_indent="    ", break_on_hyphens=False) or [""]:
            self.line(part, style=style)

    def commit_style(self, sha: str | None, style: str) -> str | Style:
        """``style``, linked to the commit's page on a terminal when the report knows its http(s) URL."""
        url = safe_url(self.report.commit(sha).url) if sha and self.color else None
        return Style.parse(style or "none") + Style(link=url) if url else style

    def subject(self, sha: str | None) -> str:
        subject = self.report.commit(sha).subject if sha else None
        return clean_text(subject) if subject else ""


def _entry_head(out: _Out, entry: EntryView, style: str) -> None:
    label = (clean_text(entry.id, 40), f"bold {style}".strip())
    if entry.kind not in _KINDS_OF_SECTIONS:  # a drift among the regressions, or a kind of its own
        label = (f"{label[0]}  {clean_text(entry.kind, 20)}", label[1])
    if not entry.findings:
        out.line(label, "  no findings")
        return
    if entry.culprit:
        subject = out.subject(entry.culprit)
        out.line(
            label,
            "  culprit ",
            (short_sha(entry.culprit), out.commit_style(entry.culprit, "bold")),
            f"  {subject}" if subject else "",
        )
        return
    good, bad, commits = entry.range
    count = f": {plural(len(commits), 'commit')}" if commits else "; its commits are not in the recorded history"
    out.line(
        label,
        ("  between ", "bold"),
        (short_sha(good), out.commit_style(good, "bold")),
        (" (last good) and ", "bold"),
        (short_sha(bad), out.commit_style(bad, "bold")),
        (" (first bad)", "bold"),
        count,
    )
    for sha in commits[:MAX_RANGE_COMMITS]:
        subject = out.subject(sha)
        out.line("      ", (short_sha(sha), out.commit_style(sha, "dim")), f"  {subject}" if subject else "")
    if len(commits) > MAX_RANGE_COMMITS:
        out.line(f"      … and {len(commits) - MAX_RANGE_COMMITS} more", style="dim")


def _values(f: FindingView, before_w: int) -> str:
    before = clean_text(fmt_value(f.before, f.unit), 30)
    return f"{' ' * (before_w - cell_len(before))}{before} → {clean_text(fmt_value(f.after, f.unit), 30)}"


def _findings(out: _Out, entry: EntryView, style: str) -> None:
    """Findings grouped by test and environment key, one row per metric, aligned over the entry."""
    groups: dict[tuple[str, str], list[FindingView]] = {}
    for f in entry.findings:
        groups.setdefault((f.test, f.env_key), []).append(f)
    before_w = max((cell_len(clean_text(fmt_value(f.before, f.unit), 30)) for f in entry.findings), default=0)
    values_w = max((cell_len(_values(f, before_w)) for f in entry.findings), default=1)
    metric_w = min(max((cell_len(clean_text(f.metric)) for f in entry.findings), default=1), METRIC_WIDTH)
    # Columns give way when the line is too narrow: the metric name first (to 8 cells), then the
    # confidence, then the values; the change is always shown whole.
    room = out.width - 6 - 3 * 2 - 7  # indent, the gaps between four columns, the change
    metric_w = min(metric_w, max(room - values_w - CONFIDENCE_WIDTH, 8))
    confidence_w = max(min(CONFIDENCE_WIDTH, room - metric_w - values_w), 1)
    values_w = min(values_w, max(room - metric_w - confidence_w, 1))
    change_style = f"bold {style}".strip()
    for (test, env), findings in groups.items():
        env_text = f"  [{clean_text(env, 60)}]"
        room = out.width - 4 - cell_len(env_text)
        out.line("    " + ellipsize(clean_text(test), max(room, 20), keep_end=True), (env_text, "dim"))
        for f in findings:
            row = Table.grid(
                Column(width=metric_w, no_wrap=True, overflow="ellipsis"),
                Column(width=values_w, no_wrap=True, overflow="ellipsis"),
                Column(width=7, justify="right", no_wrap=True),
                Column(width=confidence_w, no_wrap=True, overflow="ellipsis"),
                padding=(0, 2, 0, 0),
                pad_edge=False,
            )
            row.add_row(
                Text(clean_text(f.metric)),
                Text(_values(f, before_w)),
                Text(fmt_pct(f.rel_change), style=change_style),
                Text(f"confidence {fmt_confidence(f.confidence)}"),
            )
            out.print(Padding(row, (0, 0, 0, 6)))
            if f.status == "recovered":
                fixed = (short_sha(f.fixed_by), out.commit_style(f.fixed_by, "dim")) if f.fixed_by else ""
                out.line("        recovered" + (" at " if f.fixed_by else ""), fixed, style="dim")
            note = note_text(f)
            if note:
                out.line(f"        {clean_text(note)}", style="dim")


def render_text(
    report: Report, *, color: bool = False, width: int = 100, title: str = "mltest report", show_all: bool = True
) -> str:
    """The report for a terminal: at most ``width`` cells a line (at least 40); ANSI colours and
    commit links only when ``color``. ``title`` starts the first line; without ``show_all`` only new
    and acknowledged regressions are listed and a line counts the rest (``mltest check`` without
    ``--all``)."""
    out = _Out(report, max(width, MIN_WIDTH), color)
    where = f"branch {clean_text(report.branch, 60)}" if report.branch else "all branches"
    commits = sum(1 for c in report.commits if c.position >= 0)
    out.line(
        f"{clean_text(title, 40)}: {clean_text(report.project, 60)}, {where}: {len(report.series)} series over "
        f"{plural(commits, 'commit')}" + (f" since {clean_text(report.since, 40)}" if report.since else ""),
        style="bold",
    )
    new = status_counts(report)["new"]
    verdict = plural(new, "new regression") if new else "no new regressions"
    verdict_style = "bold red" if new else "bold green"
    counts = ", ".join(count_phrases(report))
    if cell_len(verdict) + cell_len(counts) + 2 <= out.width:
        out.line((verdict, verdict_style), f": {counts}")
    else:
        out.line(verdict, style=verdict_style)
        out.wrapped("    " + counts)
    ci_url = safe_url(report.ci_url)
    if ci_url:
        out.line("CI job: ", (clean_text(ci_url), Style(link=ci_url) if color else ""), style="dim")
    hidden = 0
    for title_, style, wanted in _SECTIONS:
        entries = [e for e in report.entries if wanted(e)]
        if not show_all:
            hidden += sum(1 for e in entries if e.status not in _ALWAYS_SHOWN)
            entries = [e for e in entries if e.status in _ALWAYS_SHOWN]
        if not entries:
            continue
        out.blank()
        out.line(f"{title_} ({len(entries)})", style=f"bold {style}".strip())
        for entry in entries:
            out.blank()
            _entry_head(out, entry, style)
            _findings(out, entry, style)
            if entry.acknowledged:
                out.line(f"    acknowledged: {clean_text(entry.acknowledged)}", style="dim")
            elif entry.status == "new":
                out.line(f'    if this is expected: mltest ack {clean_text(entry.id, 40)} --reason "..."', style="dim")
    if report.undirected:
        out.blank()
        out.wrapped(
            "skipped (direction unknown; set higher_is_better in [tool.mltest.metrics.NAME]): "
            + ", ".join(clean_text(m, 60) for m in report.undirected)
        )
    if hidden:
        out.blank()
        out.line(f"({hidden} recovered, improvement and environment entries not shown: --all shows them)", style="dim")
    for note in report.notes:
        out.blank()
        out.wrapped(clean_text(note), style="dim")
    out.blank()
    out.line(f"generated {clean_text(report.generated_at, 40)}", style="dim")
    return out.text()
