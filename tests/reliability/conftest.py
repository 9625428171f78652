"""tests/reliability/: mltest under faults and bad input. Every test collected from this directory is
marked ``reliability``, so the suite runs on its own (``mltest run all -m reliability``, or
``pytest --mltest-tier=all tests/reliability``) and with everything else. Tests that start processes
or servers are also marked ``integration``, as everywhere in tests/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `import procs` (tests/reliability/procs.py), however pytest imports this directory
    sys.path.insert(0, str(HERE))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.reliability)
