"""The HTML rendering of a report: one self-contained page that opens offline.

``render_html(report)`` returns a complete HTML document with its CSS and JavaScript inline and no
external resource of any kind (no CDN, font, image or stylesheet link; a Content-Security-Policy with
``default-src 'none'`` and hashes of the page's own script and style makes sure of it). Links to
commits (``CommitView.url``) are plain ``<a href>`` and only ever ``http(s)``.

The page, top to bottom:

* a header: project, branch, generation time, store, and the counts of new, acknowledged and
  recovered regressions, improvements and environment changes;
* filters by test, metric and environment (hide non-matching index rows, charts and series);
* the index of entries in report order (new regressions first), each with its culprit or range of
  commits, acknowledgement, and one row per finding (before -> after, change, confidence,
  environment, link to its chart); this part is plain markup and reads without JavaScript;
* one chart per affected series;
* "All series": every series, paginated, each chart drawn when its row is opened.

Charts are inline SVG drawn by the script from a JSON block (``<script type="application/json"
id="mltest-data">``) when they scroll into view, so a report of 1,000 series x 1,000 commits stays
responsive: the data is compact (commits listed once, as columns; each series as arrays of numbers
rounded to 6 significant digits, with arrays that are implied omitted).

Everything from users (commit subjects, test ids, metric names, environment keys, project, notes,
acknowledgements) is untrusted: terminal escape sequences and control characters are stripped,
markup is escaped with :func:`html.escape`, the JSON block escapes ``<``, ``>``, ``&`` and
U+2028/U+2029 so nothing can close the ``<script>`` element, and the script only inserts text with
``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from mltest.report.fmt import clean_text, fmt_pct, note_text, safe_url
from mltest.report.fmt import fmt_value as _fmt_value
from mltest.report.model import CommitView, EntryView, FindingView, Report, SeriesView

__all__ = ["render_html"]

# ----------------------------------------------------------------------------- untrusted text


def _esc(text: str | None, limit: int | None = None) -> str:
    """Cleaned and escaped for HTML text and (double-quoted) attribute values."""
    return html.escape(clean_text(text, limit), quote=True)


def _token(text: str) -> str:
    """A CSS class token made of ``text`` (kind and status names): lowercase letters, digits, dashes."""
    return re.sub(r"[^a-z0-9-]", "", text.lower())[:32] or "x"


def _fragment(prefix: str, key: str) -> tuple[str, str]:
    """The element id and the matching ``href`` for an anchor to ``key`` (both escaped for markup)."""
    key = clean_text(key)
    return html.escape(prefix + key, quote=True), html.escape("#" + quote(prefix + key, safe="-_.~"), quote=True)


# ----------------------------------------------------------------------------- numbers


def fmt_value(value: float, unit: str | None) -> str:
    """:func:`mltest.report.fmt.fmt_value` of a cleaned unit; ``n/a`` for nan."""
    return "n/a" if math.isnan(value) else _fmt_value(value, clean_text(unit) or None)


_pct = fmt_pct


def _confidence(confidence: float) -> str:
    """1 - p as a percentage with as many decimals as it takes not to show 100% (up to 4)."""
    if not math.isfinite(confidence):
        return "n/a"
    for digits in range(1, 5):
        text = f"{confidence * 100:.{digits}f}"
        if float(text) < 100 or confidence >= 1:
            return text + "%"
    return f">{100 - 10.0**-4:.4f}%"


def _num(value: float | None) -> float | None:
    """A JSON-safe number: 6 significant digits; None (null) for nan and infinities."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def _num_array(values: Sequence[float]) -> str:
    """A JSON array of numbers with 6 significant digits (null for nan/inf), built as text: fast for 10^6 points."""
    text = ",".join([f"{v:.6g}" for v in values])
    if "n" in text:  # "nan", "inf": never in a finite number's %g text
        text = ",".join([f"{v:.6g}" if math.isfinite(v) else "null" for v in values])
    return f"[{text}]"


def _int_array(values: Iterable[int]) -> str:
    return "[" + ",".join([str(int(v)) for v in values]) + "]"


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _script_json(text: str) -> str:
    """JSON text made safe inside a ``<script>`` element: no ``<``, ``>``, ``&``, U+2028 or U+2029.

    Each is replaced by its ``\\uXXXX`` escape, which JSON.parse reads back as the same character; so
    ``</script>`` or ``<!--`` in a commit subject cannot end or confuse the element.
    """
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


# ----------------------------------------------------------------------------- what the page indexes


@dataclass
class _Index:
    """Lookups shared by the sections: the commit table, findings in index order, series positions."""

    report: Report
    commit_ids: dict[str, int] = field(default_factory=dict)
    commit_list: list[CommitView] = field(default_factory=list)
    findings: list[tuple[EntryView, FindingView]] = field(default_factory=list)
    series_ids: dict[str, int] = field(default_factory=dict)
    series_findings: dict[int, list[int]] = field(default_factory=dict)
    affected: list[int] = field(default_factory=list)
    """Series with findings, in the order the index first names them."""
    xs: dict[int, list[int]] = field(default_factory=dict)
    """Cache of :func:`_series_x`."""

    @classmethod
    def of(cls, report: Report) -> _Index:
        index = cls(report)
        for commit in report.commits:
            index._add_commit(commit)
        for series in report.series:
            for point in series.points:
                if point.sha not in index.commit_ids:
                    index._add_commit(report.commit(point.sha))
        for i, series in enumerate(report.series):
            index.series_ids.setdefault(series.key, i)
        by_id: dict[str, int] = {}
        for entry in report.entries:
            for finding in entry.findings:
                by_id.setdefault(finding.id, len(index.findings))
                index.findings.append((entry, finding))
        seen: set[int] = set()
        for fi, (_, finding) in enumerate(index.findings):
            si = index.series_ids.get(finding.series_key, -1)
            if si >= 0:
                index.series_findings.setdefault(si, []).append(fi)
                if si not in seen:
                    seen.add(si)
                    index.affected.append(si)
        for si, series in enumerate(report.series):  # findings named by a series but keyed elsewhere
            for fid in series.findings:
                fi = by_id.get(fid, -1)
                if fi >= 0 and fi not in index.series_findings.get(si, []):
                    index.series_findings.setdefault(si, []).append(fi)
            if series.findings and si not in seen:
                seen.add(si)
                index.affected.append(si)
        return index

    def _add_commit(self, commit: CommitView) -> None:
        if commit.sha not in self.commit_ids:
            self.commit_ids[commit.sha] = len(self.commit_list)
            self.commit_list.append(commit)


def _series_x(index: _Index, si: int) -> list[int]:
    """The x of each point of series ``si``: its commit's position in the history when every point has
    one, in order, else the point's index (so a chart never goes backwards). Cached."""
    xs = index.xs.get(si)
    if xs is None:
        ids, commits = index.commit_ids, index.commit_list
        positions = [commits[ids[p.sha]].position for p in index.report.series[si].points]
        if all(p >= 0 for p in positions) and all(a < b for a, b in itertools.pairwise(positions)):
            xs = positions
        else:
            xs = list(range(len(positions)))
        index.xs[si] = xs
    return xs


# ----------------------------------------------------------------------------- markup


def _commit_html(report: Report, sha: str, *, subject_limit: int = 100) -> str:
    commit = report.commit(sha)
    label = f'<code class="sha">{_esc(commit.short)}</code>'
    url = safe_url(commit.url)
    if url:
        label = f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer">{label}</a>'
    parts = [label]
    if commit.subject:
        parts.append(f'<span class="subject">{_esc(commit.subject, subject_limit)}</span>')
    if commit.date:
        parts.append(f'<span class="date">{_esc(commit.date[:10])}</span>')
    return " ".join(parts)


_LISTED_COMMITS = 20


def _range_html(report: Report, entry: EntryView) -> str:
    if not entry.findings:
        return ""
    culprit = entry.culprit
    if culprit is not None:
        return f'<p class="range">Culprit: {_commit_html(report, culprit)}</p>'
    good, bad, commits = entry.range
    good_html = _commit_html(report, good, subject_limit=60) if good else "?"
    count = f"{len(commits)} commit" + ("" if len(commits) == 1 else "s")
    head = (
        f'<p class="range">Between {good_html} <span class="muted">(last good)</span> and '
        f'{_commit_html(report, bad, subject_limit=60)} <span class="muted">(first bad)</span>'
    )
    if not commits:
        return head + ": the commits between are not in the recorded history.</p>"
    items = "".join(f"<li>{_commit_html(report, sha)}</li>" for sha in commits[:_LISTED_COMMITS])
    more = (
        f'<li class="muted">\u2026 and {len(commits) - _LISTED_COMMITS} more</li>'
        if len(commits) > _LISTED_COMMITS
        else ""
    )
    return f'{head}: {count}</p><ol class="commits">{items}{more}</ol>'


def _direction(kind: str) -> str:
    return {"regression": "worse", "drift": "worse", "improvement": "better"}.get(kind, "neutral")


_FINDINGS_HEAD = (
    '<thead><tr><th>Test</th><th>Metric</th><th class="num">Before \u2192 after</th><th class="num">\u0394</th>'
    '<th class="num">Confidence</th><th>Environment</th><th></th></tr></thead>'
)


def _finding_row(index: _Index, fi: int, finding: FindingView) -> str:
    report = index.report
    si = index.series_ids.get(finding.series_key, -1)
    if si >= 0:
        _, href = _fragment("chart-", finding.series_key)
        chart = f'<a class="chart-link" href="{href}">chart</a>'
    else:
        chart = '<span class="muted">no chart</span>'
    extra = []
    if finding.status and finding.status != "open":
        extra.append(f'<span class="badge b-{_token(finding.status)}">{_esc(finding.status)}</span>')
    if finding.fixed_by:
        extra.append(f'<span class="muted">fixed by</span> {_commit_html(report, finding.fixed_by, subject_limit=60)}')
    note = note_text(finding)
    if note:
        extra.append(f'<span class="note">{_esc(note, 300)}</span>')
    notes = f'<div class="finding-notes">{" ".join(extra)}</div>' if extra else ""
    p_value = f"p = {finding.p_value:.3g}" if math.isfinite(finding.p_value) else "no p-value"
    return (
        f'<tr data-f="{fi}" class="d-{_direction(finding.kind)}">'
        f'<td class="test"><code>{_esc(finding.test)}</code>{notes}</td>'
        f'<td class="metric">{_esc(finding.metric)}</td>'
        f'<td class="num">{_esc(fmt_value(finding.before, finding.unit))} \u2192 '
        f"{_esc(fmt_value(finding.after, finding.unit))}</td>"
        f'<td class="num delta">{_pct(finding.rel_change)}</td>'
        f'<td class="num" title="{p_value}">{_confidence(finding.confidence)}</td>'
        f'<td class="env">{_esc(finding.env_key)}</td>'
        f"<td>{chart}</td></tr>"
    )


_STATUS_LABELS = {"new": "new", "acknowledged": "acknowledged", "recovered": "recovered", "open": "open"}


def _entry_html(index: _Index, entry: EntryView, first_finding: int) -> str:
    entry_id, _ = _fragment("entry-", entry.id)
    kind, status = _token(entry.kind), _token(entry.status)
    rows = "".join(_finding_row(index, first_finding + i, f) for i, f in enumerate(entry.findings))
    ack = (
        f'<p class="ack"><span class="muted">Acknowledged:</span> {_esc(entry.acknowledged, 500)}</p>'
        if entry.acknowledged
        else ""
    )
    return (
        f'<li class="entry k-{kind} st-{status}" id="{entry_id}" data-entry="{_esc(entry.id)}">'
        f'<div class="entry-head"><span class="badge b-{status} k-{kind}">{_esc(entry.status)}</span> '
        f'<span class="kind">{_esc(entry.kind)}</span> <code class="eid">{_esc(entry.id)}</code></div>'
        f"{_range_html(index.report, entry)}{ack}"
        f'<table class="findings">{_FINDINGS_HEAD}<tbody>{rows}</tbody></table></li>'
    )


def _counts(report: Report) -> list[tuple[str, str, int]]:
    entries = report.entries
    bad = ("regression", "drift")
    return [
        ("new", "new", sum(1 for e in entries if e.status == "new")),
        ("acknowledged", "acknowledged", sum(1 for e in entries if e.status == "acknowledged")),
        ("recovered", "recovered", sum(1 for e in entries if e.status == "recovered" and e.kind in bad)),
        ("improvement", "improvements", sum(1 for e in entries if e.kind == "improvement")),
        ("environment", "environment changes", sum(1 for e in entries if e.kind == "environment")),
    ]


def _header_html(report: Report) -> str:
    meta: list[tuple[str, str]] = [("Branch", _esc(report.branch) if report.branch else "all branches")]
    meta.append(("Generated", _esc(report.generated_at)))
    meta.append(("Store", f"<code>{_esc(report.store)}</code>"))
    if report.since:
        meta.append(("Since", _esc(report.since)))
    if report.repo_url:
        url = safe_url(report.repo_url)
        shown = _esc(report.repo_url, 120)
        meta.append(("Repository", f'<a href="{html.escape(url, quote=True)}">{shown}</a>' if url else shown))
    ci_url = safe_url(report.ci_url)
    if ci_url:
        meta.append(("CI job", f'<a href="{html.escape(ci_url, quote=True)}">{_esc(ci_url, 120)}</a>'))
    history = sum(1 for c in report.commits if c.position >= 0)
    meta.append(("History", f"{history} commit{'s' if history != 1 else ''}, {len(report.series)} series"))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta)
    counts = "".join(
        f'<li class="count c-{cls}{" zero" if n == 0 else ""}"><b>{n}</b> {label}</li>'
        for cls, label, n in _counts(report)
    )
    notes = [f"<li>{_esc(note, 1000)}</li>" for note in report.notes]
    if report.undirected:
        names = ", ".join(f"<code>{_esc(m)}</code>" for m in report.undirected)
        notes.append(f"<li>Not checked (nothing says whether higher is better): {names}</li>")
    aside = f'<ul class="notes">{"".join(notes)}</ul>' if notes else ""
    return (
        f'<header class="top"><h1>{_esc(report.project) or "mltest"} '
        f'<span class="sub">performance report</span></h1><dl class="meta">{dl}</dl>'
        f'<ul class="counts">{counts}</ul>{aside}</header>'
    )


def _filters_html(report: Report) -> str:
    envs = sorted(
        {clean_text(s.env_key) for s in report.series}
        | {clean_text(f.env_key) for e in report.entries for f in e.findings}
    )
    metrics = sorted({clean_text(s.metric) for s in report.series})
    env_options = "".join(f'<option value="{html.escape(e, quote=True)}">{html.escape(e)}</option>' for e in envs)
    metric_options = "".join(f'<option value="{html.escape(m, quote=True)}"></option>' for m in metrics[:500])
    return (
        '<div class="filters needs-js" role="search">'
        '<label>Test <input type="search" id="f-test" placeholder="any test" autocomplete="off"></label>'
        '<label>Metric <input type="search" id="f-metric" placeholder="any metric" list="f-metrics" autocomplete="off">'
        f'<datalist id="f-metrics">{metric_options}</datalist></label>'
        '<label>Environment <select id="f-env"><option value="">all environments</option>'
        f"{env_options}</select></label>"
        '<button type="button" id="f-reset">Reset</button>'
        '<span id="f-count" class="muted" aria-live="polite"></span></div>'
    )


def _index_html(index: _Index) -> str:
    report = index.report
    if not report.entries:
        body = '<p class="empty">No regressions, improvements or environment changes.</p>'
    else:
        items, first = [], 0
        for entry in report.entries:
            items.append(_entry_html(index, entry, first))
            first += len(entry.findings)
        body = f'<ol class="entries">{"".join(items)}</ol>'
    return f'<section id="index"><h2>Regressions and changes</h2>{body}</section>'


_LEGEND = (
    '<p class="legend"><span class="sw sw-line"></span>median per commit '
    '<span class="sw sw-band"></span>spread of the repeats (lowest\u2013highest) '
    '<span class="sw sw-seg"></span>detected level '
    '<span class="sw sw-cp"></span>change point '
    '<span class="sw sw-new"></span>new regression (last good\u2013first bad) '
    '<span class="sw sw-old"></span>acknowledged / recovered '
    '<span class="sw sw-imp"></span>improvement '
    '<span class="sw sw-env"></span>environment change. '
    "Hover a point for its commit; click to open it.</p>"
)


def _series_caption(series: SeriesView) -> str:
    unit = f' <span class="unit">({_esc(series.unit)})</span>' if series.unit else ""
    return (
        f'<span class="metric">{_esc(series.metric)}</span>{unit} '
        f'<code class="test">{_esc(series.test)}</code> <span class="env">{_esc(series.env_key)}</span>'
    )


def _charts_html(index: _Index) -> str:
    report = index.report
    figures = []
    for si in index.affected:
        series = report.series[si]
        chart_id, _ = _fragment("chart-", series.key)
        links = []
        for fi in index.series_findings.get(si, []):
            entry, finding = index.findings[fi]
            _, href = _fragment("entry-", entry.id)
            status = _token(entry.status)
            links.append(
                f'<a class="badge b-{status} k-{_token(finding.kind)}" href="{href}">'
                f"{_esc(finding.kind)}: {_esc(entry.status)}</a>"
            )
        figures.append(
            f'<figure class="chart" id="{chart_id}" data-s="{si}" data-key="{_esc(series.key)}">'
            f"<figcaption>{_series_caption(series)} {' '.join(links)}</figcaption>"
            f'<div class="plot" data-s="{si}"><noscript>The chart needs JavaScript.</noscript></div></figure>'
        )
    body = "".join(figures) if figures else '<p class="empty">No series has findings.</p>'
    return f'<section id="charts"><h2>Affected series ({len(figures)})</h2>{_LEGEND}{body}</section>'


def _browse_html(report: Report) -> str:
    return (
        f'<section id="browse"><h2>All series ({len(report.series)})</h2>'
        '<noscript><p class="empty">Browsing the series needs JavaScript.</p></noscript>'
        '<div class="pager needs-js"><button type="button" id="b-prev">\u2039 Previous</button>'
        '<span id="b-info" aria-live="polite"></span><button type="button" id="b-next">Next \u203a</button>'
        '<label>per page <select id="b-size"><option>25</option><option selected>50</option>'
        "<option>100</option><option>200</option></select></label>"
        '<label><input type="checkbox" id="b-findings"> only series with findings</label>'
        '<button type="button" id="b-open">Open all on this page</button></div>'
        '<ol class="browse" id="b-list"></ol></section>'
    )


# ----------------------------------------------------------------------------- data block


def _scalar_or_array(values: Sequence[int]) -> str:
    return str(values[0]) if values and values.count(values[0]) == len(values) else _int_array(values)


def _series_json(index: _Index, si: int, series: SeriesView) -> str:
    points = series.points
    n = len(points)
    head = {
        "key": clean_text(series.key),
        "test": clean_text(series.test),
        "metric": clean_text(series.metric),
        "env": clean_text(series.env_key),
        "unit": clean_text(series.unit) or None,
        "hib": series.higher_is_better,
        "reg": series.regressed,
        "f": index.series_findings.get(si, []),
    }
    parts = [_dumps(head)[:-1]]
    values = [p.value for p in points]
    parts.append(f',"y":{_num_array(values)}')
    lows, highs = [p.low for p in points], [p.high for p in points]
    if lows != values or highs != values:
        parts.append(f',"lo":{_num_array(lows)},"hi":{_num_array(highs)}')
    xs = _series_x(index, si)
    if xs != list(range(n)):
        parts.append(f',"x":{_int_array(xs)}')
    cs = [index.commit_ids[p.sha] for p in points]
    if cs != list(range(n)):
        parts.append(f',"c":{_int_array(cs)}')
    if n:
        parts.append(f',"smp":{_scalar_or_array([p.samples for p in points])}')
        parts.append(f',"runs":{_scalar_or_array([p.runs for p in points])}')
    segments = [v for seg in series.segments for v in (seg.start, seg.end, _num(seg.level))]
    parts.append(f',"seg":{_dumps(segments)},"cp":{_int_array(series.change_points)}}}')
    return "".join(parts)


def _finding_json(index: _Index, entry: EntryView, finding: FindingView) -> str:
    si = index.series_ids.get(finding.series_key, -1)
    gx = bx = None
    if si >= 0:
        series = index.report.series[si]
        xs = _series_x(index, si)
        where = {p.sha: xs[i] for i, p in enumerate(series.points)}
        by_position = xs != list(range(len(xs)))

        def x_of(sha: str | None) -> int | None:
            if sha is None:
                return None
            if sha in where:
                return where[sha]
            position = index.report.commit(sha).position
            return position if by_position and position >= 0 else None

        gx, bx = x_of(finding.good), x_of(finding.bad)
    return _dumps(
        {
            "id": clean_text(finding.id),
            "entry": clean_text(entry.id),
            "kind": _token(finding.kind),
            "status": _token(finding.status),
            "estatus": _token(entry.status),
            "test": clean_text(finding.test),
            "metric": clean_text(finding.metric),
            "env": clean_text(finding.env_key),
            "s": si,
            "gx": gx,
            "bx": bx,
        }
    )


def _data_json(index: _Index) -> str:
    commits = index.commit_list
    table = {
        "sha": [clean_text(c.sha) for c in commits],
        "subject": [clean_text(c.subject, 300) for c in commits],
        "date": [clean_text(c.date) for c in commits],
        "url": [safe_url(c.url) or "" for c in commits],
    }
    series = ",\n".join(_series_json(index, si, s) for si, s in enumerate(index.report.series))
    findings = ",".join(_finding_json(index, e, f) for e, f in index.findings)
    text = f'{{"v":1,"commits":{_dumps(table)},\n"findings":[{findings}],\n"series":[\n{series}]}}'
    return _script_json(text)


# ----------------------------------------------------------------------------- the page


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and JavaScript, no external resource)."""
    index = _Index.of(report)
    csp = (
        f"default-src 'none'; script-src {_csp_hash(_JS)}; style-src {_csp_hash(_CSS)}; "
        "base-uri 'none'; form-action 'none'"
    )
    title = _esc(report.project, 100) or "mltest"
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n',
            '<meta name="referrer" content="no-referrer">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<meta name="generator" content="mltest">\n',
            f"<title>{title} \u2014 mltest report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
            _header_html(report),
            "\n",
            _filters_html(report),
            "\n<main>\n",
            _index_html(index),
            "\n",
            _charts_html(index),
            "\n",
            _browse_html(report),
            "\n</main>\n",
            '<footer class="muted">Generated by mltest. This page is self-contained and works offline.</footer>\n',
            '<div class="tip" id="tip" role="tooltip" hidden></div>\n',
            '<script type="application/json" id="mltest-data">',
            _data_json(index),
            "</script>\n<script>",
            _JS,
            "</script>\n</body>\n</html>\n",
        ]
    )


# ----------------------------------------------------------------------------- style

_CSS = """
/* mltest report: light theme, system fonts, nothing loaded from outside. */
:root {
  color-scheme: light;
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --panel: #f6f8fa;
  --red: #cf222e; --red-bg: #ffebe9; --green: #1a7f37; --green-bg: #dafbe1;
  --grey: #6e7781; --grey-bg: #eaeef2; --env: #8250df; --env-bg: #fbefff; --accent: #0969da;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html { background: var(--bg); color: var(--fg); }
body {
  margin: 0 auto; max-width: 1200px; padding: 24px 20px 48px;
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
code, .sha {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px;
}
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 24px; margin: 0 0 8px; }
h1 .sub { color: var(--muted); font-weight: 400; font-size: 16px; }
h2 { font-size: 18px; margin: 32px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
.muted, .empty { color: var(--muted); }
footer { margin-top: 40px; font-size: 12px; }

/* header */
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0 0 12px; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; overflow-wrap: anywhere; }
.counts { display: flex; flex-wrap: wrap; gap: 8px; list-style: none; padding: 0; margin: 0; }
.count { padding: 4px 12px; border-radius: 6px; background: var(--grey-bg); color: var(--muted); }
.count b { font-size: 16px; }
.c-new:not(.zero) { background: var(--red-bg); color: var(--red); }
.c-improvement:not(.zero) { background: var(--green-bg); color: var(--green); }
.c-environment:not(.zero) { background: var(--env-bg); color: var(--env); }
.notes { color: var(--muted); font-size: 13px; margin: 12px 0 0; padding-left: 20px; }

/* filters: stay at the top while scrolling */
html:not(.js) .needs-js { display: none; }
.filters {
  position: sticky; top: 0; z-index: 5; display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center;
  margin: 20px 0 0; padding: 10px 0; background: rgba(255, 255, 255, 0.97); border-bottom: 1px solid var(--line);
}
.filters label, .pager label { color: var(--muted); font-size: 13px; }
input[type="search"], select, button {
  font: inherit; font-size: 13px; padding: 3px 8px; border: 1px solid var(--line); border-radius: 6px;
  background: #fff; color: var(--fg);
}
input[type="search"] { width: 16em; }
button { cursor: pointer; background: var(--panel); }
button:disabled { cursor: default; color: var(--grey); }

/* badges: red for new regressions, green for improvements, purple for the environment, grey for the rest */
.badge {
  display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: var(--grey-bg); color: var(--muted); white-space: nowrap;
}
.badge.b-new { background: var(--red-bg); color: var(--red); }
.badge.b-open.k-improvement { background: var(--green-bg); color: var(--green); }
.badge.b-open.k-environment { background: var(--env-bg); color: var(--env); }

/* the index */
.entries { list-style: none; padding: 0; margin: 0; }
.entry {
  border: 1px solid var(--line); border-left: 4px solid var(--grey); border-radius: 6px;
  padding: 10px 14px; margin: 0 0 12px;
}
.entry.st-new { border-left-color: var(--red); }
.entry.st-open.k-improvement { border-left-color: var(--green); }
.entry.st-open.k-environment { border-left-color: var(--env); }
.entry.st-acknowledged, .entry.st-recovered { background: #fbfbfc; }
.entry-head { display: flex; gap: 8px; align-items: baseline; }
.entry-head .kind { font-weight: 600; text-transform: capitalize; }
.eid { color: var(--muted); }
.range, .ack { margin: 6px 0; }
.subject { font-weight: 500; }
.date { color: var(--muted); font-size: 12px; }
.commits { margin: 4px 0 8px; padding-left: 24px; font-size: 13px; }
.findings { width: 100%; border-collapse: collapse; font-size: 13px; margin-top: 6px; table-layout: fixed; }
/* the same columns in every entry: test, metric, before -> after, change, confidence, environment, link */
.findings th:nth-child(1) { width: 28%; }
.findings th:nth-child(2) { width: 16%; }
.findings th:nth-child(3) { width: 21%; }
.findings th:nth-child(4) { width: 8%; }
.findings th:nth-child(5) { width: 10%; }
.findings th:nth-child(6) { width: 12%; }
.findings th:nth-child(7) { width: 5%; }
.findings th { text-align: left; font-weight: 600; color: var(--muted); padding: 4px 8px; }
.findings td { padding: 4px 8px; border-top: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
.findings .num { text-align: right; font-variant-numeric: tabular-nums; }
.findings td.test { overflow-wrap: anywhere; }
.d-worse .delta { color: var(--red); font-weight: 600; }
.d-better .delta { color: var(--green); font-weight: 600; }
.d-neutral .delta { color: var(--env); font-weight: 600; }
.st-acknowledged .delta, .st-recovered .delta { color: var(--grey); }
.finding-notes { margin-top: 2px; font-size: 12px; }
.env { color: var(--muted); }

/* charts */
.legend { color: var(--muted); font-size: 12px; }
.sw { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 10px; vertical-align: middle; }
.sw-line { height: 2px; background: var(--accent); }
.sw-band { background: rgba(9, 105, 218, 0.16); }
.sw-seg { height: 2px; background: #24292f; }
.sw-cp { width: 0; height: 12px; border-left: 2px dashed #24292f; }
.sw-new { background: rgba(207, 34, 46, 0.22); }
.sw-old { background: rgba(110, 119, 129, 0.22); }
.sw-imp { background: rgba(26, 127, 55, 0.22); }
.sw-env { background: rgba(130, 80, 223, 0.18); border: 1px dashed var(--env); }
.chart { margin: 0 0 16px; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.chart, .entry { scroll-margin-top: 96px; }  /* anchors land below the sticky filters */
.chart figcaption { font-size: 13px; overflow-wrap: anywhere; }
.chart figcaption .metric, .browse .metric { font-weight: 600; }
.chart figcaption .badge { margin-left: 4px; }
.plot { min-height: 60px; }
.chart .plot { min-height: 230px; }
.plot svg { display: block; width: 100%; height: auto; }
.plot svg:focus { outline: 2px solid var(--accent); outline-offset: 2px; }
.band { fill: var(--accent); fill-opacity: 0.15; }
.whisker { stroke: var(--accent); stroke-opacity: 0.45; }
.line { fill: none; stroke: var(--accent); stroke-width: 1.5; stroke-linejoin: round; }
.dot { fill: var(--accent); }
.seg { stroke: #24292f; stroke-width: 2; stroke-opacity: 0.8; }
.cp { stroke: #24292f; stroke-width: 1; stroke-dasharray: 4 3; stroke-opacity: 0.7; }
.grid { stroke: #eaeef2; }
.axis { stroke: var(--line); }
.ylab, .xlab { fill: var(--muted); font-size: 11px; }
.ylab { text-anchor: end; }
.xlab { text-anchor: middle; font-family: ui-monospace, Menlo, Consolas, monospace; }
.xlab-start { text-anchor: start; }
.xlab-end { text-anchor: end; }
.span { fill: var(--grey); fill-opacity: 0.18; }
.span.k-regression.st-new, .span.k-drift.st-new { fill: var(--red); fill-opacity: 0.2; }
.span.k-improvement.st-open { fill: var(--green); fill-opacity: 0.2; }
.span.k-environment { fill: var(--env); fill-opacity: 0.14; stroke: var(--env); stroke-dasharray: 3 2; }
.span-label { font-size: 10px; font-weight: 600; fill: var(--grey); }
.span-label.st-new { fill: var(--red); }
.span-label.k-improvement { fill: var(--green); }
.span-label.k-environment { fill: var(--env); }
.hit { fill: transparent; pointer-events: all; cursor: crosshair; }
.hit.link { cursor: pointer; }
.guide { stroke: var(--muted); stroke-dasharray: 2 2; pointer-events: none; }
.mark { fill: #fff; stroke: var(--accent); stroke-width: 2; pointer-events: none; }

/* the tooltip */
.tip {
  position: fixed; z-index: 10; max-width: 440px; padding: 8px 10px; pointer-events: none;
  background: #fff; border: 1px solid var(--line); border-radius: 6px; box-shadow: 0 4px 16px rgba(0, 0, 0, 0.14);
  font-size: 12.5px; overflow-wrap: anywhere;
}
.tip-subject { font-weight: 600; margin: 2px 0; }
.tip-value { font-variant-numeric: tabular-nums; }
.tip-meta, .tip-hint, .tip-date { color: var(--muted); }

/* all series */
.pager { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: center; margin-bottom: 8px; }
.browse { list-style: none; padding: 0; margin: 0; border-top: 1px solid var(--line); }
.browse > li { border-bottom: 1px solid var(--line); }
.browse summary { cursor: pointer; padding: 6px 4px; overflow-wrap: anywhere; }
.browse summary > * { margin-right: 10px; }
.browse .last { font-variant-numeric: tabular-nums; }
.browse .plot { padding: 4px 0 10px; }
"""

# ----------------------------------------------------------------------------- behaviour

_JS = r"""
/* mltest report viewer.
 *
 * Reads the JSON block #mltest-data: commits once, as columns (sha, subject, date, url); findings;
 * series with their values as arrays ("y"; "lo"/"hi" only when repeats spread; "x" commit positions
 * and "c" commit indices only when they are not 0..n-1). Charts are inline SVG, drawn when they
 * scroll into view or when a row of "All series" is opened. Text from the data only ever goes
 * through textContent / setAttribute, never through markup.
 */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var dataEl = document.getElementById("mltest-data");
  if (!dataEl) return;
  var D = JSON.parse(dataEl.textContent);
  var C = D.commits, SERIES = D.series, FINDINGS = D.findings;
  document.documentElement.classList.add("js");

  function byId(id) { return document.getElementById(id); }

  // ------------------------------------------------------------------ formatting
  var SCALES = {
    s: [[1, "s"], [1e-3, "ms"], [1e-6, "\u00b5s"], [1e-9, "ns"]],
    bytes: [[1099511627776, "TiB"], [1073741824, "GiB"], [1048576, "MiB"], [1024, "KiB"], [1, "B"]]
  };

  function g4(v) { return String(Number(v.toPrecision(4))); }

  /* A value with its unit, seconds and bytes scaled like the server side does (130 ms, 1.863 GiB). */
  function fmt(v, unit) {
    if (v === null || v === undefined || isNaN(v)) return "n/a";
    var sc = Object.prototype.hasOwnProperty.call(SCALES, unit) ? SCALES[unit] : null;
    if (sc && v !== 0) {
      for (var i = 0; i < sc.length; i++) {
        if (Math.abs(v) >= sc[i][0] || i === sc.length - 1) return g4(v / sc[i][0]) + " " + sc[i][1];
      }
    }
    return g4(v) + (unit ? " " + unit : "");
  }

  function safeUrl(u) { return typeof u === "string" && /^https?:\/\//i.test(u) ? u : null; }
  function tok(t) { return String(t || "").toLowerCase().replace(/[^a-z0-9-]/g, "") || "x"; }

  /* The [factor, name] to show values around v in (seconds and bytes), or null for other units. */
  function scaleFor(v, unit) {
    var sc = Object.prototype.hasOwnProperty.call(SCALES, unit) ? SCALES[unit] : null;
    if (!sc) return null;
    for (var i = 0; i < sc.length; i++) if (v >= sc[i][0]) return sc[i];
    return sc[sc.length - 1];
  }

  /* Labelled y ticks: round numbers in the unit shown (1.9 GiB, 2 GiB, ...); other units are named
     in the chart's caption, not on every tick. */
  function yTicks(lo, hi, unit) {
    var sc = scaleFor(Math.max(Math.abs(lo), Math.abs(hi)), unit), f = sc ? sc[0] : 1;
    return ticks(lo / f, hi / f, 5).map(function (t) {
      return { v: t * f, label: g4(t) + (sc ? " " + sc[1] : "") };
    });
  }

  /* Nice round tick values between lo and hi (about n of them). */
  function ticks(lo, hi, n) {
    var raw = (hi - lo) / Math.max(1, n);
    if (!(raw > 0) || !isFinite(raw)) return [lo];
    var step = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10));
    var ratio = raw / step;
    step *= ratio >= 7.5 ? 10 : ratio >= 3.5 ? 5 : ratio >= 1.5 ? 2 : 1;
    var out = [], first = Math.ceil(lo / step);
    for (var k = first; k * step <= hi + step * 1e-9 && out.length < 50; k++) out.push(k * step);
    return out;
  }

  // ------------------------------------------------------------------ DOM helpers (text only)
  function el(tag, cls, text, parent) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function svg(tag, attrs, parent) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, String(attrs[k]));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // ------------------------------------------------------------------ series accessors
  function X(s, i) { return s.x ? s.x[i] : i; }          // commit position of point i
  function CI(s, i) { return s.c ? s.c[i] : i; }         // index of its commit in D.commits
  function LO(s, i) { return s.lo ? s.lo[i] : s.y[i]; }
  function HI(s, i) { return s.hi ? s.hi[i] : s.y[i]; }
  function per(v, i) { return v === undefined || v === null ? null : typeof v === "number" ? v : v[i]; }

  function openCommit(c) {
    var url = safeUrl(C.url[c]);
    if (url) window.open(url, "_blank", "noopener,noreferrer");
  }

  // ------------------------------------------------------------------ tooltip
  var tip = byId("tip");

  function showTip(s, i, cx, cy) {
    if (!tip) return;
    var c = CI(s, i);
    clear(tip);
    var head = el("div", null, null, tip);
    el("code", null, String(C.sha[c] || "").slice(0, 10), head);
    if (C.date[c]) el("span", "tip-date", "  " + String(C.date[c]).replace("T", " "), head);
    if (C.subject[c]) el("div", "tip-subject", C.subject[c], tip);
    var v = s.y[i], lo = LO(s, i), hi = HI(s, i);
    var text = fmt(v, s.unit);
    if (lo !== null && hi !== null && lo !== hi) text += "   (" + fmt(lo, s.unit) + " \u2013 " + fmt(hi, s.unit) + ")";
    el("div", "tip-value", text, tip);
    var smp = per(s.smp, i), runs = per(s.runs, i), meta = "commit #" + X(s, i);
    if (smp !== null) meta += " \u00b7 " + smp + (smp === 1 ? " sample" : " samples");
    if (runs !== null && runs > 1) meta += " in " + runs + " runs";
    el("div", "tip-meta", meta, tip);
    if (safeUrl(C.url[c])) el("div", "tip-hint", "Click to open the commit", tip);
    tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var left = cx + 14, top = cy + 14;
    if (left + w > window.innerWidth - 8) left = cx - w - 14;
    if (top + h > window.innerHeight - 8) top = cy - h - 14;
    tip.style.left = Math.max(4, left) + "px";
    tip.style.top = Math.max(4, top) + "px";
  }

  function hideTip() { if (tip) tip.hidden = true; }

  // ------------------------------------------------------------------ charts
  var HEIGHT = 230, M = { r: 16, t: 20, b: 30 };
  function r1(v) { return Math.round(v * 10) / 10; }

  /* Draws series si into box (once): spans of findings, the spread band (and whiskers for short
     series), the values, segment levels, change points, axes, and the hover/click layer. */
  function drawChart(box, si) {
    if (box.getAttribute("data-drawn")) return;
    box.setAttribute("data-drawn", "1");
    clear(box);
    var s = SERIES[si], n = s.y.length;
    if (!n) { el("p", "empty", "No points recorded.", box); return; }
    var W = Math.max(360, Math.round(box.clientWidth || 900));
    var x0 = X(s, 0), x1 = X(s, n - 1);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var lo = Infinity, hi = -Infinity, i, k;
    function grow(v) { if (v !== null && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
    for (i = 0; i < n; i++) { grow(s.y[i]); grow(LO(s, i)); grow(HI(s, i)); }
    for (k = 0; k + 2 < s.seg.length; k += 3) grow(s.seg[k + 2]);
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (hi === lo) { var d = Math.abs(lo) * 0.05 || 1; lo -= d; hi += d; }
    var pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
    var yt = yTicks(lo, hi, s.unit), widest = 0;
    yt.forEach(function (t) { widest = Math.max(widest, t.label.length); });
    var L = Math.max(44, Math.min(140, Math.round(widest * 6.6 + 14)));  // left margin fits the labels
    var pw = W - L - M.r, ph = HEIGHT - M.t - M.b;
    function px(x) { return L + (x - x0) / (x1 - x0) * pw; }
    function py(v) { return M.t + (1 - (v - lo) / (hi - lo)) * ph; }
    function clampX(x) { return Math.max(x0, Math.min(x1, x)); }

    var root = svg("svg", {
      viewBox: "0 0 " + W + " " + HEIGHT, width: W, height: HEIGHT, role: "img", tabindex: 0,
      "aria-label": s.metric + " over commits, " + n + " points; arrow keys move, Enter opens the commit"
    });
    var g = svg("g", {}, root);

    // grid and y axis
    yt.forEach(function (t) {
      var y = r1(py(t.v));
      svg("line", { x1: L, x2: W - M.r, y1: y, y2: y, "class": "grid" }, g);
      svg("text", { x: L - 6, y: y + 4, "class": "ylab" }, g).textContent = t.label;
    });
    svg("line", { x1: L, x2: W - M.r, y1: M.t + ph, y2: M.t + ph, "class": "axis" }, g);

    // findings: the range between last good and first bad, shaded
    (s.f || []).forEach(function (fi) {
      var f = FINDINGS[fi];
      if (!f || f.bx === null || f.bx === undefined) return;
      var gx = f.gx === null || f.gx === undefined ? f.bx - 1 : f.gx;
      var a = px(clampX(gx)), b = px(clampX(f.bx));
      var cls = "k-" + tok(f.kind) + " st-" + tok(f.estatus);
      var left = Math.min(a, b), width = Math.max(3, Math.abs(b - a));
      var rect = svg("rect", { x: r1(left), y: M.t, width: r1(width), height: ph, "class": "span " + cls }, g);
      var label = f.kind === "environment" ? "environment" : f.kind === "improvement" ? "improvement" : f.estatus;
      svg("title", {}, rect).textContent = f.kind + " (" + f.estatus + ")";
      svg("text", { x: r1(left + width + 3 > W - M.r - 60 ? left - 64 : left + width + 3), y: M.t - 6,
                    "class": "span-label " + cls }, g).textContent = label;
    });

    // spread of the repeats: a band, broken where values are missing
    var band = "", up = [], down = [];
    function flush() {
      if (up.length > 1) band += "M" + up.join("L") + "L" + down.reverse().join("L") + "Z";
      up = []; down = [];
    }
    for (i = 0; i < n; i++) {
      var l = LO(s, i), u = HI(s, i);
      if (l === null || u === null) { flush(); continue; }
      var xx = r1(px(X(s, i)));
      up.push(xx + "," + r1(py(u)));
      down.push(xx + "," + r1(py(l)));
    }
    flush();
    if (band) svg("path", { d: band, "class": "band" }, g);
    if (n <= 150) {  // short series: whiskers too
      for (i = 0; i < n; i++) {
        if (LO(s, i) === null || HI(s, i) === null || LO(s, i) === HI(s, i)) continue;
        var wx = r1(px(X(s, i)));
        svg("line", { x1: wx, x2: wx, y1: r1(py(LO(s, i))), y2: r1(py(HI(s, i))), "class": "whisker" }, g);
      }
    }

    // the values
    var line = "", pen = false;
    for (i = 0; i < n; i++) {
      if (s.y[i] === null) { pen = false; continue; }
      line += (pen ? "L" : "M") + r1(px(X(s, i))) + "," + r1(py(s.y[i]));
      pen = true;
    }
    svg("path", { d: line, "class": "line" }, g);
    if (n <= 150) {
      for (i = 0; i < n; i++) {
        if (s.y[i] !== null) svg("circle", { cx: r1(px(X(s, i))), cy: r1(py(s.y[i])), r: 2.5, "class": "dot" }, g);
      }
    }

    // detected segments (level lines) and change points (vertical markers)
    for (k = 0; k + 2 < s.seg.length; k += 3) {
      var st = s.seg[k], en = s.seg[k + 1] - 1, level = s.seg[k + 2];
      if (level === null || st < 0 || en >= n || en < st) continue;
      var sx1 = px(X(s, st)), sx2 = px(X(s, en));
      if (sx2 - sx1 < 4) { sx1 -= 2; sx2 += 2; }
      svg("line", { x1: r1(sx1), x2: r1(sx2), y1: r1(py(level)), y2: r1(py(level)), "class": "seg" }, g)
        .appendChild(svg("title", {})).textContent = "level " + fmt(level, s.unit);
    }
    (s.cp || []).forEach(function (cp) {
      if (cp <= 0 || cp >= n) return;
      var cx = r1(px((X(s, cp - 1) + X(s, cp)) / 2));
      svg("line", { x1: cx, x2: cx, y1: M.t, y2: M.t + ph, "class": "cp" }, g);
    });

    // x axis: a few commits, by short sha
    var nt = Math.max(2, Math.min(n, Math.floor(pw / 110)));
    for (k = 0; k < nt; k++) {
      i = nt === 1 ? 0 : Math.round(k * (n - 1) / (nt - 1));
      var label = String(C.sha[CI(s, i)] || "").slice(0, 7);
      var edge = k === 0 ? " xlab-start" : k === nt - 1 ? " xlab-end" : "";
      svg("text", { x: r1(px(X(s, i))), y: M.t + ph + 18, "class": "xlab" + edge }, g).textContent = label;
      if (n === 1) break;
    }

    // hover, click and keyboard
    var guide = svg("line", { x1: -10, x2: -10, y1: M.t, y2: M.t + ph, "class": "guide" }, g);
    var mark = svg("circle", { cx: -10, cy: -10, r: 4.5, "class": "mark" }, g);
    var hit = svg("rect", { x: L, y: M.t, width: pw, height: ph, "class": "hit" }, root);
    var cur = -1;
    function nearest(mx) {
      var xv = x0 + (mx - L) / pw * (x1 - x0), a = 0, b = n - 1;
      while (b - a > 1) { var m = (a + b) >> 1; if (X(s, m) < xv) a = m; else b = m; }
      return Math.abs(X(s, a) - xv) <= Math.abs(X(s, b) - xv) ? a : b;
    }
    function select(j, cx, cy) {
      cur = j;
      var gxp = r1(px(X(s, j)));
      guide.setAttribute("x1", gxp); guide.setAttribute("x2", gxp);
      if (s.y[j] !== null) { mark.setAttribute("cx", gxp); mark.setAttribute("cy", r1(py(s.y[j]))); }
      else { mark.setAttribute("cx", -10); }
      hit.setAttribute("class", safeUrl(C.url[CI(s, j)]) ? "hit link" : "hit");
      if (cx === undefined) {  // from the keyboard: next to the point
        var r = root.getBoundingClientRect();
        cx = r.left + gxp * r.width / W;
        cy = r.top + (s.y[j] !== null ? py(s.y[j]) : M.t) * r.height / HEIGHT;
      }
      showTip(s, j, cx, cy);
    }
    function leave() {
      cur = -1; hideTip();
      guide.setAttribute("x1", -10); guide.setAttribute("x2", -10); mark.setAttribute("cx", -10);
    }
    root.addEventListener("mousemove", function (ev) {
      var r = root.getBoundingClientRect();
      if (!r.width) return;
      select(nearest((ev.clientX - r.left) * W / r.width), ev.clientX, ev.clientY);
    });
    root.addEventListener("mouseleave", leave);
    root.addEventListener("blur", leave);
    root.addEventListener("click", function () { if (cur >= 0) openCommit(CI(s, cur)); });
    root.addEventListener("keydown", function (ev) {
      var key = ev.key;
      if (key === "ArrowLeft" || key === "ArrowRight" || key === "Home" || key === "End") {
        var j = key === "Home" ? 0 : key === "End" ? n - 1
          : cur < 0 ? (key === "ArrowLeft" ? n - 1 : 0) : cur + (key === "ArrowLeft" ? -1 : 1);
        select(Math.max(0, Math.min(n - 1, j)));
        ev.preventDefault();
      } else if (key === "Enter" && cur >= 0) {
        openCommit(CI(s, cur));
      } else if (key === "Escape") {
        leave();
      }
    });
    box.appendChild(root);
  }

  /* Draw charts when they come near the viewport (all at once where IntersectionObserver is missing). */
  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (items) {
    items.forEach(function (item) {
      if (item.isIntersecting) {
        observer.unobserve(item.target);
        drawChart(item.target, +item.target.getAttribute("data-s"));
      }
    });
  }, { rootMargin: "400px 0px" }) : null;

  function lazy(box) {
    if (observer) observer.observe(box);
    else drawChart(box, +box.getAttribute("data-s"));
  }

  // ------------------------------------------------------------------ filters
  var fTest = byId("f-test"), fMetric = byId("f-metric"), fEnv = byId("f-env"), fCount = byId("f-count");
  var onlyFindings = byId("b-findings");

  function matcher() {
    var t = fTest ? fTest.value.trim().toLowerCase() : "";
    var m = fMetric ? fMetric.value.trim().toLowerCase() : "";
    var e = fEnv ? fEnv.value : "";
    return function (test, metric, env) {
      return (!t || String(test).toLowerCase().indexOf(t) >= 0)
        && (!m || String(metric).toLowerCase().indexOf(m) >= 0)
        && (!e || env === e);
    };
  }

  var browse = { rows: [], page: 0, size: 50 };

  function applyFilters() {
    var ok = matcher(), rows = 0, rowsShown = 0, charts = 0, chartsShown = 0;
    document.querySelectorAll("tr[data-f]").forEach(function (tr) {
      var f = FINDINGS[+tr.getAttribute("data-f")];
      var show = !!f && ok(f.test, f.metric, f.env);
      tr.hidden = !show;
      rows++; if (show) rowsShown++;
    });
    document.querySelectorAll("li.entry").forEach(function (li) {
      li.hidden = !!li.querySelector("tr[data-f]") && !li.querySelector("tr[data-f]:not([hidden])");
    });
    document.querySelectorAll("figure.chart[data-s]").forEach(function (fig) {
      var s = SERIES[+fig.getAttribute("data-s")];
      var show = !!s && ok(s.test, s.metric, s.env);
      fig.hidden = !show;
      charts++; if (show) chartsShown++;
    });
    var only = onlyFindings && onlyFindings.checked;
    browse.rows = [];
    for (var i = 0; i < SERIES.length; i++) {
      var s = SERIES[i];
      if (ok(s.test, s.metric, s.env) && (!only || (s.f && s.f.length))) browse.rows.push(i);
    }
    browse.page = 0;
    renderPage();
    if (fCount) {
      fCount.textContent = rowsShown + " of " + rows + " findings, " + chartsShown + " of " + charts
        + " charts, " + browse.rows.length + " of " + SERIES.length + " series shown";
    }
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  // ------------------------------------------------------------------ all series, paginated
  var bList = byId("b-list"), bInfo = byId("b-info"), bPrev = byId("b-prev"), bNext = byId("b-next");
  var bSize = byId("b-size"), bOpen = byId("b-open");

  function browseRow(si) {
    var s = SERIES[si], n = s.y.length;
    var li = el("li");
    var details = el("details", null, null, li);
    var summary = el("summary", null, null, details);
    el("span", "metric", s.metric + (s.unit ? " (" + s.unit + ")" : ""), summary);
    el("code", "test", s.test, summary);
    el("span", "env", s.env, summary);
    el("span", "last muted", n ? "last " + fmt(s.y[n - 1], s.unit) + " \u00b7 " + n + " points" : "no points", summary);
    (s.f || []).forEach(function (fi) {
      var f = FINDINGS[fi];
      if (!f) return;
      var a = el("a", "badge b-" + tok(f.estatus) + " k-" + tok(f.kind), f.kind + ": " + f.estatus, summary);
      a.setAttribute("href", "#chart-" + encodeURIComponent(s.key));
    });
    var plot = el("div", "plot", null, details);
    plot.setAttribute("data-s", String(si));
    details.addEventListener("toggle", function () { if (details.open) drawChart(plot, si); });
    return li;
  }

  function renderPage() {
    if (!bList) return;
    clear(bList);
    var total = browse.rows.length, pages = Math.max(1, Math.ceil(total / browse.size));
    browse.page = Math.max(0, Math.min(pages - 1, browse.page));
    var start = browse.page * browse.size, end = Math.min(total, start + browse.size);
    var frag = document.createDocumentFragment();
    for (var i = start; i < end; i++) frag.appendChild(browseRow(browse.rows[i]));
    bList.appendChild(frag);
    if (bInfo) {
      bInfo.textContent = total ? (start + 1) + "\u2013" + end + " of " + total + " series (page "
        + (browse.page + 1) + " of " + pages + ")" : "No series match the filters.";
    }
    if (bPrev) bPrev.disabled = browse.page === 0;
    if (bNext) bNext.disabled = browse.page >= pages - 1;
  }

  // ------------------------------------------------------------------ wiring
  document.querySelectorAll("figure.chart .plot[data-s]").forEach(lazy);
  var later = debounce(applyFilters, 150);
  if (fTest) fTest.addEventListener("input", later);
  if (fMetric) fMetric.addEventListener("input", later);
  if (fEnv) fEnv.addEventListener("change", applyFilters);
  if (onlyFindings) onlyFindings.addEventListener("change", applyFilters);
  var reset = byId("f-reset");
  if (reset) reset.addEventListener("click", function () {
    if (fTest) fTest.value = "";
    if (fMetric) fMetric.value = "";
    if (fEnv) fEnv.value = "";
    applyFilters();
  });
  if (bPrev) bPrev.addEventListener("click", function () { browse.page--; renderPage(); });
  if (bNext) bNext.addEventListener("click", function () { browse.page++; renderPage(); });
  if (bSize) bSize.addEventListener("change", function () {
    var first = browse.page * browse.size;
    browse.size = +bSize.value || 50;
    browse.page = Math.floor(first / browse.size);
    renderPage();
  });
  if (bOpen) bOpen.addEventListener("click", function () {
    bList.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
  window.addEventListener("scroll", hideTip, { passive: true });
  applyFilters();
})();
"""
