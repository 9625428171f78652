"""mltest: CI for ML code that knows about GPUs, speed and accuracy.

The public facade. Everything importable from here is listed in ``__all__`` (pinned by a test).
Each name is imported on first use (PEP 562): the pytest plugin lives in this package, so every
pytest run imports it, and most runs need none of these.

PYTEST_DONT_REWRITE: ``mltest run`` imports this package before it starts pytest in-process; this
marker keeps pytest from warning that the already-imported plugin package cannot be rewritten.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

    __version__: str

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

_WHERE = {
    "Settings": "mltest.config",
    "load_settings": "mltest.config",
    "BackendUnavailable": "mltest.errors",
    "ConfigError": "mltest.errors",
    "MissingExtraError": "mltest.errors",
    "MltestError": "mltest.errors",
    "RecordError": "mltest.errors",
    "StoreError": "mltest.errors",
    "Commit": "mltest.model",
    "Environment": "mltest.model",
    "Measurement": "mltest.model",
    "MetricSpec": "mltest.model",
    "Run": "mltest.model",
    "ShardSpec": "mltest.model",
    "TestResult": "mltest.model",
    "NoisyTimingWarning": "mltest.recorder",
    "Record": "mltest.recorder",
    "TimingStats": "mltest.recorder",
    "infer_direction": "mltest.recorder",
    "recording": "mltest.recorder",
    "Store": "mltest.store",
    "open_store": "mltest.store",
    "history": "mltest.store.history",
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: object = version("mltest")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
            value = "0+unknown"
    elif name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'mltest' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
