"""``mltest run unit|integration|all [settings] [-- pytest args]``: pytest in-process with the tier."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from mltest.cli.options import add_setting_flags, given_settings, to_pytest_args
from mltest.model import TIERS

__all__ = ["PLUGIN_MODULE", "add_parser", "plugin_installed", "run"]

PLUGIN_MODULE = "mltest.harness.plugin"


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="run a tier with pytest, in-process; returns pytest's exit code",
        description=(
            "Run one tier of the test suite with pytest, in this process, and return pytest's exit code. "
            "Arguments this command does not know, and everything after '--', go to pytest "
            "(for example: mltest run integration --device cpu -n 2 -- -k train)."
        ),
    )
    parser.add_argument("tier", choices=TIERS, help="unit: CPU, every commit; integration: GPU, nightly; all: both")
    add_setting_flags(parser, exclude=("tier",))
    parser.set_defaults(handler=_handle, accepts_extra=True)


def plugin_installed() -> bool:
    return any(ep.value == PLUGIN_MODULE for ep in entry_points(group="pytest11"))


def run(tier: str, settings: dict[str, Any], pytest_args: Sequence[str]) -> int:
    import pytest

    args = [f"--mltest-tier={tier}", *to_pytest_args(settings), *pytest_args]
    if not plugin_installed():  # running from a source tree: load the plugin by module name
        args = ["-p", PLUGIN_MODULE, *args]
    code = int(pytest.main(args))
    _send_to_sheet(tier, settings)
    return code


def _send_to_sheet(tier: str, settings: dict[str, Any]) -> None:
    """After an integration run, send the queued runs to the Google Sheet when one is configured; a
    sheet that cannot be reached is one warning line and never changes the exit code."""
    if tier == "unit":
        return
    from mltest.cli.sheets_sync import sync_after_run
    from mltest.config import load_settings
    from mltest.errors import MltestError

    try:
        resolved = load_settings(Path.cwd(), environ=os.environ, cli=settings)
    except MltestError:
        return  # pytest has reported the bad setting already
    warning = sync_after_run(tier, resolved)
    if warning is not None:
        print(warning, file=sys.stderr)


def _handle(args: argparse.Namespace, extra: list[str]) -> int:
    passthrough = list(extra)
    if "--" in passthrough:  # the first "--" separates; a later one belongs to pytest
        passthrough.remove("--")
    return run(args.tier, given_settings(args), passthrough)
