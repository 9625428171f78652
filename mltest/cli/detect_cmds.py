"""``mltest check``, ``mltest ack`` and ``mltest compare``: regression detection over the stored history.

The composition happens here (DESIGN: the CLI is the composition root): the store gives series, the
configuration gives tolerances and directions, :mod:`mltest.detect` gives findings, git gives subjects.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mltest.cli.options import add_store_flags, store_settings
from mltest.config import Settings
from mltest.detect import Comparison, Tolerance, compare_values, find_shifts, group_findings
from mltest.detect.regressions import binomial_noise, commit_ack_key, detected_shas, state_key
from mltest.errors import ConfigError, MltestError, StoreError
from mltest.gitinfo import commit_subjects
from mltest.model import Acknowledgement, Finding, Regression, Run, Series, SeriesPoint, utc_now
from mltest.recorder import infer_direction
from mltest.report.fmt import clean_lines, fmt_pct, fmt_value, plural
from mltest.store import Store, open_store
from mltest.store.history import load_series

__all__ = [
    "Analysis",
    "acknowledge",
    "add_parsers",
    "analyze",
    "check_output",
    "compare_runs",
    "comparison_markdown",
    "direction_of",
    "guarded",
]

EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2


# ----------------------------------------------------------------------------- analysis
@dataclass(frozen=True)
class Analysis:
    branch: str | None
    series: tuple[Series, ...]
    regressions: tuple[Regression, ...]
    undirected: tuple[str, ...]
    """Metrics skipped because nothing says whether higher is better."""
    subjects: dict[str, str]
    change_points: Mapping[tuple[str, str, str], tuple[str, ...]] = field(default_factory=dict)
    """Per (test, metric, env_key): the first commit of each new segment detection found (series
    whose direction is unknown are not analysed and have none)."""

    @property
    def new(self) -> list[Regression]:
        return [r for r in self.regressions if r.is_new]


def direction_of(settings: Settings, metric: str, unit: str | None, recorded: bool | None) -> bool | None:
    spec = settings.metrics.get(metric)
    if spec is not None and spec.higher_is_better is not None:
        return spec.higher_is_better
    if recorded is not None:
        return recorded
    return infer_direction(metric, unit)


def analyze(
    settings: Settings,
    store: Store,
    *,
    branch: str | None,
    tier: str | None = None,
    test: str | None = None,
    metric: str | None = None,
) -> Analysis:
    """Detection over every matching series of this project, grouped and with acknowledgements."""
    series = load_series(store, branch=branch, tier=tier, test=test, metric=metric, project=settings.project_name)
    links = store.first_parent_links()
    findings: list[Finding] = []
    undirected = []
    # Detection is incremental: each series' state (stored beside the runs) lets a series that only
    # grew since the last check rescan its tail. The states are a cache: unreadable or unwritable, the
    # check still runs in full.
    scope = "\x1f".join((settings.project_name, branch or "*", tier or "*"))
    keys = [state_key(scope, s, fp) for s in series for fp in dict.fromkeys(p.fingerprint for p in s.points)]
    states = _load_states(store, keys)
    before = dict(states)
    for s in series:
        higher = direction_of(settings, s.metric, s.unit, s.higher_is_better)
        if higher is None:
            undirected.append(s.metric)
            continue
        findings.extend(
            find_shifts(
                s,
                tolerance=Tolerance.of(settings.metrics.get(s.metric)),
                higher_is_better=higher,
                links=links,
                states=states,
                scope=scope,
            )
        )
    _save_states(store, {k: v for k, v in states.items() if before.get(k) != v})
    found_shas = {(s.test, s.metric, s.env_key): detected_shas(s, states, scope) for s in series}
    acks = {a.target: str(a) for a in store.acknowledgements()}
    regressions = group_findings(findings, acks)
    shas = {sha for r in regressions for sha in (*r.range.commits, r.range.bad, r.range.good or "")}
    subjects = {p.sha: p.subject for s in series for p in s.points if p.subject}
    subjects.update(commit_subjects(settings.project_root, shas - subjects.keys()))
    return Analysis(
        branch,
        tuple(series),
        tuple(regressions),
        tuple(sorted(set(undirected))),
        subjects,
        {key: shas for key, shas in found_shas.items() if shas is not None},
    )


def _load_states(store: Store, keys: Sequence[str]) -> dict[str, str]:
    try:
        return store.detection_states(keys)
    except StoreError:
        return {}


def _save_states(store: Store, states: Mapping[str, str]) -> None:
    if states:  # a read-only copy of the store, say, cannot keep them: the next check rescans in full
        with contextlib.suppress(StoreError):
            store.save_detection_states(states)


# ----------------------------------------------------------------------------- check output
_pct = fmt_pct

TITLES = {"regression": "REGRESSION", "drift": "DRIFT", "improvement": "improvement", "environment": "environment"}


def check_output(
    settings: Settings,
    store: Store,
    analysis: Analysis,
    *,
    as_json: bool = False,
    show_all: bool = False,
    color: bool = False,
    width: int = 240,
) -> str:
    """What ``mltest check`` prints: the report of ``mltest report`` built from ``analysis`` (one
    model, one terminal renderer), titled ``mltest check``; without ``show_all`` it lists only new and
    acknowledged regressions and counts the rest. ``as_json``: the report JSON
    (``mltest/report/report.schema.json``) instead."""
    from mltest.cli.report_cmd import build_report

    report = build_report(settings, store, analysis)
    if as_json:
        from mltest.report.jsonout import render_json

        return render_json(report)
    from mltest.report.text import render_text

    return render_text(report, color=color, width=width, title="mltest check", show_all=show_all)


# ----------------------------------------------------------------------------- ack
def acknowledge(
    settings: Settings, store: Store, target: str, *, reason: str, who: str | None, branch: str | None
) -> str:
    """Acknowledge a regression (or one finding of it) by id, so it stops failing ``mltest check``."""
    if not reason.strip():
        raise ConfigError("--reason is empty: say why this regression is expected, e.g. --reason 'bigger model'")
    analysis = analyze(settings, store, branch=branch)
    ids = {r.id: r for r in analysis.regressions}
    ids.update({f.id: r for r in analysis.regressions for f in r.findings})
    if target not in ids:
        known = ", ".join(r.id for r in analysis.regressions if r.status == "open") or "none open"
        raise ConfigError(f"no regression or finding with id {target!r} on {analysis.branch or 'any branch'}: {known}")
    who = who or os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN") or _user()
    entry, at = ids[target], utc_now()
    store.add_acknowledgement(Acknowledgement(target, reason.strip(), who, at))
    if target == entry.id:  # the whole entry: also every commit of its range, so a narrower range stays acked
        for sha in entry.range.commits or (entry.range.bad,):
            store.add_acknowledgement(Acknowledgement(commit_ack_key(entry.kind, sha), reason.strip(), who, at))
    return f"acknowledged {target} ({TITLES[ids[target].kind]} at {ids[target].range}): {reason.strip()}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


# ----------------------------------------------------------------------------- compare
def _pick_run(store: Store, settings: Settings, run_id: str | None, commit: str | None) -> Run:
    if run_id is not None:
        run = store.get_run(run_id)
        if run is None:
            matches = [r for r in store.runs(limit=100_000) if r.run_id.startswith(run_id)]
            if len(matches) != 1:
                raise ConfigError(f"no single run matches {run_id!r}: see `mltest runs`")
            run = matches[0]
        return run
    runs = [r for r in store.runs(project=settings.project_name, limit=100_000) if r.status != "running"]
    if commit is not None:
        runs = [r for r in runs if r.commit.sha.startswith(commit)]
        if not runs:
            raise ConfigError(f"no finished run at commit {commit!r}: see `mltest runs`")
    if not runs:
        raise ConfigError(f"no finished runs in {store.url}: record one with `mltest run`")
    return runs[0]


def compare_runs(
    settings: Settings, store: Store, *, baseline: str, run_id: str | None, commit: str | None, last: int
) -> tuple[Run, list[Comparison]]:
    """Each metric of one run against the last ``last`` runs of ``baseline`` in the same environment."""
    run = _pick_run(store, settings, run_id, commit)
    rows = store.series(branch=baseline, env_key=run.environment.key, project=run.project)
    by_run_started = {r.run_id: r.started_at for r in rows}
    recent = sorted((rid for rid in by_run_started if rid != run.run_id), key=lambda rid: by_run_started[rid])[-last:]
    keep = set(recent)
    baseline_values: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row.run_id in keep and row.fingerprint == run.environment.fingerprint:
            baseline_values.setdefault((row.test, row.metric), []).append(row.value)
    out = []
    for m in store.run_measurements(run.run_id):
        higher = direction_of(settings, m.metric, m.unit, m.higher_is_better)
        noise = binomial_noise([SeriesPoint(run.commit.sha, m.value, support=m.support)], m.unit)
        out.append(
            compare_values(
                m.test,
                m.metric,
                baseline_values.get((m.test, m.metric), []),
                m.value,
                tolerance=Tolerance.of(settings.metrics.get(m.metric)),
                higher_is_better=higher,
                noise=noise[0] if noise else None,
                unit=m.unit,
            )
        )
    return run, out


def compare_report(run: Run, baseline: str, rows: Sequence[Comparison]) -> str:
    lines = [
        f"mltest compare: run {run.run_id[:12]} at {run.commit.short} ({run.commit.branch or 'no branch'}) against "
        f"the recent runs of {baseline} on {run.environment.key}"
    ]
    if not rows:
        return clean_lines(lines[0] + "\n(the run recorded no measurements)")
    header = ("test", "metric", "old", "new", "delta", "verdict")
    table = [
        (
            c.test,
            c.metric,
            fmt_value(c.old, c.unit) if math.isfinite(c.old) else "-",
            fmt_value(c.new, c.unit),
            _pct(c.rel_change) if math.isfinite(c.old) else "-",
            c.verdict + (f" (p={c.p_value:.1g}, n={c.baseline_runs})" if math.isfinite(c.p_value) else ""),
        )
        for c in rows
    ]
    widths = [max(len(str(r[i])) for r in (header, *table)) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in table:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    lines[1] = lines[1].rstrip()
    bad = sum(1 for c in rows if c.verdict == "regression")
    good = sum(1 for c in rows if c.verdict == "improvement")
    lines.append(f"{plural(bad, 'regression')}, {plural(good, 'improvement')}")
    return clean_lines("\n".join(lines))


# ----------------------------------------------------------------------------- wiring
def comparison_markdown(
    settings: Settings, run: Run, baseline: str, rows: Sequence[Comparison], environ: Mapping[str, str]
) -> str:
    """The PR-comment / job-summary Markdown of a comparison (``mltest compare --format markdown``)."""
    from mltest.cli.report_cmd import commit_url, repo_url_from
    from mltest.report.markdown import render_comparison_markdown
    from mltest.report.model import ComparisonReport, ComparisonView

    view = ComparisonReport(
        run_id=run.run_id,
        sha=run.commit.sha,
        branch=run.commit.branch,
        baseline=baseline,
        env_key=run.environment.key,
        rows=tuple(
            ComparisonView(c.test, c.metric, c.unit, c.old, c.new, c.rel_change, c.p_value, c.verdict, c.baseline_runs)
            for c in rows
        ),
        commit_url=commit_url(repo_url_from(settings, environ), run.commit.sha),
    )
    return render_comparison_markdown(view)


def add_parsers(commands: Any) -> None:
    check = commands.add_parser(
        "check", help="find regressions over the stored history: exit 0 none new, 1 new regression, 2 error"
    )
    check.add_argument("--branch", default="main", help="the branch whose history is checked (default: main)")
    check.add_argument("--tier", default=None, help="only this tier (default: all)")
    check.add_argument("--test", default=None, help="only this test (default: all)")
    check.add_argument("--metric", default=None, help="only this metric (default: all)")
    check.add_argument("--all", action="store_true", help="also list recovered, improvement and environment entries")
    check.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON, as `mltest report --format json` (default: the terminal summary)",
    )
    add_store_flags(check)
    check.set_defaults(handler=_check)

    ack = commands.add_parser("ack", help="acknowledge a regression so it stops failing `mltest check`")
    ack.add_argument("id", help="the regression's id from `mltest check` (r-...) or one finding's (f-...)")
    ack.add_argument("--reason", required=True, help="why it is expected (stored with who and when)")
    ack.add_argument("--by", default=None, help="who acknowledges (default: $GITHUB_ACTOR or the login name)")
    ack.add_argument("--branch", default="main", help="the branch the regression is on (default: main)")
    add_store_flags(ack)
    ack.set_defaults(handler=_ack)

    cmp_ = commands.add_parser("compare", help="compare one run with the recent runs of the baseline branch")
    cmp_.add_argument("--baseline", default="main", help="the baseline branch (default: main)")
    which = cmp_.add_mutually_exclusive_group()
    which.add_argument("--run", default=None, dest="run_id", help="the run to compare (default: the latest run)")
    which.add_argument("--commit", default=None, help="compare the latest run at this commit (SHA or prefix)")
    cmp_.add_argument("--last", type=int, default=20, help="how many recent baseline runs (default: 20)")
    cmp_.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="text (a table), markdown (the PR-check view for a comment or job summary) or json (default: text)",
    )
    cmp_.add_argument("--json", action="store_true", help="the same as --format json")
    add_store_flags(cmp_)
    cmp_.set_defaults(handler=_compare)


def guarded(body: Any) -> int:
    """Run a detection command: its own failures (store, config, data) exit 2, never 1."""
    try:
        return int(body())
    except MltestError as exc:
        print(f"mltest: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _check(args: argparse.Namespace, extra: list[str]) -> int:
    def body() -> int:
        from mltest.cli.report_cmd import terminal

        settings = store_settings(args)
        store = open_store(settings.store_url, root=settings.project_root)
        try:
            analysis = analyze(settings, store, branch=args.branch, tier=args.tier, test=args.test, metric=args.metric)
            if not analysis.series:
                _nothing_to_check(settings, store, args.branch)
            color, width = terminal()
            out = check_output(
                settings, store, analysis, as_json=args.json, show_all=args.all, color=color, width=width
            )
        finally:
            store.close()
        sys.stdout.write(out)
        return EXIT_REGRESSION if analysis.new else EXIT_OK

    return guarded(body)


def _nothing_to_check(settings: Settings, store: Store, branch: str | None) -> None:
    """No series: fine for a store nothing was recorded into yet; an error when the store holds runs of
    other projects or branches (a misspelt project or branch would otherwise pass every check)."""
    runs = store.runs(limit=10_000)
    if not runs:
        print(f"mltest check: nothing recorded in {store.url} yet", file=sys.stderr)
        return
    projects = sorted({r.project for r in runs})
    branches = sorted({r.commit.branch for r in runs if r.commit.branch and r.project == settings.project_name})
    if settings.project_name not in projects:
        raise ConfigError(
            f"no runs of project {settings.project_name!r} in {store.url}; it holds "
            f"{', '.join(map(repr, projects[:10]))}: set `project` in [tool.mltest] or run from that project"
        )
    if branch is not None and branch not in branches:
        raise ConfigError(
            f"no runs of project {settings.project_name!r} on branch {branch!r}; recorded branches: "
            f"{', '.join(branches[:10]) or 'none'} (choose one with --branch)"
        )


def _ack(args: argparse.Namespace, extra: list[str]) -> int:
    def body() -> int:
        settings = store_settings(args)
        store = open_store(settings.store_url, root=settings.project_root)
        try:
            print(acknowledge(settings, store, args.id, reason=args.reason, who=args.by, branch=args.branch))
        finally:
            store.close()
        return EXIT_OK

    return guarded(body)


def _compare(args: argparse.Namespace, extra: list[str]) -> int:
    def body() -> int:
        if args.last < 1:
            raise ConfigError(f"--last {args.last}: give a positive number of baseline runs")
        settings = store_settings(args)
        store = open_store(settings.store_url, root=settings.project_root)
        try:
            run, rows = compare_runs(
                settings, store, baseline=args.baseline, run_id=args.run_id, commit=args.commit, last=args.last
            )
        finally:
            store.close()
        if args.json or args.format == "json":
            print(
                json.dumps(
                    {
                        "run_id": run.run_id,
                        "sha": run.commit.sha,
                        "baseline": args.baseline,
                        "metrics": [
                            {
                                "test": c.test,
                                "metric": c.metric,
                                "unit": c.unit,
                                "old": c.old if math.isfinite(c.old) else None,
                                "new": c.new,
                                "rel_change": c.rel_change if math.isfinite(c.rel_change) else None,
                                "p_value": c.p_value if math.isfinite(c.p_value) else None,
                                "verdict": c.verdict,
                                "baseline_runs": c.baseline_runs,
                            }
                            for c in rows
                        ],
                    },
                    indent=2,
                )
            )
        elif args.format == "markdown":
            sys.stdout.write(comparison_markdown(settings, run, args.baseline, rows, os.environ))
        else:
            print(compare_report(run, args.baseline, rows))
        return EXIT_REGRESSION if any(c.verdict == "regression" for c in rows) else EXIT_OK

    return guarded(body)
