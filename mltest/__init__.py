"""mltest: CI for ML code that knows about GPUs, speed and accuracy.

The public facade. Everything importable from here is listed in ``__all__`` (pinned by a test).

PYTEST_DONT_REWRITE: ``mltest run`` imports this package before it starts pytest in-process; this
marker keeps pytest from warning that the already-imported plugin package cannot be rewritten.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from mltest.config import Settings, load_settings
from mltest.errors import ConfigError, MissingExtraError, MltestError
from mltest.model import ShardSpec

try:
    __version__ = _version("mltest")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ConfigError",
    "MissingExtraError",
    "MltestError",
    "Settings",
    "ShardSpec",
    "__version__",
    "load_settings",
]
