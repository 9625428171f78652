"""The ``--mltest-*`` options, generated from :data:`mltest.config.OPTIONS` (shared with the CLI)."""

from __future__ import annotations

from typing import Any

import pytest

from mltest.config import OPTIONS, OptionSpec, Settings

__all__ = ["SETTINGS_KEY", "add_options", "given_options"]

SETTINGS_KEY = pytest.StashKey[Settings]()
"""The session's resolved settings (``config.stash``), set before conftest files load."""


def dest(spec: OptionSpec) -> str:
    return "mltest_" + spec.name


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("mltest", "mltest: tiers, GPU gating and per-commit records")
    for spec in OPTIONS:
        if spec.is_bool:
            group.addoption(
                spec.pytest_flag,
                action="store_const",
                const=True,
                default=None,
                dest=dest(spec),
                help=spec.help_with_default,
            )
            group.addoption(
                "--mltest-no-" + spec.dashed,
                action="store_const",
                const=False,
                dest=dest(spec),
                help=f"turn {spec.pytest_flag} off",
            )
        else:
            group.addoption(
                spec.pytest_flag,
                type=spec.argparse_type,
                default=None,
                dest=dest(spec),
                metavar=spec.metavar,
                help=spec.help_with_default,
            )


def given_options(namespace: Any) -> dict[str, Any]:
    """Setting name -> value for every ``--mltest-*`` option given on the command line (None: not given)."""
    return {spec.name: getattr(namespace, dest(spec), None) for spec in OPTIONS}
