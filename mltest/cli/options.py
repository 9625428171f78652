"""Adds the shared settings (:data:`mltest.config.OPTIONS`) to an argparse parser as ``--NAME`` flags."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mltest.config import OPTIONS, OPTIONS_BY_NAME, OptionSpec, Settings, load_settings

__all__ = ["add_setting_flags", "add_store_flags", "given_settings", "store_settings", "to_pytest_args"]


def _dest(spec: OptionSpec) -> str:
    return "setting_" + spec.name


def add_setting_flags(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    group = parser.add_argument_group("settings (override the config file and MLTEST_* variables)")
    for spec in OPTIONS:
        if spec.name in exclude:
            continue
        if spec.is_bool:
            group.add_argument(
                spec.cli_flag,
                action="store_const",
                const=True,
                default=None,
                dest=_dest(spec),
                help=spec.help_with_default,
            )
            group.add_argument(
                "--no-" + spec.dashed, action="store_const", const=False, dest=_dest(spec), help=argparse.SUPPRESS
            )
        else:
            _add_valued(group, spec)


def _add_valued(parser: argparse.ArgumentParser | argparse._ArgumentGroup, spec: OptionSpec) -> None:
    parser.add_argument(
        spec.cli_flag,
        type=spec.argparse_type,
        default=None,
        dest=_dest(spec),
        metavar=spec.metavar,
        help=spec.help_with_default,
    )


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {spec.name: getattr(args, _dest(spec), None) for spec in OPTIONS}


def to_pytest_args(values: dict[str, Any]) -> list[str]:
    """The ``--mltest-*`` flags that carry ``values`` (setting name -> parsed value) into pytest."""
    out = []
    for spec in OPTIONS:
        value = values.get(spec.name)
        if value is None:
            continue
        if spec.is_bool:
            out.append(spec.pytest_flag if value else "--mltest-no-" + spec.dashed)
        else:
            out.append(f"{spec.pytest_flag}={value}")
    return out


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    """``--store URL`` and ``--project-dir DIR``: what every command reading the store takes."""
    _add_valued(parser, OPTIONS_BY_NAME["store_url"])
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="where to look for the config file (default: the current directory)",
    )


def store_settings(args: argparse.Namespace) -> Settings:
    """Settings for a command wired with :func:`add_store_flags`."""
    start = args.project_dir if args.project_dir is not None else Path.cwd()
    values = {k: v for k, v in given_settings(args).items() if k == "store_url"}
    return load_settings(start.resolve(), environ=os.environ, cli=values)
