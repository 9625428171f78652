"""One exception base for everything mltest raises on purpose.

The CLI is the only place these become exit codes; the pytest plugin turns them into
``pytest.UsageError`` so pytest prints them as one ``ERROR:`` line.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "ConfigError",
    "DetectionError",
    "DockerError",
    "DockerUnavailable",
    "MissingExtraError",
    "MltestError",
    "RecordError",
    "StoreError",
]


class MltestError(Exception):
    """Base class of every error mltest raises deliberately.

    The message is one line that names the thing at fault and, where there is one, the fix.
    """


class ConfigError(MltestError):
    """A configuration file, environment variable or flag has a bad key or value."""


class MissingExtraError(MltestError):
    """An optional dependency is not installed; the message names the ``pip install`` that fixes it."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature
        self.extra = extra
        self.module = module
        super().__init__(
            f"{feature} needs the '{module}' package, which is not installed: pip install 'mltest[{extra}]'"
        )


class RecordError(MltestError, ValueError):
    """A value handed to ``record`` was refused (NaN, infinite, conflicting unit or direction)."""


class StoreError(MltestError):
    """The results store refused or failed an operation; the message names the store (password removed)."""


class BackendUnavailable(StoreError):
    """The store's server cannot be reached (down, refused, wrong host)."""


class DockerError(MltestError):
    """An image build, push or inspection failed; the message names the image and the failing step."""


class DockerUnavailable(DockerError):
    """No Docker engine answers; the message says how to start one."""


class DetectionError(MltestError, ValueError):
    """Detection was asked something it cannot answer (bad options, mismatched inputs, no such series)."""
