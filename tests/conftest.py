"""Shared test setup: pytester, the PostgreSQL fixtures (tests/pgfixtures.py), a clean environment for
every plugin run we start, and the benchmark modules (``bench``)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytest_plugins = ["pytester", "pgfixtures"]  # tests/pgfixtures.py: pg_instance, pg_server, pg_url

# In-process pytester runs restore sys.modules afterwards; a C extension such as torch cannot be
# imported a second time in one process, so import it here, once, before any inner run does.
try:
    import numpy  # noqa: F401
    import torch

    # Deterministic mode's first call imports torch submodules that register C++ operators; warm
    # them up here for the same reason (the default state, so this changes nothing).
    torch.use_deterministic_algorithms(False)
except ImportError:  # pragma: no cover - the test install always has both
    pass

# Same for modules that register global state on import (SQLAlchemy's dialect functions warn when
# registered twice, and warnings are errors here): import them once, up front.
import pandas  # noqa: E402, F401
import sqlalchemy.dialects.postgresql.psycopg  # noqa: E402
import sqlalchemy.dialects.sqlite  # noqa: E402, F401


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "live_sheets: talks to a real Google Sheet; skipped unless MLTEST_LIVE_SHEETS_URL and service-account "
        "credentials are set (tests/store/test_gsheets.py)",
    )
    config.addinivalue_line(
        "markers",
        "reliability: faults and bad input (concurrent writers, killed runs, database restarts, bad config); "
        "every test in tests/reliability/ has it: run them alone with `mltest run all -m reliability`",
    )


@pytest.fixture(scope="module")
def bench(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """``benchmarks.<BENCHMARK>`` (the test module's ``BENCHMARK``), imported from the repository root:
    benchmarks/ is a package of the repository, not installed with mltest."""
    root = str(Path(__file__).resolve().parents[1])
    sys.path.insert(0, root)
    try:
        yield importlib.import_module(f"benchmarks.{request.module.BENCHMARK}")
    finally:
        sys.path.remove(root)


@pytest.fixture(autouse=True)
def _clean_mltest_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytest runs must not inherit this run's MLTEST_* settings or its hidden GPUs."""
    for name in list(os.environ):
        if name.startswith("MLTEST_") and name != "MLTEST_REQUIRE_SERVICES":
            monkeypatch.delenv(name)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


@pytest.fixture
def incremental_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Lengths of every series that incremental detection (``mltest.detect.incremental``) hands to
    ``change_points``: how much of a history a check scanned."""
    import mltest.detect.incremental as incremental
    from mltest.detect import change_points

    seen: list[int] = []

    def spy(values, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(len(values))
        return change_points(values, **kwargs)

    monkeypatch.setattr(incremental, "change_points", spy)
    return seen
