"""Plain, frozen data shared by every layer. No logic beyond validation and formatting."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

__all__ = [
    "BUDGET_MODES",
    "DEVICE_MODES",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "UNKNOWN_SHA",
    "Acknowledgement",
    "BudgetMode",
    "ChangePoint",
    "Commit",
    "CommitRange",
    "DeviceMode",
    "Environment",
    "Finding",
    "FindingKind",
    "FindingStatus",
    "Measurement",
    "MetricSpec",
    "Regression",
    "Run",
    "RunStatus",
    "Series",
    "SeriesPoint",
    "ShardSpec",
    "TestResult",
    "Tier",
    "relative_change",
    "stable_id",
    "utc_now",
]

Tier = Literal["unit", "integration", "all"]
TIERS: tuple[Tier, ...] = ("unit", "integration", "all")

DeviceMode = Literal["cuda", "auto", "cpu"]
"""How the integration tier picks its device.

``cuda``: a GPU is required; without one the session fails at start (the default).
``auto``: CUDA when available, else CPU; unmet ``gpu`` requirements skip.
``cpu``: an explicit CPU run; ``gpu``-marked tests skip with the reason.
"""
DEVICE_MODES: tuple[DeviceMode, ...] = ("cuda", "auto", "cpu")

BudgetMode = Literal["fail", "warn", "off"]
BUDGET_MODES: tuple[BudgetMode, ...] = ("fail", "warn", "off")


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``total`` CI runners."""

    index: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 1 or not 1 <= self.index <= self.total:
            raise ValueError(f"shard {self.index}/{self.total} is out of range: use I/N with 1 <= I <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


# ----------------------------------------------------------------------------- records

SCHEMA_VERSION = 5
"""Version of the stored schema this mltest writes; older stores are migrated, newer ones refused."""

RunStatus = Literal["running", "passed", "failed", "aborted"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "passed", "failed", "aborted")
UNKNOWN_SHA = "unknown"


@dataclass(frozen=True)
class Commit:
    """The commit a run tested. ``sha`` is ``unknown`` outside git and without CI variables."""

    sha: str
    branch: str | None = None
    parents: tuple[str, ...] = ()
    author: str | None = None
    authored_at: str | None = None
    """ISO 8601, with offset."""
    committed_at: str | None = None
    subject: str | None = None
    ancestry: tuple[str, ...] = ()
    """The first-parent chain behind ``sha`` (parent, grandparent, ...), as far as the checkout knows.
    Stored as links so the store can order commits by history even when later clones are shallow."""

    @property
    def short(self) -> str:
        return self.sha[:10] if self.sha != UNKNOWN_SHA else UNKNOWN_SHA


@dataclass(frozen=True)
class Environment:
    """Where a run ran, captured once per run."""

    python: str
    platform: str
    hostname: str
    cpu_model: str
    cpu_count: int
    mltest_version: str
    torch: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    gpu_model: str | None = None
    gpu_count: int = 0
    driver: str | None = None
    container_image: str | None = None
    flags: tuple[tuple[str, str], ...] = ()
    """Determinism and seed flags, as sorted (name, value) pairs."""

    @property
    def key(self) -> str:
        """The hardware a series is measured on: a series never mixes two keys."""
        if self.gpu_model:
            return f"{self.gpu_model} x{self.gpu_count}"
        return f"cpu: {self.cpu_model} x{self.cpu_count}"

    @property
    def fingerprint(self) -> str:
        """What, besides the code, moves a measurement: hardware, GPU driver and container image.

        Within one series (one :attr:`key`), a change of fingerprint is an environment change, never
        blamed on a commit. The hostname is left out: runners of one pool are interchangeable.
        """
        parts = [self.key]
        if self.driver:
            parts.append(f"driver {self.driver}")
        if self.container_image:
            parts.append(f"image {self.container_image}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Run:
    run_id: str
    project: str
    tier: str
    commit: Commit
    environment: Environment
    started_at: str
    status: RunStatus = "running"
    finished_at: str | None = None
    ci_url: str | None = None
    hostname: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class TestResult:
    """One test's outcome in one run. ``attempt`` counts reruns (0 first); a pass after a failure is flaky."""

    __test__ = False  # not a pytest test class

    test: str
    outcome: str
    duration: float
    attempt: int = 0
    flaky: bool = False


@dataclass(frozen=True)
class Measurement:
    """One metric of one test in one run: ``value`` is the median of ``samples`` when there are several."""

    test: str
    metric: str
    value: float
    unit: str | None = None
    higher_is_better: bool | None = None
    samples: tuple[float, ...] = ()
    iqr: float | None = None
    support: int | None = None
    """How many examples stand behind the value (the test-set size of an accuracy), when known."""


@dataclass(frozen=True)
class MetricSpec:
    """What the configuration says about a metric."""

    name: str
    unit: str | None = None
    higher_is_better: bool | None = None
    tolerance: float | None = None
    """Relative tolerance (0.05 = 5 %)."""
    tolerance_abs: float | None = None


def utc_now() -> str:
    """Now, as an ISO 8601 UTC timestamp with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# ----------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Acknowledgement:
    """Someone said a regression is known (``target`` is a regression or finding id), and why."""

    target: str
    reason: str
    who: str
    at: str

    def __str__(self) -> str:
        return f"{self.reason} ({self.who}, {self.at[:10]})"


@dataclass(frozen=True)
class SeriesPoint:
    """One commit's value in a series: the median over its runs, with every repeat behind it."""

    sha: str
    value: float
    samples: tuple[float, ...] = ()
    support: int | None = None
    fingerprint: str = ""
    """:attr:`Environment.fingerprint` of the runs behind the point."""
    subject: str | None = None
    runs: int = 1
    committed_at: str | None = None


@dataclass(frozen=True)
class Series:
    """The measurements of one test x metric x environment key, one point per commit, oldest first."""

    test: str
    metric: str
    env_key: str
    points: tuple[SeriesPoint, ...]
    unit: str | None = None
    higher_is_better: bool | None = None

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(p.value for p in self.points)


@dataclass(frozen=True)
class ChangePoint:
    """Where a series moves to a new level. ``index`` is the first point of the new segment."""

    index: int
    before: float
    """Level (median) of the segment before the change."""
    after: float
    """Level (median) of the segment from ``index`` on."""
    statistic: float
    """Standardised test statistic (a z-score: how many noise units the shift is)."""
    p_value: float
    """Probability of a shift this large somewhere in the segment by noise alone (scan-adjusted)."""
    n_before: int = 0
    n_after: int = 0
    """How many points stand behind each level; a new segment of a few points came from the tail test."""

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def rel_change(self) -> float:
        return relative_change(self.before, self.after)


@dataclass(frozen=True)
class CommitRange:
    """The commits that may have caused a change: after ``good`` (last measured at the old level) up to
    and including ``bad`` (first measured at the new level)."""

    good: str | None
    bad: str
    commits: tuple[str, ...] = ()
    """Oldest first, from the recorded first-parent history; empty when the history does not connect."""

    @property
    def culprit(self) -> str | None:
        """The one commit to blame, when the range holds exactly one."""
        if self.commits:
            return self.commits[0] if len(self.commits) == 1 else None
        return self.bad if self.good is None else None

    def __str__(self) -> str:
        if self.culprit is not None:
            return self.culprit[:10]
        size = f" ({len(self.commits)} commits)" if self.commits else ""
        return f"{(self.good or '?')[:10]}..{self.bad[:10]}{size}"


FindingKind = Literal["regression", "improvement", "drift", "environment"]
FindingStatus = Literal["open", "recovered"]


@dataclass(frozen=True)
class Finding:
    """One shift in one series (test x metric x environment key), classified against its tolerance."""

    kind: FindingKind
    test: str
    metric: str
    env_key: str
    range: CommitRange
    before: float
    after: float
    p_value: float
    unit: str | None = None
    higher_is_better: bool | None = None
    status: FindingStatus = "open"
    fixed_by: CommitRange | None = None
    """For a recovered regression: the range holding the commit that brought the level back."""
    steps: int = 1
    """How many change points make up the shift (more than one for a drift)."""
    note: str = ""

    @property
    def rel_change(self) -> float:
        return relative_change(self.before, self.after)

    @property
    def id(self) -> str:
        return stable_id("f", self.kind, self.test, self.metric, self.env_key, self.range.good or "", self.range.bad)


@dataclass(frozen=True)
class Regression:
    """Findings of one kind that share one culprit range: one entry instead of one alert per metric."""

    kind: FindingKind
    range: CommitRange
    findings: tuple[Finding, ...]
    acknowledged: str | None = None
    """The acknowledgement's reason (and who gave it), when someone acknowledged this entry."""

    @property
    def id(self) -> str:
        return stable_id("r", self.kind, self.range.good or "", self.range.bad)

    @property
    def status(self) -> FindingStatus:
        return "open" if any(f.status == "open" for f in self.findings) else "recovered"

    @property
    def is_new(self) -> bool:
        """Open, not acknowledged, and bad: what fails ``mltest check``."""
        return self.kind in ("regression", "drift") and self.status == "open" and self.acknowledged is None


def relative_change(before: float, after: float) -> float:
    """(after - before) / |before|; infinite (signed) when ``before`` is zero, NaN when either is NaN."""
    delta = after - before
    if math.isnan(delta):
        return math.nan
    if before == 0:
        return 0.0 if delta == 0 else math.copysign(math.inf, delta)
    return delta / abs(before)


def stable_id(prefix: str, *parts: str) -> str:
    """A short id that stays the same for the same inputs across runs and machines."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8]
    return f"{prefix}-{digest}"
