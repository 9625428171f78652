"""The report model: what every renderer (text, Markdown, HTML, JSON) shows, built once per report.

Plain frozen dataclasses, no I/O. The CLI builds a :class:`Report` from the detection results and the
stored series (``mltest.cli.report_cmd.build_report``); each renderer is a pure function
``render_*(report) -> str``. Every text field that came from users (commit subjects, test ids, metric
names, environment keys) is untrusted: renderers escape it for their medium.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "CommitView",
    "ComparisonReport",
    "ComparisonView",
    "EntryStatus",
    "EntryView",
    "FindingView",
    "PointView",
    "Report",
    "SegmentView",
    "SeriesView",
]

REPORT_SCHEMA_VERSION = 1
"""Version of the JSON rendering (``mltest report --format json``); bumped on incompatible changes."""

EntryStatus = Literal["new", "acknowledged", "recovered", "open"]
"""``new``: an open regression nobody acknowledged (fails ``mltest check``); ``acknowledged``: open
but acknowledged; ``recovered``: fixed later in the history; ``open``: an improvement or environment
change (nothing to act on)."""


@dataclass(frozen=True)
class CommitView:
    sha: str
    subject: str | None = None
    date: str | None = None
    """ISO 8601, when the store knows it (committed, else authored)."""
    url: str | None = None
    """A link to the commit, when a repository URL is configured."""
    position: int = -1
    """Order in the history shown (0 = oldest); -1 when the commit is not on it."""

    @property
    def short(self) -> str:
        return self.sha[:10]


@dataclass(frozen=True)
class FindingView:
    id: str
    kind: str
    """regression, drift, improvement or environment."""
    status: str
    """open or recovered."""
    test: str
    metric: str
    env_key: str
    unit: str | None
    higher_is_better: bool | None
    before: float
    after: float
    rel_change: float
    p_value: float
    confidence: float
    """1 - p (nan when the test gave no p-value)."""
    good: str | None
    """Last good commit (sha), if known."""
    bad: str
    """First bad commit (sha)."""
    culprit: str | None
    """The one commit to blame, when the range is a single commit."""
    commits: tuple[str, ...]
    """Every commit of the range, oldest first."""
    fixed_by: str | None = None
    """For a recovered finding: the first commit measured back at the old level."""
    note: str = ""
    series_key: str = ""
    """:attr:`SeriesView.key` of the series it was found in (links the entry to its chart)."""
    steps: int = 1
    """How many change points make up the shift: more than one for a drift (its ``note`` says where)."""
    fixed_after: str | None = None
    """For a recovered finding: the last commit still measured at the new level, when known (the fix
    is after it, up to :attr:`fixed_by`)."""


@dataclass(frozen=True)
class EntryView:
    """One regression (or improvement, environment change): the findings of one culprit or range."""

    id: str
    kind: str
    status: EntryStatus
    findings: tuple[FindingView, ...]
    acknowledged: str | None = None
    """Who acknowledged it, why and when, as one line."""

    @property
    def culprit(self) -> str | None:
        return self.findings[0].culprit if self.findings else None

    @property
    def range(self) -> tuple[str | None, str, tuple[str, ...]]:
        first = self.findings[0]
        return first.good, first.bad, first.commits


@dataclass(frozen=True)
class PointView:
    sha: str
    value: float
    low: float
    """Lowest repeat (= value without repeats)."""
    high: float
    """Highest repeat."""
    samples: int
    runs: int
    fingerprint: str = ""


@dataclass(frozen=True)
class SegmentView:
    start: int
    """Index of the first point (inclusive)."""
    end: int
    """Index after the last point (exclusive)."""
    level: float
    """The segment's median."""


@dataclass(frozen=True)
class SeriesView:
    key: str
    """Stable id of the series (``s-`` and a hash of test, metric, environment key)."""
    test: str
    metric: str
    env_key: str
    unit: str | None
    higher_is_better: bool | None
    points: tuple[PointView, ...]
    segments: tuple[SegmentView, ...]
    change_points: tuple[int, ...]
    """Indices of the first point of each new segment."""
    findings: tuple[str, ...] = ()
    """Ids of the findings in this series."""
    regressed: bool = False
    """It holds a new (unacknowledged, open) regression."""


@dataclass(frozen=True)
class Report:
    project: str
    branch: str | None
    generated_at: str
    store: str
    """The store URL, password removed."""
    commits: tuple[CommitView, ...]
    """The history shown, oldest first, then commits named by findings that are not on it."""
    entries: tuple[EntryView, ...]
    """New regressions first (newest culprit first), then acknowledged, recovered, improvements,
    environment changes."""
    series: tuple[SeriesView, ...]
    """Regressed series first, then every other series."""
    repo_url: str | None = None
    undirected: tuple[str, ...] = ()
    """Metrics skipped because nothing says whether higher is better."""
    since: str | None = None
    notes: tuple[str, ...] = field(default=())
    ci_url: str | None = None
    """The CI job of the newest run of the history shown, when that run recorded one (an http(s)
    URL without credentials; renderers still link only what :func:`~mltest.report.fmt.safe_url`
    accepts)."""

    @property
    def new(self) -> tuple[EntryView, ...]:
        return tuple(e for e in self.entries if e.status == "new")

    @functools.cached_property
    def _by_sha(self) -> dict[str, CommitView]:
        return {c.sha: c for c in self.commits}

    def commit(self, sha: str) -> CommitView:
        """What the report knows about ``sha`` (a bare view when nothing)."""
        return self._by_sha.get(sha) or CommitView(sha)


@dataclass(frozen=True)
class ComparisonView:
    """One metric of a run against the baseline branch's recent runs (``mltest compare``)."""

    test: str
    metric: str
    unit: str | None
    old: float
    """The baseline's median (nan without a baseline)."""
    new: float
    rel_change: float
    p_value: float
    verdict: str
    """regression, improvement, changed, unchanged or "no baseline"."""
    baseline_runs: int


@dataclass(frozen=True)
class ComparisonReport:
    """The PR-check view: one run compared with the baseline branch, metric by metric."""

    run_id: str
    sha: str
    branch: str | None
    baseline: str
    env_key: str
    rows: tuple[ComparisonView, ...]
    commit_url: str | None = None

    @property
    def regressions(self) -> int:
        return sum(1 for r in self.rows if r.verdict == "regression")
