"""The JSON report (``mltest report --format json``): the whole model, stable and documented.

The format is described by the JSON Schema (draft 2020-12) shipped next to this module,
``report.schema.json`` (:func:`report_schema`). Its top-level ``schema_version`` is
:data:`~mltest.report.model.REPORT_SCHEMA_VERSION`, bumped on incompatible changes; fields may be
added within a version. Every field is always present (``null`` when unknown). Numbers that are not
finite (NaN, infinity: a relative change from 0, a test without a p-value) are written as ``null``,
so the output is strict JSON that any parser reads. Strings are copied as recorded: they are
untrusted (commit subjects, test ids, URLs), so a consumer escapes them for its own medium. The
output is ASCII (other characters as ``\\u`` escapes) and compact: one line, no spaces (``jq .``
indents it for reading). Compact, the standard library's C encoder writes it, about 3x faster than
indented, and a report of 200 series over 1,000 commits is tens of megabytes (BENCHMARKS.md, reports).

Top level::

    schema_version, project, branch, generated_at, store, repo_url, ci_url, since,
    counts      {entries, findings, series, commits, new, by_status{...}, by_kind{...}}
    entries     [{id, kind, status, acknowledged, culprit, good, bad, commits[],
                  findings[{id, kind, status, test, metric, env_key, unit, higher_is_better, before,
                            after, rel_change, p_value, confidence, good, bad, culprit, commits[],
                            fixed_by, fixed_after, note, series_key, steps}]}]
    series      [{key, test, metric, env_key, unit, higher_is_better, regressed, findings[],
                  points[{sha, value, low, high, samples, runs, fingerprint}],
                  segments[{start, end, level}], change_points[]}]
    commits     [{sha, short, subject, date, url, position}]
    undirected  [metric], notes [text]
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

from mltest.report.model import (
    REPORT_SCHEMA_VERSION,
    CommitView,
    EntryView,
    FindingView,
    PointView,
    Report,
    SegmentView,
    SeriesView,
)

__all__ = ["SCHEMA_FILE", "render_json", "report_data", "report_schema"]

SCHEMA_FILE = "report.schema.json"
"""The JSON Schema of the output, a resource of this package."""

_STATUSES = ("new", "acknowledged", "recovered", "open")


def _num(value: float) -> float | None:
    """A finite float, or ``None`` (JSON has no NaN or infinity)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _finding(f: FindingView) -> dict[str, Any]:
    return {
        "id": f.id,
        "kind": f.kind,
        "status": f.status,
        "test": f.test,
        "metric": f.metric,
        "env_key": f.env_key,
        "unit": f.unit,
        "higher_is_better": f.higher_is_better,
        "before": _num(f.before),
        "after": _num(f.after),
        "rel_change": _num(f.rel_change),
        "p_value": _num(f.p_value),
        "confidence": _num(f.confidence),
        "good": f.good,
        "bad": f.bad,
        "culprit": f.culprit,
        "commits": list(f.commits),
        "fixed_by": f.fixed_by,
        "fixed_after": f.fixed_after,
        "note": f.note,
        "series_key": f.series_key,
        "steps": int(f.steps),
    }


def _entry(e: EntryView) -> dict[str, Any]:
    first = e.findings[0] if e.findings else None
    return {
        "id": e.id,
        "kind": e.kind,
        "status": e.status,
        "acknowledged": e.acknowledged,
        "culprit": e.culprit,
        "good": first.good if first else None,
        "bad": first.bad if first else None,
        "commits": list(first.commits) if first else [],
        "findings": [_finding(f) for f in e.findings],
    }


def _point(p: PointView) -> dict[str, Any]:
    return {
        "sha": p.sha,
        "value": _num(p.value),
        "low": _num(p.low),
        "high": _num(p.high),
        "samples": int(p.samples),
        "runs": int(p.runs),
        "fingerprint": p.fingerprint,
    }


def _segment(s: SegmentView) -> dict[str, Any]:
    return {"start": int(s.start), "end": int(s.end), "level": _num(s.level)}


def _series(s: SeriesView) -> dict[str, Any]:
    return {
        "key": s.key,
        "test": s.test,
        "metric": s.metric,
        "env_key": s.env_key,
        "unit": s.unit,
        "higher_is_better": s.higher_is_better,
        "regressed": s.regressed,
        "findings": list(s.findings),
        "points": [_point(p) for p in s.points],
        "segments": [_segment(seg) for seg in s.segments],
        "change_points": [int(i) for i in s.change_points],
    }


def _commit(c: CommitView) -> dict[str, Any]:
    return {
        "sha": c.sha,
        "short": c.short,
        "subject": c.subject,
        "date": c.date,
        "url": c.url,
        "position": int(c.position),
    }


def _counts(report: Report) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for e in report.entries:
        by_kind[e.kind] = by_kind.get(e.kind, 0) + 1
    by_status = {status: sum(1 for e in report.entries if e.status == status) for status in _STATUSES}
    return {
        "entries": len(report.entries),
        "findings": sum(len(e.findings) for e in report.entries),
        "series": len(report.series),
        "commits": sum(1 for c in report.commits if c.position >= 0),
        "new": by_status["new"],
        "by_status": by_status,
        "by_kind": by_kind,
    }


def report_data(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (what :func:`render_json` writes)."""
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "project": report.project,
        "branch": report.branch,
        "generated_at": report.generated_at,
        "store": report.store,
        "repo_url": report.repo_url,
        "ci_url": report.ci_url,
        "since": report.since,
        "counts": _counts(report),
        "entries": [_entry(e) for e in report.entries],
        "series": [_series(s) for s in report.series],
        "commits": [_commit(c) for c in report.commits],
        "undirected": list(report.undirected),
        "notes": list(report.notes),
    }


def render_json(report: Report) -> str:
    """The report as strict JSON (no NaN or infinity), described by :func:`report_schema`."""
    return json.dumps(report_data(report), separators=(",", ":"), allow_nan=False, ensure_ascii=True) + "\n"


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :func:`render_json`'s output."""
    text = resources.files("mltest.report").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
