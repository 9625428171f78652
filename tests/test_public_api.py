"""The public facade is pinned: adding or removing a name is a deliberate change to this list."""

from __future__ import annotations

import mltest


def test_all_is_pinned() -> None:
    assert sorted(mltest.__all__) == [
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


def test_every_name_in_all_exists() -> None:
    for name in mltest.__all__:
        assert getattr(mltest, name) is not None


def test_every_error_shares_one_base() -> None:
    assert issubclass(mltest.ConfigError, mltest.MltestError)
    assert issubclass(mltest.MissingExtraError, mltest.MltestError)
    assert issubclass(mltest.StoreError, mltest.MltestError)
    assert issubclass(mltest.BackendUnavailable, mltest.StoreError)
    assert issubclass(mltest.RecordError, mltest.MltestError)
