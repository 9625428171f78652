"""Fixtures registered once the project has opted in: ``device`` and ``seed``."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import pytest

from mltest.errors import MissingExtraError
from mltest.harness import handoff
from mltest.harness.session import STATE_KEY, is_integration

if TYPE_CHECKING:
    from mltest.recorder import Record

__all__ = ["device", "record", "seed"]


def _torch(feature: str) -> Any:
    from mltest.harness import gpu

    if not gpu.torch_available():
        pytest.fail(str(MissingExtraError(feature, "torch", "torch")), pytrace=False)
    import torch

    return torch


@pytest.fixture
def device(request: pytest.FixtureRequest) -> Any:
    """The ``torch.device`` this test should use.

    Unit tests: ``cpu``. Integration tests: ``cuda`` when the run resolved a GPU (each xdist worker
    sees only its pinned GPU, so this is that GPU), else ``cpu`` (``--mltest-device=cpu`` or ``auto``
    without a GPU).
    """
    torch = _torch("the 'device' fixture")
    state = request.config.stash[STATE_KEY]
    item = request.node
    name = state.device if isinstance(item, pytest.Item) and is_integration(item) else "cpu"
    chosen = torch.device(name)
    if isinstance(item, pytest.Item):
        handoff.add(item, "device", {"value": str(chosen)})
    return chosen


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """Seeds ``random``, numpy and torch (each when installed) and returns the seed.

    The value is ``--mltest-seed`` / ``seed`` in the config (default 0); it is printed in the header
    and stored as the test's ``mltest_seed`` property (JUnit XML carries it).
    """
    value = request.config.stash[STATE_KEY].settings.seed
    random.seed(value)
    from mltest.harness import gpu

    if "numpy" in sys.modules or importlib.util.find_spec("numpy") is not None:
        import numpy

        numpy.random.seed(value)
    if gpu.torch_available():
        import torch

        torch.manual_seed(value)  # seeds every CUDA device too
    item = request.node
    if isinstance(item, pytest.Item):
        item.user_properties.append(("mltest_seed", value))
        handoff.add(item, "seed", {"value": value})
    return value


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[Record]:
    """Record metrics of this test: ``record(name, value, unit=None, higher_is_better=None, support=None)``,
    ``record.time(fn, ...)``, ``record.throughput(items, seconds)``, ``with record.memory(): ...``.

    Measurements travel with the test's reports to the process that writes the store (the xdist
    controller); the fixture itself never touches the store. They are handed over when the test ends.
    """
    from mltest.recorder import Record

    item = request.node
    state = request.config.stash[STATE_KEY]
    on_cuda = isinstance(item, pytest.Item) and is_integration(item) and state.device == "cuda"

    def emit(measurement: object) -> None:
        if isinstance(item, pytest.Item):
            handoff.add(item, "measurement", asdict(measurement))  # type: ignore[call-overload]

    recorder = Record(request.node.nodeid, emit, state.settings.metrics, device="cuda" if on_cuda else "cpu")
    yield recorder
    recorder.flush()
