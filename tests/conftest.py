"""Shared test setup: pytester, and a clean environment for every plugin run we start."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _clean_mltest_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytest runs must not inherit this run's MLTEST_* settings or its hidden GPUs."""
    for name in list(os.environ):
        if name.startswith("MLTEST_") and name != "MLTEST_REQUIRE_SERVICES":
            monkeypatch.delenv(name)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
