"""The public facade is pinned: adding or removing a name is a deliberate change to this list."""

from __future__ import annotations

import mltest


def test_all_is_pinned() -> None:
    assert sorted(mltest.__all__) == [
        "ConfigError",
        "MissingExtraError",
        "MltestError",
        "Settings",
        "ShardSpec",
        "__version__",
        "load_settings",
    ]


def test_every_name_in_all_exists() -> None:
    for name in mltest.__all__:
        assert getattr(mltest, name) is not None


def test_every_error_shares_one_base() -> None:
    assert issubclass(mltest.ConfigError, mltest.MltestError)
    assert issubclass(mltest.MissingExtraError, mltest.MltestError)
