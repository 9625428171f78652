"""The Markdown report: a GitHub pull-request comment or ``$GITHUB_STEP_SUMMARY``.

Layout: a title, a one-line verdict with counts, a summary table of every entry (new regressions
first, as :attr:`Report.entries <mltest.report.model.Report.entries>` is ordered), then one
collapsible ``<details>`` block per entry with every finding and the commits of its range. The
result stays under ``max_chars`` (GitHub refuses comments over 65,536 characters): details, then
table rows, are dropped from the end, and a note says how many entries are not shown.

Untrusted text (commit subjects, test ids, metric names, environment keys, acknowledgements) cannot
change the structure or add links or HTML: :func:`md_text` removes control characters and escape
sequences, backslash-escapes every character with a Markdown meaning (``|`` included, so a table
row keeps its cells), and breaks what GitHub would turn into a link, an emoji, a math formula, an
@mention or an issue reference. Text inside HTML (``<summary>``) is HTML-escaped instead, and only
http(s) URLs become links.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from mltest.report.fmt import (
    clean_text,
    count_phrases,
    fmt_confidence,
    fmt_pct,
    fmt_value,
    note_text,
    plural,
    safe_url,
    short_sha,
    status_counts,
)
from mltest.report.model import ComparisonReport, EntryView, FindingView, Report

__all__ = ["MIN_CHARS", "md_text", "render_comparison_markdown", "render_markdown"]

MIN_CHARS = 1_000
"""The smallest ``max_chars`` :func:`render_markdown` accepts."""

FULL_REPORT_HINT = "full report: `mltest report --format html`"
MAX_RANGE_COMMITS = 30
"""Commits of a range listed in its details block; the rest are counted."""
# Untrusted fields are cut to these lengths (before escaping) so one field cannot fill the comment.
SUBJECT_LEN, ID_LEN, ACK_LEN, NOTE_LEN, LIST_LEN = 90, 120, 300, 300, 20

# The ASCII characters with a meaning inside a line of GitHub Markdown: code, emphasis, links and
# images ([ ] suffice), table cells (|), strikethrough (~), URL autolinks and emoji shortcodes (:),
# e-mail autolinks (@), math ($), and # and \ themselves. A backslash makes each literal (in a table
# cell too: GFM unescapes \| before parsing the cell). HTML and entities (< > &) become entities
# (&lt; &gt; &amp;), which render as the characters. The renderer never starts a line with
# untrusted text, so line-start syntax (- + = > 1.) cannot occur.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~:@$])")
_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_WWW = re.compile(r"(?i)\b(www)\.")
# GitHub links @user, @org/team and #123 in rendered text (not inside <code>); a word joiner
# (U+2060, invisible) after the sign keeps them plain text.
_PING = re.compile(r"([@#])(?=[\w-])")
# GitHub's other issue reference, GH-123, is broken the same way (a word joiner after GH).
_GH_REF = re.compile(r"(?i)\b(gh)(?=-\d)")
_WORD_JOINER = "\u2060"

_STATUS_LABEL = {"new": "❌ new", "acknowledged": "☑️ acknowledged", "recovered": "↩️ recovered"}
_OPEN_ICON = {"improvement": "🚀 ", "environment": "🔧 "}


# ----------------------------------------------------------------------------- escaping
def md_text(text: str | None, max_len: int | None = None, *, prose: bool = True) -> str:
    """Untrusted ``text`` as inert Markdown inline text, safe inside a table cell.

    Control characters and escape sequences are removed, line breaks become spaces, every Markdown
    character is backslash-escaped (``http://`` becomes ``http\\://`` so no autolink is made, and
    ``www.`` is broken likewise), ``<``, ``>`` and ``&`` become entities (so no tag, not even an
    escaped one, appears in the source). ``prose`` (text outside ``<code>``) also puts an invisible
    word joiner after ``@``, ``#`` and the ``GH`` of ``GH-123`` so GitHub makes no @mention or issue
    reference of it.
    """
    text = clean_text(text, max_len)
    if prose:
        text = _PING.sub(lambda m: m.group(1) + _WORD_JOINER, text)
        text = _GH_REF.sub(lambda m: m.group(1) + _WORD_JOINER, text)
    text = _MD_SPECIAL.sub(r"\\\1", text).translate(_ENTITIES)
    return _WWW.sub(r"\1\\.", text)


def md_code(text: str | None, max_len: int | None = None) -> str:
    """Untrusted code-ish ``text`` (a test id, metric, environment key) in monospace, inert.

    ``<code>`` rather than a backtick span: inside a span backslashes stay literal, so a ``|`` could
    not be escaped without showing the backslash. GitHub links no mention inside ``<code>``.
    """
    return f"<code>{md_text(text, max_len, prose=False)}</code>"


def html_text(text: str | None, max_len: int | None = None) -> str:
    """Untrusted ``text`` inside raw HTML (``<summary>``), where Markdown escapes do not apply."""
    return html.escape(clean_text(text, max_len), quote=True)


def _md_url(url: str) -> str:
    """A vetted (:func:`safe_url`) URL as a Markdown link destination: every character that could end
    the destination or a table cell is percent-encoded."""
    return quote(url, safe="/:?#=&%@+,;~!$*'-._")


def _link(text: str, url: str | None) -> str:
    """``text`` (already Markdown) linked to ``url`` when it is an http(s) URL."""
    safe = safe_url(url)
    return f"[{text}]({_md_url(safe)})" if safe else text


# ----------------------------------------------------------------------------- pieces
def _commit_url(report: Report, sha: str) -> str | None:
    view = report.commit(sha)
    if view.url:
        return view.url
    base = safe_url(report.repo_url)
    return f"{base.rstrip('/')}/commit/{quote(sha, safe='')}" if base else None


def _sha_link(report: Report, sha: str | None) -> str:
    if not sha:
        return "?"
    return _link(md_code(short_sha(sha)), _commit_url(report, sha))


def _compare_url(report: Report, good: str, bad: str) -> str | None:
    """A compare view of ``good...bad`` on GitHub or GitLab (other hosts: none)."""
    base = safe_url(report.repo_url)
    if base is None:
        return None
    host = (urlsplit(base).hostname or "").lower()
    path = "/-/compare/" if "gitlab" in host else "/compare/" if "github" in host else None
    if path is None:
        return None
    return f"{base.rstrip('/')}{path}{quote(good, safe='')}...{quote(bad, safe='')}"


def _subject(report: Report, sha: str | None, max_len: int = SUBJECT_LEN) -> str:
    subject = report.commit(sha).subject if sha else None
    return md_text(subject, max_len) if subject else ""


def _where(report: Report, entry: EntryView) -> str:
    """The culprit (linked SHA and subject) or the range (good..bad, commit count)."""
    if not entry.findings:
        return "?"
    if entry.culprit:
        subject = _subject(report, entry.culprit)
        return _sha_link(report, entry.culprit) + (f" {subject}" if subject else "")
    good, bad, commits = entry.range
    text = f"{_sha_link(report, good)}..{_sha_link(report, bad)}"
    n = len(commits)
    return text + (f" ({plural(n, 'commit')})" if n else " (commits not in the history)")


def _worst(entry: EntryView) -> FindingView | None:
    """The finding with the largest relative change (an unknown change counts least)."""

    def size(f: FindingView) -> float:
        return -1.0 if math.isnan(f.rel_change) else abs(f.rel_change)

    return max(entry.findings, key=size, default=None)


def _values(f: FindingView) -> str:
    return f"{md_text(fmt_value(f.before, f.unit))} → {md_text(fmt_value(f.after, f.unit))}"


def _status(entry: EntryView) -> str:
    if entry.status == "open":
        return _OPEN_ICON.get(entry.kind, "") + "open"
    return _STATUS_LABEL.get(entry.status, md_text(entry.status, ID_LEN))


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


TABLE_HEAD = [_row(["Status", "Kind", "Culprit or range", "Largest change", "Confidence"]), _row(["---"] * 5)]


def _table_row(report: Report, entry: EntryView) -> str:
    worst = _worst(entry)
    if worst is None:
        change, confidence = "", ""
    else:
        change = f"{md_code(worst.metric, ID_LEN)}: {_values(worst)} ({md_text(fmt_pct(worst.rel_change))})"
        if len(entry.findings) > 1:
            change += f" and {len(entry.findings) - 1} more"
        confidence = md_text(fmt_confidence(worst.confidence))
    return _row([_status(entry), md_text(entry.kind, ID_LEN), _where(report, entry), change, confidence])


FINDINGS_HEAD = [
    _row(["Test", "Metric", "Before → after", "Δ", "Confidence", "Environment", "Notes"]),
    _row(["---"] * 7),
]


def _finding_row(report: Report, f: FindingView) -> str:
    notes = []
    if f.status == "recovered":
        notes.append("recovered" + (f" at {_sha_link(report, f.fixed_by)}" if f.fixed_by else ""))
    note = note_text(f)
    if note:
        notes.append(md_text(note, NOTE_LEN))
    return _row(
        [
            md_code(f.test, ID_LEN),
            md_code(f.metric, ID_LEN),
            _values(f),
            md_text(fmt_pct(f.rel_change)),
            md_text(fmt_confidence(f.confidence)),
            md_code(f.env_key, ID_LEN),
            "; ".join(notes),
        ]
    )


def _summary(report: Report, entry: EntryView) -> str:
    """The ``<summary>`` line: raw HTML, so everything is HTML-escaped (no Markdown here)."""
    if entry.culprit:
        where = f"culprit <code>{html_text(short_sha(entry.culprit))}</code>"
    elif entry.findings:
        good, bad, commits = entry.range
        where = f"<code>{html_text(short_sha(good))}..{html_text(short_sha(bad))}</code>"
        if commits:
            where += f" ({plural(len(commits), 'commit')})"
    else:
        where = "no findings"
    status = entry.kind if entry.status == "open" else f"{entry.status} {entry.kind}"
    count = f": {plural(len(entry.findings), 'finding')}" if entry.findings else ""
    label = f"<code>{html_text(entry.id, ID_LEN)}</code> {html_text(status, ID_LEN)}"
    return f"<details><summary>{label}, {where}{count}</summary>"


def _details(report: Report, entry: EntryView, max_findings: int | None = None) -> str:
    """The collapsible block of one entry; ``max_findings`` cuts its findings table."""
    lines = [_summary(report, entry), ""]
    if entry.findings:
        if entry.culprit:
            subject = _subject(report, entry.culprit, 300)
            lines.append(f"Culprit: {_sha_link(report, entry.culprit)}" + (f" {subject}" if subject else ""))
        else:
            good, bad, commits = entry.range
            line = f"Range: {_sha_link(report, good)} (last good) .. {_sha_link(report, bad)} (first bad)"
            compare = _compare_url(report, good, bad) if good else None
            if compare:
                line += f", {_link('compare', compare)}"
            lines.append(line)
        lines.append("")
    findings = entry.findings if max_findings is None else entry.findings[:max_findings]
    if findings:
        lines += FINDINGS_HEAD
        lines += [_finding_row(report, f) for f in findings]
        if len(findings) < len(entry.findings):
            lines += [
                "",
                f"… {plural(len(entry.findings) - len(findings), 'more finding')} not shown ({FULL_REPORT_HINT})",
            ]
        lines.append("")
    if entry.acknowledged:
        lines += [f"Acknowledged: {md_text(entry.acknowledged, ACK_LEN)}", ""]
    elif entry.status == "new":
        lines += [f'If this is expected: `mltest ack {_ack_id(entry.id)} --reason "..."`', ""]
    if entry.findings and not entry.culprit:
        commits = entry.range[2]
        if commits:
            lines.append(f"Commits of the range (oldest first, {len(commits)}):")
            lines.append("")
            lines += [
                f"- {_sha_link(report, sha)} {_subject(report, sha)}".rstrip() for sha in commits[:MAX_RANGE_COMMITS]
            ]
            if len(commits) > MAX_RANGE_COMMITS:
                lines.append(f"- … {len(commits) - MAX_RANGE_COMMITS} more")
            lines.append("")
    lines += ["</details>", ""]
    return "\n".join(lines) + "\n"


def _ack_id(entry_id: str) -> str:
    """An entry id for a backtick code span (ids are mltest's own; anything odd is replaced)."""
    return re.sub(r"[^\w.-]", "?", clean_text(entry_id, ID_LEN))


def _head(report: Report, title: str) -> str:
    new = status_counts(report)["new"]
    verdict = f"❌ **{plural(new, 'new regression')}**" if new else "✅ **no new regressions**"
    meta = [f"project {md_code(report.project, ID_LEN)}"]
    meta.append(f"branch {md_code(report.branch, ID_LEN)}" if report.branch else "all branches")
    meta.append(f"{len(report.series)} series")
    meta.append(plural(sum(1 for c in report.commits if c.position >= 0), "commit"))
    if report.since:
        meta.append(f"since {md_text(report.since, ID_LEN)}")
    meta.append(f"generated {md_text(report.generated_at, ID_LEN)}")
    if safe_url(report.ci_url):
        meta.append(_link("CI job", report.ci_url))
    lines = [
        f"## {md_text(title, 200)}",
        "",
        f"{verdict}: {', '.join(count_phrases(report))}",
        "",
        f"<sub>{' · '.join(meta)}</sub>",
        "",
    ]
    return "\n".join(lines) + "\n"


def _foot(report: Report) -> str:
    lines = []
    if report.undirected:
        names = ", ".join(md_code(m, ID_LEN) for m in report.undirected[:LIST_LEN])
        more = f" and {len(report.undirected) - LIST_LEN} more" if len(report.undirected) > LIST_LEN else ""
        lines.append(
            f"Skipped (direction unknown; set `higher_is_better` in `[tool.mltest.metrics.NAME]`): {names}{more}"
        )
        lines.append("")
    for note in report.notes[:LIST_LEN]:
        lines += [f"> {md_text(note, NOTE_LEN)}", ""]
    return "\n".join(lines) + "\n" if lines else ""


def _note(hidden_rows: int, hidden_details: int) -> str:
    """The truncation note (empty when nothing is hidden)."""
    if hidden_rows:
        text = f"{hidden_rows} more {'entry' if hidden_rows == 1 else 'entries'} not shown"
    elif hidden_details:
        text = f"details of {hidden_details} more {'entry' if hidden_details == 1 else 'entries'} not shown"
    else:
        return ""
    return f"_… {text} ({FULL_REPORT_HINT})._\n\n"


# ----------------------------------------------------------------------------- render
def render_markdown(report: Report, *, max_chars: int = 65_000, title: str = "mltest regression report") -> str:
    """The report as GitHub Markdown, at most ``max_chars`` characters (at least :data:`MIN_CHARS`).

    When the whole report is longer, details blocks are dropped from the end (the last one kept may
    lose findings from its end), then table rows, and a note says how many entries are not shown.
    """
    if max_chars < MIN_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_CHARS}, not {max_chars}")
    head, foot = _head(report, title), _foot(report)
    entries = report.entries
    if not entries:
        return _fit(head + "No regressions, improvements or environment changes found.\n\n" + foot, max_chars)
    rows = [_table_row(report, e) + "\n" for e in entries]
    table_head = "\n".join(TABLE_HEAD) + "\n"
    details = [_details(report, e) for e in entries]
    full = head + table_head + "".join(rows) + "\n" + "".join(details) + foot
    if len(full) <= max_chars:
        return _fit(full, max_chars)

    # Room for the note, whose number of digits is at most that of len(entries).
    reserve = max(len(_note(len(entries), 0)), len(_note(0, len(entries))))
    budget = max_chars - len(head) - len(foot) - reserve - len(table_head) - 1
    shown_rows = 0
    for row in rows:
        if len(row) > budget:
            break
        budget -= len(row)
        shown_rows += 1
    kept: list[str] = []
    if shown_rows == len(rows):
        for i, block in enumerate(details):
            if len(block) <= budget:
                kept.append(block)
                budget -= len(block)
                continue
            partial = _partial_details(report, entries[i], budget)
            if partial is not None:
                kept.append(partial)
            break
    hidden_rows = len(rows) - shown_rows
    hidden_details = len(entries) - len(kept) if not hidden_rows else 0
    out = head
    if shown_rows:
        out += table_head + "".join(rows[:shown_rows]) + "\n"
    out += "".join(kept) + _note(hidden_rows, hidden_details) + foot
    return _fit(out, max_chars)


def _partial_details(report: Report, entry: EntryView, budget: int) -> str | None:
    """The longest details block of ``entry`` within ``budget`` showing at least one finding."""
    lo, hi, best = 1, len(entry.findings) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        block = _details(report, entry, mid)
        if len(block) <= budget:
            best, lo = block, mid + 1
        else:
            hi = mid - 1
    return best


def _fit(text: str, max_chars: int) -> str:
    """``text`` ending in one newline; the last resort when even the head and foot are too long: cut
    at a line end, with a note."""
    text = text.rstrip("\n") + "\n"
    if len(text) <= max_chars:
        return text
    note = f"\n_… cut to {max_chars} characters ({FULL_REPORT_HINT})._\n"
    cut = text.rfind("\n", 0, max_chars - len(note))
    return text[: max(cut, 0)] + note


_NONE = "\u2013"  # an en dash: no value
_VERDICT_MARK = {"regression": "❌", "improvement": "🚀", "changed": "⚠️", "unchanged": "✅", "no baseline": "\u2796"}


def render_comparison_markdown(cmp: ComparisonReport, *, max_chars: int = 65_000) -> str:
    """``mltest compare`` as a PR check: a verdict line and one table row per metric, regressions
    first; cut with a note to stay under ``max_chars``."""
    order = {"regression": 0, "changed": 1, "improvement": 2, "unchanged": 3, "no baseline": 4}
    rows = sorted(cmp.rows, key=lambda r: (order.get(r.verdict, 5), r.test, r.metric))
    sha = _link(f"<code>{md_text(short_sha(cmp.sha), prose=False)}</code>", cmp.commit_url)
    bad = cmp.regressions
    head = [
        "## mltest compare",
        "",
        (f"❌ **{plural(bad, 'regression')}**" if bad else "✅ **no regressions**")
        + f" in run {md_code(cmp.run_id[:12])} at {sha} ({md_code(cmp.branch or 'no branch')}) against the recent "
        + f"runs of {md_code(cmp.baseline)} on {md_code(cmp.env_key)}",
        "",
        "| Verdict | Test | Metric | Baseline | This run | Δ | p | Baseline runs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines: list[str] = []
    used = sum(len(line) + 1 for line in head)
    for i, r in enumerate(rows):
        old = md_text(fmt_value(r.old, r.unit)) if math.isfinite(r.old) else _NONE
        cells = [
            f"{_VERDICT_MARK.get(r.verdict, '')} {md_text(r.verdict)}",
            md_code(r.test, 120),
            md_code(r.metric, 80),
            old,
            md_text(fmt_value(r.new, r.unit)),
            md_text(fmt_pct(r.rel_change)) if math.isfinite(r.old) else _NONE,
            f"{r.p_value:.1g}" if math.isfinite(r.p_value) else _NONE,
            str(r.baseline_runs),
        ]
        line = "| " + " | ".join(cells) + " |"
        if used + len(line) + 200 > max_chars:
            lines.append("")
            lines.append(f"… {plural(len(rows) - i, 'more metric')} not shown (`mltest compare --format json` has all)")
            break
        lines.append(line)
        used += len(line) + 1
    if not rows:
        lines.append("| " + _NONE + " | (the run recorded no measurements) | | | | | | |")
    return "\n".join(head + lines) + "\n"
