"""``mltest config show``: the effective settings and where each value came from."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from mltest.cli.options import add_setting_flags, given_settings
from mltest.config import Settings, load_settings
from mltest.store import redact_url

__all__ = ["add_parser", "show"]


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("config", help="inspect the configuration")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show_parser = actions.add_parser(
        "show",
        help="print the effective settings and where each value came from",
        description="Print the effective settings (defaults < config file < MLTEST_* env < flags) and their sources.",
    )
    show_parser.add_argument("--json", action="store_true", help="print JSON instead of a table (default: table)")
    show_parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="where to look for the config file (default: the current directory)",
    )
    add_setting_flags(show_parser)
    show_parser.set_defaults(handler=_handle)


def show(settings: Settings, *, as_json: bool = False) -> str:
    # A store URL (or repository URL) may carry a password: show it redacted, as every message does.
    rows = [(n, redact_url(v) if n in ("store_url", "repo_url") else v, src) for n, v, src in settings.describe()]
    if as_json:
        return json.dumps(
            {
                "config_file": str(settings.config_file) if settings.config_file else None,
                "active": settings.active,
                "settings": {name: {"value": value, "source": source} for name, value, source in rows},
            },
            indent=2,
        )
    where = str(settings.config_file) if settings.config_file else "none found"
    state = "opted in" if settings.active else "not opted in: plain pytest runs are untouched"
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [f"config file: {where} ({state})"]
    lines += [f"  {name:<{width}}  {value:<{value_width}}  {source}" for name, value, source in rows]
    return "\n".join(lines)


def _handle(args: argparse.Namespace, extra: list[str]) -> int:
    start = args.project_dir if args.project_dir is not None else Path.cwd()
    settings = load_settings(
        start.resolve(), environ=os.environ, cli=given_settings(args), cli_flag=lambda spec: spec.cli_flag
    )
    print(show(settings, as_json=args.json))
    return 0
