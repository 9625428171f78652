"""Plain, frozen data shared by every layer. No logic beyond validation and formatting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

__all__ = [
    "BUDGET_MODES",
    "DEVICE_MODES",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "UNKNOWN_SHA",
    "BudgetMode",
    "Commit",
    "DeviceMode",
    "Environment",
    "Measurement",
    "MetricSpec",
    "Run",
    "RunStatus",
    "ShardSpec",
    "TestResult",
    "Tier",
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

SCHEMA_VERSION = 2
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
