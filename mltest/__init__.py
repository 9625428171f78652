"""mltest: CI for ML code that knows about GPUs, speed and accuracy.

The public facade. Everything importable from here is listed in ``__all__`` (pinned by a test).

PYTEST_DONT_REWRITE: ``mltest run`` imports this package before it starts pytest in-process; this
marker keeps pytest from warning that the already-imported plugin package cannot be rewritten.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from mltest.config import Settings, load_settings
from mltest.errors import (
    BackendUnavailable,
    ConfigError,
    MissingExtraError,
    MltestError,
    RecordError,
    StoreError,
)
from mltest.model import Commit, Environment, Measurement, MetricSpec, Run, ShardSpec, TestResult
from mltest.recorder import NoisyTimingWarning, Record, TimingStats, infer_direction, recording
from mltest.store import Store, open_store
from mltest.store.history import history

try:
    __version__ = _version("mltest")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BackendUnavailable",
    "Commit",
    "ConfigError",
    "Environment",
    "Measurement",
    "MetricSpec",
    "MissingExtraError",
    "MltestError",
    "NoisyTimingWarning",
    "Record",
    "RecordError",
    "Run",
    "Settings",
    "ShardSpec",
    "Store",
    "StoreError",
    "TestResult",
    "TimingStats",
    "__version__",
    "history",
    "infer_direction",
    "load_settings",
    "open_store",
    "recording",
]
