"""The ``mltest`` command: ``main(argv=None) -> int``, the only place errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mltest.cli import (
    bisect_cmd,
    ci_cmd,
    config_cmd,
    demo_cmd,
    detect_cmds,
    docker_cmd,
    init_cmd,
    report_cmd,
    run_cmd,
    store_cmds,
)
from mltest.errors import MltestError

__all__ = ["main"]

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from mltest import __version__

    parser = argparse.ArgumentParser(
        prog="mltest",
        description="CI for ML code: CPU unit tier on every commit, GPU integration tier nightly, per-commit records.",
    )
    parser.add_argument("--version", action="version", version=f"mltest {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run_cmd.add_parser(commands)
    config_cmd.add_parser(commands)
    store_cmds.add_parsers(commands)
    detect_cmds.add_parsers(commands)
    bisect_cmd.add_parser(commands)
    docker_cmd.add_parser(commands)
    report_cmd.add_parsers(commands)
    demo_cmd.add_parser(commands)
    ci_cmd.add_parser(commands)
    init_cmd.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args, extra))
    except MltestError as exc:
        print(f"mltest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `mltest ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
