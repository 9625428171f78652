"""``mltest report``: the regression report as text, Markdown, HTML or JSON, and ``mltest notify``.

The report model (:mod:`mltest.report.model`) is built here, once, from the detection results of
:func:`mltest.cli.detect_cmds.analyze` and the stored series; the renderers in :mod:`mltest.report`
only format it. ``mltest check`` prints the same model, through the same renderers.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from mltest.cli.detect_cmds import EXIT_OK, Analysis, analyze, guarded
from mltest.cli.options import add_store_flags, store_settings
from mltest.config import Settings
from mltest.detect import change_points
from mltest.errors import ConfigError
from mltest.model import Finding, Regression, Series, utc_now
from mltest.report.model import (
    CommitView,
    EntryStatus,
    EntryView,
    FindingView,
    PointView,
    Report,
    SegmentView,
    SeriesView,
)
from mltest.store import Store, open_store, redact_url

__all__ = [
    "FORMATS",
    "add_parsers",
    "build_report",
    "commit_url",
    "render",
    "repo_url_from",
    "series_key",
    "terminal",
]

FORMATS = ("text", "markdown", "html", "json")
_ORDER: Mapping[str, int] = {"new": 0, "acknowledged": 1, "recovered": 2}
_KIND_ORDER: Mapping[str, int] = {"regression": 0, "drift": 0, "improvement": 3, "environment": 4}


# ----------------------------------------------------------------------------- building
def series_key(test: str, metric: str, env_key: str) -> str:
    """A stable id for one series (anchors, filters and JSON refer to it)."""
    return "s-" + hashlib.sha1(f"{test}\0{metric}\0{env_key}".encode()).hexdigest()[:10]


def _web_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL (credentials removed), else ``None``."""
    if not url or not url.lower().startswith(("http://", "https://")):
        return None
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rsplit('@', 1)[-1]}{slash}{path}"


def repo_url_from(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """The repository's web URL: the ``repo_url`` setting, else what GitHub Actions or GitLab CI say."""
    url = settings.repo_url
    if not url and environ.get("GITHUB_REPOSITORY"):
        url = f"{environ.get('GITHUB_SERVER_URL', 'https://github.com').rstrip('/')}/{environ['GITHUB_REPOSITORY']}"
    if not url:
        url = environ.get("CI_PROJECT_URL") or None
    if url and not url.lower().startswith(("http://", "https://")):
        raise ConfigError(f"repo_url {redact_url(url)!r}: give the repository's web address, starting with https://")
    url = _web_url(url)  # https://user:token@host/...: links must not carry credentials
    return url.rstrip("/") if url else None


def commit_url(repo_url: str | None, sha: str) -> str | None:
    """``REPO/commit/SHA`` (GitHub's form; GitLab and Gitea accept it too)."""
    return f"{repo_url}/commit/{sha}" if repo_url else None


def _history_order(series: Sequence[Series]) -> list[str]:
    """Every commit of every series, in one order consistent with each series' own order (a merge
    of the per-series commit orders; ties broken by commit date, then SHA)."""
    after: dict[str, set[str]] = {}
    indegree: dict[str, int] = {}
    dates: dict[str, str] = {}
    for s in series:
        for p in s.points:
            indegree.setdefault(p.sha, 0)
            after.setdefault(p.sha, set())
            if p.committed_at:
                dates.setdefault(p.sha, p.committed_at)
        for a, b in zip(s.points, s.points[1:], strict=False):
            if a.sha != b.sha and b.sha not in after[a.sha]:
                after[a.sha].add(b.sha)
                indegree[b.sha] += 1
    ready = [(dates.get(sha, ""), sha) for sha, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, sha = heapq.heappop(ready)
        order.append(sha)
        for nxt in after[sha]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, (dates.get(nxt, ""), nxt))
    # A cycle (two series disagreeing on order) cannot be ordered: keep what is left by date.
    order += sorted((sha for sha, n in indegree.items() if n > 0), key=lambda sha: (dates.get(sha, ""), sha))
    return order


def _finding_view(f: Finding) -> FindingView:
    p = f.p_value
    return FindingView(
        id=f.id,
        kind=f.kind,
        status=f.status,
        test=f.test,
        metric=f.metric,
        env_key=f.env_key,
        unit=f.unit,
        higher_is_better=f.higher_is_better,
        before=f.before,
        after=f.after,
        rel_change=f.rel_change,
        p_value=p,
        confidence=1.0 - p if p == p else float("nan"),
        good=f.range.good,
        bad=f.range.bad,
        culprit=f.range.culprit,
        commits=tuple(f.range.commits),
        fixed_by=f.fixed_by.bad if f.fixed_by is not None else None,
        note=f.note,
        series_key=series_key(f.test, f.metric, f.env_key),
        steps=f.steps,
        fixed_after=f.fixed_by.good if f.fixed_by is not None else None,
    )


def _status(reg: Regression) -> EntryStatus:
    if reg.is_new:
        return "new"
    if reg.kind in ("regression", "drift"):
        if reg.status == "recovered":
            return "recovered"
        if reg.acknowledged:
            return "acknowledged"
    return "open"


def _series_view(
    s: Series,
    findings: Sequence[FindingView],
    new_ids: set[str],
    *,
    detected: tuple[str, ...] | None = None,
) -> SeriesView:
    """``detected``: the first commits of the new segments that the analysis found (its change points
    are drawn, not computed again); without it (a series whose direction is unknown), a change-point
    pass of its own. Segments also end where the environment fingerprint changes."""
    values = [p.value for p in s.points]
    cps: tuple[int, ...] = ()
    if detected is not None:
        wanted = set(detected)
        cps = tuple(i for i, p in enumerate(s.points) if p.sha in wanted and i > 0)
    elif len(values) >= 2:
        samples = [p.samples or (p.value,) for p in s.points]
        cps = tuple(cp.index for cp in change_points(values, samples=samples))
    breaks = {i for i in range(1, len(values)) if s.points[i].fingerprint != s.points[i - 1].fingerprint}
    bounds = sorted({0, *cps, *breaks, len(values)})
    levels = tuple(
        SegmentView(a, b, float(statistics.median(values[a:b]))) for a, b in itertools.pairwise(bounds) if b > a
    )
    points = tuple(
        PointView(
            sha=p.sha,
            value=p.value,
            low=min(p.samples) if p.samples else p.value,
            high=max(p.samples) if p.samples else p.value,
            samples=len(p.samples),
            runs=p.runs,
            fingerprint=p.fingerprint,
        )
        for p in s.points
    )
    key = series_key(s.test, s.metric, s.env_key)
    mine = tuple(f.id for f in findings if f.series_key == key)
    return SeriesView(
        key=key,
        test=s.test,
        metric=s.metric,
        env_key=s.env_key,
        unit=s.unit,
        higher_is_better=s.higher_is_better,
        points=points,
        segments=levels,
        change_points=cps,
        findings=mine,
        regressed=any(fid in new_ids for fid in mine),
    )


def _since_index(order: Sequence[str], dates: Mapping[str, str], since: str) -> int:
    """Where the shown history starts: a commit (SHA or prefix) or a date (YYYY-MM-DD...)."""
    matches = [i for i, sha in enumerate(order) if sha.startswith(since.lower())]
    if len(since) >= 4 and all(c in "0123456789abcdef" for c in since.lower()) and matches:
        return matches[0]
    if since[:4].isdigit() and since[4:5] == "-":
        return next((i for i, sha in enumerate(order) if dates.get(sha, "") >= since), len(order))
    raise ConfigError(
        f"--since {since!r}: give a commit SHA (or prefix) of the recorded history, or a date such as 2026-11-01"
    )


def _trim(s: Series, keep: set[str]) -> Series:
    from dataclasses import replace

    return replace(s, points=tuple(p for p in s.points if p.sha in keep))


def _ci_url(settings: Settings, store: Store, branch: str | None, shown: Mapping[str, int]) -> str | None:
    """The CI job of the newest run of the history shown (``None`` when it recorded none)."""
    for run in store.runs(branch=branch, project=settings.project_name, limit=20):
        if run.commit.sha in shown:
            return _web_url(run.ci_url)
    return None


def build_report(
    settings: Settings,
    store: Store,
    analysis: Analysis,
    *,
    since: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """The report model of ``analysis`` (one detection pass) over the stored series."""
    environ = os.environ if environ is None else environ
    repo = repo_url_from(settings, environ)
    order = _history_order(analysis.series)
    dates = {p.sha: p.committed_at for s in analysis.series for p in s.points if p.committed_at}
    series = list(analysis.series)
    if since is not None:
        start = _since_index(order, dates, since)
        order = order[start:]
        keep = set(order)
        series = [t for t in (_trim(s, keep) for s in series) if t.points]
    position = {sha: i for i, sha in enumerate(order)}
    regressions = [r for r in analysis.regressions if since is None or r.range.bad in position]
    entries: list[tuple[tuple[int, int], EntryView]] = []
    findings: list[FindingView] = []
    for reg in regressions:
        found = tuple(_finding_view(f) for f in reg.findings)
        findings.extend(found)
        status = _status(reg)
        rank = (_ORDER.get(status, _KIND_ORDER.get(reg.kind, 5)), -position.get(reg.range.bad, -1))
        entries.append((rank, EntryView(reg.id, reg.kind, status, found, reg.acknowledged)))
    entries.sort(key=lambda pair: pair[0])
    new_ids = {f.id for _, e in entries if e.status == "new" for f in e.findings}
    views = [
        _series_view(s, findings, new_ids, detected=analysis.change_points.get((s.test, s.metric, s.env_key)))
        for s in series
    ]
    views.sort(key=lambda v: (not v.regressed, not v.findings, v.test, v.metric, v.env_key))
    named = {sha for f in findings for sha in (f.bad, f.good, f.culprit, f.fixed_by, *f.commits) if sha}
    subjects = analysis.subjects
    commits = [
        CommitView(sha, subjects.get(sha), dates.get(sha), commit_url(repo, sha), position[sha]) for sha in order
    ]
    commits += [
        CommitView(sha, subjects.get(sha), dates.get(sha), commit_url(repo, sha), -1)
        for sha in sorted(named - position.keys())
    ]
    return Report(
        project=settings.project_name,
        branch=analysis.branch,
        generated_at=utc_now(),
        store=store.url,
        commits=tuple(commits),
        entries=tuple(e for _, e in entries),
        series=tuple(views),
        repo_url=repo,
        undirected=analysis.undirected,
        since=since,
        ci_url=_ci_url(settings, store, analysis.branch, position),
    )


# ----------------------------------------------------------------------------- rendering
def terminal(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> tuple[bool, int]:
    """Colour and width for the terminal text written to ``stream`` (stdout): on a terminal, colour
    unless ``NO_COLOR`` is set, and its width; elsewhere (a file, a CI log) no colour and 240
    columns, wide enough that test ids are not cut."""
    stream = sys.stdout if stream is None else stream
    environ = os.environ if environ is None else environ
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        tty = False
    if not tty:
        return False, 240
    import shutil

    return not environ.get("NO_COLOR"), shutil.get_terminal_size((100, 24)).columns


def render(report: Report, fmt: str, *, color: bool = False, width: int | None = None) -> str:
    """``report`` as ``fmt`` (one of :data:`FORMATS`); text is ``width`` columns wide (default: as
    :func:`terminal` says for stdout) and in colour only with ``color``."""
    if fmt == "text":
        from mltest.report.text import render_text

        return render_text(report, color=color, width=terminal()[1] if width is None else width)
    if fmt == "markdown":
        from mltest.report.markdown import render_markdown

        return render_markdown(report)
    if fmt == "html":
        from mltest.report.html import render_html

        return render_html(report)
    from mltest.report.jsonout import render_json

    return render_json(report)


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the report: {exc.strerror or exc}") from None
    print(f"wrote {out} ({len(text.encode()):,} bytes)", file=sys.stderr)


def _load(args: argparse.Namespace) -> tuple[Settings, Report]:
    settings = store_settings(args)
    store = open_store(settings.store_url, root=settings.project_root)
    try:
        analysis = analyze(settings, store, branch=args.branch)
        return settings, build_report(settings, store, analysis, since=args.since)
    finally:
        store.close()


def add_parsers(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="the regression report: text (terminal), markdown (PR comment, job summary), html (charts), json",
        description=(
            "Detect regressions over the stored history and render the report. Text goes to the terminal "
            "(colour on a TTY); markdown fits a PR comment or $GITHUB_STEP_SUMMARY; html is one self-contained "
            "file with a chart per series; json follows mltest/report/report.schema.json."
        ),
    )
    report.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    report.add_argument("--out", type=Path, default=None, metavar="PATH", help="write here (default: stdout)")
    report.add_argument("--branch", default="main", help="the branch whose history is reported (default: main)")
    report.add_argument(
        "--since", default=None, metavar="SHA|DATE", help="start the history at this commit or date (default: all)"
    )
    add_store_flags(report)
    report.set_defaults(handler=_report)

    notify = commands.add_parser(
        "notify",
        help="post new, unacknowledged regressions to a webhook (Slack-compatible or generic JSON)",
        description=(
            "Post the new, unacknowledged regressions to an incoming webhook. Retries with backoff on "
            "errors; the URL is a secret and is never printed. Nothing is posted when nothing is new."
        ),
    )
    notify.add_argument(
        "--webhook",
        default=None,
        metavar="URL",
        help="the webhook URL (default: $MLTEST_WEBHOOK_URL; prefer the variable: arguments show in process lists)",
    )
    notify.add_argument("--kind", choices=("slack", "json"), default="slack", help="payload format (default: slack)")
    notify.add_argument("--branch", default="main", help="the branch whose history is checked (default: main)")
    notify.add_argument("--since", default=None, metavar="SHA|DATE", help=argparse.SUPPRESS)
    add_store_flags(notify)
    notify.set_defaults(handler=_notify)


def _report(args: argparse.Namespace, extra: list[str]) -> int:
    def body() -> int:
        _, report = _load(args)
        color = args.format == "text" and args.out is None and terminal()[0]
        _write(render(report, args.format, color=color), args.out)
        return EXIT_OK

    return guarded(body)


def _notify(args: argparse.Namespace, extra: list[str]) -> int:
    def body() -> int:
        from mltest.report.notify import notify

        url = args.webhook or os.environ.get("MLTEST_WEBHOOK_URL")
        if not url:
            raise ConfigError("no webhook: pass --webhook URL or set MLTEST_WEBHOOK_URL")
        _, report = _load(args)
        result = notify(report, url, kind=args.kind)
        print(f"mltest notify: {result.reason}")
        return EXIT_OK

    return guarded(body)
